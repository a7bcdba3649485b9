"""Default config of experiments/mnist.py (every field: jaxgan.train.default_config)."""

from jaxgan.train import default_config


def get_config():
  return default_config()

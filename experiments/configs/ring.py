"""Default config of experiments/ring.py: the 8-Gaussian ring recipe."""

from jaxgan.toy import ring_config


def get_config():
  return ring_config()

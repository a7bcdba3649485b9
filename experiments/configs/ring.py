"""Default config of experiments/ring.py: the 8-Gaussian ring recipe."""

from toy import ring_config  # experiments/toy.py, beside the script that loads this config


def get_config():
  return ring_config()

r"""Trains a GAN on MNIST-like data; running it again on the same workdir resumes.

  python experiments/mnist.py --workdir=workdirs/mnist
  python experiments/mnist.py --config.model=mlp --config.loss=hinge --config.steps=2000

Every field of experiments/configs/mnist.py can be overridden with --config.field=value.
SIGTERM or Ctrl-C saves a checkpoint and exits 0; the next run resumes from it.
"""

import os

from absl import app, flags, logging
from ml_collections import config_flags

from jaxgan import train

_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(os.path.dirname(__file__), "configs", "mnist.py"),
    "Training config; override fields with --config.field=value.")
_WORKDIR = flags.DEFINE_string("workdir", "workdirs/mnist",
                               "Checkpoints, metrics, TensorBoard events and samples go here.")


def main(argv):
  del argv
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO level
  result = train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  state = "stopped early; run again to resume" if result.preempted else "done"
  print(f"step {result.step} ({state}); outputs in {os.path.abspath(_WORKDIR.value)}")


if __name__ == "__main__":
  app.run(main)

r"""Trains a GAN on MNIST (offline: Fashion-MNIST), evaluates it, exports samples.

  python experiments/mnist.py                          # train (or resume) in workdirs/mnist
  python experiments/mnist.py --config.loss=hinge --config.steps=5000 --workdir=DIR
  python experiments/mnist.py --workdir=DIR --sample_out=samples.npy --num_samples=1000
  python experiments/mnist.py --config.model=resnet --config.conditional=True --workdir=DIR
  python experiments/mnist.py --config=experiments/configs/cifar10.py --workdir=DIR

Without an accelerator it runs the config's cpu variant: 5,000 steps of a class-conditional
DCGAN at half width (hinge loss, Adam betas (0, 0.9)), about 8 minutes on a 2-core CPU; on a
GPU or TPU the full variant, 20,000 steps (--config=experiments/configs/mnist.py:cpu or :full
chooses). At its end the CPU run prints the command that goes on with it to 15,000 steps (the
same arguments and --config.steps=15000: it resumes; 13.5 more minutes there), which draws
cleaner bags and sandals. Every field of experiments/configs/mnist.py can be overridden with
--config.field=value.
Running again on the same workdir resumes. SIGTERM or Ctrl-C at any moment (loading, training,
evaluating, saving, exporting) stops within seconds, saves what there is and exits 0.
With --sample_out it trains nothing: it writes uint8 [N, 28, 28, 1] images from the newest
checkpoint (the EMA generator) and exits; for a conditional run (--config.conditional=True)
image i is of class i % num_classes. A bad setting prints "error: ..." and exits with
status 2 (the traceback with --verbosity=1 or JAXGAN_TRACEBACK=1).
"""

import signal

# Preemption can come at any moment, also while the imports below run (seconds): record it
# now, and hand it to the library's handler at the start of main.
_EARLY_SIGNALS: list[int] = []
for _sig in (signal.SIGTERM, signal.SIGINT):
  signal.signal(_sig, lambda signum, frame: _EARLY_SIGNALS.append(signum))

from jaxgan import cli  # noqa: E402

# What the end of the CPU run suggests: 3x its length, where FD falls from ~3.6 to 2.3-2.4 at
# both measured seeds and the bags get handles (BUILD_NOTES.md, "The first run").
LONGER = (15_000, "cleaner samples (bags, sandals)")

if __name__ == "__main__":
  cli.experiment_main(__file__, "mnist", pending=_EARLY_SIGNALS, longer=LONGER)

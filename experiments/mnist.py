r"""Trains a GAN on MNIST (offline: Fashion-MNIST), evaluates it, exports samples.

  python experiments/mnist.py                          # train (or resume) in workdirs/mnist
  python experiments/mnist.py --config.loss=hinge --config.steps=5000 --workdir=DIR
  python experiments/mnist.py --workdir=DIR --sample_out=samples.npy --num_samples=1000
  python experiments/mnist.py --config.model=resnet --workdir=DIR   # the ResNet's own recipe
  python experiments/mnist.py --config=experiments/configs/cifar10.py --workdir=DIR

Each model (dcgan, the default; mlp; resnet; stylegan2) has its own recipe with a CPU run
and an accelerator run (experiments/configs/mnist.py); --config.model=NAME runs that
model's recipe. Without an accelerator it runs the recipe's cpu variant: for the default,
5,000 steps of a class-conditional DCGAN at half width (hinge loss, Adam betas (0, 0.9)),
about 8 minutes on a 2-core CPU; on a GPU or TPU the full variant
(--config=experiments/configs/mnist.py:cpu or :full chooses; :resnet,cpu both). At its end
the default CPU run prints the command that goes on with it to 15,000 steps (the same
arguments and --config.steps=15000: it resumes), which draws cleaner bags and sandals,
unless the evaluation found the generator collapsed: then it says so, names the classes
and what to try. Every field of the config can be overridden with --config.field=value.
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

# What the end of a model's CPU run suggests. The DCGAN's: 3x its length, where FD falls from
# ~3.6 to 2.3-2.4 at both measured seeds and the bags get handles (BUILD_NOTES.md, "The
# first run").
LONGER = {"dcgan": (15_000, "cleaner samples (bags, sandals)")}

if __name__ == "__main__":
  cli.experiment_main(__file__, "mnist", pending=_EARLY_SIGNALS, longer=LONGER)

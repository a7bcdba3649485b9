r"""Trains a GAN on MNIST (offline: Fashion-MNIST), evaluates it, exports samples.

  python experiments/mnist.py                          # train (or resume) in workdirs/mnist
  python experiments/mnist.py --config.loss=hinge --config.steps=5000 --workdir=DIR
  python experiments/mnist.py --workdir=DIR --sample_out=samples.npy --num_samples=1000
  python experiments/mnist.py --config.model=resnet --config.conditional=True --workdir=DIR
  python experiments/mnist.py --config=experiments/configs/cifar10.py --workdir=DIR

Without an accelerator (and without --config.steps) it makes the short CPU run: 5,000 steps
of a class-conditional DCGAN at half width (hinge loss, Adam betas (0, 0.9)), about 8 minutes
on a 2-core CPU; on a GPU or TPU the full 20,000-step run. At its end the CPU run prints the
command that goes on with it to 15,000 steps (the same arguments and --config.cpu_steps=15000:
it resumes; 13.5 more minutes there), which draws cleaner bags and sandals. Every field of
experiments/configs/mnist.py can be overridden with --config.field=value, and a field set so
stays set in the CPU run too.
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

import os  # noqa: E402
import sys  # noqa: E402

from absl import app, flags, logging  # noqa: E402

from jaxgan import cli, train  # noqa: E402

_CONFIG = cli.define_config(os.path.join(os.path.dirname(__file__), "configs", "mnist.py"))
_WORKDIR = flags.DEFINE_string("workdir", "workdirs/mnist",
                               "Checkpoints, metrics, TensorBoard events and samples go here.")
_SAMPLE_OUT = flags.DEFINE_string("sample_out", None,
                                  "Write samples of the newest checkpoint to this .npy file and "
                                  "exit without training. For a conditional run, image i is "
                                  "of class i % num_classes.")
_NUM_SAMPLES = flags.DEFINE_integer("num_samples", 1000, "How many samples --sample_out writes.")
_SAMPLE_SEED = flags.DEFINE_integer("sample_seed", 0, "Seed of the exported samples' latents.")
# What the end of the short CPU run suggests: 3x its length, where FD falls from ~3.6 to
# 2.3-2.4 at both measured seeds and the bags get handles (BUILD_NOTES.md, "Third round").
_LONGER_CPU_STEPS = 15_000


def main(argv):
  # For the rest of the process, teardown included: a signal stops at the next safe point.
  train.install_stop_handlers(pending=_EARLY_SIGNALS)
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])} (flags are --name=value).")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO level
  if _SAMPLE_OUT.value:
    try:
      images, meta = train.export_samples(_WORKDIR.value, _SAMPLE_OUT.value, _NUM_SAMPLES.value,
                                          _SAMPLE_SEED.value)
    except train.Stopped as stopped:
      print(f"stopped ({stopped}) before writing {_SAMPLE_OUT.value}; nothing was written. Run "
            "the same command again to export.")
      return
    classes = meta.get("num_classes") or 0
    which = f" (image i of class i % {classes})" if classes else ""
    print(f"wrote {images.shape[0]} samples {list(images.shape)} uint8{which} from step "
          f"{meta['step']} of {os.path.abspath(_WORKDIR.value)} to {_SAMPLE_OUT.value}")
    return
  # What the command line sets stays set in the CPU run (its recipe fills in the rest).
  config = train.prefer_given(_CONFIG.value, cli.config_fields_given(sys.argv))
  result = train.train_and_evaluate(config, _WORKDIR.value)
  cli.report(result, _WORKDIR.value)
  if train.is_auto_cpu_run(config) and result.grid and not result.preempted:
    more = cli.longer_cpu_run(sys.argv, result.step, _LONGER_CPU_STEPS)
    if more:  # the short run is limited by its length: more steps help
      print(f"cleaner samples (bags, sandals): go on with this run to "
            f"{_LONGER_CPU_STEPS:,} steps (it resumes at step {result.step:,}): {more}")


if __name__ == "__main__":
  cli.run(main)

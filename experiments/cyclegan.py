r"""CycleGAN: unpaired image-to-image translation, by default Fashion-MNIST's sneakers <->
ankle boots (offline), or TFDS cycle_gan/<name>.

  python experiments/cyclegan.py                                  # sneaker <-> ankle boot
  python experiments/cyclegan.py --config.domain_a=0 --config.domain_b=3   # T-shirt <-> dress
  python experiments/cyclegan.py --config=experiments/configs/cyclegan_horse2zebra.py
  python experiments/cyclegan.py --workdir=DIR --translate_in=IN.npy --translate_out=OUT.npy \
      --direction=ab

Every field of experiments/configs/cyclegan.py can be overridden with --config.field=value.
Running again on the same workdir resumes bit for bit (the image pools are in the
checkpoints); SIGTERM or Ctrl-C stops within seconds, saves and exits 0. The pictures in
workdir/samples/ are rows of input | translation | reconstruction from fixed test images of
each domain. --translate_in translates uint8 images [N, H, W, C] of domain A (--direction=ab)
or B (ba) with the newest checkpoint and exits: the same input gives the same output.
"""

import signal

# Preemption can come at any moment, also while the imports below run (seconds): record it
# now, and hand it to the library's handler at the start of main.
_EARLY_SIGNALS: list[int] = []
for _sig in (signal.SIGTERM, signal.SIGINT):
  signal.signal(_sig, lambda signum, frame: _EARLY_SIGNALS.append(signum))

from jaxgan import cli  # noqa: E402

if __name__ == "__main__":
  cli.experiment_main(__file__, "cyclegan", "cyclegan", pending=_EARLY_SIGNALS)

r"""pix2pix: paired image-to-image translation on Fashion-MNIST (offline), or your pairs.

  python experiments/pix2pix.py                                   # edges -> garments
  python experiments/pix2pix.py --config.task=super_resolution    # 14x14 -> 28x28
  python experiments/pix2pix.py --config.task=inpainting          # fill a 12x12 hole
  python experiments/pix2pix.py --workdir=DIR --translate_in=IN.npy --translate_out=OUT.npy

Every field of experiments/configs/pix2pix.py can be overridden with --config.field=value.
Running again on the same workdir resumes; SIGTERM or Ctrl-C stops within seconds, saves
and exits 0. The pictures in workdir/samples/ are rows of input | output | target from
fixed test images. --translate_in translates uint8 images [N, H, W, C_in] (the task's
inputs, e.g. edge maps) with the newest checkpoint and exits: the same input gives the
same output. A bad setting prints "error: ..." and exits with status 2.
"""

import signal

# Preemption can come at any moment, also while the imports below run (seconds): record it
# now, and hand it to the library's handler at the start of main.
_EARLY_SIGNALS: list[int] = []
for _sig in (signal.SIGTERM, signal.SIGINT):
  signal.signal(_sig, lambda signum, frame: _EARLY_SIGNALS.append(signum))

from jaxgan import cli  # noqa: E402

if __name__ == "__main__":
  cli.experiment_main(__file__, "pix2pix", "pix2pix", pending=_EARLY_SIGNALS)

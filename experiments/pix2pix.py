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

# Preemption can come at any moment, also while the imports below run: record it now.
_EARLY_SIGNALS: list[int] = []
for _sig in (signal.SIGTERM, signal.SIGINT):
  signal.signal(_sig, lambda signum, frame: _EARLY_SIGNALS.append(signum))

import os  # noqa: E402

from absl import flags  # noqa: E402

from jaxgan import cli  # noqa: E402

_CONFIG = cli.define_config(os.path.join(os.path.dirname(__file__), "configs", "pix2pix.py"))
_WORKDIR = flags.DEFINE_string("workdir", "workdirs/pix2pix",
                               "Checkpoints, metrics, TensorBoard events and pictures go here.")
_IN = flags.DEFINE_string("translate_in", None, "Translate this .npy of uint8 images [N, H, W, "
                          "C] with the newest checkpoint, and exit.")
_OUT = flags.DEFINE_string("translate_out", None, "Where --translate_in's translations go "
                           "(.npy, uint8).")


def main(argv):
  cli.translation_main(argv, _CONFIG.value, _WORKDIR.value, _IN.value, _OUT.value, "ab",
                       pending=_EARLY_SIGNALS)


if __name__ == "__main__":
  cli.run(main)

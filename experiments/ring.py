r"""Trains the original GAN's MLP pair on the 8-Gaussian ring and draws its samples.

  python experiments/ring.py --workdir=workdirs/ring
  python experiments/ring.py --config.loss=hinge --config.r1_weight=0

Prints the modes covered and the fraction of high-quality samples (within 3 sd of a mode),
and writes ring.png (samples in red, the modes' 3-sd circles in green) and stats.jsonl.
"""

import json
import os
import time

import toy
from absl import flags

from jaxgan import cli

_CONFIG = cli.define_config(os.path.join(os.path.dirname(__file__), "configs", "ring.py"))
_WORKDIR = flags.DEFINE_string("workdir", "workdirs/ring", "Where outputs are written.")


def main(argv):
  del argv
  config = _CONFIG.value
  os.makedirs(_WORKDIR.value, exist_ok=True)
  log_path = os.path.join(_WORKDIR.value, "stats.jsonl")
  with open(log_path, "w") as log_file:
    def log(step, stats):
      log_file.write(json.dumps({"step": step, **stats}) + "\n")
      log_file.flush()

    start = time.time()
    _, _, samples, stats = toy.train_ring(config, progress=True, log=log)
    seconds = time.time() - start
  png = os.path.join(_WORKDIR.value, "ring.png")
  toy.draw_ring(samples, png, title=f"{config.loss}, {config.steps} steps: {stats.modes}/8 modes, "
                f"{stats.high_quality:.0%} high quality")
  print(f"{config.loss}: {stats.modes}/8 modes covered, {stats.high_quality:.1%} of "
        f"{len(samples)} samples within 3 sd of a mode; per mode {list(stats.counts)}; "
        f"{config.steps} steps in {seconds:.0f} s")
  print(f"samples drawn in {png}, progress in {log_path}")


if __name__ == "__main__":
  cli.run(main)

r"""Does checkpointing stall training? Step time of the real loop with and without saves.

  python benchmarks/checkpoint_overhead.py                       # MLP pair, batch 64, CPU
  python benchmarks/checkpoint_overhead.py --model=dcgan --steps=200 --every=20

Runs ``jaxgan.training.train_and_evaluate`` three times on offline Fashion-MNIST with the same
config, each in a fresh workdir:

* ``none``: no checkpoint until the end (the final save is outside the timed window);
* ``async``: a checkpoint every ``--every`` steps, as the library saves them (the arrays
  are copied to host memory, then written by a background thread while training goes on);
* ``blocking``: the same saves, but each waits until it is on disk (what a synchronous
  checkpointer costs).

The time is the training loop's own, from the first logged step to the last (read from
``metrics.jsonl``), so start-up and compilation are excluded.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

import jax

from jaxgan.training import checkpoint as ckpt_lib
from jaxgan.training import config as config_lib
from jaxgan.training import loop


def timed_run(config: dict, blocking: bool) -> float:
  """Seconds per step between the first and the last logged step."""
  original = ckpt_lib.Checkpoints.save

  def blocking_save(self, step, arrays, meta):
    original(self, step, arrays, meta)
    self.wait()

  ckpt_lib.Checkpoints.save = blocking_save if blocking else original
  try:
    with tempfile.TemporaryDirectory() as workdir:
      loop.train_and_evaluate(config, workdir)
      with open(os.path.join(workdir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
      size = sum(os.path.getsize(os.path.join(root, name))
                 for root, _, names in os.walk(os.path.join(workdir, "checkpoints"))
                 for name in names) / max(len(os.listdir(os.path.join(workdir, "checkpoints"))),
                                          1)
  finally:
    ckpt_lib.Checkpoints.save = original
  first, last = records[0], records[-1]
  return (last["time"] - first["time"]) / (last["step"] - first["step"]), size


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--model", default="mlp", choices=config_lib.MODELS)
  parser.add_argument("--dataset", default="fashion_mnist")
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--steps", type=int, default=400)
  parser.add_argument("--every", type=int, default=50, help="steps between checkpoints")
  parser.add_argument("--repeats", type=int, default=2, help="runs of each variant")
  args = parser.parse_args()

  base = dict(dataset=args.dataset, model=args.model, batch_size=args.batch, steps=args.steps,
              log_every=10, sample_every=10**9, progress=False, keep_checkpoints=3)
  variants = {
      "none": (dict(base, checkpoint_every=10**9), False),
      "async": (dict(base, checkpoint_every=args.every), False),
      "blocking": (dict(base, checkpoint_every=args.every), True),
  }
  print(f"{args.model}, batch {args.batch}, {args.steps} steps, checkpoint every {args.every} "
        f"steps; {jax.devices()[0].device_kind} x {jax.device_count()}, jax {jax.__version__}")
  results = {name: [] for name in variants}
  for _ in range(args.repeats):  # interleaved, so drifts in machine speed hit all alike
    for name, (config, blocking) in variants.items():
      results[name].append(timed_run(config, blocking))
  base_ms = min(t for t, _ in results["none"]) * 1e3
  print(f"{'saves':10s} {'ms/step':>9s} {'vs none':>8s}  checkpoint size")
  for name, runs in results.items():
    ms = min(t for t, _ in runs) * 1e3
    size = max(s for _, s in runs)
    print(f"{name:10s} {ms:9.2f} {ms / base_ms - 1:+8.1%}  "
          + (f"{size / 2**20:.1f} MiB" if name != "none" else "(final save only)"))


if __name__ == "__main__":
  main()

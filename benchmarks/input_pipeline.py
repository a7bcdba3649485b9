r"""The input pipeline's time per batch next to the train step's, and whether the step waits.

  python benchmarks/input_pipeline.py                      # offline Fashion-MNIST, batch 256
  python benchmarks/input_pipeline.py --dataset=idx:/path/to/dir --batch=64

Reports the median time of: preparing one host batch (indices for (seed, step), gather,
uint8 -> [-1, 1]); placing it on the device; one jitted DCGAN train step on a batch
already on the device; and one step of the real loop, fed through ``pipeline.Prefetch``. If
the last is no slower than the step alone, the step is not waiting on data.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import optax
from timing import median_seconds

import jaxgan
from jaxgan import models
from jaxgan.data import pipeline, sources


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--dataset", default="fashion_mnist")
  parser.add_argument("--batch", type=int, default=256)
  parser.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
  parser.add_argument("--out", default="")
  args = parser.parse_args()

  source = sources.load(args.dataset, "train")
  it = pipeline.batches(source, args.batch, seed=0)
  host = median_seconds(lambda: next(it), args.steps)
  batch = next(it)[1]
  place = median_seconds(lambda: jax.block_until_ready(jax.device_put(batch)), args.steps)

  G, D = models.DCGANGenerator(image_shape=source.image_shape), models.DCGANDiscriminator()
  tx = optax.adam(2e-4, b1=0.5)
  state_g, state_d = jaxgan.create_states(jax.random.key(0), G, D, tx, tx, latent_dim=100,
                                          image_shape=source.image_shape)
  step = jax.jit(jaxgan.make_train_step(G, D), donate_argnums=(0, 1))
  key = jax.random.key(1)
  on_device = jax.device_put(batch)
  state_g, state_d, m = step(state_g, state_d, on_device, key)  # compile
  jax.block_until_ready(m)

  start = time.perf_counter()
  for _ in range(args.steps):
    state_g, state_d, m = step(state_g, state_d, on_device, key)
  jax.block_until_ready((state_g, m))
  step_only = (time.perf_counter() - start) / args.steps

  batches = pipeline.batches(source, args.batch, seed=0)
  with pipeline.Prefetch(batches, place=jax.device_put) as feed:
    _, b = next(feed)
    state_g, state_d, m = step(state_g, state_d, b, key)
    jax.block_until_ready(m)
    start = time.perf_counter()
    for _ in range(args.steps):
      _, b = next(feed)
      state_g, state_d, m = step(state_g, state_d, b, key)
    jax.block_until_ready((state_g, m))
  fed = (time.perf_counter() - start) / args.steps

  result = {"backend": jax.default_backend(), "device": jax.devices()[0].device_kind,
            "jax": jax.__version__, "dataset": source.description, "batch": args.batch,
            "host_batch_ms": host * 1e3, "device_put_ms": place * 1e3,
            "step_ms": step_only * 1e3, "prefetched_loop_step_ms": fed * 1e3,
            "waiting_on_data_ms": max(0.0, fed - step_only) * 1e3}
  for k, v in result.items():
    print(f"{k:26s} {v:.3f}" if isinstance(v, float) else f"{k:26s} {v}")
  if args.out:
    with open(args.out, "w") as f:
      json.dump(result, f, indent=1)


if __name__ == "__main__":
  main()

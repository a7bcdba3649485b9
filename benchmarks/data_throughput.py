r"""Images per second the input pipeline delivers from a user's files, beside what the train
step consumes: is the pipeline ever the bottleneck?

  python benchmarks/data_throughput.py                 # 28x28 gray and 64x64 RGB, CPU
  python benchmarks/data_throughput.py --images=2048 --out=data.json

Makes, from the offline Fashion-MNIST's first ``--images`` images, a PNG folder, a JPEG
folder and a pack at 28x28 (gray, as they are) and at 64x64 (resized, RGB), then times
``pipeline.batches`` (batch 64, the run's order) reading each with 0 workers (in this
process), 1 and 2 (Grain worker processes): images per second after the first batch, the
median of ``--repeats`` passes of ``--batches`` batches. Beside them, the images per second
the CPU recipes' steps consume: the DCGAN (conditional, width 0.5) at 28x28 and the small
StyleGAN2 (width 0.5, lazy R1 every 16 steps, counted at its share) at 64x64.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

import jax
import numpy as np
from PIL import Image

from jaxgan.data import pack, pipeline, sources

BATCH = 64


def write_sets(root: str, count: int) -> dict[str, str]:
  """The test sets: ``{"png28": path, ...}``."""
  fashion = sources.load_idx(sources.DEBIAN_FASHION_MNIST, "train")
  out = {}
  for size in (28, 64):
    for fmt in ("png", "jpg"):
      folder = os.path.join(root, f"{fmt}{size}")
      for i in range(count):
        label = int(fashion.labels[i])
        os.makedirs(os.path.join(folder, str(label)), exist_ok=True)
        image = Image.fromarray(fashion.images[i, ..., 0])
        if size != 28:
          image = image.resize((size, size), Image.Resampling.LANCZOS).convert("RGB")
        image.save(os.path.join(folder, str(label), f"{i:05d}.{fmt}"), quality=90)
      out[f"{fmt}{size}"] = folder
    out[f"pack{size}"] = pack.pack(sources.load(out[f"png{size}"]),
                                   os.path.join(root, f"set{size}.pack"), progress=False,
                                   log=lambda line: None)
  return out


def delivered(path: str, workers: int, batches: int, repeats: int) -> float:
  """Images per second from ``pipeline.batches`` after the first batch (the workers' start)."""
  source = sources.load(path)
  stream = pipeline.batches(source, BATCH, seed=0, workers=workers)
  next(stream)
  rates = []
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(batches):
      next(stream)
    rates.append(batches * BATCH / (time.perf_counter() - start))
  if hasattr(stream, "close"):
    stream.close()
  return statistics.median(rates)


def consumed(model: str, size: int, steps: int) -> float:
  """Images per second the CPU recipe's step of ``model`` takes at ``size``, on one device
  (lazy R1 counted at its share: one step in ``r1_every``)."""
  sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "experiments"))
  from configs import mnist as mnist_configs

  from jaxgan.state import create_states
  from jaxgan.training.config import complete_config
  from jaxgan.training.tasks import noise as noise_tasks

  config = complete_config(mnist_configs.get_config(f"{model},cpu"))
  channels = 1 if size == 28 else 3
  num_classes = 10 if config.conditional else 0
  G, D = noise_tasks.make_models(config, (size, size, channels), num_classes)
  step = noise_tasks.make_step(config, G, D, axis_name=None)
  tx_g, tx_d = noise_tasks.make_optimizers(config)
  sg, sd = create_states(jax.random.key(0), G, D, tx_g, tx_d, latent_dim=config.latent_dim,
                         image_shape=(size, size, channels), num_classes=num_classes)
  sg, sd = step.prepare_states(sg, sd)
  batch = {"image": np.zeros((BATCH, size, size, channels), np.float32),
           "label": np.arange(BATCH, dtype=np.int32) % 10}
  every = step.r1_every if step.lazy_r1 else 1
  times = []
  for pattern_step in sorted({0, 1} if every > 1 else {0}):
    fn = jax.jit(step.at(pattern_step) if every > 1 else step)
    out = fn(sg, sd, batch, jax.random.key(1))
    jax.block_until_ready(out)
    start = time.perf_counter()
    for _ in range(steps):
      out = fn(out[0], out[1], batch, jax.random.key(1))
    jax.block_until_ready(out)
    times.append((time.perf_counter() - start) / steps)
  mean = times[0] if every == 1 else (times[0] + (every - 1) * times[1]) / every
  return BATCH / mean


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--images", type=int, default=2048)
  parser.add_argument("--batches", type=int, default=20)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--steps", type=int, default=10, help="timed steps per consumer")
  parser.add_argument("--out", default="")
  args = parser.parse_args()
  result = {"machine": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "jax": jax.__version__, "batch": BATCH, "images": args.images, "delivered": {},
            "consumed": {}}
  with tempfile.TemporaryDirectory() as root:
    sets = write_sets(root, args.images)
    for name, path in sets.items():
      for workers in (0, 1, 2):
        rate = delivered(path, workers, args.batches, args.repeats)
        result["delivered"][f"{name} workers={workers}"] = rate
        print(f"{name:7s} workers={workers}: {rate:9,.0f} images/s", flush=True)
  for model, size in (("dcgan", 28), ("stylegan2", 64)):
    rate = consumed(model, size, args.steps)
    result["consumed"][f"{model} {size}x{size}"] = rate
    print(f"{model} {size}x{size} step consumes {rate:9,.0f} images/s", flush=True)
  if args.out:
    with open(args.out, "w") as f:
      json.dump(result, f, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())

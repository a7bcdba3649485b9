r"""Steps per second: one step per call vs K per call, per composition.

  python benchmarks/parallel_steps.py                       # every local device, DCGAN
  XLA_FLAGS=--xla_force_host_platform_device_count=8 python benchmarks/parallel_steps.py
  python benchmarks/parallel_steps.py --batch=256 --k=20 --out=results.json   # on a GPU

Compositions: ``jit`` (the step on one device, no axis), ``pmap`` and ``shard_map`` (over
every local device). Modes: ``1/call`` (a batch already on the device per call),
``K/call`` (``fuse_steps`` over a stack of K batches already on the device) and
``K/call on-device data`` (``fuse_steps_on_device``: each step gathers its batch from a
uint8 dataset held on the device). Host-to-device transfer of batches is left out of the
first two on purpose: the data benchmark measures the input pipeline.
Each figure is the median of ``--repeats`` timings of ``--calls`` calls after a warm-up
call (compilation excluded), closed by ``block_until_ready``. Every composition compiles
with ``jaxgan.cpu.compiler_options()``, as the training loop does. ``--image=32,32,3``
times the CIFAR-10-sized pair.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import jax
import numpy as np
import optax

import jaxgan
from jaxgan import models, parallel


def build(axis, args):
  G = models.DCGANGenerator(image_shape=args.image, width=args.width)
  D = models.DCGANDiscriminator(width=args.width)
  tx = optax.adam(2e-4, b1=0.5)
  state_g, state_d = jaxgan.create_states(jax.random.key(0), G, D, tx, tx, latent_dim=100,
                                          image_shape=args.image)
  return state_g, state_d, jaxgan.make_train_step(G, D, args.loss, axis_name=axis)


def time_calls(fn, state_g, state_d, batch, key, calls, repeats):
  state_g, state_d, metrics = fn(state_g, state_d, batch, key)  # compile + warm up
  jax.block_until_ready(metrics)
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(calls):
      state_g, state_d, metrics = fn(state_g, state_d, batch, key)
    jax.block_until_ready((state_g, state_d, metrics))
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batch", type=int, default=64, help="global batch size")
  parser.add_argument("--k", type=int, default=10, help="steps per call when fused")
  parser.add_argument("--calls", type=int, default=5, help="calls per timing")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--width", type=float, default=1.0, help="DCGAN width multiplier")
  parser.add_argument("--loss", default="non_saturating")
  parser.add_argument("--image", default="28,28,1",
                      help="H,W,C of the DCGAN pair's images (32,32,3: the CIFAR-10 size)")
  parser.add_argument("--dataset_size", type=int, default=60_000)
  parser.add_argument("--compositions", default="jit,pmap,shard_map")
  parser.add_argument("--out", default="", help="write the results as JSON here")
  args = parser.parse_args()
  args.image = tuple(int(n) for n in args.image.split(","))
  options = jaxgan.cpu.compiler_options()  # as the training loop compiles its step

  devices = jax.local_devices()
  n = len(devices)
  key, data_key = jax.random.key(1), jax.random.key(2)
  rng = np.random.default_rng(0)
  host = rng.uniform(-1, 1, (args.k, args.batch, *args.image)).astype(np.float32)
  dataset = {"image": rng.integers(0, 256, (args.dataset_size, *args.image), dtype=np.uint8)}
  mesh = parallel.data_mesh()

  rows = []
  for comp in args.compositions.split(","):
    axis = None if comp == "jit" else parallel.AXIS
    if comp != "jit" and args.batch % n:
      print(f"skip {comp}: batch {args.batch} does not divide over {n} devices")
      continue
    for mode in ("1/call", "K/call", "K/call on-device data"):
      state_g, state_d, step = build(axis, args)
      k = 1 if mode == "1/call" else args.k
      if mode == "1/call":
        fn_dev, batch, batch_axis = step, {"image": host[0]}, 0
      elif mode == "K/call":
        fn_dev, batch, batch_axis = parallel.fuse_steps(step), {"image": host}, 1
      else:
        fn_dev = parallel.fuse_steps_on_device(step, args.k, args.batch, data_key)
        batch, batch_axis = dataset, None
      on_device = batch_axis is None
      if comp == "jit":
        fn = jax.jit(fn_dev, donate_argnums=(0, 1), compiler_options=options)
        batch = jax.device_put(batch)
      elif comp == "pmap":
        fn = parallel.pmap_step(fn_dev, data_on_device=on_device, compiler_options=options)
        if not on_device:
          batch = parallel.split_batch(batch, batch_axis=batch_axis)
      else:
        fn = parallel.shard_map_step(fn_dev, mesh, data_on_device=on_device,
                                     batch_axis=batch_axis or 0, compiler_options=options)
        batch = (parallel.replicate(batch, mesh) if on_device
                 else parallel.shard_batch(batch, mesh, batch_axis))
      seconds = time_calls(fn, state_g, state_d, batch, key, args.calls, args.repeats)
      steps = args.calls * k
      rows.append({"composition": comp, "mode": mode, "k": k, "devices": 1 if comp == "jit" else n,
                   "batch": args.batch, "steps_per_s": steps / seconds,
                   "images_per_s": steps * args.batch / seconds})
      print(f"{comp:10s} {mode:22s} k={k:3d}  {steps / seconds:9.2f} steps/s  "
            f"{steps * args.batch / seconds:11.0f} img/s", flush=True)

  info = {"backend": jax.default_backend(), "device_kind": devices[0].device_kind,
          "local_devices": n, "jax": jax.__version__, "python": platform.python_version(),
          "args": vars(args), "rows": rows}
  if args.out:
    with open(args.out, "w") as f:
      json.dump(info, f, indent=1)
  print(json.dumps({k: v for k, v in info.items() if k != "rows"}))


if __name__ == "__main__":
  main()

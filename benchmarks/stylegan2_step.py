r"""Step time of the StyleGAN2 presets, and what lazy regularisation under ``lax.cond`` costs.

  python benchmarks/stylegan2_step.py                          # small and cifar, batch 64
  python benchmarks/stylegan2_step.py --presets=small --batch=32

One jitted ``make_train_step`` call of the preset (``stylegan2_cifar``: conditional,
32x32x3, R1 gamma 0.01 lazily every 16 steps, ADA; ``stylegan2_small``: 28x28x1, R1 every
16, DiffAugment) on random images, compiled with ``jaxgan.cpu.compiler_options()``, in
three variants:

* ``cond, plain step``: the one compiled step at a step that does not regularise
  (``state_g.step % 16 != 0``): what 15 steps in 16 cost;
* ``cond, R1 step``: the same compiled step at a step that does (the extra D update);
* ``static, R1 step``: the step compiled for an R1 step (``lazy=(True, False)``, as
  ``TrainStep.at`` fixes it; no conditional): the two-compiled-functions alternative on
  its 1 step in 16;
* ``static, plain step``: compiled for a plain step (``lazy=(False, False)``): that
  alternative on the other 15.

The figure is the median time per call over ``--repeats`` calls from the same input
states after one warm-up, with the images per second it gives, and the compile time
of each variant. Prints the machine and versions first, as JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp

import jaxgan
from jaxgan.models import stylegan2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import median_seconds  # noqa: E402

PRESETS = {
    "cifar": dict(models=lambda width, shape: stylegan2.stylegan2_cifar(num_classes=10),
                  latent=stylegan2.CIFAR_LATENT_DIM, shape=(32, 32, 3), classes=10,
                  augment="ada", r1=0.01),
    "small": dict(models=lambda width, shape: stylegan2.stylegan2_small(shape, width=width),
                  latent=stylegan2.SMALL_LATENT_DIM, shape=(28, 28, 1), classes=0,
                  augment="diffaugment", r1=0.01),
}


def _caller(fn, sg, sd, data, key):
  """A call of the compiled step from fixed input states that waits for its result."""
  return lambda: jax.block_until_ready(fn(sg, sd, data, key)[0].params)


def measure(preset: str, batch: int, repeats: int, width: float = 1.0,
            only: str | None = None, size: int = 0) -> list[tuple[str, float, float]]:
  spec = dict(PRESETS[preset])
  if size and preset == "small":
    spec["shape"] = (size, size, 1)
  G, D = spec["models"](width, spec["shape"])
  tx = jaxgan.lazy_adam(0.0025, 0.0, 0.99, 16)
  state_g, state_d = jaxgan.create_states(jax.random.key(0), G, D, tx, tx,
                                          latent_dim=spec["latent"], image_shape=spec["shape"],
                                          num_classes=spec["classes"])
  data = {"image": jax.random.uniform(jax.random.key(1), (batch, *spec["shape"]), minval=-1,
                                      maxval=1)}
  if spec["classes"]:
    data["label"] = jnp.arange(batch, dtype=jnp.int32) % spec["classes"]
  key = jax.random.key(2)
  rows = []
  variants = (("cond, plain step", None, 1), ("cond, R1 step", None, 16),
              ("static, R1 step", (True, False), 16), ("static, plain step", (False, False), 1))
  raw = jaxgan.make_train_step(G, D, augment=spec["augment"], r1_weight=spec["r1"],
                               r1_every=16)
  compiled = {}
  for name, lazy, at_step in variants:
    if only is not None and not name.startswith(only):
      continue
    sg, sd = raw.prepare_states(state_g, state_d)
    sg = sg.replace(step=jnp.int32(at_step))
    compile_s = 0.0
    if lazy not in compiled:
      start = time.perf_counter()
      fn = dataclasses.replace(raw, lazy=lazy)
      compiled[lazy] = jax.jit(fn, compiler_options=jaxgan.cpu.compiler_options()).lower(
          sg, sd, data, key).compile()
      compile_s = time.perf_counter() - start
    signature = lazy
    seconds = median_seconds(_caller(compiled[signature], sg, sd, data, key), repeats,
                             warmup=1, sync=None)
    rows.append((name, seconds, compile_s))
  return rows


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--presets", default="small,cifar")
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--width", type=float, default=1.0, help="small preset's width")
  parser.add_argument("--size", type=int, default=0, help="small preset's image side "
                      "(0: 28, Fashion-MNIST's; 8 compiles in seconds, for the smoke test)")
  parser.add_argument("--only", default=None, help="the variants starting with this (cond, "
                      "static)")
  args = parser.parse_args(argv)
  device = jax.devices()[0]
  print(json.dumps({"machine": platform.processor() or platform.machine(),
                    "device": device.device_kind, "cpus": os.cpu_count(),
                    "jax": jax.__version__, "batch": args.batch}))
  print(f"{'preset':8s} {'variant':18s} {'s/step':>9s} {'images/s':>9s} {'compile_s':>9s}")
  for preset in args.presets.split(","):
    for name, seconds, compile_s in measure(preset, args.batch, args.repeats, args.width,
                                            args.only, args.size):
      print(f"{preset:8s} {name.replace(' ', '_'):18s} {seconds:9.4f} "
            f"{args.batch / seconds:9.1f} {compile_s:9.1f}", flush=True)


if __name__ == "__main__":
  main()

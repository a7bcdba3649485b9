r"""Images per second of the CycleGAN step: the experiment's 28x28 pair and the reference's
256x256 ResNet-9 pair at its batch of 1.

  python benchmarks/cyclegan_step.py                         # both presets
  python benchmarks/cyclegan_step.py --presets=mnist --batch=8

One jitted ``jaxgan.steps.cyclegan.make_cyclegan_step`` call (both generators, then both
discriminators through image pools of 50) on random images, compiled with
``jaxgan.cpu.compiler_options()``; the figure is the median time per call over
``--repeats`` calls after one warm-up (compilation). Images per second counts the pairs
of one call: ``batch`` images of each domain. Prints the machine and versions first, as
JSON, then one row per preset.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import jax
import optax

import jaxgan
from jaxgan.models import PatchDiscriminator, ResNetTranslator
from jaxgan.steps import cyclegan as cyclegan_step

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import median_seconds  # noqa: E402

# name: (image shape, generator (ngf, blocks), discriminator (ndf, layers), default batch)
PRESETS = {"mnist": ((28, 28, 1), (32, 6), (32, 2), 8),  # experiments/configs/cyclegan.py
           "reference": ((256, 256, 3), (64, 9), (64, 3), 1),  # resnet_9blocks, basic D
           "tiny": ((16, 16, 1), (4, 1), (4, 1), 2)}  # the smoke test's


def step_seconds(preset: str, batch: int, repeats: int) -> tuple[float, float]:
  """(seconds per call, seconds to compile) of the preset's step."""
  shape, (ngf, blocks), (ndf, layers), _ = PRESETS[preset]
  G = lambda: ResNetTranslator(shape[-1], ngf, blocks)  # noqa: E731
  D = lambda: PatchDiscriminator(ndf, layers)  # noqa: E731
  tx = optax.adam(2e-4, b1=0.5)
  step = cyclegan_step.make_cyclegan_step(G(), G(), D(), D())
  states = list(step.prepare_states(*cyclegan_step.create_cyclegan_states(
      jax.random.key(0), G(), G(), D(), D(), tx, tx, shape_a=shape, shape_b=shape)))
  data = {"a": jax.random.uniform(jax.random.key(1), (batch, *shape), minval=-1, maxval=1),
          "b": jax.random.uniform(jax.random.key(2), (batch, *shape), minval=-1, maxval=1)}
  key = jax.random.key(3)
  start = time.perf_counter()
  compiled = jax.jit(step, donate_argnums=(0, 1)).lower(
      *states, data, key).compile(jaxgan.cpu.compiler_options() or None)
  compile_s = time.perf_counter() - start

  def call():
    states[0], states[1], metrics = compiled(states[0], states[1], data, key)
    return metrics

  seconds = median_seconds(call, repeats, warmup=1,
                           sync=lambda: jax.block_until_ready(states[0]["ab"].params))
  return seconds, compile_s


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--presets", default="mnist,reference")
  parser.add_argument("--batch", type=int, default=0, help="0: the preset's own")
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args(argv)
  device = jax.devices()[0]
  print(json.dumps({"machine": platform.processor() or platform.machine(),
                    "device": device.device_kind, "cpus": os.cpu_count(),
                    "jax": jax.__version__}))
  print(f"{'preset':10s} {'shape':>12s} {'batch':>5s} {'s/step':>9s} {'images/s':>9s} "
        f"{'compile_s':>9s}")
  for preset in args.presets.split(","):
    shape, *_, default_batch = PRESETS[preset]
    batch = args.batch or default_batch
    seconds, compile_s = step_seconds(preset, batch, args.repeats)
    print(f"{preset:10s} {'x'.join(map(str, shape)):>12s} {batch:5d} {seconds:9.4f} "
          f"{batch / seconds:9.3g} {compile_s:9.1f}", flush=True)


if __name__ == "__main__":
  main()

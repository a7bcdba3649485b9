r"""Steps per second of the experiments' recipes (experiments/configs/mnist.py), R3GAN's
beside StyleGAN2's and the DCGAN's.

  python benchmarks/recipe_steps.py                          # this machine's variant
  python benchmarks/recipe_steps.py --models=r3gan,stylegan2 --variant=full --batch=64

Each model's recipe as ``python experiments/mnist.py --config.model=MODEL`` builds it
(networks at 28x28, loss, penalties, schedules, augmentation), its step jitted on one
device with ``jaxgan.cpu.compiler_options()``, on random images with labels; the figure
is the median time per step over ``--repeats`` steps after one warm-up (the compilation,
also printed). Prints the machine and versions first, as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import runpy
import sys
import time

import jax
import jax.numpy as jnp

import jaxgan
from jaxgan.training import config as config_lib
from jaxgan.training.tasks import noise

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import median_seconds  # noqa: E402

SHAPE = (28, 28, 1)


def step_seconds(model: str, variant: str, batch: int, repeats: int) -> tuple[float, float]:
  get_config = runpy.run_path(os.path.join(ROOT, "experiments", "configs", "mnist.py"))[
      "get_config"]
  config = get_config(f"{model},{variant}")
  config.batch_size = batch
  config = config_lib.complete_config(config)
  classes = 10 if config.conditional else 0
  G, D = noise.make_models(config, SHAPE, classes)
  step = noise.make_step(config, G, D, axis_name=None)
  tx_g, tx_d = noise.make_optimizers(config)
  state_g, state_d = jaxgan.create_states(jax.random.key(0), G, D, tx_g, tx_d,
                                          latent_dim=config.latent_dim, image_shape=SHAPE,
                                          num_classes=classes)
  states = list(step.prepare_states(state_g, state_d))
  fn = jax.jit(step, donate_argnums=(0, 1), compiler_options=jaxgan.cpu.compiler_options())
  data = {"image": jax.random.uniform(jax.random.key(1), (batch, *SHAPE), minval=-1, maxval=1),
          "label": jnp.arange(batch, dtype=jnp.int32) % 10}
  key = jax.random.key(2)

  def call():
    states[0], states[1], metrics = fn(states[0], states[1], data, key)
    return metrics

  start = time.perf_counter()
  jax.block_until_ready(call())
  compile_s = time.perf_counter() - start
  return median_seconds(call, repeats, sync=lambda: jax.block_until_ready(states[0].params)
                        ), compile_s


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--models", default="r3gan,stylegan2,dcgan")
  parser.add_argument("--variant", default=config_lib.for_this_machine(None))
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--repeats", type=int, default=10)
  args = parser.parse_args(argv)
  device = jax.devices()[0]
  print(json.dumps({"machine": platform.processor() or platform.machine(),
                    "device": device.device_kind, "cpus": os.cpu_count(),
                    "jax": jax.__version__, "batch": args.batch, "variant": args.variant}))
  print(f"{'model':10s} {'s/step':>9s} {'steps/s':>9s} {'compile_s':>9s}")
  for model in args.models.split(","):
    seconds, compile_s = step_seconds(model, args.variant, args.batch, args.repeats)
    print(f"{model:10s} {seconds:9.4f} {1 / seconds:9.2f} {compile_s:9.1f}", flush=True)


if __name__ == "__main__":
  main()

r"""Step time of the SNGAN-32 and BigGAN-32 presets (CIFAR-10 size, conditional).

  python benchmarks/resnet_step.py                     # SNGAN-32, batch 64
  python benchmarks/resnet_step.py --presets=sngan32,biggan32 --n_critic=1,5

One jitted ``make_train_step`` call (``n_critic`` D updates, then one G update) of the
preset, hinge loss, Adam, on random 32x32x3 images with labels, compiled with
``jaxgan.cpu.compiler_options()``; the figure is the median time per call over
``--repeats`` calls after one warm-up (compilation), with the images per second it gives
(G updates times the batch). Prints the machine and versions first, as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys

import jax
import jax.numpy as jnp
import optax

import jaxgan

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import median_seconds  # noqa: E402

PRESETS = {"sngan32": (jaxgan.models.sngan32, jaxgan.models.resnet.SNGAN32_LATENT_DIM),
           "biggan32": (jaxgan.models.biggan32, jaxgan.models.resnet.BIGGAN32_LATENT_DIM)}


def step_seconds(preset: str, batch: int, n_critic: int, repeats: int) -> float:
  make, latent = PRESETS[preset]
  G, D = make(10)
  tx = optax.adam(2e-4, b1=0.0, b2=0.9)
  state_g, state_d = jaxgan.create_states(jax.random.key(0), G, D, tx, tx, latent_dim=latent,
                                          image_shape=(32, 32, 3), num_classes=10)
  step = jax.jit(jaxgan.make_train_step(G, D, "hinge", n_critic=n_critic),
                 donate_argnums=(0, 1), compiler_options=jaxgan.cpu.compiler_options())
  data = {"image": jax.random.uniform(jax.random.key(1), (batch, 32, 32, 3), minval=-1,
                                      maxval=1),
          "label": jnp.arange(batch, dtype=jnp.int32) % 10}
  key = jax.random.key(2)
  states = [state_g, state_d]

  def call():
    states[0], states[1], metrics = step(states[0], states[1], data, key)
    return metrics

  return median_seconds(call, repeats, warmup=1,
                        sync=lambda: jax.block_until_ready(states[0].params))


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--presets", default="sngan32")
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--n_critic", default="1,5")
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args(argv)
  device = jax.devices()[0]
  print(json.dumps({"machine": platform.processor() or platform.machine(),
                    "device": device.device_kind, "cpus": os.cpu_count(),
                    "jax": jax.__version__, "batch": args.batch}))
  print(f"{'preset':10s} {'n_critic':>8s} {'s/step':>9s} {'images/s':>9s}")
  for preset in args.presets.split(","):
    for n_critic in (int(n) for n in args.n_critic.split(",")):
      seconds = step_seconds(preset, args.batch, n_critic, args.repeats)
      print(f"{preset:10s} {n_critic:8d} {seconds:9.4f} {args.batch / seconds:9.1f}",
            flush=True)


if __name__ == "__main__":
  main()

"""Compile times of a tiny StyleGAN2 pair's init and train step, by option (CPU).

  python benchmarks/stylegan2_compile.py [--prng=threefry2x32|rbg]

The tests' pair (channels at most 8, 28x28): what the suite's StyleGAN2 tests pay per
compilation. Prints one line per program: lowering seconds, StableHLO lines, compile
seconds. BUILD_NOTES.md, "StyleGAN2 and data-efficient augmentation", has the figures.
"""

import argparse
import time

import jax
import jax.numpy as jnp
import optax

import jaxgan
from jaxgan import models

SHAPE = (28, 28, 1)
OPTIONS = (("plain", {}), ("ada", {"augment": "ada"}),
           ("diffaugment", {"augment": "diffaugment"}),
           ("r1", {"r1_weight": 0.1}), ("path_length", {"pl_weight": 1.0, "pl_every": 1}),
           ("mixing", {"style_mixing": 0.9}))


def timed(fn, *args):
  start = time.perf_counter()
  lowered = jax.jit(fn).lower(*args)
  lowered_s = time.perf_counter() - start
  lines = lowered.as_text().count("\n")
  start = time.perf_counter()
  lowered.compile()
  return lowered_s, lines, time.perf_counter() - start


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--prng", default="threefry2x32", help="the init key's PRNG impl")
  args = parser.parse_args(argv)
  G = models.StyleGAN2Generator(SHAPE, w_dim=8, channel_base=128, channel_max=8)
  D = models.StyleGAN2Discriminator(channel_base=128, channel_max=8)
  key = jax.random.key(0, impl=args.prng)
  print(f"{'program':18s} {'lower_s':>8s} {'lines':>7s} {'compile_s':>9s}")
  for name, fn, x in (("G.init", G.init, jnp.zeros((2, 8))),
                      ("D.init", D.init, jnp.zeros((2, *SHAPE)))):
    row = timed(lambda k, x, fn=fn: fn(k, x, train=False), key, x)
    label = f"{name} ({args.prng})"
    print(f"{label:18s} {row[0]:8.1f} {row[1]:7d} {row[2]:9.1f}", flush=True)
  tx = optax.adam(1e-3, b1=0.0, b2=0.99)
  sg, sd = jaxgan.create_states(jax.random.key(0), G, D, tx, tx, latent_dim=8, image_shape=SHAPE)
  batch = {"image": jnp.zeros((8, *SHAPE))}
  for name, kw in OPTIONS:
    step = jaxgan.make_train_step(G, D, **kw)
    row = timed(step, *step.prepare_states(sg, sd), batch, jax.random.key(1))
    print(f"{'step ' + name:18s} {row[0]:8.1f} {row[1]:7d} {row[2]:9.1f}", flush=True)


if __name__ == "__main__":
  main()

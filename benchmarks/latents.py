r"""The cost of one step's per-example latent vectors, by the way they are drawn.

  python benchmarks/latents.py                     # batch 64, latent 100, the MLP GAN's
  python benchmarks/latents.py --batch=128 --dim=128

Each variant draws ``--batch`` latent vectors of ``--dim`` inside a ``lax.scan`` of
``--k`` steps (a fresh key per step, the way ``fuse_steps_on_device`` runs the step),
compiled once; the figure is the median time per step over ``--repeats`` calls, the
variants timed in alternating rounds:

* ``jaxgan``: ``jaxgan.sample_latent`` (``jaxgan.rng``: one written-out Threefry hash per
  pair of values, from the key and the example's global index);
* ``fold_in``: the obvious scheme, ``vmap(fold_in)(key, index)`` then
  ``jax.random.normal`` per example (two hashes per value, jaxlib's own lowering, which on
  the CPU is a rolled loop);
* ``normal``: one ``jax.random.normal(key, (batch, dim))`` (not per example: the figure of
  a draw that would depend on the device count).
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxgan


def fold_in_latents(key, num, dim, offset=0):
  index = jnp.asarray(offset, jnp.uint32) + jnp.arange(num, dtype=jnp.uint32)
  keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, index)
  return jax.vmap(lambda k: jax.random.normal(k, (dim,)))(keys)


VARIANTS = {
    "jaxgan": jaxgan.sample_latent,
    "fold_in": fold_in_latents,
    "normal": lambda key, num, dim: jax.random.normal(key, (num, dim)),
}


def compiled(draw, args):
  def run(key):
    def body(total, t):
      return total + jnp.sum(draw(jax.random.fold_in(key, t), args.batch, args.dim)), None
    return jax.lax.scan(body, jnp.float32(0), jnp.arange(args.k), unroll=4)[0]
  return jax.jit(run)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--dim", type=int, default=100)
  parser.add_argument("--k", type=int, default=100, help="steps per call")
  parser.add_argument("--repeats", type=int, default=15)
  parser.add_argument("--variants", default=",".join(VARIANTS))
  args = parser.parse_args()
  names = args.variants.split(",")
  fns = {n: compiled(VARIANTS[n], args) for n in names}
  key = jax.random.key(0)
  for fn in fns.values():
    fn(key).block_until_ready()
  times = {n: [] for n in names}
  for _ in range(args.repeats):
    for n, fn in fns.items():
      start = time.perf_counter()
      fn(key).block_until_ready()
      times[n].append((time.perf_counter() - start) / args.k)
  print(json.dumps({"date": time.strftime("%Y-%m-%d"), "machine": platform.machine(),
                    "jax": jax.__version__, "backend": jax.default_backend(),
                    "batch": args.batch, "dim": args.dim, "k": args.k}))
  base = float(np.median(times[names[0]]))
  print(f"{'variant':10s} {'us/step':>9s} {'vs ' + names[0]:>10s}")
  for n in names:
    t = float(np.median(times[n]))
    print(f"{n:10s} {t * 1e6:9.1f} {t / base:9.2f}x")


if __name__ == "__main__":
  main()

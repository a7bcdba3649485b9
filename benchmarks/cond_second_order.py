r"""What ``lax.cond`` costs XLA:CPU for first and second derivatives of a discriminator.

  python benchmarks/cond_second_order.py

The small StyleGAN2 discriminator (``jaxgan.models.stylegan2_small``) on a batch of 64
28x28 images: its forward pass, its parameter gradient, and the parameter gradient of R1
(``sum |d D(x) / d x|^2``, a second derivative), each compiled alone and inside a
``lax.cond`` branch that is taken; the median of 3 calls after a warm-up. The reason the
experiment's loop runs lazy regularisation as separate compiled steps on a CPU
(BUILD_NOTES.md, "Lazy regularisation on a CPU").
"""

from __future__ import annotations

import json
import os
import platform
import sys

import jax
import jax.numpy as jnp

import jaxgan
from jaxgan.models import stylegan2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import median_seconds  # noqa: E402


def main() -> None:
  _, D = stylegan2.stylegan2_small()
  x = jax.random.uniform(jax.random.key(1), (64, 28, 28, 1), minval=-1, maxval=1)
  params = D.init(jax.random.key(0), x, train=False)
  options = jaxgan.cpu.compiler_options()

  def forward(p):
    return jnp.sum(D.apply(p, x, train=False))

  def gradient(p):
    return jax.grad(forward)(p)

  def r1_gradient(p):
    def penalty(p):
      g = jax.grad(lambda x: jnp.sum(D.apply(p, x, train=False)))(x)
      return jnp.sum(g ** 2)
    return jax.grad(penalty)(p)

  def in_cond(f):
    def g(p):
      shapes = jax.eval_shape(f, p)
      zeros = lambda p: jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)  # noqa
      taken = jnp.sum(p["params"]["b4_out"]["bias"]) < 1e9  # true, but not to the compiler
      return jax.lax.cond(taken, f, zeros, p)
    return g

  print(json.dumps({"machine": platform.processor() or platform.machine(),
                    "device": jax.devices()[0].device_kind, "cpus": os.cpu_count(),
                    "jax": jax.__version__, "batch": 64}))
  print(f"{'computation':14s} {'alone_s':>8s} {'in_cond_s':>9s}")
  for name, f in (("forward", forward), ("gradient", gradient), ("r1_gradient", r1_gradient)):
    times = []
    for fn in (f, in_cond(f)):
      compiled = jax.jit(fn, compiler_options=options).lower(params).compile()
      times.append(median_seconds(lambda c=compiled: jax.block_until_ready(c(params)), 3,
                                  warmup=1))
    print(f"{name:14s} {times[0]:8.3f} {times[1]:9.3f}", flush=True)


if __name__ == "__main__":
  main()

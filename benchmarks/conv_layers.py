r"""GFLOP/s of the DCGAN's convolutions alone: XLA (through JAX) against PyTorch.

  python benchmarks/conv_layers.py [--batch=64] [--conv_kernels=jaxlib]
  XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=dot,eltwise,reduce \
      python benchmarks/conv_layers.py      # an XLA:CPU option, for comparison

The layers are the tutorial DCGAN's at width 1, NHWC in JAX and NCHW in PyTorch (each
framework's native layout): the generator's 5x5 stride-1 convolution at 7x7, the 3x3
convolution the sub-pixel generator runs in place of the first stride-2 transposed one,
and the discriminator's two 5x5 stride-2 convolutions. Each figure is
``2 * output pixels * k * k * in * out / median time`` (every tap, padding included: the
same count for both frameworks) for the forward pass, and ``3x`` that work over the time
of forward plus backward (input and weight gradients). This is what separates the
frameworks' step times on a CPU: the same convolution, different kernels.

The XLA columns compile with ``jaxgan.cpu.compiler_options(--conv_kernels)``: ``xla`` (the
default, what jaxgan's training loop uses) or ``jaxlib`` (this jaxlib's own choice).

The last two rows are the 32x32 (CIFAR-10) pair's layers whose kernel outsizes the map
(G's input, D's output). XLA swaps such a convolution's operands and runs it far slower;
the models use ``jaxgan.models.layers.conv_general_dilated``, which avoids that, and so
does this benchmark unless ``--plain_lax`` times ``jax.lax.conv_general_dilated``.

``--in_loop`` times each computation inside a 2-iteration ``lax.fori_loop`` (per
iteration), as K steps per call run it. XLA:CPU runs the gradient convolutions autodiff
makes 2-170x slower there (``--plain_lax --in_loop``); jaxgan's ``conv_general_dilated``
writes them in the forms it runs fast anywhere.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
from timing import median_seconds

import jaxgan

# name, spatial size, in channels, out channels, kernel, stride
LAYERS = (
    ("G 5x5 s1 256->128 @7x7", 7, 256, 128, 5, 1),
    ("G sub-pixel 3x3 128->4*64 @7x7", 7, 128, 256, 3, 1),
    ("D 5x5 s2 64->128 @14x14", 14, 64, 128, 5, 2),
    ("D 5x5 s2 1->64 @28x28", 28, 1, 64, 5, 2),
    # The 32x32 (CIFAR-10) pair: a kernel larger than the map (see --plain_lax).
    ("G32 5x5 s1 512->256 @4x4", 4, 512, 256, 5, 1),
    ("D32 5x5 s2 128->256 @8x8", 8, 128, 256, 5, 2),
)


def jax_seconds(fn, args, repeats: int) -> float:
  return median_seconds(lambda: jax.block_until_ready(fn(*args)), repeats, warmup=1)


def in_loop(fn, iterations: int = 2):
  """``fn(x, w)`` run ``iterations`` times in a ``fori_loop`` on scaled inputs, summed."""
  def looped(x, w):
    zeros = jax.tree.map(jnp.zeros_like, jax.eval_shape(fn, x, w))
    return jax.lax.fori_loop(
        0, iterations, lambda i, acc: jax.tree.map(jnp.add, acc, fn(x * (1.0 + i), w)), zeros)

  return looped




def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--repeats", type=int, default=7)
  parser.add_argument("--conv_kernels", default="xla", choices=jaxgan.cpu.CONV_KERNELS)
  parser.add_argument("--plain_lax", action="store_true",
                      help="time jax.lax.conv_general_dilated instead of jaxgan's "
                      "(jaxgan.models.layers.conv_general_dilated, what the models run)")
  parser.add_argument("--in_loop", action="store_true",
                      help="time inside a 2-iteration lax.fori_loop (JAX columns)")
  args = parser.parse_args()
  options = jaxgan.cpu.compiler_options(args.conv_kernels)
  conv_fn = (jax.lax.conv_general_dilated if args.plain_lax
             else jaxgan.models.layers.conv_general_dilated)
  print(f"XLA compiler options: {options}; convolution: {conv_fn.__module__}"
        + ("; inside a loop" if args.in_loop else ""))
  iterations = 2 if args.in_loop else 1
  try:
    import torch
  except ImportError:
    torch = None
    print("PyTorch not installed: JAX columns only (pip install -e '.[bench]').")

  print(f"{'layer':<32} {'GFLOP':>6} {'XLA fwd':>8} {'fwd+bwd':>8}"
        + (f" {'torch fwd':>10} {'fwd+bwd':>8}" if torch else "") + "   (GFLOP/s)")
  for name, hw, cin, cout, k, s in LAYERS:
    b = args.batch
    gflop = 2 * b * (hw // s) ** 2 * cin * cout * k * k / 1e9
    x = jax.random.normal(jax.random.key(0), (b, hw, hw, cin))
    w = jax.random.normal(jax.random.key(1), (k, k, cin, cout))

    def conv(x, w, s=s):
      return conv_fn(x, w, (s, s), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))

    grads = jax.grad(lambda x, w: jnp.sum(conv(x, w) ** 2), argnums=(0, 1))
    wrap = in_loop if args.in_loop else (lambda f: f)
    fwd = jax.jit(wrap(conv), compiler_options=options)
    both = jax.jit(wrap(grads), compiler_options=options)
    t_f = jax_seconds(fwd, (x, w), args.repeats) / iterations
    t_b = jax_seconds(both, (x, w), args.repeats) / iterations
    line = f"{name:<32} {gflop:>6.2f} {gflop / t_f:>8.0f} {3 * gflop / t_b:>8.0f}"
    if torch:
      xt = torch.randn(b, cin, hw, hw, requires_grad=True)
      wt = torch.randn(cout, cin, k, k, requires_grad=True)

      def tfwd(xt=xt, wt=wt, s=s, k=k):
        with torch.no_grad():
          return torch.nn.functional.conv2d(xt, wt, stride=s, padding=k // 2)

      def tboth(xt=xt, wt=wt, s=s, k=k):
        (torch.nn.functional.conv2d(xt, wt, stride=s, padding=k // 2) ** 2).sum().backward()

      line += (f" {gflop / median_seconds(tfwd, args.repeats, warmup=1):>10.0f}"
               f" {3 * gflop / median_seconds(tboth, args.repeats, warmup=1):>8.0f}")
    print(line)


if __name__ == "__main__":
  main()

r"""DCGAN training-step throughput: jaxgan against the same step in PyTorch, one process.

  pip install -e ".[bench]"         # PyTorch, for this benchmark only
  python benchmarks/step_throughput.py                          # CPU: batch 64
  python benchmarks/step_throughput.py --batch=256 --out=gpu.json   # on a GPU

The model is the TensorFlow tutorial's DCGAN for 28x28x1 images (``jaxgan.models.DCGAN*``
at ``--width``), rebuilt layer for layer in PyTorch (``TorchGenerator``,
``TorchDiscriminator``; the parameter counts are checked equal before timing). The step is
jaxgan's ``make_train_step`` with the non-saturating loss, Adam(2e-4, b1=0.5) and a
generator EMA, and the PyTorch step does the same work: one discriminator update on a real
batch and a fake batch from fresh latents, then one generator update from fresh latents,
BatchNorm in training mode, dropout 0.3 in D, then the EMA of G's parameters.

Variants (``--variants``, comma-separated):

* ``jax`` (float32), ``jax_bf16`` (bfloat16 compute, float32 parameters and BatchNorm
  statistics), one step per call on a batch already on the device;
* ``jax_k``, ``jax_bf16_k``: ``--k`` steps per call (``fuse_steps_on_device``: each step
  gathers its batch from a uint8 dataset held on the device);
* ``jax_jaxlib_conv``: ``jax`` compiled without ``jaxgan.cpu.compiler_options()``, that is
  with this jaxlib's own choice of CPU convolution kernels (the same on other backends);
* ``torch`` (eager), ``torch_compile`` (``torch.compile`` of both modules and the step's
  loss computation); both in float32 on a batch already on the device.

Each figure is the median over ``--repeats`` timings of ``--calls`` calls after
``--warmup`` calls (compilation excluded), closed by ``block_until_ready`` /
``torch.cuda.synchronize``. Achieved GFLOP/s count the model's useful multiply-adds (the
kernel taps that touch an input element, not padding or the holes of a transposed
convolution's dilated input) times two, over the work of a step: ``G`` forward 4 times
(once for the D update, forward and twice backward for the G update) and ``D`` forward 8
times (real and fake, each with a backward pass for the input and one for the weights, in
the D update; fake and its backward pass to the input in the G update, which jaxgan
differentiates for G's parameters only and the PyTorch step, as StudioGAN does, runs with
D's ``requires_grad`` off). The peak is a float32 ``[N, N] @ [N, N]`` matmul measured in
the same run.

The last line is a floor: the multiply-adds jaxgan's compiled step actually runs (read
from the models' jaxprs, ``executed_flops``: zero padding and the sub-pixel kernel's zero
taps included, so more than the useful count) over the matmul peak. No kernel tuning gets
the step below it without changing the formulation. ``--dropout`` sets D's dropout rate in
both frameworks (0.3, the tutorial's; 0 shows what the masks cost).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from timing import median_seconds

import jaxgan
from jaxgan import models, parallel
from jaxgan.models.layers import conv_transpose_same_pad

LATENT = 100
IMAGE = (28, 28, 1)


def ch(n: int, width: float) -> int:
  return max(1, int(round(n * width)))


# -- model FLOPs ------------------------------------------------------------------------


def _conv_taps(n: int, k: int, s: int) -> int:
  """(output, tap) pairs of a 'SAME' convolution along one axis whose tap is in the input."""
  out = -(-n // s)
  pad_lo = max((out - 1) * s + k - n, 0) // 2
  return sum(0 <= o * s - pad_lo + t < n for o in range(out) for t in range(k))


def _conv_transpose_taps(n: int, k: int, s: int) -> int:
  """The same for ``lax.conv_transpose`` with 'SAME' padding (see ``models.UpConv``)."""
  pad = conv_transpose_same_pad(k, s)
  return sum((o + t - pad) % s == 0 and 0 <= (o + t - pad) // s < n
             for o in range(n * s) for t in range(k))


def model_flops(width: float) -> dict[str, float]:
  """Useful FLOPs (2 x multiply-adds) of one image through G and D, and of a train step.

  Useful: the multiply-adds whose input is an input element, not the zero padding (the
  count XLA's cost analysis gives for a plain convolution) nor the holes of a dilated
  input.
  """
  c256, c128, c64 = ch(256, width), ch(128, width), ch(64, width)
  g = LATENT * 7 * 7 * c256                                   # Dense
  g += _conv_transpose_taps(7, 5, 1) ** 2 * c256 * c128       # 5x5 stride 1 at 7x7
  g += _conv_transpose_taps(7, 5, 2) ** 2 * c128 * c64        # 5x5 stride 2, 7 -> 14
  g += _conv_transpose_taps(14, 5, 2) ** 2 * c64 * IMAGE[2]   # 5x5 stride 2, 14 -> 28
  d = _conv_taps(28, 5, 2) ** 2 * IMAGE[2] * c64              # 5x5 stride 2, 28 -> 14
  d += _conv_taps(14, 5, 2) ** 2 * c64 * c128                 # 5x5 stride 2, 14 -> 7
  d += 7 * 7 * c128                                           # Dense 1
  g, d = 2.0 * g, 2.0 * d
  return {"G": g, "D": d, "step": 4 * g + 8 * d}


def _jaxpr_flops(jaxpr) -> float:
  """2 x the multiply-adds of every convolution and dot in ``jaxpr``, as written: every
  kernel tap at every output position, zero padding and zero kernel taps included."""
  total = 0.0
  # Nested jaxprs included (pjit, custom_jvp). A cond's branches would all be added up;
  # the DCGAN pair has none.
  for eqn in parallel.all_eqns(jaxpr):
    if eqn.primitive.name == "conv_general_dilated":
      rhs, out = eqn.invars[1].aval, eqn.outvars[0].aval
      spec = eqn.params["dimension_numbers"].rhs_spec  # (out feature, in feature, *spatial)
      taps = np.prod([rhs.shape[d] for d in spec[2:]]) * rhs.shape[spec[1]]
      total += 2.0 * out.size * taps
    elif eqn.primitive.name == "dot_general":
      (contract, _), _ = eqn.params["dimension_numbers"]
      lhs = eqn.invars[0].aval
      total += 2.0 * eqn.outvars[0].aval.size * np.prod([lhs.shape[d] for d in contract])
  return total


def executed_flops(width: float, upsample: str) -> dict[str, float]:
  """FLOPs of one image through jaxgan's G and D as the compiled program runs them.

  Unlike ``model_flops`` this counts every multiply-add the convolutions perform: the
  taps that fall on 'SAME' zero padding (a 5x5 kernel on a 7x7 input computes 1225 taps
  per channel pair, 841 of them on the image) and the zero taps of the sub-pixel kernel
  (9 per phase where a 5x5 stride-2 kernel has 6.25 on average). Divided by the matmul
  peak it gives the fastest a step could run if every multiply-add ran at that peak and
  everything else were free. A transposed convolution (``upsample="transpose"``, the
  choice of ``"auto"`` off the CPU) counts as XLA:CPU runs it, over the zero-dilated
  input; cuDNN skips those zeros, so on a GPU that floor is too high.
  """
  G = models.DCGANGenerator(width=width, upsample=upsample)
  D = models.DCGANDiscriminator(width=width, dropout=0.0)
  z, x = jnp.zeros((1, LATENT)), jnp.zeros((1, *IMAGE))
  gv = jax.eval_shape(lambda: G.init(jax.random.key(0), z, train=False))
  dv = jax.eval_shape(lambda: D.init(jax.random.key(0), x, train=False))
  g = _jaxpr_flops(jax.make_jaxpr(lambda v, z: G.apply(v, z, train=False))(gv, z).jaxpr)
  d = _jaxpr_flops(jax.make_jaxpr(lambda v, x: D.apply(v, x, train=False))(dv, x).jaxpr)
  return {"G": g, "D": d, "step": 4 * g + 8 * d}


# -- timing -----------------------------------------------------------------------------


def jax_matmul_gflops(n: int, repeats: int) -> float:
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  f = jax.jit(lambda a: a @ a)
  out = {}

  def call():
    out["y"] = f(a)

  seconds = median_seconds(call, repeats, warmup=2, calls=5,
                           sync=lambda: jax.block_until_ready(out["y"]))
  return 2 * n**3 / seconds / 1e9


# -- jaxgan -----------------------------------------------------------------------------


def jax_runner(args, dtype, k: int, conv_kernels: str = "xla"):
  """A no-argument function running one call (1 or ``k`` steps) of jaxgan's step."""
  G = models.DCGANGenerator(width=args.width, dtype=dtype, upsample=args.upsample)
  D = models.DCGANDiscriminator(width=args.width, dtype=dtype, dropout=args.dropout)
  tx = optax.adam(2e-4, b1=0.5)
  state_g, state_d = jaxgan.create_states(jax.random.key(0), G, D, tx, tx, latent_dim=LATENT,
                                          image_shape=IMAGE)
  step = jaxgan.make_train_step(G, D, "non_saturating", ema_decay=0.999)
  rng = np.random.default_rng(0)
  key = jax.random.key(1)
  options = jaxgan.cpu.compiler_options(conv_kernels)
  if k == 1:
    fn = jax.jit(step, donate_argnums=(0, 1), compiler_options=options)
    batch = jax.device_put({"image": rng.uniform(-1, 1, (args.batch, *IMAGE)).astype(np.float32)})
  else:
    unroll = None if args.unroll == 0 else args.unroll
    fn = jax.jit(parallel.fuse_steps_on_device(step, k, args.batch, jax.random.key(2),
                                               unroll=unroll), donate_argnums=(0, 1),
                 compiler_options=options)
    batch = jax.device_put(
        {"image": rng.integers(0, 256, (args.dataset_size, *IMAGE), dtype=np.uint8)})
  holder = {"states": (state_g, state_d), "metrics": None}

  def call():
    state_g, state_d, metrics = fn(*holder["states"], batch, key)
    holder["states"], holder["metrics"] = (state_g, state_d), metrics

  def sync():
    jax.block_until_ready((holder["states"], holder["metrics"]))

  params = sum(x.size for x in jax.tree.leaves((state_g.params, state_d.params)))
  return call, sync, params


# -- PyTorch ----------------------------------------------------------------------------


def torch_models(width: float, dropout: float = 0.3):
  """The jaxgan DCGAN pair, layer for layer, in PyTorch (NCHW)."""
  from torch import nn

  c256, c128, c64 = ch(256, width), ch(128, width), ch(64, width)
  # Keras/Flax BatchNorm: epsilon 1e-3, running average momentum 0.99 (PyTorch's 0.01).
  bn1d = functools.partial(nn.BatchNorm1d, eps=1e-3, momentum=0.01)
  bn2d = functools.partial(nn.BatchNorm2d, eps=1e-3, momentum=0.01)
  act = functools.partial(nn.LeakyReLU, 0.3)

  class TorchGenerator(nn.Module):
    def __init__(self):
      super().__init__()
      self.dense = nn.Sequential(nn.Linear(LATENT, 7 * 7 * c256, bias=False),
                                 bn1d(7 * 7 * c256), act())
      self.convs = nn.Sequential(
          nn.ConvTranspose2d(c256, c128, 5, 1, padding=2, bias=False), bn2d(c128), act(),
          nn.ConvTranspose2d(c128, c64, 5, 2, padding=2, output_padding=1, bias=False),
          bn2d(c64), act(),
          nn.ConvTranspose2d(c64, IMAGE[2], 5, 2, padding=2, output_padding=1, bias=False),
          nn.Tanh())

    def forward(self, z):
      x = self.dense(z).view(-1, c256, 7, 7)
      return self.convs(x)

  class TorchDiscriminator(nn.Module):
    def __init__(self):
      super().__init__()
      self.net = nn.Sequential(
          nn.Conv2d(IMAGE[2], c64, 5, 2, padding=2), act(), nn.Dropout(dropout),
          nn.Conv2d(c64, c128, 5, 2, padding=2), act(), nn.Dropout(dropout),
          nn.Flatten(), nn.Linear(7 * 7 * c128, 1))

    def forward(self, x):
      return self.net(x)[:, 0]

  return TorchGenerator(), TorchDiscriminator()


def torch_runner(args, device: str, compiled: bool):
  import torch

  torch.manual_seed(0)
  G, D = torch_models(args.width, args.dropout)
  real_shape = (args.batch, IMAGE[2], *IMAGE[:2])
  return torch_step(G, D, device, compiled, args.batch, LATENT, real_shape)


def torch_step(G, D, device: str, compiled: bool, batch: int, latent: int, real_shape,
               ema_decay: float | None = 0.999):
  """jaxgan's step in PyTorch for the modules ``G`` and ``D``: ``(call, sync, params)``.

  One D update (BCE on a real batch and a fake batch from fresh latents), one G update
  from fresh latents (D's ``requires_grad`` off), then the EMA of G's parameters with
  jaxgan's warm-up (``ema_decay=None``: none), all on ``device``.
  """
  import torch
  import torch.nn.functional as F

  G, D = G.to(device), D.to(device)
  G.train()
  D.train()
  ema = [p.detach().clone() for p in G.parameters()]
  opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
  opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
  real = torch.rand(*real_shape, device=device) * 2 - 1
  ones = torch.ones(batch, device=device)
  zeros = torch.zeros(batch, device=device)

  def d_loss_fn(real, z):
    with torch.no_grad():
      fake = G(z)
    return (F.binary_cross_entropy_with_logits(D(real), ones)
            + F.binary_cross_entropy_with_logits(D(fake), zeros))

  def g_loss_fn(z):
    return F.binary_cross_entropy_with_logits(D(G(z)), ones)

  if compiled:
    d_loss_fn, g_loss_fn = torch.compile(d_loss_fn), torch.compile(g_loss_fn)
  state = {"t": 0}

  def call():
    z = torch.randn(batch, latent, device=device)
    opt_d.zero_grad(set_to_none=True)
    d_loss = d_loss_fn(real, z)
    d_loss.backward()
    opt_d.step()
    z = torch.randn(batch, latent, device=device)
    opt_g.zero_grad(set_to_none=True)
    D.requires_grad_(False)
    g_loss = g_loss_fn(z)
    g_loss.backward()
    D.requires_grad_(True)
    opt_g.step()
    t = state["t"]
    if ema_decay:
      decay = min(ema_decay, (1 + t) / (10 + t))
      with torch.no_grad():
        torch._foreach_lerp_(ema, [p.detach() for p in G.parameters()], 1 - decay)
    state["t"] = t + 1
    state["losses"] = (d_loss.detach(), g_loss.detach())

  def sync():
    if device.startswith("cuda"):
      torch.cuda.synchronize()

  params = sum(p.numel() for p in (*G.parameters(), *D.parameters()))
  return call, sync, params


def torch_matmul_gflops(n: int, device: str, repeats: int) -> float:
  import torch

  a = torch.randn(n, n, device=device)
  out = {}

  def call():
    out["y"] = a @ a

  def sync():
    if device.startswith("cuda"):
      torch.cuda.synchronize()

  return 2 * n**3 / median_seconds(call, repeats, warmup=2, calls=5, sync=sync) / 1e9


# -- main -------------------------------------------------------------------------------


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--width", type=float, default=1.0, help="DCGAN width multiplier")
  parser.add_argument("--k", type=int, default=20, help="steps per call for the _k variants")
  parser.add_argument("--unroll", type=int, default=0, help="scan unroll of the _k variants "
                      "(0: the library's choice, unrolled on CPU; 1: a loop)")
  parser.add_argument("--calls", type=int, default=10, help="calls per timing")
  parser.add_argument("--warmup", type=int, default=3, help="untimed calls first")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--dropout", type=float, default=0.3,
                      help="D's dropout rate in both frameworks (0: none)")
  parser.add_argument("--upsample", default="auto", help="jaxgan generator: auto, transpose, "
                      "subpixel")
  parser.add_argument("--variants", default="jax,jax_bf16,jax_k,jax_bf16_k,torch,torch_compile")
  parser.add_argument("--matmul_n", type=int, default=2048, help="size of the peak matmul")
  parser.add_argument("--dataset_size", type=int, default=10_000,
                      help="uint8 images on the device for the _k variants")
  parser.add_argument("--torch_threads", type=int, default=0,
                      help="torch.set_num_threads (0: PyTorch's default)")
  parser.add_argument("--out", default="", help="write the results as JSON here")
  args = parser.parse_args()

  variants = args.variants.split(",")
  unknown = set(variants) - {"jax", "jax_bf16", "jax_k", "jax_bf16_k", "jax_jaxlib_conv", "torch",
                             "torch_compile"}
  if unknown:
    parser.error(f"unknown variants {sorted(unknown)}")
  want_torch = any(v.startswith("torch") for v in variants)
  if want_torch:
    try:
      import torch
    except ImportError:
      sys.exit("The torch variants need PyTorch: pip install -e '.[bench]' (or leave them out "
               "with --variants=jax,jax_bf16,jax_k,jax_bf16_k).")
    if args.torch_threads:
      torch.set_num_threads(args.torch_threads)
    torch_device = "cuda" if torch.cuda.is_available() else "cpu"

  backend = jax.default_backend()
  flops = model_flops(args.width)
  executed = executed_flops(args.width, args.upsample)
  info = {
      "date": time.strftime("%Y-%m-%d"), "machine": platform.machine(),
      "processor": platform.processor(), "cpus": os.cpu_count(),
      "jax": jax.__version__, "backend": backend, "device": str(jax.devices()[0].device_kind),
      "batch": args.batch, "width": args.width, "k": args.k, "unroll": args.unroll,
      "upsample": args.upsample, "dropout": args.dropout,
      "gflop_per_image_step": flops["step"] / 1e9,
      "executed_gflop_per_image_step": executed["step"] / 1e9,
      "cpu_compiler_options": jaxgan.cpu.compiler_options(),
  }
  if want_torch:
    info.update(torch=torch.__version__, torch_device=torch_device,
                torch_threads=torch.get_num_threads())
  peak = jax_matmul_gflops(args.matmul_n, args.repeats)
  info["jax_matmul_gflops"] = peak
  # The fastest jaxgan's step could be: every multiply-add it runs at the matmul peak,
  # nothing else costing time.
  info["floor_ms_per_step"] = 1e3 * args.batch * executed["step"] / 1e9 / peak
  if want_torch:
    info["torch_matmul_gflops"] = torch_matmul_gflops(args.matmul_n, torch_device, args.repeats)
  print(json.dumps(info))

  rows, params = [], {}
  for name in variants:
    if name.startswith("jax"):
      dtype = jnp.bfloat16 if "bf16" in name else jnp.float32
      k = args.k if name.endswith("_k") else 1
      call, sync, params[name] = jax_runner(
          args, dtype, k, "jaxlib" if name == "jax_jaxlib_conv" else "xla")
    else:
      k = 1
      call, sync, params[name] = torch_runner(args, torch_device, name == "torch_compile")
    start = time.perf_counter()
    seconds = median_seconds(call, args.repeats, warmup=args.warmup, calls=args.calls,
                             sync=sync)
    images = args.batch * k / seconds
    rows.append({"variant": name, "steps_per_call": k, "ms_per_step": 1e3 * seconds / k,
                 "images_per_s": images, "gflops": images * flops["step"] / 1e9,
                 "peak_fraction": images * flops["step"] / 1e9 / peak,
                 "seconds_incl_warmup": time.perf_counter() - start})
    print(json.dumps(rows[-1]))
  if len(set(params.values())) > 1:
    raise SystemExit(f"The implementations differ in parameter count: {params}")
  info["params"] = next(iter(params.values()), None)

  by_name = {r["variant"]: r["images_per_s"] for r in rows}
  print(f"\n{info['device']} ({backend}), batch {args.batch}, width {args.width}, "
        f"{info['gflop_per_image_step']:.3f} GFLOP per image-step, "
        f"matmul peak {peak:.0f} GFLOP/s")
  print(f"{'variant':<16} {'steps/call':>10} {'ms/step':>9} {'images/s':>10} "
        f"{'GFLOP/s':>8} {'of peak':>8}" + ("  vs torch  vs compile" if want_torch else ""))
  for r in rows:
    line = (f"{r['variant']:<16} {r['steps_per_call']:>10} {r['ms_per_step']:>9.2f} "
            f"{r['images_per_s']:>10.0f} {r['gflops']:>8.1f} {r['peak_fraction']:>8.0%}")
    for ref in ("torch", "torch_compile"):
      if ref in by_name:
        line += f"  {r['images_per_s'] / by_name[ref]:>7.2f}x"
    print(line)
  floor = info["floor_ms_per_step"]
  line = (f"floor: jaxgan's step runs {info['executed_gflop_per_image_step']:.3f} GFLOP per "
          f"image (padding and zero taps included); at the matmul peak with nothing else "
          f"costing time that is {floor:.1f} ms/step, {1e3 * args.batch / floor:.0f} images/s")
  if "torch" in by_name:
    line += f", {1e3 * args.batch / floor / by_name['torch']:.2f}x torch eager"
  print(line)
  if args.out:
    with open(args.out, "w") as f:
      json.dump({"info": info, "rows": rows}, f, indent=1)


if __name__ == "__main__":
  main()

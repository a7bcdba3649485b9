r"""The original GAN's MLP pair: jaxgan's step against the same step in PyTorch, one process.

  pip install -e ".[bench]"                      # PyTorch, for this benchmark only
  python benchmarks/mlp_throughput.py            # batch 64, K=100, Fashion-MNIST-sized data
  python benchmarks/mlp_throughput.py --variants=jax_k --dataset_sizes=60000,1200000

The pair of the seed documents: G 100-256-784 (tanh), D 784-256-1, LeakyReLU 0.2, Adam
(2e-4, b1=0.5) for both, batch 64, the non-saturating loss, jaxgan's default generator
EMA (0.999, with its warm-up) in both frameworks. Variants (``--variants``):

* ``jax``: ``jax.jit(train_step)`` (the README's first example), one step per call on a
  batch already on the device;
* ``jax_k``: ``--k`` steps per call with the data on the device
  (``jaxgan.parallel.fuse_steps_on_device``: each step gathers its batch from a uint8
  dataset of ``N`` images, in the stream order of ``jaxgan.data``), once per size in
  ``--dataset_sizes``; a batch costs O(B) whatever ``N``, which the sizes show;
* ``torch``: PyTorch eager, the same step (``step_throughput.torch_step``) on a batch
  already on the device;
* ``matmuls``: the step's own matrix products alone (every ``dot_general`` of its jaxpr,
  with its shapes and dimension numbers, on random operands) in the same ``--k``-step
  loop as ``jax_k`` (``lax.scan``, the library's unroll): the time the step could not go
  below with these kernels if nothing else cost anything. Each product's smaller operand
  gets the loop's carry added (a scalar that stays 0) so that XLA cannot hoist it out of
  the loop; those adds are in the figure.

Every variant is built and warmed up (compiled) first; then ``--repeats`` rounds time
``--calls`` calls of each variant in turn (so that a drift in the machine's speed meets
them alike), closed by ``block_until_ready``; each figure is the median of its rounds. The last line
is a floor: the multiply-adds of jaxgan's whole step (read from its jaxpr: every matmul
of both updates, forward and backward) at the float32 matmul peak measured in the same
run, with nothing else costing time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from step_throughput import _jaxpr_flops, jax_matmul_gflops, torch_step
from timing import median_seconds

import jaxgan
from jaxgan import models, parallel

LATENT, HIDDEN, IMAGE = 100, 256, (28, 28, 1)


def jax_runner(args, k: int, dataset_size: int = 0):
  G = models.MLPGenerator(image_shape=IMAGE, hidden=(HIDDEN,))
  D = models.MLPDiscriminator(hidden=(HIDDEN,))
  tx = optax.adam(2e-4, b1=0.5)
  states = jaxgan.create_states(jax.random.key(0), G, D, tx, tx, latent_dim=LATENT,
                                image_shape=IMAGE)
  step = jaxgan.make_train_step(G, D, "non_saturating", ema_decay=args.ema or None)
  rng = np.random.default_rng(0)
  if k == 1:
    fn = jax.jit(step, donate_argnums=(0, 1))
    batch = jax.device_put({"image": rng.uniform(-1, 1, (args.batch, *IMAGE)).astype(np.float32)})
  else:
    unroll = None if args.unroll == 0 else args.unroll
    fn = jax.jit(parallel.fuse_steps_on_device(step, k, args.batch, jax.random.key(2),
                                               unroll=unroll), donate_argnums=(0, 1))
    batch = jax.device_put(
        {"image": rng.integers(0, 256, (dataset_size, *IMAGE), dtype=np.uint8)})
  holder = {"states": states, "metrics": None}

  def call():
    state_g, state_d, metrics = fn(*holder["states"], batch, jax.random.key(1))
    holder["states"], holder["metrics"] = (state_g, state_d), metrics

  def sync():
    jax.block_until_ready((holder["states"], holder["metrics"]))

  return call, sync, sum(x.size for x in jax.tree.leaves((states[0].params, states[1].params)))


def step_jaxpr(args):
  """The jaxpr of one jaxgan step of the pair."""
  G = models.MLPGenerator(image_shape=IMAGE, hidden=(HIDDEN,))
  D = models.MLPDiscriminator(hidden=(HIDDEN,))
  tx = optax.adam(2e-4, b1=0.5)
  states = jaxgan.abstract_states(G, D, tx, tx, latent_dim=LATENT, image_shape=IMAGE)
  step = jaxgan.make_train_step(G, D, "non_saturating", ema_decay=args.ema or None)
  batch = {"image": jax.ShapeDtypeStruct((args.batch, *IMAGE), np.float32)}
  return jax.make_jaxpr(step)(*states, batch, jax.random.key(0)).jaxpr


def step_gflop(args) -> float:
  """GFLOP (2 x multiply-adds) of one jaxgan step, as its jaxpr writes them."""
  return _jaxpr_flops(step_jaxpr(args)) / 1e9


def _dot_eqns(jaxpr) -> list:
  """Every dot_general of ``jaxpr`` and of the jaxprs nested in it."""
  return [eqn for eqn in parallel.all_eqns(jaxpr) if eqn.primitive.name == "dot_general"]


def matmul_runner(args):
  """The step's matrix products alone, ``--k`` of each per call (see ``matmuls``)."""
  eqns = _dot_eqns(step_jaxpr(args))
  rng = np.random.default_rng(0)
  operands = [tuple(rng.standard_normal(v.aval.shape).astype(v.aval.dtype) for v in e.invars)
              for e in eqns]
  params = [{k: e.params[k] for k in ("dimension_numbers", "precision",
                                      "preferred_element_type")} for e in eqns]

  def products(carry, _):
    total = carry
    for (lhs, rhs), p in zip(operands, params, strict=True):
      if lhs.size <= rhs.size:
        lhs = lhs + carry
      else:
        rhs = rhs + carry
      total = total + 0.0 * jnp.sum(jax.lax.dot_general(lhs, rhs, **p))
    return total, None

  fn = jax.jit(lambda c: jax.lax.scan(products, c, None, length=args.k,
                                      unroll=parallel.CPU_UNROLL)[0])
  holder = {"c": jnp.float32(0)}

  def call():
    holder["c"] = fn(holder["c"])

  return call, lambda: holder["c"].block_until_ready(), None


def torch_runner(args):
  import torch
  from torch import nn

  torch.manual_seed(0)
  G = nn.Sequential(nn.Linear(LATENT, HIDDEN), nn.LeakyReLU(0.2),
                    nn.Linear(HIDDEN, int(np.prod(IMAGE))), nn.Tanh())
  D = nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(IMAGE)), HIDDEN), nn.LeakyReLU(0.2),
                    nn.Linear(HIDDEN, 1), nn.Flatten(0))
  return torch_step(G, D, "cpu" if not torch.cuda.is_available() else "cuda", False, args.batch,
                    LATENT, (args.batch, *IMAGE), ema_decay=args.ema or None)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--k", type=int, default=100, help="steps per call of jax_k")
  parser.add_argument("--dataset_sizes", default="60000",
                      help="comma-separated N: uint8 images on the device for jax_k")
  parser.add_argument("--unroll", type=int, default=0, help="scan unroll of jax_k (0: the "
                      "library's choice)")
  parser.add_argument("--ema", type=float, default=0.999, help="G's EMA decay (0: none)")
  parser.add_argument("--calls", type=int, default=200, help="calls per timing (jax, torch)")
  parser.add_argument("--k_calls", type=int, default=5, help="calls per timing (jax_k)")
  parser.add_argument("--warmup", type=int, default=20)
  parser.add_argument("--repeats", type=int, default=7)
  parser.add_argument("--variants", default="jax,jax_k,torch,matmuls")
  parser.add_argument("--torch_threads", type=int, default=0,
                      help="torch.set_num_threads (0: PyTorch's default)")
  parser.add_argument("--matmul_n", type=int, default=2048, help="size of the peak matmul")
  parser.add_argument("--out", default="", help="write the results as JSON here")
  args = parser.parse_args()
  variants = args.variants.split(",")
  known = {"jax", "jax_k", "torch", "matmuls"}
  if set(variants) - known:
    parser.error(f"unknown variants {sorted(set(variants) - known)}")
  info = {"date": time.strftime("%Y-%m-%d"), "machine": platform.machine(),
          "cpus": os.cpu_count(), "jax": jax.__version__, "backend": jax.default_backend(),
          "device": str(jax.devices()[0].device_kind), "batch": args.batch, "k": args.k,
          "ema": args.ema}
  if "torch" in variants:
    try:
      import torch
    except ImportError:
      sys.exit("The torch variant needs PyTorch: pip install -e '.[bench]' (or leave it out "
               "with --variants=jax,jax_k).")
    if args.torch_threads:
      torch.set_num_threads(args.torch_threads)
    info.update(torch=torch.__version__, torch_threads=torch.get_num_threads())
  info["gflop_per_step"] = step_gflop(args)
  info["jax_matmul_gflops"] = jax_matmul_gflops(args.matmul_n, args.repeats)
  info["floor_ms_per_step"] = 1e3 * info["gflop_per_step"] / info["jax_matmul_gflops"]
  print(json.dumps(info))

  rows, params, timed = [], {}, []
  runs = []
  for name in variants:
    if name == "jax_k":
      runs += [(name, n) for n in map(int, args.dataset_sizes.split(","))]
    else:
      runs.append((name, 0))
  for name, n in runs:  # build and warm up (compile) every variant first
    k = args.k if name in ("jax_k", "matmuls") else 1
    if name == "torch":
      call, sync, params[name] = torch_runner(args)
    elif name == "matmuls":
      call, sync, _ = matmul_runner(args)
    else:
      call, sync, params[name] = jax_runner(args, k, n)
    start = time.perf_counter()
    for _ in range(2 if k > 1 else args.warmup):
      call()
    sync()
    calls = args.k_calls if k > 1 else args.calls
    timed.append((name, n, k, call, sync, calls, time.perf_counter() - start, []))
  # Repeats taken in turn, so that a change in the machine's speed (shared cores) meets
  # every variant alike; the median of each.
  for _ in range(args.repeats):
    for *_, call, sync, calls, _, times in timed:
      times.append(median_seconds(call, 1, calls=calls, sync=sync))
  for name, n, k, *_, warmup_s, times in timed:
    seconds = float(np.median(times))
    rows.append({"variant": name, "dataset_size": n or None, "steps_per_call": k,
                 "steps_per_s": k / seconds, "ms_per_step": 1e3 * seconds / k,
                 "warmup_s": warmup_s})
    print(json.dumps(rows[-1]), flush=True)
  if len(set(params.values())) > 1:
    raise SystemExit(f"The implementations differ in parameter count: {params}")
  info["params"] = next(iter(params.values()), None)

  torch_rate = next((r["steps_per_s"] for r in rows if r["variant"] == "torch"), None)
  print(f"\n{info['device']} ({info['backend']}), batch {args.batch}, {info['params']:,} "
        "parameters")
  print(f"{'variant':<8} {'N':>9} {'steps/call':>10} {'steps/s':>9} {'ms/step':>8}"
        + ("  vs torch" if torch_rate else ""))
  for r in rows:
    line = (f"{r['variant']:<8} {r['dataset_size'] or '':>9} {r['steps_per_call']:>10} "
            f"{r['steps_per_s']:>9.1f} {r['ms_per_step']:>8.3f}")
    if torch_rate:
      line += f"  {r['steps_per_s'] / torch_rate:>7.2f}x"
    print(line)
  floor = info["floor_ms_per_step"]
  line = (f"floor: the step's {info['gflop_per_step']:.3f} GFLOP at the matmul peak "
          f"({info['jax_matmul_gflops']:.0f} GFLOP/s) with nothing else costing time: "
          f"{floor:.3f} ms/step, {1e3 / floor:.0f} steps/s")
  if torch_rate:
    line += f", {1e3 / floor / torch_rate:.2f}x torch"
  print(line)
  if args.out:
    with open(args.out, "w") as f:
      json.dump({"info": info, "rows": rows}, f, indent=1)


if __name__ == "__main__":
  main()

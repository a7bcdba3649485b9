"""The benchmark scripts keep working, and their FLOP count agrees with XLA's."""

import importlib.util
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import ROOT

from jaxgan import models
from jaxgan.data import sources
from jaxgan.evaluators import inception as inception_lib

sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import step_throughput  # noqa: E402

pytestmark = pytest.mark.slow  # whole runs and networks: the full suite, not the fast tier


def _xla_flops_per_image(module, x):
  variables = module.init(jax.random.key(0), x, train=False)
  apply = jax.jit(lambda v, x: module.apply(v, x, train=False))
  analysis = apply.lower(variables, x).compile().cost_analysis()
  analysis = analysis[0] if isinstance(analysis, list) else analysis
  return analysis["flops"] / x.shape[0]


def test_model_flops_agree_with_xla_cost_analysis():
  # XLA counts the multiply-adds of convolutions whose input is an input element (not
  # padding, not the holes of a transposed convolution's dilated input), plus a few
  # elementwise operations (bias, activations, BatchNorm) that the model count leaves out.
  for width in (1.0, 0.5):
    flops = step_throughput.model_flops(width)
    d = _xla_flops_per_image(models.DCGANDiscriminator(width=width, dropout=0.0),
                             jnp.zeros((4, 28, 28, 1)))
    g = _xla_flops_per_image(models.DCGANGenerator(width=width, upsample="transpose"),
                             jnp.zeros((4, 100)))
    assert flops["D"] <= d <= 1.01 * flops["D"], (width, d, flops["D"])
    assert flops["G"] <= g <= 1.01 * flops["G"], (width, g, flops["G"])


def test_executed_flops_count_every_tap_the_program_runs():
  # By hand, per image at width 1, 2 x multiply-adds of every tap at every output position.
  dense_g = 100 * 7 * 7 * 256
  conv_s1 = 7 * 7 * 5 * 5 * 256 * 128        # 5x5 at 7x7, 'SAME': all 25 taps everywhere
  d = 2 * (14 * 14 * 5 * 5 * 1 * 64 + 7 * 7 * 5 * 5 * 64 * 128 + 7 * 7 * 128)
  # Sub-pixel: a 3x3 kernel with 4 phases of out channels at the input's resolution.
  subpixel = 2 * (dense_g + conv_s1 + 7 * 7 * 3 * 3 * 128 * 4 * 64 + 14 * 14 * 3 * 3 * 64 * 4)
  # Transposed: every tap at every output pixel of the zero-dilated input.
  transpose = 2 * (dense_g + conv_s1 + 14 * 14 * 5 * 5 * 128 * 64 + 28 * 28 * 5 * 5 * 64)
  for upsample, g in (("subpixel", subpixel), ("transpose", transpose)):
    flops = step_throughput.executed_flops(1.0, upsample)
    assert (flops["G"], flops["D"]) == (g, d), upsample
    assert flops["step"] == 4 * g + 8 * d
  # More than the useful count, which leaves out the padding.
  assert step_throughput.executed_flops(1.0, "subpixel")["step"] > 1.3 * (
      step_throughput.model_flops(1.0)["step"])


def test_step_throughput_runs_and_reports_every_variant(tmp_path):
  out = tmp_path / "r.json"
  cmd = [sys.executable, os.path.join(ROOT, "benchmarks", "step_throughput.py"), "--batch=8",
         "--width=0.125", "--calls=1", "--repeats=1", "--warmup=1", "--k=2",
         "--variants=jax_bf16_k", "--matmul_n=128", "--dataset_size=32", f"--out={out}"]
  env = {**os.environ, "XLA_FLAGS": ""}  # one device, as a user runs it
  proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(out.read_text())
  rows = {r["variant"]: r for r in result["rows"]}
  assert set(rows) == {"jax_bf16_k"} and rows["jax_bf16_k"]["steps_per_call"] == 2
  for r in rows.values():
    assert r["images_per_s"] > 0
    assert abs(r["images_per_s"] * r["ms_per_step"] / 1e3 - 8) < 1e-6  # batch / time
  assert result["info"]["params"] > 0 and result["info"]["jax_matmul_gflops"] > 0
  info = result["info"]
  assert info["floor_ms_per_step"] == pytest.approx(
      1e3 * 8 * info["executed_gflop_per_image_step"] / info["jax_matmul_gflops"])
  assert "jax_bf16_k" in proc.stdout  # the printed table


def test_mlp_throughput_runs_every_variant_and_its_floor(tmp_path):
  out = tmp_path / "r.json"
  cmd = [sys.executable, os.path.join(ROOT, "benchmarks", "mlp_throughput.py"), "--batch=8",
         "--k=3", "--calls=2", "--k_calls=1", "--warmup=1", "--repeats=2", "--matmul_n=128",
         "--dataset_sizes=16,5000", "--variants=jax,jax_k,matmuls", f"--out={out}"]  # no torch
  env = {**os.environ, "XLA_FLAGS": ""}  # one device, as a user runs it
  proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(out.read_text())
  rows = [(r["variant"], r["dataset_size"], r["steps_per_call"]) for r in result["rows"]]
  assert rows == [("jax", None, 1), ("jax_k", 16, 3), ("jax_k", 5000, 3), ("matmuls", None, 3)]
  for r in result["rows"]:
    assert r["steps_per_s"] * r["ms_per_step"] == pytest.approx(1e3)
  info = result["info"]
  assert info["params"] == (100 * 256 + 256 + 256 * 784 + 784) + (784 * 256 + 256 + 256 + 1)
  # The step's matmuls at batch 8, counted by hand (2 FLOPs per multiply-add): G forward
  # 100x256 + 256x784 = 226,304 and D forward 784x256 + 256x1 = 200,960 multiply-adds per
  # example. The D update runs G forward, D forward on real and fake, D's weight
  # gradients for both and the input gradient of D's second layer for both; the G update
  # runs G forward, D forward, D's input gradients (both layers), G's weight gradients
  # and the input gradient of G's second layer.
  g, d, d2 = 226_304, 200_960, 256
  d_update = g + 2 * d + 2 * d + 2 * d2
  g_update = g + d + d + g + 256 * 784
  assert info["gflop_per_step"] == pytest.approx(2 * 8 * (d_update + g_update) / 1e9, rel=1e-6)
  assert info["floor_ms_per_step"] == pytest.approx(
      1e3 * info["gflop_per_step"] / info["jax_matmul_gflops"])
  assert "floor:" in proc.stdout and "jax_k" in proc.stdout
  # The matmuls variant runs exactly those products: the same hand count from its list.
  import argparse

  import mlp_throughput
  eqns = mlp_throughput._dot_eqns(mlp_throughput.step_jaxpr(argparse.Namespace(batch=8, ema=0.999)))
  flops = sum(2 * e.outvars[0].aval.size * np.prod([e.invars[0].aval.shape[i] for i in
                                                     e.params["dimension_numbers"][0][0]])
              for e in eqns)
  assert flops == 2 * 8 * (d_update + g_update)


def run_table_benchmark(script, *args):
  """Runs ``benchmarks/<script>`` (one device); returns its JSON header and table rows."""
  cmd = [sys.executable, os.path.join(ROOT, "benchmarks", script), *args]
  env = {**os.environ, "XLA_FLAGS": ""}
  proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = proc.stdout.strip().splitlines()
  return json.loads(lines[0]), [line.split() for line in lines[2:]]


def test_latents_benchmark_runs_every_variant():
  header, rows = run_table_benchmark("latents.py", "--batch=4", "--dim=3", "--k=2",
                                     "--repeats=2")
  assert header["batch"] == 4
  assert [r[0] for r in rows] == ["jaxgan", "fold_in", "normal"]
  assert rows[0][2] == "1.00x" and all(float(r[1]) > 0 for r in rows)


def test_resnet_step_benchmark_runs():
  # One preset: BigGAN-32's compilation alone took most of a minute (its parameter counts
  # are tested in test_resnet.py; the benchmark's code path is the same).
  header, rows = run_table_benchmark("resnet_step.py", "--batch=2", "--presets=sngan32",
                                     "--n_critic=1", "--repeats=1")
  assert header["batch"] == 2
  assert [(r[0], r[1]) for r in rows] == [("sngan32", "1")]
  assert all(float(r[2]) > 0 and float(r[3]) > 0 for r in rows)


def test_stylegan2_step_benchmark_runs():
  # The conditional's two rows: one compilation (each static pattern would be another
  # one; test_augment_step.py checks that path against this one), at 8x8 to compile fast.
  header, rows = run_table_benchmark("stylegan2_step.py", "--batch=4", "--presets=small",
                                     "--repeats=1", "--width=0.125", "--only=cond", "--size=8")
  assert header["batch"] == 4
  assert [r[1] for r in rows] == ["cond,_plain_step", "cond,_R1_step"]
  assert all(r[0] == "small" and float(r[2]) > 0 and float(r[3]) > 0 for r in rows)
  assert float(rows[0][4]) > 0 and float(rows[1][4]) == 0  # one compilation serves both


def test_cyclegan_step_benchmark_runs():
  # The tiny preset: the same code path as the experiment's and the reference's pairs.
  header, rows = run_table_benchmark("cyclegan_step.py", "--presets=tiny", "--repeats=1")
  assert header["device"] and [r[:3] for r in rows] == [["tiny", "16x16x1", "2"]]
  seconds, images, compile_s = map(float, rows[0][3:])
  assert seconds > 0 and images == pytest.approx(2 / seconds, rel=0.01) and compile_s > 0


@pytest.mark.skipif(not (inception_lib.find_weights_file() and importlib.util.find_spec("torch")
                         and os.path.exists(os.path.join(sources.DEBIAN_FASHION_MNIST,
                                                         "t10k-images-idx3-ubyte.gz")))
                    and not os.environ.get("JAXGAN_REQUIRE_INCEPTION_REFERENCE"),
                    reason="needs the Inception weights, PyTorch and Fashion-MNIST "
                           "(see tests/evaluators/test_inception.py)")
def test_inception_features_benchmark_runs_both_networks():
  header, rows = run_table_benchmark("inception_features.py", "--num=4", "--batch=2")
  assert header["images"] == 4 and [r[0] for r in rows] == ["jaxgan", "reference"]
  for row in rows:
    per_s, per_1000 = float(row[1]), float(row[2])
    assert per_s > 0 and per_1000 == pytest.approx(1000 / per_s, rel=0.01)
  assert float(rows[0][4]) <= 1e-4  # the same features as the reference


def test_recipe_steps_benchmark_runs():
  # The DCGAN's CPU recipe, one step timed: every recipe takes the same code path, and the
  # DCGAN's step compiles in a fraction of R3GAN's time (R3GAN's step: tests/steps).
  header, rows = run_table_benchmark("recipe_steps.py", "--models=dcgan", "--variant=cpu",
                                     "--batch=4", "--repeats=1")
  assert (header["batch"], header["variant"]) == (4, "cpu")
  (row,) = rows
  seconds, steps, compile_s = map(float, row[1:])
  assert row[0] == "dcgan" and steps == pytest.approx(1 / seconds, rel=0.01) and compile_s > 0

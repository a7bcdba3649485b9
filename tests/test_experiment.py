"""experiments/mnist.py end to end on a tiny config: train, evaluate, resume, export."""

import json
import os
import runpy
import subprocess
import sys

import jax
import numpy as np
import pytest
from test_data import needs_fashion, offline  # noqa: F401 - offline is a fixture

from jaxgan import data, evaluate, generate, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(dataset="fashion_mnist", model="mlp", latent_dim=16, batch_size=32, steps=20,
            log_every=10, checkpoint_every=10, sample_every=10, grid_size=4, eval_every=10,
            eval_samples=500, progress=False)


def export(workdir, out, num, seed):
  child = subprocess.run(
      [sys.executable, os.path.join(ROOT, "experiments", "mnist.py"), f"--workdir={workdir}",
       f"--sample_out={out}", f"--num_samples={num}", f"--sample_seed={seed}"],
      cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert child.returncode == 0, child.stderr[-3000:]
  return np.load(out), child.stdout


@needs_fashion
def test_train_evaluate_resume_and_export(tmp_path, capfd):
  first = train.train_and_evaluate(TINY, str(tmp_path))
  out = capfd.readouterr().out
  assert "Frechet distance" in out and "the floor" in out and "class coverage" in out
  ev = first.evaluation
  assert set(ev) == {"fd", "coverage", "kl", "fd_floor"}
  assert 0 <= ev["fd_floor"] < ev["fd"]  # 20 steps of an MLP GAN are far from real images
  assert 1 <= ev["coverage"] <= 10 and 0 <= ev["kl"] <= np.log(10) + 1e-9
  with open(tmp_path / "metrics.jsonl") as f:
    evals = [r for r in map(json.loads, f) if "eval" in r]
  assert [r["step"] for r in evals] == [10, 20]
  assert evals[-1]["eval"] == pytest.approx(ev)

  resumed = train.train_and_evaluate({**TINY, "steps": 30}, str(tmp_path))
  assert resumed.step == 30 and "resumed from step 20" in capfd.readouterr().err

  # Export: uint8 [N, 28, 28, 1] from the newest checkpoint, through the EMA generator.
  a, stdout = export(tmp_path, tmp_path / "a.npy", 50, 3)
  assert a.shape == (50, 28, 28, 1) and a.dtype == np.uint8
  assert "from step 30" in stdout
  ema = evaluate.to_uint8(generate(resumed.G, resumed.state_g, jax.random.key(3), 50))
  raw = evaluate.to_uint8(generate(resumed.G, resumed.state_g, jax.random.key(3), 50,
                                   use_ema=False))
  np.testing.assert_array_equal(a, ema)
  assert not np.array_equal(a, raw)
  # Identical for identical arguments; a smaller export is a prefix; another seed differs.
  b, _ = export(tmp_path, tmp_path / "b.npy", 50, 3)
  assert a.tobytes() == b.tobytes()
  c, _ = export(tmp_path, tmp_path / "c.npy", 20, 3)
  np.testing.assert_array_equal(c, a[:20])
  d, _ = export(tmp_path, tmp_path / "d.npy", 50, 4)
  assert not np.array_equal(d, a)


def test_export_without_a_run_is_a_clear_error(tmp_path):
  child = subprocess.run(
      [sys.executable, os.path.join(ROOT, "experiments", "mnist.py"),
       f"--workdir={tmp_path / 'none'}", f"--sample_out={tmp_path / 'x.npy'}"],
      cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert child.returncode == 2 and child.stderr.startswith("error: No checkpoint in")
  assert "train first" in child.stderr and "Traceback" not in child.stderr
  assert not os.path.exists(tmp_path / "x.npy")


@needs_fashion
def test_mnist_offline_falls_back_to_fashion_mnist_with_one_line(offline, capfd):  # noqa: F811
  config = train.complete_config({"dataset": "mnist", "data_dir": "/nonexistent"})
  name, source = train.load_train_data(config)
  err = capfd.readouterr().err.strip().splitlines()
  assert name == "fashion_mnist" and len(source) == 60_000
  assert len(err) == 1 and "MNIST is not available" in err[0] and "Fashion-MNIST" in err[0]
  np.testing.assert_array_equal(source.images[:5],
                                data.load_idx(data.DEBIAN_FASHION_MNIST).images[:5])


def test_the_run_length_follows_the_backend(capfd, monkeypatch):
  config = train.resolve_auto(train.complete_config({}))
  err = capfd.readouterr().err
  assert jax.default_backend() == "cpu"
  assert config.steps == train.CPU_STEPS and config.eval_samples == 2000
  assert config.model == "dcgan" and config.width == config.cpu_width == 0.5
  assert "short CPU run" in err and f"{train.default_config().full_steps:,}" in err
  explicit = train.resolve_auto(train.complete_config({"steps": 7, "eval_samples": 99}))
  assert (explicit.steps, explicit.eval_samples, explicit.width) == (7, 99, 1.0)
  assert capfd.readouterr().err == ""
  # The same config where JAX's default backend is an accelerator: the full run.
  monkeypatch.setattr(jax, "default_backend", lambda: "tpu")
  full = train.resolve_auto(train.complete_config({}))
  assert (full.steps, full.eval_samples, full.width) == (20_000, 10_000, 1.0)
  assert "the full run, 20,000 steps" in capfd.readouterr().err


def test_the_cpu_recipe_applies_to_the_auto_cpu_run_only(capfd, monkeypatch):
  given = {"cpu_recipe": "conditional=True,ema_decay=0.995,batch_size=32"}
  cpu = train.resolve_auto(train.complete_config(given))
  assert (cpu.conditional, cpu.ema_decay, cpu.batch_size) == (True, 0.995, 32)
  assert "width 0.5, conditional=True, ema_decay=0.995, batch_size=32" in capfd.readouterr().err
  # An explicit length is the config's own recipe; so is the full run on an accelerator.
  explicit = train.resolve_auto(train.complete_config({**given, "steps": 7}))
  assert (explicit.conditional, explicit.ema_decay, explicit.batch_size) == (False, 0.999, 256)
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  full = train.resolve_auto(train.complete_config(given))
  assert (full.conditional, full.ema_decay, full.steps) == (False, 0.999, 20_000)
  # What the command line sets stays: dropped from the recipe, and a given width kept.
  kept = train.prefer_given(train.complete_config({**given, "width": 0.75}),
                            ["ema_decay", "width"])
  assert kept.cpu_recipe == "conditional=True,batch_size=32"
  assert kept.cpu_width == kept.cpu_resnet_width == 0.75
  with pytest.raises(train.ConfigError, match="cpu_recipe: 'conditional' is not field=value"):
    train.complete_config({"cpu_recipe": "conditional"})
  with pytest.raises(train.ConfigError, match="batch_size='3.5' is not of type int"):
    train.complete_config({"cpu_recipe": "batch_size=3.5"})


def test_the_mnist_cpu_run_is_conditional_and_the_full_run_is_not(monkeypatch):
  get_config = runpy.run_path(os.path.join(ROOT, "experiments", "configs", "mnist.py"))[
      "get_config"]
  cpu = train.resolve_auto(train.complete_config(get_config()))
  assert (cpu.steps, cpu.width, cpu.conditional, cpu.model, cpu.loss, cpu.b1, cpu.b2) == (
      5000, 0.5, True, "dcgan", "hinge", 0.0, 0.9)
  # The command line's own choice stays (here: unconditional).
  mine = train.prefer_given(get_config(), ["conditional"])
  assert train.resolve_auto(train.complete_config(mine)).conditional is False
  monkeypatch.setattr(jax, "default_backend", lambda: "tpu")
  full = train.resolve_auto(train.complete_config(get_config()))
  assert (full.steps, full.width, full.conditional, full.loss, full.b1, full.b2) == (
      20_000, 1.0, False, "non_saturating", 0.5, 0.999)

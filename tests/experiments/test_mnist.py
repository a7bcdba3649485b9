"""experiments/mnist.py end to end on a tiny config: train, evaluate, resume, export."""

import json
import os
import runpy
import subprocess
import sys

import jax
import numpy as np
import pytest
from helpers import ROOT, export, needs_fashion

from jaxgan import errors, generate
from jaxgan.data import sources
from jaxgan.evaluators import pictures
from jaxgan.training import config as config_lib
from jaxgan.training import loop
from jaxgan.training.tasks import noise as noise_tasks

pytestmark = pytest.mark.slow  # whole runs and networks: the full suite, not the fast tier

TINY = dict(dataset="fashion_mnist", model="mlp", latent_dim=16, batch_size=32, steps=20,
            log_every=10, checkpoint_every=10, sample_every=10, grid_size=4, eval_every=10,
            eval_samples=500, progress=False)


@needs_fashion
def test_train_evaluate_resume_and_export(tmp_path, capfd):
  first = loop.train_and_evaluate(TINY, str(tmp_path))
  out = capfd.readouterr().out
  assert "Frechet distance" in out and "the floor" in out and "class coverage" in out
  ev = first.evaluation
  assert set(ev) == {"fd", "coverage", "kl", "fd_floor", "diversity", "diversity_min",
                     "collapsed", "diversity_real"}
  assert "diversity" in out and 0 <= ev["diversity_min"] <= ev["diversity"]
  assert 0 <= ev["fd_floor"] < ev["fd"]  # 20 steps of an MLP GAN are far from real images
  assert 1 <= ev["coverage"] <= 10 and 0 <= ev["kl"] <= np.log(10) + 1e-9
  with open(tmp_path / "metrics.jsonl") as f:
    evals = [r for r in map(json.loads, f) if "eval" in r]
  assert [r["step"] for r in evals] == [10, 20]
  flagged = evals[-1]["eval"].pop("collapsed")  # the collapsed classes: a list
  assert flagged == ev["collapsed"]
  assert evals[-1]["eval"] == pytest.approx({k: v for k, v in ev.items() if k != "collapsed"})
  # The summary says it whenever metrics.jsonl does (20 steps draw few kinds of images).
  assert ("jaxgan: COLLAPSED" in out) == bool(flagged)

  resumed = loop.train_and_evaluate({**TINY, "steps": 30}, str(tmp_path))
  assert resumed.step == 30 and "resumed from step 20" in capfd.readouterr().err

  # Export: uint8 [N, 28, 28, 1] from the newest checkpoint, through the EMA generator.
  a, stdout = export(tmp_path, tmp_path / "a.npy", 50, 3)
  assert a.shape == (50, 28, 28, 1) and a.dtype == np.uint8
  assert "from step 30" in stdout
  ema = pictures.to_uint8(generate(resumed.G, resumed.state_g, jax.random.key(3), 50))
  raw = pictures.to_uint8(generate(resumed.G, resumed.state_g, jax.random.key(3), 50,
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
def test_mnist_offline_falls_back_to_fashion_mnist_with_one_line(offline, capfd):
  config = config_lib.complete_config({"dataset": "mnist", "data_dir": "/nonexistent"})
  name, source = noise_tasks.load_train_data(config)
  err = capfd.readouterr().err.strip().splitlines()
  assert name == "fashion_mnist" and len(source) == 60_000
  assert len(err) == 1 and "MNIST is not available" in err[0] and "Fashion-MNIST" in err[0]
  np.testing.assert_array_equal(source.images[:5],
                                sources.load_idx(sources.DEBIAN_FASHION_MNIST).images[:5])


def test_mnist_with_neither_source_names_the_offline_package(offline, monkeypatch, tmp_path):
  monkeypatch.setattr(sources, "DEBIAN_FASHION_MNIST", str(tmp_path / "not-installed"))
  config = config_lib.complete_config({"dataset": "mnist", "data_dir": str(tmp_path)})
  with pytest.raises(sources.DataError) as err:
    noise_tasks.load_train_data(config)
  message = str(err.value)
  assert message.startswith("No source could provide 'mnist' (train). Tried:")
  assert "apt-get install dataset-fashion-mnist" in message
  assert str(tmp_path / "not-installed") in message


def test_the_variant_follows_the_backend_and_is_said_once(capfd, monkeypatch):
  assert jax.default_backend() == "cpu"
  assert config_lib.for_this_machine() == config_lib.for_this_machine("auto") == "cpu"
  assert config_lib.for_this_machine("full") == "full"
  with pytest.raises(errors.ConfigError, match="Unknown config variant 'gpu'"):
    config_lib.for_this_machine("gpu")
  cpu = config_lib.complete_any({"variant": "cpu", "steps": 7})
  err = capfd.readouterr().err
  assert cpu.eval_samples == 2000 and err.count("\n") == 1
  assert "no accelerator found, so this is the config's CPU run: 7 steps of the dcgan" in err
  # A config that is no experiment's variant runs as given, without a word.
  plain = config_lib.complete_any({"steps": 7, "eval_samples": 99})
  assert (plain.steps, plain.eval_samples, plain.width) == (7, 99, 1.0)
  assert capfd.readouterr().err == ""
  # Where JAX's default backend is an accelerator: the full variant and 10,000 samples.
  monkeypatch.setattr(jax, "default_backend", lambda: "tpu")
  assert config_lib.for_this_machine() == "full"
  full = config_lib.complete_any({"variant": "full"})
  assert (full.steps, full.eval_samples) == (20_000, 10_000)
  assert "the config's full run, 20,000 steps" in capfd.readouterr().err


def test_removed_fields_name_what_replaced_them():
  for field, replacement in (("cpu_steps", "--config.steps=15000"), ("cpu_recipe", ":cpu"),
                             ("full_steps", ":full"), ("cpu_width", "--config.width"),
                             ("cpu_resnet_width", "--config.g_channels")):
    with pytest.raises(errors.ConfigError, match=f"field {field} was removed") as e:
      config_lib.complete_config({field: 1})
    assert replacement in str(e.value)
    with pytest.raises(errors.ConfigError, match=f"field {field} was removed"):
      config_lib.complete_translation_config({"family": "pix2pix", field: 1})


def test_the_mnist_cpu_run_is_conditional_and_the_full_run_is_not(monkeypatch):
  get_config = runpy.run_path(os.path.join(ROOT, "experiments", "configs", "mnist.py"))[
      "get_config"]
  cpu = config_lib.complete_config(get_config())
  # The recipe BUILD_NOTES.md measured for the first run.
  assert (cpu.variant, cpu.steps, cpu.width, cpu.conditional, cpu.model, cpu.loss, cpu.b1,
          cpu.b2) == ("cpu", 5000, 0.5, True, "dcgan", "hinge", 0.0, 0.9)
  assert config_lib.complete_config(get_config("cpu")).to_dict() == cpu.to_dict()
  monkeypatch.setattr(jax, "default_backend", lambda: "tpu")
  full = config_lib.complete_config(get_config())
  assert (full.variant, full.steps, full.width, full.conditional, full.loss, full.b1,
          full.b2) == ("full", 20_000, 1.0, False, "non_saturating", 0.5, 0.999)
  # A variant named after the file wins over the machine's.
  assert config_lib.complete_config(get_config("cpu")).steps == 5000

"""pix2pix and CycleGAN through the one training loop: exact resume (the image pools
included), pictures, evaluation, the experiments' --translate_in, errors."""

import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
from helpers import (
  ROOT,
  assert_bitwise_equal,
  complete_checkpoints,
  jsonl,
  logged_steps,
  needs_fashion,
  wait_for,
)
from PIL import Image

from jaxgan.errors import ConfigError
from jaxgan.evaluators import pictures
from jaxgan.steps import pix2pix as pix2pix_step
from jaxgan.training import loop
from jaxgan.training.checkpoint import CheckpointMismatchError
from jaxgan.training.tasks import translation as translation_tasks

pytestmark = pytest.mark.slow  # whole runs and networks: the full suite, not the fast tier


def tiny(blobs, family, **overrides):
  # 28x28 blobs; networks of 4 channels; logging, samples and checkpoints every 4 steps.
  config = dict(family=family, dataset=f"idx:{blobs}", ngf=4, ndf=4, n_layers_d=1,
                batch_size=8, steps=8, checkpoint_every=4, log_every=2, sample_every=4,
                eval_every=0, grid_size=2, progress=False, lr_schedule="linear")
  if family == "pix2pix":
    config.update(num_downs=2, task="edges", dropout_blocks=1)
  else:
    # A constant rate: every CycleGAN run here, whatever its length, compiles one program.
    config.update(n_blocks=1, domain_a=1, domain_b=2, pool_size=4, lr_schedule="constant")
  config.update(overrides)
  return config


def strip(records):
  return [{k: v for k, v in r.items() if k not in ("time", "steps_per_sec")} for r in records]


def resume_from_4(tmp_path, config):
  straight = loop.train_and_evaluate(config, str(tmp_path / "a"))
  shutil.copytree(tmp_path / "a", tmp_path / "b")
  shutil.rmtree(tmp_path / "b" / "checkpoints" / "8")
  resumed = loop.train_and_evaluate(config, str(tmp_path / "b"))
  assert_bitwise_equal(jax.device_get((straight.state_g, straight.state_d)),
                       jax.device_get((resumed.state_g, resumed.state_d)))
  assert strip(jsonl(tmp_path / "a")) == strip(jsonl(tmp_path / "b"))
  return straight


def test_a_cyclegan_run_resumes_bit_exactly_with_its_image_pools(blobs, tmp_path):
  run = resume_from_4(tmp_path, tiny(blobs, "cyclegan"))
  pool = run.state_d["b"].step_state
  # 8 steps of 8 fakes through a pool of 4: full since step 1, swapping since.
  assert int(np.asarray(pool["pool_count"])) == 4 and np.abs(np.asarray(pool["pool"])).max() > 0
  records = jsonl(tmp_path / "b")
  assert {"cycle_a", "cycle_b", "identity_a", "d_a_loss", "g_adv_ab"} <= set(records[-1])
  meta = json.loads((tmp_path / "b" / "checkpoints" / "8" / "meta" / "metadata").read_text())
  assert meta["step_state"] == {"g": [], "d": ["pool", "pool_count"]}
  assert meta["shape_a"] == meta["shape_b"] == [28, 28, 1] and meta["config"]["family"] == (
      "cyclegan")
  # Rows of input | translation | reconstruction: one test image of each domain, 3x size.
  grid = np.asarray(Image.open(tmp_path / "b" / "samples" / "step_0000008.png"))
  assert grid.shape == (3 * (2 * 30 + 2), 3 * (3 * 30 + 2))
  # Another architecture cannot continue it, and says which setting differs.
  with pytest.raises(CheckpointMismatchError, match="ngf"):
    loop.train_and_evaluate(tiny(blobs, "cyclegan", ngf=8, steps=12), str(tmp_path / "b"))


def test_a_pix2pix_run_resumes_bit_exactly_and_translates_from_the_command_line(blobs,
                                                                                tmp_path):
  run = resume_from_4(tmp_path, tiny(blobs, "pix2pix"))
  assert set(jsonl(tmp_path / "a")[-1]) >= {"g_l1", "g_adv", "d_loss"}
  grid = np.asarray(Image.open(tmp_path / "a" / "samples" / "step_0000008.png"))
  assert grid.shape == (3 * (2 * 30 + 2), 3 * (3 * 30 + 2))  # input | output | target
  # --translate_in: the run's generator in inference mode, uint8 out; the same input gives
  # the same bytes.
  edges = np.zeros((3, 28, 28, 1), np.uint8)
  edges[:, 8:20, 8] = edges[:, 8, 8:20] = 255
  np.save(tmp_path / "in.npy", edges)
  child = subprocess.run(
      [sys.executable, os.path.join(ROOT, "experiments", "pix2pix.py"),
       f"--workdir={tmp_path / 'b'}", f"--translate_in={tmp_path / 'in.npy'}",
       f"--translate_out={tmp_path / 'out.npy'}"],
      cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert child.returncode == 0, child.stderr[-3000:]
  assert "wrote 3 translations [3, 28, 28, 1] uint8 from step 8" in child.stdout
  got = np.load(tmp_path / "out.npy")
  want = pictures.to_uint8(pix2pix_step.translate(run.G, jax.device_get(run.state_g),
                                        edges.astype(np.float32) / 127.5 - 1))
  np.testing.assert_array_equal(got, want)
  again, _ = translation_tasks.translate_file(str(tmp_path / "b"), str(tmp_path / "in.npy"),
                                              str(tmp_path / "again.npy"))
  assert np.load(tmp_path / "again.npy").tobytes() == got.tobytes() == again.tobytes()
  # A wrong shape or dtype is refused with what it needs, and nothing is written (the
  # command line prints it as "error: ..." with status 2, as every jaxgan error).
  np.save(tmp_path / "rgb.npy", np.zeros((2, 28, 28, 3), np.uint8))
  with pytest.raises(ConfigError, match=r"translates uint8 images \[N, 28, 28, 1\]"):
    translation_tasks.translate_file(str(tmp_path / "b"), str(tmp_path / "rgb.npy"),
                                     str(tmp_path / "x.npy"))
  np.save(tmp_path / "float.npy", np.zeros((2, 28, 28, 1), np.float32))
  with pytest.raises(ConfigError, match="must be uint8"):
    translation_tasks.translate_file(str(tmp_path / "b"), str(tmp_path / "float.npy"),
                                     str(tmp_path / "x.npy"))
  with pytest.raises(ConfigError, match="no file"):
    translation_tasks.translate_file(str(tmp_path / "b"), str(tmp_path / "missing.npy"),
                                     str(tmp_path / "x.npy"))
  assert not (tmp_path / "x.npy").exists()


@needs_fashion
def test_super_resolution_is_measured_beside_bicubic(tmp_path, capfd):
  # Two steps of an untrained net: the measures exist, are what they say, and print.
  config = dict(family="pix2pix", task="super_resolution", ngf=4, ndf=4, n_layers_d=1,
                num_downs=2, batch_size=8, steps=2, eval_every=2, eval_samples=200,
                grid_size=2, progress=False, log_every=1, dataset="fashion_mnist")
  result = loop.train_and_evaluate(config, str(tmp_path))
  ev = result.evaluation
  assert set(ev) == {"l1", "psnr", "fd", "fd_floor", "bicubic_l1", "bicubic_psnr",
                     "bicubic_fd"}
  # Bicubic upscaling of 14x14 Fashion-MNIST is a decent guess (PSNR 19 dB); two steps of
  # training are not.
  assert 15 < ev["bicubic_psnr"] < 30 and ev["psnr"] < ev["bicubic_psnr"]
  assert ev["bicubic_fd"] < ev["fd"] and 0 <= ev["fd_floor"] < ev["bicubic_fd"]
  out = capfd.readouterr().out
  assert "bicubic upscaling" in out and "NOT above bicubic's" in out


def test_translation_config_errors_are_clear(blobs, tmp_path):
  with pytest.raises(ConfigError, match=r"Unknown config field\(s\) for family=cyclegan: "
                     r"cycle_weigth \(did you mean cycle_weight"):
    loop.train_and_evaluate({"family": "cyclegan", "cycle_weigth": 1.0}, str(tmp_path))
  with pytest.raises(ConfigError, match="task must be one of"):
    loop.train_and_evaluate({"family": "pix2pix", "task": "colourise"}, str(tmp_path))
  with pytest.raises(ConfigError, match="family must be one of"):
    loop.train_and_evaluate({"family": "stylegan"}, str(tmp_path))
  with pytest.raises(ConfigError, match="domain_a and domain_b must differ"):
    loop.train_and_evaluate(tiny(blobs, "cyclegan", domain_b=1), str(tmp_path))


def test_ctrl_c_stops_a_cyclegan_run_at_a_saved_step_and_it_resumes(blobs, tmp_path):
  import signal
  import threading

  def interrupt():
    wait_for(lambda: logged_steps(tmp_path) >= 4)
    os.kill(os.getpid(), signal.SIGINT)

  thread = threading.Thread(target=interrupt, daemon=True)
  thread.start()
  config = tiny(blobs, "cyclegan", steps=10_000, checkpoint_every=1000)
  stopped = loop.train_and_evaluate(config, str(tmp_path))
  thread.join()
  assert stopped.preempted and 4 <= stopped.step < 10_000
  assert complete_checkpoints(tmp_path)[-1] == stopped.step
  # The same command again resumes from there (pools and all) and goes on.
  resumed = loop.train_and_evaluate({**config, "steps": stopped.step + 2}, str(tmp_path))
  assert resumed.step == stopped.step + 2 and not resumed.preempted

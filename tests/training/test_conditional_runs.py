"""Conditional runs of the training loop: exact resume, grids, exports, evaluation, errors."""

import json
import os
import runpy
import shutil

import jax
import numpy as np
import pytest
from helpers import (
  ROOT,
  assert_bitwise_equal,
  complete_checkpoints,
  export,
  jsonl,
  leaves,
  tiny,
)
from PIL import Image

import jaxgan
from jaxgan.errors import ConfigError
from jaxgan.training import config as config_lib
from jaxgan.training import loop
from jaxgan.training.tasks import noise as noise_tasks

pytestmark = pytest.mark.slow  # whole runs and networks: the full suite, not the fast tier


def conditional(blobs, **overrides):
  # A ResNet of G 8 and D 4 channels (width 1/32) on 28x28 blobs labelled i % 10.
  return tiny(blobs, model="resnet", conditional=True, width=1 / 32, latent_dim=8,
              n_critic=2, loss="hinge", lr_schedule="linear", b1=0.0, b2=0.9,
              grid_size=3, **overrides)


def test_a_conditional_run_resumes_bit_exactly_with_a_grid_row_per_class(blobs, tmp_path):
  straight = loop.train_and_evaluate(conditional(blobs, steps=20), str(tmp_path / "a"))
  # The same run stopped after its step-10 checkpoint (the step-20 one never written).
  shutil.copytree(tmp_path / "a", tmp_path / "b")
  shutil.rmtree(tmp_path / "b" / "checkpoints" / "20")
  resumed = loop.train_and_evaluate(conditional(blobs, steps=20), str(tmp_path / "b"))
  assert straight.state_g.num_classes == resumed.state_g.num_classes == 10
  assert_bitwise_equal(leaves(straight), leaves(resumed))
  a_values = [{k: v for k, v in r.items() if k not in ("time", "steps_per_sec")}
              for r in jsonl(tmp_path / "a")]
  b_values = [{k: v for k, v in r.items() if k not in ("time", "steps_per_sec")}
              for r in jsonl(tmp_path / "b")]
  assert a_values == b_values and [r["labels_out_of_range"] for r in a_values] == [0.0] * 4
  meta = json.loads((tmp_path / "b" / "checkpoints" / "20" / "meta" / "metadata").read_text())
  assert meta["num_classes"] == 10 and meta["config"]["conditional"] is True
  # 10 rows (one class each) of 3 images, 28x28 with 2-pixel borders, drawn 3x.
  grid = np.asarray(Image.open(tmp_path / "b" / "samples" / "step_0000020.png"))
  assert grid.shape == (3 * (10 * 30 + 2), 3 * (3 * 30 + 2))
  a = np.asarray(Image.open(tmp_path / "a" / "samples" / "step_0000020.png"))
  np.testing.assert_array_equal(a, grid)
  # The experiment's export: image i of class i % 10, and it says so.
  images, stdout = export(tmp_path / "b", tmp_path / "s.npy", 23, 4)
  assert "(image i of class i % 10)" in stdout
  G, state_g, _ = noise_tasks.load_generator(str(tmp_path / "b"))
  expected = jaxgan.generate(G, state_g, jax.random.key(4), 23, labels=np.arange(23) % 10)
  np.testing.assert_array_equal(images, jaxgan.evaluators.pictures.to_uint8(expected))


def test_linear_schedule_decays_to_zero_over_the_run():
  config = config_lib.complete_config({"lr_schedule": "linear", "steps": 4, "n_critic": 2,
                                  "lr_g": 0.1, "lr_d": 0.2})
  tx_g, tx_d = noise_tasks.make_optimizers(config)
  for tx, lr, updates in ((tx_g, 0.1, 4), (tx_d, 0.2, 8)):
    params = {"w": np.float32(0.0)}
    state = tx.init(params)
    sizes = []
    for _ in range(updates):  # a constant gradient: Adam's direction is 1
      update, state = tx.update({"w": np.float32(1.0)}, state, params)
      sizes.append(-float(update["w"]))
    np.testing.assert_allclose(sizes, [lr * (1 - t / updates) for t in range(updates)],
                               rtol=1e-5)


def test_conditional_needs_labels_and_the_resnet(blobs, tmp_path):
  with pytest.raises(ConfigError,
                     match="conditional=True needs model=resnet, dcgan, stylegan2 or r3gan"):
    loop.train_and_evaluate(tiny(blobs, conditional=True), str(tmp_path))  # model=mlp
  with pytest.raises(ConfigError, match="fake_labels must be one of"):
    loop.train_and_evaluate(conditional(blobs, fake_labels="argmax"), str(tmp_path))
  unconditional = loop.train_and_evaluate(tiny(blobs, steps=10), str(tmp_path / "u"))
  with pytest.raises(jaxgan.training.checkpoint.CheckpointMismatchError, match="conditional"):
    loop.train_and_evaluate(tiny(blobs, steps=20, conditional=True, model="resnet"),
                             str(tmp_path / "u"))
  assert complete_checkpoints(tmp_path / "u") == [10] and unconditional.step == 10


def test_a_checkpoint_of_another_format_is_refused_naming_it(blobs, tmp_path):
  loop.train_and_evaluate(tiny(blobs, steps=10), str(tmp_path))
  meta_file = tmp_path / "checkpoints" / "10" / "meta" / "metadata"
  meta = json.loads(meta_file.read_text())
  assert meta["format"] == 1 and meta["jaxgan"] == jaxgan.__version__
  meta["format"], meta["jaxgan"] = 0, "0.5.0"  # as a jaxgan before checkpoint formats wrote
  meta_file.write_text(json.dumps(meta))
  for use in (lambda: loop.train_and_evaluate(tiny(blobs, steps=20), str(tmp_path)),
              lambda: noise_tasks.load_generator(str(tmp_path))):
    with pytest.raises(jaxgan.training.checkpoint.CheckpointMismatchError) as e:
      use()
    assert "format 0, written by jaxgan 0.5.0" in str(e.value)
    assert "reads format 1 only" in str(e.value) and "another --workdir" in str(e.value)
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["10"]  # nothing moved or written


def cifar10_config(variant="full"):
  return runpy.run_path(os.path.join(ROOT, "experiments", "configs", "cifar10.py"))[
      "get_config"](variant)


def test_the_cifar10_config_is_the_sngan_projection_recipe():
  config = cifar10_config()
  assert (config.dataset, config.model, config.conditional, config.loss) == (
      "cifar10", "resnet", True, "hinge")
  assert (config.lr_g, config.lr_d, config.b1, config.b2) == (2e-4, 2e-4, 0.0, 0.9)
  assert (config.n_critic, config.lr_schedule, config.batch_size, config.steps) == (
      5, "linear", 64, 100_000)
  # Its CPU run: the same recipe, shorter, with G 32 and D 16 channels.
  cpu = cifar10_config("cpu")
  assert (cpu.steps, cpu.g_channels, cpu.d_channels) == (1200, 32, 16)
  assert {k: v for k, v in cpu.items() if k not in ("steps", "g_channels", "d_channels",
                                                      "variant")} == {
      k: v for k, v in config.items() if k not in ("steps", "g_channels", "d_channels",
                                                   "variant")}
  # Its models are the SNGAN-32 pair of the references (Mimicry's cgan_pd_32 counts).
  G, D = noise_tasks.make_models(config_lib.complete_config(config), (32, 32, 3), 10)
  y = (np.zeros(2, np.int32),)
  count = lambda tree: sum(x.size for x in jax.tree.leaves(tree))  # noqa: E731
  vg = jax.eval_shape(lambda: G.init(jax.random.key(0), np.zeros((2, 128)), *y, train=False))
  vd = jax.eval_shape(lambda: D.init(jax.random.key(0), np.zeros((2, 32, 32, 3)), *y,
                                     train=False))
  assert (count(vg["params"]), count(vd["params"])) == (4_304_387, 1_055_105)


def test_the_cifar10_config_trains_on_tfds_mock_data(tmp_path):
  import tensorflow_datasets as tfds

  config = cifar10_config()
  config.update(width=1 / 32, steps=2, batch_size=16, n_critic=1, eval_every=0, grid_size=2,
                progress=False, log_every=1)
  with tfds.testing.mock_data(num_examples=200):
    result = loop.train_and_evaluate(config, str(tmp_path))
  assert result.step == 2 and result.state_g.num_classes == 10
  assert result.state_d.input_shape == (32, 32, 3)
  images = jaxgan.generate(result.G, jax.device_get(result.state_g), jax.random.key(0), 4,
                           labels=np.arange(4))
  assert images.shape == (4, 32, 32, 3)
  grid = np.asarray(Image.open(result.grid))
  assert grid.shape == (3 * (10 * 34 + 2), 3 * (2 * 34 + 2), 3)  # a row per class, 96 px

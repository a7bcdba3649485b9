"""StyleGAN2 and augmentation in the training loop: exact resume with ADA's p, the
path-length mean and w_avg; data_fraction; what a resume refuses."""

import json
import os
import runpy
from unittest import mock

import jax
import numpy as np
import pytest
from helpers import ROOT, blobs_idx_dir, resume_from_4, tiny

from jaxgan.data import sources
from jaxgan.errors import ConfigError
from jaxgan.models import stylegan2_small as jaxgan_small
from jaxgan.training import config as config_lib
from jaxgan.training import loop
from jaxgan.training.checkpoint import CheckpointMismatchError
from jaxgan.training.tasks import noise as noise_tasks

pytestmark = pytest.mark.slow  # whole runs and networks: the full suite, not the fast tier


@pytest.fixture(scope="module")
def blobs8(tmp_path_factory):
  # 8x8 images with a 3x3 square: a StyleGAN2 of two resolutions (4, 8) compiles in half
  # the time of one at 28x28 (synthesised at 32: four).
  return str(blobs_idx_dir(tmp_path_factory.mktemp("blobs8"), size=8, square=3))


def stylegan2(blobs, **overrides):
  # Channels 8 at 4x4 and 8x8, w 8, with what keeps state between steps: ADA (p moves by
  # 32 * 4 / 1000 per adjustment), the path-length mean, w_avg; R1 too. Each runs every
  # step, so the loop compiles one step (on a CPU it compiles one per lazy (R1, PL)
  # pattern: the MLP test below resumes across those).
  config = dict(model="stylegan2", channel_base=64, channel_max=8, w_dim=8, latent_dim=8,
                augment="ada", ada_kimg=1.0, r1_weight=0.1, r1_every=1, pl_weight=1.0,
                pl_every=1, b1=0.0, b2=0.99, steps=8, checkpoint_every=4, log_every=2,
                sample_every=4)
  config.update(overrides)
  return tiny(blobs, **config)


def test_a_stylegan2_ada_run_resumes_bit_exactly_with_p_pl_mean_and_w_avg(blobs8, tmp_path):
  straight, _, records = resume_from_4(blobs8, tmp_path, stylegan2(blobs8))
  sd, sg = straight.state_d, straight.state_g
  assert float(np.asarray(sd.step_state["ada_p"]).ravel()[0]) > 0
  assert float(np.asarray(sg.step_state["pl_mean"]).ravel()[0]) > 0
  w_avg = np.asarray(sg.model_state["moving_stats"]["mapping_net"]["w_avg"])
  assert np.abs(w_avg).max() > 0
  assert "ada_p" in records[-1] and "pl_mean" in records[-1]
  meta = json.loads((tmp_path / "b" / "checkpoints" / "8" / "meta" / "metadata").read_text())
  assert meta["step_state"] == {"g": ["pl_mean", "pl_penalty"],
                                "d": ["ada_count", "ada_p", "ada_signs"]}
  # A run that would keep other state cannot continue this one, and says why.
  with pytest.raises(CheckpointMismatchError, match="step_state"):
    loop.train_and_evaluate(stylegan2(blobs8, augment="diffaugment", steps=12),
                             str(tmp_path / "b"))


def test_a_lazy_r1_run_resumes_bit_exactly_across_the_compiled_patterns(blobs, tmp_path):
  # R1 every 3 steps, resumed at step 4 (a plain step after R1 at 3): on a CPU the loop
  # compiles one step per pattern and must pick each by the global step after a restore.
  config = tiny(blobs, augment="ada", ada_kimg=1.0, r1_weight=0.1, r1_every=3, steps=8,
                checkpoint_every=4, log_every=1, sample_every=4)
  straight, _, records = resume_from_4(blobs, tmp_path, config)
  assert float(np.asarray(straight.state_d.step_state["ada_p"]).ravel()[0]) > 0
  r1 = [r["r1"] for r in records if "r1" in r]
  # R1 is measured on its own steps (0, 3, 6) and reported as the last one measured.
  assert len(set(r1)) == 3 and all(v > 0 for v in r1)


def test_data_fraction_trains_on_the_first_part_of_the_split(blobs, tmp_path):
  source = sources.load_idx(blobs, "train")
  part = source.fraction(0.1)
  n = int(np.ceil(0.1 * len(source)))
  assert len(part) == n and "first" in part.description
  np.testing.assert_array_equal(part.images, source.images[:n])
  np.testing.assert_array_equal(part.labels, source.labels[:n])
  assert source.fraction(1.0) is source
  with pytest.raises(ConfigError, match=r"data_fraction must be in \(0, 1\]"):
    source.fraction(0.0)
  run = loop.train_and_evaluate(tiny(blobs, data_fraction=0.1, steps=2, checkpoint_every=2,
                                      batch_size=16), str(tmp_path))
  assert run.step == 2
  meta = json.loads((tmp_path / "checkpoints" / "2" / "meta" / "metadata").read_text())
  assert f"first {n:,} examples" in meta["data"]


@pytest.mark.parametrize("overrides,message", [
    ({"augment": "mixup"}, "Unknown augment 'mixup'"),
    ({"augment": "diffaugment:zoom"}, "Unknown DiffAugment op"),
    ({"augment": "ada:2"}, r"p must be a probability in \[0, 1\]"),
    ({"r1_every": 0}, "r1_every must be an int >= 1"),
    ({"data_fraction": 1.5}, r"data_fraction must be in \(0, 1\]"),
    ({"style_mixing": 0.9}, "style_mixing and pl_weight need model=stylegan2"),
    ({"model": "stylegan2", "d_architecture": "skip"}, "d_architecture must be one of"),
    ({"model": "dcgan", "conditional": True, "transition_end": 10}, "need model=stylegan2"),
    ({"model": "stylegan2", "conditional": True, "transition_start": 5, "transition_end": 5},
     "0 <= transition_start < transition_end <= steps"),
    ({"model": "stylegan2", "conditional": True, "steps": 100, "transition_end": 200},
     "0 <= transition_start < transition_end <= steps"),
])
def test_bad_options_are_clear_errors(overrides, message):
  with pytest.raises(ConfigError, match=message):
    config_lib.complete_config(overrides)


def test_lazy_regularisation_corrects_adam_as_the_reference():
  config = config_lib.complete_config({"r1_weight": 0.01, "r1_every": 16, "lazy_g_every": 4,
                                  "lr_g": 0.0025, "lr_d": 0.0025, "b1": 0.0, "b2": 0.99})
  tx_g, tx_d = noise_tasks.make_optimizers(config)
  for tx, lr in ((tx_g, 0.0025 * 4 / 5), (tx_d, 0.0025 * 16 / 17)):
    params = {"w": np.float32(0.0)}
    update, _ = tx.update({"w": np.float32(1.0)}, tx.init(params), params)
    np.testing.assert_allclose(-float(update["w"]), lr, rtol=1e-5)


def test_the_stylegan2_cifar10_config_is_the_references_cifar_config():
  config = runpy.run_path(os.path.join(ROOT, "experiments", "configs",
                                       "stylegan2_cifar10.py"))["get_config"]("full")
  assert (config.model, config.conditional, config.augment, config.loss) == (
      "stylegan2", True, "ada", "non_saturating")
  assert (config.lr_g, config.b1, config.b2, config.batch_size) == (0.0025, 0.0, 0.99, 64)
  assert (config.r1_weight, config.r1_every, config.lazy_g_every, config.pl_weight,
          config.style_mixing) == (0.01, 16, 4, 0.0, 0.0)
  assert config.steps * config.batch_size == 100_000_000  # 100,000 kimg
  count = lambda tree: sum(x.size for x in jax.tree.leaves(tree))  # noqa: E731
  for classes, expected in ((10, (20_215_315, 21_513_728)), (0, (19_947_539, 20_720_641))):
    G, D = noise_tasks.make_models(config_lib.complete_config(config), (32, 32, 3), classes)
    y = (np.zeros(2, np.int32),) if classes else ()
    vg = jax.eval_shape(lambda G=G, y=y: G.init(jax.random.key(0), np.zeros((2, 512)), *y,
                                                train=False))
    vd = jax.eval_shape(lambda D=D, y=y: D.init(jax.random.key(0), np.zeros((2, 32, 32, 3)),
                                                *y, train=False))
    # The counts of stylegan2-ada-pytorch's networks.py for this config, summed by hand
    # layer by layer (BUILD_NOTES.md, "StyleGAN2 parameter counts").
    assert (count(vg["params"]), count(vd["params"])) == expected


def test_the_mnist_stylegan2_recipe_is_a_short_cpu_run_of_the_quarter_width_small_pair():
  get_config = runpy.run_path(os.path.join(ROOT, "experiments", "configs",
                                           "mnist.py"))["get_config"]
  assert jax.default_backend() == "cpu"
  auto = config_lib.complete_config(get_config("stylegan2"))
  assert (auto.model, auto.steps, auto.width, auto.augment) == ("stylegan2", 1700, 0.25, "none")
  np.testing.assert_allclose(auto.r1_weight, 0.0002 * 32 ** 2 / 64)  # the reference's auto
  G, D = noise_tasks.make_models(auto, (28, 28, 1))
  # Channels min(base / res, max) with base 1024 * 0.25 and max 128 * 0.25: {4: 32, 8: 32,
  # 16: 16, 32: 8}; the same pair as models.stylegan2_small(width=0.25).
  small_g, small_d = jaxgan_small(width=0.25)
  assert (G.channel_base, G.channel_max) == (small_g.channel_base, small_g.channel_max) == (
      256, 32)
  assert (D.channel_base, D.channel_max, D.mbstd_group_size) == (
      small_d.channel_base, small_d.channel_max, small_d.mbstd_group_size)
  # On an accelerator the config's own width (1.0) and the full run.
  with mock.patch.object(jax, "default_backend", lambda: "gpu"):
    full = config_lib.complete_config(get_config("stylegan2"))
  assert (full.steps, full.width) == (50_000, 1.0)


def test_the_class_transition_applies_to_conditional_runs_only():
  fields = {"model": "stylegan2", "steps": 100, "transition_start": 10, "transition_end": 50}
  conditional = config_lib.complete_config({**fields, "conditional": True})
  G, D = noise_tasks.make_models(conditional, (28, 28, 1), 10)
  assert D.unconditional_head
  assert noise_tasks.make_step(conditional, G, D).transition == (10, 50)
  # An unconditional run has no class to fade in: the same config builds the plain pair.
  unconditional = config_lib.complete_config(fields)
  G, D = noise_tasks.make_models(unconditional, (28, 28, 1))
  assert not D.unconditional_head
  assert noise_tasks.make_step(unconditional, G, D).transition is None


@pytest.mark.slow
def test_a_conditional_run_resumes_bit_exactly_half_way_through_the_class_transition(
    blobs8, tmp_path):
  # The class's weight is a function of the step: resumed at step 4 of 2-6, the run goes on
  # at weight 0.5 as the straight run does (states and every logged metric equal).
  config = stylegan2(blobs8, conditional=True, transition_start=2, transition_end=6,
                     augment="none", pl_weight=0.0)
  straight, _, _ = resume_from_4(blobs8, tmp_path, config)
  assert "b4_out_uc" in straight.state_d.params

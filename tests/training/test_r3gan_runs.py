"""R3GAN in the training loop: a run resumed half-way through its cosine schedules equals
an uninterrupted one, the schedules' values are the cosine's by hand, and bad options are
named before anything is written."""

import math
import os

import jax
import numpy as np
import pytest
from helpers import blobs_idx_dir, resume_from_4, tiny

from jaxgan.errors import ConfigError
from jaxgan.training import loop

pytestmark = pytest.mark.slow  # whole runs: the full suite, not the fast tier


@pytest.fixture(scope="module")
def blobs8(tmp_path_factory):
  return str(blobs_idx_dir(tmp_path_factory.mktemp("blobs8"), size=8, square=3))


def r3gan(blobs, **overrides):
  # Stages 4x4 (16 channels, 4 groups) and 8x8 (8 channels, 2 groups), one block each,
  # conditional; the schedules' course is 200 images, so it ends between steps 6 and 7 of
  # 32 images and a resume at step 4 lands in the middle of it.
  config = dict(model="r3gan", channel_base=64, channel_max=16, group_channels=8,
                stage_blocks=1, latent_dim=64, conditional=True, loss="relativistic",
                r1_weight=0.1, r2_weight=0.1, gamma_final=0.01, spectral_norm=False,
                lr_g=2e-3, lr_d=2e-3, lr_final=5e-4, b1=0.0, b2=0.9, b2_final=0.99,
                schedule_kimg=0.2, ema_kimg=0.1, augment="ada:0.1", augment_p_final=0.5,
                steps=8, checkpoint_every=4, log_every=1, sample_every=4)
  config.update(overrides)
  return tiny(blobs, **config)


def cosine(base, final, images, total=200):
  d = (1 + math.cos(math.pi * min(images, total) / total)) / 2
  return base + (1 - d) * (final - base)


def test_a_run_resumed_in_the_middle_of_its_schedules_equals_an_uninterrupted_one(
    blobs8, tmp_path):
  straight, _, records = resume_from_4(blobs8, tmp_path, r3gan(blobs8))
  # The learning rate and beta2 the optimizers used at their last update (count 7: 224
  # images, past the course's end), by hand.
  for state in (straight.state_g, straight.state_d):
    hyper = jax.device_get(state.opt_state.hyperparams)
    np.testing.assert_allclose(np.ravel(hyper["learning_rate"])[0], 5e-4, rtol=1e-6)
    np.testing.assert_allclose(np.ravel(hyper["b2"])[0], 0.99, rtol=1e-6)
  # The augmentation's p each step used (record n: the step of n * 32 - 32 images seen)
  # follows the cosine from 0.1 to 0.5, the resumed steps included.
  for record in records:
    assert record["ada_p"] == pytest.approx(cosine(0.1, 0.5, (record["step"] - 1) * 32),
                                            rel=1e-5), record["step"]
  assert "r1" in records[-1] and "r2" in records[-1]
  assert os.path.exists(tmp_path / "b" / "samples")


def test_bad_r3gan_options_are_named_before_anything_is_written(blobs8, tmp_path):
  for overrides, message in (
      (dict(group_channels=5), r"set --config.group_channels to a divisor of 32"),
      (dict(schedule_kimg=0.2, r1_every=4), "schedule_kimg"),
      (dict(b2_final=1.0), r"b2_final in \[0, 1\)"),
  ):
    with pytest.raises(ConfigError, match=message):
      loop.train_and_evaluate(r3gan(blobs8, **overrides), str(tmp_path / "w"))
    assert not (tmp_path / "w").exists()

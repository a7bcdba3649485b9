"""The 8-Gaussian ring: the measure itself, and that the MLP GAN learns the target."""

import importlib.util
import math
import os
import sys

import jax
import numpy as np
import pytest
from helpers import ROOT

pytestmark = pytest.mark.slow  # whole runs and networks: the full suite, not the fast tier

# The ring is an example of the experiments, not of the library: load experiments/toy.py.
_SPEC = importlib.util.spec_from_file_location("toy", os.path.join(ROOT, "experiments", "toy.py"))
toy = importlib.util.module_from_spec(_SPEC)
sys.modules["toy"] = toy  # its dataclasses look their module up
_SPEC.loader.exec_module(toy)


def test_ring_centres():
  c = toy.ring_centres()
  np.testing.assert_allclose(np.linalg.norm(c, axis=1), 2.0)
  np.testing.assert_allclose(c[0], [2.0, 0.0], atol=1e-12)
  np.testing.assert_allclose(c[2], [0.0, 2.0], atol=1e-12)


def test_mode_stats_by_hand():
  c = toy.ring_centres()
  # All eight centres, 10 times each: every mode covered, all samples high quality.
  s = toy.mode_stats(np.repeat(c, 10, axis=0), min_count=10)
  assert (s.modes, s.high_quality, s.counts) == (8, 1.0, (10,) * 8)
  # 3 sd = 0.06: a point 0.05 from a centre counts, one 0.07 away does not.
  pts = np.array([c[0] + [0.05, 0.0], c[1] + [0.0, 0.07], [0.0, 0.0], c[1] - [0.03, 0.03]])
  s = toy.mode_stats(pts, min_count=1)
  assert s.counts == (1, 1, 0, 0, 0, 0, 0, 0) and s.modes == 2 and s.high_quality == 0.5
  # Mode collapse: all samples on one mode.
  s = toy.mode_stats(np.repeat(c[3:4], 100, axis=0))
  assert s.modes == 1 and s.high_quality == 1.0


def test_real_samples_have_rayleigh_quality():
  # For an isotropic 2-D Gaussian, P(|x - mu| <= 3 sd) = 1 - exp(-9/2) = 0.98889.
  s = toy.mode_stats(toy.sample_ring(jax.random.key(0), 20_000))
  assert s.modes == 8
  assert abs(s.high_quality - (1 - math.exp(-4.5))) < 0.004
  assert min(s.counts) > 20_000 / 8 * 0.9


def test_mlp_gan_covers_the_ring():
  # The ring recipe's defaults (ring_config: MLP pair, non-saturating, R1 0.1, EMA),
  # 12k steps of batch 64: about 30 s on the 2-core development CPU (BUILD_NOTES.md).
  config = toy.ring_config()
  _, state_g, samples, stats = toy.train_ring(config)
  assert samples.shape == (2_000, 2)
  assert stats.modes >= 7, stats
  assert stats.high_quality >= 0.70, stats

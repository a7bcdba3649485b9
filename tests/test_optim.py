"""R3GAN's cosine schedules: their values by hand, and each as the step and the optimizers
read it."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxgan
from jaxgan import models, optim


def test_the_cosine_by_hand():
  lr = optim.Cosine(2e-4, 5e-5, 20e6)  # R3GAN's learning rate over 20M images
  got = [float(lr(n)) for n in (0, 5e6, 10e6, 20e6, 30e6)]
  # base + (1 - (1 + cos(pi t)) / 2) (final - base): t = 1/4 moves (1 - cos(pi/4)) / 2.
  quarter = 2e-4 + (1 - math.cos(math.pi / 4)) / 2 * (5e-5 - 2e-4)
  np.testing.assert_allclose(got, [2e-4, quarter, 1.25e-4, 5e-5, 5e-5], rtol=1e-6)
  # Rising schedules too (beta2 0.9 -> 0.99, the EMA half-life 0 -> 5M images).
  np.testing.assert_allclose(optim.Cosine(0.9, 0.99, 10)(5), 0.945, rtol=1e-6)
  np.testing.assert_allclose(optim.ema_decay(0.0, 64), 0.0)
  np.testing.assert_allclose(optim.ema_decay(128, 64), 0.5 ** 0.5, rtol=1e-6)
  with pytest.raises(ValueError, match="positive length"):
    optim.Cosine(1, 0, 0)


def test_the_optimizer_follows_the_images_its_updates_saw():
  lr, b2 = optim.Cosine(1e-2, 1e-3, 1000), optim.Cosine(0.9, 0.99, 1000)
  tx = optim.cosine_adam(lr, 0.0, b2, images_per_update=100)
  params = {"w": jnp.ones(3)}
  state = tx.init(params)
  for count in range(12):  # update ``count`` (count updates before it) uses their images
    _, state = tx.update({"w": jnp.full(3, 0.5)}, state, params)
    hp = state.hyperparams  # the values the update just used
    np.testing.assert_allclose(hp["learning_rate"], lr(100 * count), rtol=1e-6)
    np.testing.assert_allclose(hp["b2"], b2(100 * count), rtol=1e-6)
  # After the schedule's end both stay at their final values.
  np.testing.assert_allclose(state.hyperparams["learning_rate"], 1e-3, rtol=1e-6)


def mlp_pair():
  G = models.MLPGenerator(image_shape=(4, 4, 1), hidden=(16,))
  D = models.MLPDiscriminator(hidden=(16,))
  tx = optax.sgd(0.1)
  sg, sd = jaxgan.create_states(jax.random.key(0), G, D, tx, tx, latent_dim=8,
                                image_shape=(4, 4, 1))
  return G, D, sg, sd


def test_the_step_reads_the_gamma_and_the_ema_half_life_from_the_images_seen():
  G, D, sg, sd = mlp_pair()
  batch = {"image": jax.random.uniform(jax.random.key(1), (8, 4, 4, 1), minval=-1, maxval=1)}
  key = jax.random.key(2)
  scale = optim.Cosine(1.0, 0.1, 800)
  half_life = optim.Cosine(0.0, 400.0, 800)
  step = jax.jit(jaxgan.make_train_step(
      G, D, "relativistic", r1_weight=2.0, r2_weight=2.0,
      schedules=optim.StepSchedules(penalty_scale=scale, ema_half_life=half_life)))
  # At step 30, 240 images seen: the gammas are 2 * scale(240); the average's decay
  # 0.5 ** (8 / half_life(240)).
  sg30 = sg.replace(step=jnp.int32(30))
  g1, d1, _ = step(sg30, sd, batch, key)
  gamma = 2.0 * float(scale(240))
  fixed = jax.jit(jaxgan.make_train_step(G, D, "relativistic", r1_weight=gamma,
                                         r2_weight=gamma, ema_decay=None))
  g2, d2, _ = fixed(sg30, sd, batch, key)
  chex.assert_trees_all_close(d1.params, d2.params, rtol=1e-5, atol=1e-7)
  chex.assert_trees_all_close(g1.params, g2.params, rtol=1e-5, atol=1e-7)
  decay = 0.5 ** (8 / float(half_life(240)))
  want = jax.tree.map(lambda e, p: decay * e + (1 - decay) * p, sg.ema_params, g1.params)
  chex.assert_trees_all_close(g1.ema_params, want, rtol=1e-5, atol=1e-7)
  # At step 0 the half-life is 0 images: the average is the parameters.
  g0, _, _ = step(sg, sd, batch, key)
  chex.assert_trees_all_equal(g0.ema_params, g0.params)


def test_an_augmentation_schedule_drives_a_fixed_p_ada_only():
  G, D, sg, sd = mlp_pair()
  p = optim.Cosine(0.0, 0.5, 80)
  step = jaxgan.make_train_step(G, D, augment="ada:0", ema_decay=None,
                                schedules=optim.StepSchedules(augment_p=p))
  sg, sd = step.prepare_states(sg, sd)
  batch = {"image": jnp.zeros((8, 4, 4, 1))}
  _, _, m = jax.jit(step)(sg.replace(step=jnp.int32(5)), sd, batch, jax.random.key(0))
  np.testing.assert_allclose(m["ada_p"], p(40), rtol=1e-6)  # 5 steps of 8 images
  with pytest.raises(ValueError, match="fixed-p ADA"):
    jaxgan.make_train_step(G, D, augment="ada", schedules=optim.StepSchedules(augment_p=p))

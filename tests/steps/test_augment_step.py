"""Augmentation and lazy R1 inside the train step: what D sees, ADA's p, the reg steps."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import assert_close

import jaxgan
from jaxgan import augment, models, parallel
from jaxgan.errors import ConfigError

SHAPE = (8, 8, 1)


class LinearD(nn.Module):
  """D(x) = <w, x> + b: its input gradient is w for every image, so R1 = ||w||^2."""

  @nn.compact
  def __call__(self, x, train=True):
    return nn.Dense(1)(x.reshape(x.shape[0], -1))[:, 0]


class ConstantD(nn.Module):
  """D(x) = value + 0 * <w, x>: a discriminator sure of everything, with a parameter."""

  value: float = 5.0

  @nn.compact
  def __call__(self, x, train=True):
    return self.value + 0.0 * nn.Dense(1)(x.reshape(x.shape[0], -1))[:, 0]


def make(D=None, tx_d=None, **kw):
  G = models.MLPGenerator(image_shape=SHAPE, hidden=(16,))
  D = D if D is not None else models.MLPDiscriminator(hidden=(16,))
  tx = optax.adam(1e-3, b1=0.0, b2=0.99)
  sg, sd = jaxgan.create_states(jax.random.key(0), G, D, tx, tx_d or tx, latent_dim=8,
                                image_shape=SHAPE)
  step = jaxgan.make_train_step(G, D, **kw)
  sg, sd = step.prepare_states(sg, sd)
  return step, sg, sd


def batches(n=4, size=32):
  return [{"image": jax.random.uniform(jax.random.key(10 + i), (size, *SHAPE), minval=-1,
                                       maxval=1)} for i in range(n)]


def run(step, sg, sd, bs, key=None):
  key = jax.random.key(5) if key is None else key
  jitted = jax.jit(step)
  for b in bs:
    sg, sd, m = jitted(sg, sd, b, key)
  return sg, sd, m


@pytest.mark.slow
def test_ada_with_p_zero_trains_exactly_as_no_augmentation():
  plain = run(*make(), batches())
  fixed = run(*make(augment="ada:0.0"), batches())
  assert float(fixed[2]["ada_p"]) == 0.0
  fixed[2].pop("ada_p")
  for a, b in zip(jax.tree.leaves(plain[:2]), jax.tree.leaves(
      (fixed[0], fixed[1].replace(model_state={}))), strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  for k in plain[2]:
    np.testing.assert_array_equal(np.asarray(plain[2][k]), np.asarray(fixed[2][k]))


@pytest.mark.slow
def test_d_sees_augmented_images_and_g_is_trained_through_the_augmentation():
  # DiffAugment's translation zero-fills: a D of <w, x> weighs every pixel, so D's
  # outputs on the reals change; and G's gradient is nonzero and finite through it.
  plain = run(*make(D=LinearD()), batches(1))
  aug = run(*make(D=LinearD(), augment="diffaugment"), batches(1))
  assert float(plain[2]["real_logits"]) != float(aug[2]["real_logits"])
  g = float(aug[2]["g_grad_norm"])
  assert np.isfinite(g) and g > 0


@pytest.mark.parametrize("value,start,expected", [(5.0, 0.5, 0.5 + 3 * 0.128),
                                                  (-5.0, 0.5, 0.5 - 3 * 0.128),
                                                  (-5.0, 0.2, 0.0)])
def test_ada_p_rises_when_d_is_sure_of_the_reals_and_falls_otherwise(value, start, expected):
  # Batch 32, interval 4, kimg 1: each adjustment moves p by 32 * 4 / 1000 = 0.128, after
  # steps 0, 4 and 8 (the reference's batch_idx % interval == 0); sign(D(real)) is +1 or -1
  # against the target 0.6. p never goes below 0.
  ada = augment.ADA(target=0.6, p=start, interval=4, kimg=1.0)
  step, sg, sd = make(D=ConstantD(value), augment=ada, loss="hinge")
  ps = []
  for b in batches(9):
    sg, sd, m = jax.jit(step)(sg, sd, b, jax.random.key(1))
    ps.append(float(m["ada_p"]))
  np.testing.assert_allclose(float(sd.step_state["ada_p"]), expected, atol=1e-6)
  # The p each step used: after step 0's adjustment it changed, then held for 4 steps.
  first = np.clip(start + np.sign(value) * 0.128, 0, None)
  np.testing.assert_allclose(ps[:5], [start, first, first, first, first], atol=1e-6)
  assert int(sd.step_state["ada_count"]) == 0  # reset at step 8's adjustment


def _without_step_state(state):
  return state.replace(model_state=state.module_state)


def test_lazy_r1_fires_on_the_right_steps_with_the_interval_scaled_penalty():
  # D(x) = <w, x> + b has input gradient w for every image, so R1 = ||w||^2 and its
  # gradient is 2w: with SGD the extra update scales w by 1 - lr * k * gamma exactly
  # (k * gamma / 2 * R1) and leaves b alone.
  gamma, k, lr = 0.5, 4, 0.1
  lazy, sg, sd = make(D=LinearD(), tx_d=optax.sgd(lr), r1_weight=gamma, r1_every=k)
  plain, _, _ = make(D=LinearD(), tx_d=optax.sgd(lr))
  lazy, plain = jax.jit(lazy), jax.jit(plain)
  key = jax.random.key(2)
  last_r1 = 0.0
  for i, b in enumerate(batches(9)):
    # From the same states, the lazy step's main D update is the plain step's.
    _, ref, _ = plain(sg, _without_step_state(sd), b, key)
    sg, sd, m = lazy(sg, sd, b, key)
    w_ref = np.asarray(ref.params["Dense_0"]["kernel"])
    w = np.asarray(sd.params["Dense_0"]["kernel"])
    np.testing.assert_array_equal(np.asarray(sd.params["Dense_0"]["bias"]),
                                  np.asarray(ref.params["Dense_0"]["bias"]))
    if i % k == 0:  # steps 0, 4, 8
      assert int(sd.step) == int(ref.step) + 1
      np.testing.assert_allclose(w, w_ref * (1 - lr * k * gamma), rtol=1e-5, atol=1e-7)
      last_r1 = float(np.sum(w_ref.astype(np.float64) ** 2))
    else:
      assert int(sd.step) == int(ref.step)
      np.testing.assert_array_equal(w, w_ref)
    np.testing.assert_allclose(float(m["r1"]), last_r1, rtol=1e-5)
  assert int(sd.step) == 9 + 3


def test_lazy_adam_is_the_references_correction():
  # StyleGAN2-ADA's cifar numbers: lr 0.0025, betas (0, 0.99); D every 16, G every 4.
  for every, lr, b2 in ((16, 0.0025 * 16 / 17, 0.99 ** (16 / 17)), (4, 0.002, 0.99 ** 0.8)):
    tx = jaxgan.lazy_adam(0.0025, 0.0, 0.99, every)
    params = {"w": jnp.ones(())}
    state = tx.init(params)
    g = {"w": jnp.float32(2.0)}
    updates, state = tx.update(g, state, params)
    # Adam's first update with beta1 = 0: -lr * g / (sqrt(g^2 (1 - b2) / (1 - b2)) + eps).
    np.testing.assert_allclose(float(updates["w"]), -lr * 2.0 / (2.0 + 1e-8), rtol=1e-5)
    updates, state = tx.update({"w": jnp.float32(1.0)}, state, params)
    v = (b2 * (1 - b2) * 4 + (1 - b2) * 1) / (1 - b2 ** 2)
    np.testing.assert_allclose(float(updates["w"]), -lr / (np.sqrt(v) + 1e-8), rtol=1e-5)
  with pytest.raises(ConfigError, match="every must be an int >= 1"):
    jaxgan.lazy_adam(1e-3, every=0)


def test_a_step_with_state_of_its_own_needs_prepared_states():
  G = models.MLPGenerator(image_shape=SHAPE, hidden=(16,))
  D = models.MLPDiscriminator(hidden=(16,))
  tx = optax.adam(1e-3)
  sg, sd = jaxgan.create_states(jax.random.key(0), G, D, tx, tx, latent_dim=8,
                                image_shape=SHAPE)
  step = jaxgan.make_train_step(G, D, augment="ada")
  with pytest.raises(ConfigError, match=r"state_d has no ada_count, ada_p, ada_signs.*"
                                        r"train_step.prepare_states\(state_g, state_d\)"):
    step(sg, sd, batches(1)[0], jax.random.key(0))
  sg2, sd2 = step.prepare_states(sg, sd)
  assert float(sd2.step_state["ada_p"]) == 0.0
  # Prepared states pass unchanged; a step keeping nothing leaves states alone.
  again = step.prepare_states(sg2, sd2)
  assert again[1].step_state["ada_p"] is sd2.step_state["ada_p"]
  assert jaxgan.make_train_step(G, D).prepare_states(sg, sd) == (sg, sd)
  with pytest.raises(ConfigError, match="r1_every must be an int >= 1"):
    jaxgan.make_train_step(G, D, r1_weight=1.0, r1_every=0)
  with pytest.raises(ConfigError, match="Unknown augment"):
    jaxgan.make_train_step(G, D, augment="flip")


@pytest.mark.slow
def test_8_devices_equal_one_device_with_augmentation():
  # ADA (its p and accumulator under pmap's and shard_map's reductions) with lazy R1.
  # DiffAugment draws per example as ADA does (test_augment.py: a split batch augments as
  # the whole); test_stylegan2_step.py runs ADA on 8 devices with the StyleGAN2 pair.
  assert jax.device_count() == 8
  G = models.MLPGenerator(image_shape=SHAPE, hidden=(16,))
  D = models.MLPDiscriminator(hidden=(16,))
  ada = augment.ADA(kimg=0.5, interval=1, p=0.2)  # p moves by 32 / 500 per step
  spec = ada
  kw = dict(loss="non_saturating", augment=spec, r1_weight=1.0, r1_every=2)
  tx = optax.sgd(1e-2)

  def fresh(step):
    sg, sd = jaxgan.create_states(jax.random.key(0), G, D, tx, tx, latent_dim=8,
                                  image_shape=SHAPE)
    return step.prepare_states(sg, sd)

  bs = batches(3)
  one = jaxgan.make_train_step(G, D, **kw)
  reference = run(one, *fresh(one), bs, jax.random.key(4))
  step = jaxgan.make_train_step(G, D, axis_name=parallel.AXIS, **kw)
  runs = {"pmap": (parallel.pmap_step(step), parallel.split_batch),
          "shard_map": (parallel.shard_map_step(step, parallel.data_mesh()), lambda b: b)}
  for name, (fn, place) in runs.items():
    sg, sd = fresh(step)
    for b in bs:
      sg, sd, m = fn(sg, sd, place({k: np.asarray(v) for k, v in b.items()}),
                     jax.random.key(4))
    assert_close((sg, sd, m), reference, name=name)
  assert float(reference[1].step_state["ada_p"]) != 0.2  # p moved, the same on 8 devices


@pytest.mark.slow
def test_static_lazy_pattern_equals_the_conditional():
  # The loop's CPU path (train_step.at(step), one compiled step per pattern) computes what
  # lax.cond inside the one step does.
  step, sg, sd = make(D=LinearD(), r1_weight=0.5, r1_every=3, augment="diffaugment")
  cond = jax.jit(step)
  a, b, compiled = (sg, sd), (sg, sd), {}  # one compiled step per pattern, as in the loop
  for i, batch in enumerate(batches(4)):
    assert step.lazy_at(i) == (i % 3 == 0, False)
    fixed = step.at(i)
    assert fixed.lazy == step.lazy_at(i) and fixed.r1_every == 3
    *a, ma = cond(*a, batch, jax.random.key(3))
    *b, mb = compiled.setdefault(fixed.lazy, jax.jit(fixed))(*b, batch, jax.random.key(3))
    assert_close((a, ma), (b, mb), tol=1e-6, name=f"step {i}")
  assert int(a[1].step) == int(b[1].step) == 4 + 2
  with pytest.raises(ConfigError, match="lazy must be None or a pair of Python bools"):
    dataclasses.replace(step, lazy=True)(sg, sd, batches(1)[0], jax.random.key(0))

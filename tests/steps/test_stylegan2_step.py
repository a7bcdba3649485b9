"""StyleGAN2 in the train step: style mixing, path-length regularisation, truncation at
sampling, and 8 devices against one."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import assert_close

import jaxgan
from jaxgan import models, parallel
from jaxgan.errors import ConfigError
from jaxgan.steps import noise as noise_step

SHAPE = (8, 8, 1)
LATENT = 8


def pair(classes=0):
  G = models.StyleGAN2Generator(SHAPE, w_dim=8, channel_base=64, channel_max=8,
                                num_classes=classes)
  D = models.StyleGAN2Discriminator(channel_base=64, channel_max=8, num_classes=classes)
  return G, D


def fresh(G, D, step, tx=None, classes=0):
  tx = tx or optax.adam(2e-3, b1=0.0, b2=0.99)
  sg, sd = jaxgan.create_states(jax.random.key(0), G, D, tx, tx, latent_dim=LATENT,
                                image_shape=SHAPE, num_classes=classes)
  return step.prepare_states(sg, sd)


def batches(n=3, size=16):
  return [{"image": jax.random.uniform(jax.random.key(20 + i), (size, *SHAPE), minval=-1,
                                       maxval=1)} for i in range(n)]


def train(step, sg, sd, bs, key=None):
  key = jax.random.key(9) if key is None else key
  jitted = jax.jit(step)
  history = []
  for b in bs:
    sg, sd, m = jitted(sg, sd, b, key)
    history.append(m)
  return sg, sd, history


@pytest.mark.slow
def test_mixing_probability_zero_equals_no_mixing():
  G, D = pair()
  runs = {}
  for prob in (0.0, 1e-30):
    step = jaxgan.make_train_step(G, D, style_mixing=prob)
    runs[prob] = train(step, *fresh(G, D, step), batches(2))[:2]
  # 1e-30 draws cutoffs but never mixes (a uniform float32 is never below it): the mixing
  # machinery with the cutoff at num_ws is exactly no mixing. (That a cutoff below num_ws
  # mixes is test_stylegan2.py's; that the step mixes, the 8-device test's history.)
  for a, b in zip(jax.tree.leaves(runs[0.0]), jax.tree.leaves(runs[1e-30]), strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.slow
def test_path_length_fires_every_pl_every_steps_and_keeps_the_step_counter():
  G, D = pair()
  step = jaxgan.make_train_step(G, D, pl_weight=2.0, pl_every=4)
  sg, sd = fresh(G, D, step)
  start = (sg, sd)
  sg, sd, hist = train(step, sg, sd, batches(6))
  # The loop's CPU path: the step with its (R1, PL) pattern fixed instead of lax.cond.
  s, compiled = start, {}  # one compiled step per pattern, as the loop keeps them
  for i, b in enumerate(batches(6)):
    fixed = step.at(i)
    *s, m = compiled.setdefault(fixed.lazy, jax.jit(fixed))(*s, b, jax.random.key(9))
  assert len(compiled) == 2  # PL's step and the plain one
  assert_close((s, m), (sg, sd, hist[-1]), tol=1e-5, name="static lazy")
  assert int(sg.step) == 6  # the iteration counter: PL updates are not counted
  means = [float(m["pl_mean"]) for m in hist]
  # pl_mean moves on steps 0 and 4 only, by lerp(pl_mean, mean(L), 0.01) with L > 0.
  assert means[0] > 0 and means[1] == means[2] == means[3] == means[0]
  assert means[4] != means[3] and means[5] == means[4]
  assert float(hist[0]["pl_penalty"]) >= 0
  # Adam's counter in G saw the 6 steps' updates and the 2 path-length ones (steps 0, 4).
  adam = lambda s: isinstance(s, optax.ScaleByAdamState)  # noqa: E731
  count = lambda s: int([x for x in jax.tree.leaves(s.opt_state, is_leaf=adam)  # noqa: E731
                         if adam(x)][0].count)
  assert count(start[0]) == 0 and count(sg) == 8


@pytest.mark.slow
def test_path_length_matches_the_jacobian():
  # The first PL update from a state: pl_mean = 0.01 * mean_n sqrt(mean_l sum_w g^2), with
  # g = J^T y the gradient of sum(img * y) w.r.t. ws, here formed from the full Jacobian.
  G, D = pair()
  config = jaxgan.make_train_step(G, D, pl_weight=1.0, pl_every=1)
  sg, _ = fresh(G, D, config)
  key = jax.random.key(3)
  new = jax.jit(config._path_length, static_argnums=(0, 1))(0, 8, key, sg)
  local = 4
  k_z, _, k_noise, k_drop, _ = jax.random.split(key, 5)
  z = jaxgan.sample_latent(k_z, local, LATENT)
  variables = sg.variables()
  ws = G.apply(variables, z, train=True, method="mapping", mutable=["moving_stats"])[0]
  rngs = config._rngs(k_drop)
  synth = lambda ws: G.apply(variables, ws, train=True, method="synthesis",  # noqa: E731
                             rngs=rngs, mutable=["noise_const"])[0]
  img = synth(ws)
  noise = jaxgan.rng.example_normal(k_noise, local, img.shape[1:]) / np.sqrt(8 * 8)
  jac = jax.jit(jax.jacrev(synth))(ws)  # [N, H, W, C, N, L, W]
  g = np.einsum("nhwcmlk,nhwc->mlk", np.asarray(jac, np.float64), np.asarray(noise, np.float64))
  lengths = np.sqrt(np.mean(np.sum(g ** 2, axis=2), axis=1))
  np.testing.assert_allclose(float(new.step_state["pl_mean"]), 0.01 * lengths.mean(), rtol=1e-4)
  np.testing.assert_allclose(float(new.step_state["pl_penalty"]),
                             np.mean((lengths - 0.01 * lengths.mean()) ** 2), rtol=1e-4)


@pytest.mark.slow
def test_truncation_at_sampling():
  G, D = pair()
  step = jaxgan.make_train_step(G, D)
  sg, sd = fresh(G, D, step)
  sg, sd, _ = train(step, sg, sd, batches(2))  # w_avg moves in training
  plain = jaxgan.generate(G, sg, jax.random.key(1), 6)
  same = jaxgan.generate(G, sg, jax.random.key(1), 6, truncation_psi=1.0)
  np.testing.assert_array_equal(np.asarray(plain), np.asarray(same))
  avg = np.asarray(jaxgan.generate(G, sg, jax.random.key(1), 6, truncation_psi=0.0))
  np.testing.assert_allclose(avg, np.broadcast_to(avg[:1], avg.shape), atol=1e-6)
  half = np.asarray(jaxgan.generate(G, sg, jax.random.key(1), 6, truncation_psi=0.5))
  spread = lambda x: float(np.std(x, axis=0).mean())  # noqa: E731
  assert spread(avg) < spread(half) < spread(np.asarray(plain))
  dc_g, dc_d = models.DCGANGenerator(width=0.125), models.DCGANDiscriminator(width=0.125)
  tx = optax.adam(1e-3)
  s, _ = jaxgan.create_states(jax.random.key(0), dc_g, dc_d, tx, tx, latent_dim=100,
                              image_shape=(28, 28, 1))
  with pytest.raises(ConfigError, match="truncation_psi needs a style-based generator"):
    jaxgan.generate(dc_g, s, jax.random.key(0), 2, truncation_psi=0.7)


def test_style_options_errors():
  G, D = pair()
  dc_g, dc_d = models.DCGANGenerator(width=0.125), models.DCGANDiscriminator(width=0.125)
  with pytest.raises(ConfigError, match="need a style-based generator"):
    jaxgan.make_train_step(dc_g, dc_d, style_mixing=0.9)
  with pytest.raises(ConfigError, match="need a style-based generator"):
    jaxgan.make_train_step(dc_g, dc_d, pl_weight=2.0)
  with pytest.raises(ConfigError, match=r"style_mixing must be a probability in \[0, 1\]"):
    jaxgan.make_train_step(G, D, style_mixing=1.5)
  with pytest.raises(ConfigError, match="pl_every must be an int >= 1"):
    jaxgan.make_train_step(G, D, pl_weight=2.0, pl_every=0)


@pytest.mark.slow
def test_8_devices_equal_one_device_with_the_whole_stylegan2_recipe():
  # Noise inputs (per example), contiguous mbstd groups (4 of the 4 per device), style
  # mixing, R1, path length on half of each device's batch, ADA, the class fading in
  # (weights 0, 0.5, 1): the same run. (R1 and PL run every step here, which compiles no
  # lax.cond; their lazy schedule does not depend on the devices, and is checked against
  # the static patterns above.)
  assert jax.device_count() == 8
  G, D = pair(classes=3)
  D = D.clone(unconditional_head=True)
  kw = dict(style_mixing=0.9, pl_weight=2.0, pl_every=1, r1_weight=1.0, r1_every=1,
            augment=jaxgan.augment.ADA(p=0.2, interval=1, kimg=1.0), transition=(0, 2))
  tx = optax.sgd(1e-2)
  bs = [{**b, "label": jnp.arange(32, dtype=jnp.int32) % 3} for b in batches(3, 32)]
  one = jaxgan.make_train_step(G, D, **kw)
  sg, sd, hist = train(one, *fresh(G, D, one, tx, 3), bs, jax.random.key(4))
  reference = (sg, sd, hist[-1])
  assert float(hist[-1]["pl_mean"]) > 0 and float(sd.step_state["ada_p"]) != 0.2
  # shard_map with its varying-axes checks (pmap runs the same step code; both mappings
  # are compared for every other family in test_parallel.py).
  step = jaxgan.make_train_step(G, D, axis_name=parallel.AXIS, **kw)
  fn = parallel.shard_map_step(step, parallel.data_mesh())
  sg, sd = fresh(G, D, step, tx, 3)
  for b in bs:
    sg, sd, m = fn(sg, sd, {k: np.asarray(v) for k, v in b.items()}, jax.random.key(4))
  assert_close((sg, sd, m), reference, name="shard_map")


def test_transition_weight_by_hand():
  steps = jnp.array([0, 100, 150, 200, 300, 500])
  np.testing.assert_allclose(noise_step.transition_weight((100, 300), steps),
                             [0, 0, 0.25, 0.5, 1, 1])


def test_before_the_transition_the_labels_do_not_matter_and_after_it_they_do():
  G = models.StyleGAN2Generator(SHAPE, w_dim=8, channel_base=64, channel_max=8, num_classes=3)
  D = models.StyleGAN2Discriminator(channel_base=64, channel_max=8, num_classes=3,
                                    unconditional_head=True)
  step = jaxgan.make_train_step(G, D, transition=(0, 2))  # weights 0, 0.5 at steps 0, 1
  jitted = jax.jit(step)
  runs = []
  for y in (jnp.arange(16, dtype=jnp.int32) % 3, jnp.arange(16, dtype=jnp.int32) // 6):
    sg, sd = fresh(G, D, step, classes=3)
    states = []
    for b in batches(2):
      sg, sd, _ = jitted(sg, sd, {**b, "label": y}, jax.random.key(9))
      states.append((sg, sd))
    runs.append(states)
  # Step 0 trains an unconditional pair: the real batch's labels change nothing.
  assert_close(runs[0][0], runs[1][0], tol=0, name="step 0: ")
  # Step 1 (weight 0.5): D's projection sees them.
  a, b = runs[0][1][1].params, runs[1][1][1].params
  assert not np.allclose(a["mapping"]["embed"], b["mapping"]["embed"])


def test_transition_errors():
  G, D = pair(classes=3)
  head = models.StyleGAN2Discriminator(channel_base=64, channel_max=8, num_classes=3,
                                       unconditional_head=True)
  dc_g, dc_d = models.DCGANGenerator(width=0.125), models.DCGANDiscriminator(width=0.125)
  with pytest.raises(ConfigError, match="without it"):
    jaxgan.make_train_step(G, D, transition=(0, 10))
  with pytest.raises(ConfigError, match="needs a StyleGAN2Generator"):
    jaxgan.make_train_step(dc_g, dc_d, transition=(0, 10))
  for bad in ((10, 10), (-1, 5), (0.5, 2), (3,), "0,10"):
    with pytest.raises(ConfigError, match="0 <= start < end"):
      jaxgan.make_train_step(G, head, transition=bad)
  unconditional = models.StyleGAN2Discriminator(channel_base=64, channel_max=8,
                                                unconditional_head=True)
  G0 = models.StyleGAN2Generator(SHAPE, w_dim=8, channel_base=64, channel_max=8)
  step = jaxgan.make_train_step(G0, unconditional, transition=(0, 10))
  with pytest.raises(ConfigError, match="the states are unconditional"):
    step(*fresh(G0, unconditional, step), batches(1)[0], jax.random.key(0))

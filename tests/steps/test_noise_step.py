"""make_train_step / create_states: purity, tracing, randomness, options and errors."""

import warnings

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxgan
from jaxgan import models

LATENT = 8


def tiny_mlp_pair():
  G = models.MLPGenerator(image_shape=(4, 4, 1), hidden=(16,))
  D = models.MLPDiscriminator(hidden=(16,))
  return G, D


def make(G, D, image_shape=(4, 4, 1), lr=1e-3, seed=0):
  return jaxgan.create_states(jax.random.key(seed), G, D, optax.adam(lr), optax.adam(lr),
                              latent_dim=LATENT, image_shape=image_shape)


def batch_of(shape, n=8, seed=1):
  return {"image": jax.random.uniform(jax.random.key(seed), (n, *shape), minval=-1, maxval=1),
          "label": jnp.zeros((n,), jnp.int32)}


def tree_equal(a, b):
  return all(np.array_equal(x, y) for x, y in
             zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def test_traces_once_over_ten_calls_and_updates_both_networks():
  G, D = tiny_mlp_pair()
  sg0, sd0 = make(G, D)
  step = jaxgan.make_train_step(G, D, "hinge", gp_weight=1.0)
  jitted = jax.jit(chex.assert_max_traces(step.__call__, n=1))
  sg, sd = sg0, sd0
  for i in range(10):
    sg, sd, metrics = jitted(sg, sd, batch_of((4, 4, 1), seed=i), jax.random.key(0))
  assert int(sg.step) == 10 and int(sd.step) == 10
  for before, after in ((sg0.params, sg.params), (sd0.params, sd.params)):
    for x, y in zip(jax.tree.leaves(before), jax.tree.leaves(after), strict=True):
      assert not np.allclose(x, y), "every parameter array must move"
  assert set(metrics) == {"d_loss", "g_loss", "real_logits", "fake_logits", "d_grad_norm",
                          "g_grad_norm", "gp"}
  for name, value in metrics.items():
    assert value.shape == () and np.isfinite(value), name


@pytest.mark.slow
def test_same_key_bit_identical_different_key_different():
  G = models.DCGANGenerator(width=0.125)
  D = models.DCGANDiscriminator(width=0.125, spectral_norm=True)
  sg, sd = make(G, D, image_shape=(28, 28, 1))
  step = jax.jit(jaxgan.make_train_step(G, D, "non_saturating"))
  batch = batch_of((28, 28, 1), n=4)
  a = step(sg, sd, batch, jax.random.key(5))
  b = step(sg, sd, batch, jax.random.key(5))
  c = step(sg, sd, batch, jax.random.key(6))
  assert tree_equal(a, b)
  assert not np.array_equal(a[2]["fake_logits"], c[2]["fake_logits"])
  assert not tree_equal(a[0].params, c[0].params)


@pytest.mark.slow
def test_each_call_draws_fresh_noise_from_the_same_root_key():
  # The step folds its counter into the key: calling it twice with the same root key
  # and the same batch must not repeat the noise.
  G, D = tiny_mlp_pair()
  sg, sd = make(G, D, lr=0.0)  # parameters frozen: only the noise can differ
  step = jax.jit(jaxgan.make_train_step(G, D, ema_decay=None))
  batch = batch_of((4, 4, 1))
  sg1, sd1, m1 = step(sg, sd, batch, jax.random.key(0))
  _, _, m2 = step(sg1, sd1, batch, jax.random.key(0))
  assert m1["real_logits"] == m2["real_logits"]  # same D, same real batch
  assert m1["fake_logits"] != m2["fake_logits"]  # new latent vectors
  # A legacy uint32 key gives the same result as the typed key it wraps (its own
  # compilation: on this small pair rather than the DCGAN above).
  legacy = step(sg, sd, batch, jax.random.key_data(jax.random.key(0)))
  assert tree_equal(legacy, (sg1, sd1, m1))


def test_step_is_pure_and_donatable():
  G, D = tiny_mlp_pair()
  sg, sd = make(G, D)
  copy_g, copy_d = jax.tree.map(np.array, (sg.params, sd.params))
  step = jaxgan.make_train_step(G, D)
  jax.jit(step)(sg, sd, batch_of((4, 4, 1)), jax.random.key(0))
  assert tree_equal(copy_g, sg.params) and tree_equal(copy_d, sd.params)  # inputs untouched
  donated = jax.jit(step, donate_argnums=(0, 1))
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # e.g. "Some donated buffers were not usable"
    for _ in range(3):
      sg, sd, _ = donated(sg, sd, batch_of((4, 4, 1)), jax.random.key(0))
  assert int(sg.step) == 3


def test_scan_of_steps_equals_loop_of_steps():
  # The README's usage: the step inside the user's own jit and lax.scan.
  G, D = tiny_mlp_pair()
  sg, sd = make(G, D)
  step = jaxgan.make_train_step(G, D, "least_squares")
  images = jax.random.uniform(jax.random.key(3), (5, 8, 4, 4, 1), minval=-1, maxval=1)
  key = jax.random.key(9)

  @jax.jit
  def train_k(sg, sd, images):
    def body(carry, x):
      sg, sd, metrics = step(*carry, {"image": x}, key)
      return (sg, sd), metrics
    (sg, sd), metrics = jax.lax.scan(body, (sg, sd), images)
    return sg, sd, metrics

  sg_scan, sd_scan, metrics = train_k(sg, sd, images)
  jstep = jax.jit(step)
  for x in images:
    sg, sd, last = jstep(sg, sd, {"image": x}, key)
  # Same computation, but XLA may fuse the scanned body differently: float tolerance.
  chex.assert_trees_all_close((sg_scan.params, sd_scan.params), (sg.params, sd.params),
                              rtol=1e-5, atol=1e-6)
  assert metrics["g_loss"].shape == (5,)
  np.testing.assert_allclose(metrics["g_loss"][-1], last["g_loss"], rtol=1e-5)


def test_n_critic_weight_clip_and_metrics():
  G, D = tiny_mlp_pair()
  sg, sd = make(G, D, lr=1e-2)
  step = jax.jit(jaxgan.make_train_step(G, D, "wasserstein", n_critic=5, clip=0.01))
  for i in range(2):
    sg, sd, metrics = step(sg, sd, batch_of((4, 4, 1), seed=i), jax.random.key(0))
  assert int(sd.step) == 10 and int(sg.step) == 2
  assert max(float(jnp.abs(p).max()) for p in jax.tree.leaves(sd.params)) <= 0.01 + 1e-9
  assert "gp" not in metrics and "r1" not in metrics


def test_r1_metric_and_weight():
  G, D = tiny_mlp_pair()
  sg, sd = make(G, D)
  batch = batch_of((4, 4, 1))
  _, sd_r1, m = jax.jit(jaxgan.make_train_step(G, D, r1_weight=10.0))(sg, sd, batch,
                                                                       jax.random.key(0))
  _, sd_0, m0 = jax.jit(jaxgan.make_train_step(G, D))(sg, sd, batch, jax.random.key(0))
  # Independent check of the logged value: R1 of D at the initial params on the real batch.
  def d_fn(x):
    return D.apply({"params": sd.params}, x, train=True)
  want = jnp.mean(jnp.sum(jax.grad(lambda x: d_fn(x).sum())(batch["image"]) ** 2,
                          axis=(1, 2, 3)))
  np.testing.assert_allclose(m["r1"], want, rtol=1e-5)
  assert "r1" not in m0 and not tree_equal(sd_r1.params, sd_0.params)


def test_ema_follows_its_formula():
  G, D = tiny_mlp_pair()
  sg, sd = make(G, D)
  step = jax.jit(jaxgan.make_train_step(G, D, ema_decay=0.999))
  sg1, sd1, _ = step(sg, sd, batch_of((4, 4, 1)), jax.random.key(0))
  # Step 0: warm-up decay min(0.999, (1 + 0) / (10 + 0)) = 0.1.
  want = jax.tree.map(lambda e, p: 0.1 * e + 0.9 * p, sg.ema_params, sg1.params)
  chex.assert_trees_all_close(sg1.ema_params, want, rtol=1e-6)
  sg2, _, _ = step(sg1, sd1, batch_of((4, 4, 1), seed=2), jax.random.key(0))
  want = jax.tree.map(lambda e, p: (2 / 11) * e + (9 / 11) * p, sg1.ema_params, sg2.params)
  chex.assert_trees_all_close(sg2.ema_params, want, rtol=1e-6)
  # Disabled: the average is the parameters.
  sg3, _, _ = jax.jit(jaxgan.make_train_step(G, D, ema_decay=None))(
      sg, sd, batch_of((4, 4, 1)), jax.random.key(0))
  assert tree_equal(sg3.ema_params, sg3.params)


def test_sample_latent_depends_on_global_index_only():
  key = jax.random.key(4)
  full = jaxgan.sample_latent(key, 8, 3)
  np.testing.assert_array_equal(jaxgan.sample_latent(key, 4, 3, offset=4), full[4:])
  np.testing.assert_array_equal(full[5], jaxgan.rng.example_normal(key, 1, (3,), offset=5)[0])
  assert not np.allclose(full, jaxgan.sample_latent(jax.random.key(5), 8, 3))


def test_axis_name_split_batch_equals_whole_batch():
  # Two devices (a vmapped named axis) with half the batch each end where one device
  # with the whole batch ends: the noise of an example depends on its global index and
  # gradients are averaged over the axis. No BN or dropout in this pair.
  G, D = tiny_mlp_pair()
  sg, sd = make(G, D)
  images = batch_of((4, 4, 1), n=8)["image"]
  one = jax.jit(jaxgan.make_train_step(G, D, gp_weight=1.0))
  two = jax.jit(jax.vmap(jaxgan.make_train_step(G, D, gp_weight=1.0, axis_name="d"),
                         in_axes=(None, None, 0, None), out_axes=(None, None, None),
                         axis_name="d"))
  # Full float32 matmuls: on GPUs JAX's default is TF32, whose rounding (~1e-3 relative,
  # seen on an H100) differs between the two batch layouts.
  with jax.default_matmul_precision("highest"):
    a = one(sg, sd, {"image": images}, jax.random.key(1))
    b = two(sg, sd, {"image": images.reshape(2, 4, 4, 4, 1)}, jax.random.key(1))
  chex.assert_trees_all_close(a, b, rtol=2e-5, atol=1e-6)


class TinyG(nn.Module):
  """A user's own generator: 1-D samples, with BatchNorm."""

  @nn.compact
  def __call__(self, z, train=True):
    h = nn.Dense(32)(z)
    h = nn.BatchNorm(use_running_average=not train)(h)
    return nn.Dense(1)(nn.relu(h))


class TinyD(nn.Module):
  """A user's own discriminator, with dropout and a [B, 1] output."""

  @nn.compact
  def __call__(self, x, train=True):
    h = nn.leaky_relu(nn.Dense(32)(x), 0.2)
    h = nn.Dropout(0.1, deterministic=not train)(h)
    return nn.Dense(1)(h)


def test_users_own_modules_learn_a_gaussian():
  # Target N(3, 0.5^2); the generator starts near 0. After training its samples must have
  # moved to the target's mean and roughly its spread.
  G, D = TinyG(), TinyD()
  sg, sd = jaxgan.create_states(jax.random.key(0), G, D, optax.adam(3e-3, b1=0.5),
                                optax.adam(3e-3, b1=0.5), latent_dim=4, image_shape=(1,))
  step = jaxgan.make_train_step(G, D, "non_saturating")

  @jax.jit
  def train(sg, sd):
    def body(carry, i):
      real = 3.0 + 0.5 * jax.random.normal(jax.random.fold_in(jax.random.key(1), i), (128, 1))
      sg, sd, _ = step(*carry, {"image": real}, jax.random.key(2))
      return (sg, sd), None
    return jax.lax.scan(body, (sg, sd), jnp.arange(1500))[0]

  before = jaxgan.generate(G, sg, jax.random.key(3), 2000, use_ema=False)
  sg, sd = train(sg, sd)
  after = jaxgan.generate(G, sg, jax.random.key(3), 2000)
  assert abs(float(before.mean()) - 3.0) > 2.0
  assert abs(float(after.mean()) - 3.0) < 0.2, float(after.mean())
  assert 0.25 < float(after.std()) < 1.0, float(after.std())
  assert "batch_stats" in sg.model_state


# -- errors ------------------------------------------------------------------------------


def test_error_image_shape_mismatch():
  G, D = tiny_mlp_pair()
  sg, sd = make(G, D)
  step = jax.jit(jaxgan.make_train_step(G, D))
  with pytest.raises(ValueError, match=r"batch\['image'\] has shape \(8, 5, 4, 1\).*\(4, 4, 1\)"):
    step(sg, sd, batch_of((5, 4, 1)), jax.random.key(0))
  with pytest.raises(ValueError, match="has shape"):
    step(sg, sd, {"image": jnp.zeros((4, 4, 1))}, jax.random.key(0))
  with pytest.raises(TypeError, match="floating point"):
    step(sg, sd, {"image": jnp.zeros((8, 4, 4, 1), jnp.uint8)}, jax.random.key(0))
  with pytest.raises(TypeError, match=r"batch must be a dict.*keys \['x'\]"):
    step(sg, sd, {"x": jnp.zeros((8, 4, 4, 1))}, jax.random.key(0))
  with pytest.raises(ValueError, match="looks like a discriminator state"):
    step(sd, sg, batch_of((4, 4, 1)), jax.random.key(0))


class PatchD(nn.Module):
  @nn.compact
  def __call__(self, x, train=True):
    return nn.Conv(1, (3, 3))(x)  # [B, H, W, 1]: not one logit per example


def test_error_discriminator_output_shape():
  G, _ = tiny_mlp_pair()
  with pytest.raises(ValueError, match=r"one logit per example.*shape \(1, 4, 4, 1\)"):
    make(G, PatchD())


def test_error_generator_output_does_not_match_image_shape():
  G, D = tiny_mlp_pair()
  with pytest.raises(ValueError, match=r"examples of shape \(4, 4, 1\).*image_shape=\(28, 28, 1\)"):
    make(G, D, image_shape=(28, 28, 1))
  with pytest.raises(TypeError, match="instance"):
    make(models.MLPGenerator, D)
  with pytest.raises(ValueError, match="latent_dim"):
    jaxgan.create_states(jax.random.key(0), G, D, optax.sgd(1.0), optax.sgd(1.0),
                         latent_dim=0, image_shape=(4, 4, 1))


def test_error_bad_options_and_loss_name():
  G, D = tiny_mlp_pair()
  with pytest.raises(ValueError, match="Unknown loss 'wgan-gpp'"):
    jaxgan.make_train_step(G, D, "wgan-gpp")
  for kwargs, pattern in (({"n_critic": 0}, "n_critic"), ({"gp_weight": -1}, "gp_weight"),
                          ({"clip": 0}, "clip"), ({"ema_decay": 1.0}, "ema_decay")):
    with pytest.raises(ValueError, match=pattern):
      jaxgan.make_train_step(G, D, **kwargs)


def test_abstract_states_match_created_states():
  G, D = tiny_mlp_pair()
  tx = optax.adam(1e-3)  # the optimizer is static tree structure: the same object in both
  abstract = jaxgan.abstract_states(G, D, tx, tx, latent_dim=LATENT, image_shape=(4, 4, 1))
  concrete = jaxgan.create_states(jax.random.key(0), G, D, tx, tx, latent_dim=LATENT,
                                  image_shape=(4, 4, 1))
  assert jax.tree.structure(abstract) == jax.tree.structure(concrete)
  for a, c in zip(jax.tree.leaves(abstract), jax.tree.leaves(concrete), strict=True):
    assert a.shape == c.shape and a.dtype == c.dtype


@pytest.mark.slow
def test_generate_is_the_generator_on_its_latents_in_inference_mode():
  # generate compiles with jaxgan.cpu's options (XLA's convolutions on the CPU); the
  # reference is a plain jit of G.apply on the same latents, with the EMA or raw weights.
  G, D = models.DCGANGenerator(width=0.25), models.DCGANDiscriminator(width=0.25)
  tx = optax.adam(1e-3)
  sg, _ = jaxgan.create_states(jax.random.key(0), G, D, tx, tx, latent_dim=16,
                               image_shape=(28, 28, 1))
  noisy = jax.tree.map(lambda p: p + 0.05 * jax.random.normal(jax.random.key(5), p.shape),
                       sg.params)
  sg = sg.replace(ema_params=noisy)  # EMA weights distinct from the raw ones
  z = jaxgan.sample_latent(jax.random.key(3), 6, 16)
  apply = jax.jit(lambda params, z: G.apply(sg.variables(params), z, train=False))
  for use_ema, params in ((True, noisy), (False, sg.params)):
    images = jaxgan.generate(G, sg, jax.random.key(3), 6, use_ema=use_ema)
    np.testing.assert_allclose(images, apply(params, z), atol=2e-5)
  # A draw in chunks is the same draw.
  whole = jaxgan.generate(G, sg, jax.random.key(3), 6)
  parts = [jaxgan.generate(G, sg, jax.random.key(3), 3, offset=o) for o in (0, 3)]
  np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-6)


class ConstG(nn.Module):
  """A generator whose every sample is one learned image: its fakes are known without the
  step's latents, so a hand-written step can be compared with the library's."""

  @nn.compact
  def __call__(self, z, train=True):
    image = self.param("image", nn.initializers.normal(1.0), (4, 4, 1))
    return jnp.broadcast_to(image, (z.shape[0], 4, 4, 1))


def test_relativistic_step_with_r1_and_r2_equals_a_step_written_by_hand():
  G, D = ConstG(), models.MLPDiscriminator(hidden=(16,))
  sg, sd = make(G, D, lr=1e-2)
  batch = batch_of((4, 4, 1))
  real, gamma, tx = batch["image"], 0.5, optax.adam(1e-2)
  step = jax.jit(jaxgan.make_train_step(G, D, "relativistic", r1_weight=gamma,
                                        r2_weight=gamma, ema_decay=None))
  with jax.default_matmul_precision("highest"):
    sg1, sd1, m = step(sg, sd, batch, jax.random.key(3))

    def d(p, x):
      return D.apply({"params": p}, x, train=True).reshape(-1)

    def penalty(p, x):  # ||grad_x D(x)||^2 per example, mean
      return jnp.mean(jnp.sum(jax.grad(lambda v: d(p, v).sum())(x) ** 2, axis=(1, 2, 3)))

    fake = jnp.broadcast_to(sg.params["image"], real.shape)

    def d_loss(p):  # R3GAN's Trainer: softplus(-(D(real) - D(fake))) + gamma/2 (R1 + R2)
      return (jnp.mean(jax.nn.softplus(-(d(p, real) - d(p, fake))))
              + gamma / 2 * (penalty(p, real) + penalty(p, fake)))

    updates, _ = tx.update(jax.grad(d_loss)(sd.params), tx.init(sd.params), sd.params)
    want_d = optax.apply_updates(sd.params, updates)

    def g_loss(q):  # softplus(-(D(fake) - D(real))) against the updated D
      fake = jnp.broadcast_to(q["image"], real.shape)
      return jnp.mean(jax.nn.softplus(-(d(want_d, fake) - d(want_d, real))))

    updates, _ = tx.update(jax.grad(g_loss)(sg.params), tx.init(sg.params), sg.params)
    want_g = optax.apply_updates(sg.params, updates)
    chex.assert_trees_all_close(sd1.params, want_d, rtol=1e-5, atol=1e-7)
    chex.assert_trees_all_close(sg1.params, want_g, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(m["r1"], penalty(sd.params, real), rtol=1e-5)
    np.testing.assert_allclose(m["r2"], penalty(sd.params, fake), rtol=1e-5)
    np.testing.assert_allclose(m["g_loss"], g_loss(sg.params), rtol=1e-5)

    # Lazily (every 2 steps, at step 0): a D update on the loss alone, then one on
    # 2 * gamma / 2 * (R1 + R2) of the updated D, as StyleGAN2's lazy R1.
    lazy = jaxgan.make_train_step(G, D, "relativistic", r1_weight=gamma, r2_weight=gamma,
                                  r1_every=2, ema_decay=None)
    sg0, sd0 = lazy.prepare_states(sg, sd)
    _, sd2, m2 = jax.jit(lazy)(sg0, sd0, batch, jax.random.key(3))
    plain = lambda p: jnp.mean(jax.nn.softplus(-(d(p, real) - d(p, fake))))  # noqa: E731
    state = tx.init(sd.params)
    updates, state = tx.update(jax.grad(plain)(sd.params), state, sd.params)
    p1 = optax.apply_updates(sd.params, updates)
    lazy_loss = lambda p: gamma * (penalty(p, real) + penalty(p, fake))  # noqa: E731
    updates, _ = tx.update(jax.grad(lazy_loss)(p1), state, p1)
    chex.assert_trees_all_close(sd2.params, optax.apply_updates(p1, updates), rtol=1e-5,
                                atol=1e-7)
    np.testing.assert_allclose(m2["r2"], penalty(p1, fake), rtol=1e-5)
  with pytest.raises(ValueError, match="r2_weight must be a number >= 0"):
    jaxgan.make_train_step(G, D, r2_weight=-1.0)

"""Class-conditional training: labels through create_states, the step and generate."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import assert_close

import jaxgan
from jaxgan import models, parallel
from jaxgan.errors import ConfigError, InputTypeError

SHAPE = (16, 16, 1)
CLASSES = 4


def pair(conditioning="projection", classes=CLASSES, spectral_norm=True):
  return (models.ResNetGenerator(SHAPE, 8, classes),
          models.ResNetDiscriminator(8, classes, conditioning=conditioning,
                                     spectral_norm=spectral_norm))


def states(G, D, classes=CLASSES, tx=None):
  tx = tx or optax.adam(1e-3, b1=0.0, b2=0.9)
  return jaxgan.create_states(jax.random.key(0), G, D, tx, tx, latent_dim=8, image_shape=SHAPE,
                              num_classes=classes)


def batch(n=16, labels=None, seed=1):
  images = jax.random.uniform(jax.random.key(seed), (n, *SHAPE), minval=-1, maxval=1)
  labels = jnp.arange(n) % CLASSES if labels is None else jnp.asarray(labels)
  return {"image": images, "label": labels.astype(jnp.int32)}


@pytest.mark.slow
def test_pmap_and_shard_map_on_8_devices_equal_one_device_for_a_conditional_resnet():
  assert jax.device_count() == 8
  G, D = pair()
  key = jax.random.key(3)
  batches = [batch(seed=s) for s in range(3)]
  # SGD, not Adam: the biases of convolutions followed by a BatchNorm (the references keep
  # them) have zero gradient in exact arithmetic, and Adam's first updates (~lr * sign(g))
  # would turn the summation-order noise of those zeros into lr-sized differences.
  tx = optax.sgd(1e-2)
  one = jax.jit(jaxgan.make_train_step(G, D, "hinge", n_critic=2))
  sg, sd = states(G, D, tx=tx)
  for b in batches:
    sg, sd, m = one(sg, sd, b, key)
  reference = (sg, sd, m)
  step = jaxgan.make_train_step(G, D, "hinge", n_critic=2, axis_name=parallel.AXIS)
  runs = {"pmap": (parallel.pmap_step(step), parallel.split_batch),
          "shard_map": (parallel.shard_map_step(step, parallel.data_mesh()), lambda b: b)}
  for name, (run, place) in runs.items():
    sg, sd = states(G, D, tx=tx)
    for b in batches:
      sg, sd, m = run(sg, sd, place({k: np.asarray(v) for k, v in b.items()}), key)
    # floor: the biases whose gradient is 0 but for rounding stay at ~1e-4; their error is
    # measured against 1e-3 (that of every other leaf against its own largest value).
    assert_close((sg, sd, m), reference, name=name, floor=1e-3)


def test_fake_labels_are_uniform_and_independent_of_the_device_split():
  key = jax.random.key(7)
  labels = np.asarray(jaxgan.sample_labels(key, 100_000, 10))
  counts = np.bincount(labels, minlength=10)
  chi2 = float(np.sum((counts - 10_000) ** 2 / 10_000))
  assert labels.min() == 0 and labels.max() == 9
  assert chi2 < 27.9  # the chi-square(9) 99.9% quantile
  # Device d of 8 draws examples d * 12 ... d * 12 + 11 of the global batch of 96.
  whole = np.asarray(jaxgan.sample_labels(key, 96, 10))
  parts = [np.asarray(jaxgan.sample_labels(key, 12, 10, offset=12 * d)) for d in range(8)]
  np.testing.assert_array_equal(np.concatenate(parts), whole)


def _changed_rows(before, after):
  return set(np.flatnonzero(np.any(np.asarray(before) != np.asarray(after), axis=-1)))


@pytest.mark.slow
@pytest.mark.parametrize("fake_labels", ["real", "uniform"])
def test_d_trains_on_the_batch_labels_and_the_fakes_on_the_chosen_labels(fake_labels):
  # Without spectral norm in D: its sigma depends on every row of the embedding, so with
  # it every row gets gradient whatever the labels.
  G, D = pair(spectral_norm=False)
  sg0, sd0 = states(G, D)
  # Non-saturating: every example has gradient (a hinge may be inactive). 64 fakes: every
  # one of the 4 classes is drawn (all but a 4 * 0.75**64 chance).
  step = jax.jit(jaxgan.make_train_step(G, D, "non_saturating", fake_labels=fake_labels))
  sg, sd, _ = step(sg0, sd0, batch(64, labels=np.full(64, 2)), jax.random.key(1))
  d_rows = _changed_rows(sd0.params["embed"]["embedding"], sd.params["embed"]["embedding"])
  g_rows = _changed_rows(sg0.params["block1"]["bn1"]["gain"]["embedding"],
                         sg.params["block1"]["bn1"]["gain"]["embedding"])
  if fake_labels == "real":  # every image of the step, real or fake, is of class 2
    assert d_rows == {2} and g_rows == {2}
  else:  # the fakes' classes are drawn: every class gets gradient
    assert d_rows == set(range(CLASSES)) and g_rows == set(range(CLASSES))


@pytest.mark.slow
def test_label_errors_are_clear():
  G, D = pair()
  sg, sd = states(G, D)
  step = jaxgan.make_train_step(G, D, "hinge")
  good = batch()
  with pytest.raises(ConfigError, match="needs 'label'"):
    step(sg, sd, {"image": good["image"]}, jax.random.key(0))
  with pytest.raises(ConfigError, match=r"shape \[B\] = \[16\]"):
    step(sg, sd, {**good, "label": jax.nn.one_hot(good["label"], CLASSES)}, jax.random.key(0))
  with pytest.raises(InputTypeError, match="integer class ids"):
    step(sg, sd, {**good, "label": good["label"].astype(jnp.float32)}, jax.random.key(0))
  bad = {**good, "label": good["label"].at[3].set(CLASSES)}
  with pytest.raises(ConfigError, match=r"outside \[0, 4\).*from 0 to 4"):
    step(sg, sd, bad, jax.random.key(0))  # concrete labels: checked at once
  _, _, metrics = jax.jit(step)(sg, sd, bad, jax.random.key(0))  # traced: flagged, never clamped
  assert float(metrics["labels_out_of_range"]) == pytest.approx(1 / 16)
  assert np.isnan(float(metrics["d_loss"]))
  _, _, metrics = jax.jit(step)(sg, sd, good, jax.random.key(0))
  assert float(metrics["labels_out_of_range"]) == 0.0 and np.isfinite(float(metrics["d_loss"]))


def test_create_states_errors_for_modules_that_do_not_match_num_classes():
  tx = optax.adam(1e-3)
  G, D = pair()
  with pytest.raises(ConfigError, match="built with num_classes=4"):
    jaxgan.create_states(jax.random.key(0), G, D, tx, tx, latent_dim=8, image_shape=SHAPE,
                         num_classes=10)
  mlp_g, mlp_d = models.MLPGenerator(image_shape=SHAPE), models.MLPDiscriminator()
  with pytest.raises(ConfigError, match="does not take labels"):
    jaxgan.create_states(jax.random.key(0), mlp_g, mlp_d, tx, tx, latent_dim=8,
                         image_shape=SHAPE, num_classes=4)
  with pytest.raises(ConfigError, match="num_classes must be an int >= 0"):
    jaxgan.create_states(jax.random.key(0), G, D, tx, tx, latent_dim=8, image_shape=SHAPE,
                         num_classes=-1)
  sg, sd = states(*pair())
  assert sg.num_classes == sd.num_classes == CLASSES


@pytest.mark.slow
def test_generate_with_and_without_labels():
  G, D = pair()
  sg, sd = states(G, D)
  step = jax.jit(jaxgan.make_train_step(G, D, "hinge"))
  for i in range(2):
    sg, sd, _ = step(sg, sd, batch(seed=i), jax.random.key(1))
  key = jax.random.key(5)
  whole = np.asarray(jaxgan.generate(G, sg, key, 12))
  chunks = [np.asarray(jaxgan.generate(G, sg, key, 4, offset=o)) for o in (0, 4, 8)]
  np.testing.assert_allclose(np.concatenate(chunks), whole, rtol=1e-6, atol=1e-6)
  # None draws the classes as sample_labels does; the latents do not depend on them.
  drawn = jaxgan.sample_labels(jax.random.fold_in(key, 1), 12, CLASSES)
  np.testing.assert_allclose(jaxgan.generate(G, sg, key, 12, labels=drawn), whole, rtol=1e-6,
                             atol=1e-6)
  same_z = [np.asarray(jaxgan.generate(G, sg, key, 12, labels=jnp.full(12, c)))
            for c in range(CLASSES)]
  assert all(np.abs(same_z[0] - other).max() > 1e-4 for other in same_z[1:])
  with pytest.raises(ConfigError, match=r"outside \[0, 4\)"):
    jaxgan.generate(G, sg, key, 2, labels=jnp.array([0, 7]))
  with pytest.raises(ConfigError, match=r"shape \[B\] = \[3\]"):
    jaxgan.generate(G, sg, key, 3, labels=jnp.array([0, 1]))
  G0, D0 = models.ResNetGenerator(SHAPE, 8), models.ResNetDiscriminator(8)
  sg0, _ = states(G0, D0, classes=0)
  with pytest.raises(ConfigError, match="unconditional"):
    jaxgan.generate(G0, sg0, key, 2, labels=jnp.array([0, 1]))


@pytest.mark.slow
def test_auxiliary_classifier_loss_is_the_real_batchs_cross_entropy():
  G, D = pair("ac")
  sg, sd = states(G, D)
  b = batch()
  (_, classes), _ = D.apply({"params": sd.params, **sd.model_state}, b["image"], b["label"],
                            train=True, mutable=["batch_stats"])
  classes = np.asarray(classes, np.float64)
  log_p = classes - classes.max(-1, keepdims=True)
  log_p -= np.log(np.exp(log_p).sum(-1, keepdims=True))
  expected = -np.mean(log_p[np.arange(16), np.asarray(b["label"])])
  _, _, metrics = jax.jit(jaxgan.make_train_step(G, D, "hinge"))(sg, sd, b, jax.random.key(0))
  assert float(metrics["d_ac_loss"]) == pytest.approx(expected, rel=1e-4)
  assert np.isfinite(float(metrics["g_ac_loss"]))
  with pytest.raises(ConfigError, match="fake_labels must be one of"):
    jaxgan.make_train_step(G, D, "hinge", fake_labels="argmax")


@pytest.mark.slow
def test_conditional_dcgan_starts_as_the_unconditional_one_plus_a_projection():
  z = jax.random.normal(jax.random.key(0), (6, 16))
  y = jnp.array([0, 1, 2, 3, 0, 1])
  plain, cond = models.DCGANGenerator(width=0.25), models.DCGANGenerator(width=0.25,
                                                                           num_classes=4)
  vp = plain.init(jax.random.key(1), z, train=False)
  vc = cond.init(jax.random.key(1), z, y, train=False)
  # The same convolutions; the class tables start at 0: gain 1, bias 0, BatchNorm's init.
  params = {**vc["params"], **{k: v for k, v in vp["params"].items() if "BatchNorm" not in k}}
  out_c, _ = cond.apply({"params": params}, z, y, train=True, mutable=["batch_stats"])
  out_p, _ = plain.apply(vp, z, train=True, mutable=["batch_stats"])
  np.testing.assert_allclose(out_c, out_p, rtol=1e-5, atol=1e-5)
  # D: dense(h) + embed(y) . h, h its flattened features.
  D = models.DCGANDiscriminator(width=0.25, dropout=0.0, num_classes=4)
  x = jax.random.normal(jax.random.key(2), (6, 28, 28, 1))
  vd = D.init(jax.random.key(3), x, y, train=False)
  y2 = (y + 1) % 4
  diff = D.apply(vd, x, y, train=False) - D.apply(vd, x, y2, train=False)
  plain_d = models.DCGANDiscriminator(width=0.25, dropout=0.0)
  table = np.asarray(vd["params"]["embed"]["embedding"], np.float64)
  features = _flat_features(plain_d, vd, x)
  np.testing.assert_allclose(diff, np.sum((table[y] - table[y2]) * features, -1), rtol=1e-4,
                             atol=1e-4)


def _flat_features(D, v, x):
  """The input of D's final dense layer, recomputed from its own convolutions."""
  params = v["params"]
  h = x
  for i in range(2):
    kernel, bias = params[f"Conv_{i}"]["kernel"], params[f"Conv_{i}"]["bias"]
    h = jax.lax.conv_general_dilated(h, kernel, (2, 2), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC")) + bias
    h = jnp.where(h > 0, h, D.negative_slope * h)
  return np.asarray(h.reshape(h.shape[0], -1), np.float64)

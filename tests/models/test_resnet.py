"""The SNGAN/BigGAN ResNet family: reference parameter counts, cBN, projection, attention."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import models
from jaxgan.errors import ConfigError
from jaxgan.models import resnet


def n_params(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def _init(module, *args):
  return jax.eval_shape(lambda: module.init(jax.random.key(0), *args, train=False))


@pytest.mark.parametrize("preset,latent,classes,g_count,d_count", [
    # Counted from Mimicry's cgan_pd_32 / sngan_32 layer lists (research/conditional.md 3b)
    # and StudioGAN's big_resnet with CIFAR10/BigGAN.yaml.
    (models.sngan32, 128, 10, 4_304_387, 1_055_105),
    (models.sngan32, 128, 0, 4_276_739, 1_053_825),
    (models.biggan32, 80, 10, 9_416_196, 2_415_170),
])
def test_presets_match_the_references_parameter_counts(preset, latent, classes, g_count,
                                                       d_count):
  G, D = preset(classes)
  y = (jnp.zeros((2,), jnp.int32),) if classes else ()
  assert n_params(_init(G, jnp.zeros((2, latent)), *y)["params"]) == g_count
  assert n_params(_init(D, jnp.zeros((2, 32, 32, 3)), *y)["params"]) == d_count


def _bn_reference(x, eps):
  mean = x.mean(axis=(0, 1, 2))
  var = x.var(axis=(0, 1, 2))
  return (x - mean) / np.sqrt(var + eps), mean, var


def test_conditional_batchnorm_with_zero_projections_equals_plain_batchnorm():
  x = np.asarray(jax.random.normal(jax.random.key(0), (6, 4, 4, 5))) * 3 + 1
  y = jnp.array([0, 1, 2, 2, 1, 0])
  plain = nn.BatchNorm(use_running_average=False, momentum=0.9, epsilon=1e-5)
  vp = plain.init(jax.random.key(1), x)
  out_plain, st_plain = plain.apply(vp, x, mutable=["batch_stats"])
  for c in (y, jnp.ones((6, 7))):  # SNGAN tables (zero-initialised); BigGAN linears zeroed
    cbn = models.ConditionalBatchNorm(num_classes=3)
    v = cbn.init(jax.random.key(2), x, c, True)
    v = {**v, "params": jax.tree.map(jnp.zeros_like, v["params"])}
    out, st = cbn.apply(v, x, c, True, mutable=["batch_stats"])
    np.testing.assert_allclose(out, out_plain, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(st["batch_stats"]["BatchNorm_0"]["mean"],
                               st_plain["batch_stats"]["mean"], rtol=1e-6)
    np.testing.assert_allclose(st["batch_stats"]["BatchNorm_0"]["var"],
                               st_plain["batch_stats"]["var"], rtol=1e-6)


def test_conditional_batchnorm_applies_each_examples_class_gain_and_bias():
  x = np.asarray(jax.random.normal(jax.random.key(0), (4, 3, 3, 2)), np.float64)
  y = np.array([2, 0, 1, 2])
  gain = np.array([[0.5, -1.0], [2.0, 0.0], [-0.25, 3.0]])
  bias = np.array([[1.0, 2.0], [-3.0, 0.5], [0.0, -1.0]])
  cbn = models.ConditionalBatchNorm(num_classes=3, epsilon=1e-5)
  v = cbn.init(jax.random.key(1), x, y, True)
  v = {**v, "params": {"gain": {"embedding": gain}, "bias": {"embedding": bias}}}
  out, _ = cbn.apply(v, jnp.asarray(x, jnp.float32), y, True, mutable=["batch_stats"])
  x_hat, _, _ = _bn_reference(x, 1e-5)
  expected = x_hat * (1 + gain[y])[:, None, None] + bias[y][:, None, None]
  np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def _features(D, v, x, y):
  out, state = D.apply(v, x, y, train=False, mutable=["intermediates"])
  return out, state["intermediates"]["features"][0]


@pytest.mark.slow
def test_projection_difference_is_the_embedding_difference_dotted_with_h():
  x = jax.random.normal(jax.random.key(0), (5, 16, 16, 3))
  y1, y2 = jnp.array([0, 1, 2, 3, 4]), jnp.array([4, 4, 0, 1, 2])
  D = models.ResNetDiscriminator(16, num_classes=5, spectral_norm=False)
  v = D.init(jax.random.key(1), x, y1, train=False)
  (out1, h), (out2, _) = _features(D, v, x, y1), _features(D, v, x, y2)
  table = np.asarray(v["params"]["embed"]["embedding"], np.float64)
  expected = np.sum((table[y1] - table[y2]) * np.asarray(h, np.float64), axis=-1)
  np.testing.assert_allclose(out1 - out2, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_projection_embedding_is_spectrally_normalised():
  x = jax.random.normal(jax.random.key(0), (5, 16, 16, 3))
  y1, y2 = jnp.array([0, 1, 2, 3, 4]), jnp.array([4, 4, 0, 1, 2])
  D = models.ResNetDiscriminator(16, num_classes=5)
  v = D.init(jax.random.key(1), x, y1, train=False)
  assert "embed_sn" in v["batch_stats"]  # the power iteration's vectors live there
  for _ in range(60):  # the power iteration converges to the top singular value
    _, state = D.apply(v, x, y1, train=True, mutable=["batch_stats"])
    v = {**v, **state}
  (out1, h), (out2, _) = _features(D, v, x, y1), _features(D, v, x, y2)
  table = np.asarray(v["params"]["embed"]["embedding"], np.float64)
  table = table / np.linalg.svd(table, compute_uv=False)[0]
  expected = np.sum((table[y1] - table[y2]) * np.asarray(h, np.float64), axis=-1)
  np.testing.assert_allclose(out1 - out2, expected, rtol=1e-3, atol=1e-3)


def _attention_reference(x, p):
  """SAGAN's block in numpy, from BigGAN-PyTorch's layers.Attention."""
  b, h, w, c = x.shape
  conv = lambda t, k: np.einsum("bhwc,cd->bhwd", t, k[0, 0])  # noqa: E731
  pool = lambda t: t.reshape(b, h // 2, 2, w // 2, 2, -1).max(axis=(2, 4))  # noqa: E731
  theta = conv(x, p["theta"]["kernel"]).reshape(b, h * w, -1)
  phi = pool(conv(x, p["phi"]["kernel"])).reshape(b, h * w // 4, -1)
  g = pool(conv(x, p["g"]["kernel"])).reshape(b, h * w // 4, -1)
  logits = theta @ phi.transpose(0, 2, 1)
  beta = np.exp(logits - logits.max(-1, keepdims=True))
  beta /= beta.sum(-1, keepdims=True)
  o = conv((beta @ g).reshape(b, h, w, -1), p["o"]["kernel"])
  return x + p["gamma"] * o


def test_self_attention_starts_as_the_identity_and_matches_the_reference():
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 16))
  attention = models.SelfAttention()
  v = attention.init(jax.random.key(1), x, False)
  assert float(v["params"]["gamma"]) == 0.0
  np.testing.assert_array_equal(attention.apply(v, x, False), x)
  params = {**jax.tree.map(np.asarray, v["params"]), "gamma": np.float32(0.7)}
  flat = {"params": {**jax.tree.map(jnp.asarray, v["params"]), "gamma": jnp.float32(0.7)}}
  np.testing.assert_allclose(attention.apply(flat, x, False),
                             _attention_reference(np.asarray(x, np.float64), params),
                             rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape,blocks", [((28, 28, 1), 2), ((32, 32, 3), 3),
                                          ((64, 64, 3), 4)])
@pytest.mark.slow
def test_sizes_28_32_64_and_more_blocks_for_larger_images(shape, blocks):
  G = models.ResNetGenerator(shape, 16, num_classes=3)
  D = models.ResNetDiscriminator(16, num_classes=3)
  y = jnp.array([0, 1, 2])
  vg = G.init(jax.random.key(0), jnp.zeros((3, 8)), y, train=False)
  assert sum(k.startswith("block") for k in vg["params"]) == blocks
  images = G.apply(vg, jax.random.normal(jax.random.key(1), (3, 8)), y, train=False)
  assert images.shape == (3, *shape)
  assert float(jnp.max(jnp.abs(images))) <= 1.0
  vd = D.init(jax.random.key(0), images, y, train=False)
  # k - 1 halvings then two blocks at the last size (SNGAN's D at 32: 16, 8, 8, 8).
  assert sum(k.startswith("block") for k in vd["params"]) == max(1, blocks - 1) + 2
  assert D.apply(vd, images, y, train=False).shape == (3,)
  with pytest.raises(ConfigError, match="halve to whole numbers"):
    models.ResNetGenerator((6, 6, 1), 16).init(jax.random.key(0), jnp.zeros((1, 8)))


@pytest.mark.slow
def test_out_of_range_labels_poison_the_output_instead_of_picking_a_class():
  G, D = models.ResNetGenerator((16, 16, 1), 16, 4), models.ResNetDiscriminator(16, 4)
  z, x = jnp.ones((3, 8)), jnp.ones((3, 16, 16, 1))
  good = jnp.array([0, 1, 3])
  vg = G.init(jax.random.key(0), z, good, train=False)
  vd = D.init(jax.random.key(0), x, good, train=False)
  for bad in (jnp.array([0, 4, 3]), jnp.array([-1, 1, 3])):
    images = np.asarray(G.apply(vg, z, bad, train=False))
    logits = np.asarray(D.apply(vd, x, bad, train=False))
    assert np.isnan(images[1 if bad[1] == 4 else 0]).all() and np.isfinite(images[2]).all()
    assert np.isnan(logits[1 if bad[1] == 4 else 0]) and np.isfinite(logits[2])


@pytest.mark.slow
def test_biggan_shared_embedding_hierarchical_latents_and_no_sn_on_gs_embedding():
  G = models.ResNetGenerator((16, 16, 1), 16, 3, shared_embedding=6, spectral_norm=True,
                             weight_init="orthogonal")
  z, y = jax.random.normal(jax.random.key(0), (3, 9)), jnp.array([2, 0, 1])  # 3 chunks of 3
  v = G.init(jax.random.key(1), z, y, train=False)
  assert v["params"]["shared"]["embedding"].shape == (3, 6)
  # The class embedding is never normalised ...
  assert not any(k.startswith("shared") for k in v["batch_stats"])
  assert "block1" in v["batch_stats"]  # ... the cBN linears and convolutions are
  # cBN input = [shared(y), z chunk]: 6 + 3.
  assert v["params"]["block1"]["bn1"]["gain"]["kernel"].shape == (9, 16)
  # A precomputed class embedding (e.g. an interpolation) gives what the ids give.
  embedding = v["params"]["shared"]["embedding"][y]
  np.testing.assert_allclose(G.apply(v, z, embedding, train=False),
                             G.apply(v, z, y, train=False), rtol=1e-6, atol=1e-6)
  with pytest.raises(ConfigError, match="does not divide by 3"):
    G.init(jax.random.key(1), jnp.zeros((3, 8)), y, train=False)


def test_auxiliary_classifier_head_and_label_arguments():
  x, y = jnp.ones((2, 16, 16, 1)), jnp.array([0, 1])
  D = models.ResNetDiscriminator(16, 5, conditioning="ac")
  v = D.init(jax.random.key(0), x, y, train=False)
  logits, classes = D.apply(v, x, y, train=False)
  assert logits.shape == (2,) and classes.shape == (2, 5)
  with pytest.raises(ConfigError, match="call it as D"):
    models.ResNetDiscriminator(16, 5).init(jax.random.key(0), x, train=False)
  with pytest.raises(ConfigError, match="unconditional"):
    models.ResNetGenerator((16, 16, 1), 16).init(jax.random.key(0), jnp.ones((2, 8)), y)
  with pytest.raises(ConfigError, match="conditioning must be one of"):
    models.ResNetDiscriminator(16, 5, conditioning="concat").init(jax.random.key(0), x, y)


def test_glorot_init_gains_follow_sngan():
  # Glorot-uniform bounds sqrt(6 / (fan_in + fan_out)) * gain; sqrt(2) on residual 3x3s.
  G = models.ResNetGenerator((8, 8, 1), 32)
  v = G.init(jax.random.key(0), jnp.zeros((1, 8)), train=False)["params"]
  conv = np.asarray(v["block1"]["conv1"]["kernel"])
  shortcut = np.asarray(v["block1"]["shortcut"]["kernel"])
  bound = np.sqrt(6 / (9 * 32 + 9 * 32)) * np.sqrt(2)
  assert bound * 0.9 < np.abs(conv).max() <= bound
  bound = np.sqrt(6 / (32 + 32))
  assert bound * 0.9 < np.abs(shortcut).max() <= bound
  assert resnet.INITS == ("glorot", "orthogonal")

"""R3GAN's networks: the reference's parameter counts, its initialisation, its block, its
shapes and its errors."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.models import r3gan


def count(tree) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def shapes(module, *args):
  return jax.eval_shape(lambda: module.init(jax.random.key(0), *args))["params"]


def reference_counts(widths, groups, blocks, channels=3, noise=64, classes=0, expansion=2):
  """The parameters of brownvc/R3GAN's Networks.py, layer by layer, for the generator's
  stages (from 4x4 up) and the mirrored discriminator; ``classes`` as its ``c_dim``, the
  embeddings as train.py sets them (G: the noise size, D: ``WidthPerStage[0]``)."""
  def block(c, g):  # 1x1 c->2c, grouped 3x3 2c->2c, 1x1 2c->c (no biases), 2 x 2c biases
    e = c * expansion
    return c * e + e * (e // g) * 9 + e * c + 2 * e

  body = sum(n * block(w, g) for w, g, n in zip(widths, groups, blocks, strict=True))
  transitions = sum(a * b for a, b in zip(widths, widths[1:], strict=False) if a != b)
  g_embed = noise if classes else 0
  generator = (body + transitions + 16 * widths[0]  # the 4x4 basis
               + (noise + g_embed) * widths[0]  # its linear map of [z, embedding]
               + classes * g_embed  # the class embedding (Linear(c_dim, 64))
               + widths[-1] * channels)  # the 1x1 aggregation
  d_out = widths[0] if classes else 1
  discriminator = (channels * widths[-1] + body + transitions
                   + 16 * widths[0]  # the depthwise 4x4 basis
                   + widths[0] * d_out + classes * d_out)
  return generator, discriminator


@pytest.mark.parametrize("preset,classes,size", [
    (r3gan.r3gan_cifar10, 0, 32), (r3gan.r3gan_cifar10, 10, 32), (r3gan.r3gan_ffhq64, 0, 64)])
def test_presets_have_the_reference_parameter_counts(preset, classes, size):
  G, D = preset(num_classes=classes)
  y = (jnp.zeros((2,), jnp.int32),) if classes else ()
  got = (count(shapes(G, jnp.zeros((2, r3gan.LATENT_DIM)), *y)),
         count(shapes(D, jnp.zeros((2, size, size, 3)), *y)))
  assert got == reference_counts(G.widths, G.groups, G.blocks, classes=classes)
  # Summed by hand for the CIFAR-10 preset: 8 blocks of 2,583,552 (768 * 1536 twice,
  # 1536 * 16 * 9, 2 * 1536 biases), the basis 12,288, its map 49,152, the output 2,304.
  if preset is r3gan.r3gan_cifar10 and not classes:
    assert got == (8 * 2_583_552 + 12_288 + 49_152 + 2_304,
                   2_304 + 8 * 2_583_552 + 12_288 + 768) == (20_732_160, 20_683_776)


def grouped_conv_by_hand(x, w, groups):
  """A grouped convolution as ``groups`` separate convolutions of its channel slices."""
  cin, cout = x.shape[-1] // groups, w.shape[-1] // groups
  return jnp.concatenate([
      jax.lax.conv_general_dilated(x[..., g * cin:(g + 1) * cin],
                                   w[..., g * cout:(g + 1) * cout], (1, 1), "SAME",
                                   dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                   precision="highest")
      for g in range(groups)], axis=-1)


def test_a_block_is_the_identity_at_init_and_computes_the_reference_branch():
  block = r3gan.ResidualBlock(groups=4, expansion=2, total_blocks=16)
  x = jax.random.normal(jax.random.key(1), (2, 8, 8, 16))
  params = block.init(jax.random.key(0), x)["params"]
  np.testing.assert_array_equal(block.apply({"params": params}, x), x)  # last conv is zero
  # The fix-up gain: sqrt(2 / 1.04) * 16^(-1/4) / sqrt(fan_in), fan_in 16 and 8 * 9.
  gain = math.sqrt(2 / 1.04) / 2
  np.testing.assert_allclose(np.std(params["conv1"]["kernel"]), gain / 4, rtol=0.1)
  np.testing.assert_allclose(np.std(params["conv2"]["kernel"]), gain / math.sqrt(72), rtol=0.1)
  assert params["conv2"]["kernel"].shape == (3, 3, 8, 32)
  # With every weight and bias random, the branch written out by hand.
  keys = iter(jax.random.split(jax.random.key(2), 8))
  params = jax.tree.map(lambda p: 0.3 * jax.random.normal(next(keys), p.shape), params)
  act = lambda v, b: jax.nn.leaky_relu(v + b, 0.2)  # noqa: E731
  conv1 = lambda v, w: jnp.einsum("bhwc,cd->bhwd", v, w[0, 0], precision="highest")  # noqa: E731
  y = act(conv1(x, params["conv1"]["kernel"]), params["act1"]["bias"])
  y = act(grouped_conv_by_hand(y, params["conv2"]["kernel"], 4), params["act2"]["bias"])
  want = x + conv1(y, params["conv3"]["kernel"])
  with jax.default_matmul_precision("highest"):
    got = block.apply({"params": params}, x)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def small(classes=0, image_shape=(28, 28, 1), low=0):
  return r3gan.r3gan(image_shape, (32, 32, 16, 16), (4, 4, 2, 2), (1, 1, 1, 1), classes,
                     low_precision_stages=low)


def test_28x28_images_are_drawn_at_32_cropped_and_padded_back():
  G, D = small(classes=10)
  z, y = jax.random.normal(jax.random.key(0), (4, 64)), jnp.arange(4, dtype=jnp.int32)
  vg = G.init(jax.random.key(1), z, y)
  img = G.apply(vg, z, y)
  assert img.shape == (4, 28, 28, 1) and img.dtype == jnp.float32
  vd = D.init(jax.random.key(2), img, y)
  logits = D.apply(vd, img, y)
  assert logits.shape == (4,) and np.all(np.isfinite(logits))
  # The class matters to both, and an id outside the classes poisons only its own row.
  assert not np.allclose(G.apply(vg, z, y[::-1]), img)
  assert not np.allclose(D.apply(vd, img, y[::-1]), logits)
  bad = D.apply(vd, img, jnp.array([0, 1, 10, 3], jnp.int32))
  assert np.isnan(bad[2]) and np.all(np.isfinite(np.asarray(bad)[[0, 1, 3]]))


def test_low_precision_stages_run_in_bfloat16_and_keep_float32_parameters():
  G, D = small(image_shape=(32, 32, 3), low=2)
  z = jax.random.normal(jax.random.key(0), (2, 64))
  vg = G.init(jax.random.key(1), z)
  assert {p.dtype for p in jax.tree.leaves(vg)} == {jnp.dtype(jnp.float32)}

  def convs(jaxpr):  # the convolutions' and products' input dtypes in order, nested too
    for e in jaxpr.eqns:
      if e.primitive.name in ("conv_general_dilated", "dot_general"):
        yield e.invars[0].aval.dtype.name
      for value in e.params.values():
        for sub in value if isinstance(value, tuple | list) else (value,):
          sub = getattr(sub, "jaxpr", sub)
          if hasattr(sub, "eqns"):
            yield from convs(sub)

  def conv_dtypes(fn, *args):
    return list(convs(jax.make_jaxpr(fn)(*args).jaxpr))

  # G: the basis's linear map, 4 stages of one block (3 convolutions), a transition at
  # 16x16 and the output; the two highest stages (16x16 and 32x32) and what follows them
  # in bfloat16.
  g = conv_dtypes(lambda z: G.apply(vg, z), z)
  assert g == ["float32"] * 7 + ["bfloat16"] * 8, g
  img = G.apply(vg, z)
  assert img.dtype == jnp.float32
  full = r3gan.R3GANGenerator((32, 32, 3), G.widths, G.groups, G.blocks).apply(vg, z)
  np.testing.assert_allclose(img, full, atol=0.05 * float(jnp.abs(full).max()))
  # D mirrors it: its input layer and its two highest stages in bfloat16.
  vd = D.init(jax.random.key(2), img)
  d = conv_dtypes(lambda x: D.apply(vd, x), img)
  assert d[:8] == ["bfloat16"] * 8 and d[8:] == ["float32"] * 8, d  # then its linear head


def test_bad_shapes_are_named_with_the_fix():
  z = jnp.zeros((2, 64))
  with pytest.raises(ValueError, match=r"stage 1's groups \(5\) must divide its inner width "
                                       r"2 x 32 = 64"):
    r3gan.r3gan((28, 28, 1), (32, 32, 16, 16), (4, 5, 2, 2), (1,) * 4)[0].init(
        jax.random.key(0), z)
  with pytest.raises(ValueError, match=r"4 stages draw 32x32 images; 64x64 images need 5 "
                                       r"stages"):
    small(image_shape=(64, 64, 3))[0].init(jax.random.key(0), z)
  with pytest.raises(ValueError, match="must have the same length, got 4, 3 and 4"):
    r3gan.r3gan((32, 32, 3), (8,) * 4, (2,) * 3, (1,) * 4)[0].init(jax.random.key(0), z)
  with pytest.raises(ValueError, match="not square"):
    small()[1].init(jax.random.key(0), jnp.zeros((2, 32, 28, 1)))
  with pytest.raises(ValueError, match="is conditional"):
    small(classes=3)[0].init(jax.random.key(0), z)


@pytest.mark.parametrize("k,groups", [(1, 1), (3, 1), (3, 4), (1, 2)])
def test_the_cpu_products_are_the_convolution_with_its_derivatives(k, groups):
  x = jax.random.normal(jax.random.key(0), (2, 6, 6, 8))
  w = jax.random.normal(jax.random.key(1), (k, k, 8 // groups, 12))
  lax = lambda w, x: jax.lax.conv_general_dilated(  # noqa: E731
      x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
      feature_group_count=groups, precision="highest")
  ours = lambda w, x: r3gan.patch_conv(x, w, groups)  # noqa: E731
  with jax.default_matmul_precision("highest"):
    np.testing.assert_allclose(ours(w, x), lax(w, x), rtol=1e-5, atol=1e-5)
    # First and second derivatives (R1 differentiates the input gradient by the weights).
    grads = [jax.grad(lambda w, x, f=f: jnp.sum(jnp.tanh(f(w, x))), argnums=(0, 1))(w, x)
             for f in (ours, lax)]
    for a, b in zip(*grads, strict=True):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    r1 = [jax.grad(lambda w, f=f: jnp.sum(jax.grad(
        lambda x: jnp.sum(jnp.tanh(f(w, x))))(x) ** 2))(w) for f in (ours, lax)]
    # Summed squares of derivatives: float32 rounding of two summation orders.
    np.testing.assert_allclose(r1[0], r1[1], rtol=2e-3, atol=2e-3)

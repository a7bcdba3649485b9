"""StyleGAN2 layers and pair: against hand-computed cases, the reference's definitions and
invariants."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.errors import ConfigError
from jaxgan.models import stylegan2 as sg2


def _fir_reference(x, up):
  """upfirdn2d of one [H, W] map with the [1, 3, 3, 1] filter, written from its definition:
  zero-insert (up) or not, pad, convolve with the 4x4 filter, subsample (down)."""
  f = np.array([1, 3, 3, 1], np.float64)
  f = np.outer(f, f)
  f /= f.sum()
  h, w = x.shape
  if up:
    u = np.zeros((2 * h, 2 * w))
    u[::2, ::2] = x
    f = f * 4  # gain up^2
    p = np.pad(u, ((2, 1), (2, 1)))
    out = np.zeros((2 * h, 2 * w))
    for i in range(2 * h):
      for j in range(2 * w):
        out[i, j] = np.sum(p[i:i + 4, j:j + 4] * f[::-1, ::-1])
    return out
  p = np.pad(x, ((1, 1), (1, 1)))
  out = np.zeros((h // 2, w // 2))
  for i in range(h // 2):
    for j in range(w // 2):
      out[i, j] = np.sum(p[2 * i:2 * i + 4, 2 * j:2 * j + 4] * f[::-1, ::-1])
  return out


def test_fir_resampling_equals_upfirdn2d():
  x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype(np.float32)
  up = np.asarray(sg2.upsample2d(jnp.asarray(x)))
  down = np.asarray(sg2.downsample2d(jnp.asarray(x)))
  assert up.shape == (2, 16, 16, 3) and down.shape == (2, 4, 4, 3)
  for n in range(2):
    for c in range(3):
      np.testing.assert_allclose(up[n, ..., c], _fir_reference(x[n, ..., c], True), atol=1e-5)
      np.testing.assert_allclose(down[n, ..., c], _fir_reference(x[n, ..., c], False),
                                 atol=1e-5)
  # A constant image stays constant away from the zero-padded border.
  ones = jnp.ones((1, 8, 8, 1))
  np.testing.assert_allclose(np.asarray(sg2.upsample2d(ones))[0, 1:-1, 1:-1, 0], 1.0)
  np.testing.assert_allclose(np.asarray(sg2.downsample2d(ones))[0, 1:-1, 1:-1, 0], 1.0)


def test_equalised_dense_scales_at_call_time():
  layer = sg2.EqualDense(3, lr_mul=0.01, bias_init=0.5)
  x = jax.random.normal(jax.random.key(0), (5, 40))
  params = layer.init(jax.random.key(1), x)["params"]
  big = layer.init(jax.random.key(2), jnp.zeros((1, 4000)))["params"]
  assert 90 < float(jnp.std(big["kernel"])) < 110  # stored N(0, 1) / lr_mul
  np.testing.assert_allclose(np.asarray(params["bias"]), 0.5)
  expected = x @ (params["kernel"] * 0.01 / np.sqrt(40)) + 0.5 * 0.01
  np.testing.assert_allclose(np.asarray(layer.apply({"params": params}, x)),
                             np.asarray(expected), rtol=1e-5, atol=1e-6)


class _Mod(nn.Module):
  demodulate: bool = True

  @nn.compact
  def __call__(self, x, w):
    return sg2.ModulatedConv(6, demodulate=self.demodulate)(x, w)


def _explicit_modconv(x, weight, styles, demodulate):
  """Per-example weights W * s (* d), one convolution per example (the fused path)."""
  outs = []
  for n in range(x.shape[0]):
    wn = weight * styles[n][None, None, :, None]
    if demodulate:
      wn = wn / np.sqrt(np.sum(wn ** 2, axis=(0, 1, 2), keepdims=True) + 1e-8)
    outs.append(jax.lax.conv_general_dilated(x[n:n + 1], jnp.asarray(wn), (1, 1), "SAME",
                                             dimension_numbers=("NHWC", "HWIO", "NHWC")))
  return np.concatenate([np.asarray(o) for o in outs])


@pytest.mark.slow
def test_modulated_conv_equals_per_example_weights_and_demodulates_to_unit_norm():
  x = jax.random.normal(jax.random.key(0), (3, 8, 8, 5))
  w = jax.random.normal(jax.random.key(1), (3, 7))
  mod = _Mod()
  params = mod.init(jax.random.key(2), x, w)["params"]["ModulatedConv_0"]
  aff = params["affine"]
  styles = np.asarray(w @ (aff["kernel"] / np.sqrt(7)) + aff["bias"])
  assert abs(float(np.mean(aff["bias"])) - 1.0) < 1e-6  # style bias starts at 1
  weight = np.asarray(params["kernel"])
  out = np.asarray(mod.apply({"params": {"ModulatedConv_0": params}}, x, w))
  np.testing.assert_allclose(out, _explicit_modconv(x, weight, styles, True), rtol=1e-4,
                             atol=1e-4)
  # Every example's demodulated weights have unit norm per output channel, whatever the
  # style: the weight norms, hence the output scale, do not depend on w.
  for n in range(3):
    wn = weight * styles[n][None, None, :, None]
    d = 1 / np.sqrt(np.sum(wn ** 2, axis=(0, 1, 2)) + 1e-8)
    np.testing.assert_allclose(np.sum((wn * d) ** 2, axis=(0, 1, 2)), 1.0, rtol=1e-5)
  # Statistically: unit-variance inputs give unit-variance outputs for any two styles.
  big = jax.random.normal(jax.random.key(3), (2, 64, 64, 5))
  for scale in (0.1, 10.0):
    p = jax.tree.map(lambda a: a, params)
    p["affine"] = {"kernel": aff["kernel"] * scale, "bias": aff["bias"] * scale}
    y = mod.apply({"params": {"ModulatedConv_0": p}}, big, w[:2])
    interior = np.asarray(y)[:, 1:-1, 1:-1]
    np.testing.assert_allclose(interior.std(axis=(1, 2)), 1.0, atol=0.06)


def test_minibatch_stddev_hand_computed():
  x = jnp.asarray(np.arange(8 * 2 * 2 * 2, dtype=np.float32).reshape(8, 2, 2, 2) ** 1.5)
  out = np.asarray(sg2.minibatch_stddev(x, group_size=4))
  assert out.shape == (8, 2, 2, 3)
  xn = np.asarray(x, np.float64)
  for g in range(2):
    group = xn[4 * g:4 * g + 4]  # contiguous groups
    std = np.sqrt(group.var(axis=0) + 1e-8).mean()
    np.testing.assert_allclose(out[4 * g:4 * g + 4, ..., 2], std, rtol=1e-5)
  np.testing.assert_array_equal(out[..., :2], np.asarray(x))
  with pytest.raises(ConfigError, match="group size 4 must divide the.*batch 6"):
    sg2.minibatch_stddev(jnp.zeros((6, 2, 2, 2)), 4)


def _small(shape=(16, 16, 1), classes=0, **kw):
  G = sg2.StyleGAN2Generator(shape, w_dim=16, channel_base=128, channel_max=16,
                             num_classes=classes)
  D = sg2.StyleGAN2Discriminator(channel_base=128, channel_max=16, num_classes=classes, **kw)
  return G, D


def test_generator_and_discriminator_shapes_crop_and_pad():
  for shape in ((28, 28, 1), (32, 32, 3)):
    G, D = _small(shape)
    z = jnp.ones((4, 8))
    # Abstract evaluation: the shapes, without running the networks op by op.
    img = jax.eval_shape(lambda z, G=G: G.apply(G.init(jax.random.key(0), z, train=False), z,
                                                train=False), z)
    assert img.shape == (4, *shape)
    assert G.num_ws == 2 * int(np.log2(sg2.resolution_of(shape))) - 2
    x = jnp.zeros(img.shape)
    logits = jax.eval_shape(lambda x, D=D: D.apply(D.init(jax.random.key(1), x, train=False),
                                                   x, train=False), x)
    assert logits.shape == (4,)
  with pytest.raises(ConfigError, match="square"):
    sg2.resolution_of((16, 8, 1))
  with pytest.raises(ConfigError, match="architecture"):
    D = sg2.StyleGAN2Discriminator(architecture="skip")
    D.init(jax.random.key(0), jnp.zeros((4, 8, 8, 1)), train=False)


@pytest.mark.slow
def test_truncation_psi_zero_gives_the_w_avg_image_for_every_latent():
  G, _ = _small()
  z = jax.random.normal(jax.random.key(0), (6, 8))
  variables = G.init(jax.random.key(1), z, train=False)
  # Move w_avg away from 0 with a few training-mode mapping calls.
  for i in range(3):
    _, upd = G.apply(variables, jax.random.normal(jax.random.key(10 + i), (6, 8)), train=True,
                     method="mapping", mutable=["moving_stats"])
    variables = {**variables, **upd}
  w_avg = variables["moving_stats"]["mapping_net"]["w_avg"]
  assert float(jnp.abs(w_avg).max()) > 0
  img0 = np.asarray(G.apply(variables, z, train=False, truncation_psi=0.0))
  ws = jnp.broadcast_to(w_avg, (6, G.num_ws, 16))
  expected = np.asarray(G.apply(variables, ws, train=False, method="synthesis"))
  np.testing.assert_allclose(img0, expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(img0, np.broadcast_to(img0[:1], img0.shape), atol=1e-6)
  plain = np.asarray(G.apply(variables, z, train=False))
  np.testing.assert_array_equal(np.asarray(G.apply(variables, z, train=False,
                                                   truncation_psi=1.0)), plain)
  assert np.abs(plain - img0).max() > 1e-3


@pytest.mark.slow
def test_w_avg_moves_toward_the_batch_mean_with_beta_0995():
  G, _ = _small()
  z = jax.random.normal(jax.random.key(0), (6, 8))
  variables = G.init(jax.random.key(1), z, train=False)
  w, upd = G.apply(variables, z, train=True, method="mapping", mutable=["moving_stats"])
  np.testing.assert_allclose(np.asarray(upd["moving_stats"]["mapping_net"]["w_avg"]),
                             0.005 * np.asarray(w[:, 0]).mean(0), rtol=1e-5, atol=1e-8)


@pytest.mark.slow
def test_style_mixing_takes_the_second_latents_style_from_the_cutoff():
  G, _ = _small()
  z, z2 = jax.random.normal(jax.random.key(0), (2, 4, 8))
  variables = G.init(jax.random.key(1), z, train=False)
  ws = G.apply(variables, z, train=False, method="mapping")
  ws2 = G.apply(variables, z2, train=False, method="mapping")
  mixed = G.apply(variables, z, train=False, method="mapping", z_mix=z2, mix_cutoff=2)
  np.testing.assert_array_equal(np.asarray(mixed[:, :2]), np.asarray(ws[:, :2]))
  np.testing.assert_array_equal(np.asarray(mixed[:, 2:]), np.asarray(ws2[:, 2:]))
  none = G.apply(variables, z, train=False, method="mapping", z_mix=z2, mix_cutoff=G.num_ws)
  np.testing.assert_array_equal(np.asarray(none), np.asarray(ws))


class _TwoNoises(nn.Module):
  @nn.compact
  def __call__(self, x, train):
    return sg2.NoiseInput(name="a")(x, train), sg2.NoiseInput(name="b")(x, train)


def test_each_noise_layer_draws_its_own_noise_per_example():
  x = jnp.zeros((4, 8, 8, 1))
  mod = _TwoNoises()
  variables = mod.init(jax.random.key(0), x, False)
  params = jax.tree.map(jnp.ones_like, variables["params"])  # strength 1
  v = {**variables, "params": params}
  a, b = mod.apply(v, x, True, rngs={"per_example": jax.random.key(1)})
  assert not np.allclose(a, b)  # two layers, two noise maps (the Flax ports' bug: one)
  assert not np.allclose(a[0], a[1])  # per example, not one map for the batch
  assert 0.8 < float(jnp.std(a)) < 1.2
  # Inference: the fixed buffer, the same for every example and call.
  c, _ = mod.apply(v, x, False)
  np.testing.assert_array_equal(np.asarray(c[0]), np.asarray(c[1]))
  # Zero strength (the initialisation) adds nothing.
  np.testing.assert_array_equal(np.asarray(mod.apply(variables, x + 1, True,
                                                     rngs={"per_example": jax.random.key(1)})[0]),
                                np.ones((4, 8, 8, 1)))


@pytest.mark.slow
def test_conditional_pair_and_bad_labels():
  G, D = _small(classes=3)
  z, y = jnp.ones((4, 8)), jnp.array([0, 1, 2, 0])
  gv = G.init(jax.random.key(0), z, y, train=False)
  img = G.apply(gv, z, y, train=False)
  other = G.apply(gv, z, jnp.array([1, 2, 0, 1]), train=False)
  assert not np.allclose(img, other)  # the class changes the image
  dv = D.init(jax.random.key(1), img, y, train=False)
  logits = D.apply(dv, img, y, train=False)
  assert logits.shape == (4,) and np.isfinite(np.asarray(logits)).all()
  bad = np.asarray(D.apply(dv, img, jnp.array([0, 5, 1, 0]), train=False))
  assert np.isnan(bad[1]) and np.isfinite(bad[[0, 2, 3]]).all()
  with pytest.raises(ConfigError, match="conditional"):
    G.apply(gv, z, train=False)


def test_presets():
  G, D = sg2.stylegan2_cifar()
  assert (G.w_dim, G.mapping_layers, G.channel_base, G.channel_max) == (512, 2, 32768, 512)
  assert (D.architecture, D.mbstd_group_size) == ("orig", 32)
  assert [sg2.channels_at(r, 32768, 512) for r in (4, 8, 16, 32)] == [512] * 4
  G, D = sg2.stylegan2_small()
  assert [sg2.channels_at(r, G.channel_base, G.channel_max) for r in (4, 8, 16, 32)] == [
      128, 128, 64, 32]


def test_transition_fades_the_class_in_to_g_and_d():
  G, D = _small(classes=3, unconditional_head=True)
  z, y, y2 = jnp.ones((4, 8)), jnp.array([0, 1, 2, 0]), jnp.array([1, 2, 0, 1])
  gv = G.init(jax.random.key(0), z, y, train=False)
  at = lambda t, y: np.asarray(G.apply(gv, z, y, train=False, transition=t))  # noqa: E731
  # Weight 0: an unconditional generator (the class does not reach w); 1, given or by
  # default: the conditional one, exactly.
  assert np.array_equal(at(0.0, y), at(0.0, y2))
  assert np.array_equal(at(1.0, y), np.asarray(G.apply(gv, z, y, train=False)))
  np.testing.assert_allclose(at(jnp.float32(1), y), at(1.0, y), atol=1e-6)
  assert not np.allclose(at(0.5, y), at(0.5, y2))
  img = jnp.asarray(at(1.0, y))
  dv = D.init(jax.random.key(1), img, y, train=False)
  d = lambda y, **kw: np.asarray(D.apply(dv, img, y, train=False, **kw))  # noqa: E731
  # D's two outputs: the unconditional one (free of y) and the projection; called plainly,
  # their sum (the projection discriminator).
  both, both2 = d(y, heads=True), d(y2, heads=True)
  assert both.shape == (4, 2)
  assert np.array_equal(both[:, 0], both2[:, 0]) and not np.allclose(both[:, 1], both2[:, 1])
  np.testing.assert_allclose(d(y), both.sum(1), rtol=1e-6, atol=1e-6)
  assert "b4_out_uc" in dv["params"]
  # Without the unconditional output there is nothing to fade from.
  _, plain = _small(classes=3)
  pv = plain.init(jax.random.key(1), img, y, train=False)
  assert "b4_out_uc" not in pv["params"]
  with pytest.raises(ConfigError, match="unconditional_head=True"):
    plain.apply(pv, img, y, train=False, heads=True)

"""pix2pix and CycleGAN: the networks against the reference's numbers, the steps' losses
and update orders against hand computation, the image pool against the reference's rule,
8 devices against one."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import assert_close

from jaxgan import parallel
from jaxgan.errors import ConfigError, InputTypeError
from jaxgan.models import translation as nets
from jaxgan.steps import cyclegan as cyclegan_step
from jaxgan.steps import pix2pix as pix2pix_step


def count(module, shape):
  variables = jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros((1, *shape)),
                                                 train=False))
  return sum(x.size for x in jax.tree.leaves(variables["params"]))


def out_shape(module, shape):
  x = jnp.zeros((2, *shape))
  return jax.eval_shape(lambda: module.apply(module.init(jax.random.key(0), x, train=False), x,
                                             train=False)).shape


# -- networks ---------------------------------------------------------------------------------

def test_instance_norm_is_pytorchs_without_affine():
  x = np.random.default_rng(0).normal(3.0, 2.0, (2, 5, 6, 3)).astype(np.float32)
  got = nets.InstanceNorm().apply({}, jnp.asarray(x))
  mean = x.astype(np.float64).mean(axis=(1, 2), keepdims=True)
  var = ((x - mean) ** 2).mean(axis=(1, 2), keepdims=True)  # biased, as InstanceNorm2d
  np.testing.assert_allclose(got, (x - mean) / np.sqrt(var + 1e-5), atol=2e-6)


def test_parameter_counts_are_the_references():
  # CycleGAN's resnet_9blocks at 256x256x3 and the 70x70 PatchGAN with instance norm (the
  # research note's counts, computed from the reference's networks.py).
  assert count(nets.ResNetTranslator(3, 64, 9), (256, 256, 3)) == 11_378_179
  assert count(nets.PatchDiscriminator(64, 3), (256, 256, 3)) == 2_764_737
  # pix2pix's unet_256 with batch norm, summed here layer by layer from the reference's
  # UnetSkipConnectionBlock: 4x4 convolutions without bias (BatchNorm follows), except the
  # outermost up-convolution; BatchNorm has a scale and a bias per channel.
  c = [64, 128, 256, 512, 512, 512, 512, 512]  # each block's inner channels, outermost first
  down = 16 * 3 * c[0] + sum(16 * c[i - 1] * c[i] + 2 * c[i] for i in range(1, 7)) + (
      16 * c[6] * c[7])  # the innermost has no norm
  up = (16 * c[7] * c[6] + 2 * c[6]  # the innermost: its input is not concatenated
        + sum(16 * 2 * c[i] * c[i - 1] + 2 * c[i - 1] for i in range(1, 7))
        + 16 * 2 * c[0] * 3 + 3)  # the outermost, with bias
  assert count(nets.UNetTranslator(3, 8, 64), (256, 256, 3)) == down + up == 54_413_955


@pytest.mark.slow
def test_patchgan_output_sizes_and_receptive_field():
  assert out_shape(nets.PatchDiscriminator(8, 3), (256, 256, 3)) == (2, 30, 30)
  for n_layers, side in ((1, 12), (2, 5), (3, 1)):
    assert out_shape(nets.PatchDiscriminator(8, n_layers), (28, 28, 1)) == (2, side, side)
    assert nets.patch_grid(28, n_layers) == side
  assert [nets.receptive_field(n) for n in (1, 2, 3)] == [16, 34, 70]
  # Measured: the input pixels one patch logit depends on (n_layers 1: 16x16).
  D = nets.PatchDiscriminator(4, 1, norm="none")
  x = jnp.ones((1, 28, 28, 1))
  variables = D.init(jax.random.key(0), x)
  grad = jax.grad(lambda x: D.apply(variables, x)[0, 6, 6])(x)
  rows, cols = np.nonzero(np.abs(np.asarray(grad[0, :, :, 0])) > 0)
  assert (rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) == (16, 16)


def test_translators_keep_the_size_and_the_unet_places_dropout_as_the_reference():
  assert out_shape(nets.ResNetTranslator(1, 8, 2), (28, 28, 1)) == (2, 28, 28, 1)
  assert out_shape(nets.UNetTranslator(3, 5, 8), (28, 28, 2)) == (2, 28, 28, 3)
  # unet_256: dropout on the decoders of the 3 blocks next to the innermost (7): 4, 5, 6.
  unet = nets.UNetTranslator(3, 8, 4)
  x = jnp.ones((1, 256, 256, 3))

  def dropout_layers(x):  # shapes only: nothing is computed
    variables = unet.init(jax.random.key(0), x, train=False)
    return unet.apply(variables, x, train=True, rngs={"dropout": jax.random.key(1)},
                      mutable=["batch_stats", "intermediates"],
                      capture_intermediates=lambda m, _: isinstance(m, nets.ExampleDropout))

  _, inter = jax.eval_shape(dropout_layers, x)
  assert sorted(inter["intermediates"]) == ["up4_dropout", "up5_dropout", "up6_dropout"]
  with pytest.raises(ConfigError, match="multiples of 4"):
    out_shape(nets.ResNetTranslator(1, 8, 1), (30, 30, 1))


# -- the image pool ---------------------------------------------------------------------------

def reference_pool(images, uniforms, slots, size):
  """util/image_pool.py's ImagePool.query, with its random draws given."""
  stored, out = [], []
  for image, u, slot in zip(images, uniforms, slots, strict=True):
    if len(stored) < size:
      stored.append(image)
      out.append(image)
    elif u > 0.5:
      out.append(stored[slot])
      stored[slot] = image
    else:
      out.append(image)
  return np.stack(out), stored


def test_pool_follows_the_references_rule_image_by_image():
  size, n = 4, 40
  images = np.arange(n, dtype=np.float32)[:, None, None, None] * np.ones((n, 2, 2, 1),
                                                                           np.float32)
  key = jax.random.key(5)
  draws = [jax.random.split(jax.random.fold_in(key, i)) for i in range(n)]
  uniforms = [float(jax.random.uniform(k_u)) for k_u, _ in draws]
  slots = [int(jax.random.randint(k_s, (), 0, size)) for _, k_s in draws]
  want, stored = reference_pool(list(images), uniforms, slots, size)
  # Through the pool in batches of 8 (several images per batch, in order).
  state = cyclegan_step.pool_init(size, (2, 2, 1))
  pool, count, got = state["pool"], state["pool_count"], []
  for start in range(0, n, 8):
    out, pool, count = cyclegan_step.pool_query(pool, count, images[start:start + 8], key,
                                                offset=start)
    got.append(np.asarray(out))
  np.testing.assert_array_equal(np.concatenate(got), want)
  np.testing.assert_array_equal(np.asarray(pool), np.stack(stored))
  assert int(count) == size
  # The first `size` images pass through; afterwards about half are swapped for history.
  np.testing.assert_array_equal(want[:size], images[:size])
  swapped = np.mean([w[0, 0, 0] != i for i, w in enumerate(want[size:], size)])
  assert 0.3 < swapped < 0.7
  out, _, _ = cyclegan_step.pool_query(jnp.zeros((0, 2, 2, 1)), jnp.int32(0), images[:3], key)
  np.testing.assert_array_equal(out, images[:3])  # pool_size 0: no pool


# -- the steps' losses and orders, by hand -------------------------------------------------------

class Scale(nn.Module):
  """G(x) = w x, one scalar parameter."""

  value: float

  @nn.compact
  def __call__(self, x, train=True):
    return self.param("w", lambda _: jnp.float32(self.value)) * x


class PixelD(nn.Module):
  """Logits per pixel: sum_c v_c x_c, ``[B, H, W]``."""

  values: tuple

  @nn.compact
  def __call__(self, x, train=True):
    return jnp.sum(x * self.param("v", lambda _: jnp.asarray(self.values, jnp.float32)), -1)


def numeric_grad(f, x, eps=1e-6):
  return np.array([(f(*(x[:i] + [x[i] + eps] + x[i + 1:])) - f(*(x[:i] + [x[i] - eps] +
                   x[i + 1:]))) / (2 * eps) for i in range(len(x))])


def softplus(x):
  return np.logaddexp(0.0, x)


def test_pix2pix_updates_d_first_and_g_against_the_updated_d():
  rng = np.random.default_rng(0)
  s, t = (rng.uniform(-1, 1, (4, 4, 4, 1)) for _ in range(2))
  lr, lr_d, w0, v0 = 0.1, 20.0, 0.5, (0.3, -0.8)  # D moves far: the order shows
  G, D = Scale(w0), PixelD(v0)
  sg, sd = pix2pix_step.create_pix2pix_states(jax.random.key(0), G, D, optax.sgd(lr),
                                              optax.sgd(lr_d), source_shape=(4, 4, 1),
                                              image_shape=(4, 4, 1))
  step = pix2pix_step.make_pix2pix_step(G, D)  # non_saturating, l1 100
  sg, sd, m = jax.jit(step)(sg, sd, {"source": s.astype(np.float32),
                                     "image": t.astype(np.float32)}, jax.random.key(1))

  def d_loss(a, b):  # 0.5 (BCE(D(s, G(s)), 0) + BCE(D(s, t), 1)), per pixel
    return 0.5 * (softplus(a * s + b * w0 * s).mean() + softplus(-(a * s + b * t)).mean())

  v = np.array(v0) - lr_d * numeric_grad(d_loss, list(v0))
  np.testing.assert_allclose(np.asarray(sd.params["v"]), v, rtol=1e-4)
  np.testing.assert_allclose(float(m["d_loss"]), d_loss(*v0), rtol=1e-5)

  def g_loss(w, v=v):  # against the updated D
    return softplus(-(v[0] * s + v[1] * w * s)).mean() + 100 * np.abs(w * s - t).mean()

  np.testing.assert_allclose(float(m["g_loss"]), g_loss(w0), rtol=1e-5)
  adv = lambda v: softplus(-(v[0] * s + v[1] * w0 * s)).mean()  # noqa: E731
  np.testing.assert_allclose(float(m["g_adv"]), adv(v), rtol=1e-5)
  assert abs(adv(np.array(v0)) - adv(v)) > 0.01  # the old D's would differ
  np.testing.assert_allclose(float(sg.params["w"]), w0 - lr * numeric_grad(g_loss, [w0])[0],
                             rtol=1e-4)
  np.testing.assert_allclose(float(m["g_l1"]), np.abs(w0 * s - t).mean(), rtol=1e-5)


def test_cyclegan_updates_both_generators_then_both_discriminators_on_the_old_fakes():
  rng = np.random.default_rng(1)
  a, b = (rng.uniform(-1, 1, (4, 3, 3, 1)).astype(np.float32) for _ in range(2))
  lr, w_ab, w_ba, v_a, v_b = 0.05, 0.5, 1.5, 0.3, -0.7
  nets_ = (Scale(w_ab), Scale(w_ba), PixelD((v_a,)), PixelD((v_b,)))
  tx = optax.sgd(lr)
  sg, sd = cyclegan_step.create_cyclegan_states(jax.random.key(0), *nets_, tx, tx,
                                                shape_a=(3, 3, 1), shape_b=(3, 3, 1))
  step = cyclegan_step.make_cyclegan_step(*nets_)  # least squares, cycle 10, identity 0.5, pool 50
  sg, sd = step.prepare_states(sg, sd)
  sg, sd, m = jax.jit(step)(sg, sd, {"a": a, "b": b}, jax.random.key(1))
  a, b = a.astype(np.float64), b.astype(np.float64)  # the hand computation in float64

  def g_loss(p, q):  # p = w_ab, q = w_ba; the discriminators as they were
    adv = ((v_b * p * a - 1) ** 2).mean() + ((v_a * q * b - 1) ** 2).mean()
    cycle = np.abs(q * p * a - a).mean() + np.abs(p * q * b - b).mean()
    identity = np.abs(p * b - b).mean() + np.abs(q * a - a).mean()
    return adv + 10 * cycle + 5 * identity

  grads = numeric_grad(g_loss, [w_ab, w_ba])
  np.testing.assert_allclose([float(sg["ab"].params["w"]), float(sg["ba"].params["w"])],
                             np.array([w_ab, w_ba]) - lr * grads, rtol=1e-4)
  np.testing.assert_allclose(float(m["g_loss"]), g_loss(w_ab, w_ba), rtol=1e-5)
  np.testing.assert_allclose(float(m["cycle_a"]), np.abs(w_ba * w_ab * a - a).mean(), rtol=1e-5)
  np.testing.assert_allclose(float(m["identity_b"]), np.abs(w_ab * b - b).mean(), rtol=1e-5)

  # D_b judges B: reals b against G_ab's fakes from before G's update (the pool, filling,
  # returns them as they are); D_a judges A against G_ba(b).
  def d_loss(v, real, fake):
    return 0.5 * (((v * real - 1) ** 2).mean() + ((v * fake) ** 2).mean())

  for name, v, real, fake in (("a", v_a, a, w_ba * b), ("b", v_b, b, w_ab * a)):
    want = v - lr * numeric_grad(lambda v, r=real, f=fake: d_loss(v, r, f), [v])[0]
    np.testing.assert_allclose(float(sd[name].params["v"][0]), want, rtol=1e-4)
    np.testing.assert_allclose(float(m[f"d_{name}_loss"]), d_loss(v, real, fake), rtol=1e-5)
  # The pools now hold those fakes.
  np.testing.assert_allclose(np.asarray(sd["b"].step_state["pool"][:4]), w_ab * a, rtol=1e-6)
  assert int(sd["b"].step_state["pool_count"]) == 4


def test_step_errors_are_clear():
  G, D = Scale(1.0), PixelD((1.0, 1.0))
  tx = optax.sgd(0.1)
  sg, sd = pix2pix_step.create_pix2pix_states(jax.random.key(0), G, D, tx, tx,
                                              source_shape=(4, 4, 1), image_shape=(4, 4, 1))
  step = pix2pix_step.make_pix2pix_step(G, D)
  x = np.zeros((2, 4, 4, 1), np.float32)
  with pytest.raises(InputTypeError, match="no 'source'"):
    step(sg, sd, {"image": x}, jax.random.key(0))
  with pytest.raises(ConfigError, match=r"batch\['image'\] has shape \(2, 5, 4, 1\)"):
    step(sg, sd, {"source": x, "image": np.zeros((2, 5, 4, 1), np.float32)}, jax.random.key(0))
  with pytest.raises(InputTypeError, match="floating point"):
    step(sg, sd, {"source": x.astype(np.uint8), "image": x}, jax.random.key(0))
  with pytest.raises(ConfigError, match="must be one of"):
    pix2pix_step.make_pix2pix_step(G, D, "hinge")
  with pytest.raises(ConfigError, match="share their height and width"):
    pix2pix_step.create_pix2pix_states(jax.random.key(0), G, D, tx, tx, source_shape=(2, 2, 1),
                             image_shape=(4, 4, 1))
  with pytest.raises(ConfigError, match="out_channels=3"):
    pix2pix_step.create_pix2pix_states(jax.random.key(0), G, D, tx, tx, source_shape=(4, 4, 1),
                             image_shape=(4, 4, 3))
  cycle = cyclegan_step.make_cyclegan_step(G, G, D, D)
  with pytest.raises(InputTypeError, match="state_g = {'ab'"):
    cycle(sg, sd, {"a": x, "b": x}, jax.random.key(0))
  with pytest.raises(ConfigError, match="pool_size must be"):
    cyclegan_step.make_cyclegan_step(G, G, D, D, pool_size=-1)
  with pytest.raises(ConfigError, match=r"translate takes images \[N, 4, 4, 1\]"):
    pix2pix_step.translate(G, sg, np.zeros((2, 4, 4, 3), np.float32))


# -- 8 devices --------------------------------------------------------------------------------

@pytest.mark.slow
def test_cyclegan_with_pools_and_pix2pix_with_dropout_on_8_devices_equal_one_device():
  assert jax.device_count() == 8
  # 16x16: at 8x8 the ResNet's instance norms see 2x2 maps, whose spread is rounding-
  # sensitive enough that 8 devices part from 1 by 1e-1 within 3 steps even at lr 1e-3.
  shape = (16, 16, 1)
  rng = np.random.default_rng(2)
  batches = [{k: rng.uniform(-1, 1, (16, *shape)).astype(np.float32) for k in "ab"}
             for _ in range(3)]
  key = jax.random.key(3)
  # SGD (see test_conditional: Adam would magnify rounding in zero gradients), with small
  # steps: instance norm divides by a channel's spread, up to 1/sqrt(eps) = 316x, so at
  # lr 1e-2 the runs of 1, 2 and 8 devices part by 1e-5 after 2 steps and 1e-1 after 3
  # (each from the others; without instance norm, or without the cycle terms, they agree
  # to 1e-7).
  tx = optax.sgd(1e-3)
  G = lambda: nets.ResNetTranslator(1, 4, 1)  # noqa: E731
  D = lambda: nets.PatchDiscriminator(4, 1)  # noqa: E731

  def run(make_step, place):
    step = make_step()
    sg, sd = step.prepare_states(*cyclegan_step.create_cyclegan_states(
        jax.random.key(0), G(), G(), D(), D(), tx, tx, shape_a=shape, shape_b=shape))
    for batch in batches:
      sg, sd, m = place(step)(sg, sd, batch, key)
    return sg, sd, m

  # A pool of 8 fills in the first step; the later ones swap (the gathered batch of 16).
  kw = dict(pool_size=8)
  reference = run(lambda: cyclegan_step.make_cyclegan_step(G(), G(), D(), D(), **kw), jax.jit)
  assert int(reference[1]["b"].step_state["pool_count"]) == 8
  axis = parallel.AXIS
  # shard_map with its varying-axes checks (the pools must come out replicated); pmap runs
  # the same step code (both mappings are compared for the noise families in
  # test_parallel.py, and the loop test maps CycleGAN with pmap).
  make = lambda: cyclegan_step.make_cyclegan_step(G(), G(), D(), D(), axis_name=axis, **kw)  # noqa: E731
  shard = run(make, lambda s: parallel.shard_map_step(s, parallel.data_mesh()))
  assert_close(shard, reference, name="cyclegan shard_map", floor=1e-3)

  # pix2pix: a U-Net with BatchNorm and decoder dropout (statistics of the global batch,
  # masks per global example), a PatchGAN with BatchNorm.
  G2 = nets.UNetTranslator(1, 3, 4, dropout_blocks=1)
  D2 = nets.PatchDiscriminator(4, 1, norm="batch")
  pairs = [{"source": b["a"], "image": b["b"]} for b in batches]

  def run2(step, fn):
    sg, sd = pix2pix_step.create_pix2pix_states(jax.random.key(0), G2, D2, tx, tx,
                                                source_shape=shape, image_shape=shape)
    for batch in pairs:
      sg, sd, m = fn(sg, sd, batch, key)
    return sg, sd, m

  reference = run2(None, jax.jit(pix2pix_step.make_pix2pix_step(G2, D2)))
  shard = run2(None, parallel.shard_map_step(pix2pix_step.make_pix2pix_step(G2, D2, axis_name=axis),
                                             parallel.data_mesh()))
  assert_close(shard, reference, name="pix2pix shard_map", floor=1e-3)


def test_fuse_steps_and_pmap_take_the_translation_steps_unchanged():
  # Scalar networks (cheap to compile): the compositions are what is tested here.
  rng = np.random.default_rng(3)
  xs = {k: rng.uniform(-1, 1, (3, 16, 3, 3, 1)).astype(np.float32) for k in "ab"}
  key = jax.random.key(5)
  tx = optax.sgd(0.05)
  nets_ = (Scale(0.5), Scale(1.5), PixelD((0.3,)), PixelD((-0.7,)))

  def fresh(step):
    return step.prepare_states(*cyclegan_step.create_cyclegan_states(
        jax.random.key(0), *nets_, tx, tx, shape_a=(3, 3, 1), shape_b=(3, 3, 1)))

  step = cyclegan_step.make_cyclegan_step(*nets_, pool_size=20)
  sg, sd = fresh(step)
  one = jax.jit(step)
  for i in range(3):
    sg, sd, m = one(sg, sd, {k: v[i] for k, v in xs.items()}, key)
  reference = (sg, sd, m)
  # K steps in one call (lax.scan): bit for bit the single steps.
  sg_f, sd_f, m_f = jax.jit(parallel.fuse_steps(step, unroll=1))(*fresh(step), xs, key)
  chex_equal = lambda a, b: all(np.array_equal(x, y) for x, y in  # noqa: E731
                                zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))
  assert chex_equal((sg_f, sd_f), reference[:2])
  assert chex_equal(jax.tree.map(lambda v: v[-1], m_f), m)
  # pmap over 8 devices: the pools run on the gathered global batch (16 images a step into
  # a pool of 20: it fills in the second step and swaps in the third).
  mapped = cyclegan_step.make_cyclegan_step(*nets_, pool_size=20, axis_name=parallel.AXIS)
  run = parallel.pmap_step(mapped)
  sg, sd = fresh(mapped)
  for i in range(3):
    sg, sd, m = run(sg, sd, parallel.split_batch({k: v[i] for k, v in xs.items()}), key)
  assert int(sd["b"].step_state["pool_count"]) == 20
  assert_close((sg, sd, m), reference, name="cyclegan pmap")

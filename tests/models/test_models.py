"""The model families: shapes, the TF tutorial's sizes, BN sync over an axis, spectral norm."""

import contextlib
import functools
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxgan
from jaxgan import models
from jaxgan.models import layers


def n_params(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def test_dcgan_28_matches_tensorflow_tutorial_parameter_counts():
  # model.summary() of the TF DCGAN tutorial: generator 2,305,472 trainable parameters
  # (+ 25,472 BN moving statistics), discriminator 212,865.
  G, D = models.DCGANGenerator(), models.DCGANDiscriminator()
  vg = G.init(jax.random.key(0), jnp.zeros((1, 100)), train=False)
  vd = D.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)), train=False)
  assert n_params(vg["params"]) == 2_305_472
  assert n_params(vg["batch_stats"]) == 25_472
  assert n_params(vd["params"]) == 212_865
  assert G.apply(vg, jnp.zeros((3, 100)), train=False).shape == (3, 28, 28, 1)
  assert D.apply(vd, jnp.zeros((3, 28, 28, 1)), train=False).shape == (3,)


@pytest.mark.slow
def test_dcgan_32x32x3_variant_and_width():
  G = models.DCGANGenerator(image_shape=(32, 32, 3), width=0.5)
  D = models.DCGANDiscriminator(width=0.5)
  vg = G.init(jax.random.key(0), jnp.zeros((1, 64)), train=False)
  x = G.apply(vg, jax.random.normal(jax.random.key(1), (4, 64)) * 10, train=False)
  assert x.shape == (4, 32, 32, 3)
  assert float(jnp.abs(x).max()) <= 1.0  # tanh output
  vd = D.init(jax.random.key(0), x, train=False)
  # Three stride-2 stages of 32, 64, 128 channels at width 0.5.
  assert [vd["params"][f"Conv_{i}"]["kernel"].shape[-1] for i in range(3)] == [32, 64, 128]
  assert D.apply(vd, x, train=False).shape == (4,)


def test_dcgan_rejects_sizes_it_cannot_halve():
  # 30x30 is fine (one stride-2 stage from 15x15); 27 cannot be halved at all.
  assert models.dcgan.num_stages(30, 30) == 1 and models.dcgan.num_stages(28, 28) == 2
  with pytest.raises(ValueError, match="halve to whole numbers"):
    models.DCGANGenerator(image_shape=(27, 27, 1)).init(
        jax.random.key(0), jnp.zeros((1, 8)), train=False)
  with pytest.raises(ValueError, match=r"images \[B, H, W, C\]"):
    models.DCGANDiscriminator().init(jax.random.key(0), jnp.zeros((1, 784)), train=False)


def test_mlp_pair_shapes_and_widths():
  G, D = models.MLPGenerator(), models.MLPDiscriminator()
  vg = G.init(jax.random.key(0), jnp.zeros((1, 100)))
  # z -> 256 -> 512 -> 784.
  assert [vg["params"][f"Dense_{i}"]["kernel"].shape for i in range(3)] == [
      (100, 256), (256, 512), (512, 784)]
  x = G.apply(vg, jnp.ones((2, 100)))
  assert x.shape == (2, 28, 28, 1) and float(jnp.abs(x).max()) <= 1.0
  vd = D.init(jax.random.key(0), x)
  assert [vd["params"][f"Dense_{i}"]["kernel"].shape for i in range(3)] == [
      (784, 512), (512, 256), (256, 1)]
  assert D.apply(vd, x).shape == (2,)
  # Unbounded output for 2-D toy data.
  g2 = models.MLPGenerator(image_shape=(2,), output_activation=None, hidden=(8,))
  v2 = g2.init(jax.random.key(0), jnp.zeros((1, 2)))
  assert g2.apply(v2, 100 * jnp.ones((1, 2))).shape == (1, 2)


def test_batchnorm_statistics_are_averaged_over_the_axis():
  # Two "devices" (a vmapped axis) with half a batch each must update the BN statistics
  # exactly as one device with the whole batch does.
  z = jax.random.normal(jax.random.key(1), (8, 16))
  single = models.DCGANGenerator(width=0.25)
  variables = single.init(jax.random.key(0), z, train=False)
  _, want = single.apply(variables, z, train=True, mutable=["batch_stats"])

  synced = models.DCGANGenerator(width=0.25, axis_name="dev")
  _, got = jax.vmap(lambda zz: synced.apply(variables, zz, train=True, mutable=["batch_stats"]),
                    axis_name="dev")(z.reshape(2, 4, 16))
  for w, g in zip(jax.tree.leaves(want), jax.tree.leaves(got), strict=True):
    np.testing.assert_allclose(g[0], w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g[1], w, rtol=1e-5, atol=1e-6)


def test_layers_follow_the_axis_inside_device_independent():
  # A generator built without an axis_name: inside device_independent("dev") its
  # BatchNorm averages over the axis, so 2 "devices" update the statistics as one does.
  z = jax.random.normal(jax.random.key(1), (8, 16))
  G = models.DCGANGenerator(width=0.25)
  variables = G.init(jax.random.key(0), z, train=False)
  _, want = G.apply(variables, z, train=True, mutable=["batch_stats"])

  def on_device(zz, follow=True):
    with layers.device_independent("dev") if follow else contextlib.nullcontext():
      return G.apply(variables, zz, train=True, mutable=["batch_stats"])[1]

  got = jax.vmap(on_device, axis_name="dev")(z.reshape(2, 4, 16))
  for w, g in zip(jax.tree.leaves(want), jax.tree.leaves(got), strict=True):
    np.testing.assert_allclose(g[1], w, rtol=1e-5, atol=1e-6)
  local = jax.vmap(lambda zz: on_device(zz, follow=False), axis_name="dev")(z.reshape(2, 4, 16))
  assert not np.allclose(jax.tree.leaves(local)[0][1], jax.tree.leaves(want)[0], rtol=1e-3)


@pytest.mark.parametrize("broadcast_dims", [(), (-1,), (0,)])
def test_flax_dropout_inside_device_independent_is_drawn_per_example(broadcast_dims):
  layer = nn.Dropout(0.4, broadcast_dims=broadcast_dims)
  x = jnp.ones((32, 6, 5))
  rngs = {"per_example": jax.random.key(0), "dropout": jax.random.key(1)}

  def apply(xx, axis=None):
    with layers.device_independent(axis):
      return layer.apply({}, xx, deterministic=False, rngs=rngs)

  y = apply(x)
  keep = np.asarray(y != 0)
  # Rate and scale as Flax's: survivors are 1 / 0.6; about 60% kept.
  np.testing.assert_allclose(np.asarray(y)[keep], 1 / 0.6, rtol=1e-6)
  assert abs(keep.mean() - 0.6) < (0.2 if 0 in broadcast_dims else 0.05)
  # Broadcast dimensions share one mask value, as in Flax.
  for d in broadcast_dims:
    assert (keep == keep.take([0], axis=d)).all()
  # Example j's mask is a function of its global index: the same as ExampleDropout's,
  # and 4 "devices" of 8 examples draw what one device with 32 draws.
  if not broadcast_dims:
    np.testing.assert_array_equal(
        y, models.ExampleDropout(0.4).apply({}, x, deterministic=False, rngs=rngs))
  y4 = jax.vmap(lambda xx: apply(xx, "dev"), axis_name="dev")(x.reshape(4, 8, 6, 5))
  np.testing.assert_array_equal(y4.reshape(y.shape), y)
  # Outside the context, or without a per_example stream, it is Flax's own dropout.
  flax_y = layer.apply({}, x, deterministic=False, rngs={"dropout": jax.random.key(1)})
  with layers.device_independent(None):
    np.testing.assert_array_equal(
        layer.apply({}, x, deterministic=False, rngs={"dropout": jax.random.key(1)}), flax_y)
  assert not np.array_equal(flax_y, y)


@pytest.mark.parametrize("family", ["mlp", "dcgan"])
def test_spectral_norm_converges_to_largest_singular_value(family):
  D = (models.MLPDiscriminator(spectral_norm=True) if family == "mlp"
       else models.DCGANDiscriminator(spectral_norm=True, dropout=0.0))
  x = jax.random.normal(jax.random.key(2), (2, 28, 28, 1))
  variables = D.init(jax.random.key(0), x, train=False)
  apply = jax.jit(lambda v: D.apply(v, x, train=True, mutable=["batch_stats"])[1])
  for _ in range(100):  # power iterations, one per training forward pass
    variables = {**variables, **apply(variables)}
  stats = variables["batch_stats"]
  for sn_name, sn in stats.items():
    for var, sigma in sn.items():
      if not var.endswith("/sigma"):
        continue
      layer = var.split("/")[0]
      kernel = np.asarray(variables["params"][layer]["kernel"])
      top = np.linalg.svd(kernel.reshape(-1, kernel.shape[-1]), compute_uv=False)[0]
      np.testing.assert_allclose(float(sigma), top, rtol=2e-3, err_msg=f"{sn_name}/{var}")
  # The normalised layer has unit spectral norm, so the logits change accordingly:
  # doubling every kernel leaves the output of a spectrally normalised D unchanged
  # (up to the biases, which are zero at initialisation).
  doubled = {**variables, "params": jax.tree.map(lambda p: 2 * p, variables["params"])}
  np.testing.assert_allclose(D.apply(doubled, x, train=False), D.apply(variables, x, train=False),
                             rtol=1e-4, atol=1e-6)


def test_example_dropout_rate_scale_and_device_independence():
  layer = models.ExampleDropout(0.3)
  x = jnp.ones((64, 10, 10, 4))
  rngs = {"per_example": jax.random.key(0)}
  y = layer.apply({}, x, deterministic=False, rngs=rngs)
  kept = np.asarray(y != 0)
  # About 70% kept (64*400 Bernoulli draws: sd of the share ~0.003), survivors scaled 1/0.7.
  assert abs(kept.mean() - 0.7) < 0.015
  np.testing.assert_allclose(np.asarray(y)[kept], 1 / 0.7, rtol=1e-6)
  np.testing.assert_array_equal(layer.apply({}, x, deterministic=True), x)
  # Example j's mask depends only on its global index: 4 "devices" of 16 examples each
  # draw exactly the masks of one device with all 64.
  split = models.ExampleDropout(0.3, axis_name="dev")
  y4 = jax.vmap(lambda xx: split.apply({}, xx, deterministic=False, rngs=rngs),
                axis_name="dev")(x.reshape(4, 16, 10, 10, 4))
  np.testing.assert_array_equal(y4.reshape(y.shape), y)
  # Different examples get different masks.
  assert not np.array_equal(kept[0], kept[1])
  # Without a per_example stream it falls back to the dropout stream.
  y_fallback = layer.apply({}, x, deterministic=False, rngs={"dropout": jax.random.key(0)})
  assert abs(float((y_fallback != 0).mean()) - 0.7) < 0.015


@pytest.mark.parametrize("kernel,stride", [(5, 2), (4, 2), (3, 2), (5, 3), (1, 2), (6, 4), (5, 1)])
def test_upconv_equals_flax_conv_transpose_both_methods(kernel, stride):
  # Reference: Flax's nn.ConvTranspose (lax.conv_transpose), same parameter and init.
  x = jax.random.normal(jax.random.key(0), (2, 7, 6, 3))
  ct = nn.ConvTranspose(4, (kernel, kernel), strides=(stride, stride), padding="SAME",
                        use_bias=False)
  params = ct.init(jax.random.key(1), x)
  expected = np.asarray(ct.apply(params, x))
  assert expected.shape == (2, 7 * stride, 6 * stride, 4)
  for method in ("transpose", "subpixel"):
    layer = models.UpConv(4, (kernel, kernel), strides=(stride, stride), method=method)
    own = layer.init(jax.random.key(1), x)
    assert jax.tree.map(jnp.shape, own) == jax.tree.map(jnp.shape, params)
    np.testing.assert_array_equal(own["params"]["kernel"], params["params"]["kernel"])
    np.testing.assert_allclose(layer.apply(params, x), expected, rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match="one of"):
    models.UpConv(4, (3, 3), method="bilinear").init(jax.random.key(1), x)


@pytest.mark.slow
def test_subpixel_generator_computes_and_learns_what_the_transposed_one_does():
  tx = optax.adam(1e-3, b1=0.5)
  runs = {}
  for method in ("transpose", "subpixel"):
    G = models.DCGANGenerator(width=0.125, upsample=method)
    D = models.DCGANDiscriminator(width=0.125, dropout=0.0)
    state_g, state_d = jaxgan.create_states(jax.random.key(0), G, D, tx, tx, latent_dim=16,
                                            image_shape=(28, 28, 1))
    initial = state_g.params
    step = jax.jit(jaxgan.make_train_step(G, D, "non_saturating"))
    batch = {"image": jax.random.uniform(jax.random.key(2), (8, 28, 28, 1), minval=-1)}
    losses = []
    for _ in range(5):
      state_g, state_d, metrics = step(state_g, state_d, batch, jax.random.key(3))
      losses.append(float(metrics["g_loss"]))
    images = jaxgan.generate(G, state_g, jax.random.key(4), 4)
    runs[method] = (state_g, losses, images, initial)
  (sg_t, loss_t, img_t, init_t), (sg_s, loss_s, img_s, _) = runs["transpose"], runs["subpixel"]
  assert img_s.shape == img_t.shape == (4, 28, 28, 1)
  # Same parameter tree (checkpoints interchangeable); the same training within float error.
  assert jax.tree.structure(sg_t.params) == jax.tree.structure(sg_s.params)
  assert sg_t.params["ConvTranspose_0"]["kernel"].shape == (5, 5, 32, 16)
  moved = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), sg_t.params, init_t)
  assert min(jax.tree.leaves(moved)) > 1e-4  # every generator parameter trained
  np.testing.assert_allclose(loss_s, loss_t, rtol=1e-4)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5),
               sg_s.params, sg_t.params)
  np.testing.assert_allclose(img_s, img_t, atol=1e-4)


@pytest.mark.slow
def test_bfloat16_compute_keeps_float32_params_statistics_and_outputs():
  z = jax.random.normal(jax.random.key(0), (16, 100))
  out = {}
  for dtype in (jnp.float32, jnp.bfloat16):
    G = models.DCGANGenerator(width=0.25, dtype=dtype)
    D = models.DCGANDiscriminator(width=0.25, spectral_norm=True, dtype=dtype)
    vg = G.init(jax.random.key(1), z)
    images, new_g = G.apply(vg, z, mutable=["batch_stats"])
    vd = D.init(jax.random.key(2), images)
    logits, new_d = D.apply(vd, images, mutable=["batch_stats"],
                            rngs={"dropout": jax.random.key(3)})
    for tree in (vg, vd, new_g, new_d):
      assert {x.dtype for x in jax.tree.leaves(tree)} == {jnp.dtype(jnp.float32)}
    assert images.dtype == logits.dtype == jnp.float32
    out[dtype] = (images, logits, new_g)
  (img32, log32, bn32), (img16, log16, bn16) = out[jnp.float32], out[jnp.bfloat16]
  # bfloat16 keeps 8 bits of mantissa: agreement to a few 1e-2, not to float32 precision.
  assert float(jnp.abs(img16 - img32).max()) < 0.1
  assert float(jnp.abs(img16 - img32).max()) > 0  # it did compute in bfloat16
  np.testing.assert_allclose(log16, log32, atol=0.1)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=0.05, atol=0.02), bn16, bn32)


# (input H, W, kernel, stride, padding): kernels larger than the input or the output, which
# XLA would run with swapped operands, and padding of every kind.
_SWAP_PRONE = [(4, 4, 5, 1, "SAME"), (8, 8, 5, 2, "SAME"), (4, 4, 5, 2, "SAME"),
               (3, 5, 4, 1, "SAME"), (5, 4, 6, 3, "SAME"), (4, 4, 5, 1, ((1, 3), (2, 0))),
               (6, 6, 5, 2, "VALID"), (2, 2, 3, 1, ((5, 1), (0, 4))),
               (3, 4, 2, 3, "SAME")]  # a stride above the kernel: phases without taps
# The DCGAN layers' shapes and other plain ones: only the gradient is rewritten.
_PLAIN = [(14, 14, 5, 2, "SAME"), (7, 7, 5, 1, "SAME"), (7, 7, 3, 1, "SAME"),
          (13, 11, 3, 2, "VALID"), (10, 10, 3, 2, ((2, 0), (1, 1))), (9, 9, 2, 4, "SAME")]


@pytest.mark.parametrize("h,w,k,s,padding", _SWAP_PRONE + _PLAIN)
def test_conv_general_dilated_equals_lax_with_gradients(h, w, k, s, padding):
  from jaxgan.models.layers import conv_general_dilated

  x = jax.random.normal(jax.random.key(0), (2, h, w, 3))
  kernel = jax.random.normal(jax.random.key(1), (k, k, 3, 4))

  def ref(x, kernel):
    return jax.lax.conv_general_dilated(x, kernel, (s, s), padding,
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))

  def ours(x, kernel):
    return conv_general_dilated(x, kernel, (s, s), padding,
                                dimension_numbers=("NHWC", "HWIO", "NHWC"))

  jaxpr = str(jax.make_jaxpr(ours)(x, kernel))
  assert "custom_vjp" in jaxpr  # the rewrite ran
  assert ("optimization_barrier" in jaxpr) == ((h, w, k, s, padding) in _SWAP_PRONE)
  cot = jax.random.normal(jax.random.key(2), ref(x, kernel).shape)

  # Everything a step asks of a convolution, in one compiled program per form (eager
  # autodiff would compile each primitive on its own, many times over).
  @functools.partial(jax.jit, static_argnums=0)
  def uses(conv, x, kernel):
    grads = jax.grad(lambda *a: jnp.sum(conv(*a) * cot), argnums=(0, 1))(x, kernel)
    # Second order, as a gradient penalty takes it: d/dkernel |d sum tanh(conv) / dx|^2.
    penalty_grad = jax.grad(lambda kn: jnp.sum(
        jax.grad(lambda x: jnp.sum(jnp.tanh(conv(x, kn))))(x) ** 2))(kernel)
    # Mapped over a member axis of kernels, as jaxgan.sweep maps a step.
    mapped = jax.vmap(conv, (None, 0))(x, jnp.stack([kernel, 2 * kernel]))
    return conv(x, kernel), grads, penalty_grad, mapped

  (out, grads, penalty, mapped), (out_ref, grads_ref, penalty_ref, mapped_ref) = (
      uses(ours, x, kernel), uses(ref, x, kernel))
  np.testing.assert_allclose(out, out_ref, atol=1e-4)
  for got, want in zip(grads, grads_ref, strict=True):
    np.testing.assert_allclose(got, want, atol=1e-4)
  np.testing.assert_allclose(penalty, penalty_ref, rtol=1e-4, atol=1e-3)
  np.testing.assert_allclose(mapped, mapped_ref, atol=1e-3)


@pytest.mark.slow
def test_dcgan_gradients_in_a_loop_use_only_plain_convolutions():
  # Inside a loop body XLA:CPU runs the convolutions autodiff makes for the weight and
  # input gradients 2-170x slower (BUILD_NOTES: jax-ml/jax#12868); those have batch and
  # features exchanged (dim_labels other than b01f_01io->b01f). Every convolution in a
  # scanned DCGAN gradient must be a plain NHWC/HWIO one. (With lax's own gradients,
  # checked when writing this test, the loop holds f01b/01bf-labelled convolutions.)
  G = models.DCGANGenerator(width=0.125)
  D = models.DCGANDiscriminator(width=0.125, dropout=0.0)
  z, x = jnp.zeros((4, 8)), jnp.zeros((4, 28, 28, 1))
  gv, dv = G.init(jax.random.key(0), z), D.init(jax.random.key(1), x)

  def loss(params, z):
    images, _ = G.apply({**gv, "params": params[0]}, z, mutable=["batch_stats"])
    return jnp.sum(D.apply({"params": params[1]}, images) ** 2)

  def scanned(params, zs):
    return jax.lax.scan(lambda p, z: (jax.tree.map(jnp.add, p, jax.grad(loss)(p, z)), None),
                        params, zs)[0]

  text = jax.jit(scanned).lower((gv["params"], dv["params"]), jnp.zeros((3, 4, 8))).compile(
      ).as_text()
  labels = re.findall(r"convolution\([^\n]*dim_labels=([^,\s]+)", text)
  assert "while" in text and len(labels) >= 10
  assert set(labels) == {"b01f_01io->b01f"}, sorted(set(labels))


@pytest.mark.slow
def test_dcgan_32x32_gradients_compile_without_swapped_convolutions(monkeypatch):
  # XLA marks a convolution it ran with swapped operands by reversing its window
  # (rhs_reversal); XLA:CPU runs those 50-100x slower (BUILD_NOTES). The 32x32 pair has a
  # 5x5 kernel on G's 4x4 map and a 4x4 output of D's last 5x5 stride-2 layer.
  G = models.DCGANGenerator(image_shape=(32, 32, 3), width=0.125)
  D = models.DCGANDiscriminator(width=0.125, dropout=0.0)
  z, x = jnp.zeros((2, 8)), jnp.zeros((2, 32, 32, 3))
  gv, dv = G.init(jax.random.key(0), z), D.init(jax.random.key(1), x)

  def g_loss(params):
    images, _ = G.apply({**gv, "params": params}, z, mutable=["batch_stats"])
    return jnp.sum(images ** 2)

  def d_loss(params, x):
    return jnp.sum(D.apply({"params": params}, x))

  texts = [jax.jit(jax.grad(g_loss)).lower(gv["params"]).compile().as_text(),
           jax.jit(jax.grad(d_loss, argnums=(0, 1))).lower(dv["params"], x).compile().as_text()]
  assert all("convolution(" in t and "rhs_reversal" not in t for t in texts)
  # Off the CPU the models use lax.conv_general_dilated unchanged.
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  jaxpr = str(jax.make_jaxpr(lambda p, x: D.apply({"params": p}, x))(dv["params"], x))
  assert "optimization_barrier" not in jaxpr and "conv_general_dilated" in jaxpr

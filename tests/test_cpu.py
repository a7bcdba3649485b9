"""jaxgan.cpu: the XLA:CPU convolution option, its guards, and the ahead-of-time pmap path."""

import jax
import numpy as np
import optax
import pytest

import jaxgan
from jaxgan import cpu, models, parallel


def test_options_only_for_a_cpu_backend_and_never_over_the_users_flags(monkeypatch):
  with pytest.raises(ValueError, match=r"conv_kernels must be one of \('xla', 'jaxlib'\)"):
    cpu.compiler_options("onednn")
  assert cpu.compiler_options("jaxlib") == {}
  if jax.__version__.startswith("0.10."):
    # The jaxlib this was measured on sends convolutions to YNNPACK and takes the option.
    assert cpu.compiler_options() == {cpu.YNN_FUSION_TYPE: cpu.WITHOUT_CONVOLUTIONS}
  monkeypatch.setenv("XLA_FLAGS", f"--{cpu.YNN_FUSION_TYPE}=dot")
  assert cpu.compiler_options() == {}
  monkeypatch.delenv("XLA_FLAGS")
  for accelerator in ("gpu", "tpu"):
    monkeypatch.setattr(jax, "default_backend", lambda a=accelerator: a)
    assert cpu.compiler_options() == {}


def test_option_changes_the_kernels_not_the_convolutions_results():
  options = cpu.compiler_options()
  x = jax.random.normal(jax.random.key(0), (8, 14, 14, 32))
  w = jax.random.normal(jax.random.key(1), (5, 5, 32, 64)) / 40

  def conv(x, w):
    return jax.lax.conv_general_dilated(x, w, (2, 2), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))

  grad = jax.grad(lambda x, w: (conv(x, w) ** 2).sum(), argnums=(0, 1))
  # An independent reference: the same convolution as a sum of shifted matmuls in NumPy.
  xn, wn = np.asarray(x, np.float64), np.asarray(w, np.float64)
  padded = np.pad(xn, ((0, 0), (1, 2), (1, 2), (0, 0)))
  ref = sum(padded[:, i:i + 13:2, j:j + 13:2, :] @ wn[i, j] for i in range(5) for j in range(5))
  out = jax.jit(conv, compiler_options=options)(x, w)
  np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)
  for a, b in zip(jax.jit(grad, compiler_options=options)(x, w), jax.jit(grad)(x, w),
                  strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3 * float(np.abs(b).max()))


def test_pmap_step_with_options_compiles_once_per_signature():
  # The caching is the model's business not at all: a small MLP pair compiles fastest.
  G = models.MLPGenerator(hidden=(32,))
  D = models.MLPDiscriminator(hidden=(32,))
  step = jaxgan.make_train_step(G, D, axis_name=parallel.AXIS)
  tx = optax.adam(1e-3)
  traces = []

  def counted(*args):
    traces.append(1)
    return step(*args)

  # Some option either way, so that the ahead-of-time path runs on any jaxlib.
  options = cpu.compiler_options() or {"xla_cpu_enable_fast_math": False}
  f = parallel.pmap_step(counted, compiler_options=options)
  sg, sd = jaxgan.create_states(jax.random.key(0), G, D, tx, tx, latent_dim=100,
                                image_shape=(28, 28, 1))
  # Placed where pmap puts its outputs, as the training loop does: the states' placement
  # is part of the signature.
  sg, sd = parallel.replicate((sg, sd), parallel.pmap_mesh())
  rng = np.random.default_rng(0)
  for batch in (16, 16, 8, 16):
    x = rng.uniform(-1, 1, (batch, 28, 28, 1)).astype(np.float32)
    sg, sd, metrics = f(sg, sd, parallel.split_batch({"image": x}), jax.random.key(1))
    assert np.isfinite(float(metrics["d_loss"]))
  assert len(traces) == 2 and int(sg.step) == 4  # batch 16 and batch 8; no retrace at 16

"""Losses and penalties against values computed by hand."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import losses

REAL = jnp.array([1.0, -2.0])
FAKE = jnp.array([0.5, -1.0])


def softplus(x):
  return math.log(1.0 + math.exp(x))


def test_non_saturating_by_hand():
  # D: BCE with target 1 on real, 0 on fake: mean(-log sigmoid(r)) + mean(-log(1 - sigmoid(f))).
  sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
  d = -(math.log(sig(1.0)) + math.log(sig(-2.0))) / 2 - (
      math.log(1 - sig(0.5)) + math.log(1 - sig(-1.0))) / 2
  g = -(math.log(sig(0.5)) + math.log(sig(-1.0))) / 2
  loss = losses.get("non_saturating")
  np.testing.assert_allclose(loss.discriminator(REAL, FAKE), d, rtol=1e-6)
  np.testing.assert_allclose(loss.generator(FAKE), g, rtol=1e-6)
  # The same numbers through softplus: 0.5*(sp(-1)+sp(2)) + 0.5*(sp(0.5)+sp(-1)).
  np.testing.assert_allclose(
      d, 0.5 * (softplus(-1) + softplus(2)) + 0.5 * (softplus(0.5) + softplus(-1)), rtol=1e-12)


def test_minimax_by_hand():
  loss = losses.get("minimax")
  # G minimises log(1 - sigmoid(f)) = -softplus(f).
  g = (math.log(1 - 1 / (1 + math.exp(-0.5))) + math.log(1 - 1 / (1 + math.exp(1.0)))) / 2
  np.testing.assert_allclose(loss.generator(FAKE), g, rtol=1e-6)
  np.testing.assert_allclose(loss.discriminator(REAL, FAKE),
                             losses.get("non_saturating").discriminator(REAL, FAKE), rtol=1e-7)


def test_least_squares_by_hand():
  loss = losses.get("least_squares")
  # 0.5 * mean((r - 1)^2) + 0.5 * mean(f^2): r-1 = 0, -3; f = 0.5, -1.
  d = 0.5 * (0.0**2 + (-3.0) ** 2) / 2 + 0.5 * (0.5**2 + (-1.0) ** 2) / 2
  g = 0.5 * ((0.5 - 1) ** 2 + (-1.0 - 1) ** 2) / 2
  assert d == pytest.approx(2.5625)
  np.testing.assert_allclose(loss.discriminator(REAL, FAKE), d, rtol=1e-6)
  np.testing.assert_allclose(loss.generator(FAKE), g, rtol=1e-6)


def test_hinge_by_hand():
  loss = losses.get("hinge")
  # mean(relu(1 - r)) = (0 + 3) / 2; mean(relu(1 + f)) = (1.5 + 0) / 2.
  np.testing.assert_allclose(loss.discriminator(REAL, FAKE), 1.5 + 0.75, rtol=1e-6)
  np.testing.assert_allclose(loss.generator(FAKE), -(0.5 - 1.0) / 2, rtol=1e-6)


def test_wasserstein_by_hand():
  loss = losses.get("wasserstein")
  # mean(f) - mean(r) = -0.25 - (-0.5).
  np.testing.assert_allclose(loss.discriminator(REAL, FAKE), 0.25, rtol=1e-6)
  np.testing.assert_allclose(loss.generator(FAKE), 0.25, rtol=1e-6)


@pytest.mark.parametrize("name", losses.names())
def test_gradient_signs_separate_real_from_fake(name):
  loss = losses.get(name)
  # Inside every loss's active region: hinge margins not met (r < 1, f > -1), LSGAN
  # targets not reached (r < 1, f > 0). A fake logit below 0 is pushed *up* by LSGAN,
  # towards its target 0.
  real, fake = jnp.array([0.3, 0.6]), jnp.array([0.1, 0.4])
  g_real, g_fake = jax.grad(loss.discriminator, argnums=(0, 1))(real, fake)
  assert (g_real < 0).all(), "descending the D loss must raise real logits"
  assert (g_fake > 0).all(), "descending the D loss must lower fake logits"
  # A relativistic G loss reads the real logits beside the fakes.
  g_fn = (lambda f: loss.generator(f, real)) if loss.pairs else loss.generator
  assert (jax.grad(g_fn)(fake) < 0).all(), "the G loss must raise fake logits"
  # A few steps of gradient descent on the logits separate them.
  for _ in range(20):
    g_real, g_fake = jax.grad(loss.discriminator, argnums=(0, 1))(real, fake)
    real, fake = real - 0.1 * g_real, fake - 0.1 * g_fake
  assert real.min() > fake.max()


def test_losses_accept_integer_like_batches_of_any_size():
  for name in losses.names():
    loss = losses.get(name)
    assert loss.discriminator(jnp.zeros(5), jnp.zeros(5)).shape == ()
    assert loss.generator(*(jnp.zeros(3),) * (2 if loss.pairs else 1)).shape == ()


def test_unknown_loss_name_lists_known_ones():
  with pytest.raises(ValueError, match=r"Unknown loss 'hingee'.*hinge.*least_squares"):
    losses.get("hingee")
  with pytest.raises(TypeError, match="name"):
    losses.get(3)


def test_aliases_and_registry():
  assert losses.get("BCE") is losses.non_saturating
  assert losses.get("lsgan") is losses.least_squares
  assert losses.get(losses.hinge) is losses.hinge
  with pytest.raises(ValueError, match="already registered"):
    losses.register(losses.Loss("hinge", losses.hinge.discriminator, losses.hinge.generator))


def test_gradient_penalty_linear_critic():
  # D(x) = w . x has gradient w everywhere: ||w|| = 5, penalty (5 - 1)^2 = 16 whatever
  # the interpolates are.
  w = jnp.array([3.0, 4.0])
  d_fn = lambda x: x @ w  # noqa: E731
  real = jnp.array([[1.0, 2.0], [0.0, -1.0], [5.0, 5.0]])
  fake = jnp.array([[0.0, 0.0], [2.0, 2.0], [-1.0, 3.0]])
  gp = losses.gradient_penalty(d_fn, real, fake, jnp.array([0.1, 0.5, 0.9]))
  np.testing.assert_allclose(gp, 16.0, rtol=1e-6)


def test_gradient_penalty_quadratic_critic():
  # D(x) = sum(x^2), grad 2 x_hat. With eps = 0.5:
  #   x_hat = (0.5, 0) -> grad (1, 0), norm 1 -> 0;  x_hat = (0, 1) -> grad (0, 2) -> (2-1)^2 = 1.
  d_fn = lambda x: jnp.sum(x**2, axis=-1)  # noqa: E731
  real = jnp.array([[1.0, 0.0], [0.0, 2.0]])
  fake = jnp.zeros((2, 2))
  gp = losses.gradient_penalty(d_fn, real, fake, jnp.array([0.5, 0.5]))
  np.testing.assert_allclose(gp, 0.5, rtol=1e-6)
  # eps = 1 gives x_hat = real: norms 2 and 4 -> ((2-1)^2 + (4-1)^2) / 2 = 5.
  gp = losses.gradient_penalty(d_fn, real, fake, jnp.array([1.0, 1.0]))
  np.testing.assert_allclose(gp, 5.0, rtol=1e-6)


def test_gradient_penalty_has_finite_gradient_at_zero_gradient():
  # A critic with zero input gradient: the norm is sqrt(0 + 1e-10), the penalty ~1, and
  # its derivative with respect to the critic's parameters must stay finite.
  def gp_of(scale):
    d_fn = lambda x: scale * jnp.sum(x * 0.0, axis=-1)  # noqa: E731
    return losses.gradient_penalty(d_fn, jnp.ones((2, 3)), jnp.zeros((2, 3)), jnp.ones(2))

  np.testing.assert_allclose(gp_of(1.0), (math.sqrt(1e-10) - 1) ** 2, rtol=1e-6)
  assert np.isfinite(jax.grad(gp_of)(1.0))


def test_gradient_penalty_images_and_no_gradient_into_fake():
  # Per-example norms over all non-batch axes of NHWC images: D(x) = sum(x) has gradient
  # all ones, norm sqrt(H*W*C) = sqrt(12); penalty (sqrt(12) - 1)^2.
  d_fn = lambda x: jnp.sum(x, axis=(1, 2, 3))  # noqa: E731
  real, fake = jnp.ones((2, 2, 3, 2)), jnp.zeros((2, 2, 3, 2))
  np.testing.assert_allclose(losses.gradient_penalty(d_fn, real, fake, jnp.array([0.3, 0.6])),
                             (math.sqrt(12) - 1) ** 2, rtol=1e-6)
  grad_fake = jax.grad(
      lambda f: losses.gradient_penalty(lambda x: jnp.sum(x**2, axis=(1, 2, 3)), real, f,
                                        jnp.array([0.3, 0.6])))(fake + 0.5)
  assert not np.any(grad_fake)


def test_r1_by_hand():
  # D(x) = sum(x^2): grads (2, 0) and (0, 4), squared norms 4 and 16, mean 10.
  d_fn = lambda x: jnp.sum(x**2, axis=-1)  # noqa: E731
  np.testing.assert_allclose(losses.r1_penalty(d_fn, jnp.array([[1.0, 0.0], [0.0, 2.0]])), 10.0,
                             rtol=1e-6)
  # Linear D: ||w||^2 = 25 for every example.
  np.testing.assert_allclose(
      losses.r1_penalty(lambda x: x @ jnp.array([3.0, 4.0]), jnp.ones((4, 2))), 25.0, rtol=1e-6)


def test_relativistic_by_hand():
  loss = losses.get("rpgan")
  assert loss is losses.relativistic and loss.pairs
  # Pairs in batch order: (real 1, fake 0.5) and (real -2, fake -1).
  # D: mean(softplus(-(1 - 0.5)), softplus(-(-2 + 1))) = (softplus(-0.5) + softplus(1)) / 2.
  d = (softplus(-0.5) + softplus(1.0)) / 2
  np.testing.assert_allclose(loss.discriminator(REAL, FAKE), d, rtol=1e-6)
  # G: mean(softplus(-(0.5 - 1)), softplus(-(-1 + 2))) = (softplus(0.5) + softplus(-1)) / 2.
  g = (softplus(0.5) + softplus(-1.0)) / 2
  np.testing.assert_allclose(loss.generator(FAKE, REAL), g, rtol=1e-6)
  # Pairing, not batch means: the fakes swapped give (softplus(-2) + softplus(2.5)) / 2,
  # where a loss of means (the non-saturating one) would not change.
  swapped = FAKE[::-1]
  np.testing.assert_allclose(loss.discriminator(REAL, swapped),
                             (softplus(-2.0) + softplus(2.5)) / 2, rtol=1e-6)
  np.testing.assert_allclose(losses.non_saturating.discriminator(REAL, swapped),
                             losses.non_saturating.discriminator(REAL, FAKE), rtol=1e-6)
  # Equal logits: log 2 on both sides, whatever their value.
  same = jnp.array([3.0, -7.0])
  np.testing.assert_allclose(loss.discriminator(same, same), math.log(2), rtol=1e-6)
  np.testing.assert_allclose(loss.generator(same, same), math.log(2), rtol=1e-6)


def test_r2_is_r1_on_the_fakes_by_hand():
  # D(x) = sum(x^3): grads 3 x^2 = (3, 12) and (27, 0), squared norms 153 and 729.
  d_fn = lambda x: jnp.sum(x**3, axis=-1)  # noqa: E731
  np.testing.assert_allclose(losses.r2_penalty(d_fn, jnp.array([[1.0, 2.0], [3.0, 0.0]])),
                             (153 + 729) / 2, rtol=1e-6)


def test_clip_weights():
  params = {"a": jnp.array([-1.0, -0.005, 0.0, 0.02]), "b": {"c": jnp.array([[0.5]])}}
  clipped = losses.clip_weights(params, 0.01)
  f32 = np.float32
  np.testing.assert_array_equal(clipped["a"], np.array([-0.01, -0.005, 0.0, 0.01], f32))
  np.testing.assert_array_equal(clipped["b"]["c"], np.array([[0.01]], f32))

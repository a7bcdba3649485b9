"""Adversarial losses (a registry of names) and the discriminator penalties.

Conventions, shared with the golden values other libraries publish:

* every loss is a mean over the batch;
* the discriminator loss is the sum of its real and its fake term;
* logits are raw discriminator outputs of shape ``[B]`` (no sigmoid applied).

The penalties take a function ``d_fn: images -> logits [B]`` rather than a module, so
they work for any discriminator, and take their randomness (the interpolation
coefficients) as an argument, so they are pure and can be checked by hand.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxgan.errors import ConfigError, InputTypeError

Array = jax.Array

# Added inside the square root of the WGAN-GP gradient norm so that its derivative is
# finite where the gradient is exactly zero (the value used by the reference code).
GP_NORM_EPS = 1e-10


@dataclasses.dataclass(frozen=True)
class Loss:
  """A pair of adversarial objectives, both minimised.

  Attributes:
    name: the registry name.
    discriminator: ``(real_logits [B], fake_logits [B]) -> scalar``.
    generator: ``fake_logits [B] -> scalar``; with ``pairs``, ``(fake_logits [B],
      real_logits [B]) -> scalar``.
    pairs: the losses compare each fake with the real of the same place in the batch (a
      relativistic loss): the generator's objective reads the real logits too, so the
      training step runs D on the real batch in G's update as well.
  """

  name: str
  discriminator: Callable[[Array, Array], Array]
  generator: Callable[..., Array]
  pairs: bool = False


def _non_saturating_d(real: Array, fake: Array) -> Array:
  # Binary cross-entropy on logits, target 1 for real and 0 for fake:
  # -log(sigmoid(r)) = softplus(-r), -log(1 - sigmoid(f)) = softplus(f).
  return jnp.mean(jax.nn.softplus(-real)) + jnp.mean(jax.nn.softplus(fake))


def _non_saturating_g(fake: Array) -> Array:
  # -log(sigmoid(f)): Goodfellow et al.'s practical generator objective.
  return jnp.mean(jax.nn.softplus(-fake))


def _minimax_g(fake: Array) -> Array:
  # log(1 - sigmoid(f)) = -softplus(f): the objective of the minimax game itself; its
  # gradient vanishes when D rejects the fakes confidently (hence "saturating").
  return -jnp.mean(jax.nn.softplus(fake))


def _least_squares_d(real: Array, fake: Array) -> Array:
  # Mao et al. (2017), a=0, b=1, with their 1/2 factors, on raw logits.
  return 0.5 * jnp.mean((real - 1.0) ** 2) + 0.5 * jnp.mean(fake**2)


def _least_squares_g(fake: Array) -> Array:
  return 0.5 * jnp.mean((fake - 1.0) ** 2)


def _hinge_d(real: Array, fake: Array) -> Array:
  # Lim & Ye (2017) / Miyato et al. (2018).
  return jnp.mean(jax.nn.relu(1.0 - real)) + jnp.mean(jax.nn.relu(1.0 + fake))


def _mean_negated(fake: Array) -> Array:
  # The generator side of both hinge (Miyato et al.) and Wasserstein (Arjovsky et al.).
  return -jnp.mean(fake)


def _wasserstein_d(real: Array, fake: Array) -> Array:
  # The critic maximises E[D(real)] - E[D(fake)]; as a loss to minimise, its negation.
  return jnp.mean(fake) - jnp.mean(real)


def _relativistic_d(real: Array, fake: Array) -> Array:
  # Jolicoeur-Martineau (2019)'s relativistic pairing, as R3GAN trains it: D is asked how
  # much more real each real image is than the fake beside it in the batch.
  return jnp.mean(jax.nn.softplus(-(real - fake)))


def _relativistic_g(fake: Array, real: Array) -> Array:
  return jnp.mean(jax.nn.softplus(-(fake - real)))


_REGISTRY: dict[str, Loss] = {}


def register(loss: Loss) -> Loss:
  """Adds ``loss`` to the registry under ``loss.name`` (so ``get`` finds it).

  Args:
    loss: the loss to register; its name must not be taken.

  Returns:
    The same loss, so this can be used on a module-level definition.
  """
  if loss.name in _REGISTRY:
    raise ConfigError(f"A loss named {loss.name!r} is already registered.")
  _REGISTRY[loss.name] = loss
  return loss


non_saturating = register(Loss("non_saturating", _non_saturating_d, _non_saturating_g))
minimax = register(Loss("minimax", _non_saturating_d, _minimax_g))
least_squares = register(Loss("least_squares", _least_squares_d, _least_squares_g))
hinge = register(Loss("hinge", _hinge_d, _mean_negated))
wasserstein = register(Loss("wasserstein", _wasserstein_d, _mean_negated))
relativistic = register(Loss("relativistic", _relativistic_d, _relativistic_g, pairs=True))


def names() -> tuple[str, ...]:
  """The registered loss names, sorted."""
  return tuple(sorted(_REGISTRY))


def get(name: str | Loss) -> Loss:
  """Looks a loss up by name; a ``Loss`` is returned unchanged.

  Args:
    name: one of ``names()`` (``non_saturating``, ``minimax``, ``least_squares``,
      ``hinge``, ``wasserstein``, ``relativistic``), or a ``Loss``.

  Returns:
    The ``Loss``.

  Raises:
    ValueError: for an unknown name, listing the known ones.
  """
  if isinstance(name, Loss):
    return name
  if not isinstance(name, str):
    raise InputTypeError("A loss is a name (str) or a jaxgan.losses.Loss, got "
                         f"{type(name).__name__}.")
  key = name.strip().lower().replace("-", "_")
  aliases = {"bce": "non_saturating", "ns": "non_saturating", "lsgan": "least_squares",
             "wgan": "wasserstein", "rpgan": "relativistic"}
  key = aliases.get(key, key)
  if key not in _REGISTRY:
    raise ConfigError(
        f"Unknown loss {name!r}. Known losses: {', '.join(names())} "
        f"(aliases: {', '.join(sorted(aliases))}). To add one, "
        "jaxgan.losses.register(jaxgan.losses.Loss(name, d_fn, g_fn))."
    )
  return _REGISTRY[key]


def _input_grads(d_fn: Callable[[Array], Array], x: Array) -> Array:
  # Each logit depends only on its own example (for a discriminator without batch
  # coupling), so the gradient of the sum is the per-example input gradient.
  return jax.grad(lambda v: jnp.sum(d_fn(v)))(x)


def _per_example_sq_norm(g: Array) -> Array:
  return jnp.sum(jnp.reshape(g, (g.shape[0], -1)) ** 2, axis=-1)


def gradient_penalty(d_fn: Callable[[Array], Array], real: Array, fake: Array,
                     eps: Array) -> Array:
  """WGAN-GP (Gulrajani et al., 2017): ``mean((||grad D(x_hat)|| - 1) ** 2)``.

  Args:
    d_fn: images ``[B, ...]`` -> logits ``[B]``.
    real: real images ``[B, ...]``.
    fake: generated images, same shape; no gradient flows into them.
    eps: interpolation coefficients ``[B]`` in [0, 1];
      ``x_hat = eps * real + (1 - eps) * fake``.

  Returns:
    The unweighted penalty (a scalar); the norm is ``sqrt(sum(g ** 2) + 1e-10)``.
  """
  eps = jnp.reshape(eps, (-1,) + (1,) * (real.ndim - 1)).astype(real.dtype)
  x_hat = eps * real + (1.0 - eps) * jax.lax.stop_gradient(fake)
  norm = jnp.sqrt(_per_example_sq_norm(_input_grads(d_fn, x_hat)) + GP_NORM_EPS)
  return jnp.mean((norm - 1.0) ** 2)


def r1_penalty(d_fn: Callable[[Array], Array], real: Array) -> Array:
  """R1 (Mescheder et al., 2018): ``mean(||grad D(real)|| ** 2)``.

  The training step multiplies this by ``r1_weight / 2`` (so ``r1_weight`` is the
  paper's gamma).

  Args:
    d_fn: images ``[B, ...]`` -> logits ``[B]``.
    real: real images ``[B, ...]``.

  Returns:
    The unweighted penalty (a scalar).
  """
  return jnp.mean(_per_example_sq_norm(_input_grads(d_fn, real)))


def r2_penalty(d_fn: Callable[[Array], Array], fake: Array) -> Array:
  """R2 (Mescheder et al., 2018; R3GAN): R1 taken on the generated images,
  ``mean(||grad D(fake)|| ** 2)``, weighted as R1 (``r2_weight / 2``).

  Args:
    d_fn: images ``[B, ...]`` -> logits ``[B]``.
    fake: generated images ``[B, ...]`` (the penalty's gradient does not reach G: the step
      passes them with their gradient stopped).

  Returns:
    The unweighted penalty (a scalar).
  """
  return r1_penalty(d_fn, fake)


def clip_weights(params, bound: float):
  """WGAN weight clipping (Arjovsky et al., 2017): every parameter into [-bound, bound]."""
  return jax.tree.map(lambda p: jnp.clip(p, -bound, bound), params)

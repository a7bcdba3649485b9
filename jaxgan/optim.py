"""Optimizer helpers: the Adam that StyleGAN2 gives a lazily regularised network."""

from __future__ import annotations

import optax

from jaxgan.errors import ConfigError, positive_int


def lazy_adam(learning_rate, b1: float = 0.0, b2: float = 0.99, every: int = 16,
              eps: float = 1e-8) -> optax.GradientTransformation:
  """Adam for a network regularised lazily (StyleGAN2): with ``k = every`` the network
  takes ``k + 1`` updates in ``k`` steps, so the reference scales the learning rate by
  ``k / (k + 1)`` and raises the betas to that power.

  ``every=16`` for D with ``r1_every=16``; ``every=4`` for G (the reference applies G's
  correction even where its path-length term is off, as in its ``cifar`` config).
  ``every=1`` (the penalty in every update's loss, no extra updates) is plain Adam.

  Args:
    learning_rate: the base rate (a float or an optax schedule).
    b1: the base beta1 (StyleGAN2: 0).
    b2: the base beta2 (StyleGAN2: 0.99).
    every: the regularisation interval ``k`` (>= 1).
    eps: Adam's epsilon (StyleGAN2: 1e-8).
  """
  if not positive_int(every):
    raise ConfigError(f"every must be an int >= 1 (the lazy regularisation interval), got "
                      f"{every!r}.")
  ratio = every / (every + 1) if every > 1 else 1.0
  lr = (lambda t: learning_rate(t) * ratio) if callable(learning_rate) else (
      learning_rate * ratio)
  return optax.adam(lr, b1=b1 ** ratio, b2=b2 ** ratio, eps=eps)

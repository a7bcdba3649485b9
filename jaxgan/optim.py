"""Optimizer helpers and the settings that change with the images seen.

``lazy_adam`` is the Adam that StyleGAN2 gives a lazily regularised network.

R3GAN (brownvc/R3GAN ``training/training_loop.py``) moves five settings along one cosine
from a start to a final value over a number of images: the learning rate, Adam's beta2,
the R1/R2 gamma, the G average's half-life and the augmentation probability. Here each is
a pure function of the images seen, which the step computes from ``state_g.step`` (and
the optimizers from their own count), so a resumed run continues every schedule exactly:
nothing of them is stored but the step counters the checkpoint already holds.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import jax.numpy as jnp
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


@dataclasses.dataclass(frozen=True)
class Cosine:
  """``base + (1 - d) * (final - base)`` with ``d = (1 + cos(pi * images / total)) / 2``,
  ``final`` after ``total`` images (the reference's ``cosine_decay_with_warmup`` without
  warm-up or hold)."""

  base: float
  final: float
  total: float

  def __post_init__(self):
    if not (isinstance(self.total, int | float) and self.total > 0):
      raise ConfigError(f"A cosine schedule needs a positive length in images, got "
                        f"{self.total!r}.")

  def __call__(self, images):
    images = jnp.asarray(images, jnp.float32)
    decay = 0.5 * (1 + jnp.cos(math.pi * jnp.minimum(images, self.total) / self.total))
    return self.base + (1 - decay) * (self.final - self.base)


@dataclasses.dataclass(frozen=True)
class StepSchedules:
  """What a training step reads from the images seen (each a function of them; None:
  the step's constant setting).

  Attributes:
    penalty_scale: multiplies ``r1_weight`` and ``r2_weight`` (R3GAN's gamma schedule as
      the ratio to its start).
    ema_half_life: the G average's half-life in images; the decay of a step of ``B``
      images is ``0.5 ** (B / half_life)`` (0 images: the average is the parameters).
    augment_p: the augmentation probability of a fixed-``p`` ADA (``ada:p``).
  """

  penalty_scale: Callable | None = None
  ema_half_life: Callable | None = None
  augment_p: Callable | None = None


def ema_decay(half_life, batch_images):
  """The reference's per-step decay ``0.5 ** (batch / max(half_life, 1e-8))``."""
  return 0.5 ** (batch_images / jnp.maximum(jnp.asarray(half_life, jnp.float32), 1e-8))


def cosine_adam(learning_rate: Cosine | float, b1: float, b2: Cosine | float, images_per_update,
                eps: float = 1e-8):
  """Adam whose learning rate and beta2 follow schedules of the images seen
  (``images_per_update`` times the optimizer's own count, which the checkpoint holds)."""
  def of_count(value):
    return (lambda count: value(count * images_per_update)) if callable(value) else value

  return optax.inject_hyperparams(optax.adam)(learning_rate=of_count(learning_rate), b1=b1,
                                              b2=of_count(b2), eps=eps)

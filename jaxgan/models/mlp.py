"""The original GAN's fully connected pair (Goodfellow et al., 2014).

Widths follow the classic PyTorch MNIST examples: G is z -> 256 -> 512 -> 784 with a tanh
output, D is 784 -> 512 -> 256 -> 1 logit, LeakyReLU(0.2) in between.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


class MLPGenerator(nn.Module):
  """Latent vectors ``[B, latent_dim]`` -> images ``[B, *image_shape]``.

  Attributes:
    image_shape: shape of one output example, e.g. ``(28, 28, 1)``, or ``(2,)`` for
      points in the plane.
    hidden: widths of the hidden layers.
    negative_slope: LeakyReLU slope.
    output_activation: applied to the output; ``jnp.tanh`` for images in [-1, 1],
      ``None`` for unbounded outputs (e.g. the 2-D toy mixtures).
    dtype: computation dtype (e.g. ``jnp.bfloat16``); parameters and outputs stay float32.
  """

  image_shape: Sequence[int] = (28, 28, 1)
  hidden: Sequence[int] = (256, 512)
  negative_slope: float = 0.2
  output_activation: Callable[[jax.Array], jax.Array] | None = jnp.tanh
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z: jax.Array, train: bool = True) -> jax.Array:
    del train  # No train-dependent layers; the argument keeps the common signature.
    x = z.reshape((z.shape[0], -1))
    for width in self.hidden:
      x = nn.leaky_relu(nn.Dense(width, dtype=self.dtype)(x), self.negative_slope)
    x = nn.Dense(int(np.prod(self.image_shape)), dtype=self.dtype)(x)
    if self.output_activation is not None:
      x = self.output_activation(x)
    return x.reshape((z.shape[0], *self.image_shape)).astype(jnp.float32)


class MLPDiscriminator(nn.Module):
  """Images ``[B, ...]`` -> logits ``[B]``.

  Attributes:
    hidden: widths of the hidden layers.
    negative_slope: LeakyReLU slope.
    spectral_norm: wrap every layer in spectral normalisation (Miyato et al., 2018).
    dtype: computation dtype (e.g. ``jnp.bfloat16``); parameters and logits stay float32.
  """

  hidden: Sequence[int] = (512, 256)
  negative_slope: float = 0.2
  spectral_norm: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
    def dense(width: int, h: jax.Array) -> jax.Array:
      layer = nn.Dense(width, dtype=self.dtype)
      return nn.SpectralNorm(layer)(h, update_stats=train) if self.spectral_norm else layer(h)

    x = x.reshape((x.shape[0], -1))
    for width in self.hidden:
      x = nn.leaky_relu(dense(width, x), self.negative_slope)
    return dense(1, x)[:, 0].astype(jnp.float32)

"""DCGAN (Radford et al., 2016) as the TensorFlow DCGAN tutorial builds it.

For 28x28 images this is the tutorial's architecture layer for layer:

* G: Dense 7*7*256 (no bias), BN, LeakyReLU; ConvTranspose 128 5x5 stride 1, BN, LeakyReLU;
  ConvTranspose 64 5x5 stride 2, BN, LeakyReLU; ConvTranspose C 5x5 stride 2, tanh.
* D: Conv 64 5x5 stride 2, LeakyReLU, Dropout 0.3; Conv 128 5x5 stride 2, LeakyReLU,
  Dropout 0.3; Dense 1.

Other sizes keep the pattern with one more stride-2 stage per halving: the number of
stages ``k`` is the largest with ``H / 2**k`` and ``W / 2**k`` whole numbers of at least 4.
28x28 gives k=2 (the tutorial); 32x32 (CIFAR-10) gives k=3: G starts from 4x4x512,
then ConvTranspose 256 s1, 128 s2, 64 s2, C s2; D is Conv 64, 128, 256 (all s2), Dense 1.

LeakyReLU slope 0.3 and BatchNorm epsilon 1e-3 are Keras's defaults, which the tutorial
uses; both are attributes.

``num_classes=C`` makes the pair class-conditional in the SNGAN/BigGAN way, called
``G(z, y, train)`` and ``D(x, y, train)``: every BatchNorm of G becomes a conditional one
(``x_hat * (1 + gain[y]) + bias[y]``, per-class tables initialised to 0), and D's logit is
``dense(h) + sum(embed(y) * h)`` with ``h`` its flattened last features (projection,
spectral-normalised with the rest when ``spectral_norm``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan.errors import ConfigError
from jaxgan.models.layers import ExampleDropout, UpConv, conv_general_dilated, halvings
from jaxgan.models.resnet import ClassEmbed, ConditionalBatchNorm, check_label_argument, sn_call


def num_stages(height: int, width: int) -> int:
  """Stride-2 stages of the DCGAN pair for an image of ``height`` x ``width``.

  Raises:
    ValueError: when neither side can be halved to a whole size of at least 4.
  """
  k = halvings(height, width)
  if k == 0:
    raise ConfigError(
        f"The DCGAN models need image sides that halve to whole numbers >= 4 "
        f"(e.g. 28, 32, 64); got {height}x{width}. Resize or pad the images, or use "
        "jaxgan.models.MLPGenerator/MLPDiscriminator."
    )
  return k


class DCGANGenerator(nn.Module):
  """Latent vectors ``[B, latent_dim]`` -> images ``[B, H, W, C]`` in [-1, 1].

  Attributes:
    image_shape: ``(H, W, C)``; (28, 28, 1) is the tutorial's MNIST model,
      (32, 32, 3) the CIFAR-10-sized variant.
    width: multiplier on every hidden layer's channel count (1.0 is the tutorial).
    negative_slope: LeakyReLU slope.
    axis_name: the mapped device axis BatchNorm averages its batch statistics over, so
      that they are those of the global batch. None (the default) follows the train
      step's ``axis_name`` inside the step (``jaxgan.models.layers.device_independent``);
      set it only to call the module under a mapped axis outside the step.
    bn_momentum: BatchNorm running-average momentum.
    bn_epsilon: BatchNorm epsilon.
    upsample: how the stride-2 transposed convolutions run (``jaxgan.models.UpConv``):
      ``"transpose"``, ``"subpixel"`` (convolution + depth-to-space) or ``"auto"`` (the
      faster on the backend). All compute the same function with the same parameters.
    dtype: computation dtype, e.g. ``jnp.bfloat16`` for mixed precision; parameters stay
      float32, BatchNorm statistics are computed in float32 and the images come out
      float32.
    num_classes: 0 (unconditional) or the classes of ``y`` (conditional BatchNorms).
  """

  image_shape: Sequence[int] = (28, 28, 1)
  width: float = 1.0
  negative_slope: float = 0.3
  axis_name: str | None = None
  bn_momentum: float = 0.99
  bn_epsilon: float = 1e-3
  upsample: str = "auto"
  dtype: Any = jnp.float32
  num_classes: int = 0

  @nn.compact
  def __call__(self, z: jax.Array, y: jax.Array | None = None, train: bool = True
               ) -> jax.Array:
    if isinstance(y, bool):  # G(z, False): train given positionally, in the labels' place
      y, train = None, y
    check_label_argument("DCGANGenerator", self.num_classes, y)
    height, width_px, channels = self.image_shape
    k = num_stages(height, width_px)
    base_h, base_w = height // 2**k, width_px // 2**k

    def ch(n: int) -> int:
      return max(1, int(round(n * self.width)))

    def bn_act(x: jax.Array) -> jax.Array:
      if self.num_classes:
        x = ConditionalBatchNorm(self.num_classes, momentum=self.bn_momentum,
                                 epsilon=self.bn_epsilon, axis_name=self.axis_name,
                                 dtype=self.dtype)(x, y, train)
      else:
        x = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                         epsilon=self.bn_epsilon, axis_name=self.axis_name, dtype=self.dtype)(x)
      return nn.leaky_relu(x, self.negative_slope)

    x = z.reshape((z.shape[0], -1))
    x = nn.Dense(base_h * base_w * ch(64 * 2**k), use_bias=False, dtype=self.dtype)(x)
    x = bn_act(x).reshape((z.shape[0], base_h, base_w, ch(64 * 2**k)))
    # Stride 1 first, then k - 1 hidden stride-2 stages halving the channels, then the
    # output stage (the k-th stride 2).
    strides = [1] + [2] * (k - 1)
    features = [ch(64 * 2 ** (k - 1 - i)) for i in range(k)] + [channels]
    for i, (n, stride) in enumerate(zip(features, strides + [2], strict=True)):
      # Named as nn.ConvTranspose would be: checkpoints from before UpConv still load.
      x = UpConv(n, (5, 5), strides=(stride, stride), method=self.upsample, dtype=self.dtype,
                 name=f"ConvTranspose_{i}")(x)
      if i < k:
        x = bn_act(x)
    return jnp.tanh(x).astype(jnp.float32)


class DCGANDiscriminator(nn.Module):
  """Images ``[B, H, W, C]`` -> logits ``[B]``.

  Attributes:
    width: multiplier on every layer's channel count (1.0 is the tutorial).
    negative_slope: LeakyReLU slope.
    dropout: dropout rate after each convolution (the tutorial's 0.3); 0 disables it.
      Masks are drawn per example (``ExampleDropout``), so they do not depend on how
      many devices share the batch.
    axis_name: the mapped device axis, which tells the dropout each example's global
      index. None (the default) follows the train step's ``axis_name`` inside the step.
    spectral_norm: wrap every convolution and the dense layer in spectral
      normalisation (Miyato et al., 2018); the power-iteration vectors live in the
      ``batch_stats`` collection and are updated when ``train`` is true.
    dtype: computation dtype, e.g. ``jnp.bfloat16``; parameters, the spectral norm's
      power iteration and the logits stay float32.
    num_classes: 0 (unconditional) or the classes of ``y`` (a projection head).
  """

  width: float = 1.0
  negative_slope: float = 0.3
  dropout: float = 0.3
  spectral_norm: bool = False
  axis_name: str | None = None
  dtype: Any = jnp.float32
  num_classes: int = 0

  @nn.compact
  def __call__(self, x: jax.Array, y: jax.Array | None = None, train: bool = True
               ) -> jax.Array:
    if isinstance(y, bool):  # D(x, False): train given positionally, in the labels' place
      y, train = None, y
    check_label_argument("DCGANDiscriminator", self.num_classes, y)
    if x.ndim != 4:
      raise ConfigError(f"DCGANDiscriminator takes images [B, H, W, C]; got shape {x.shape}.")
    k = num_stages(x.shape[1], x.shape[2])

    def layer(module: nn.Module, h: jax.Array) -> jax.Array:
      if self.spectral_norm:
        return nn.SpectralNorm(module)(h, update_stats=train)
      return module(h)

    for i in range(k):
      channels = max(1, int(round(64 * 2**i * self.width)))
      conv = nn.Conv(channels, (5, 5), strides=(2, 2), padding="SAME", dtype=self.dtype,
                     conv_general_dilated=conv_general_dilated)
      x = layer(conv, x)
      x = nn.leaky_relu(x, self.negative_slope)
      if self.dropout > 0:
        x = ExampleDropout(self.dropout, axis_name=self.axis_name)(x, deterministic=not train)
    x = x.reshape((x.shape[0], -1))
    logits = layer(nn.Dense(1, dtype=self.dtype), x)[:, 0].astype(jnp.float32)
    if not self.num_classes:
      return logits
    embed = ClassEmbed(self.num_classes, x.shape[-1], name="embed")
    rows = sn_call(embed, y, train, self.spectral_norm)
    return logits + jnp.sum(rows * x.astype(jnp.float32), axis=-1)

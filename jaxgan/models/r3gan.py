"""R3GAN's networks (Huang et al., "The GAN is dead; long live the GAN! A Modern GAN
Baseline", NeurIPS 2024): a modernised ResNet without normalisation.

Written fresh after the reference, brownvc/R3GAN ``R3GAN/Networks.py``, in NHWC:

* Residual block: ``x + conv1x1(act(conv3x3_grouped(act(conv1x1(x)))))``, the inner width
  ``expansion`` (2) times the block's, the 3x3 convolution in ``groups`` groups, ``act``
  a learned bias then leaky ReLU(0.2). No normalisation and no bias in the convolutions.
* Fix-up initialisation: every weight ``N(0, gain / sqrt(fan_in))``; in a block ``gain =
  sqrt(2 / (1 + 0.2^2)) * L^(-1/4)`` for the first two convolutions (``L``: the blocks of
  the whole network) and 0 for the last, so each block starts as the identity; 1 elsewhere.
* Resampling by the ``[1, 2, 1]`` low-pass filter in its interpolating form (``[1, 3, 3,
  1]``, the same as StyleGAN2's: ``stylegan2.upsample2d`` / ``downsample2d``); a 1x1
  convolution changes the width where two stages differ (before up-sampling in G, after
  down-sampling in D).
* G: a learned 4x4 basis ``[4, 4, C]`` scaled per channel by a linear map of ``z`` (with a
  conditional pair, of ``z`` concatenated with the class embedding), the stages from 4x4
  up, each a transition then its blocks, and a 1x1 convolution to the image's channels.
* D: a 1x1 convolution from the image, the stages from the top resolution down, each its
  blocks then a transition; at 4x4 a depthwise 4x4 convolution and a linear map to one
  logit, or (conditional) to an embedding whose inner product with the class's embedding
  is the logit (the projection discriminator).
* Sizes that are not a power of two (28x28): G draws at the next power of two and crops
  the centre, D zero-pads to it (as ``stylegan2``).
* ``low_precision_stages``: the reference runs its highest-resolution stages (3 for
  CIFAR-10, 4 for FFHQ-64) in bfloat16 on accelerators; the parameters stay float32.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan.errors import ConfigError
from jaxgan.models.resnet import check_label_argument, class_rows
from jaxgan.models.stylegan2 import downsample2d, upsample2d

LRELU_SLOPE = 0.2
ACT_GAIN = math.sqrt(2 / (1 + LRELU_SLOPE**2))  # the reference's BiasedActivation.Gain
LOW_PRECISION = jnp.bfloat16


def _normal(std: float):
  return nn.initializers.zeros if std == 0 else nn.initializers.normal(std)


class Conv(nn.Module):
  """A bias-free convolution, weights ``N(0, gain / sqrt(fan_in))`` (the reference's
  ``MSRInitializer``); ``groups`` splits the channels as ``nn.Conv``'s
  ``feature_group_count``."""

  features: int
  kernel_size: int = 1
  groups: int = 1
  gain: float = 1.0

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k, cin = self.kernel_size, x.shape[-1]
    fan_in = cin // self.groups * k * k
    w = self.param("kernel", _normal(self.gain / math.sqrt(fan_in)),
                   (k, k, cin // self.groups, self.features))
    if jax.default_backend() == "cpu":
      return patch_conv(x, w.astype(x.dtype), self.groups)
    return jax.lax.conv_general_dilated(x, w.astype(x.dtype), (1, 1), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                        feature_group_count=self.groups)


def patch_conv(x: jax.Array, w: jax.Array, groups: int = 1) -> jax.Array:
  """The stride-1 'SAME' convolution of NHWC ``x`` with HWIO ``w`` in ``groups`` groups, as
  one matrix product of the ``k x k`` shifted copies of ``x`` (im2col) with the dense
  block-diagonal kernel (group ``g``'s inputs feed its outputs only).

  XLA:CPU runs these small convolutions, and above all their weight gradients, at a few
  GFLOP/s (a grouped 3x3 layer of 32 channels at 32x32, batch 64: 95 ms forward, 850 ms
  for the weight gradient; BUILD_NOTES.md, "R3GAN"); as one 2-D product, every
  derivative R1 and R2 take is a product too. The same function, with ``groups`` times
  the multiplications and the memory of ``k * k`` copies of ``x``.
  """
  k = w.shape[0]
  if groups > 1:
    w = block_diagonal(w, groups)
  if k > 1:
    r = k // 2
    padded = jnp.pad(x, ((0, 0), (r, r), (r, r), (0, 0)))
    h, wd = x.shape[1], x.shape[2]
    x = jnp.concatenate([padded[:, i:i + h, j:j + wd] for i in range(k) for j in range(k)],
                        axis=-1)
  return x @ w.reshape(-1, w.shape[-1])


def block_diagonal(w: jax.Array, groups: int) -> jax.Array:
  """A grouped convolution's kernel ``[k, k, cin / groups, cout]`` as the dense kernel
  ``[k, k, cin, cout]`` of the same convolution, the blocks off the diagonal zero."""
  k, _, cin_g, cout = w.shape
  w = w.reshape(k, k, cin_g, groups, cout // groups)
  # A product with the identity's entries (not a contraction), so that the layer remains
  # one matrix product.
  full = w[:, :, None] * jnp.eye(groups, dtype=w.dtype)[:, None, :, None]
  return full.reshape(k, k, groups * cin_g, cout)


class BiasedActivation(nn.Module):
  """``leaky_relu(x + bias, 0.2)`` with a learned per-channel bias (initially 0)."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    bias = self.param("bias", nn.initializers.zeros, (x.shape[-1],))
    return nn.leaky_relu(x + bias.astype(x.dtype), LRELU_SLOPE)


class ResidualBlock(nn.Module):
  """``x + conv1x1(act(conv3x3(act(conv1x1(x)), groups)))``, the last conv zero at init.

  Attributes:
    groups: the grouped 3x3 convolution's groups (the reference's cardinality).
    expansion: the inner width over the block's (2).
    total_blocks: the blocks of the whole network (``L`` of the fix-up gain).
  """

  groups: int
  expansion: int
  total_blocks: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    channels = x.shape[-1]
    inner = channels * self.expansion
    # Three linear layers per branch: the variance scaling exponent -1 / (2 * 3 - 2).
    gain = ACT_GAIN * self.total_blocks ** (-1 / 4)
    y = Conv(inner, 1, gain=gain, name="conv1")(x)
    y = Conv(inner, 3, self.groups, gain=gain, name="conv2")(BiasedActivation(name="act1")(y))
    y = Conv(channels, 1, gain=0.0, name="conv3")(BiasedActivation(name="act2")(y))
    return x + y


def _check(name: str, widths, groups, blocks, expansion, image_shape) -> int:
  """The stage count's resolution, after checking the shapes against each other."""
  widths, groups, blocks = tuple(widths), tuple(groups), tuple(blocks)
  if not widths or len(groups) != len(widths) or len(blocks) != len(widths):
    raise ConfigError(f"{name}: widths, groups and blocks give one value per stage and "
                      f"must have the same length, got {len(widths)}, {len(groups)} and "
                      f"{len(blocks)}.")
  if not (isinstance(expansion, int) and expansion >= 1):
    raise ConfigError(f"{name}: expansion must be an int >= 1 (the reference's 2), got "
                      f"{expansion!r}.")
  for i, (w, g, b) in enumerate(zip(widths, groups, blocks, strict=True)):
    if not (isinstance(w, int) and w >= 1 and isinstance(b, int) and b >= 0):
      raise ConfigError(f"{name}: stage {i} has width {w!r} and {b!r} blocks; widths are "
                        "ints >= 1 and block counts ints >= 0.")
    if b and (not isinstance(g, int) or g < 1 or (w * expansion) % g):
      raise ConfigError(f"{name}: stage {i}'s groups ({g!r}) must divide its inner width "
                        f"{expansion} x {w} = {w * expansion} (the reference: 96 groups of "
                        "768 x 2).")
  res = 4 * 2 ** (len(widths) - 1)
  h, w = int(image_shape[0]), int(image_shape[1])
  side = 1 << max(h - 1, 1).bit_length()
  if h != w or side != res:
    fits = max(1, side.bit_length() - 2)  # the n of 4 * 2^(n - 1) = side
    crop = f", the centre cropped to {h}x{w}" if h != side else ""
    raise ConfigError(f"{name}: {len(widths)} stages draw {res}x{res} images; {h}x{w} "
                      + ("images are not square: pad or crop the data (--config.resolution)."
                         if h != w else
                         f"images need {fits} stages (4x4 doubled {fits - 1} times to "
                         f"{side}x{side}{crop})."))
  return res


def _dtype(stage: int, stages: int, low_precision_stages: int):
  return LOW_PRECISION if stage >= stages - low_precision_stages else jnp.float32


class R3GANGenerator(nn.Module):
  """``G(z, y=None, train)``: R3GAN's generator -> images ``[N, *image_shape]``.

  Attributes:
    image_shape: ``(H, W, C)``; ``H = W`` up to ``4 * 2^(stages - 1)`` (centre-cropped).
    widths: channels per stage, from 4x4 up.
    groups: the grouped convolution's groups per stage.
    blocks: residual blocks per stage.
    expansion: a block's inner width over its own.
    num_classes: 0 unconditional; else ``z`` is concatenated with a class embedding.
    embed_dim: the class embedding's size (the reference: the latent size, 64).
    low_precision_stages: the highest-resolution stages run in bfloat16.
  """

  image_shape: Sequence[int]
  widths: Sequence[int]
  groups: Sequence[int]
  blocks: Sequence[int]
  expansion: int = 2
  num_classes: int = 0
  embed_dim: int = 64
  low_precision_stages: int = 0

  @nn.compact
  def __call__(self, z: jax.Array, y=None, train: bool = True) -> jax.Array:
    del train  # no normalisation, no dropout: the same function in both modes
    check_label_argument(type(self).__name__, self.num_classes, y)
    _check(type(self).__name__, self.widths, self.groups, self.blocks, self.expansion,
           self.image_shape)
    total = sum(self.blocks)
    x = z.astype(jnp.float32)
    if self.num_classes:
      # The reference's bias-free linear map of the one-hot class: a table of rows.
      table = self.param("embed", _normal(1 / math.sqrt(self.num_classes)),
                         (self.num_classes, self.embed_dim))
      x = jnp.concatenate([x, class_rows(table, y)], axis=-1)
    stages = len(self.widths)
    for i, (width, groups, blocks) in enumerate(zip(self.widths, self.groups, self.blocks,
                                                    strict=True)):
      dtype = _dtype(i, stages, self.low_precision_stages)
      if i == 0:
        basis = self.param("basis", nn.initializers.normal(1.0), (4, 4, width))
        scale = nn.Dense(width, use_bias=False, name="basis_linear",
                         kernel_init=_normal(1 / math.sqrt(x.shape[-1])))(x)
        x = (basis[None] * scale[:, None, None, :]).astype(dtype)
      else:
        x = x.astype(dtype)
        if x.shape[-1] != width:
          x = Conv(width, 1, name=f"stage{i}_transition")(x)
        x = upsample2d(x)
      for j in range(blocks):
        x = ResidualBlock(groups, self.expansion, total, name=f"stage{i}_block{j}")(x)
    img = Conv(int(self.image_shape[-1]), 1, name="aggregation")(x).astype(jnp.float32)
    h = int(self.image_shape[0])
    pad = (img.shape[1] - h) // 2
    return img[:, pad:pad + h, pad:pad + h] if pad else img


class R3GANDiscriminator(nn.Module):
  """``D(x, y=None, train)``: R3GAN's discriminator -> logits ``[N]``.

  Attributes:
    widths: channels per stage, from the top resolution down to 4x4 (the generator's
      reversed).
    groups, blocks, expansion: per stage, in that order (as the generator's).
    num_classes: 0 unconditional; else the projection onto a class embedding.
    embed_dim: the projection's size (0: the last stage's width, the reference's choice).
    low_precision_stages: the highest-resolution stages run in bfloat16.
  """

  widths: Sequence[int]
  groups: Sequence[int]
  blocks: Sequence[int]
  expansion: int = 2
  num_classes: int = 0
  embed_dim: int = 0
  low_precision_stages: int = 0

  @nn.compact
  def __call__(self, x: jax.Array, y=None, train: bool = True) -> jax.Array:
    del train
    check_label_argument(type(self).__name__, self.num_classes, y)
    res = _check(type(self).__name__, self.widths, self.groups, self.blocks, self.expansion,
                 x.shape[1:])
    pad = (res - x.shape[1]) // 2
    if pad:
      x = jnp.pad(x, ((0, 0), (pad, res - x.shape[1] - pad), (pad, res - x.shape[2] - pad),
                      (0, 0)))
    total, stages = sum(self.blocks), len(self.widths)
    # The top stages are the highest-resolution ones here.
    low = lambda i: _dtype(stages - 1 - i, stages, self.low_precision_stages)  # noqa: E731
    x = Conv(self.widths[0], 1, name="extraction")(x.astype(low(0)))
    for i, (width, groups, blocks) in enumerate(zip(self.widths, self.groups, self.blocks,
                                                    strict=True)):
      x = x.astype(low(i))
      for j in range(blocks):
        x = ResidualBlock(groups, self.expansion, total, name=f"stage{i}_block{j}")(x)
      if i + 1 < stages:
        x = downsample2d(x)
        if width != self.widths[i + 1]:
          x = Conv(self.widths[i + 1], 1, name=f"stage{i}_transition")(x)
    x = x.astype(jnp.float32)
    width = x.shape[-1]
    # The depthwise 4x4 basis: one 4x4 filter per channel over the whole map.
    kernel = self.param("basis", _normal(1 / 4), (4, 4, 1, width))
    x = jax.lax.conv_general_dilated(x, kernel, (1, 1), "VALID",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                     feature_group_count=width).reshape(x.shape[0], width)
    out = (self.embed_dim or width) if self.num_classes else 1
    x = nn.Dense(out, use_bias=False, name="basis_linear",
                 kernel_init=_normal(1 / math.sqrt(width)))(x)
    if not self.num_classes:
      return x[:, 0]
    table = self.param("embed", _normal(1 / math.sqrt(out) / math.sqrt(self.num_classes)),
                       (self.num_classes, out))
    return jnp.sum(x * class_rows(table, y), axis=-1)


# -- presets ----------------------------------------------------------------------------------

LATENT_DIM = 64  # every preset's noise size


def r3gan(image_shape: Sequence[int], widths: Sequence[int], groups: Sequence[int],
          blocks: Sequence[int], num_classes: int = 0, expansion: int = 2,
          low_precision_stages: int = 0) -> tuple[R3GANGenerator, R3GANDiscriminator]:
  """A pair from the generator's stages (from 4x4 up); D mirrors them. A conditional G
  embeds the class in ``LATENT_DIM`` values, D projects on the last width's."""
  widths, groups, blocks = tuple(widths), tuple(groups), tuple(blocks)
  return (R3GANGenerator(tuple(image_shape), widths, groups, blocks, expansion, num_classes,
                         LATENT_DIM, low_precision_stages),
          R3GANDiscriminator(widths[::-1], groups[::-1], blocks[::-1], expansion, num_classes,
                             widths[0], low_precision_stages))


def r3gan_cifar10(num_classes: int = 10, low_precision_stages: int = 0
                  ) -> tuple[R3GANGenerator, R3GANDiscriminator]:
  """The reference's ``CIFAR10`` preset: 32x32x3, 4 stages of width 768 (3/4 of 1024),
  96 groups and 2 blocks each; the reference runs 3 stages in bfloat16 on GPUs."""
  return r3gan((32, 32, 3), (768,) * 4, (96,) * 4, (2,) * 4, num_classes,
               low_precision_stages=low_precision_stages)


def r3gan_ffhq64(num_classes: int = 0, low_precision_stages: int = 0
                 ) -> tuple[R3GANGenerator, R3GANDiscriminator]:
  """The reference's ``FFHQ-64`` preset: 64x64x3, widths 768 x 4 then 384, groups 96 x 4
  then 48, 2 blocks per stage; the reference runs 4 stages in bfloat16 on GPUs."""
  return r3gan((64, 64, 3), (768,) * 4 + (384,), (96,) * 4 + (48,), (2,) * 5, num_classes,
               low_precision_stages=low_precision_stages)


__all__ = ["R3GANGenerator", "R3GANDiscriminator", "ResidualBlock", "r3gan", "r3gan_cifar10",
           "r3gan_ffhq64", "LATENT_DIM"]

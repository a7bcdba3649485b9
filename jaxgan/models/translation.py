"""Image-to-image translation networks: pix2pix's U-Net, CycleGAN's ResNet-k generator and
the PatchGAN discriminator, after junyanz/pytorch-CycleGAN-and-pix2pix ``models/networks.py``.

The reference's layer order, kernel sizes, paddings and defaults, written for Flax:

* ``InstanceNorm``: PyTorch's ``InstanceNorm2d(affine=False)``, eps 1e-5 (Flax's own
  defaults differ: eps 1e-6 and an affine transform).
* ``ResNetTranslator`` (``resnet_9blocks``, ``resnet_6blocks``): reflection padding, a 7x7
  convolution, two stride-2 3x3 down-samplings, ``n_blocks`` residual blocks (no ReLU after
  the addition), two stride-2 3x3 transposed convolutions, a 7x7 convolution and tanh.
  Convolutions carry a bias only next to an instance norm, as the reference's do.
* ``UNetTranslator`` (``unet_256`` is ``num_downs=8``): the recursive skip-connection
  blocks, encoder ``LeakyReLU(0.2) -> Conv4 s2 -> norm`` (the outermost a bare conv, the
  innermost without norm), decoder ``ReLU -> ConvT4 s2 -> norm`` (the outermost ending in
  tanh), skips concatenated on channels, dropout 0.5 on the decoder of ``num_downs - 5``
  blocks next to the innermost (none below 6 downs; ``dropout_blocks`` sets another count).
* ``PatchDiscriminator`` (``basic`` is ``n_layers=3``, the 70x70 PatchGAN): 4x4
  convolutions with padding 1, ``n_layers`` stride-2 ones (the first without norm), one
  stride-1 with norm, one stride-1 to 1 channel: logits ``[B, h, w]``, one per patch.

Weights are initialised N(0, 0.02), biases 0, BatchNorm scales N(1, 0.02) (the reference's
``init_type="normal"``). Transposed convolutions are ``jaxgan.models.UpConv`` ('SAME'
padding: the same function class and parameter count as PyTorch's ``padding=1,
output_padding=1``, with the taps aligned one step apart, so PyTorch weights do not load
unchanged). On the CPU every convolution takes ``layers.conv_general_dilated``'s fast
gradients.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan.errors import ConfigError
from jaxgan.models.layers import ExampleDropout, UpConv, conv_general_dilated

NORMS = ("instance", "batch", "none")
INIT_STD = 0.02  # the reference's init_gain for init_type="normal"
IN_EPSILON = 1e-5  # PyTorch's InstanceNorm2d
BN_EPSILON = 1e-5  # PyTorch's BatchNorm2d
BN_MOMENTUM = 0.9  # PyTorch's 0.1 update weight, as Flax's decay


def _normal(std: float = INIT_STD, mean: float = 0.0):
  def init(key, shape, dtype=jnp.float32):
    return mean + std * jax.random.normal(key, shape, dtype)

  return init


class InstanceNorm(nn.Module):
  """``(x - mean) / sqrt(var + eps)`` per example and channel over H and W (biased
  variance, two passes): PyTorch's ``InstanceNorm2d(affine=False)``. No parameters."""

  epsilon: float = IN_EPSILON

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x32 = x.astype(jnp.float32)
    mean = jnp.mean(x32, axis=(1, 2), keepdims=True)
    centred = x32 - mean
    var = jnp.mean(jnp.square(centred), axis=(1, 2), keepdims=True)
    return (centred * jax.lax.rsqrt(var + self.epsilon)).astype(x.dtype)


def _check_norm(norm: str) -> None:
  if norm not in NORMS:
    raise ConfigError(f"norm must be one of {NORMS}, got {norm!r}.")


def _norm(norm: str, train: bool, name: str | None = None):
  """The reference's norm layer as a function of ``x``."""
  if norm == "instance":
    return InstanceNorm(name=name)
  if norm == "batch":
    return nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM,
                        epsilon=BN_EPSILON, scale_init=_normal(mean=1.0), name=name)
  return lambda x: x


def _conv(features: int, kernel: int, stride: int = 1, padding: Any = "VALID",
          use_bias: bool = True, name: str | None = None) -> nn.Conv:
  return nn.Conv(features, (kernel, kernel), strides=(stride, stride), padding=padding,
                 use_bias=use_bias, kernel_init=_normal(), bias_init=nn.initializers.zeros,
                 conv_general_dilated=conv_general_dilated, name=name)


class _UpConvBias(nn.Module):
  """``UpConv`` (stride 2, 'SAME') plus an optional bias: PyTorch's ``ConvTranspose2d``."""

  features: int
  kernel: int
  use_bias: bool

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    y = UpConv(self.features, (self.kernel, self.kernel), strides=(2, 2),
               kernel_init=_normal(), name="conv")(x)
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,))
    return y


def reflect_pad(x: jax.Array, pad: int) -> jax.Array:
  """PyTorch's ``ReflectionPad2d(pad)`` on NHWC ``x``."""
  return jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")


class ResnetBlock(nn.Module):
  """``x + [pad, conv3, norm, ReLU, (dropout), pad, conv3, norm](x)``."""

  features: int
  norm: str = "instance"
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    bias = self.norm == "instance"
    y = _conv(self.features, 3, use_bias=bias)(reflect_pad(x, 1))
    y = nn.relu(_norm(self.norm, train)(y))
    if self.dropout:
      y = ExampleDropout(self.dropout)(y, deterministic=not train)
    y = _conv(self.features, 3, use_bias=bias)(reflect_pad(y, 1))
    return x + _norm(self.norm, train)(y)


class ResNetTranslator(nn.Module):
  """CycleGAN's generator: images ``[B, H, W, C_in]`` -> ``[B, H, W, out_channels]`` in
  [-1, 1]; ``H`` and ``W`` must be multiples of 4.

  Attributes:
    out_channels: the output images' channels.
    ngf: channels of the first layer (the reference: 64); 2x and 4x after the
      down-samplings.
    n_blocks: residual blocks (9 at 256x256 and up, 6 at 128x128).
    norm: ``"instance"`` (CycleGAN), ``"batch"`` or ``"none"``.
    dropout: inside the residual blocks (CycleGAN: none).
  """

  out_channels: int = 3
  ngf: int = 64
  n_blocks: int = 9
  norm: str = "instance"
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
    _check_norm(self.norm)
    if x.ndim != 4 or x.shape[1] % 4 or x.shape[2] % 4:
      raise ConfigError(f"ResNetTranslator takes images [B, H, W, C] with H and W multiples "
                        f"of 4 (two stride-2 down-samplings and back); got shape {x.shape}. "
                        "Pad or crop the images.")
    bias = self.norm == "instance"
    h = _conv(self.ngf, 7, use_bias=bias)(reflect_pad(x, 3))
    h = nn.relu(_norm(self.norm, train)(h))
    for i in range(2):
      h = _conv(self.ngf * 2 ** (i + 1), 3, 2, ((1, 1), (1, 1)), use_bias=bias)(h)
      h = nn.relu(_norm(self.norm, train)(h))
    for _ in range(self.n_blocks):
      h = ResnetBlock(self.ngf * 4, self.norm, self.dropout)(h, train)
    for i in range(2):
      h = _UpConvBias(self.ngf * 2 ** (1 - i), 3, bias)(h)
      h = nn.relu(_norm(self.norm, train)(h))
    h = _conv(self.out_channels, 7)(reflect_pad(h, 3))
    return jnp.tanh(h).astype(jnp.float32)


class UNetTranslator(nn.Module):
  """pix2pix's generator: images ``[B, H, W, C_in]`` -> ``[B, H, W, out_channels]`` in
  [-1, 1]. Sides that are not multiples of ``2**num_downs`` are reflection-padded up to
  one, and the output cropped back (28x28 runs at 32x32 with ``num_downs=5``).

  Attributes:
    out_channels: the output images' channels.
    num_downs: down-samplings (``unet_256``: 8, ``unet_128``: 7; 5 at 32x32).
    ngf: channels of the outermost layer; ``ngf * min(2**i, 8)`` further in.
    norm: ``"batch"`` (pix2pix), ``"instance"`` or ``"none"``.
    dropout: the decoder's dropout rate (0.5), pix2pix's only noise.
    dropout_blocks: how many blocks next to the innermost end their decoder with dropout;
      None: the reference's ``num_downs - 5`` (3 for ``unet_256``; none below 6 downs).
  """

  out_channels: int = 3
  num_downs: int = 8
  ngf: int = 64
  norm: str = "batch"
  dropout: float = 0.5
  dropout_blocks: int | None = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
    _check_norm(self.norm)
    if self.num_downs < 2:
      raise ConfigError(f"num_downs must be >= 2 (an outermost and an innermost block), got "
                        f"{self.num_downs}.")
    if x.ndim != 4:
      raise ConfigError(f"UNetTranslator takes images [B, H, W, C]; got shape {x.shape}.")
    h, w = x.shape[1:3]
    unit = 2 ** self.num_downs
    ph, pw = (-h) % unit, (-w) % unit
    if ph or pw:
      x = jnp.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)),
                  mode="reflect" if max(ph, pw) < min(h, w) else "edge")
    depth = self.num_downs
    # Encoder and decoder channels, outermost first: ngf, 2 ngf, 4 ngf, 8 ngf, 8 ngf, ...
    inner = [self.ngf * min(2 ** i, 8) for i in range(depth)]
    with_dropout = (max(0, depth - 5) if self.dropout_blocks is None
                    else self.dropout_blocks)
    bias = self.norm == "instance"

    def down(i: int, h: jax.Array) -> jax.Array:
      if i > 0:
        h = nn.leaky_relu(h, 0.2)
      h = _conv(inner[i], 4, 2, ((1, 1), (1, 1)), use_bias=bias, name=f"down{i}")(h)
      if 0 < i < depth - 1:
        h = _norm(self.norm, train, name=f"down{i}_norm")(h)
      return h

    skips = []
    for i in range(depth):
      skips.append(x)
      x = down(i, x)
    for i in reversed(range(depth)):
      outer = self.out_channels if i == 0 else inner[i - 1]
      x = nn.relu(x)
      x = _UpConvBias(outer, 4, True if i == 0 else bias, name=f"up{i}")(x)
      if i == 0:
        x = jnp.tanh(x)
        break
      x = _norm(self.norm, train, name=f"up{i}_norm")(x)
      # Blocks 1 .. with_dropout out from the innermost (depth - 1) drop on their decoder.
      if self.dropout and depth - 1 - with_dropout <= i < depth - 1:
        x = ExampleDropout(self.dropout, name=f"up{i}_dropout")(x, deterministic=not train)
      x = jnp.concatenate([skips[i], x], axis=-1)
    x = x[:, ph // 2:ph // 2 + h, pw // 2:pw // 2 + w]
    return x.astype(jnp.float32)


class PatchDiscriminator(nn.Module):
  """The PatchGAN: images ``[B, H, W, C]`` -> logits ``[B, h, w]``, one per patch.

  With ``n_layers`` stride-2 layers the receptive field is ``70`` for 3 (the reference's
  ``basic``), 34 for 2 and 16 for 1 (``receptive_field``). At 28x28 the 70x70 patch is the
  whole image (a 1x1 map); n_layers 1 or 2 judge 12x12 or 5x5 patches.

  Attributes:
    ndf: channels of the first layer; ``ndf * min(2**n, 8)`` further in.
    n_layers: stride-2 layers.
    norm: ``"instance"`` (CycleGAN), ``"batch"`` (pix2pix) or ``"none"``.
  """

  ndf: int = 64
  n_layers: int = 3
  norm: str = "instance"

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
    _check_norm(self.norm)
    if x.ndim != 4:
      raise ConfigError(f"PatchDiscriminator takes images [B, H, W, C]; got shape {x.shape}.")
    bias = self.norm == "instance"
    pad = ((1, 1), (1, 1))
    h = nn.leaky_relu(_conv(self.ndf, 4, 2, pad)(x), 0.2)
    for n in range(1, self.n_layers + 1):
      stride = 2 if n < self.n_layers else 1
      h = _conv(self.ndf * min(2 ** n, 8), 4, stride, pad, use_bias=bias)(h)
      h = nn.leaky_relu(_norm(self.norm, train)(h), 0.2)
    h = _conv(1, 4, 1, pad)(h)
    if min(h.shape[1:3]) < 1:
      raise ConfigError(f"The PatchGAN with n_layers={self.n_layers} leaves no patch of a "
                        f"{x.shape[1]}x{x.shape[2]} image; use fewer layers.")
    return h[..., 0].astype(jnp.float32)


def receptive_field(n_layers: int) -> int:
  """The PatchGAN's patch size in pixels: 70 for ``n_layers=3``."""
  rf = 1
  for stride in reversed([2] * n_layers + [1, 1]):
    rf = rf * stride + (4 - stride)
  return rf


def patch_grid(size: int, n_layers: int) -> int:
  """Side of the PatchGAN's logit map for an image side ``size``."""
  for _ in range(n_layers):
    size = (size + 2 - 4) // 2 + 1
  for _ in range(2):
    size = size + 2 - 4 + 1
  return size


__all__ = ["InstanceNorm", "ResNetTranslator", "UNetTranslator", "PatchDiscriminator",
           "ResnetBlock", "reflect_pad", "receptive_field", "patch_grid", "NORMS"]


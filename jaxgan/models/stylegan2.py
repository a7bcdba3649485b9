"""StyleGAN2 (Karras et al., "Analyzing and Improving the Image Quality of StyleGAN", CVPR
2020): a mapping network, modulated convolutions with demodulation, noise inputs and toRGB
skips in G; a residual (or plain) D with minibatch standard deviation; equalised learning
rate everywhere.

Written fresh after the reference, NVlabs/stylegan2-ada-pytorch ``training/networks.py``,
in NHWC with Flax's own initialisers (so the key given to ``init`` decides the weights):

* Equalised learning rate: every weight is stored ``N(0, 1) / lr_mul`` and scaled at call
  time by ``lr_mul / sqrt(fan_in)``; biases by ``lr_mul``. ``lrelu`` is leaky ReLU(0.2)
  times ``sqrt(2)``.
* Mapping: ``z * rsqrt(mean(z^2) + 1e-8)`` (with a conditional pair, concatenated with the
  normalised class embedding), ``mapping_layers`` dense layers at ``lr_mul = 0.01``. In
  training mode each call moves ``w_avg`` (collection ``moving_stats``) toward the batch
  mean of ``w`` with ``beta = 0.995``; truncation is ``w_avg + psi (w - w_avg)``.
* Synthesis: a learned 4x4 constant, then per resolution an up-sampling modulated conv, a
  modulated conv and a toRGB whose output is added to the up-sampled image of the blocks
  before (the "skip" G). Modulation scales the input channels by the style
  ``s = affine(w)`` (bias 1), demodulation scales each output channel by
  ``rsqrt(sum_i s_i^2 sum_k W_ik^2 + 1e-8)`` (computed from the weight norms, without
  per-example weights: the reference's non-fused training path). Noise: one learned
  strength per layer (initially 0) times per-pixel N(0, 1) noise, drawn per example from
  the train step's ``per_example`` stream (so 8 devices draw what one does); in inference
  mode a fixed buffer (the reference's ``noise_mode='const'``).
* Resampling: the reference's ``[1, 3, 3, 1]`` FIR filter, applied separably (up: before
  the 3x3 convolution, which then runs at the higher resolution; down: before the
  convolution at the lower one -- the reference folds it into a transposed/strided
  convolution, the same filter in a different order).
* D: ``fromrgb`` 1x1, then per resolution two 3x3 convs (the second after down-sampling),
  with a 1x1 down-sampled skip scaled by ``sqrt(1/2)`` (``architecture="resnet"``) or none
  (``"orig"``, the reference's ``cifar`` choice); the epilogue at 4x4 is minibatch stddev,
  a 3x3 conv, a dense layer and the output (conditional: the projection onto the mapped
  class embedding, ``sum(x * cmap) / sqrt(cmap_dim)``).
* Sizes that are not a power of two (28x28): G synthesises at the next power of two and
  crops the centre, D zero-pads to it (the DiffAugment authors' TF StyleGAN2).

Minibatch stddev groups are *contiguous* (examples ``4k .. 4k+3``), where the reference
strides them (``k, k + N/4, ...``): the same statistic over a random batch, and with a
per-device batch divisible by the group size the groups never cross devices, so the
result does not depend on the device count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan.errors import ConfigError
from jaxgan.models import layers
from jaxgan.models.resnet import check_label_argument, class_rows
from jaxgan.rng import example_normal

LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)
MAPPING_LR_MUL = 0.01
W_AVG_BETA = 0.995
DEMOD_EPS = 1e-8
MBSTD_EPS = 1e-8
FIR = (1.0, 3.0, 3.0, 1.0)
ARCHITECTURES = ("resnet", "orig")


def _act(x, activation: str):
  if activation == "lrelu":
    return nn.leaky_relu(x, LRELU_SLOPE) * LRELU_GAIN
  if activation == "linear":
    return x
  raise ConfigError(f"activation must be 'lrelu' or 'linear', got {activation!r}.")


def normalize_2nd_moment(x: jax.Array, eps: float = 1e-8) -> jax.Array:
  """``x * rsqrt(mean(x^2, axis=-1) + eps)`` (the mapping network's input normalisation)."""
  return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + eps)


def resolution_of(image_shape: Sequence[int]) -> int:
  """The power-of-two side the networks run at for ``(H, W, C)`` images (square only)."""
  h, w = int(image_shape[0]), int(image_shape[1])
  if h != w:
    raise ConfigError(f"StyleGAN2 needs square images, got {h}x{w}; pad or crop the data.")
  if h < 4:
    raise ConfigError(f"StyleGAN2 needs images of at least 4x4, got {h}x{w}.")
  return 1 << (h - 1).bit_length()


def channels_at(res: int, channel_base: int, channel_max: int) -> int:
  """The reference's channel rule: ``min(channel_base // res, channel_max)``."""
  return max(1, min(channel_base // res, channel_max))


# -- resampling with the [1, 3, 3, 1] filter, separably -------------------------------------


def _shift(x, axis: int, by: int):
  """``x`` shifted along ``axis`` by ``by`` (positive: toward higher indices), zero fill."""
  n = x.shape[axis]
  pad = [(0, 0)] * x.ndim
  pad[axis] = (max(by, 0), max(-by, 0))
  x = jnp.pad(x, pad)
  start = max(-by, 0)
  return jax.lax.slice_in_dim(x, start, start + n, axis=axis)


def _up1d(x, axis: int):
  # Zero-insert by 2, pad (2, 1), filter [1, 3, 3, 1] / 4 (gain 2 per axis): the even
  # outputs are (x[m-1] + 3 x[m]) / 4, the odd ones (3 x[m] + x[m+1]) / 4.
  even = (_shift(x, axis, 1) + 3.0 * x) * 0.25
  odd = (3.0 * x + _shift(x, axis, -1)) * 0.25
  out = jnp.stack([even, odd], axis=axis + 1)
  shape = list(x.shape)
  shape[axis] *= 2
  return out.reshape(shape)


def _down1d(x, axis: int):
  # Pad (1, 1), filter [1, 3, 3, 1] / 8, keep every other: (x[2o-1] + 3 x[2o] + 3 x[2o+1]
  # + x[2o+2]) / 8.
  n = x.shape[axis]
  if n % 2:
    raise ConfigError(f"down-sampling needs an even size, got {n}.")
  a = jax.lax.slice_in_dim(x, 0, n, 2, axis)   # x[2o]
  b = jax.lax.slice_in_dim(x, 1, n, 2, axis)   # x[2o+1]
  return (_shift(b, axis, 1) + 3.0 * a + 3.0 * b + _shift(a, axis, -1)) * 0.125


def upsample2d(x: jax.Array) -> jax.Array:
  """2x up-sampling of NHWC ``x`` with the reference's ``[1, 3, 3, 1]`` FIR filter."""
  return _up1d(_up1d(x, 1), 2)


def downsample2d(x: jax.Array) -> jax.Array:
  """2x down-sampling of NHWC ``x`` with the reference's ``[1, 3, 3, 1]`` FIR filter."""
  return _down1d(_down1d(x, 1), 2)


# -- equalised layers -------------------------------------------------------------------------


class EqualDense(nn.Module):
  """A dense layer with equalised learning rate (the reference's ``FullyConnectedLayer``)."""

  features: int
  lr_mul: float = 1.0
  bias_init: float = 0.0
  activation: str = "linear"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    fan_in = x.shape[-1]
    w = self.param("kernel", nn.initializers.normal(1.0 / self.lr_mul), (fan_in, self.features))
    b = self.param("bias", nn.initializers.constant(self.bias_init), (self.features,))
    y = x @ (w * (self.lr_mul / math.sqrt(fan_in))).astype(x.dtype)
    return _act(y + (b * self.lr_mul).astype(x.dtype), self.activation)


def _conv(x, w, padding="SAME"):
  return layers.conv_general_dilated(x, w.astype(x.dtype), (1, 1), padding,
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))


class EqualConv(nn.Module):
  """A convolution with equalised learning rate; ``down``: FIR down-sampling first."""

  features: int
  kernel_size: int = 3
  use_bias: bool = True
  activation: str = "lrelu"
  down: bool = False
  gain: float = 1.0

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k, fan_in = self.kernel_size, x.shape[-1]
    w = self.param("kernel", nn.initializers.normal(1.0), (k, k, fan_in, self.features))
    if self.down:
      x = downsample2d(x)
    y = _conv(x, w * (self.gain / math.sqrt(fan_in * k * k)))
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(y.dtype)
    return _act(y, self.activation)


class ModulatedConv(nn.Module):
  """A modulated 3x3 (or 1x1) convolution: the style scales the input channels, the
  (optional) demodulation normalises each output channel (non-fused form)."""

  features: int
  kernel_size: int = 3
  demodulate: bool = True
  style_gain: bool = False  # toRGB: styles times 1 / sqrt(fan_in), no demodulation
  up: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, w: jax.Array) -> jax.Array:
    k, fan_in = self.kernel_size, x.shape[-1]
    styles = EqualDense(fan_in, bias_init=1.0, name="affine")(w)
    if self.style_gain:
      styles = styles / math.sqrt(fan_in * k * k)
    weight = self.param("kernel", nn.initializers.normal(1.0), (k, k, fan_in, self.features))
    x = x * styles[:, None, None, :].astype(x.dtype)
    if self.up:
      x = upsample2d(x)
    y = _conv(x, weight)
    if self.demodulate:
      norms = jnp.sum(jnp.square(weight), axis=(0, 1))  # [I, O]
      d = jax.lax.rsqrt(jnp.square(styles) @ norms + DEMOD_EPS)  # [N, O]
      y = y * d[:, None, None, :].astype(y.dtype)
    return y


class NoiseInput(nn.Module):
  """Adds ``strength * noise`` (strength a learned scalar, initially 0).

  Training: per-pixel N(0, 1) noise drawn per example from the ``per_example`` stream and
  the example's global index (``noise`` stream, or none, outside the jaxgan step);
  inference: a fixed buffer drawn at initialisation (collection ``noise_const``).
  """

  axis_name: str | None = None
  follows_step_axis = True  # ``layers.device_independent`` sets axis_name in the step

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    n, h, w = x.shape[:3]
    strength = self.param("strength", nn.initializers.zeros, ())
    const = self.variable("noise_const", "noise",
                          lambda: jax.random.normal(self.make_rng("params"), (h, w, 1)))
    if train and self.has_rng("per_example"):
      offset = layers.example_offset(self.axis_name, n)
      noise = example_normal(self.make_rng("per_example"), n, (h, w, 1), offset)
    elif train and self.has_rng("noise"):
      noise = jax.random.normal(self.make_rng("noise"), (n, h, w, 1))
    else:
      noise = jnp.broadcast_to(const.value, (n, h, w, 1))
    return x + (noise * strength).astype(x.dtype)


class SynthesisLayer(nn.Module):
  """Modulated conv, noise, bias, lrelu (the reference's ``SynthesisLayer``)."""

  features: int
  up: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, w: jax.Array, train: bool) -> jax.Array:
    x = ModulatedConv(self.features, up=self.up, name="conv")(x, w)
    x = NoiseInput(name="noise")(x, train)
    b = self.param("bias", nn.initializers.zeros, (self.features,))
    return _act(x + b.astype(x.dtype), "lrelu")


class ToRGB(nn.Module):
  features: int

  @nn.compact
  def __call__(self, x: jax.Array, w: jax.Array) -> jax.Array:
    y = ModulatedConv(self.features, kernel_size=1, demodulate=False, style_gain=True,
                      name="conv")(x, w)
    return y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(y.dtype)


# -- generator --------------------------------------------------------------------------------


class MappingNetwork(nn.Module):
  """``z`` (and class ids) -> ``w [N, w_dim]``; tracks ``w_avg`` in training mode."""

  w_dim: int
  num_layers: int = 2
  num_classes: int = 0
  lr_mul: float = MAPPING_LR_MUL
  w_avg_beta: float | None = W_AVG_BETA

  @nn.compact
  def __call__(self, z: jax.Array | None, y=None, train: bool = True,
               update_w_avg: bool = True, transition=1.0) -> jax.Array:
    parts = []
    if z is not None:
      parts.append(normalize_2nd_moment(z.astype(jnp.float32)))
    if self.num_classes:
      table = self.param("embed", nn.initializers.normal(1.0), (self.num_classes, self.w_dim))
      bias = self.param("embed_bias", nn.initializers.zeros, (self.w_dim,))
      # The reference's dense layer on a one-hot vector is a gain-scaled table row.
      e = class_rows(table, y) / math.sqrt(self.num_classes) + bias
      e = normalize_2nd_moment(e)
      if not _is_one(transition):
        e = e * transition  # 0: the class does not reach w (see StyleGAN2Generator.mapping)
      parts.append(e)
    x = jnp.concatenate(parts, axis=-1)
    for i in range(self.num_layers):
      x = EqualDense(self.w_dim, lr_mul=self.lr_mul, activation="lrelu", name=f"fc{i}")(x)
    if self.w_avg_beta is not None:
      w_avg = self.variable("moving_stats", "w_avg", jnp.zeros, (self.w_dim,))
      if train and update_w_avg and not self.is_initializing():
        # w_avg = lerp(mean(w), w_avg, beta); the train step averages model state over
        # devices, which makes this the global batch's mean.
        w_avg.value = self.w_avg_beta * w_avg.value + (1.0 - self.w_avg_beta) * jnp.mean(x, 0)
    return x


class StyleGAN2Generator(nn.Module):
  """``G(z, y=None, train)``: the StyleGAN2 generator ("skip" architecture).

  Call ``G(z)`` (``G(z, y)`` when conditional); the train step uses ``mapping`` and
  ``synthesis`` separately for style mixing and the path-length penalty.

  Attributes:
    image_shape: ``(H, W, C)``, square; not a power of two: synthesised at the next one and
      centre-cropped.
    w_dim: size of ``w`` (the reference: 512); the latent ``z`` may have any size.
    mapping_layers: dense layers of the mapping network (8 in the paper, 2 in the
      reference's ``cifar`` config).
    channel_base, channel_max: channels at resolution ``r`` are
      ``min(channel_base // r, channel_max)`` (the reference's ``cifar``: 32768, 512).
    num_classes: 0 unconditional; else the class ids' range (the embedding joins ``z`` in
      the mapping network).
  """

  image_shape: Sequence[int] = (32, 32, 3)
  w_dim: int = 512
  mapping_layers: int = 2
  channel_base: int = 32768
  channel_max: int = 512
  num_classes: int = 0

  def setup(self):
    self.resolution = resolution_of(self.image_shape)
    self.mapping_net = MappingNetwork(self.w_dim, self.mapping_layers, self.num_classes)
    self.synthesis_net = SynthesisNetwork(self.resolution, int(self.image_shape[2]),
                                          self.channel_base, self.channel_max)

  @property
  def num_ws(self) -> int:
    """How many ``w`` the synthesis takes: ``2 log2(resolution) - 2``."""
    return 2 * int(math.log2(resolution_of(self.image_shape))) - 2

  def mapping(self, z: jax.Array, y=None, train: bool = True, *, truncation_psi: float = 1.0,
              z_mix: jax.Array | None = None, mix_cutoff=None, transition=1.0) -> jax.Array:
    """``ws [N, num_ws, w_dim]``: ``w`` for every layer.

    Args:
      z: latents ``[N, z_dim]``.
      y: class ids ``[N]`` of a conditional generator.
      train: update ``w_avg`` (training mode).
      truncation_psi: ``w_avg + psi (w - w_avg)`` (1: off; 0: ``w_avg`` for every ``z``).
      z_mix: style mixing: the layers from ``mix_cutoff`` on take ``w`` of ``z_mix``
        (which does not move ``w_avg``).
      mix_cutoff: the first layer given ``z_mix``'s style (traced; ``num_ws``: none).
      transition: a conditional generator's class weight in ``[0, 1]`` (may be traced):
        the normalised class embedding enters the mapping scaled by it, so 0 is an
        unconditional generator and 1 (the default) the conditional one. The transitional
        training of Shahbazi et al. (2022) raises it from 0 to 1 (``make_train_step``'s
        ``transition``).
    """
    check_label_argument(type(self).__name__, self.num_classes, y)
    w = self.mapping_net(z, y, train, transition=transition)
    if truncation_psi != 1.0:
      w_avg = self.mapping_net.variables["moving_stats"]["w_avg"]
      w = w_avg + truncation_psi * (w - w_avg)
    ws = jnp.broadcast_to(w[:, None, :], (w.shape[0], self.num_ws, self.w_dim))
    if z_mix is not None:
      w2 = self.mapping_net(z_mix, y, train, update_w_avg=False, transition=transition)
      layer = jnp.arange(self.num_ws)[None, :, None]
      ws = jnp.where(layer < mix_cutoff, ws, w2[:, None, :])
    return ws

  def synthesis(self, ws: jax.Array, train: bool = True) -> jax.Array:
    """Images ``[N, H, W, C]`` from ``ws [N, num_ws, w_dim]``."""
    img = self.synthesis_net(ws, train)
    h = int(self.image_shape[0])
    pad = (img.shape[1] - h) // 2
    if pad:
      img = img[:, pad:pad + h, pad:pad + h]
    return img

  def __call__(self, z: jax.Array, y=None, train: bool = True, *,
               truncation_psi: float = 1.0, z_mix: jax.Array | None = None,
               mix_cutoff=None, transition=1.0) -> jax.Array:
    """Images ``[N, H, W, C]``; the keywords as ``mapping``'s."""
    ws = self.mapping(z, y, train, truncation_psi=truncation_psi, z_mix=z_mix,
                      mix_cutoff=mix_cutoff, transition=transition)
    return self.synthesis(ws, train)


class SynthesisNetwork(nn.Module):
  resolution: int
  img_channels: int
  channel_base: int
  channel_max: int

  @nn.compact
  def __call__(self, ws: jax.Array, train: bool) -> jax.Array:
    ch = lambda r: channels_at(r, self.channel_base, self.channel_max)  # noqa: E731
    n = ws.shape[0]
    const = self.param("const", nn.initializers.normal(1.0), (4, 4, ch(4)))
    x = jnp.broadcast_to(const, (n, 4, 4, ch(4))).astype(jnp.float32)
    x = SynthesisLayer(ch(4), name="b4_conv1")(x, ws[:, 0], train)
    img = ToRGB(self.img_channels, name="b4_torgb")(x, ws[:, 1])
    idx, res = 1, 8
    while res <= self.resolution:
      x = SynthesisLayer(ch(res), up=True, name=f"b{res}_conv0")(x, ws[:, idx], train)
      x = SynthesisLayer(ch(res), name=f"b{res}_conv1")(x, ws[:, idx + 1], train)
      img = upsample2d(img) + ToRGB(self.img_channels, name=f"b{res}_torgb")(x, ws[:, idx + 2])
      idx, res = idx + 2, res * 2
    return img


# -- discriminator ----------------------------------------------------------------------------


def minibatch_stddev(x: jax.Array, group_size: int = 4, num_channels: int = 1) -> jax.Array:
  """Appends the minibatch standard deviation (``num_channels`` maps) to NHWC ``x``.

  Groups are contiguous examples (``group * g .. group * g + g - 1``); ``g = min(group_size,
  N)``, and ``N`` must be divisible by it.
  """
  n, h, w, c = x.shape
  g = min(group_size, n)
  if n % g:
    raise ConfigError(f"The minibatch-stddev group size {g} must divide the (per-device) "
                      f"batch {n}; use a batch that is a multiple of {g} or set "
                      "mbstd_group_size.")
  if c % num_channels:
    raise ConfigError(f"mbstd_num_channels={num_channels} must divide the channels {c}.")
  y = x.astype(jnp.float32).reshape(n // g, g, h, w, num_channels, c // num_channels)
  y = y - jnp.mean(y, axis=1, keepdims=True)
  y = jnp.sqrt(jnp.mean(jnp.square(y), axis=1) + MBSTD_EPS)  # [n/g, h, w, F, c/F]
  y = jnp.mean(y, axis=(1, 2, 4))  # [n/g, F]
  y = jnp.broadcast_to(y[:, None, None, None, :], (n // g, g, h, w, num_channels))
  return jnp.concatenate([x, y.reshape(n, h, w, num_channels).astype(x.dtype)], axis=-1)


class StyleGAN2Discriminator(nn.Module):
  """``D(x, y=None, train)``: the StyleGAN2 discriminator -> logits ``[N]``.

  Attributes:
    channel_base, channel_max: the channel rule (as the generator's).
    architecture: ``"resnet"`` (the paper's) or ``"orig"`` (no skips: the reference's
      ``cifar`` config).
    mbstd_group_size: examples per minibatch-stddev group (4; ``cifar``: 32); the
      per-device batch must be a multiple of it (or smaller than it).
    mbstd_num_channels: stddev maps (1).
    num_classes: 0 unconditional; else the projection onto the mapped class embedding.
    mapping_layers: layers of the class mapping of a conditional D.
    unconditional_head: a conditional D also has an unconditional output ``out(x)``
      beside the projection (the reference's D is the projection alone): it returns
      ``out(x) + projection(x, y)`` (the projection discriminator of Miyato & Koyama), or
      with ``heads=True`` the two as ``[N, 2]``, which the transitional training of
      Shahbazi et al. weighs as two losses (``make_train_step``'s ``transition``).
  """

  channel_base: int = 32768
  channel_max: int = 512
  architecture: str = "resnet"
  mbstd_group_size: int = 4
  mbstd_num_channels: int = 1
  num_classes: int = 0
  mapping_layers: int = 2
  unconditional_head: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, y=None, train: bool = True,
               heads: bool = False) -> jax.Array:
    check_label_argument(type(self).__name__, self.num_classes, y)
    if heads and not (self.unconditional_head and self.num_classes):
      raise ConfigError("heads=True returns a conditional StyleGAN2Discriminator's "
                        "unconditional output and its projection: create it with "
                        "num_classes=C and unconditional_head=True.")
    if self.architecture not in ARCHITECTURES:
      raise ConfigError(f"architecture must be one of {ARCHITECTURES}, got "
                        f"{self.architecture!r}.")
    res = resolution_of(x.shape[1:])
    pad = (res - x.shape[1]) // 2
    if pad:
      x = jnp.pad(x, ((0, 0), (pad, res - x.shape[1] - pad), (pad, res - x.shape[2] - pad),
                      (0, 0)))
    ch = lambda r: channels_at(r, self.channel_base, self.channel_max)  # noqa: E731
    h = EqualConv(ch(res), 1, name=f"b{res}_fromrgb")(x.astype(jnp.float32))
    while res > 4:
      out = ch(res // 2)
      t = EqualConv(ch(res), name=f"b{res}_conv0")(h)
      t = EqualConv(out, down=True, name=f"b{res}_conv1")(t)
      if self.architecture == "resnet":
        skip = EqualConv(out, 1, use_bias=False, activation="linear", down=True,
                         gain=math.sqrt(0.5), name=f"b{res}_skip")(h)
        h = skip + t * math.sqrt(0.5)
      else:
        h = t
      res //= 2
    c4 = ch(4)
    h = minibatch_stddev(h, self.mbstd_group_size, self.mbstd_num_channels)
    h = EqualConv(c4, name="b4_conv")(h)
    h = EqualDense(c4, activation="lrelu", name="b4_fc")(h.reshape(h.shape[0], -1))
    if not self.num_classes:
      return EqualDense(1, name="b4_out")(h)[:, 0]
    out = EqualDense(c4, name="b4_out")(h)
    cmap = MappingNetwork(c4, self.mapping_layers, self.num_classes, w_avg_beta=None,
                          name="mapping")(None, y, train)
    projection = jnp.sum(out * cmap, axis=-1) / math.sqrt(c4)
    if not self.unconditional_head:
      return projection
    unconditional = EqualDense(1, name="b4_out_uc")(h)[:, 0]
    if heads:
      return jnp.stack([unconditional, projection], axis=-1)
    return unconditional + projection


def _is_one(value) -> bool:
  """Whether ``value`` is the Python number 1 (the default: the exact conditional path)."""
  return isinstance(value, int | float) and value == 1


# -- presets ----------------------------------------------------------------------------------

# The reference's cifar config (stylegan2-ada-pytorch train.py): z = w = 512, 2 mapping
# layers, 512 channels at every resolution up to 32, D "orig" with mbstd groups of 32.
CIFAR_LATENT_DIM = 512
SMALL_LATENT_DIM = 64


def stylegan2_cifar(image_shape: Sequence[int] = (32, 32, 3), num_classes: int = 0
                    ) -> tuple[StyleGAN2Generator, StyleGAN2Discriminator]:
  """The reference's ``cifar`` pair (latent size ``CIFAR_LATENT_DIM``)."""
  return (StyleGAN2Generator(image_shape, w_dim=512, mapping_layers=2, channel_base=32768,
                             channel_max=512, num_classes=num_classes),
          StyleGAN2Discriminator(channel_base=32768, channel_max=512, architecture="orig",
                                 mbstd_group_size=32, num_classes=num_classes))


def stylegan2_small(image_shape: Sequence[int] = (28, 28, 1), num_classes: int = 0,
                    width: float = 1.0) -> tuple[StyleGAN2Generator, StyleGAN2Discriminator]:
  """A pair that trains on a 2-core CPU at 28x28/32x32 (latent size ``SMALL_LATENT_DIM``).

  Channels ``{4: 128, 8: 128, 16: 64, 32: 32}`` at ``width=1`` (``channel_base = 1024
  width``, ``channel_max = 128 width``), ``w_dim = 64``, 2 mapping layers, residual D with
  mbstd groups of 4.
  """
  base, cmax = max(4, int(1024 * width)), max(1, int(128 * width))
  return (StyleGAN2Generator(image_shape, w_dim=SMALL_LATENT_DIM, mapping_layers=2,
                             channel_base=base, channel_max=cmax, num_classes=num_classes),
          StyleGAN2Discriminator(channel_base=base, channel_max=cmax, architecture="resnet",
                                 mbstd_group_size=4, num_classes=num_classes))


__all__ = ["StyleGAN2Generator", "StyleGAN2Discriminator", "stylegan2_cifar", "stylegan2_small",
           "upsample2d", "downsample2d", "minibatch_stddev", "normalize_2nd_moment",
           "ModulatedConv", "MappingNetwork", "EqualDense", "EqualConv", "NoiseInput"]

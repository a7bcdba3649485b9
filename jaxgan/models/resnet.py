"""The SNGAN / BigGAN residual pair, unconditional or class-conditional.

The architecture of Miyato & Koyama's cGANs with projection discriminator (the Chainer
code, Mimicry's ``cgan_pd_32``) and of BigGAN (StudioGAN's ``big_resnet``), in NHWC:

* G: ``z -> Dense -> [base, base, ch]``, then one residual up-block per doubling
  (``cBN -> ReLU -> up x2 -> conv3x3 -> cBN -> ReLU -> conv3x3``, shortcut
  ``up x2 -> conv1x1``), then ``BN -> ReLU -> conv3x3 -> tanh``. The label enters only
  through the conditional BatchNorms: ``x_hat * (1 + gain(c)) + bias(c)``, with ``c`` the
  class id (SNGAN: per-class tables) or, with ``shared_embedding``, BigGAN's
  ``concat(shared(y), z_chunk)`` (hierarchical latents: ``z`` split into one chunk for the
  first layer and one per block). G's class embedding is never spectral-normalised
  (BigGAN-PyTorch: "applying SN to G's embedding seems to randomly cripple G").
* D: an "optimized" first block (``conv3x3 -> ReLU -> conv3x3 -> avgpool``, shortcut
  ``avgpool -> conv1x1``), pre-activation blocks (``ReLU -> conv3x3 -> ReLU -> conv3x3
  [-> avgpool]``, shortcut ``conv1x1 [-> avgpool]`` when the block downsamples or changes
  width), then ``ReLU -> global sum pool -> h`` and the projection head
  ``linear(h) + sum(embed(y) * h)``, spectral normalisation on every layer including the
  embedding; or an auxiliary classifier head (ACGAN) beside ``linear(h)``.
* A SAGAN self-attention block (``gamma`` initialised to 0, so the block starts as the
  identity) at chosen resolutions of either network.

Sizes: G doubles from ``base = H / 2**k`` (the largest ``k`` with a whole base of at least
4: 28 -> 7, 32 -> 4, 64 -> 4), one block per doubling; D halves in its first ``k - 1``
blocks and ends with two blocks at the final size (at 32x32: 16, 8, 8, 8, the SNGAN D).

Out-of-range class ids are not clamped: their embedding rows are NaN, so a bad label
shows as a NaN output instead of training silently on another class.

``sngan32()`` and ``biggan32()`` are the references' CIFAR-10 presets; their parameter
counts match the references (tests/models/test_resnet.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.errors import ConfigError
from jaxgan.models.layers import conv_general_dilated, halvings

INITS = ("glorot", "orthogonal")
CONDITIONINGS = ("projection", "ac")


def num_blocks(height: int, width: int) -> int:
  """Doublings from the generator's base size to ``height x width`` (base a whole size >= 4).

  Raises:
    jaxgan.errors.ConfigError: when no side can be halved to a whole size of at least 4.
  """
  k = halvings(height, width)
  if k == 0:
    raise ConfigError(
        f"The ResNet models need image sides that halve to whole numbers >= 4 (e.g. 28, 32, "
        f"64); got {height}x{width}. Resize or pad the images.")
  return k


def _initializer(init: str, gain: float = 1.0) -> Callable:
  """Glorot-uniform with ``gain`` (SNGAN's Chainer init; sqrt(2) on the residual 3x3 convs)
  or orthogonal (BigGAN's)."""
  if init == "glorot":
    return nn.initializers.variance_scaling(gain**2, "fan_avg", "uniform")
  if init == "orthogonal":
    return nn.initializers.orthogonal()
  raise ConfigError(f"init must be one of {INITS}, got {init!r}.")


def class_rows(table: jax.Array, labels: jax.Array) -> jax.Array:
  """``table[labels]``, with NaN rows for labels outside ``[0, len(table))``.

  ``jnp.take`` would wrap negative ids and clamp or fill others depending on the mode;
  here a bad id can only poison the output, never pick another class's row.
  """
  labels = jnp.asarray(labels)
  valid = (labels >= 0) & (labels < table.shape[0])
  rows = jnp.take(table, jnp.clip(labels, 0, table.shape[0] - 1), axis=0)
  return jnp.where(valid[..., None], rows, jnp.nan)


class ClassEmbed(nn.Module):
  """A class-id embedding ``[num_classes, features]`` (``nn.Embed``'s parameter name) whose
  out-of-range ids give NaN rows (``class_rows``)."""

  num_classes: int
  features: int
  embedding_init: Callable = nn.initializers.variance_scaling(1.0, "fan_in", "normal",
                                                              out_axis=0)

  @nn.compact
  def __call__(self, labels: jax.Array) -> jax.Array:
    table = self.param("embedding", self.embedding_init, (self.num_classes, self.features))
    return class_rows(table, labels)


def sn_call(module: nn.Module, x: jax.Array, train: bool, enabled: bool,
             epsilon: float = 1e-12) -> jax.Array:
  """``module(x)``, spectral-normalised when ``enabled``: the power iteration's vectors go
  in ``batch_stats`` under ``<name>_sn`` and advance when ``train``. Call it inside the
  compact method that built ``module``."""
  if enabled:
    return nn.SpectralNorm(module, epsilon=epsilon, name=f"{module.name}_sn")(
        x, update_stats=train)
  return module(x)


class ConditionalBatchNorm(nn.Module):
  """BatchNorm without its own affine, then ``x_hat * (1 + gain(c)) + bias(c)``.

  Attributes:
    num_classes: with ``c`` class ids ``[B]``: per-class gain and bias tables (SNGAN),
      initialised to 0 (the Chainer code's gamma = 1, beta = 0).
    spectral_norm: with ``c`` a float vector ``[B, d]`` (BigGAN's ``[shared(y), z_chunk]``),
      gain and bias are bias-free linear maps of ``c``, spectral-normalised when true.
    weight_init: the linear maps' initialiser (``INITS``).
    momentum: running-average momentum (flax convention; torch's 0.1 is 0.9 here).
    epsilon: BatchNorm epsilon.
    axis_name: as ``nn.BatchNorm``'s (None follows the train step's axis).
    sn_epsilon: the spectral norm's epsilon.
    dtype: computation dtype.
  """

  num_classes: int = 0
  spectral_norm: bool = False
  weight_init: str = "orthogonal"
  momentum: float = 0.9
  epsilon: float = 1e-5
  axis_name: str | None = None
  sn_epsilon: float = 1e-12
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, c: jax.Array, train: bool) -> jax.Array:
    x_hat = nn.BatchNorm(use_running_average=not train, use_scale=False, use_bias=False,
                         momentum=self.momentum, epsilon=self.epsilon, axis_name=self.axis_name,
                         dtype=self.dtype)(x)
    features = x.shape[-1]
    if jnp.issubdtype(jnp.asarray(c).dtype, jnp.integer):
      if self.num_classes < 1:
        raise ConfigError("ConditionalBatchNorm got class ids but has num_classes=0; set "
                          "num_classes, or pass a float conditioning vector [B, d].")
      gain = ClassEmbed(self.num_classes, features, nn.initializers.zeros, name="gain")(c)
      bias = ClassEmbed(self.num_classes, features, nn.initializers.zeros, name="bias")(c)
    else:
      dense = functools.partial(nn.Dense, features, use_bias=False,
                                kernel_init=_initializer(self.weight_init), dtype=self.dtype)
      gain = sn_call(dense(name="gain"), c, train, self.spectral_norm, self.sn_epsilon)
      bias = sn_call(dense(name="bias"), c, train, self.spectral_norm, self.sn_epsilon)
    shape = (x.shape[0],) + (1,) * (x.ndim - 2) + (features,)
    return x_hat * (1.0 + gain.reshape(shape)) + bias.reshape(shape)


class SelfAttention(nn.Module):
  """SAGAN self-attention as BigGAN-PyTorch and StudioGAN write it (``x + gamma * o``).

  Queries ``conv1x1(C/8)`` at every position, keys ``conv1x1(C/8)`` and values
  ``conv1x1(C/2)`` max-pooled 2x2, ``o = conv1x1(C)(softmax(q k^T) v)``; the 1x1 convs
  have no bias. ``gamma`` starts at 0: at initialisation the block is the identity.
  """

  spectral_norm: bool = False
  weight_init: str = "orthogonal"
  sn_epsilon: float = 1e-12
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    b, h, w, c = x.shape
    if c < 8 or h % 2 or w % 2:
      raise ConfigError(f"SelfAttention needs at least 8 channels and even sides; got "
                        f"{h}x{w}x{c}.")

    def conv(features, name):
      module = nn.Conv(features, (1, 1), use_bias=False, kernel_init=_initializer(self.weight_init),
                       dtype=self.dtype, conv_general_dilated=conv_general_dilated, name=name)
      return functools.partial(sn_call, module, enabled=self.spectral_norm,
                               epsilon=self.sn_epsilon)

    pool = functools.partial(nn.max_pool, window_shape=(2, 2), strides=(2, 2))
    query = conv(c // 8, "theta")(x, train).reshape(b, h * w, c // 8)
    key = pool(conv(c // 8, "phi")(x, train)).reshape(b, h * w // 4, c // 8)
    value = pool(conv(c // 2, "g")(x, train)).reshape(b, h * w // 4, c // 2)
    attention = jax.nn.softmax(jnp.einsum("bqd,bkd->bqk", query, key), axis=-1)
    out = jnp.einsum("bqk,bkd->bqd", attention, value).reshape(b, h, w, c // 2)
    out = conv(c, "o")(out, train)
    gamma = self.param("gamma", nn.initializers.zeros, ())
    return x + gamma * out


def _upsample(x: jax.Array) -> jax.Array:
  """Nearest-neighbour x2 (Chainer, StudioGAN, BigGAN-PyTorch; Mimicry uses bilinear)."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def _avgpool(x: jax.Array) -> jax.Array:
  return nn.avg_pool(x, (2, 2), strides=(2, 2))


class _Convs:
  """Conv factories of one network: initialiser, spectral norm, dtype."""

  def __init__(self, init: str, spectral_norm: bool, sn_epsilon: float, dtype):
    self.init, self.spectral_norm, self.sn_epsilon, self.dtype = (init, spectral_norm,
                                                                   sn_epsilon, dtype)

  def __call__(self, features: int, kernel: int, gain: float = 1.0, name: str | None = None):
    module = nn.Conv(features, (kernel, kernel), padding="SAME", dtype=self.dtype,
                     kernel_init=_initializer(self.init, gain),
                     conv_general_dilated=conv_general_dilated, name=name)
    return functools.partial(sn_call, module, enabled=self.spectral_norm,
                             epsilon=self.sn_epsilon)


class GBlock(nn.Module):
  """Residual up-block of the generator; ``c`` is the cBN's conditioning (or None)."""

  features: int
  convs: Any
  norm: Callable
  residual_gain: float = float(np.sqrt(2.0))

  @nn.compact
  def __call__(self, x: jax.Array, c, train: bool) -> jax.Array:
    h = nn.relu(self.norm(name="bn1")(x, c, train))
    h = self.convs(self.features, 3, self.residual_gain, name="conv1")(_upsample(h), train)
    h = nn.relu(self.norm(name="bn2")(h, c, train))
    h = self.convs(self.features, 3, self.residual_gain, name="conv2")(h, train)
    return h + self.convs(self.features, 1, name="shortcut")(_upsample(x), train)


class DBlock(nn.Module):
  """Residual block of the discriminator: "optimized" (the first) or pre-activation."""

  features: int
  convs: Any
  downsample: bool = True
  optimized: bool = False
  residual_gain: float = float(np.sqrt(2.0))

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    h = x if self.optimized else nn.relu(x)
    h = self.convs(self.features, 3, self.residual_gain, name="conv1")(h, train)
    h = self.convs(self.features, 3, self.residual_gain, name="conv2")(nn.relu(h), train)
    if self.downsample:
      h = _avgpool(h)
    if self.optimized:
      return h + self.convs(self.features, 1, name="shortcut")(_avgpool(x), train)
    if self.downsample or x.shape[-1] != self.features:
      shortcut = self.convs(self.features, 1, name="shortcut")(x, train)
      return h + (_avgpool(shortcut) if self.downsample else shortcut)
    return h + x


def check_label_argument(module: str, num_classes: int, y) -> None:
  if num_classes and y is None:
    call = "G(z, y, train=...)" if module.endswith("Generator") else "D(x, y, train=...)"
    raise ConfigError(f"{module} is conditional (num_classes={num_classes}): call it as "
                      f"{call} with int32 class ids y [B].")
  if not num_classes and y is not None:
    raise ConfigError(f"{module} is unconditional (num_classes=0) but got labels; build it "
                      "with num_classes=C to condition on them.")


class ResNetGenerator(nn.Module):
  """``G(z, y=None, train)``: latents ``[B, latent_dim]`` (and class ids ``[B]``) -> images.

  Attributes:
    image_shape: ``(H, W, C)`` of the images.
    channels: channels of every block (SNGAN-32: 256, BigGAN-32: 384).
    num_classes: 0 for an unconditional generator; else the classes of ``y``.
    shared_embedding: BigGAN's shared class embedding of this size, with hierarchical
      latents: ``z`` splits into ``blocks + 1`` equal chunks (the first feeds the dense
      layer; block ``i`` gets ``concat(shared(y), chunk_i)``); 0: SNGAN's per-class cBN
      tables (and, unconditional, the whole ``z`` feeds the dense layer). With it, ``y``
      may also be a float embedding ``[B, shared_embedding]`` (to interpolate classes).
    attention: resolutions (sides) after whose block a self-attention block runs.
    spectral_norm: spectral normalisation on G's convolutions and linears (BigGAN; never
      on the class embedding).
    weight_init: ``"glorot"`` (SNGAN's: Glorot-uniform, gain sqrt(2) on residual 3x3 convs) or
      ``"orthogonal"`` (BigGAN's).
    bn_momentum: BatchNorm momentum (flax convention: torch's 0.1 is 0.9).
    bn_epsilon: BatchNorm epsilon (torch's 1e-5; StudioGAN uses 1e-4).
    sn_epsilon: spectral-norm epsilon (torch's 1e-12; StudioGAN uses 1e-6).
    axis_name: BatchNorm's device axis (None follows the train step's).
    dtype: computation dtype; parameters and the images stay float32.
  """

  image_shape: Sequence[int] = (32, 32, 3)
  channels: int = 256
  num_classes: int = 0
  shared_embedding: int = 0
  attention: Sequence[int] = ()
  spectral_norm: bool = False
  weight_init: str = "glorot"
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5
  sn_epsilon: float = 1e-12
  axis_name: str | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z: jax.Array, y: jax.Array | None = None, train: bool = True
               ) -> jax.Array:
    check_label_argument("ResNetGenerator", self.num_classes, y)
    height, width, out_channels = self.image_shape
    k = num_blocks(height, width)
    base_h, base_w = height // 2**k, width // 2**k
    convs = _Convs(self.weight_init, self.spectral_norm, self.sn_epsilon, self.dtype)
    z = z.reshape(z.shape[0], -1)
    conditions: list = [None] * k
    if self.shared_embedding:
      if z.shape[-1] % (k + 1):
        raise ConfigError(f"With a shared embedding the latents split into {k + 1} chunks "
                          f"(one per block and one for the first layer); latent_dim="
                          f"{z.shape[-1]} does not divide by {k + 1}.")
      z, *chunks = jnp.split(z, k + 1, axis=-1)
      if self.num_classes:
        if jnp.issubdtype(jnp.asarray(y).dtype, jnp.integer):
          # Never spectral-normalised (BigGAN-PyTorch, StudioGAN, compare_gan).
          y = ClassEmbed(self.num_classes, self.shared_embedding,
                         _initializer(self.weight_init), name="shared")(y)
        conditions = [jnp.concatenate([y, chunk], axis=-1) for chunk in chunks]
      else:
        conditions = chunks
    elif self.num_classes:
      conditions = [y] * k
    unconditional = not self.num_classes and not self.shared_embedding
    norm = functools.partial(
        ConditionalBatchNorm, num_classes=self.num_classes, spectral_norm=self.spectral_norm,
        weight_init=self.weight_init, momentum=self.bn_momentum, epsilon=self.bn_epsilon,
        axis_name=self.axis_name, sn_epsilon=self.sn_epsilon, dtype=self.dtype)
    if unconditional:
      norm = functools.partial(_PlainBatchNorm, momentum=self.bn_momentum,
                               epsilon=self.bn_epsilon, axis_name=self.axis_name,
                               dtype=self.dtype)
    dense = nn.Dense(base_h * base_w * self.channels, kernel_init=_initializer(self.weight_init),
                     dtype=self.dtype, name="dense")
    x = sn_call(dense, z, train, self.spectral_norm, self.sn_epsilon)
    x = x.reshape(z.shape[0], base_h, base_w, self.channels)
    for i in range(k):
      x = GBlock(self.channels, convs, norm, name=f"block{i + 1}")(x, conditions[i], train)
      if x.shape[1] in self.attention:
        x = SelfAttention(self.spectral_norm, self.weight_init, self.sn_epsilon,
                          self.dtype)(x, train)
    x = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                     epsilon=self.bn_epsilon, axis_name=self.axis_name, dtype=self.dtype)(x)
    x = convs(out_channels, 3, name="conv_out")(nn.relu(x), train)
    return jnp.tanh(x).astype(jnp.float32)


class _PlainBatchNorm(nn.Module):
  """The unconditional generator's BatchNorm, with ``ConditionalBatchNorm``'s call."""

  momentum: float = 0.9
  epsilon: float = 1e-5
  axis_name: str | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, c, train: bool) -> jax.Array:
    del c
    return nn.BatchNorm(use_running_average=not train, momentum=self.momentum,
                        epsilon=self.epsilon, axis_name=self.axis_name, dtype=self.dtype)(x)


class ResNetDiscriminator(nn.Module):
  """``D(x, y=None, train)``: images (and class ids) -> logits ``[B]``.

  Attributes:
    channels: channels of every block (SNGAN-32: 128, BigGAN-32: 192).
    num_classes: 0 for an unconditional discriminator; else the classes of ``y``.
    conditioning: ``"projection"`` (``linear(h) + sum(embed(y) * h)``) or ``"ac"``: an
      auxiliary classifier head, and ``D`` returns ``(logits [B], class_logits [B, C])``
      (the train step adds the ACGAN class losses; ``y`` is not used).
    attention: resolutions (sides) after whose block a self-attention block runs.
    spectral_norm: on every layer, the projection embedding included (the default, as in
      every reference; StudioGAN's PD-GAN without it scores FID 31.54 against 9.01).
    weight_init: ``"glorot"`` or ``"orthogonal"``.
    sn_epsilon: spectral-norm epsilon.
    dtype: computation dtype; the logits stay float32.

  The pooled features ``h [B, channels]`` are sown as ``intermediates/features``.
  """

  channels: int = 128
  num_classes: int = 0
  conditioning: str = "projection"
  attention: Sequence[int] = ()
  spectral_norm: bool = True
  weight_init: str = "glorot"
  sn_epsilon: float = 1e-12
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, y: jax.Array | None = None, train: bool = True):
    if self.conditioning not in CONDITIONINGS:
      raise ConfigError(f"conditioning must be one of {CONDITIONINGS}, got "
                        f"{self.conditioning!r}.")
    check_label_argument("ResNetDiscriminator", self.num_classes, y)
    if x.ndim != 4:
      raise ConfigError(f"ResNetDiscriminator takes images [B, H, W, C]; got shape {x.shape}.")
    k = num_blocks(x.shape[1], x.shape[2])
    convs = _Convs(self.weight_init, self.spectral_norm, self.sn_epsilon, self.dtype)
    # k - 1 halvings (16, 8 at 32x32), then two blocks at the final size.
    downs = [True] * max(1, k - 1) + [False, False]
    h = x
    for i, down in enumerate(downs):
      h = DBlock(self.channels, convs, down, optimized=i == 0, name=f"block{i + 1}")(h, train)
      if h.shape[1] in self.attention and down:
        h = SelfAttention(self.spectral_norm, self.weight_init, self.sn_epsilon,
                          self.dtype)(h, train)
    h = jnp.sum(nn.relu(h), axis=(1, 2)).astype(jnp.float32)
    self.sow("intermediates", "features", h)  # h: apply(..., mutable=["intermediates"])
    linear = functools.partial(nn.Dense, kernel_init=_initializer(self.weight_init))
    logits = sn_call(linear(1, name="linear"), h, train, self.spectral_norm,
                      self.sn_epsilon)[:, 0]
    if not self.num_classes:
      return logits
    if self.conditioning == "ac":
      head = linear(self.num_classes, use_bias=False, name="classifier")
      return logits, sn_call(head, h, train, self.spectral_norm, self.sn_epsilon)
    embed = ClassEmbed(self.num_classes, self.channels, _initializer(self.weight_init),
                       name="embed")
    rows = sn_call(embed, y, train, self.spectral_norm, self.sn_epsilon)
    return logits + jnp.sum(rows * h, axis=-1)


def sngan32(num_classes: int = 10) -> tuple[ResNetGenerator, ResNetDiscriminator]:
  """Miyato & Koyama's CIFAR-10 pair (Mimicry ``cgan_pd_32``; ``num_classes=0``: SNGAN).

  G 256 channels, three up-blocks, per-class cBN, Glorot init; D 128 channels, four
  blocks, projection, spectral norm everywhere. Latent size 128. Parameters with 10 classes:
  G 4,304,387, D 1,055,105 (unconditional: 4,276,739 and 1,053,825).
  """
  return (ResNetGenerator((32, 32, 3), 256, num_classes, weight_init="glorot"),
          ResNetDiscriminator(128, num_classes, weight_init="glorot"))


def biggan32(num_classes: int = 10) -> tuple[ResNetGenerator, ResNetDiscriminator]:
  """StudioGAN's CIFAR-10 BigGAN (``big_resnet.py`` with ``CIFAR10/BigGAN.yaml``).

  ``g_conv_dim = d_conv_dim = 96``: G 384 channels, D 192; latent size 80 in 4 chunks of
  20, shared embedding 128 (cBN input 148); self-attention at 16x16 in both; spectral
  norm in G and D (epsilon 1e-6), BatchNorm epsilon 1e-4, orthogonal init. Parameters with
  10 classes: G 9,416,196, D 2,415,170. StudioGAN trains it with an EMA of G (0.9999 from
  step 1000).
  """
  return (ResNetGenerator((32, 32, 3), 384, num_classes, shared_embedding=128, attention=(16,),
                          spectral_norm=True, weight_init="orthogonal", bn_epsilon=1e-4,
                          sn_epsilon=1e-6),
          ResNetDiscriminator(192, num_classes, attention=(16,), weight_init="orthogonal",
                              sn_epsilon=1e-6))


SNGAN32_LATENT_DIM = 128
BIGGAN32_LATENT_DIM = 80

"""Differentiable augmentation for data-efficient GAN training: DiffAugment and ADA.

Both are pure functions of ``(key, images)`` on a batch ``[N, H, W, C]`` in the GAN's
``[-1, 1]`` range, and both are differentiable in the images, so the fakes' gradients pass
through them. Every random draw is made *per example* from the key and the example's
global index (``jaxgan.rng``): under ``pmap``/``shard_map`` pass ``offset = device_index *
local_batch`` and the same key on every device, and a batch augments the same way on any
number of devices.

* ``diffaugment(key, images, policy)``: Zhao et al., "Differentiable Augmentation for
  Data-Efficient GAN Training" (NeurIPS 2020), the reference's ops exactly
  (``DiffAugment_pytorch.py``): ``color`` (brightness, saturation, contrast), ``translation``
  (1/8 of the size, zero fill) and ``cutout`` (a square of half the size). Every op is
  applied to every image; only its magnitude is random.
* ``ada(key, images, p)``: Karras et al., "Training Generative Adversarial Networks with
  Limited Data" (NeurIPS 2020): each op fires per image with probability ``p``, with the
  reference's parameter distributions (``training/augment.py``): x-flip, 90-degree
  rotations, integer translation (reflect padding), brightness, contrast, saturation, and
  cutout. ``ada_adjust`` is the reference's rule for ``p``.

The step takes an augmentation as ``make_train_step(..., augment=...)``: a
``DiffAugment`` or ``ADA`` object or a string (``parse``), applied to reals and fakes in the
discriminator's update and to the fakes in the generator's (D sees only augmented images);
ADA's ``p`` and its sign accumulator live in the discriminator's state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from jaxgan.errors import ConfigError, InputTypeError
from jaxgan.rng import example_normal, example_randint, example_uniform

DIFFAUGMENT_OPS = ("color", "translation", "cutout")
# The reference's blit and colour groups (the ones that apply to small images without
# resampling), in the reference's order, then cutout.
ADA_OPS = ("xflip", "rotate90", "xint", "brightness", "contrast", "saturation", "cutout")
ADA_DEFAULT_OPS = ("xflip", "rotate90", "xint", "brightness", "contrast", "saturation")


def _check_images(images) -> None:
  if not hasattr(images, "ndim") or images.ndim != 4:
    raise InputTypeError(f"images must be a batch [N, H, W, C], got shape "
                         f"{getattr(images, 'shape', type(images).__name__)}.")
  if not jnp.issubdtype(images.dtype, jnp.floating):
    raise InputTypeError(f"images must be floating point in [-1, 1], got {images.dtype}.")


def _randint(key, num: int, low: int, high: int, offset) -> jax.Array:
  """Per-example integers uniform on ``[low, high]`` (both ends included), ``[num]``."""
  return example_randint(key, num, high - low + 1, offset) + low


def _shift_matrix(src: jax.Array, size: int) -> jax.Array:
  """``[N, size, size]`` one-hot rows: row ``i`` of example ``n`` selects source pixel
  ``src[n, i]`` (all zeros where the source is outside ``[0, size)``).

  Shifting by a product with a 0/1 matrix instead of a gather keeps the backward pass a
  matrix product too (a gather's is a scatter-add, slow on the CPU).
  """
  return (src[:, :, None] == jnp.arange(size)[None, None, :]).astype(jnp.float32)


def _resample_rows_cols(x: jax.Array, rows: jax.Array, cols: jax.Array) -> jax.Array:
  """``out[n, i, j] = x[n, rows[n, i], cols[n, j]]`` (zero where an index is outside)."""
  h, w = x.shape[1], x.shape[2]
  r = _shift_matrix(rows, h).astype(x.dtype)
  c = _shift_matrix(cols, w).astype(x.dtype)
  x = jnp.einsum("nik,nkwc->niwc", r, x)
  return jnp.einsum("njw,niwc->nijc", c, x)


# -- DiffAugment ------------------------------------------------------------------------------


def _brightness(key, x, offset):
  u = example_uniform(key, x.shape[0], (), offset).astype(x.dtype)
  return x + (u - 0.5)[:, None, None, None]


def _saturation(key, x, offset):
  u = example_uniform(key, x.shape[0], (), offset).astype(x.dtype)
  mean = jnp.mean(x, axis=3, keepdims=True)
  return (x - mean) * (2.0 * u)[:, None, None, None] + mean


def _contrast(key, x, offset):
  u = example_uniform(key, x.shape[0], (), offset).astype(x.dtype)
  mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
  return (x - mean) * (u + 0.5)[:, None, None, None] + mean


def _translation(key, x, offset, ratio: float = 0.125):
  n, h, w = x.shape[:3]
  shift_h, shift_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
  k_h, k_w = jax.random.split(key)
  th = _randint(k_h, n, -shift_h, shift_h, offset)
  tw = _randint(k_w, n, -shift_w, shift_w, offset)
  # out[i, j] = x[i + th, j + tw], zero outside (the reference pads one zero pixel and
  # clamps its indices into the pad).
  rows = jnp.arange(h)[None, :] + th[:, None]
  cols = jnp.arange(w)[None, :] + tw[:, None]
  return _resample_rows_cols(x, rows, cols)


def _cutout_mask(key, shape, offset, ratio: float = 0.5):
  n, h, w = shape[:3]
  size_h, size_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
  k_h, k_w = jax.random.split(key)
  # The square's centre, as the reference draws it; it may stick out of the image.
  ch = _randint(k_h, n, 0, h + (1 - size_h % 2) - 1, offset)
  cw = _randint(k_w, n, 0, w + (1 - size_w % 2) - 1, offset)
  top, left = ch - size_h // 2, cw - size_w // 2
  rows = jnp.arange(h)[None, :]
  cols = jnp.arange(w)[None, :]
  in_rows = (rows >= top[:, None]) & (rows < top[:, None] + size_h)
  in_cols = (cols >= left[:, None]) & (cols < left[:, None] + size_w)
  return ~(in_rows[:, :, None] & in_cols[:, None, :])  # True where kept, [N, H, W]


def _cutout(key, x, offset):
  keep = _cutout_mask(key, x.shape, offset)
  return x * keep[..., None].astype(x.dtype)


_DIFFAUGMENT_FNS = {
    "color": (_brightness, _saturation, _contrast),
    "translation": (_translation,),
    "cutout": (_cutout,),
}


def _policy(policy: str | Sequence[str], known: Sequence[str], what: str) -> tuple[str, ...]:
  if isinstance(policy, str):
    names = tuple(p.strip() for p in policy.split(",") if p.strip())
  elif isinstance(policy, Sequence):
    names = tuple(policy)
  else:
    raise ConfigError(f"{what} policy must be a comma-separated string or a list of names, "
                      f"got {type(policy).__name__}.")
  unknown = [p for p in names if p not in known]
  if unknown:
    raise ConfigError(f"Unknown {what} op(s) {unknown}; the ops are {', '.join(known)} "
                      "(comma-separated, applied in the order given).")
  if len(set(names)) != len(names):
    raise ConfigError(f"{what} policy {list(names)} names an op twice.")
  return names


def diffaugment(key: jax.Array, images: jax.Array,
                policy: str | Sequence[str] = "color,translation,cutout",
                offset: int | jax.Array = 0) -> jax.Array:
  """DiffAugment (Zhao et al. 2020), per example, differentiable in ``images``.

  Args:
    key: PRNG key; the same key on every device.
    images: ``[N, H, W, C]`` in ``[-1, 1]``.
    policy: comma-separated ops, applied in the order given: ``color`` (brightness
      ``+U[-0.5, 0.5)``, then saturation ``x (U[0, 2))`` about the pixel's channel mean
      (the identity for one channel), then contrast ``x (U[0.5, 1.5))`` about the image's
      mean), ``translation`` (by up to ``int(size / 8 + 0.5)`` pixels each way, zeros
      shifted in) and ``cutout`` (a square of side ``int(size / 2 + 0.5)`` set to 0, its
      centre uniform so that it may stick out of the image).
    offset: the global index of the first image (``device_index * local_batch``).

  Returns:
    The augmented batch, same shape and dtype.
  """
  _check_images(images)
  names = _policy(policy, DIFFAUGMENT_OPS, "DiffAugment")
  x = images
  for name in names:
    op_key = jax.random.fold_in(key, DIFFAUGMENT_OPS.index(name))
    for j, fn in enumerate(_DIFFAUGMENT_FNS[name]):
      x = fn(jax.random.fold_in(op_key, j), x, offset)
  return x


# -- ADA --------------------------------------------------------------------------------------


def _reflect(index: jax.Array, size: int) -> jax.Array:
  """Reflect-pad indexing without repeating the edge (``torch`` / ``numpy`` ``reflect``)."""
  if size == 1:
    return jnp.zeros_like(index)
  period = 2 * (size - 1)
  index = jnp.mod(index, period)
  return jnp.where(index >= size, period - index, index)


def _fires(key, n, p, offset) -> jax.Array:
  return example_uniform(key, n, (), offset) < p


def _ada_xflip(key, x, p, offset):
  k_i, k_p = jax.random.split(key)
  flip = (example_randint(k_i, x.shape[0], 2, offset) == 1) & _fires(k_p, x.shape[0], p, offset)
  return jnp.where(flip[:, None, None, None], x[:, :, ::-1], x)


def _ada_rotate90(key, x, p, offset):
  if x.shape[1] != x.shape[2]:
    raise ConfigError(f"ADA's rotate90 needs square images, got {x.shape[1]}x{x.shape[2]}; "
                      "leave it out of the ops.")
  k_i, k_p = jax.random.split(key)
  turns = jnp.where(_fires(k_p, x.shape[0], p, offset),
                    example_randint(k_i, x.shape[0], 4, offset), 0)
  out = x
  for k in (1, 2, 3):
    out = jnp.where((turns == k)[:, None, None, None], jnp.rot90(x, k, axes=(1, 2)), out)
  return out


def _ada_xint(key, x, p, offset, xint_max: float = 0.125):
  n, h, w = x.shape[:3]
  k_t, k_p = jax.random.split(key)
  t = (example_uniform(k_t, n, (2,), offset) * 2.0 - 1.0) * xint_max
  t = jnp.where(_fires(k_p, n, p, offset)[:, None], t, 0.0)
  th = jnp.round(t[:, 0] * h).astype(jnp.int32)
  tw = jnp.round(t[:, 1] * w).astype(jnp.int32)
  rows = _reflect(jnp.arange(h)[None, :] - th[:, None], h)
  cols = _reflect(jnp.arange(w)[None, :] - tw[:, None], w)
  return _resample_rows_cols(x, rows, cols)


def _ada_brightness(key, x, p, offset, std: float = 0.2):
  k_v, k_p = jax.random.split(key)
  b = example_normal(k_v, x.shape[0], (), offset) * std
  b = jnp.where(_fires(k_p, x.shape[0], p, offset), b, 0.0).astype(x.dtype)
  return x + b[:, None, None, None]


def _ada_contrast(key, x, p, offset, std: float = 0.5):
  k_v, k_p = jax.random.split(key)
  c = jnp.exp2(example_normal(k_v, x.shape[0], (), offset) * std)
  c = jnp.where(_fires(k_p, x.shape[0], p, offset), c, 1.0).astype(x.dtype)
  return x * c[:, None, None, None]  # about 0, mid-grey in [-1, 1] (the reference's matrix)


def _ada_saturation(key, x, p, offset, std: float = 1.0):
  if x.shape[3] == 1:
    return x  # the reference skips it for one channel
  k_v, k_p = jax.random.split(key)
  s = jnp.exp2(example_normal(k_v, x.shape[0], (), offset) * std)
  s = jnp.where(_fires(k_p, x.shape[0], p, offset), s, 1.0).astype(x.dtype)
  # Scale the part orthogonal to the luma axis (1, ..., 1) / sqrt(C): x -> m + s (x - m),
  # written x + (s - 1) (x - m) so that an image the op skips (s = 1) is unchanged exactly.
  mean = jnp.mean(x, axis=3, keepdims=True)
  return x + (x - mean) * (s - 1.0)[:, None, None, None]


def _ada_cutout(key, x, p, offset, size: float = 0.5):
  n, h, w = x.shape[:3]
  k_c, k_p = jax.random.split(key)
  centre = example_uniform(k_c, n, (2,), offset)
  half = jnp.where(_fires(k_p, n, p, offset), size / 2, 0.0)
  ys = (jnp.arange(h) + 0.5) / h
  xs = (jnp.arange(w) + 0.5) / w
  out_y = jnp.abs(ys[None, :] - centre[:, 0:1]) >= half[:, None]
  out_x = jnp.abs(xs[None, :] - centre[:, 1:2]) >= half[:, None]
  keep = out_y[:, :, None] | out_x[:, None, :]
  return x * keep[..., None].astype(x.dtype)


_ADA_FNS = {"xflip": _ada_xflip, "rotate90": _ada_rotate90, "xint": _ada_xint,
            "brightness": _ada_brightness, "contrast": _ada_contrast,
            "saturation": _ada_saturation, "cutout": _ada_cutout}


def ada(key: jax.Array, images: jax.Array, p: float | jax.Array,
        ops: str | Sequence[str] = ADA_DEFAULT_OPS, offset: int | jax.Array = 0) -> jax.Array:
  """ADA's augmentation pipeline (Karras et al. 2020): each op fires per image with
  probability ``p``, with the reference's parameter distributions.

  Args:
    key: PRNG key; the same key on every device.
    images: ``[N, H, W, C]`` in ``[-1, 1]``.
    p: the probability of each op (a traced scalar in the train step); ``p >= 1`` fires
      every op (the reference does not clamp ``p`` from above).
    ops: the ops, in this order whatever order they are given in: ``xflip`` (a mirror
      image with probability 1/2 when it fires), ``rotate90`` (0 to 3 quarter turns),
      ``xint`` (an integer shift of up to 1/8 of the size each way, reflect padding),
      ``brightness`` (``+ N(0, 0.2^2)``), ``contrast`` (``x 2^N(0, 0.5^2)``, about 0),
      ``saturation`` (``x 2^N(0, 1)`` about the luma axis; the identity for one channel),
      ``cutout`` (a square of half the size set to 0). Default: all but cutout (the
      reference's ``bgc`` pipeline less its fractional geometry and hue).
    offset: the global index of the first image.

  Returns:
    The augmented batch, same shape and dtype.
  """
  _check_images(images)
  names = set(_policy(ops, ADA_OPS, "ADA"))
  x = images
  for i, name in enumerate(ADA_OPS):
    if name in names:
      x = _ADA_FNS[name](jax.random.fold_in(key, i), x, p, offset)
  return x


def ada_adjust(p: jax.Array, sign_mean: jax.Array, images_seen: int, target: float = 0.6,
               kimg: float = 500.0) -> jax.Array:
  """The reference's update of ``p``: ``max(p + sign(sign_mean - target) * images_seen /
  (kimg * 1000), 0)``.

  Args:
    p: the current probability.
    sign_mean: the mean of ``sign(D(augmented real))`` since the last adjustment (the
      overfitting heuristic ``r_t``: near 1 when D is sure of every real image).
    images_seen: real images D saw since the last adjustment (global batch x interval).
    target: the value of ``r_t`` to hold (0.6 in the paper).
    kimg: thousands of images over which ``p`` can move by 1 (500; 100 reacts faster).
  """
  step = images_seen / (kimg * 1000.0)
  return jnp.maximum(p + jnp.sign(sign_mean - target) * step, 0.0)


# -- the step's augmentation options ----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DiffAugment:
  """DiffAugment in the train step (``make_train_step(..., augment=DiffAugment())``).

  Attributes:
    policy: the ops, comma-separated (``diffaugment``); the reference's choice for 10-20% of
      CIFAR-10 is all three.
  """

  policy: str = "color,translation,cutout"

  def __post_init__(self):
    object.__setattr__(self, "policy", ",".join(_policy(self.policy, DIFFAUGMENT_OPS,
                                                         "DiffAugment")))

  def __call__(self, key, images, p=None, offset=0):
    return diffaugment(key, images, self.policy, offset)


@dataclasses.dataclass(frozen=True)
class ADA:
  """Adaptive discriminator augmentation in the train step.

  ``p`` starts at ``p`` and, when ``target`` is set, moves every ``interval`` steps by
  ``ada_adjust``. It and its sign accumulator live in ``state_d.model_state["step_state"]``
  (``train_step.prepare_states``), so they are checkpointed and a resumed run continues
  with the same ``p``.

  Attributes:
    target: the value of the overfitting heuristic ``E[sign(D(real))]`` to hold (0.6);
      None keeps ``p`` fixed.
    p: the initial (or fixed) probability, in [0, 1].
    interval: steps between adjustments of ``p`` (4).
    kimg: thousands of images for ``p`` to move by 1 (500; the reference uses 100 when
      resuming, to react faster).
    ops: the pipeline's ops (see ``ada``), comma-separated.
  """

  target: float | None = 0.6
  p: float = 0.0
  interval: int = 4
  kimg: float = 500.0
  ops: str = ",".join(ADA_DEFAULT_OPS)

  def __post_init__(self):
    object.__setattr__(self, "ops", ",".join(_policy(self.ops, ADA_OPS, "ADA")))
    if not isinstance(self.p, int | float) or isinstance(self.p, bool) or not 0 <= self.p <= 1:
      raise ConfigError(f"ADA's p must be a probability in [0, 1], got {self.p!r}.")
    if self.target is not None and not (isinstance(self.target, int | float)
                                        and 0 < self.target < 1):
      raise ConfigError(f"ADA's target must be in (0, 1) (the paper's 0.6), or None for a "
                        f"fixed p; got {self.target!r}.")
    if not isinstance(self.interval, int) or isinstance(self.interval, bool) or self.interval < 1:
      raise ConfigError(f"ADA's interval must be an int >= 1 (steps between adjustments "
                        f"of p), got {self.interval!r}.")
    if not isinstance(self.kimg, int | float) or self.kimg <= 0:
      raise ConfigError(f"ADA's kimg must be > 0 (the reference's 500), got {self.kimg!r}.")

  def __call__(self, key, images, p, offset=0):
    return ada(key, images, p, self.ops, offset)


Augmentation = DiffAugment | ADA
NAMES = ("none", "diffaugment", "ada")


def parse(spec: str | Augmentation | None) -> Augmentation | None:
  """An augmentation from a name: ``"none"`` (or None, ""), ``"diffaugment"`` (all three
  ops), ``"diffaugment:translation,cutout"``, ``"ada"`` (adaptive, target 0.6),
  ``"ada:0.3"`` (a fixed ``p`` of 0.3); a ``DiffAugment`` or ``ADA`` passes through."""
  if spec is None or isinstance(spec, DiffAugment | ADA):
    return spec
  if not isinstance(spec, str):
    raise ConfigError(f"augment must be a name ({', '.join(NAMES)}), a jaxgan.augment."
                      f"DiffAugment or ADA, or None; got {type(spec).__name__}.")
  name, _, arg = spec.strip().partition(":")
  name = name.strip().lower()
  if name in ("", "none"):
    if arg:
      raise ConfigError(f"augment={spec!r}: 'none' takes no argument.")
    return None
  if name == "diffaugment":
    return DiffAugment(arg) if arg else DiffAugment()
  if name == "ada":
    if not arg:
      return ADA()
    try:
      p = float(arg)
    except ValueError:
      raise ConfigError(f"augment={spec!r}: after 'ada:' give a fixed probability in [0, 1] "
                        "(e.g. ada:0.3), or write 'ada' for the adaptive p.") from None
    return ADA(target=None, p=p)
  raise ConfigError(f"Unknown augment {spec!r}; choose one of {', '.join(NAMES)} (e.g. "
                    "'diffaugment', 'diffaugment:translation,cutout', 'ada', 'ada:0.3').")

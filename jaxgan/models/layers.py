"""Layers shared by the model families."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.errors import ConfigError
from jaxgan.rng import example_bernoulli


def example_mask(key: jax.Array, shape, keep_prob: float, offset, broadcast_dims=()
                 ) -> jax.Array:
  """A dropout keep-mask whose row for each example depends only on its global index.

  Args:
    key: the same key on every device (the ``per_example`` rng stream).
    shape: the local input's shape ``[local_batch, ...]``.
    keep_prob: probability of keeping a unit.
    offset: global index of the first local example (``device_index * local_batch``).
    broadcast_dims: dimensions sharing one mask value (as ``nn.Dropout``'s); with 0 among
      them every example shares one mask, drawn from ``key`` itself.

  Returns:
    bool ``shape``: row ``j`` depends only on ``key`` and ``offset + j``
    (``jaxgan.rng.example_bernoulli``).
  """
  ndim = len(shape)
  broadcast = {d % ndim for d in broadcast_dims}
  row = tuple(1 if d + 1 in broadcast else s for d, s in enumerate(shape[1:]))
  if 0 in broadcast:
    mask = jax.random.bernoulli(key, keep_prob, (1, *row))
  else:
    mask = example_bernoulli(key, keep_prob, shape[0], row, offset)
  return jnp.broadcast_to(mask, shape)


def _apply_mask(x: jax.Array, keep: jax.Array, keep_prob: float) -> jax.Array:
  return jnp.where(keep, x / keep_prob, jnp.zeros_like(x))


def halvings(height: int, width: int, min_size: int = 4) -> int:
  """The most times both sides halve to whole sizes of at least ``min_size`` (0: none):
  the stride-2 stages of the DCGAN pair, the up-blocks of the ResNet generator."""
  k = 0
  while all(s % 2 ** (k + 1) == 0 and s // 2 ** (k + 1) >= min_size for s in (height, width)):
    k += 1
  return k


def example_offset(axis_name: str | None, local: int):
  """The global index of this device's first example (0 without an axis): per-example
  draws are indexed from it, so they do not depend on the device count."""
  return 0 if axis_name is None else jax.lax.axis_index(axis_name) * local


class ExampleDropout(nn.Module):
  """Dropout whose mask for each example depends only on its global index in the batch.

  Flax's ``nn.Dropout`` draws one mask for the local batch, so under ``pmap``/``shard_map``
  the masks change with the number of devices. Here the mask of example ``j`` on device
  ``d`` depends only on ``key`` and its global index ``d * local_batch + j``, with ``key``
  from the ``per_example`` rng stream, which the jaxgan train step gives the same on every
  device: 8 devices and 1 device draw the same masks for the same global batch.

  Attributes:
    rate: probability of dropping a unit.
    axis_name: the mapped device axis, or None; inside the jaxgan train step (or
      ``device_independent``) None follows the step's axis.
    rng_collection: the rng stream; falls back to ``dropout`` when the caller
      provides no ``per_example`` stream (e.g. a plain ``module.apply``).
  """

  rate: float
  axis_name: str | None = None
  rng_collection: str = "per_example"

  @nn.compact
  def __call__(self, x: jax.Array, deterministic: bool) -> jax.Array:
    if deterministic or self.rate == 0.0:
      return x
    if self.rate >= 1.0:
      return jnp.zeros_like(x)
    stream = self.rng_collection if self.has_rng(self.rng_collection) else "dropout"
    keep = example_mask(self.make_rng(stream), x.shape, 1.0 - self.rate,
                        example_offset(self.axis_name, x.shape[0]))
    return _apply_mask(x, keep, 1.0 - self.rate)


@contextlib.contextmanager
def device_independent(axis_name: str | None):
  """Within this context, layers compute what they would on one device with the whole batch.

  The jaxgan train step runs its models inside it with its own ``axis_name``, so that a
  run's result depends on the global batch and the key, not on how many devices share
  the batch, whatever the models were built with. Inside it:

  * a ``flax.linen.BatchNorm`` (or subclass) whose ``axis_name`` is None averages its
    batch statistics over ``axis_name`` (those of the global batch);
  * an ``ExampleDropout`` whose ``axis_name`` is None indexes its masks by the global
    example over ``axis_name`` (as does any module with an ``axis_name`` field and the
    class attribute ``follows_step_axis = True``: StyleGAN2's noise inputs);
  * a ``flax.linen.Dropout`` on the ``dropout`` stream, called without an explicit
    ``rng``, draws its mask per global example from the ``per_example`` stream (as
    ``ExampleDropout``), when the caller provides that stream (the train step does).

  Layers given an ``axis_name`` of their own keep it. With ``axis_name=None`` (one
  device) only the dropout masks change, to the per-example ones, so that one device
  and many draw the same masks. Use it where you call ``module.apply`` under your own
  ``pmap``/``shard_map``: ``with device_independent("batch"): D.apply(...)``.

  Args:
    axis_name: the mapped device axis, or None.
  """

  def interceptor(next_fun, args, kwargs, context):
    module = context.module
    if context.method_name != "__call__":
      return next_fun(*args, **kwargs)
    if isinstance(module, nn.BatchNorm | ExampleDropout) or getattr(
        module, "follows_step_axis", False):
      if axis_name is None or module.axis_name is not None:
        return next_fun(*args, **kwargs)
      # The same layer with the axis set, bound to the same scope (the same variables).
      return module.clone(parent=module.scope, axis_name=axis_name)(*args, **kwargs)
    if isinstance(module, nn.Dropout):
      return _per_example_dropout(module, next_fun, axis_name, *args, **kwargs)
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(interceptor):
    yield


def _per_example_dropout(module: nn.Dropout, next_fun, axis_name, inputs,
                         deterministic: bool | None = None, rng=None):
  if rng is not None or module.rng_collection != "dropout" or not module.has_rng(
      "per_example"):
    return next_fun(inputs, deterministic=deterministic, rng=rng)
  deterministic = nn.merge_param("deterministic", module.deterministic, deterministic)
  if module.rate == 0.0 or deterministic:
    return inputs
  if module.rate == 1.0:
    return jnp.zeros_like(inputs)
  keep_prob = 1.0 - module.rate
  keep = example_mask(module.make_rng("per_example"), inputs.shape, keep_prob,
                      example_offset(axis_name, inputs.shape[0]), module.broadcast_dims)
  return _apply_mask(inputs, keep, keep_prob)


_NHWC = ("NHWC", "HWIO", "NHWC")


def conv_general_dilated(lhs: jax.Array, rhs: jax.Array, window_strides, padding,
                         lhs_dilation=None, rhs_dilation=None, dimension_numbers=None,
                         feature_group_count: int = 1, batch_group_count: int = 1,
                         precision=None, preferred_element_type=None) -> jax.Array:
  """``lax.conv_general_dilated`` in the forms XLA:CPU runs fast, inside loops too.

  Two slow forms on XLA:CPU, measured (BUILD_NOTES.md):

  * XLA's algebraic simplifier swaps a convolution's operands when the kernel's spatial
    size (product over the spatial axes) exceeds the input's: a 5x5 kernel on a 4x4 map,
    as in the 32x32 DCGAN's first generator layer, or in the input gradient of a 5x5
    stride-2 layer whose output is 4x4. XLA:CPU runs the swapped form 50-100x slower.
    Such a convolution pads its input first, behind ``lax.optimization_barrier`` so that
    XLA cannot fold the padding back in, and runs a 'VALID' convolution.
  * Inside a loop body (``lax.scan``, ``fori_loop``: K steps per call), XLA:CPU runs
    the convolutions that autodiff makes for the weight gradient 90-170x slower than
    outside one, and those for the input gradient 2-5x slower (jax-ml/jax#12868).

  So the gradient is a custom VJP made of plain NHWC/HWIO convolutions, which XLA:CPU
  runs at full speed in and out of loops: the forms XLA:CPU's own canonicalisation gives
  autodiff's convolutions outside loops (and does not apply inside them), written out,
  with batch and features exchanged by explicit transposes for the weight gradient and
  the kernel flipped for the input gradient; for the swap-prone convolutions the input
  gradient is in sub-pixel form (one stride-1 correlation of the output gradient per
  output phase, no multiplication by the zeros of a stride-dilated gradient). The result
  is the same function (tested against ``lax`` to float rounding, with first and second
  derivatives); only forward-mode differentiation (``jax.jvp``) is not defined.

  It applies on the CPU backend, to 2-D NHWC/HWIO convolutions without dilation or
  groups; everything else goes straight to ``lax.conv_general_dilated``. The signature
  is that one, so it can be given to ``nn.Conv(conv_general_dilated=...)``.
  """
  plain = functools.partial(
      jax.lax.conv_general_dilated, lhs, rhs, window_strides, padding, lhs_dilation,
      rhs_dilation, dimension_numbers, feature_group_count, batch_group_count, precision,
      preferred_element_type)
  if (jax.default_backend() != "cpu" or lhs.ndim != 4 or feature_group_count != 1
      or batch_group_count != 1 or preferred_element_type is not None
      or any(d is not None and tuple(d) != (1, 1) for d in (lhs_dilation, rhs_dilation))
      or jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
      != jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC)):
    return plain()
  kh, kw = rhs.shape[:2]
  strides = tuple(int(s) for s in window_strides)
  if isinstance(padding, str):
    padding = jax.lax.padtype_to_pads(lhs.shape[1:3], (kh, kw), strides, padding)
  pads = tuple((int(lo), int(hi)) for lo, hi in padding)
  out_hw = [(n + lo + hi - k) // s + 1
            for n, (lo, hi), k, s in zip(lhs.shape[1:3], pads, (kh, kw), strides, strict=True)]
  swap_prone = kh * kw > min(lhs.shape[1] * lhs.shape[2], out_hw[0] * out_hw[1])
  return _cpu_conv(*_vary_alike(lhs, rhs), strides, pads, precision, swap_prone)


def _varying_axes(x) -> frozenset:
  """The mapped axes ``x`` varies over inside ``shard_map`` (checked varying types)."""
  aval = jax.typeof(x)
  manual = getattr(aval, "manual_axis_type", None)  # jax 0.10 and later
  return frozenset(manual.varying if manual is not None else getattr(aval, "vma", ()))


def _vary_alike(*xs):
  """``xs`` cast to vary over the same mapped axes, as JAX's own rules do before a
  custom VJP: its gradient for an operand replicated over an axis (the kernel, under
  ``shard_map``) then comes back as that operand's type, the sum over the axis (pcast's
  transpose)."""
  axes = frozenset().union(*map(_varying_axes, xs))
  return tuple(x if _varying_axes(x) == axes
               else jax.lax.pcast(x, tuple(sorted(axes - _varying_axes(x))), to="varying")
               for x in xs)


def _valid_conv(x, w, strides, precision):
  return jax.lax.conv_general_dilated(x, w, strides, "VALID", dimension_numbers=_NHWC,
                                      precision=precision)


def _padded(x, pads):
  """``x`` padded (negative: cropped) on H and W, materialised: XLA does not fold it into a
  convolution."""
  config = [(0, 0, 0), *((lo, hi, 0) for lo, hi in pads), (0, 0, 0)]
  return jax.lax.optimization_barrier(jax.lax.pad(x, jnp.zeros((), x.dtype), config))


def _forward(x, w, strides, pads, precision, swap_prone):
  if swap_prone:
    return _valid_conv(_padded(x, pads), w, strides, precision)
  return jax.lax.conv_general_dilated(x, w, strides, pads, dimension_numbers=_NHWC,
                                      precision=precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def _cpu_conv(x, w, strides, pads, precision, swap_prone):
  return _forward(x, w, strides, pads, precision, swap_prone)


def _cpu_conv_fwd(x, w, strides, pads, precision, swap_prone):
  return _forward(x, w, strides, pads, precision, swap_prone), (x, w)


def _cpu_conv_bwd(strides, pads, precision, swap_prone, residuals, dy):
  x, w = residuals
  input_grad = _input_grad if swap_prone else _input_grad_dilated
  return (input_grad(dy, w, x.shape[1:3], pads, strides, precision),
          _weight_grad(x, dy, w.shape[:2], pads, strides, precision))


_cpu_conv.defvjp(_cpu_conv_fwd, _cpu_conv_bwd)


def _weight_grad(x, dy, kernel_hw, pads, strides, precision):
  """Weight gradient ``[kh, kw, in, out]``, in the form XLA:CPU gives autodiff's outside
  loops, written out so that it is the same inside them.

  Along one axis ``dw[t] = sum_o x_pad[s*o + t] dy[o]``: a correlation of the padded
  input with the output gradient dilated by the stride, contracting the batch. Both
  operands are transposed so that the batch is the features of a plain NHWC/HWIO
  convolution (``[in, H, W, batch]`` with ``[oh, ow, batch, out]``); the high padding
  is trimmed so that the result has the kernel's size.
  """
  lhs = jnp.transpose(x, (3, 1, 2, 0))
  rhs = jnp.transpose(dy, (1, 2, 0, 3))
  padding = [(lo, k - n - lo + (o - 1) * s)
             for n, (lo, _), k, o, s in zip(x.shape[1:3], pads, kernel_hw, dy.shape[1:3], strides,
                                            strict=True)]
  # Through the custom-VJP form again (where it applies: stride 1), so that a second
  # derivative (R1, path length) is made of plain convolutions too.
  dw = conv_general_dilated(lhs, rhs, (1, 1), padding, rhs_dilation=strides,
                            dimension_numbers=_NHWC, precision=precision)
  return jnp.transpose(dw, (1, 2, 0, 3))


def _input_grad_dilated(dy, w, input_hw, pads, strides, precision):
  """Input gradient in the form XLA:CPU gives autodiff's outside loops, written out.

  Along one axis ``dx[i] = sum_t dy_dilated[i + lo - t] w[t]``: a correlation of the
  stride-dilated output gradient with the flipped kernel, its in and out features
  exchanged explicitly (a plain HWIO kernel).
  """
  wt = jnp.flip(w, (0, 1)).swapaxes(2, 3)
  padding = [(k - 1 - lo, n + k - 2 - (o - 1) * s - (k - 1 - lo))
             for n, (lo, _), k, o, s in zip(input_hw, pads, w.shape[:2], dy.shape[1:3], strides,
                                            strict=True)]
  return conv_general_dilated(dy, wt, (1, 1), padding, lhs_dilation=strides,
                              dimension_numbers=_NHWC, precision=precision)


def _input_grad(dy, w, input_hw, pads, strides, precision):
  """Input gradient of a 'VALID' convolution of the padded input, sub-pixel style.

  Along one axis, with ``p = i + lo`` the index in the padded input and ``p = s*m + r``,
  ``dx[i] = sum_j dy[m - j] w[r + s*j]``: output phase ``r`` is a stride-1 correlation of
  ``dy`` with the taps ``r, r + s, ...`` reversed, so no multiplication meets the zeros
  of a stride-dilated gradient. Each phase is computed for the ``m`` that reach the input
  (from ``lo // s``), the phases are interleaved and the input's ``n`` positions cut out.
  At stride 1 this is the plain correlation of ``dy`` with the flipped kernel.
  """
  ranges = [(lo // s, -(-(lo + n) // s) - lo // s)  # (first m, count) per axis
            for n, (lo, _), s in zip(input_hw, pads, strides, strict=True)]
  (sh, sw), (kh, kw) = strides, w.shape[:2]
  (m0_h, m_h), (m0_w, m_w) = ranges
  wt = w.swapaxes(2, 3)  # [kh, kw, out, in]
  rows = []
  for rh in range(sh):
    cols = []
    for rw in range(sw):
      th, tw = np.arange(rh, kh, sh)[::-1], np.arange(rw, kw, sw)[::-1]
      if th.size == 0 or tw.size == 0:
        cols.append(jnp.zeros((dy.shape[0], m_h, m_w, w.shape[2]), dy.dtype))
        continue
      # Output m reads dy[m - (taps - 1) ... m]: pad dy so that output 0 is m = m0.
      pad = [(t.size - 1 - m0, m0 + m - dy.shape[axis])
             for t, m0, m, axis in ((th, m0_h, m_h, 1), (tw, m0_w, m_w, 2))]
      cols.append(conv_general_dilated(dy, wt[th[:, None], tw[None, :]], (1, 1), pad,
                                       dimension_numbers=_NHWC, precision=precision))
    rows.append(jnp.stack(cols, axis=3))  # [B, M_h, M_w, sw, C]
  full = jnp.stack(rows, axis=2).reshape(dy.shape[0], m_h * sh, m_w * sw, w.shape[2])
  (lo_h, _), (lo_w, _) = pads
  top, left = lo_h - sh * m0_h, lo_w - sw * m0_w
  return full[:, top:top + input_hw[0], left:left + input_hw[1]]


UPSAMPLE_METHODS = ("auto", "transpose", "subpixel")


def conv_transpose_same_pad(kernel: int, stride: int) -> int:
  """Leading padding of ``lax.conv_transpose(..., "SAME")`` along one axis (its
  ``_conv_transpose_padding``): ``y[o] = sum_t w[t] * x[(o + t - pad) / stride]``."""
  return kernel - 1 if stride > kernel - 1 else -(-(kernel + stride - 2) // 2)


def _subpixel_taps(kernel: int, stride: int) -> tuple[np.ndarray, int, int]:
  """Which transposed-conv tap feeds each (output phase, input offset), for 'SAME' padding.

  ``lax.conv_transpose`` with 'SAME' padding computes, along one axis,
  ``y[s*m + r] = sum_t w[t] * x[(s*m + r + t - pad) / s]`` over the taps ``t`` for which
  the division is exact, with ``pad`` from ``jax.lax``'s ``_conv_transpose_padding``.
  Output phase ``r`` is thus an ordinary convolution of ``x`` with the taps
  ``t = s*d - r + pad`` at input offsets ``d``.

  Returns:
    ``(taps [stride, size], low, high)``: ``taps[r, j]`` is the tap at offset
    ``low + j`` for phase ``r``, or ``kernel`` (an index past the end: a zero) where no tap
    lands; ``size = high - low + 1`` and the convolution pads the input by ``(-low, high)``.
  """
  pad = conv_transpose_same_pad(kernel, stride)
  pairs = [(r, t, (r + t - pad) // stride) for r in range(stride) for t in range(kernel)
           if (r + t - pad) % stride == 0]
  low = min(d for _, _, d in pairs)
  high = max(d for _, _, d in pairs)
  taps = np.full((stride, high - low + 1), kernel, np.int32)
  for r, t, d in pairs:
    taps[r, d - low] = t
  return taps, low, high


class UpConv(nn.Module):
  """A transposed convolution (``nn.ConvTranspose`` without bias, 'SAME' padding), computed
  either as XLA's transposed convolution or as a convolution followed by depth-to-space.

  Both methods use the same parameter (``kernel [kh, kw, in, out]``, initialised as
  ``nn.ConvTranspose`` initialises it) and compute the same function: the sub-pixel form
  splits the transposed convolution into its ``stride**2`` output phases, each an ordinary
  convolution of the input with a subset of the taps (Shi et al., 2016), runs them as one
  convolution with ``stride**2 * out`` channels and interleaves the phases. XLA's CPU
  backend runs a strided transposed convolution as a convolution over the zero-dilated
  input, which wastes ``stride**2`` of its multiplications; the sub-pixel form does not.
  Checkpoints are interchangeable between the methods.

  Attributes:
    features: output channels.
    kernel_size: ``(kh, kw)``.
    strides: ``(sh, sw)``.
    method: ``"transpose"``, ``"subpixel"``, or ``"auto"`` (sub-pixel on CPU, where it is
      measured faster; transpose elsewhere, see BUILD_NOTES.md).
    dtype: computation dtype (None: that of the inputs and kernel).
    param_dtype: dtype of the kernel.
    kernel_init: initialiser of the kernel (``nn.ConvTranspose``'s default).
  """

  features: int
  kernel_size: tuple[int, int]
  strides: tuple[int, int] = (1, 1)
  method: str = "auto"
  dtype: Any = None
  param_dtype: Any = jnp.float32
  kernel_init: Callable = nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if self.method not in UPSAMPLE_METHODS:
      raise ConfigError(f"UpConv method must be one of {UPSAMPLE_METHODS}, got {self.method!r}.")
    kh, kw = self.kernel_size
    kernel = self.param("kernel", self.kernel_init, (kh, kw, x.shape[-1], self.features),
                        self.param_dtype)
    x, kernel = nn.dtypes.promote_dtype(x, kernel, dtype=self.dtype)
    method = self.method
    if method == "auto":
      method = "subpixel" if jax.default_backend() == "cpu" else "transpose"
    if tuple(self.strides) == (1, 1):
      # lax.conv_transpose at stride 1 is a convolution with its 'SAME' padding.
      lows = [conv_transpose_same_pad(k, 1) for k in (kh, kw)]
      pads = [(lo, k - 1 - lo) for lo, k in zip(lows, (kh, kw), strict=True)]
      return conv_general_dilated(x, kernel, (1, 1), pads, dimension_numbers=_NHWC)
    if method == "transpose":
      return jax.lax.conv_transpose(x, kernel, tuple(self.strides), "SAME")
    (sh, sw), c = self.strides, self.features
    taps_h, low_h, high_h = _subpixel_taps(kh, sh)
    taps_w, low_w, high_w = _subpixel_taps(kw, sw)
    # [rh, jh, rw, jw, in, out] with a zero row/column for the missing taps.
    padded = jnp.pad(kernel, ((0, 1), (0, 1), (0, 0), (0, 0)))
    sub = padded[taps_h[:, :, None, None], taps_w[None, None, :, :]]
    sub = sub.transpose(1, 3, 4, 0, 2, 5).reshape(
        taps_h.shape[1], taps_w.shape[1], x.shape[-1], sh * sw * c)
    y = conv_general_dilated(x, sub, (1, 1), ((-low_h, high_h), (-low_w, high_w)),
                             dimension_numbers=_NHWC)
    b, h, w, _ = y.shape
    y = y.reshape(b, h, w, sh, sw, c).transpose(0, 1, 3, 2, 4, 5)
    return y.reshape(b, h * sh, w * sw, c)

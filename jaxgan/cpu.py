"""XLA:CPU compiler options for the training step.

jaxlib 0.10 hands each convolution to YNNPACK on the CPU (XLA's
``xla_cpu_experimental_ynn_fusion_type`` includes ``individual_convolution`` by default).
On the 2-core AMD EPYC (AVX2) development machine XLA's own convolution kernels are faster
for every DCGAN layer, and the whole DCGAN step is 1.26x faster without the YNNPACK
convolutions (BUILD_NOTES.md, "Step throughput against PyTorch"). ``compiler_options``
gives the option that keeps YNNPACK for dots and reductions and leaves convolutions to
XLA; it changes the kernels, not the function (results agree to float32 rounding, tested).

Use it where you compile a step yourself::

    step = jax.jit(train_step, compiler_options=jaxgan.cpu.compiler_options())

The training loop does this itself (config ``cpu_conv_kernels``). The choice is measured on
one kind of CPU; ``python benchmarks/step_throughput.py --variants=jax,jax_jaxlib_conv``
compares both on yours.
"""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp

from jaxgan.errors import ConfigError

CONV_KERNELS = ("xla", "jaxlib")  # XLA's own convolutions | whatever this jaxlib picks
YNN_FUSION_TYPE = "xla_cpu_experimental_ynn_fusion_type"
WITHOUT_CONVOLUTIONS = "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE"
_YNN_FUSION_KIND = '"kind":"__ynn_fusion"'  # in a compiled module's text


def compiler_options(conv_kernels: str = "xla") -> dict[str, str]:
  """XLA compiler options for a training step on JAX's default backend.

  Args:
    conv_kernels: ``"xla"``: convolutions by XLA's own kernels (faster on the CPUs measured
      here); ``"jaxlib"``: leave this jaxlib's choice alone.

  Returns:
    A dict for ``jax.jit(..., compiler_options=...)`` (or ``Lowered.compile``). Empty
    when there is nothing to change: not a CPU backend, ``conv_kernels="jaxlib"``, the
    user's ``XLA_FLAGS`` already sets the YNNPACK fusion types (their choice wins), or this
    jaxlib does not route convolutions to YNNPACK or does not know the option.

  Raises:
    ValueError: an unknown ``conv_kernels``.
  """
  if conv_kernels not in CONV_KERNELS:
    raise ConfigError(f"conv_kernels must be one of {CONV_KERNELS}, got {conv_kernels!r}.")
  if conv_kernels == "jaxlib" or jax.default_backend() != "cpu":
    return {}
  if YNN_FUSION_TYPE in os.environ.get("XLA_FLAGS", ""):
    return {}
  return dict(_without_ynn_convolutions())


@functools.cache
def _without_ynn_convolutions() -> tuple[tuple[str, str], ...]:
  """The option, if this jaxlib sends a convolution to YNNPACK and accepts the option.

  Probed on the default backend, which ``compiler_options`` has checked is the CPU.
  """
  x = jax.ShapeDtypeStruct((8, 14, 14, 32), jnp.float32)
  w = jax.ShapeDtypeStruct((5, 5, 32, 64), jnp.float32)
  lowered = jax.jit(lambda x, w: jax.lax.conv_general_dilated(
      x, w, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))).lower(x, w)
  if _YNN_FUSION_KIND not in lowered.compile().as_text():
    return ()
  option = ((YNN_FUSION_TYPE, WITHOUT_CONVOLUTIONS),)
  try:
    compiled = lowered.compile(dict(option))
  except Exception:  # noqa: BLE001 - another jaxlib spells the option differently
    return ()
  return () if _YNN_FUSION_KIND in compiled.as_text() else option

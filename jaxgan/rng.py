"""Per-example random numbers: one Threefry-2x32 hash per pair of values, no key per example.

The step draws each example's latent vector, dropout mask and interpolation coefficient
from its *global* index in the batch, so the result does not depend on how many devices
share the batch. Here value ``j`` of example ``g`` is word ``j % 2`` of
``threefry2x32(key_data(key), (g, j // 2))``: one hash of a counter, the scheme of
counter-based generators (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
SC 2011), the same hash as ``jax.random``'s default keys.

Why not ``jax.vmap(jax.random.fold_in)`` then ``jax.random.normal`` per example: that is
two hashes per value, and jaxlib lowers its hash on the CPU as a rolled 5-trip loop, whose
per-iteration overhead dominates small draws: a batch of 64 latent vectors of 100 took
2.8x longer than here (``benchmarks/latents.py``; BUILD_NOTES.md, "Latents"). The
hash below is the same function written out in ``jnp`` (tested bit for bit against
``jax.extend.random.threefry_2x32``), which XLA fuses into one loop on every backend.

A key is consumed by one draw: draw again from ``jax.random.split`` or ``fold_in`` of it.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.errors import ConfigError, InputTypeError

# The scheme's name, recorded in checkpoints: a run resumes only with the noise it began with.
SCHEME = "threefry-example-1"

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = np.uint32(0x1BD11BDA)


def _rotl(x: jax.Array, r: int) -> jax.Array:
  return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def threefry2x32(k0: jax.Array, k1: jax.Array, x0: jax.Array, x1: jax.Array
                 ) -> tuple[jax.Array, jax.Array]:
  """The Threefry-2x32 block cipher, 20 rounds, on uint32 arrays (broadcast together).

  The function of ``jax.extend.random.threefry_2x32`` (Random123's constants), written out
  round by round so that XLA fuses it on the CPU too.
  """
  ks = (k0, k1, k0 ^ k1 ^ _PARITY)
  x0, x1 = x0 + ks[0], x1 + ks[1]
  for i in range(5):
    for r in _ROTATIONS[i % 2]:
      x0 = x0 + x1
      x1 = _rotl(x1, r) ^ x0
    x0 = x0 + ks[(i + 1) % 3]
    x1 = x1 + ks[(i + 2) % 3] + np.uint32(i + 1)
  return x0, x1


def _key_words(key: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Two uint32 words of a key: its data for a Threefry key, else bits drawn from it."""
  if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    data = jax.random.key_data(key)
    if data.shape != (2,):  # another PRNG implementation (rbg: 4 words)
      data = jax.random.bits(key, (2,), jnp.uint32)
  else:
    data = jnp.asarray(key)
    if data.shape != (2,) or data.dtype != jnp.uint32:
      raise InputTypeError(f"key must be a jax.random.key or a raw uint32[2] key, got "
                           f"{data.dtype}{list(data.shape)}.")
  return data[0], data[1]


def example_bits(key: jax.Array, index: jax.Array, num: int) -> jax.Array:
  """``num`` random uint32 words for each example in ``index``.

  Args:
    key: PRNG key (typed, or a raw ``uint32[2]``).
    index: uint32 ``[B]``, the examples' global indices.
    num: words per example.

  Returns:
    uint32 ``[B, num]``; row ``b`` depends only on ``key``, ``index[b]`` and ``num``
    (and its first ``n`` words not even on ``num``).
  """
  k0, k1 = _key_words(key)
  index = jnp.asarray(index, jnp.uint32)
  pairs = jnp.arange((num + 1) // 2, dtype=jnp.uint32)
  w0, w1 = threefry2x32(k0, k1, index[:, None], pairs[None, :])  # broadcast to [B, pairs]
  return jnp.stack([w0, w1], axis=-1).reshape(index.shape[0], -1)[:, :num]


def _bits_to_unit(bits: jax.Array) -> jax.Array:
  """uint32 words to float32 in [0, 1): the top 23 bits as the mantissa of [1, 2), minus 1."""
  one = np.array(1.0, np.float32).view(np.uint32)
  return jax.lax.bitcast_convert_type((bits >> np.uint32(9)) | one, jnp.float32) - 1.0


def _draw(key, offset, num: int, shape: Sequence[int]) -> tuple[jax.Array, tuple[int, ...]]:
  shape = tuple(int(s) for s in shape)
  size = int(np.prod(shape, dtype=np.int64))
  index = jnp.asarray(offset, jnp.uint32) + jnp.arange(num, dtype=jnp.uint32)
  return example_bits(key, index, size), shape


def example_uniform(key: jax.Array, num: int, shape: Sequence[int] = (), offset=0
                    ) -> jax.Array:
  """Uniform [0, 1) float32 ``[num, *shape]``, example ``i`` from global index ``offset + i``."""
  bits, shape = _draw(key, offset, num, shape)
  return _bits_to_unit(bits).reshape(num, *shape)


def example_normal(key: jax.Array, num: int, shape: Sequence[int] = (), offset=0,
                   dtype=jnp.float32) -> jax.Array:
  """Standard normal values ``[num, *shape]``, example ``i`` from global index ``offset + i``.

  By inversion, as ``jax.random.normal``: ``sqrt(2) * erfinv(u)`` for ``u`` uniform on
  (-1, 1).
  """
  bits, shape = _draw(key, offset, num, shape)
  u = _bits_to_unit(bits)
  lo = np.nextafter(np.float32(-1.0), np.float32(0.0))
  u = jnp.maximum(lo, 2.0 * u - 1.0)
  return (np.float32(np.sqrt(2.0)) * jax.lax.erf_inv(u)).astype(dtype).reshape(num, *shape)


def example_bernoulli(key: jax.Array, p, num: int, shape: Sequence[int] = (), offset=0
                      ) -> jax.Array:
  """Bool ``[num, *shape]``, True with probability ``p``, example ``i`` from ``offset + i``."""
  return example_uniform(key, num, shape, offset) < p


def example_randint(key: jax.Array, num: int, maxval: int, offset=0) -> jax.Array:
  """Uniform int32 in ``[0, maxval)`` ``[num]``, example ``i`` from global index ``offset + i``.

  One 32-bit word per example, reduced modulo ``maxval`` (a bias below ``maxval / 2**32``:
  under 3e-9 for 10 classes). The class labels of the fakes use it, so that they do not
  depend on how many devices share the batch.
  """
  if not isinstance(maxval, int) or maxval < 1:
    raise ConfigError(f"maxval must be an int >= 1, got {maxval!r}.")
  bits, _ = _draw(key, offset, num, ())
  return (bits[:, 0] % np.uint32(maxval)).astype(jnp.int32)

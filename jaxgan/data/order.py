"""Which examples make batch ``s`` of a run: a keyed bijection of the split per epoch.

Batch ``s`` is a pure function of ``(seed, s, global batch size)``: the examples of a run
form one stream, the concatenation of a fresh permutation of the split per epoch, and
batch ``s`` is positions ``s * B ... s * B + B - 1`` of that stream. Every example appears
exactly once per epoch, nothing but the step needs checkpointing, and a resumed run sees
the batches an uninterrupted one would have seen. The permutation is a keyed bijection
evaluated per position (``permute``: a Feistel network with cycle-walking), so a batch
costs O(B) whatever the size of the split. One definition runs in NumPy on the host (to
feed batches) and in JAX inside a compiled loop on the device (``jaxgan.parallel``).

"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.errors import ConfigError

# The name of the data order, saved with every checkpoint: a run resumed under another
# order would see other batches, so resuming across orders is refused
# (jaxgan.training.checkpoint.check_resumable).
ORDER = "feistel-1"
FEISTEL_ROUNDS = 8
_GOLDEN = 0x9E3779B9  # 2**32 / golden ratio: separates the inputs of successive hashes


_M1, _M2 = 0x85EBCA6B, 0xC2B2AE35  # MurmurHash3's 32-bit finaliser


def hash32(xp, x):
  """MurmurHash3's finaliser on uint32 (a bijection of 32-bit words with full avalanche)."""
  x = x ^ (x >> xp.uint32(16))
  x = x * xp.uint32(_M1)
  x = x ^ (x >> xp.uint32(13))
  x = x * xp.uint32(_M2)
  return x ^ (x >> xp.uint32(16))


def _epoch_key(xp, key_words, epoch):
  """One uint32 word per element from the run's key words and the element's epoch."""
  k = hash32(xp, epoch * xp.uint32(_GOLDEN) + xp.uint32(1))
  for i in range(key_words.shape[-1]):
    k = hash32(xp, k ^ key_words[i])
  return k


def _feistel(xp, x, key, bits: int):
  """A Feistel network on ``bits``-bit words: a bijection of ``[0, 2**bits)`` for any key.

  Each round maps the halves ``(L, R)`` (``a`` and ``b`` bits) to
  ``(R, L ^ F(key, round, R) mod 2**a)``; the halves alternate in size when ``bits`` is
  odd, and every round can be undone from its output, so the whole is a bijection.
  """
  a, b = bits // 2, bits - bits // 2
  left, right = x >> xp.uint32(b), x & xp.uint32((1 << b) - 1)
  for r in range(FEISTEL_ROUNDS):
    f = hash32(xp, (right + xp.uint32(r * _GOLDEN % 2**32)) ^ key)
    left, right = right, left ^ (f & xp.uint32((1 << a) - 1))
    a, b = b, a
  return (left << xp.uint32(b)) | right


# At least 8 bits (halves of 4): on smaller domains a Feistel network reaches only a
# skewed subset of the permutations (for N = 5 on 3 bits, chi-squared 1088 over the 120
# orders with 119 degrees of freedom, against 134 on 8 bits: tests/data/test_data.py). Walking
# a domain of 256 costs a small split at most 256 / N walks, and a large one nothing.
MIN_DOMAIN_BITS = 8


def _domain_bits(num_examples: int) -> int:
  return max(MIN_DOMAIN_BITS, (num_examples - 1).bit_length())


def _positions(xp, step, batch_size: int, num_examples: int):
  """``(epoch, position within the epoch)`` of stream positions ``step * B + j``, uint32.

  Computed without forming ``step * B`` (which would overflow 32 bits after 2**32
  examples): ``step = q * N + r`` so ``step * B = (q * B) * N + r * B``, and ``r * B < N * B``.
  """
  if batch_size > num_examples:
    raise ConfigError(f"The batch size ({batch_size}) exceeds the number of examples "
                      f"({num_examples}); use a smaller batch.")
  if num_examples * batch_size >= 2**32:
    raise ConfigError(f"num_examples * batch_size = {num_examples * batch_size:,} must be below "
                      "2**32 for the 32-bit data order.")
  n = xp.uint32(num_examples)
  step = xp.asarray(step).astype(xp.uint32)
  carried = (step % n) * xp.uint32(batch_size)
  first = (step // n) * xp.uint32(batch_size) + carried // n
  position = carried % n + xp.arange(batch_size, dtype=xp.uint32)
  return first + position // n, position % n


def _first_walk(xp, key_words, epoch, position, num_examples: int):
  """``(domain bits, per-element round key, the network's first value)``."""
  bits = _domain_bits(num_examples)
  key = _epoch_key(xp, key_words, epoch)
  return bits, key, _feistel(xp, position, key, bits)


def _permute_np(key_words: np.ndarray, epoch: np.ndarray, position: np.ndarray,
                num_examples: int) -> np.ndarray:
  if num_examples == 1:
    return np.zeros(position.shape, np.int32)
  bits, key, out = _first_walk(np, key_words, epoch, position, num_examples)
  n = np.uint32(num_examples)
  outside = out >= n
  while outside.any():  # cycle-walking: under 2 walks on average once N > 128
    out[outside] = _feistel(np, out[outside], key[outside], bits)
    outside = out >= n
  return out.astype(np.int32)


def _permute_jax(key_words: jax.Array, epoch: jax.Array, position: jax.Array,
                 num_examples: int) -> jax.Array:
  if num_examples == 1:
    return jnp.zeros(position.shape, jnp.int32)
  bits, key, out = _first_walk(jnp, key_words, epoch, position, num_examples)
  n = jnp.uint32(num_examples)
  out = jax.lax.while_loop(lambda y: jnp.any(y >= n),
                           lambda y: jnp.where(y >= n, _feistel(jnp, y, key, bits), y), out)
  return out.astype(jnp.int32)


def permute(key: jax.Array, epoch, position, num_examples: int):
  """Example at ``position`` of epoch ``epoch``'s order: a keyed bijection of ``[0, N)``.

  A Feistel network on the smallest power-of-two domain holding ``N`` (of at least
  ``2**MIN_DOMAIN_BITS``), keyed by the run's key and the epoch, restricted to ``[0, N)`` by
  cycle-walking (a value outside is permuted again until it lands inside; this is a
  bijection of ``[0, N)`` because it follows the cycles of a bijection of the domain,
  Black and Rogaway, 2002). Each position costs O(1) (``FEISTEL_ROUNDS`` hashes per
  walk, under 2 walks on average), whatever ``N``.

  NumPy arrays in (``epoch``, ``position``): NumPy out, for the host; anything else:
  JAX, for the device. Both compute the same integers.

  Args:
    key: the data key (``jax.random.key(seed)``), or its ``jax.random.key_data`` words.
    epoch: uint32 epoch numbers.
    position: uint32 positions in ``[0, N)``, the same shape as ``epoch``.
    num_examples: ``N``.
  """
  words = _key_words(key)
  if isinstance(position, np.ndarray) and isinstance(epoch, np.ndarray):
    return _permute_np(np.asarray(words, np.uint32), epoch.astype(np.uint32),
                       position.astype(np.uint32), num_examples)
  return _permute_jax(jnp.asarray(words, jnp.uint32), jnp.asarray(epoch, jnp.uint32),
                      jnp.asarray(position, jnp.uint32), num_examples)


def _key_words(key):
  if hasattr(key, "dtype") and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    return jax.random.key_data(key)
  return key


def batch_indices(key: jax.Array, step, batch_size: int, num_examples: int) -> jax.Array:
  """Indices into the split of the examples of batch ``step``, computed in JAX.

  Args:
    key: the data key (one per run; ``jax.random.key(seed)``).
    step: the batch number (int or int32 scalar array).
    batch_size: global batch size ``B``; at most ``num_examples``.
    num_examples: size of the split ``N``.

  Returns:
    int32 ``[B]``: entry ``j`` is ``permute(key, e, p, N)`` for stream position
    ``g = step * B + j``, epoch ``e = g // N``, position ``p = g % N``. Each epoch is a
    fresh permutation of the split; the cost is O(B), whatever ``N``.
  """
  epoch, position = _positions(jnp, step, batch_size, num_examples)
  return _permute_jax(jnp.asarray(_key_words(key), jnp.uint32), epoch, position, num_examples)


def host_batch_indices(key_words: np.ndarray, step: int, batch_size: int,
                       num_examples: int) -> np.ndarray:
  """``batch_indices`` in NumPy on the host, from the key's ``jax.random.key_data`` words."""
  epoch, position = _positions(np, step, batch_size, num_examples)
  return _permute_np(np.asarray(key_words, np.uint32), epoch, position, num_examples)

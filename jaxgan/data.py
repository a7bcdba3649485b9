"""Data: which examples make batch ``s`` of a run, and how pixels become model inputs.

Batch ``s`` is a pure function of ``(seed, s, global batch size)``: the examples of a run
form one stream, the concatenation of a fresh permutation of the split per epoch, and
batch ``s`` is positions ``s * B ... s * B + B - 1`` of that stream. Every example appears
exactly once per epoch, nothing but the step needs checkpointing, and a resumed run sees
the batches an uninterrupted one would have seen. The same function runs on the host
(to feed batches) and inside a compiled loop on the device (``jaxgan.parallel``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def batch_indices(key: jax.Array, step, batch_size: int, num_examples: int) -> jax.Array:
  """Indices into the split of the examples of batch ``step``.

  Args:
    key: the data key (one per run; ``jax.random.key(seed)``).
    step: the batch number (int or int32 scalar array).
    batch_size: global batch size ``B``; at most ``num_examples``.
    num_examples: size of the split ``N``.

  Returns:
    int32 ``[B]``: entry ``j`` is ``perm_e[p]`` for stream position ``g = step * B + j``,
    epoch ``e = g // N``, position ``p = g % N``, ``perm_e`` the permutation of epoch ``e``.
  """
  if batch_size > num_examples:
    raise ValueError(f"The batch size ({batch_size}) exceeds the number of examples "
                     f"({num_examples}); use a smaller batch.")
  # uint32 positions: valid up to 2**32 examples streamed (16.7M steps at batch 256).
  start = jnp.asarray(step, jnp.uint32) * jnp.uint32(batch_size)
  position = start + jnp.arange(batch_size, dtype=jnp.uint32)
  epoch = position // jnp.uint32(num_examples)
  within = (position % jnp.uint32(num_examples)).astype(jnp.int32)
  # A batch spans at most two epochs (B <= N): draw both permutations.
  first = start // jnp.uint32(num_examples)
  perm_a = jax.random.permutation(jax.random.fold_in(key, first), num_examples)
  perm_b = jax.random.permutation(jax.random.fold_in(key, first + 1), num_examples)
  return jnp.where(epoch == first, perm_a[within], perm_b[within]).astype(jnp.int32)


def to_model_range(images: jax.Array) -> jax.Array:
  """uint8 pixels in [0, 255] -> float32 in [-1, 1] (the contract's image range)."""
  return images.astype(jnp.float32) / 127.5 - 1.0

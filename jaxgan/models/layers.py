"""Layers shared by the model families."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


class ExampleDropout(nn.Module):
  """Dropout whose mask for each example depends only on its global index in the batch.

  Flax's ``nn.Dropout`` draws one mask for the local batch, so under ``pmap``/``shard_map``
  the masks change with the number of devices. Here example ``j`` on device ``d`` uses
  ``fold_in(key, d * local_batch + j)`` with ``key`` from the ``per_example`` rng stream,
  which the jaxgan train step gives the same on every device: 8 devices and 1 device
  draw the same masks for the same global batch.

  Attributes:
    rate: probability of dropping a unit.
    axis_name: the mapped device axis (the train step's ``axis_name``), or None.
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
    key = self.make_rng(stream)
    local = x.shape[0]
    offset = 0 if self.axis_name is None else jax.lax.axis_index(self.axis_name) * local
    index = jnp.asarray(offset, jnp.uint32) + jnp.arange(local, dtype=jnp.uint32)
    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, index)
    keep = jax.vmap(lambda k: jax.random.bernoulli(k, 1.0 - self.rate, x.shape[1:]))(keys)
    return jnp.where(keep, x / (1.0 - self.rate), jnp.zeros_like(x))

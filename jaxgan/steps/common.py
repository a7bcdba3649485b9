"""What every family's step shares: latents drawn per global example, means over the
device axis, the rng streams modules use, and one network update."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan.models import layers
from jaxgan.rng import example_normal
from jaxgan.state import NetState

Metrics = dict[str, jax.Array]


def sample_latent(key: jax.Array, num: int, latent_dim: int, offset: int | jax.Array = 0,
                  dtype: Any = jnp.float32) -> jax.Array:
  """Standard normal latent vectors, example ``i`` drawn from ``key`` and ``offset + i``.

  Args:
    key: PRNG key (consumed: split it for other draws).
    num: number of vectors.
    latent_dim: size of each vector.
    offset: global index of the first vector (e.g. ``device_index * local_batch``).
    dtype: float dtype.

  Returns:
    ``[num, latent_dim]``; row ``i`` is the same whatever ``num`` and ``offset`` are,
    as long as ``offset + i`` is (``jaxgan.rng.example_normal``).
  """
  return example_normal(key, num, (latent_dim,), offset, dtype)


def pmean_floats(tree, axis_name: str | None):
  """Mean over the device axis of every floating-point leaf (others pass through); the
  identity without an axis.

  Gradients are reduced as ``pmean(grad(pmean(local_loss)))``, which is the global-batch
  gradient under every way of mapping a step: under ``shard_map`` with ``check_vma=True``
  autodiff already reduces the gradient of a replicated parameter over the axis (the inner
  pmean makes that reduction a mean, and the outer pmean of an axis-invariant value is the
  value); under ``pmap``, ``vmap`` and ``shard_map`` with ``check_vma=False`` the inner
  pmean transposes to the local gradient and the outer pmean averages it. (A plain
  ``pmean(grad(local_loss))`` is off by the device count under ``check_vma=True``.)
  """
  if axis_name is None:
    return tree
  return jax.tree.map(
      lambda x: jax.lax.pmean(x, axis_name) if jnp.issubdtype(x.dtype, jnp.floating) else x,
      tree)


def module_rngs(rng: jax.Array, axis_name: str | None) -> dict[str, jax.Array]:
  """The rng streams a module may use inside a step.

  ``per_example`` is the same on every device, for layers that index their randomness by
  global example, which makes them device-count independent: ``ExampleDropout``, and
  ``nn.Dropout`` inside the step (``jaxgan.models.layers.device_independent``).
  ``dropout`` differs per device, for a module's other uses of that stream.
  """
  device = 0 if axis_name is None else jax.lax.axis_index(axis_name)
  return {"dropout": jax.random.fold_in(rng, device),
          "per_example": jax.random.fold_in(rng, 2**31 - 1)}


def global_norm(tree) -> jax.Array:
  """The l2 norm of all leaves together (``optax.global_norm`` is deprecated and
  ``optax.tree.norm`` is newer than optax 0.2.4)."""
  return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree)))


def device_offset(axis_name: str | None, local_batch: int):
  """The global index of this device's first example (0 without an axis)."""
  return layers.example_offset(axis_name, local_batch)


def apply_net(module: nn.Module, state: NetState, params, x: jax.Array, rng: jax.Array,
           axis_name: str | None, model_state: dict | None = None):
  """Train-mode forward; returns (output, the module's updated collections)."""
  model_state = state.module_state if model_state is None else model_state
  with layers.device_independent(axis_name):
    return module.apply({"params": params, **model_state}, x, train=True,
                        rngs=module_rngs(rng, axis_name), mutable=list(model_state))


def apply_update(state: NetState, grads, model_state, axis_name) -> NetState:
  return state.apply_gradients(pmean_floats(grads, axis_name),
                               pmean_floats(model_state, axis_name))

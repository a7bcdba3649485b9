"""Several GANs in one compiled program: ``vmap`` over seeds and hyperparameters.

A sweep of ``M`` runs of the same architecture is one set of states with a leading member
axis ``[M, ...]`` on every leaf, trained by ``jax.vmap`` of the ordinary train step. On an
accelerator that a single small GAN does not fill, ``M`` members cost far less than ``M``
times one::

    tx = optax.inject_hyperparams(optax.adam)(learning_rate=2e-4, b1=0.5)
    state_g, state_d = jaxgan.sweep.create_member_states(
        jax.random.split(jax.random.key(0), 4), G, D, tx, tx, latent_dim=100,
        image_shape=(28, 28, 1),
        hyperparams_d={"learning_rate": [1e-4, 2e-4, 4e-4, 8e-4]})
    step = jax.jit(jaxgan.sweep.vmap_members(jaxgan.make_train_step(G, D, "hinge")))
    state_g, state_d, metrics = step(state_g, state_d, batch, keys)  # metrics: [4]
    g3, d3 = jaxgan.sweep.member((state_g, state_d), 3)  # member 3 as an ordinary state

Member ``i`` follows exactly the computation of a separate run from
``create_states(keys[i], ...)`` with its hyperparameters and step keys ``keys[i]`` (tested
to float32 rounding: batching changes the order of some sums). Hyperparameters that can
differ per member are the optimizer's, through ``optax.inject_hyperparams``; the train
step's own settings (loss, penalties, ``n_critic``) are static and shared.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxgan.errors import ConfigError, InputTypeError
from jaxgan.state import NetState, as_key, validated_init_fn

PyTree = Any


def _set_hyperparams(state: NetState, values: Mapping[str, Sequence[float]], which: str,
                     members: int) -> NetState:
  if not values:
    return state
  opt_state = state.opt_state
  # optax.InjectHyperparamsState, or InjectStatefulHyperparamsState in newer optax.
  if not (hasattr(opt_state, "hyperparams") and hasattr(opt_state, "_replace")):
    raise InputTypeError(
        f"hyperparams_{which} needs an optimizer built with optax.inject_hyperparams, e.g. "
        "optax.inject_hyperparams(optax.adam)(learning_rate=2e-4); the "
        f"{'generator' if which == 'g' else 'discriminator'}'s optimizer state is "
        f"{type(opt_state).__name__}.")
  hyperparams = dict(opt_state.hyperparams)
  for name, vals in values.items():
    if name not in hyperparams:
      raise ConfigError(f"hyperparams_{which}: the optimizer has no injected hyperparameter "
                        f"{name!r}; it has {sorted(hyperparams)}.")
    vals = jnp.asarray(vals, hyperparams[name].dtype)
    if vals.shape != (members,):
      raise ConfigError(f"hyperparams_{which}[{name!r}] needs one value per member "
                        f"({members}); got shape {tuple(vals.shape)}.")
    hyperparams[name] = vals
  return state.replace(opt_state=opt_state._replace(hyperparams=hyperparams))


def create_member_states(keys: jax.Array, G, D, tx_g: optax.GradientTransformation,
                         tx_d: optax.GradientTransformation, *, latent_dim: int,
                         image_shape: Sequence[int],
                         hyperparams_g: Mapping[str, Sequence[float]] | None = None,
                         hyperparams_d: Mapping[str, Sequence[float]] | None = None,
                         init_batch_size: int = 1) -> tuple[NetState, NetState]:
  """States of ``M = len(keys)`` runs stacked on a leading axis.

  Args:
    keys: ``[M]`` PRNG keys, one per member (e.g. ``jax.random.split(key, M)``); member
      ``i`` starts where ``create_states(keys[i], ...)`` does.
    G, D, tx_g, tx_d, latent_dim, image_shape, init_batch_size: as ``create_states``.
    hyperparams_g, hyperparams_d: per-member values of the optimizers' injected
      hyperparameters, ``{name: [M values]}``; the optimizers must come from
      ``optax.inject_hyperparams``.

  Returns:
    ``(state_g, state_d)`` with every leaf ``[M, ...]``.
  """
  keys = as_key(jnp.asarray(keys))  # typed keys [M], or raw uint32 keys [M, 2]
  if keys.ndim != 1 or keys.shape[0] < 1:
    raise ConfigError("keys must be a 1-D array of M >= 1 keys, e.g. "
                      f"jax.random.split(jax.random.key(0), M); got shape {keys.shape}.")
  init_fn, _ = validated_init_fn(G, D, tx_g, tx_d, latent_dim, image_shape, init_batch_size)
  members = keys.shape[0]

  def with_hyperparams(states):
    state_g, state_d = states
    return (_set_hyperparams(state_g, hyperparams_g or {}, "g", members),
            _set_hyperparams(state_d, hyperparams_d or {}, "d", members))

  with_hyperparams(jax.eval_shape(jax.vmap(init_fn), keys))  # bad hyperparams fail here, fast
  return with_hyperparams(jax.jit(jax.vmap(init_fn))(keys))


def vmap_members(train_step: Callable, *, shared_batch: bool = True) -> Callable:
  """The train step over a member axis: ``(state_g, state_d, batch, keys) -> ...``.

  Args:
    train_step: from ``make_train_step`` (its ``axis_name`` may be set too: the member
      axis is separate from the device axis, so a sweep can also be data-parallel).
    shared_batch: every member trains on the same ``batch`` (``[B, ...]``); False: a
      batch per member (``[M, B, ...]``).

  Returns:
    A function of member-stacked states, a batch and ``[M]`` keys (one per member; pass
    ``jnp.stack([key] * M)`` to share one) returning stacked states and metrics ``[M]``.
  """
  mapped = jax.vmap(train_step, in_axes=(0, 0, None if shared_batch else 0, 0))
  mapped.config = getattr(train_step, "config", None)
  return mapped


def member(tree: PyTree, index: int) -> PyTree:
  """Member ``index`` of member-stacked states (or metrics), as an ordinary tree."""
  return jax.tree.map(lambda x: x[index], tree)

"""Per-network training state and ``create_states``.

A network's whole training state is one pytree (``NetState``): parameters, the mutable
model collections (BatchNorm statistics, spectral-norm vectors), the optimizer state,
a step counter and, for the generator, an exponential moving average of the parameters.
The optimizer and the network's input shape are static (part of the tree structure, not
leaves), so the state can go in and out of ``jax.jit`` and be saved leaf for leaf.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxgan.errors import ConfigError, InputTypeError

PyTree = Any

# The collection of ``NetState.model_state`` that holds what the train step itself keeps
# (ADA's probability and its accumulator, the path-length mean): checkpointed with the
# state, never passed to the module (``train_step.prepare_states`` adds it).
STEP_STATE = "step_state"


class NetState(struct.PyTreeNode):
  """Training state of one network.

  Attributes:
    step: number of optimizer updates applied (int32 scalar).
    params: the ``params`` collection.
    model_state: every other collection the module keeps (e.g. ``batch_stats``),
      as a dict; empty for a module without mutable state. The train step's own
      state, when it keeps any, is the entry ``"step_state"`` (never given to the module).
    opt_state: the optimizer's state.
    ema_params: exponential moving average of ``params`` (the generator's; ``None``
      for the discriminator).
    tx: the optimizer (static).
    input_shape: shape of one input example (static): ``(latent_dim,)`` for a generator,
      the image shape for a discriminator.
    num_classes: classes of a conditional pair's labels (static); 0: unconditional.
  """

  step: jax.Array
  params: PyTree
  model_state: dict[str, PyTree]
  opt_state: PyTree
  ema_params: PyTree | None
  tx: optax.GradientTransformation = struct.field(pytree_node=False)
  input_shape: tuple[int, ...] = struct.field(pytree_node=False)
  num_classes: int = struct.field(pytree_node=False, default=0)

  def variables(self, params: PyTree | None = None) -> dict[str, PyTree]:
    """The variables dict for ``module.apply``: ``params`` (default: own) + the module's
    collections (the step's own ``step_state`` left out)."""
    return {"params": self.params if params is None else params, **self.module_state}

  @property
  def module_state(self) -> dict[str, PyTree]:
    """The module's mutable collections: ``model_state`` without the step's own entry."""
    return {k: v for k, v in self.model_state.items() if k != STEP_STATE}

  @property
  def step_state(self) -> dict[str, PyTree]:
    """What the train step keeps in this state (empty when it keeps nothing)."""
    return self.model_state.get(STEP_STATE, {})

  def apply_gradients(self, grads: PyTree, model_state: dict[str, PyTree] | None = None
                      ) -> NetState:
    """One optimizer update; ``model_state`` (when given) replaces the module's mutable
    collections (the step's own ``step_state`` is kept)."""
    updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
    if model_state is None:
      model_state = self.model_state
    elif STEP_STATE in self.model_state:
      model_state = {**model_state, STEP_STATE: self.model_state[STEP_STATE]}
    return self.replace(
        step=self.step + 1,
        params=optax.apply_updates(self.params, updates),
        opt_state=opt_state,
        model_state=model_state,
    )

  def with_step_state(self, **values) -> NetState:
    """This state with entries of ``step_state`` set (the train step's bookkeeping)."""
    return self.replace(model_state={**self.model_state,
                                     STEP_STATE: {**self.step_state, **values}})


def _split_variables(variables: dict[str, PyTree]) -> tuple[PyTree, dict[str, PyTree]]:
  variables = dict(variables)
  params = variables.pop("params", {})
  return params, variables


def new_net_state(variables: dict[str, PyTree], tx: optax.GradientTransformation,
                  input_shape: Sequence[int], *, ema: bool = False, num_classes: int = 0
                  ) -> NetState:
  """A network's state at step 0 from its initialised ``variables`` (``module.init``'s).

  Args:
    variables: ``params`` and the module's other collections.
    tx: the network's optimizer (its state is initialised here).
    input_shape: the shape of one input example (static).
    ema: keep an exponential moving average of the parameters (a generator's), starting
      equal to them; False: ``ema_params`` is None.
    num_classes: a conditional pair's classes (0: none).
  """
  params, model_state = _split_variables(variables)
  return NetState(step=jnp.zeros((), jnp.int32), params=params, model_state=model_state,
                  opt_state=tx.init(params), ema_params=params if ema else None, tx=tx,
                  input_shape=tuple(int(s) for s in input_shape), num_classes=num_classes)


def shape_str(shape: Sequence[int]) -> str:
  return "(" + ", ".join(str(int(s)) for s in shape) + ")"


def logits_shape_error(shape: Sequence[int], batch: int) -> ConfigError | None:
  """The error for a discriminator output that is not one logit per example, or None."""
  if tuple(shape) in ((batch,), (batch, 1)):
    return None
  return ConfigError(
      f"The discriminator must return one logit per example, shape [B] or [B, 1] with "
      f"B={batch}; it returned shape {shape_str(shape)}. End it with a Dense(1) (and "
      "reshape), or average patch logits (PatchGAN) inside the module."
  )


def split_d_output(out, batch: int, num_classes: int):
  """``(logits [B], class_logits [B, C] or None)`` of a discriminator's output.

  A discriminator returns logits ``[B]`` (or ``[B, 1]``), or, with an auxiliary classifier
  (ACGAN), the pair ``(logits, class_logits [B, num_classes])``.

  Raises:
    jaxgan.errors.ConfigError: any other shape, or class logits on an unconditional pair.
  """
  class_logits = None
  if isinstance(out, tuple | list):
    if len(out) != 2:
      raise ConfigError(f"The discriminator returned {len(out)} outputs; it must return "
                        "logits [B], or (logits [B], class_logits [B, C]) for an auxiliary "
                        "classifier.")
    out, class_logits = out
    if not num_classes:
      raise ConfigError("The discriminator returned class logits (an auxiliary classifier), "
                        "but the states are unconditional: create them with "
                        "num_classes=C and train on labelled batches.")
    shape = tuple(getattr(class_logits, "shape", ()))
    if shape != (batch, num_classes):
      raise ConfigError(f"The discriminator's class logits must have shape [B, C] = "
                        f"[{batch}, {num_classes}]; they have {shape_str(shape)}.")
  err = logits_shape_error(getattr(out, "shape", ()), batch)
  if err is not None:
    raise err
  return jnp.reshape(out, (batch,)) if hasattr(out, "reshape") else out, class_logits


def _labels_args(num_classes: int, batch: int) -> tuple:
  """The extra positional inputs of a conditional pair's dummy calls: ``(y,)`` or ``()``."""
  return (jnp.zeros((batch,), jnp.int32),) if num_classes else ()


def _make_init_fn(G: nn.Module, D: nn.Module, tx_g: optax.GradientTransformation,
                  tx_d: optax.GradientTransformation, latent_dim: int,
                  image_shape: tuple[int, ...], init_batch_size: int, num_classes: int = 0):
  def init(key: jax.Array) -> tuple[NetState, NetState]:
    k_g, k_d, k_drop = jax.random.split(key, 3)
    z = jnp.zeros((init_batch_size, latent_dim), jnp.float32)
    x = jnp.zeros((init_batch_size, *image_shape), jnp.float32)
    y = _labels_args(num_classes, init_batch_size)
    # Eval mode: no dropout randomness is needed and BatchNorm/spectral-norm variables
    # are created all the same.
    state_g = new_net_state(G.init({"params": k_g}, z, *y, train=False), tx_g, (latent_dim,),
                            ema=True, num_classes=num_classes)
    state_d = new_net_state(D.init({"params": k_d, "dropout": k_drop}, x, *y, train=False),
                            tx_d, image_shape, num_classes=num_classes)
    return state_g, state_d

  return init


def _abstract_call(module: nn.Module, name: str, inputs: tuple, num_classes: int):
  """``module``'s output shapes on ``inputs``; a module without a labels argument gets a
  clear error on a conditional pair."""
  if num_classes:
    try:
      inspect.signature(module.__call__).bind(*inputs, train=False)
    except TypeError as e:
      first = "z" if name == "G" else "x"
      raise ConfigError(
          f"num_classes={num_classes} makes a conditional pair, called {name}({first}, y, "
          f"train=...) with int32 class ids y [B], but {type(module).__name__} does not take "
          f"labels ({e}). Use a conditional module (e.g. jaxgan.models.ResNetGenerator("
          f"num_classes={num_classes})), or leave num_classes at 0.") from e
  key = jax.random.key(0)
  return jax.eval_shape(
      lambda *a: module.apply(module.init({"params": key, "dropout": key}, *a, train=False),
                              *a, train=False), *inputs)


def _check_models(G: nn.Module, D: nn.Module, latent_dim: int, image_shape: tuple[int, ...],
                  init_batch_size: int, num_classes: int = 0) -> None:
  """Abstract forward passes of both models; raises a clear error on a mismatch."""
  for name, module in (("G", G), ("D", D)):
    if not isinstance(module, nn.Module):
      raise InputTypeError(f"{name} must be a flax.linen.Module instance, got "
                           f"{type(module).__name__} (did you pass the class instead of an "
                           "instance, e.g. DCGANGenerator()?).")
    own = getattr(module, "num_classes", None)
    if isinstance(own, int) and own != num_classes:
      raise ConfigError(f"{name} was built with num_classes={own}, but the states are being "
                        f"created with num_classes={num_classes}; pass the same number to "
                        "both (0: unconditional).")
  y = tuple(jax.ShapeDtypeStruct(a.shape, a.dtype)
            for a in _labels_args(num_classes, init_batch_size))
  z = jax.ShapeDtypeStruct((init_batch_size, latent_dim), jnp.float32)
  x = jax.ShapeDtypeStruct((init_batch_size, *image_shape), jnp.float32)
  g_out = _abstract_call(G, "G", (z, *y), num_classes)
  if not hasattr(g_out, "shape") or tuple(g_out.shape[1:]) != tuple(image_shape):
    got = shape_str(g_out.shape[1:]) if hasattr(g_out, "shape") else type(g_out).__name__
    raise ConfigError(
        f"The generator maps latent vectors of size {latent_dim} to examples of shape {got}, "
        f"but image_shape={shape_str(image_shape)}. Build the generator for this image shape "
        "(e.g. DCGANGenerator(image_shape=...)) or pass the matching image_shape."
    )
  split_d_output(_abstract_call(D, "D", (x, *y), num_classes), init_batch_size, num_classes)


def create_states(key: jax.Array, G: nn.Module, D: nn.Module,
                  tx_g: optax.GradientTransformation, tx_d: optax.GradientTransformation, *,
                  latent_dim: int, image_shape: Sequence[int], init_batch_size: int = 1,
                  num_classes: int = 0) -> tuple[NetState, NetState]:
  """Initialises the generator's and the discriminator's training states.

  The models are first run on abstract shapes (``jax.eval_shape``) so that a mismatch
  between them surfaces as a clear error before any memory is allocated; the states are
  then built by one jitted function of ``key`` (``abstract_states`` gives the same tree
  as shapes only, to restore checkpoints into).

  Args:
    key: a PRNG key (``jax.random.key``); split for G, D and spectral-norm vectors.
    G: generator, ``G(z [B, latent_dim], train=...) -> images [B, *image_shape]``;
      conditional: ``G(z, y, train=...)`` with int32 class ids ``y [B]``.
    D: discriminator, ``D(images, train=...) -> logits [B]`` or ``[B, 1]``; conditional:
      ``D(images, y, train=...)``, which may also return ``(logits, class_logits [B, C])``
      (an auxiliary classifier, ACGAN).
    tx_g: the generator's optimizer.
    tx_d: the discriminator's optimizer.
    latent_dim: size of the latent vector.
    image_shape: shape of one image, e.g. ``(28, 28, 1)``.
    init_batch_size: batch size of the dummy inputs used to initialise the modules.
    num_classes: ``C > 0`` builds a conditional pair (the step then trains on
      ``batch["label"]``); 0: unconditional.

  Returns:
    ``(state_g, state_d)``; ``state_g.ema_params`` starts equal to ``state_g.params``.

  Raises:
    ValueError: the generator's output does not have ``image_shape``, or the
      discriminator does not return one logit per example.
  """
  init_fn, image_shape = validated_init_fn(G, D, tx_g, tx_d, latent_dim, image_shape,
                                            init_batch_size, num_classes)
  return jax.jit(init_fn)(as_key(key))


def abstract_states(G: nn.Module, D: nn.Module, tx_g: optax.GradientTransformation,
                    tx_d: optax.GradientTransformation, *, latent_dim: int,
                    image_shape: Sequence[int], init_batch_size: int = 1, num_classes: int = 0
                    ) -> tuple[NetState, NetState]:
  """The tree ``create_states`` returns, with ``jax.ShapeDtypeStruct`` leaves (no memory)."""
  init_fn, _ = validated_init_fn(G, D, tx_g, tx_d, latent_dim, image_shape, init_batch_size,
                                  num_classes)
  return jax.eval_shape(init_fn, jax.random.key(0))


def validated_init_fn(G, D, tx_g, tx_d, latent_dim, image_shape, init_batch_size,
                       num_classes=0):
  if not isinstance(latent_dim, int) or isinstance(latent_dim, bool) or latent_dim < 1:
    raise ConfigError(f"latent_dim must be a positive int, got {latent_dim!r}.")
  if num_classes is None:
    num_classes = 0
  if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 0:
    raise ConfigError(f"num_classes must be an int >= 0 (0: unconditional), got "
                      f"{num_classes!r}.")
  image_shape = tuple(int(s) for s in image_shape)
  if not image_shape or any(s < 1 for s in image_shape):
    raise ConfigError(f"image_shape must be a non-empty tuple of positive sizes, e.g. "
                      f"(28, 28, 1); got {image_shape!r}.")
  _check_models(G, D, latent_dim, image_shape, init_batch_size, num_classes)
  return (_make_init_fn(G, D, tx_g, tx_d, latent_dim, image_shape, init_batch_size,
                        num_classes), image_shape)


def as_key(key: jax.Array) -> jax.Array:
  """Accepts typed keys (``jax.random.key``) and legacy uint32 keys (``PRNGKey``)."""
  if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    return key
  return jax.random.wrap_key_data(key)

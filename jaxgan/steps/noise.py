"""The noise-to-image step (MLP, DCGAN, ResNet, StyleGAN2; unconditional or conditional).

``train_step(state_g, state_d, batch, key) -> (state_g, state_d, metrics)``

One call is one generator update preceded by ``n_critic`` discriminator updates. It has no
side effects and captures nothing that changes between calls, so it can be wrapped in
``jax.jit`` (traced once), ``lax.scan``, ``jax.pmap`` or ``jax.shard_map``, with the
states donated.

Randomness. The caller passes the same root ``key`` on every call; the step folds in the
generator's step counter, so every call draws fresh randomness and a resumed run draws
exactly what an uninterrupted one would have. Each consumer gets its own split: the
latent vectors of critic update ``i``, their dropout masks and interpolation
coefficients, and the generator update's. Latent vectors and interpolation coefficients
are drawn *per example* from the key and the global example index (``jaxgan.rng``), so
they do not depend on how many devices share the batch (the global index of example
``j`` on device ``d`` is ``d * local_batch + j``).

"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgan import augment as augment_lib
from jaxgan import cpu, optim
from jaxgan import losses as losses_lib
from jaxgan.errors import ConfigError, InputTypeError, positive_int
from jaxgan.models import layers
from jaxgan.rng import example_normal, example_randint, example_uniform
from jaxgan.state import STEP_STATE, NetState, as_key, shape_str, split_d_output
from jaxgan.steps.common import (
  Metrics,
  device_offset,
  global_norm,
  module_rngs,
  pmean_floats,
  sample_latent,
)

FAKE_LABELS = ("uniform", "real")


def sample_labels(key: jax.Array, num: int, num_classes: int, offset: int | jax.Array = 0
                  ) -> jax.Array:
  """Class ids uniform over ``[0, num_classes)``, example ``i`` from ``key`` and ``offset + i``
  (as ``sample_latent``: the same whatever the batch's split over devices)."""
  return example_randint(key, num, num_classes, offset)


def label_args(y) -> tuple:
  """The labels argument of a module call: ``(y,)`` for a conditional pair, else ``()``."""
  return () if y is None else (y,)


def check_labels(batch: Mapping[str, Any], batch_size: int, num_classes: int) -> jax.Array:
  """``batch["label"]`` as int32 ``[B]``, checked; raises a clear error if it is not.

  Shape and dtype are checked when the step is traced. Values are checked here when the
  labels are concrete (the step called without ``jit``); under ``jit`` an out-of-range
  label gives NaN embeddings and losses (never another class's row) and the metric
  ``labels_out_of_range``, which the training loop turns into this error.
  """
  if "label" not in batch:
    raise ConfigError(
        f"The states are conditional (num_classes={num_classes}), so every batch needs "
        f"'label': int32 class ids [B] in [0, {num_classes}); this batch has only "
        f"{sorted(batch)}. Train on a labelled dataset, or create unconditional states "
        "(num_classes=0).")
  y = batch["label"]
  shape = tuple(getattr(y, "shape", ()))
  if shape != (batch_size,):
    raise ConfigError(f"batch['label'] must have shape [B] = [{batch_size}] (one class id per "
                      f"image); it has {shape_str(shape)}. One-hot labels: pass "
                      "labels.argmax(-1).")
  if not jnp.issubdtype(jnp.asarray(y).dtype, jnp.integer):
    raise InputTypeError(f"batch['label'] must hold integer class ids (int32), got "
                         f"{jnp.asarray(y).dtype}.")
  try:
    values = np.asarray(y)
  except jax.errors.TracerArrayConversionError:
    values = None
  if values is not None and values.size and (values.min() < 0 or values.max() >= num_classes):
    raise ConfigError(label_range_message(num_classes, int(values.min()), int(values.max())))
  return jnp.asarray(y, jnp.int32)


def label_range_message(num_classes: int, low=None, high=None) -> str:
  """The error for labels outside ``[0, num_classes)``."""
  seen = "" if low is None else f" (this batch's labels range from {low} to {high})"
  return (f"batch['label'] holds class ids outside [0, {num_classes}){seen}. The states were "
          f"created with num_classes={num_classes}: create them with the dataset's number of "
          "classes, or fix the labels.")


def _class_loss(class_logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Mean softmax cross-entropy; NaN when a label is outside the classes (never clamped)."""
  num_classes = class_logits.shape[-1]
  valid = (labels >= 0) & (labels < num_classes)
  ce = optax.softmax_cross_entropy_with_integer_labels(
      class_logits.astype(jnp.float32), jnp.clip(labels, 0, num_classes - 1))
  return jnp.mean(jnp.where(valid, ce, jnp.nan))


def check_options(n_critic, gp_weight, r1_weight, clip, ema_decay, r1_every=1,
                  r2_weight=0.0) -> None:
  if not positive_int(n_critic):
    raise ConfigError(f"n_critic must be an int >= 1 (discriminator updates per generator "
                      f"update), got {n_critic!r}.")
  if not positive_int(r1_every):
    raise ConfigError(f"r1_every must be an int >= 1 (1: R1 in every discriminator update; "
                      f"StyleGAN2's lazy regularisation uses 16), got {r1_every!r}.")
  for name, value in (("gp_weight", gp_weight), ("r1_weight", r1_weight),
                      ("r2_weight", r2_weight)):
    if not isinstance(value, int | float) or value < 0:
      raise ConfigError(f"{name} must be a number >= 0 (0 disables it), got {value!r}.")
  if clip is not None and not (isinstance(clip, int | float) and clip > 0):
    raise ConfigError(f"clip must be a positive bound (WGAN used 0.01) or None, got {clip!r}.")
  if ema_decay is not None and not (isinstance(ema_decay, int | float) and 0 <= ema_decay < 1):
    raise ConfigError(f"ema_decay must be in [0, 1) (e.g. 0.999) or None, got {ema_decay!r}.")


def style_based(G: nn.Module) -> bool:
  """Whether ``G`` exposes StyleGAN2's ``mapping``/``synthesis`` and ``num_ws``."""
  return all(callable(getattr(G, m, None)) for m in ("mapping", "synthesis")) and isinstance(
      getattr(G, "num_ws", None), int)


def transition_weight(transition: tuple[int, int], step) -> jax.Array:
  """The class's weight at ``step`` of a transitional run: 0 before ``start``, rising
  linearly to 1 at ``end``, then 1 (``transition = (start, end)``, in steps)."""
  start, end = transition
  return jnp.clip((jnp.asarray(step, jnp.float32) - start) / (end - start), 0.0, 1.0)


def _transition_arg(transition) -> dict:
  """The ``transition`` keyword of a module call, or none for a pair without one."""
  return {} if transition is None else {"transition": transition}


def _check_transition(G, D, transition) -> tuple[int, int] | None:
  if transition is None:
    return None
  if not (isinstance(transition, tuple | list) and len(transition) == 2
          and all(isinstance(t, int) and not isinstance(t, bool) for t in transition)
          and 0 <= transition[0] < transition[1]):
    raise ConfigError(f"transition must be a pair of steps (start, end) with 0 <= start < "
                      f"end, e.g. (200, 600), or None; got {transition!r}.")
  if not (style_based(G) and getattr(D, "unconditional_head", False)):
    raise ConfigError(f"transition needs a StyleGAN2Generator and a StyleGAN2Discriminator "
                      f"with unconditional_head=True (the unconditional output that carries "
                      f"training before the class comes in); got {type(G).__name__} and "
                      f"{type(D).__name__}"
                      f"{'' if getattr(D, 'unconditional_head', True) else ' without it'}.")
  return tuple(transition)


def _check_style_options(G, style_mixing, pl_weight, pl_every, pl_decay, shrink) -> None:
  if not isinstance(style_mixing, int | float) or not 0 <= style_mixing <= 1:
    raise ConfigError(f"style_mixing must be a probability in [0, 1] (StyleGAN2: 0.9), got "
                      f"{style_mixing!r}.")
  if not isinstance(pl_weight, int | float) or pl_weight < 0:
    raise ConfigError(f"pl_weight must be a number >= 0 (StyleGAN2: 2; 0: off), got "
                      f"{pl_weight!r}.")
  if (style_mixing or pl_weight) and not style_based(G):
    raise ConfigError(f"style_mixing and pl_weight need a style-based generator with "
                      f"mapping/synthesis methods (jaxgan.models.StyleGAN2Generator); "
                      f"{type(G).__name__} is not one. Set them to 0.")
  if not positive_int(pl_every):
    raise ConfigError(f"pl_every must be an int >= 1 (StyleGAN2: 4), got {pl_every!r}.")
  if not positive_int(shrink):
    raise ConfigError(f"pl_batch_shrink must be an int >= 1 (StyleGAN2: 2), got {shrink!r}.")
  if not isinstance(pl_decay, int | float) or not 0 < pl_decay <= 1:
    raise ConfigError(f"pl_decay must be in (0, 1] (StyleGAN2: 0.01), got {pl_decay!r}.")


class _Batch(NamedTuple):
  """One call's real batch and what the step derives from it (traced values and shapes)."""

  real: jax.Array
  labels: jax.Array | None
  size: int  # this device's examples
  latent_dim: int
  num_classes: int
  offset: Any  # the global index of this device's first example
  p: jax.Array | None  # ADA's augmentation probability at this step
  class_weight: jax.Array | None  # a transitional pair's class weight at this step, else None
  penalty_scale: Any = 1.0  # the R1/R2 gamma's schedule at this step (1: constant)
  images: Any = 0  # images seen before this step (the schedules' clock)


@dataclasses.dataclass(frozen=True, eq=False)
class TrainStep:
  """The step ``make_train_step`` returns; its fields are the static hyperparameters.

  Call it as ``train_step(state_g, state_d, batch, key)``; see ``make_train_step``.
  """

  G: nn.Module
  D: nn.Module
  loss: losses_lib.Loss
  n_critic: int = 1
  gp_weight: float = 0.0
  r1_weight: float = 0.0
  clip: float | None = None
  ema_decay: float | None = 0.999
  axis_name: str | None = None
  fake_labels: str = "uniform"
  ac_weight: float = 1.0
  augment: augment_lib.Augmentation | None = None
  r1_every: int = 1
  style_mixing: float = 0.0
  pl_weight: float = 0.0
  pl_every: int = 4
  pl_decay: float = 0.01
  pl_batch_shrink: int = 2
  lazy: tuple[bool, bool] | None = None  # fixed by ``at(step)``; None: decided in the step
  transition: tuple[int, int] | None = None
  r2_weight: float = 0.0
  schedules: optim.StepSchedules | None = None

  # -- helpers, all pure ------------------------------------------------------------

  def _pmean(self, tree):
    return pmean_floats(tree, self.axis_name)

  def _rngs(self, rng: jax.Array) -> dict[str, jax.Array]:
    return module_rngs(rng, self.axis_name)

  def _mixing(self, key: jax.Array, batch_size: int, latent_dim: int, offset) -> dict:
    """StyleGAN2's style mixing: with probability ``style_mixing`` one cutoff for the whole
    batch, uniform in ``[1, num_ws)``, from which on the layers take a second latent's
    style (the same draw on every device); otherwise the cutoff is ``num_ws`` (none)."""
    if not self.style_mixing:
      return {}
    num_ws = self.G.num_ws
    k_z, k_p, k_c = jax.random.split(key, 3)
    cutoff = jax.random.randint(k_c, (), 1, num_ws)
    cutoff = jnp.where(jax.random.uniform(k_p) < self.style_mixing, cutoff, num_ws)
    return {"z_mix": sample_latent(k_z, batch_size, latent_dim, offset), "mix_cutoff": cutoff}

  def _generate(self, state_g: NetState, params, z: jax.Array, y, rng: jax.Array,
                offset=0, transition=None):
    """Train-mode forward of G (``y``: class ids, or None); returns (images, model state)."""
    mix = self._mixing(jax.random.fold_in(rng, 7), z.shape[0], z.shape[1], offset)
    with layers.device_independent(self.axis_name):
      out, model_state = self.G.apply(state_g.variables(params), z, *label_args(y), train=True,
                                      rngs=self._rngs(rng), mutable=list(state_g.module_state),
                                      **mix, **_transition_arg(transition))
    return out, model_state

  def _discriminate(self, params, model_state, x: jax.Array, y, rng: jax.Array,
                    num_classes: int = 0, transition=None):
    """Train-mode forward of D; returns (logits [B], class logits [B, C] or None, model
    state)."""
    with layers.device_independent(self.axis_name):
      out, model_state = self.D.apply({"params": params, **model_state}, x, *label_args(y),
                                      train=True, rngs=self._rngs(rng),
                                      mutable=list(model_state),
                                      **({} if transition is None else {"heads": True}))
    if transition is not None:  # [B, 2]: the unconditional output and the projection
      return out, None, model_state
    logits, class_logits = split_d_output(out, x.shape[0], num_classes)
    return logits, class_logits, model_state

  @staticmethod
  def _weighed(loss_fn, transition, *logits) -> jax.Array:
    """``loss_fn`` of the logits; in a transitional pair, of the unconditional output plus
    ``transition`` times that of the projection (Shahbazi et al.'s two terms)."""
    if transition is None:
      return loss_fn(*logits)
    return (loss_fn(*(x[:, 0] for x in logits))
            + transition * loss_fn(*(x[:, 1] for x in logits)))

  @staticmethod
  def _unconditional(logits, transition) -> jax.Array:
    """The logits the penalties, ADA and the metrics see: a transitional pair's
    unconditional output (the reference's R1 is on it alone), else the logits."""
    return logits if transition is None else logits[:, 0]

  def _check_inputs(self, state_g: NetState, state_d: NetState, batch) -> jax.Array:
    for name, state in (("state_g", state_g), ("state_d", state_d)):
      if not isinstance(state, NetState):
        raise InputTypeError(f"{name} must be a jaxgan NetState (from jaxgan.create_states), got "
                             f"{type(state).__name__}.")
    if state_g.ema_params is None:
      raise ConfigError("state_g has no ema_params: it looks like a discriminator state. "
                        "Pass the states in the order create_states returns them: "
                        "train_step(state_g, state_d, batch, key).")
    if not isinstance(batch, Mapping) or "image" not in batch:
      raise InputTypeError("batch must be a dict {'image': float32 [B, H, W, C] in [-1, 1], "
                           f"'label': int32 [B]}}; got {type(batch).__name__}"
                           + (f" with keys {sorted(batch)}" if isinstance(batch, Mapping) else "")
                           + ".")
    real = batch["image"]
    expected = state_d.input_shape
    if real.ndim != len(expected) + 1 or tuple(real.shape[1:]) != tuple(expected):
      raise ConfigError(
          f"batch['image'] has shape {shape_str(real.shape)}, but the models were built for "
          f"images of shape {shape_str(expected)} (a batch [B, {', '.join(map(str, expected))}]"
          "). Resize the data or create the states with the data's image_shape (and a "
          "generator that produces it)."
      )
    if not jnp.issubdtype(real.dtype, jnp.floating):
      raise InputTypeError(f"batch['image'] must be floating point in [-1, 1], got {real.dtype}; "
                           "convert uint8 pixels with x / 127.5 - 1.")
    if real.shape[0] < 1:
      raise ConfigError("batch['image'] is empty (batch size 0).")
    if state_g.num_classes != state_d.num_classes:
      raise ConfigError(f"state_g has num_classes={state_g.num_classes} but state_d has "
                        f"{state_d.num_classes}; create both with one create_states call.")
    if state_g.num_classes:
      return real, check_labels(batch, real.shape[0], state_g.num_classes)
    return real, None

  # -- the step's own state -----------------------------------------------------------

  def step_state_init(self) -> tuple[dict[str, Any], dict[str, Any]]:
    """The entries the step keeps in ``(state_g, state_d)``'s ``step_state`` (initial)."""
    g, d = {}, {}
    if isinstance(self.augment, augment_lib.ADA):
      d.update(ada_p=jnp.float32(self.augment.p), ada_signs=jnp.float32(0.0),
               ada_count=jnp.int32(0))
    if self.lazy_r1:
      d.update({name: jnp.float32(0.0) for name, weight in
                (("r1", self.r1_weight), ("r2", self.r2_weight)) if weight > 0})
    if self.pl_weight > 0:
      g.update(pl_mean=jnp.float32(0.0), pl_penalty=jnp.float32(0.0))
    return g, d

  @property
  def lazy_r1(self) -> bool:
    """R1 and R2 (whichever is on) as their own D update every ``r1_every`` steps."""
    return (self.r1_weight > 0 or self.r2_weight > 0) and self.r1_every > 1

  def prepare_states(self, state_g: NetState, state_d: NetState) -> tuple[NetState, NetState]:
    """The states with the entries this step keeps (``step_state``) added, when missing.

    Call it once after ``create_states`` (a state that has them passes unchanged, so
    restored states may go through it too).
    """
    g, d = self.step_state_init()
    g = {k: v for k, v in g.items() if k not in state_g.step_state}
    d = {k: v for k, v in d.items() if k not in state_d.step_state}
    if g:
      state_g = state_g.with_step_state(**g)
    if d:
      state_d = state_d.with_step_state(**d)
    return state_g, state_d

  def _check_step_state(self, state_g: NetState, state_d: NetState) -> None:
    g, d = self.step_state_init()
    for name, state, needed in (("state_g", state_g, g), ("state_d", state_d, d)):
      missing = sorted(set(needed) - set(state.step_state))
      if missing:
        raise ConfigError(
            f"{name} has no {', '.join(missing)}: this step keeps them in the states "
            f"(model_state[{STEP_STATE!r}]). Add them once after create_states: "
            "state_g, state_d = train_step.prepare_states(state_g, state_d).")

  # -- the step -----------------------------------------------------------------------

  def lazy_at(self, step: int) -> tuple[bool, bool]:
    """``(R1 update, path-length update)`` at generator step ``step`` (a Python int)."""
    step = int(step)
    return (self.lazy_r1 and step % self.r1_every == 0,
            self.pl_weight > 0 and step % self.pl_every == 0)

  def at(self, step: int) -> TrainStep:
    """This step with the lazy regularisers' schedule fixed for generator step ``step``:
    it runs (or skips) them without ``lax.cond``. A loop that knows its step in Python
    compiles one such step per pattern; on a CPU that is ~20x faster for R1, whose second
    derivatives XLA:CPU runs slowly inside a conditional. The result is the same."""
    return dataclasses.replace(self, lazy=self.lazy_at(step))

  def _lazily(self, update, state, every: int, step, which: int):
    """``update(state)`` at steps 0, ``every``, ``2 every``, ...: decided by ``self.lazy``
    when it is fixed (``at``), else inside the step by ``lax.cond`` on ``step``."""
    if every == 1 or (self.lazy is not None and self.lazy[which]):
      return update(state)
    if self.lazy is not None:
      return state
    return jax.lax.cond(step % every == 0, update, lambda s: s, state)

  def __call__(self, state_g: NetState, state_d: NetState, batch: Mapping[str, jax.Array],
               key: jax.Array) -> tuple[NetState, NetState, Metrics]:
    real, real_labels = self._check_inputs(state_g, state_d, batch)
    if self.lazy is not None and not (isinstance(self.lazy, tuple) and len(self.lazy) == 2
                                      and all(isinstance(b, bool) for b in self.lazy)):
      raise ConfigError(f"lazy must be None or a pair of Python bools (train_step.at(step) "
                        f"sets it), got {self.lazy!r}.")
    self._check_step_state(state_g, state_d)
    key = jax.random.fold_in(as_key(key), state_g.step)
    k_critic, k_gen = jax.random.split(key)
    if self.transition is not None and not state_g.num_classes:
      raise ConfigError("transition fades a conditional pair's class in, but the states are "
                        "unconditional: create them with num_classes=C, or leave transition "
                        "unset.")
    devices = 1 if self.axis_name is None else jax.lax.psum(1, self.axis_name)
    images = state_g.step.astype(jnp.float32) * (real.shape[0] * devices)
    sched = self.schedules or optim.StepSchedules()
    p = state_d.step_state["ada_p"] if self._ada else None
    if sched.augment_p is not None:
      p = jnp.asarray(sched.augment_p(images), jnp.float32)
    b = _Batch(real, real_labels, real.shape[0], state_g.input_shape[0], state_g.num_classes,
               device_offset(self.axis_name, real.shape[0]), p,
               None if self.transition is None
               else transition_weight(self.transition, state_g.step),
               1.0 if sched.penalty_scale is None else sched.penalty_scale(images), images)

    if self.n_critic == 1:
      state_d, d_metrics = self._critic_update(b, state_g, k_critic, state_d, 0)
    else:
      update = functools.partial(self._critic_update, b, state_g, k_critic)
      state_d, d_metrics = jax.lax.scan(update, state_d, jnp.arange(self.n_critic))
      d_metrics = jax.tree.map(lambda m: jnp.mean(m, axis=0), d_metrics)
    if self.lazy_r1:
      state_d = self._lazily(functools.partial(self._lazy_r1, b, k_critic, state_g), state_d,
                             self.r1_every, state_g.step, 0)
      d_metrics.update({name: state_d.step_state[name] for name in ("r1", "r2")
                        if name in state_d.step_state})

    old_step = state_g.step
    state_g, g_metrics = self._generator_update(b, state_d, k_gen, state_g)
    if self.pl_weight > 0:
      pl = functools.partial(self._path_length, b.offset, b.size,
                             jax.random.fold_in(k_gen, 1), transition=b.class_weight)
      state_g = self._lazily(pl, state_g, self.pl_every, old_step, 1)
      g_metrics["pl_penalty"] = state_g.step_state["pl_penalty"]
      g_metrics["pl_mean"] = state_g.step_state["pl_mean"]
    state_g = state_g.replace(ema_params=self._ema(state_g.ema_params, state_g.params, old_step,
                                                   b.images, b.size * devices))

    metrics = {**d_metrics, **g_metrics}
    if self._ada:
      state_d = self._adapt(state_d, metrics.pop("real_signs"), old_step, b.size)
      metrics["ada_p"] = b.p
    if b.num_classes:
      bad = (real_labels < 0) | (real_labels >= b.num_classes)
      metrics["labels_out_of_range"] = jnp.mean(bad.astype(jnp.float32))
    return state_g, state_d, self._pmean(metrics)

  @property
  def _ada(self) -> bool:
    return isinstance(self.augment, augment_lib.ADA)

  def _aug(self, b: _Batch, x: jax.Array, key: jax.Array) -> jax.Array:
    """What D sees: the augmented images (the same draws on any device count)."""
    return x if self.augment is None else self.augment(key, x, b.p, b.offset)

  def _fake_labels(self, b: _Batch, key: jax.Array):
    if not b.num_classes:
      return None
    if self.fake_labels == "real":
      return b.labels
    return sample_labels(key, b.size, b.num_classes, b.offset)

  def _critic_update(self, b: _Batch, state_g: NetState, k_critic: jax.Array,
                     state_d: NetState, i) -> tuple[NetState, Metrics]:
    """Critic update ``i`` of the step: fresh fakes against the same real batch."""
    k_z, k_drop, k_eps, k_drop_g, k_aug = jax.random.split(jax.random.fold_in(k_critic, i), 5)
    z = sample_latent(k_z, b.size, b.latent_dim, b.offset)
    y_fake = self._fake_labels(b, jax.random.fold_in(k_z, 1))
    fake = jax.lax.stop_gradient(
        self._generate(state_g, state_g.params, z, y_fake, k_drop_g, b.offset, b.class_weight)[0])
    objective = functools.partial(self._d_objective, b, state_d.module_state, fake, y_fake,
                                  k_drop, k_eps, k_aug)
    grads, (model_state, metrics) = jax.grad(objective, has_aux=True)(state_d.params)
    grads = self._pmean(grads)  # see pmean_floats: correct with and without vma tracking
    metrics["d_grad_norm"] = global_norm(grads)
    state_d = state_d.apply_gradients(grads, self._pmean(model_state))
    if self.clip is not None:
      state_d = state_d.replace(params=losses_lib.clip_weights(state_d.params, self.clip))
    return state_d, metrics

  def _d_objective(self, b: _Batch, ms, fake, y_fake, k_drop, k_eps, k_aug, params):
    """D's loss (its mean over the devices) with its class loss and penalties."""
    k_real, k_fake = jax.random.fold_in(k_aug, 0), jax.random.fold_in(k_aug, 1)
    real_logits, real_classes, ms = self._discriminate(
        params, ms, self._aug(b, b.real, k_real), b.labels, jax.random.fold_in(k_drop, 0),
        b.num_classes, b.class_weight)
    fake_logits, _, ms = self._discriminate(
        params, ms, self._aug(b, fake, k_fake), y_fake, jax.random.fold_in(k_drop, 1),
        b.num_classes, b.class_weight)
    d_loss = self._weighed(self.loss.discriminator, b.class_weight, real_logits, fake_logits)
    real_logits = self._unconditional(real_logits, b.class_weight)
    fake_logits = self._unconditional(fake_logits, b.class_weight)
    metrics = {"d_loss": d_loss, "real_logits": jnp.mean(real_logits),
               "fake_logits": jnp.mean(fake_logits)}
    if self._ada:
      # ADA's overfitting heuristic r_t = E[sign(D(augmented real))].
      metrics["real_signs"] = jnp.mean(jnp.sign(real_logits))
    total = d_loss
    if real_classes is not None and self.ac_weight > 0:
      # ACGAN's class loss on real images only (StudioGAN's ACGAN-Mod; the original
      # also trains D to classify fakes, which the references found hurts).
      ac = _class_loss(real_classes, b.labels)
      total = total + self.ac_weight * ac
      metrics["d_ac_loss"] = ac
    # Penalties see D with its state after this update's forward passes; their own
    # passes do not change it. A conditional D is penalised under the real labels;
    # with augmentation, through the reals' augmentation (the penalty is taken with
    # respect to the images before it, as StyleGAN2-ADA does).
    d_fn = lambda x: self._unconditional(self._discriminate(  # noqa: E731
        params, ms, self._aug(b, x, k_real), b.labels, jax.random.fold_in(k_drop, 2),
        b.num_classes, b.class_weight)[0], b.class_weight)
    if self.gp_weight > 0:
      eps = example_uniform(k_eps, b.size, (), b.offset)
      gp = losses_lib.gradient_penalty(d_fn, b.real, fake, eps)
      total = total + self.gp_weight * gp
      metrics["gp"] = gp
    if self.r1_weight > 0 and not self.lazy_r1:
      r1 = losses_lib.r1_penalty(d_fn, b.real)
      total = total + 0.5 * self.r1_weight * b.penalty_scale * r1
      metrics["r1"] = r1
    if self.r2_weight > 0 and not self.lazy_r1:
      # R2: the same penalty on the fakes, under their labels and through their
      # augmentation (R3GAN's, with respect to the images before it).
      fake_fn = lambda x: self._unconditional(self._discriminate(  # noqa: E731
          params, ms, self._aug(b, x, k_fake), y_fake, jax.random.fold_in(k_drop, 3),
          b.num_classes, b.class_weight)[0], b.class_weight)
      r2 = losses_lib.r2_penalty(fake_fn, fake)
      total = total + 0.5 * self.r2_weight * b.penalty_scale * r2
      metrics["r2"] = r2
    return self._pmean(total), (ms, metrics)

  def _generator_update(self, b: _Batch, state_d: NetState, k_gen: jax.Array,
                        state_g: NetState) -> tuple[NetState, Metrics]:
    """G's update against the updated D, on fresh latents."""
    k_z, k_drop, k_drop_g, k_aug = jax.random.split(k_gen, 4)
    z = sample_latent(k_z, b.size, b.latent_dim, b.offset)
    y_fake = self._fake_labels(b, jax.random.fold_in(k_z, 1))

    pair = ()
    if self.loss.pairs:
      # A relativistic G compares each fake with the real beside it (R3GAN's G step runs
      # D on the reals too); no gradient reaches D or G through them.
      pair = (jax.lax.stop_gradient(self._discriminate(
          state_d.params, state_d.module_state, self._aug(b, b.real, jax.random.fold_in(
              k_aug, 1)), b.labels, jax.random.fold_in(k_drop, 1), b.num_classes,
          b.class_weight)[0]),)

    def objective(params):
      fake, model_state = self._generate(state_g, params, z, y_fake, k_drop_g, b.offset,
                                         b.class_weight)
      logits, classes, _ = self._discriminate(state_d.params, state_d.module_state,
                                              self._aug(b, fake, k_aug), y_fake, k_drop,
                                              b.num_classes, b.class_weight)
      g_loss = self._weighed(self.loss.generator, b.class_weight, logits, *pair)
      aux = {"g_loss": g_loss}
      total = g_loss
      if classes is not None and self.ac_weight > 0:
        aux["g_ac_loss"] = _class_loss(classes, y_fake)
        total = total + self.ac_weight * aux["g_ac_loss"]
      return self._pmean(total), (aux, model_state)

    grads, (metrics, model_state) = jax.grad(objective, has_aux=True)(state_g.params)
    grads = self._pmean(grads)
    metrics["g_grad_norm"] = global_norm(grads)
    return state_g.apply_gradients(grads, self._pmean(model_state)), metrics

  def _path_length(self, offset, batch_size, key, state_g: NetState,
                   transition=None) -> NetState:
    """StyleGAN2's path-length regularisation, its own G update (not counted in
    ``state_g.step``, the iteration counter), the penalty scaled by ``pl_every``.

    On ``batch // pl_batch_shrink`` fresh latents: ``L = sqrt(mean_layers(sum_w (d sum(img
    * y) / d ws)^2))`` with ``y ~ N(0, 1) / sqrt(H W)``; ``pl_mean <- lerp(pl_mean,
    mean(L), pl_decay)`` (over the global batch), penalty ``mean((L - pl_mean)^2)``.
    A conditional G's classes are drawn uniformly.
    """
    if batch_size % self.pl_batch_shrink:
      raise ConfigError(f"The path-length batch is the (per-device) batch {batch_size} over "
                        f"pl_batch_shrink={self.pl_batch_shrink}, which must divide it.")
    local = batch_size // self.pl_batch_shrink
    pl_offset = offset // self.pl_batch_shrink
    k_z, k_y, k_noise, k_drop, k_mix = jax.random.split(key, 5)
    z = sample_latent(k_z, local, state_g.input_shape[0], pl_offset)
    y = (sample_labels(k_y, local, state_g.num_classes, pl_offset) if state_g.num_classes
         else None)
    mix = self._mixing(k_mix, local, z.shape[1], pl_offset)
    pl_mean = state_g.step_state["pl_mean"]

    def objective(params):
      variables = state_g.variables(params)
      with layers.device_independent(self.axis_name):
        ws = self.G.apply(variables, z, *label_args(y), train=True, method="mapping",
                          mutable=list(state_g.module_state), **mix,
                          **_transition_arg(transition))[0]
        synth = lambda ws: self.G.apply(  # noqa: E731
            variables, ws, train=True, method="synthesis", rngs=self._rngs(k_drop),
            mutable=list(state_g.module_state))[0]
        img = synth(ws)
        noise = example_normal(k_noise, local, img.shape[1:], pl_offset) / np.sqrt(
            img.shape[1] * img.shape[2])
        grads = jax.grad(lambda ws: jnp.sum(synth(ws) * noise))(ws)
      lengths = jnp.sqrt(jnp.mean(jnp.sum(jnp.square(grads), axis=2), axis=1))
      new_mean = pl_mean + self.pl_decay * (self._pmean(jnp.mean(lengths)) - pl_mean)
      penalty = jnp.mean(jnp.square(lengths - new_mean))
      return (self._pmean(penalty * self.pl_weight * self.pl_every),
              (jax.lax.stop_gradient(new_mean), penalty))

    grads, (new_mean, penalty) = jax.grad(objective, has_aux=True)(state_g.params)
    new = state_g.apply_gradients(self._pmean(grads)).replace(step=state_g.step)
    return new.with_step_state(pl_mean=new_mean, pl_penalty=self._pmean(penalty))

  def _lazy_r1(self, b: _Batch, key: jax.Array, state_g: NetState,
               state_d: NetState) -> NetState:
    """StyleGAN2's lazy R1 (and R2 on fresh fakes, when on): its own D update, the
    penalties scaled by the interval."""
    k_aug, k_drop = jax.random.split(jax.random.fold_in(key, self.n_critic))
    fake = y_fake = None
    if self.r2_weight > 0:
      k_z, k_drop_g = jax.random.split(jax.random.fold_in(key, self.n_critic + 1))
      z = sample_latent(k_z, b.size, b.latent_dim, b.offset)
      y_fake = self._fake_labels(b, jax.random.fold_in(k_z, 1))
      fake = jax.lax.stop_gradient(self._generate(state_g, state_g.params, z, y_fake,
                                                  k_drop_g, b.offset, b.class_weight)[0])

    def objective(params):
      # As for the penalties in the main update, these passes leave D's model state alone.
      def d_fn(x, y, k_a, k_d):
        return self._unconditional(self._discriminate(
            params, state_d.module_state, self._aug(b, x, k_a), y, k_d, b.num_classes,
            b.class_weight)[0], b.class_weight)

      total, penalties = 0.0, {}
      if self.r1_weight > 0:
        penalties["r1"] = losses_lib.r1_penalty(
            lambda x: d_fn(x, b.labels, k_aug, k_drop), b.real)
        total = total + 0.5 * self.r1_weight * penalties["r1"]
      if self.r2_weight > 0:
        penalties["r2"] = losses_lib.r2_penalty(lambda x: d_fn(
            x, y_fake, jax.random.fold_in(k_aug, 1), jax.random.fold_in(k_drop, 1)), fake)
        total = total + 0.5 * self.r2_weight * penalties["r2"]
      return self._pmean(self.r1_every * b.penalty_scale * total), penalties

    grads, penalties = jax.grad(objective, has_aux=True)(state_d.params)
    state_d = state_d.apply_gradients(self._pmean(grads))
    return state_d.with_step_state(**self._pmean(penalties))

  def _adapt(self, state_d: NetState, signs, step, batch_size) -> NetState:
    """ADA: accumulate r_t; every ``interval`` steps move ``p`` toward the target."""
    ada: augment_lib.ADA = self.augment
    ss = state_d.step_state
    total = ss["ada_signs"] + self._pmean(signs)
    count = ss["ada_count"] + 1
    if ada.target is None:
      return state_d.with_step_state(ada_signs=total, ada_count=count)
    devices = 1 if self.axis_name is None else jax.lax.psum(1, self.axis_name)
    now = step % ada.interval == 0  # after the reference's batch 0, 4, 8, ...
    p = jnp.where(now, augment_lib.ada_adjust(ss["ada_p"], total / count,
                                              batch_size * devices * ada.interval,
                                              ada.target, ada.kimg), ss["ada_p"])
    return state_d.with_step_state(ada_p=p, ada_signs=jnp.where(now, 0.0, total),
                                   ada_count=jnp.where(now, 0, count))

  def _ema(self, ema, params, step, images, batch_images):
    if self.schedules is not None and self.schedules.ema_half_life is not None:
      # R3GAN: a half-life in images that grows from 0 (the average is the parameters).
      decay = optim.ema_decay(self.schedules.ema_half_life(images), batch_images)
      return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema, params)
    if not self.ema_decay:
      return params
    # Warm-up as in tf.train.ExponentialMovingAverage(num_updates=step): early on the
    # average follows the parameters closely instead of staying near the initialisation.
    step = step.astype(jnp.float32)
    decay = jnp.minimum(self.ema_decay, (1.0 + step) / (10.0 + step))
    return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema, params)


# Long only by its docstring: the reference of every option of the noise-to-image step.
def make_train_step(G: nn.Module, D: nn.Module, loss: str | losses_lib.Loss = "non_saturating",
                    *, n_critic: int = 1, gp_weight: float = 0.0, r1_weight: float = 0.0,
                    clip: float | None = None, ema_decay: float | None = 0.999,
                    axis_name: str | None = None, fake_labels: str = "uniform",
                    ac_weight: float = 1.0,
                    augment: str | augment_lib.Augmentation | None = None,
                    r1_every: int = 1, style_mixing: float = 0.0, pl_weight: float = 0.0,
                    pl_every: int = 4, pl_decay: float = 0.01, pl_batch_shrink: int = 2,
                    transition: tuple[int, int] | None = None,
                    r2_weight: float = 0.0,
                    schedules: optim.StepSchedules | None = None) -> TrainStep:
  """Builds the pure GAN training step for a generator/discriminator pair.

  Conditional pairs (states from ``create_states(..., num_classes=C)``): D trains on the
  real batch with ``batch["label"]`` (int32 ``[B]``), and each fake's class is drawn
  uniformly per example from the step's key, as the latents are (independent of the
  device count); ``fake_labels="real"`` reuses the real batch's labels instead (TF-GAN's
  examples). G's BatchNorm statistics and spectral-norm vectors advance in the generator
  update only (StudioGAN's order).

  With ``augment`` D sees only augmented images: the reals and the fakes in its update,
  the fakes in G's (whose gradients pass through the augmentation), and the penalties are
  taken through it. ADA keeps ``p`` in ``state_d``; a step that keeps state of its own
  (ADA, lazy R1) needs it added once: ``train_step.prepare_states(state_g, state_d)``.

  Args:
    G: generator module, ``G(z, train=...) -> images`` (conditional: ``G(z, y, train=...)``).
    D: discriminator module, ``D(images, train=...) -> logits [B] or [B, 1]``
      (conditional: ``D(images, y, train=...)``, which may return ``(logits, class_logits)``
      for an auxiliary classifier). It may use dropout (rng stream ``"dropout"``) and
      mutable collections (BatchNorm, spectral norm).
    loss: a name from ``jaxgan.losses.names()`` or a ``jaxgan.losses.Loss``.
    n_critic: discriminator updates per generator update (WGAN: 5), each with fresh
      latent vectors and the same real batch.
    gp_weight: weight of the WGAN-GP gradient penalty (Gulrajani et al. use 10); 0: off.
    r1_weight: gamma of the R1 penalty, added as ``gamma / 2 * R1``; 0: off.
    r2_weight: gamma of the R2 penalty (R1 on the fakes, under their labels and through
      their augmentation), added as ``gamma / 2 * R2``; 0: off. R3GAN trains with R1 and
      R2 of the same gamma and the ``relativistic`` loss. ``r1_every`` applies to both.
    r1_every: 1 adds R1 to every D update's loss; ``k > 1`` is StyleGAN2's lazy
      regularisation: every ``k``-th step (generator steps 0, k, 2k, ...) ends with an
      extra D update on ``k * gamma / 2 * R1`` alone (give D's Adam the reference's
      correction: ``jaxgan.lazy_adam``).
    clip: WGAN weight clipping bound for D's parameters after each update; None: off.
    ema_decay: decay of the generator's parameter average ``state_g.ema_params``, with a
      warm-up ``min(decay, (1 + t) / (10 + t))``; None or 0 keeps it equal to the params.
    axis_name: name of the mapped device axis (pmap / shard_map); when set, gradients,
      model state and metrics are averaged over it and each device draws the noise of
      its own examples. The models follow it (``jaxgan.models.layers.device_independent``):
      BatchNorm layers left without an ``axis_name`` average their statistics over it and
      dropout masks are drawn per global example, so the result depends on the global
      batch and the key, not on the device count.
    fake_labels: conditional pairs: ``"uniform"`` (drawn per example, the SNGAN/BigGAN
      references' choice) or ``"real"`` (the real batch's labels).
    ac_weight: weight of the ACGAN class losses when D returns class logits: cross-entropy
      on the real images' labels in D's loss and on the fakes' labels in G's (StudioGAN's
      ACGAN-Mod: D is not trained to classify fakes).
    augment: None, a ``jaxgan.augment.DiffAugment`` or ``ADA``, or a name for
      ``jaxgan.augment.parse`` (``"diffaugment"``, ``"ada"``, ``"ada:0.3"``, ...).
    style_mixing: a style-based G (``models.StyleGAN2Generator``): the probability that a
      batch's fakes mix two latents' styles (StyleGAN2: 0.9; its ``cifar`` config: 0).
    pl_weight: a style-based G: weight of the path-length penalty (StyleGAN2: 2; 0: off),
      an extra G update every ``pl_every`` steps (generator steps 0, k, 2k, ...) with
      ``pl_mean`` kept in ``state_g``; ``pl_decay`` (0.01) and ``pl_batch_shrink`` (2) as
      the reference's.
    transition: a conditional StyleGAN2 pair (D with ``unconditional_head=True``):
      ``(start, end)`` in steps, the transitional training of Shahbazi et al. ("Collapse by
      Conditioning", ICLR 2022): the class's weight (``transition_weight``: 0 until
      ``start``, rising linearly to 1 at ``end``) scales the class embedding in G's mapping
      and the loss on D's projection, beside the loss on D's unconditional output, which
      stays (R1, ADA and the logit metrics see that output). The pair learns the data's
      shared shapes before the class can pull each class's samples onto one image.
      None: conditional from the start.
    schedules: ``jaxgan.optim.StepSchedules``: settings that follow the images seen
      (``state_g.step`` times the global batch), R3GAN's: a scale of the R1/R2 gammas, the
      G average's half-life in images (replacing ``ema_decay``), a fixed-``p`` ADA's
      probability. Functions of the step counter only: a resumed run continues them.

  Returns:
    The step, a frozen and callable ``TrainStep`` whose fields are these settings:
    ``train_step(state_g, state_d, batch, key) -> (state_g, state_d, metrics)``, where
    ``batch = {"image": float32 [B, ...] in [-1, 1], ...}`` and ``metrics`` holds scalar
    ``d_loss``, ``g_loss``, ``real_logits`` and ``fake_logits`` (means),
    ``d_grad_norm``, ``g_grad_norm``, and ``gp`` / ``r1`` / ``r2`` (unweighted) when enabled;
    conditional pairs add ``labels_out_of_range`` (the fraction of the real batch's labels
    outside the classes: it must stay 0) and, with an auxiliary classifier, ``d_ac_loss``
    and ``g_ac_loss``; ADA adds ``ada_p`` (the probability this step used); lazy R1
    reports the last computed ``r1``. D metrics are averaged over the ``n_critic`` updates.
    ``train_step.prepare_states`` adds the step's own state (see above).

    Lazy regularisation decides inside the step (``lax.cond`` on ``state_g.step``): one
    pure function for ``jit``, ``scan``, ``pmap``. On a CPU, XLA runs R1's second
    derivatives inside a conditional ~20x slower than outside one, so a loop that knows
    its step in Python may call ``train_step.at(step)`` instead, the step with that
    step's schedule fixed, and compile one per pattern: the same result without the
    conditional (the experiments' loop does).
  """
  check_options(n_critic, gp_weight, r1_weight, clip, ema_decay, r1_every, r2_weight)
  if fake_labels not in FAKE_LABELS:
    raise ConfigError(f"fake_labels must be one of {FAKE_LABELS}, got {fake_labels!r}.")
  if not isinstance(ac_weight, int | float) or ac_weight < 0:
    raise ConfigError(f"ac_weight must be a number >= 0, got {ac_weight!r}.")
  _check_style_options(G, style_mixing, pl_weight, pl_every, pl_decay, pl_batch_shrink)
  transition = _check_transition(G, D, transition)
  if schedules is not None and not isinstance(schedules, optim.StepSchedules):
    raise InputTypeError(f"schedules must be a jaxgan.optim.StepSchedules, got "
                         f"{type(schedules).__name__}.")
  aug = augment_lib.parse(augment)
  if schedules is not None and schedules.augment_p is not None and not (
      isinstance(aug, augment_lib.ADA) and aug.target is None):
    raise ConfigError("A schedule of the augmentation probability drives a fixed-p ADA: "
                      "set augment='ada:0' (its p is then the schedule's).")
  return TrainStep(G=G, D=D, loss=losses_lib.get(loss), n_critic=n_critic,
                     gp_weight=float(gp_weight), r1_weight=float(r1_weight),
                     clip=None if clip is None else float(clip),
                     ema_decay=None if ema_decay is None else float(ema_decay),
                     axis_name=axis_name, fake_labels=fake_labels, ac_weight=float(ac_weight),
                     augment=augment_lib.parse(augment), r1_every=r1_every,
                     style_mixing=float(style_mixing), pl_weight=float(pl_weight),
                     pl_every=pl_every, pl_decay=float(pl_decay),
                     pl_batch_shrink=pl_batch_shrink, transition=transition,
                     r2_weight=float(r2_weight), schedules=schedules)


def _generate(G, state_g, key, num, use_ema, offset, labels, truncation_psi=1.0):
  z = sample_latent(key, num, state_g.input_shape[0], offset)
  params = state_g.ema_params if use_ema and state_g.ema_params is not None else state_g.params
  if state_g.num_classes and labels is None:
    labels = sample_labels(jax.random.fold_in(key, 1), num, state_g.num_classes, offset)
  kw = {} if truncation_psi == 1.0 else {"truncation_psi": truncation_psi}
  return G.apply(state_g.variables(params), z, *label_args(labels), train=False, **kw)


@functools.cache
def _generate_jit():
  # Built on first use, not at import: the CPU options probe the backend by compiling.
  return jax.jit(_generate, static_argnames=("G", "num", "use_ema", "truncation_psi"),
                 compiler_options=cpu.compiler_options())


def generate(G: nn.Module, state_g: NetState, key: jax.Array, num: int, *,
             labels: jax.Array | None = None, use_ema: bool = True, offset: int = 0,
             truncation_psi: float = 1.0) -> jax.Array:
  """Samples ``num`` images from the generator in inference mode.

  Args:
    G: the generator module the state was created with.
    state_g: its state.
    key: PRNG key; the same key gives the same images, and the first ``n`` images of a
      larger draw equal a draw of ``n``.
    num: number of images.
    labels: a conditional generator's class ids ``[num]``; None draws them uniformly per
      image, as the train step draws the fakes' (from ``key`` and the image's index, so a
      chunked draw equals one draw). The latents are the same with or without labels.
    use_ema: use the moving average of the parameters (the usual choice for evaluation).
    offset: index of the first image in the key's sequence, to draw a large set in chunks
      (``offset=0, num=1000`` then ``offset=1000, num=1000`` equals one draw of 2000).
    truncation_psi: a style-based generator's truncation ``w_avg + psi (w - w_avg)``:
      1 plain, 0 the image of ``w_avg`` for every latent, 0.5-0.7 the usual trade of
      variety for quality.

  Returns:
    ``[num, *image_shape]``.
  """
  num = int(num)
  if labels is not None:
    if not state_g.num_classes:
      raise ConfigError("labels were given, but the generator is unconditional "
                        "(num_classes=0).")
    labels = check_labels({"label": labels}, num, state_g.num_classes)
  if not isinstance(truncation_psi, int | float) or isinstance(truncation_psi, bool):
    raise ConfigError(f"truncation_psi must be a number (1: off), got {truncation_psi!r}.")
  if truncation_psi != 1 and not style_based(G):
    raise ConfigError(f"truncation_psi needs a style-based generator "
                      f"(jaxgan.models.StyleGAN2Generator); {type(G).__name__} has no w_avg. "
                      "Leave it at 1.")
  return _generate_jit()(G, state_g, as_key(key), num, bool(use_ema), jnp.int32(offset),
                         labels, float(truncation_psi))

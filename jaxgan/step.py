"""``make_train_step``: the pure per-device GAN training step.

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
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan import cpu
from jaxgan import losses as losses_lib
from jaxgan.errors import ConfigError, InputTypeError
from jaxgan.models import layers
from jaxgan.rng import example_normal, example_uniform
from jaxgan.state import NetState, _as_key, _shape_str, logits_shape_error

Metrics = dict[str, jax.Array]
StepFn = Callable[..., tuple[NetState, NetState, Metrics]]


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


def _global_norm(tree) -> jax.Array:
  # optax.global_norm is deprecated and optax.tree.norm is newer than optax 0.2.4.
  return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree)))


def _check_options(n_critic, gp_weight, r1_weight, clip, ema_decay) -> None:
  if not isinstance(n_critic, int) or isinstance(n_critic, bool) or n_critic < 1:
    raise ConfigError(f"n_critic must be an int >= 1 (discriminator updates per generator "
                      f"update), got {n_critic!r}.")
  for name, value in (("gp_weight", gp_weight), ("r1_weight", r1_weight)):
    if not isinstance(value, int | float) or value < 0:
      raise ConfigError(f"{name} must be a number >= 0 (0 disables it), got {value!r}.")
  if clip is not None and not (isinstance(clip, int | float) and clip > 0):
    raise ConfigError(f"clip must be a positive bound (WGAN used 0.01) or None, got {clip!r}.")
  if ema_decay is not None and not (isinstance(ema_decay, int | float) and 0 <= ema_decay < 1):
    raise ConfigError(f"ema_decay must be in [0, 1) (e.g. 0.999) or None, got {ema_decay!r}.")


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

  # -- helpers, all pure ------------------------------------------------------------

  def _pmean(self, tree):
    """Mean over the device axis of every floating-point leaf (others pass through).

    Gradients are reduced as ``pmean(grad(pmean(local_loss)))``, which is the global-batch
    gradient under every way of mapping the step: under ``shard_map`` with
    ``check_vma=True`` autodiff already reduces the gradient of a replicated parameter
    over the axis (the inner pmean makes that reduction a mean, and the outer pmean of
    an axis-invariant value is the value); under ``pmap``, ``vmap`` and ``shard_map``
    with ``check_vma=False`` the inner pmean transposes to the local gradient and the
    outer pmean averages it. (A plain ``pmean(grad(local_loss))`` is off by the device
    count under ``check_vma=True``.)
    """
    if self.axis_name is None:
      return tree
    return jax.tree.map(
        lambda x: jax.lax.pmean(x, self.axis_name) if jnp.issubdtype(x.dtype, jnp.floating)
        else x, tree)

  def _rngs(self, rng: jax.Array) -> dict[str, jax.Array]:
    """The rng streams a module may use.

    ``per_example`` is the same on every device, for layers that index their randomness
    by global example, which makes them device-count independent: ``ExampleDropout``, and
    ``nn.Dropout`` inside the step (``jaxgan.models.layers.device_independent``).
    ``dropout`` differs per device, for a module's other uses of that stream.
    """
    device = 0 if self.axis_name is None else jax.lax.axis_index(self.axis_name)
    return {"dropout": jax.random.fold_in(rng, device),
            "per_example": jax.random.fold_in(rng, 2**31 - 1)}

  def _generate(self, state_g: NetState, params, z: jax.Array, rng: jax.Array):
    """Train-mode forward of G; returns (images, updated model state)."""
    with layers.device_independent(self.axis_name):
      out, model_state = self.G.apply(state_g.variables(params), z, train=True,
                                      rngs=self._rngs(rng), mutable=list(state_g.model_state))
    return out, model_state

  def _discriminate(self, params, model_state, x: jax.Array, rng: jax.Array):
    """Train-mode forward of D; returns (logits [B], updated model state)."""
    with layers.device_independent(self.axis_name):
      out, model_state = self.D.apply({"params": params, **model_state}, x, train=True,
                                      rngs=self._rngs(rng), mutable=list(model_state))
    err = logits_shape_error(getattr(out, "shape", ()), x.shape[0])
    if err is not None:
      raise err
    return jnp.reshape(out, (x.shape[0],)), model_state

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
          f"batch['image'] has shape {_shape_str(real.shape)}, but the models were built for "
          f"images of shape {_shape_str(expected)} (a batch [B, {', '.join(map(str, expected))}]"
          "). Resize the data or create the states with the data's image_shape (and a "
          "generator that produces it)."
      )
    if not jnp.issubdtype(real.dtype, jnp.floating):
      raise InputTypeError(f"batch['image'] must be floating point in [-1, 1], got {real.dtype}; "
                           "convert uint8 pixels with x / 127.5 - 1.")
    if real.shape[0] < 1:
      raise ConfigError("batch['image'] is empty (batch size 0).")
    return real

  # -- the step -----------------------------------------------------------------------

  def __call__(self, state_g: NetState, state_d: NetState, batch: Mapping[str, jax.Array],
               key: jax.Array) -> tuple[NetState, NetState, Metrics]:
    real = self._check_inputs(state_g, state_d, batch)
    batch_size = real.shape[0]
    latent_dim = state_g.input_shape[0]
    key = jax.random.fold_in(_as_key(key), state_g.step)
    k_critic, k_gen = jax.random.split(key)
    offset = 0 if self.axis_name is None else jax.lax.axis_index(self.axis_name) * batch_size

    def critic_update(state_d: NetState, i) -> tuple[NetState, Metrics]:
      k_z, k_drop, k_eps, k_drop_g = jax.random.split(jax.random.fold_in(k_critic, i), 4)
      z = sample_latent(k_z, batch_size, latent_dim, offset)
      fake = jax.lax.stop_gradient(self._generate(state_g, state_g.params, z, k_drop_g)[0])

      def d_objective(params):
        ms = state_d.model_state
        real_logits, ms = self._discriminate(params, ms, real,
                                             jax.random.fold_in(k_drop, 0))
        fake_logits, ms = self._discriminate(params, ms, fake,
                                             jax.random.fold_in(k_drop, 1))
        d_loss = self.loss.discriminator(real_logits, fake_logits)
        metrics = {"d_loss": d_loss, "real_logits": jnp.mean(real_logits),
                   "fake_logits": jnp.mean(fake_logits)}
        total = d_loss
        # Penalties see D with its state after this update's forward passes; their own
        # passes do not change it.
        d_fn = lambda x: self._discriminate(params, ms, x,  # noqa: E731
                                            jax.random.fold_in(k_drop, 2))[0]
        if self.gp_weight > 0:
          eps = example_uniform(k_eps, batch_size, (), offset)
          gp = losses_lib.gradient_penalty(d_fn, real, fake, eps)
          total = total + self.gp_weight * gp
          metrics["gp"] = gp
        if self.r1_weight > 0:
          r1 = losses_lib.r1_penalty(d_fn, real)
          total = total + 0.5 * self.r1_weight * r1
          metrics["r1"] = r1
        return self._pmean(total), (ms, metrics)

      grads, (model_state, metrics) = jax.grad(d_objective, has_aux=True)(state_d.params)
      grads = self._pmean(grads)  # see _pmean: correct with and without vma tracking
      metrics["d_grad_norm"] = _global_norm(grads)
      state_d = state_d.apply_gradients(grads, self._pmean(model_state))
      if self.clip is not None:
        state_d = state_d.replace(params=losses_lib.clip_weights(state_d.params, self.clip))
      return state_d, metrics

    if self.n_critic == 1:
      state_d, d_metrics = critic_update(state_d, 0)
    else:
      state_d, d_metrics = jax.lax.scan(critic_update, state_d, jnp.arange(self.n_critic))
      d_metrics = jax.tree.map(lambda m: jnp.mean(m, axis=0), d_metrics)

    k_z, k_drop, k_drop_g = jax.random.split(k_gen, 3)
    z = sample_latent(k_z, batch_size, latent_dim, offset)

    def g_objective(params):
      fake, model_state = self._generate(state_g, params, z, k_drop_g)
      logits, _ = self._discriminate(state_d.params, state_d.model_state, fake, k_drop)
      g_loss = self.loss.generator(logits)
      return self._pmean(g_loss), (g_loss, model_state)

    grads, (g_loss, model_state) = jax.grad(g_objective, has_aux=True)(state_g.params)
    grads = self._pmean(grads)
    old_step = state_g.step
    state_g = state_g.apply_gradients(grads, self._pmean(model_state))
    state_g = state_g.replace(ema_params=self._ema(state_g.ema_params, state_g.params, old_step))

    metrics = {**d_metrics, "g_loss": g_loss, "g_grad_norm": _global_norm(grads)}
    return state_g, state_d, self._pmean(metrics)

  def _ema(self, ema, params, step):
    if not self.ema_decay:
      return params
    # Warm-up as in tf.train.ExponentialMovingAverage(num_updates=step): early on the
    # average follows the parameters closely instead of staying near the initialisation.
    step = step.astype(jnp.float32)
    decay = jnp.minimum(self.ema_decay, (1.0 + step) / (10.0 + step))
    return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema, params)


def make_train_step(G: nn.Module, D: nn.Module, loss: str | losses_lib.Loss = "non_saturating",
                    *, n_critic: int = 1, gp_weight: float = 0.0, r1_weight: float = 0.0,
                    clip: float | None = None, ema_decay: float | None = 0.999,
                    axis_name: str | None = None) -> StepFn:
  """Builds the pure GAN training step for a generator/discriminator pair.

  Args:
    G: generator module, ``G(z, train=...) -> images``.
    D: discriminator module, ``D(images, train=...) -> logits [B] or [B, 1]``. It may use
      dropout (rng stream ``"dropout"``) and mutable collections (BatchNorm, spectral norm).
    loss: a name from ``jaxgan.losses.names()`` or a ``jaxgan.losses.Loss``.
    n_critic: discriminator updates per generator update (WGAN: 5), each with fresh
      latent vectors and the same real batch.
    gp_weight: weight of the WGAN-GP gradient penalty (Gulrajani et al. use 10); 0: off.
    r1_weight: gamma of the R1 penalty, added as ``gamma / 2 * R1``; 0: off.
    clip: WGAN weight clipping bound for D's parameters after each update; None: off.
    ema_decay: decay of the generator's parameter average ``state_g.ema_params``, with a
      warm-up ``min(decay, (1 + t) / (10 + t))``; None or 0 keeps it equal to the params.
    axis_name: name of the mapped device axis (pmap / shard_map); when set, gradients,
      model state and metrics are averaged over it and each device draws the noise of
      its own examples. The models follow it (``jaxgan.models.layers.device_independent``):
      BatchNorm layers left without an ``axis_name`` average their statistics over it and
      dropout masks are drawn per global example, so the result depends on the global
      batch and the key, not on the device count.

  Returns:
    ``train_step(state_g, state_d, batch, key) -> (state_g, state_d, metrics)``, a plain
    function (its static settings are ``train_step.config``, a frozen ``TrainStep``), where
    ``batch = {"image": float32 [B, ...] in [-1, 1], ...}`` and ``metrics`` holds scalar
    ``d_loss``, ``g_loss``, ``real_logits`` and ``fake_logits`` (means),
    ``d_grad_norm``, ``g_grad_norm``, and ``gp`` / ``r1`` (unweighted) when enabled.
    D metrics are averaged over the ``n_critic`` updates.
  """
  _check_options(n_critic, gp_weight, r1_weight, clip, ema_decay)
  config = TrainStep(G=G, D=D, loss=losses_lib.get(loss), n_critic=n_critic,
                     gp_weight=float(gp_weight), r1_weight=float(r1_weight),
                     clip=None if clip is None else float(clip),
                     ema_decay=None if ema_decay is None else float(ema_decay),
                     axis_name=axis_name)

  def train_step(state_g: NetState, state_d: NetState, batch: Mapping[str, jax.Array],
                 key: jax.Array) -> tuple[NetState, NetState, Metrics]:
    """One GAN update; see ``jaxgan.make_train_step`` and ``train_step.config``."""
    return config(state_g, state_d, batch, key)

  train_step.config = config
  return train_step


def _generate(G, state_g, key, num, use_ema, offset):
  z = sample_latent(key, num, state_g.input_shape[0], offset)
  params = state_g.ema_params if use_ema and state_g.ema_params is not None else state_g.params
  return G.apply(state_g.variables(params), z, train=False)


@functools.cache
def _generate_jit():
  # Built on first use, not at import: the CPU options probe the backend by compiling.
  return jax.jit(_generate, static_argnames=("G", "num", "use_ema"),
                 compiler_options=cpu.compiler_options())


def generate(G: nn.Module, state_g: NetState, key: jax.Array, num: int, *,
             use_ema: bool = True, offset: int = 0) -> jax.Array:
  """Samples ``num`` images from the generator in inference mode.

  Args:
    G: the generator module the state was created with.
    state_g: its state.
    key: PRNG key; the same key gives the same images, and the first ``n`` images of a
      larger draw equal a draw of ``n``.
    num: number of images.
    use_ema: use the moving average of the parameters (the usual choice for evaluation).
    offset: index of the first image in the key's sequence, to draw a large set in chunks
      (``offset=0, num=1000`` then ``offset=1000, num=1000`` equals one draw of 2000).

  Returns:
    ``[num, *image_shape]``.
  """
  return _generate_jit()(G, state_g, _as_key(key), int(num), bool(use_ema), jnp.int32(offset))

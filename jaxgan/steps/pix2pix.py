"""pix2pix: the paired image-to-image step, and what CycleGAN's step shares with it.

``state_g`` and ``state_d`` are ``NetState``s and ``batch = {"source", "image"}``; the step
has the library's shape, so ``jax.jit``, ``lax.scan``, ``pmap_step``/``shard_map_step``,
the checkpoints and the training loop take it as they take the noise-to-image step.

The update order is the reference's (junyanz/pytorch-CycleGAN-and-pix2pix,
``models/pix2pix_model.py``): one forward of G; D updated on ``concat(source, image)``
(real) and ``concat(source, G(source))`` (fake, no gradient to G) with the loss halved; then
G on the *updated* D: ``adversarial + l1_weight * L1(G(source), image)``, the gradient
through the same forward (one set of dropout masks and BatchNorm statistics per step).

The adversarial terms are the reference's ``GANLoss``: ``"least_squares"`` (its
``lsgan``: ``mean((logits - target)**2)``) or ``"non_saturating"`` (its ``vanilla``:
binary cross-entropy on logits), each a mean over every patch of every example; D's loss is
``0.5 * (term(real, 1) + term(fake, 0))``, G's ``term(fake, 1)``. (The noise-to-image
registry puts another 1/2 on the least-squares G term; here it would halve the adversarial
weight against the L1 terms.)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxgan.errors import ConfigError, InputTypeError
from jaxgan.state import NetState, as_key, new_net_state, shape_str
from jaxgan.steps.common import apply_net, apply_update, global_norm, pmean_floats

ADVERSARIAL = ("least_squares", "non_saturating")


# The reference's names for the same terms.
_ALIASES = {"lsgan": "least_squares", "vanilla": "non_saturating"}


def adversarial_term(logits: jax.Array, real: bool, mode: str) -> jax.Array:
  """The reference's ``GANLoss(logits, target_is_real)``: a mean over every element."""
  logits = logits.astype(jnp.float32)
  if mode == "least_squares":
    return jnp.mean(jnp.square(logits - (1.0 if real else 0.0)))
  # Binary cross-entropy on logits: -log(sigmoid(x)) = softplus(-x), -log(1 - sigmoid(x))
  # = softplus(x).
  return jnp.mean(jax.nn.softplus(-logits if real else logits))


def adversarial_mode(loss: str) -> str:
  mode = _ALIASES.get(loss, loss)
  if mode not in ADVERSARIAL:
    raise ConfigError(f"The translation steps' adversarial loss must be one of {ADVERSARIAL} "
                      f"(the reference's lsgan and vanilla), got {loss!r}.")
  return mode


def l1_distance(x: jax.Array, y: jax.Array) -> jax.Array:
  return jnp.mean(jnp.abs(x.astype(jnp.float32) - y.astype(jnp.float32)))


def check_images(batch, name: str, expected: Sequence[int], fix: str) -> jax.Array:
  if name not in batch:
    raise InputTypeError(f"The batch has no {name!r} (it has {sorted(batch)}). {fix}")
  x = batch[name]
  shape = tuple(getattr(x, "shape", ()))
  if len(shape) != len(expected) + 1 or shape[1:] != tuple(expected):
    raise ConfigError(f"batch[{name!r}] has shape {shape_str(shape)}, but the models were "
                      f"built for [B, {', '.join(map(str, expected))}]. {fix}")
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise InputTypeError(f"batch[{name!r}] must be floating point in [-1, 1], got {x.dtype}; "
                         "convert uint8 pixels with x / 127.5 - 1.")
  return x


def shape_tuple(shape: Sequence[int], name: str) -> tuple[int, ...]:
  shape = tuple(int(s) for s in shape)
  if len(shape) != 3 or min(shape) < 1:
    raise ConfigError(f"{name} must be (H, W, C) of positive sizes, got {shape!r}.")
  return shape


def init_key(key: jax.Array) -> jax.Array:
  """An ``rbg`` key drawn from ``key``, for parameter initialisation: XLA's random-bit
  generator compiles in a fraction of Threefry's time (an init of the test's four small
  CycleGAN networks: 5 s against 22 s on the CPU); the draws are fixed by ``key``."""
  return jax.random.wrap_key_data(jax.random.bits(key, (4,), jnp.uint32), impl="rbg")


def init_module(module: nn.Module, key: jax.Array, shape: Sequence[int], k_drop: jax.Array):
  return module.init({"params": init_key(key), "dropout": k_drop}, jnp.zeros((1, *shape)),
                     train=False)


def abstract_out(module: nn.Module, name: str, shape: Sequence[int]):
  if not isinstance(module, nn.Module):
    raise InputTypeError(f"{name} must be a flax.linen.Module instance, got "
                         f"{type(module).__name__}.")
  x = jax.ShapeDtypeStruct((2, *shape), jnp.float32)
  k = jax.random.key(0)
  return jax.eval_shape(lambda x: module.apply(module.init({"params": k, "dropout": k}, x,
                                                           train=False), x, train=False), x)


def check_translator(G: nn.Module, name: str, in_shape, out_shape) -> None:
  out = abstract_out(G, name, in_shape)
  if tuple(getattr(out, "shape", ())[1:]) != tuple(out_shape):
    raise ConfigError(f"{name} maps images of shape {shape_str(in_shape)} to "
                      f"{shape_str(getattr(out, 'shape', ())[1:])}, but the target images "
                      f"are {shape_str(out_shape)}. Build it with out_channels="
                      f"{out_shape[-1]} (and a size it keeps).")


def check_patch_d(D: nn.Module, name: str, shape) -> None:
  out = abstract_out(D, name, shape)
  if not hasattr(out, "shape") or out.ndim < 1 or out.shape[0] != 2:
    raise ConfigError(f"{name} must return logits [B, ...] (one per example or per patch); "
                      f"it returned {getattr(out, 'shape', type(out).__name__)}.")


@dataclasses.dataclass(frozen=True, eq=False)
class Pix2PixStep:
  """The pix2pix step (``make_pix2pix_step``); its fields are the static hyperparameters."""

  G: nn.Module
  D: nn.Module
  loss: str = "non_saturating"
  l1_weight: float = 100.0
  axis_name: str | None = None

  def prepare_states(self, state_g: NetState, state_d: NetState):
    """Nothing to add (the signature of the other steps')."""
    return state_g, state_d

  def __call__(self, state_g: NetState, state_d: NetState, batch: Mapping[str, jax.Array],
               key: jax.Array) -> tuple[NetState, NetState, dict]:
    for name, state in (("state_g", state_g), ("state_d", state_d)):
      if not isinstance(state, NetState):
        raise InputTypeError(f"{name} must be a jaxgan NetState (from "
                             f"jaxgan.steps.create_pix2pix_states), got "
                             f"{type(state).__name__}.")
    if not isinstance(batch, Mapping):
      raise InputTypeError(f"batch must be a dict {{'source': ..., 'image': ...}}, got "
                           f"{type(batch).__name__}.")
    fix = ("pix2pix batches are {'source': [B, H, W, C_in], 'image': [B, H, W, C_out]}, "
           "floats in [-1, 1].")
    source = check_images(batch, "source", state_g.input_shape, fix)
    d_shape = state_d.input_shape
    target = check_images(batch, "image", (*d_shape[:-1], d_shape[-1] - source.shape[-1]),
                           fix)
    axis = self.axis_name
    key = jax.random.fold_in(as_key(key), state_g.step)
    k_g, k_d_fake, k_d_real, k_d_g = jax.random.split(key, 4)

    # One forward of G: D's update sees its output without gradient, G's loss reuses it.
    def g_forward(params):
      return apply_net(self.G, state_g, params, source, k_g, axis)

    fake, g_vjp, g_model_state = jax.vjp(g_forward, state_g.params, has_aux=True)
    fake_pair = jnp.concatenate([source, jax.lax.stop_gradient(fake)], axis=-1)
    real_pair = jnp.concatenate([source, target], axis=-1)

    def d_objective(params):
      # The reference's order: the fakes' forward first, then the reals'.
      fake_logits, ms = apply_net(self.D, state_d, params, fake_pair, k_d_fake, axis)
      real_logits, ms = apply_net(self.D, state_d, params, real_pair, k_d_real, axis, ms)
      d_loss = 0.5 * (adversarial_term(fake_logits, False, self.loss)
                      + adversarial_term(real_logits, True, self.loss))
      metrics = {"d_loss": d_loss, "real_logits": jnp.mean(real_logits),
                 "fake_logits": jnp.mean(fake_logits)}
      return pmean_floats(d_loss, axis), (ms, metrics)

    d_grads, (d_ms, metrics) = jax.grad(d_objective, has_aux=True)(state_d.params)
    d_grads = pmean_floats(d_grads, axis)
    metrics["d_grad_norm"] = global_norm(d_grads)
    state_d = apply_update(state_d, d_grads, d_ms, axis)

    def g_objective(fake):
      # Against the updated D; its statistics from this pass are not kept.
      logits, _ = apply_net(self.D, state_d, state_d.params,
                         jnp.concatenate([source, fake], axis=-1), k_d_g, axis)
      adv = adversarial_term(logits, True, self.loss)
      l1 = l1_distance(fake, target)
      total = adv + self.l1_weight * l1
      return pmean_floats(total, axis), {"g_loss": total, "g_adv": adv, "g_l1": l1}

    d_fake, g_metrics = jax.grad(g_objective, has_aux=True)(fake)
    (g_grads,) = g_vjp(d_fake)
    g_grads = pmean_floats(g_grads, axis)
    state_g = apply_update(state_g, g_grads, g_model_state, axis)
    metrics = {**metrics, **g_metrics, "g_grad_norm": global_norm(g_grads)}
    return state_g, state_d, pmean_floats(metrics, axis)


def make_pix2pix_step(G: nn.Module, D: nn.Module, loss: str = "non_saturating", *,
                      l1_weight: float = 100.0, axis_name: str | None = None) -> Pix2PixStep:
  """Builds the pure pix2pix step (Isola et al.; the reference's ``pix2pix_model.py``).

  Args:
    G: ``G(source [B, H, W, C_in], train=...) -> [B, H, W, C_out]`` in [-1, 1], e.g.
      ``jaxgan.models.UNetTranslator`` (its decoder dropout is the only noise).
    D: ``D(concat(source, image) [B, H, W, C_in + C_out], train=...) -> logits`` of any
      shape ``[B, ...]`` (a PatchGAN's ``[B, h, w]``), each judged on its own.
    loss: ``"non_saturating"`` (the reference's ``vanilla``, its pix2pix default) or
      ``"least_squares"`` (``lsgan``).
    l1_weight: lambda of the L1 term (100).
    axis_name: the mapped device axis (gradients, statistics and metrics averaged over
      it; dropout drawn per global example).

  Returns:
    The step, a frozen and callable ``Pix2PixStep`` whose fields are these settings:
    ``train_step(state_g, state_d, batch, key) -> (state_g, state_d, metrics)`` with
    ``batch = {"source", "image"}`` and metrics ``d_loss``, ``g_loss`` (the total),
    ``g_adv``, ``g_l1``, ``real_logits``, ``fake_logits``, ``d_grad_norm``, ``g_grad_norm``.
  """
  if not isinstance(l1_weight, int | float) or l1_weight < 0:
    raise ConfigError(f"l1_weight must be a number >= 0 (pix2pix: 100), got {l1_weight!r}.")
  return Pix2PixStep(G, D, adversarial_mode(loss), float(l1_weight), axis_name)


def create_pix2pix_states(key: jax.Array, G: nn.Module, D: nn.Module,
                          tx_g: optax.GradientTransformation,
                          tx_d: optax.GradientTransformation, *,
                          source_shape: Sequence[int], image_shape: Sequence[int]
                          ) -> tuple[NetState, NetState]:
  """``(state_g, state_d)`` for pix2pix: G maps ``source_shape`` to ``image_shape``, D
  takes both concatenated on channels. The models are checked on abstract shapes first.

  Raises:
    jaxgan.errors.ConfigError: G's output does not have ``image_shape``, or the shapes do
      not share H and W.
  """
  source_shape, image_shape = shape_tuple(source_shape, "source_shape"), shape_tuple(image_shape,
                                                                           "image_shape")
  if source_shape[:-1] != image_shape[:-1]:
    raise ConfigError(f"pix2pix pairs share their height and width: source_shape "
                      f"{shape_str(source_shape)}, image_shape {shape_str(image_shape)}. "
                      "Resize the source to the target's size first.")
  d_shape = (*image_shape[:-1], source_shape[-1] + image_shape[-1])
  check_translator(G, "G", source_shape, image_shape)
  check_patch_d(D, "D", d_shape)

  def init(key):
    k_g, k_d, k_drop = jax.random.split(key, 3)
    return (new_net_state(init_module(G, k_g, source_shape, k_drop), tx_g, source_shape),
            new_net_state(init_module(D, k_d, d_shape, k_drop), tx_d, d_shape))

  return jax.jit(init)(as_key(key))


def _translate(G, state_g, images):
  return G.apply(state_g.variables(), images, train=False)


_translate_jit = jax.jit(_translate, static_argnums=0)


def translate(G: nn.Module, state_g: NetState, images: Any) -> jax.Array:
  """``G``'s output in inference mode (BatchNorm's running statistics, no dropout):
  deterministic, and image by image (a batch's images do not affect each other).

  Args:
    G: the generator the state was created with.
    state_g: its state (for CycleGAN ``state_g["ab"]`` or ``state_g["ba"]``).
    images: ``[N, *state_g.input_shape]`` floats in [-1, 1].

  Returns:
    ``[N, H, W, C_out]`` in [-1, 1].
  """
  x = jnp.asarray(images)
  if x.ndim != 4 or tuple(x.shape[1:]) != tuple(state_g.input_shape):
    raise ConfigError(f"translate takes images [N, {', '.join(map(str, state_g.input_shape))}]"
                      f"; got shape {shape_str(x.shape)}.")
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise InputTypeError(f"translate takes floats in [-1, 1], got {x.dtype}; convert uint8 "
                         "pixels with x / 127.5 - 1.")
  return _translate_jit(G, state_g, x.astype(jnp.float32))

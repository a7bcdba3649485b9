"""Image-to-image translation steps: pix2pix (paired) and CycleGAN (unpaired).

Both keep the library's step shape, ``train_step(state_g, state_d, batch, key) ->
(state_g, state_d, metrics)``, with the states pytrees of ``NetState``s, so ``jax.jit``,
``lax.scan`` (``jaxgan.parallel.fuse_steps``), ``pmap_step``/``shard_map_step``, the
checkpoints and the training loop take them as they take the noise-to-image step:

* pix2pix: ``state_g`` and ``state_d`` are ``NetState``s; ``batch = {"source", "image"}``;
* CycleGAN: ``state_g = {"ab": NetState, "ba": NetState}``, ``state_d = {"a": NetState,
  "b": NetState}``; ``batch = {"a", "b"}``.

The update orders and losses are the reference's (junyanz/pytorch-CycleGAN-and-pix2pix,
``models/pix2pix_model.py`` and ``models/cycle_gan_model.py``):

* pix2pix: one forward of G; D updated on ``concat(source, image)`` (real) and
  ``concat(source, G(source))`` (fake, no gradient to G) with the loss halved; then G on the
  *updated* D: ``adversarial + l1_weight * L1(G(source), image)``, the gradient through the
  same forward (one set of dropout masks and BatchNorm statistics per step).
* CycleGAN: one joint update of both generators (adversarial terms against the current
  discriminators, ``cycle_weight * L1`` of the reconstructions both ways, and
  ``identity_weight * cycle_weight * L1(G_ab(b), b)`` and the same for ``G_ba``), then one
  joint update of both discriminators on the real images and on fakes of the generators
  *before* their update, drawn through the image pools.

Names: ``G_ab`` maps domain A to B; ``D_b`` judges domain B (real B against ``G_ab(a)``)
and holds the pool of ``G_ab``'s fakes. The reference names by generator instead: its
``D_A`` is this ``D_b``.

The adversarial terms are the reference's ``GANLoss``: ``"least_squares"`` (its
``lsgan``: ``mean((logits - target)**2)``) or ``"non_saturating"`` (its ``vanilla``:
binary cross-entropy on logits), each a mean over every patch of every example; D's loss is
``0.5 * (term(real, 1) + term(fake, 0))``, G's ``term(fake, 1)``. (The noise-to-image
registry puts another 1/2 on the least-squares G term; here it would halve the adversarial
weight against the L1 terms.)

The image pool (Shrivastava et al.; the reference's ``ImagePool``) lives in ``state_d``
(``step_state``: ``pool`` and ``pool_count``), so it is checkpointed and a resumed run is
bit-exact; every device runs it on the gathered global batch with draws indexed by the
global example, so the result does not depend on the device count.
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
from jaxgan.models import layers
from jaxgan.state import NetState, _as_key, _shape_str, new_net_state
from jaxgan.step import device_offset, global_norm, module_rngs, pmean_floats

ADVERSARIAL = ("least_squares", "non_saturating")
# The reference's names for the same terms.
_ALIASES = {"lsgan": "least_squares", "vanilla": "non_saturating"}
POOL_SIZE = 50  # the reference's --pool_size for CycleGAN


def adversarial_term(logits: jax.Array, real: bool, mode: str) -> jax.Array:
  """The reference's ``GANLoss(logits, target_is_real)``: a mean over every element."""
  logits = logits.astype(jnp.float32)
  if mode == "least_squares":
    return jnp.mean(jnp.square(logits - (1.0 if real else 0.0)))
  # Binary cross-entropy on logits: -log(sigmoid(x)) = softplus(-x), -log(1 - sigmoid(x))
  # = softplus(x).
  return jnp.mean(jax.nn.softplus(-logits if real else logits))


def _mode(loss: str) -> str:
  mode = _ALIASES.get(loss, loss)
  if mode not in ADVERSARIAL:
    raise ConfigError(f"The translation steps' adversarial loss must be one of {ADVERSARIAL} "
                      f"(the reference's lsgan and vanilla), got {loss!r}.")
  return mode


def _l1(x: jax.Array, y: jax.Array) -> jax.Array:
  return jnp.mean(jnp.abs(x.astype(jnp.float32) - y.astype(jnp.float32)))


def _apply(module: nn.Module, state: NetState, params, x: jax.Array, rng: jax.Array,
           axis_name: str | None, model_state: dict | None = None):
  """Train-mode forward; returns (output, the module's updated collections)."""
  model_state = state.module_state if model_state is None else model_state
  with layers.device_independent(axis_name):
    return module.apply({"params": params, **model_state}, x, train=True,
                        rngs=module_rngs(rng, axis_name), mutable=list(model_state))


def _update(state: NetState, grads, model_state, axis_name) -> NetState:
  return state.apply_gradients(pmean_floats(grads, axis_name),
                               pmean_floats(model_state, axis_name))


def _check_images(batch, name: str, expected: Sequence[int], fix: str) -> jax.Array:
  if name not in batch:
    raise InputTypeError(f"The batch has no {name!r} (it has {sorted(batch)}). {fix}")
  x = batch[name]
  shape = tuple(getattr(x, "shape", ()))
  if len(shape) != len(expected) + 1 or shape[1:] != tuple(expected):
    raise ConfigError(f"batch[{name!r}] has shape {_shape_str(shape)}, but the models were "
                      f"built for [B, {', '.join(map(str, expected))}]. {fix}")
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise InputTypeError(f"batch[{name!r}] must be floating point in [-1, 1], got {x.dtype}; "
                         "convert uint8 pixels with x / 127.5 - 1.")
  return x


# -- the image pool ----------------------------------------------------------------------------

def pool_init(size: int, image_shape: Sequence[int]) -> dict[str, jax.Array]:
  """An empty pool of ``size`` images: ``{"pool": zeros [size, *image_shape], "pool_count":
  0}``."""
  return {"pool": jnp.zeros((size, *image_shape), jnp.float32),
          "pool_count": jnp.zeros((), jnp.int32)}


def pool_query(pool: jax.Array, count: jax.Array, images: jax.Array, key: jax.Array,
               offset: int | jax.Array = 0) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The reference's ``ImagePool.query``, one image at a time in batch order.

  While the pool holds fewer than ``size`` images, each image is stored and returned.
  Once it is full, with probability 1/2 (``u > 0.5``, ``u`` uniform) a stored image chosen
  uniformly is returned and the new one takes its slot; otherwise the new image is
  returned. Image ``i``'s draws come from ``key`` and its global index ``offset + i``.

  Returns:
    ``(images to show D, new pool, new count)``.
  """
  size = pool.shape[0]
  if size == 0:
    return images, pool, count
  index = offset + jnp.arange(images.shape[0])

  def one(carry, inputs):
    pool, count = carry
    image, i = inputs
    k_u, k_slot = jax.random.split(jax.random.fold_in(key, i))
    filling = count < size
    swap = ~filling & (jax.random.uniform(k_u) > 0.5)
    slot = jnp.where(filling, count, jax.random.randint(k_slot, (), 0, size))
    out = jnp.where(swap, pool[slot], image)
    pool = jnp.where(filling | swap, pool.at[slot].set(image), pool)
    return (pool, count + filling.astype(count.dtype)), out

  (pool, count), out = jax.lax.scan(one, (pool, count), (images.astype(pool.dtype), index))
  return out, pool, count


def _pooled(state_d: NetState, fakes: jax.Array, key: jax.Array, axis_name: str | None
            ) -> tuple[jax.Array, NetState]:
  """This device's fakes through ``state_d``'s pool; the pool runs on the global batch,
  the same on every device."""
  ss = state_d.step_state
  if "pool" not in ss:
    return fakes, state_d
  local = fakes.shape[0]
  fakes = jax.lax.stop_gradient(fakes)
  if axis_name is not None:
    fakes = _gather_replicated(fakes, axis_name)
  out, pool, count = pool_query(ss["pool"], ss["pool_count"], fakes, key)
  if axis_name is not None:
    out = jax.lax.dynamic_slice_in_dim(out, device_offset(axis_name, local), local)
  return out, state_d.with_step_state(pool=pool, pool_count=count)


def _gather_replicated(x: jax.Array, axis_name: str) -> jax.Array:
  """The global batch on every device, typed as replicated (a ``psum`` of each device's
  share placed in zeros: exact, and unlike ``all_gather`` an axis-invariant value, which
  the replicated pool may then hold under ``shard_map``'s checks)."""
  local = x.shape[0]
  devices = jax.lax.psum(1, axis_name)
  buffer = jnp.zeros((devices * local, *x.shape[1:]), x.dtype)
  buffer = jax.lax.dynamic_update_slice_in_dim(buffer, x, device_offset(axis_name, local), 0)
  return jax.lax.psum(buffer, axis_name)


# -- pix2pix --------------------------------------------------------------------------------

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
                             f"jaxgan.translation.create_pix2pix_states), got "
                             f"{type(state).__name__}.")
    if not isinstance(batch, Mapping):
      raise InputTypeError(f"batch must be a dict {{'source': ..., 'image': ...}}, got "
                           f"{type(batch).__name__}.")
    fix = ("pix2pix batches are {'source': [B, H, W, C_in], 'image': [B, H, W, C_out]}, "
           "floats in [-1, 1].")
    source = _check_images(batch, "source", state_g.input_shape, fix)
    d_shape = state_d.input_shape
    target = _check_images(batch, "image", (*d_shape[:-1], d_shape[-1] - source.shape[-1]),
                           fix)
    axis = self.axis_name
    key = jax.random.fold_in(_as_key(key), state_g.step)
    k_g, k_d_fake, k_d_real, k_d_g = jax.random.split(key, 4)

    # One forward of G: D's update sees its output without gradient, G's loss reuses it.
    def g_forward(params):
      return _apply(self.G, state_g, params, source, k_g, axis)

    fake, g_vjp, g_model_state = jax.vjp(g_forward, state_g.params, has_aux=True)
    fake_pair = jnp.concatenate([source, jax.lax.stop_gradient(fake)], axis=-1)
    real_pair = jnp.concatenate([source, target], axis=-1)

    def d_objective(params):
      # The reference's order: the fakes' forward first, then the reals'.
      fake_logits, ms = _apply(self.D, state_d, params, fake_pair, k_d_fake, axis)
      real_logits, ms = _apply(self.D, state_d, params, real_pair, k_d_real, axis, ms)
      d_loss = 0.5 * (adversarial_term(fake_logits, False, self.loss)
                      + adversarial_term(real_logits, True, self.loss))
      metrics = {"d_loss": d_loss, "real_logits": jnp.mean(real_logits),
                 "fake_logits": jnp.mean(fake_logits)}
      return pmean_floats(d_loss, axis), (ms, metrics)

    d_grads, (d_ms, metrics) = jax.grad(d_objective, has_aux=True)(state_d.params)
    d_grads = pmean_floats(d_grads, axis)
    metrics["d_grad_norm"] = global_norm(d_grads)
    state_d = _update(state_d, d_grads, d_ms, axis)

    def g_objective(fake):
      # Against the updated D; its statistics from this pass are not kept.
      logits, _ = _apply(self.D, state_d, state_d.params,
                         jnp.concatenate([source, fake], axis=-1), k_d_g, axis)
      adv = adversarial_term(logits, True, self.loss)
      l1 = _l1(fake, target)
      total = adv + self.l1_weight * l1
      return pmean_floats(total, axis), {"g_loss": total, "g_adv": adv, "g_l1": l1}

    d_fake, g_metrics = jax.grad(g_objective, has_aux=True)(fake)
    (g_grads,) = g_vjp(d_fake)
    g_grads = pmean_floats(g_grads, axis)
    state_g = _update(state_g, g_grads, g_model_state, axis)
    metrics = {**metrics, **g_metrics, "g_grad_norm": global_norm(g_grads)}
    return state_g, state_d, pmean_floats(metrics, axis)


def make_pix2pix_step(G: nn.Module, D: nn.Module, loss: str = "non_saturating", *,
                      l1_weight: float = 100.0, axis_name: str | None = None):
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
    ``train_step(state_g, state_d, batch, key) -> (state_g, state_d, metrics)`` with
    ``batch = {"source", "image"}`` and metrics ``d_loss``, ``g_loss`` (the total),
    ``g_adv``, ``g_l1``, ``real_logits``, ``fake_logits``, ``d_grad_norm``, ``g_grad_norm``.
    ``train_step.config`` holds the settings.
  """
  if not isinstance(l1_weight, int | float) or l1_weight < 0:
    raise ConfigError(f"l1_weight must be a number >= 0 (pix2pix: 100), got {l1_weight!r}.")
  config = Pix2PixStep(G, D, _mode(loss), float(l1_weight), axis_name)

  def train_step(state_g, state_d, batch, key):
    """One pix2pix update; see ``jaxgan.translation.make_pix2pix_step``."""
    return config(state_g, state_d, batch, key)

  train_step.config = config
  train_step.prepare_states = config.prepare_states
  return train_step


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
  source_shape, image_shape = _shape(source_shape, "source_shape"), _shape(image_shape,
                                                                           "image_shape")
  if source_shape[:-1] != image_shape[:-1]:
    raise ConfigError(f"pix2pix pairs share their height and width: source_shape "
                      f"{_shape_str(source_shape)}, image_shape {_shape_str(image_shape)}. "
                      "Resize the source to the target's size first.")
  d_shape = (*image_shape[:-1], source_shape[-1] + image_shape[-1])
  _check_translator(G, "G", source_shape, image_shape)
  _check_patch_d(D, "D", d_shape)

  def init(key):
    k_g, k_d, k_drop = jax.random.split(key, 3)
    return (new_net_state(_init(G, k_g, source_shape, k_drop), tx_g, source_shape),
            new_net_state(_init(D, k_d, d_shape, k_drop), tx_d, d_shape))

  return jax.jit(init)(_as_key(key))


# -- CycleGAN -------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, eq=False)
class CycleGANStep:
  """The CycleGAN step (``make_cyclegan_step``); its fields are the static
  hyperparameters."""

  G_ab: nn.Module
  G_ba: nn.Module
  D_a: nn.Module
  D_b: nn.Module
  loss: str = "least_squares"
  cycle_weight: float = 10.0
  identity_weight: float = 0.5
  pool_size: int = POOL_SIZE
  axis_name: str | None = None

  def step_state_init(self, shape_a: Sequence[int], shape_b: Sequence[int]):
    """The pools each discriminator keeps: ``D_a`` of ``G_ba``'s fakes (domain A), ``D_b``
    of ``G_ab``'s."""
    if not self.pool_size:
      return {}, {}
    return pool_init(self.pool_size, shape_a), pool_init(self.pool_size, shape_b)

  def prepare_states(self, state_g: dict, state_d: dict) -> tuple[dict, dict]:
    """The states with the image pools added, when missing (once after
    ``create_cyclegan_states``; restored states pass unchanged)."""
    _check_cycle_states(state_g, state_d)
    pools = self.step_state_init(state_d["a"].input_shape, state_d["b"].input_shape)
    out = dict(state_d)
    for name, pool in zip("ab", pools, strict=True):
      missing = {k: v for k, v in pool.items() if k not in state_d[name].step_state}
      if missing:
        out[name] = state_d[name].with_step_state(**missing)
    return state_g, out

  def __call__(self, state_g: dict, state_d: dict, batch: Mapping[str, jax.Array],
               key: jax.Array) -> tuple[dict, dict, dict]:
    _check_cycle_states(state_g, state_d)
    if self.pool_size:
      for name in "ab":
        if "pool" not in state_d[name].step_state:
          raise ConfigError(f"state_d[{name!r}] has no image pool: this step keeps one in the "
                            "states. Add them once after create_cyclegan_states: "
                            "state_g, state_d = train_step.prepare_states(state_g, state_d).")
    if not isinstance(batch, Mapping):
      raise InputTypeError(f"batch must be a dict {{'a': ..., 'b': ...}}, got "
                           f"{type(batch).__name__}.")
    fix = "CycleGAN batches are {'a': images of domain A, 'b': images of domain B} in [-1, 1]."
    a = _check_images(batch, "a", state_g["ab"].input_shape, fix)
    b = _check_images(batch, "b", state_g["ba"].input_shape, fix)
    axis = self.axis_name
    key = jax.random.fold_in(_as_key(key), state_g["ab"].step)
    keys = dict(zip(("ab", "ba", "ab_rec", "ba_rec", "ab_idt", "ba_idt", "da_real",
                     "da_fake", "db_real", "db_fake", "pool_a", "pool_b", "dg_a", "dg_b"),
                    jax.random.split(key, 14), strict=True))
    g_ab, g_ba, d_a, d_b = state_g["ab"], state_g["ba"], state_d["a"], state_d["b"]
    identity = self.identity_weight > 0

    def g_objective(params):
      p_ab, p_ba = params
      ms_ab, ms_ba = g_ab.module_state, g_ba.module_state
      fake_b, ms_ab = _apply(self.G_ab, g_ab, p_ab, a, keys["ab"], axis, ms_ab)
      rec_a, ms_ba = _apply(self.G_ba, g_ba, p_ba, fake_b, keys["ba_rec"], axis, ms_ba)
      fake_a, ms_ba = _apply(self.G_ba, g_ba, p_ba, b, keys["ba"], axis, ms_ba)
      rec_b, ms_ab = _apply(self.G_ab, g_ab, p_ab, fake_a, keys["ab_rec"], axis, ms_ab)
      # Against the discriminators as they are (updated after G); their statistics from
      # these passes are not kept.
      adv_ab = adversarial_term(
          _apply(self.D_b, d_b, d_b.params, fake_b, keys["dg_b"], axis)[0], True, self.loss)
      adv_ba = adversarial_term(
          _apply(self.D_a, d_a, d_a.params, fake_a, keys["dg_a"], axis)[0], True, self.loss)
      cycle_a, cycle_b = _l1(rec_a, a), _l1(rec_b, b)
      total = adv_ab + adv_ba + self.cycle_weight * (cycle_a + cycle_b)
      metrics = {"g_adv_ab": adv_ab, "g_adv_ba": adv_ba, "cycle_a": cycle_a,
                 "cycle_b": cycle_b}
      if identity:
        idt_b, ms_ab = _apply(self.G_ab, g_ab, p_ab, b, keys["ab_idt"], axis, ms_ab)
        idt_a, ms_ba = _apply(self.G_ba, g_ba, p_ba, a, keys["ba_idt"], axis, ms_ba)
        metrics["identity_b"], metrics["identity_a"] = _l1(idt_b, b), _l1(idt_a, a)
        total = total + self.identity_weight * self.cycle_weight * (
            metrics["identity_a"] + metrics["identity_b"])
      metrics["g_loss"] = total
      fakes = (jax.lax.stop_gradient(fake_a), jax.lax.stop_gradient(fake_b))
      return pmean_floats(total, axis), (metrics, (ms_ab, ms_ba), fakes)

    (g_ab_grads, g_ba_grads), (metrics, (ms_ab, ms_ba), (fake_a, fake_b)) = jax.grad(
        g_objective, has_aux=True)((g_ab.params, g_ba.params))
    g_ab_grads, g_ba_grads = pmean_floats((g_ab_grads, g_ba_grads), axis)
    metrics["g_grad_norm"] = global_norm((g_ab_grads, g_ba_grads))
    new_g = {"ab": _update(g_ab, g_ab_grads, ms_ab, axis),
             "ba": _update(g_ba, g_ba_grads, ms_ba, axis)}

    # The discriminators, on fakes of the generators before their update, through the
    # pools.
    shown_a, d_a = _pooled(d_a, fake_a, keys["pool_a"], axis)
    shown_b, d_b = _pooled(d_b, fake_b, keys["pool_b"], axis)

    def d_objective(params):
      p_a, p_b = params
      out = {}
      total = 0.0
      for name, module, state, p, real, shown in (("a", self.D_a, d_a, p_a, a, shown_a),
                                                  ("b", self.D_b, d_b, p_b, b, shown_b)):
        real_logits, ms = _apply(module, state, p, real, keys[f"d{name}_real"], axis)
        fake_logits, ms = _apply(module, state, p, shown, keys[f"d{name}_fake"], axis, ms)
        loss = 0.5 * (adversarial_term(real_logits, True, self.loss)
                      + adversarial_term(fake_logits, False, self.loss))
        out[f"d_{name}_loss"], out[f"ms_{name}"] = loss, ms
        total = total + loss
      return pmean_floats(total, axis), out

    (d_a_grads, d_b_grads), out = jax.grad(d_objective, has_aux=True)((d_a.params, d_b.params))
    d_a_grads, d_b_grads = pmean_floats((d_a_grads, d_b_grads), axis)
    new_d = {"a": _update(d_a, d_a_grads, out["ms_a"], axis),
             "b": _update(d_b, d_b_grads, out["ms_b"], axis)}
    metrics.update(d_a_loss=out["d_a_loss"], d_b_loss=out["d_b_loss"],
                   d_loss=out["d_a_loss"] + out["d_b_loss"],
                   d_grad_norm=global_norm((d_a_grads, d_b_grads)))
    return new_g, new_d, pmean_floats(metrics, axis)


def make_cyclegan_step(G_ab: nn.Module, G_ba: nn.Module, D_a: nn.Module, D_b: nn.Module,
                       loss: str = "least_squares", *, cycle_weight: float = 10.0,
                       identity_weight: float = 0.5, pool_size: int = POOL_SIZE,
                       axis_name: str | None = None):
  """Builds the pure CycleGAN step (Zhu et al.; the reference's ``cycle_gan_model.py``).

  Args:
    G_ab: domain A -> B (``jaxgan.models.ResNetTranslator``); ``G_ba``: B -> A.
    D_a: judges domain A (reals A against ``G_ba(b)``); ``D_b``: domain B. Logits of any
      shape ``[B, ...]`` (a PatchGAN's patch map), each judged on its own.
    loss: ``"least_squares"`` (the reference's ``lsgan``, CycleGAN's default) or
      ``"non_saturating"`` (``vanilla``).
    cycle_weight: lambda of the cycle L1 terms, both ways (10).
    identity_weight: the identity terms' weight relative to ``cycle_weight`` (0.5: 5 per
      term); 0 leaves them out (needs domains with equal channels otherwise).
    pool_size: images per pool (50); 0: no pools, D sees this step's fakes.
    axis_name: the mapped device axis.

  Returns:
    ``train_step(state_g, state_d, batch, key)`` with ``state_g = {"ab", "ba"}``,
    ``state_d = {"a", "b"}`` and ``batch = {"a", "b"}``. Metrics: ``g_loss`` (the total),
    ``g_adv_ab``, ``g_adv_ba``, ``cycle_a``, ``cycle_b``, ``identity_a``, ``identity_b``,
    ``d_a_loss``, ``d_b_loss``, ``d_loss`` (their sum), ``g_grad_norm``, ``d_grad_norm``.
    ``train_step.prepare_states`` adds the pools (once, after ``create_cyclegan_states``).
  """
  for name, value in (("cycle_weight", cycle_weight), ("identity_weight", identity_weight)):
    if not isinstance(value, int | float) or value < 0:
      raise ConfigError(f"{name} must be a number >= 0, got {value!r}.")
  if not isinstance(pool_size, int) or isinstance(pool_size, bool) or pool_size < 0:
    raise ConfigError(f"pool_size must be an int >= 0 (CycleGAN: 50; 0: no pool), got "
                      f"{pool_size!r}.")
  config = CycleGANStep(G_ab, G_ba, D_a, D_b, _mode(loss), float(cycle_weight),
                        float(identity_weight), pool_size, axis_name)

  def train_step(state_g, state_d, batch, key):
    """One CycleGAN update; see ``jaxgan.translation.make_cyclegan_step``."""
    return config(state_g, state_d, batch, key)

  train_step.config = config
  train_step.prepare_states = config.prepare_states
  return train_step


def create_cyclegan_states(key: jax.Array, G_ab: nn.Module, G_ba: nn.Module, D_a: nn.Module,
                           D_b: nn.Module, tx_g: optax.GradientTransformation,
                           tx_d: optax.GradientTransformation, *, shape_a: Sequence[int],
                           shape_b: Sequence[int]) -> tuple[dict, dict]:
  """``({"ab": ..., "ba": ...}, {"a": ..., "b": ...})``, each network from its own key
  (the two generators never start equal). ``tx_g`` serves both generators and ``tx_d``
  both discriminators: one optimizer state each, as one Adam over both (the reference's)
  keeps per parameter."""
  shape_a, shape_b = _shape(shape_a, "shape_a"), _shape(shape_b, "shape_b")
  _check_translator(G_ab, "G_ab", shape_a, shape_b)
  _check_translator(G_ba, "G_ba", shape_b, shape_a)
  _check_patch_d(D_a, "D_a", shape_a)
  _check_patch_d(D_b, "D_b", shape_b)

  def init(key):
    k = jax.random.split(key, 5)
    return ({"ab": new_net_state(_init(G_ab, k[0], shape_a, k[4]), tx_g, shape_a),
             "ba": new_net_state(_init(G_ba, k[1], shape_b, k[4]), tx_g, shape_b)},
            {"a": new_net_state(_init(D_a, k[2], shape_a, k[4]), tx_d, shape_a),
             "b": new_net_state(_init(D_b, k[3], shape_b, k[4]), tx_d, shape_b)})

  return jax.jit(init)(_as_key(key))


# -- shared checks and inference ----------------------------------------------------------------

def _shape(shape: Sequence[int], name: str) -> tuple[int, ...]:
  shape = tuple(int(s) for s in shape)
  if len(shape) != 3 or min(shape) < 1:
    raise ConfigError(f"{name} must be (H, W, C) of positive sizes, got {shape!r}.")
  return shape


def _init_key(key: jax.Array) -> jax.Array:
  """An ``rbg`` key drawn from ``key``, for parameter initialisation: XLA's random-bit
  generator compiles in a fraction of Threefry's time (an init of the test's four small
  CycleGAN networks: 5 s against 22 s on the CPU); the draws are fixed by ``key``."""
  return jax.random.wrap_key_data(jax.random.bits(key, (4,), jnp.uint32), impl="rbg")


def _init(module: nn.Module, key: jax.Array, shape: Sequence[int], k_drop: jax.Array):
  return module.init({"params": _init_key(key), "dropout": k_drop}, jnp.zeros((1, *shape)),
                     train=False)


def _abstract_out(module: nn.Module, name: str, shape: Sequence[int]):
  if not isinstance(module, nn.Module):
    raise InputTypeError(f"{name} must be a flax.linen.Module instance, got "
                         f"{type(module).__name__}.")
  x = jax.ShapeDtypeStruct((2, *shape), jnp.float32)
  k = jax.random.key(0)
  return jax.eval_shape(lambda x: module.apply(module.init({"params": k, "dropout": k}, x,
                                                           train=False), x, train=False), x)


def _check_translator(G: nn.Module, name: str, in_shape, out_shape) -> None:
  out = _abstract_out(G, name, in_shape)
  if tuple(getattr(out, "shape", ())[1:]) != tuple(out_shape):
    raise ConfigError(f"{name} maps images of shape {_shape_str(in_shape)} to "
                      f"{_shape_str(getattr(out, 'shape', ())[1:])}, but the target images "
                      f"are {_shape_str(out_shape)}. Build it with out_channels="
                      f"{out_shape[-1]} (and a size it keeps).")


def _check_patch_d(D: nn.Module, name: str, shape) -> None:
  out = _abstract_out(D, name, shape)
  if not hasattr(out, "shape") or out.ndim < 1 or out.shape[0] != 2:
    raise ConfigError(f"{name} must return logits [B, ...] (one per example or per patch); "
                      f"it returned {getattr(out, 'shape', type(out).__name__)}.")


def _check_cycle_states(state_g, state_d) -> None:
  if not (isinstance(state_g, Mapping) and set(state_g) == {"ab", "ba"}
          and isinstance(state_d, Mapping) and set(state_d) == {"a", "b"}
          and all(isinstance(s, NetState) for s in (*state_g.values(), *state_d.values()))):
    raise InputTypeError("CycleGAN states are state_g = {'ab': NetState, 'ba': NetState} and "
                         "state_d = {'a': NetState, 'b': NetState}, from "
                         "jaxgan.translation.create_cyclegan_states; got "
                         f"{type(state_g).__name__} and {type(state_d).__name__}.")


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
                      f"; got shape {_shape_str(x.shape)}.")
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise InputTypeError(f"translate takes floats in [-1, 1], got {x.dtype}; convert uint8 "
                         "pixels with x / 127.5 - 1.")
  return _translate_jit(G, state_g, x.astype(jnp.float32))


__all__ = ["make_pix2pix_step", "make_cyclegan_step", "create_pix2pix_states",
           "create_cyclegan_states", "translate", "pool_query", "pool_init",
           "adversarial_term", "Pix2PixStep", "CycleGANStep", "ADVERSARIAL", "POOL_SIZE"]

"""CycleGAN: the unpaired image-to-image step, with the image pools in the states.

``state_g = {"ab": NetState, "ba": NetState}``, ``state_d = {"a": NetState, "b":
NetState}``, ``batch = {"a", "b"}``. The order is the reference's
(``models/cycle_gan_model.py``): one joint update of both generators (adversarial terms
against the current discriminators, ``cycle_weight * L1`` of the reconstructions both ways,
and ``identity_weight * cycle_weight * L1(G_ab(b), b)`` and the same for ``G_ba``), then one
joint update of both discriminators on the real images and on fakes of the generators
*before* their update, drawn through the image pools. The adversarial terms are pix2pix's.

Names: ``G_ab`` maps domain A to B; ``D_b`` judges domain B (real B against ``G_ab(a)``)
and holds the pool of ``G_ab``'s fakes. The reference names by generator instead: its
``D_A`` is this ``D_b``.

The image pool (Shrivastava et al.; the reference's ``ImagePool``) lives in ``state_d``
(``step_state``: ``pool`` and ``pool_count``), so it is checkpointed and a resumed run is
bit-exact; every device runs it on the gathered global batch with draws indexed by the
global example, so the result does not depend on the device count.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxgan.errors import ConfigError, InputTypeError
from jaxgan.state import NetState, as_key, new_net_state
from jaxgan.steps.common import apply_net, apply_update, device_offset, global_norm, pmean_floats
from jaxgan.steps.pix2pix import (
  adversarial_mode,
  adversarial_term,
  check_images,
  check_patch_d,
  check_translator,
  init_module,
  l1_distance,
  shape_tuple,
)

POOL_SIZE = 50  # the reference's --pool_size for CycleGAN


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
    a, b = self._check_inputs(state_g, state_d, batch)
    key = jax.random.fold_in(as_key(key), state_g["ab"].step)
    keys = dict(zip(("ab", "ba", "ab_rec", "ba_rec", "ab_idt", "ba_idt", "da_real",
                     "da_fake", "db_real", "db_fake", "pool_a", "pool_b", "dg_a", "dg_b"),
                    jax.random.split(key, 14), strict=True))
    new_g, metrics, (fake_a, fake_b) = self._generators_update(state_g, state_d, a, b, keys)
    # The discriminators, on fakes of the generators before their update, through the
    # pools.
    shown_a, d_a = _pooled(state_d["a"], fake_a, keys["pool_a"], self.axis_name)
    shown_b, d_b = _pooled(state_d["b"], fake_b, keys["pool_b"], self.axis_name)
    new_d, d_metrics = self._discriminators_update(d_a, d_b, a, b, shown_a, shown_b, keys)
    return new_g, new_d, pmean_floats({**metrics, **d_metrics}, self.axis_name)

  def _check_inputs(self, state_g: dict, state_d: dict, batch) -> tuple[jax.Array, jax.Array]:
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
    return (check_images(batch, "a", state_g["ab"].input_shape, fix),
            check_images(batch, "b", state_g["ba"].input_shape, fix))

  def _generators_update(self, state_g: dict, state_d: dict, a, b, keys: dict):
    """Both generators' joint update; returns the new states, the metrics and this step's
    fakes (without gradient) for the discriminators."""
    axis = self.axis_name
    g_ab, g_ba, d_a, d_b = state_g["ab"], state_g["ba"], state_d["a"], state_d["b"]

    def objective(params):
      p_ab, p_ba = params
      ms_ab, ms_ba = g_ab.module_state, g_ba.module_state
      fake_b, ms_ab = apply_net(self.G_ab, g_ab, p_ab, a, keys["ab"], axis, ms_ab)
      rec_a, ms_ba = apply_net(self.G_ba, g_ba, p_ba, fake_b, keys["ba_rec"], axis, ms_ba)
      fake_a, ms_ba = apply_net(self.G_ba, g_ba, p_ba, b, keys["ba"], axis, ms_ba)
      rec_b, ms_ab = apply_net(self.G_ab, g_ab, p_ab, fake_a, keys["ab_rec"], axis, ms_ab)
      # Against the discriminators as they are (updated after G); their statistics from
      # these passes are not kept.
      adv_ab = adversarial_term(
          apply_net(self.D_b, d_b, d_b.params, fake_b, keys["dg_b"], axis)[0], True, self.loss)
      adv_ba = adversarial_term(
          apply_net(self.D_a, d_a, d_a.params, fake_a, keys["dg_a"], axis)[0], True, self.loss)
      cycle_a, cycle_b = l1_distance(rec_a, a), l1_distance(rec_b, b)
      total = adv_ab + adv_ba + self.cycle_weight * (cycle_a + cycle_b)
      metrics = {"g_adv_ab": adv_ab, "g_adv_ba": adv_ba, "cycle_a": cycle_a,
                 "cycle_b": cycle_b}
      if self.identity_weight > 0:
        idt_b, ms_ab = apply_net(self.G_ab, g_ab, p_ab, b, keys["ab_idt"], axis, ms_ab)
        idt_a, ms_ba = apply_net(self.G_ba, g_ba, p_ba, a, keys["ba_idt"], axis, ms_ba)
        metrics["identity_b"] = l1_distance(idt_b, b)
        metrics["identity_a"] = l1_distance(idt_a, a)
        total = total + self.identity_weight * self.cycle_weight * (
            metrics["identity_a"] + metrics["identity_b"])
      metrics["g_loss"] = total
      fakes = (jax.lax.stop_gradient(fake_a), jax.lax.stop_gradient(fake_b))
      return pmean_floats(total, axis), (metrics, (ms_ab, ms_ba), fakes)

    (ab_grads, ba_grads), (metrics, (ms_ab, ms_ba), fakes) = jax.grad(
        objective, has_aux=True)((g_ab.params, g_ba.params))
    ab_grads, ba_grads = pmean_floats((ab_grads, ba_grads), axis)
    metrics["g_grad_norm"] = global_norm((ab_grads, ba_grads))
    return ({"ab": apply_update(g_ab, ab_grads, ms_ab, axis),
             "ba": apply_update(g_ba, ba_grads, ms_ba, axis)}, metrics, fakes)

  def _discriminators_update(self, d_a: NetState, d_b: NetState, a, b, shown_a, shown_b,
                             keys: dict) -> tuple[dict, dict]:
    """Both discriminators' joint update on the real images and the pools' fakes."""
    axis = self.axis_name

    def objective(params):
      p_a, p_b = params
      out = {}
      total = 0.0
      for name, module, state, p, real, shown in (("a", self.D_a, d_a, p_a, a, shown_a),
                                                  ("b", self.D_b, d_b, p_b, b, shown_b)):
        real_logits, ms = apply_net(module, state, p, real, keys[f"d{name}_real"], axis)
        fake_logits, ms = apply_net(module, state, p, shown, keys[f"d{name}_fake"], axis, ms)
        loss = 0.5 * (adversarial_term(real_logits, True, self.loss)
                      + adversarial_term(fake_logits, False, self.loss))
        out[f"d_{name}_loss"], out[f"ms_{name}"] = loss, ms
        total = total + loss
      return pmean_floats(total, axis), out

    (a_grads, b_grads), out = jax.grad(objective, has_aux=True)((d_a.params, d_b.params))
    a_grads, b_grads = pmean_floats((a_grads, b_grads), axis)
    metrics = {"d_a_loss": out["d_a_loss"], "d_b_loss": out["d_b_loss"],
               "d_loss": out["d_a_loss"] + out["d_b_loss"],
               "d_grad_norm": global_norm((a_grads, b_grads))}
    return ({"a": apply_update(d_a, a_grads, out["ms_a"], axis),
             "b": apply_update(d_b, b_grads, out["ms_b"], axis)}, metrics)


def make_cyclegan_step(G_ab: nn.Module, G_ba: nn.Module, D_a: nn.Module, D_b: nn.Module,
                       loss: str = "least_squares", *, cycle_weight: float = 10.0,
                       identity_weight: float = 0.5, pool_size: int = POOL_SIZE,
                       axis_name: str | None = None) -> CycleGANStep:
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
    The step, a frozen and callable ``CycleGANStep`` whose fields are these settings:
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
  return CycleGANStep(G_ab, G_ba, D_a, D_b, adversarial_mode(loss), float(cycle_weight),
                      float(identity_weight), pool_size, axis_name)


def create_cyclegan_states(key: jax.Array, G_ab: nn.Module, G_ba: nn.Module, D_a: nn.Module,
                           D_b: nn.Module, tx_g: optax.GradientTransformation,
                           tx_d: optax.GradientTransformation, *, shape_a: Sequence[int],
                           shape_b: Sequence[int]) -> tuple[dict, dict]:
  """``({"ab": ..., "ba": ...}, {"a": ..., "b": ...})``, each network from its own key
  (the two generators never start equal). ``tx_g`` serves both generators and ``tx_d``
  both discriminators: one optimizer state each, as one Adam over both (the reference's)
  keeps per parameter."""
  shape_a, shape_b = shape_tuple(shape_a, "shape_a"), shape_tuple(shape_b, "shape_b")
  check_translator(G_ab, "G_ab", shape_a, shape_b)
  check_translator(G_ba, "G_ba", shape_b, shape_a)
  check_patch_d(D_a, "D_a", shape_a)
  check_patch_d(D_b, "D_b", shape_b)

  def init(key):
    k = jax.random.split(key, 5)
    return ({"ab": new_net_state(init_module(G_ab, k[0], shape_a, k[4]), tx_g, shape_a),
             "ba": new_net_state(init_module(G_ba, k[1], shape_b, k[4]), tx_g, shape_b)},
            {"a": new_net_state(init_module(D_a, k[2], shape_a, k[4]), tx_d, shape_a),
             "b": new_net_state(init_module(D_b, k[3], shape_b, k[4]), tx_d, shape_b)})

  return jax.jit(init)(as_key(key))


def _check_cycle_states(state_g, state_d) -> None:
  if not (isinstance(state_g, Mapping) and set(state_g) == {"ab", "ba"}
          and isinstance(state_d, Mapping) and set(state_d) == {"a", "b"}
          and all(isinstance(s, NetState) for s in (*state_g.values(), *state_d.values()))):
    raise InputTypeError("CycleGAN states are state_g = {'ab': NetState, 'ba': NetState} and "
                         "state_d = {'a': NetState, 'b': NetState}, from "
                         "jaxgan.steps.create_cyclegan_states; got "
                         f"{type(state_g).__name__} and {type(state_d).__name__}.")

"""Running the per-device step on many devices, and many steps per compiled call.

The step from ``make_train_step(..., axis_name="data")`` is written for one device's share
of the batch. This module composes it in the two ways JAX offers, both over one named
axis (``AXIS = "data"``):

* ``pmap_step``: ``jax.pmap`` with the states unmapped (``in_axes=None``,
  ``out_axes=None``), so no ``replicate``/``unreplicate`` is needed; the batch comes split
  as ``[local_devices, per_device_batch, ...]`` (``split_batch``).
* ``shard_map_step``: ``jax.jit(jax.shard_map(...))`` over a 1-D mesh (``data_mesh``),
  the path current JAX recommends; the batch is one global array sharded over the mesh
  (``shard_batch``, which also builds it from each process's share on multi-host runs).

Many steps per call: ``fuse_steps`` scans the step over a stack of ``K`` batches, and
``fuse_steps_on_device`` gathers each step's batch from a dataset held on the device, so
the host leaves the loop. Both are per-device functions too and compose the same way.

Placement consumes its input: like donation, ``replicate`` may reuse the input's buffer
for one of the replicas, so use the returned states and drop the old ones.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxgan.data import order as order_lib
from jaxgan.data import sources
from jaxgan.errors import ConfigError

AXIS = "data"
PyTree = Any


def data_mesh(devices: list | None = None, axis_name: str = AXIS,
              axis_type: jax.sharding.AxisType = jax.sharding.AxisType.Explicit) -> Mesh:
  """A 1-D mesh over ``devices`` (default: every device of every process)."""
  devices = jax.devices() if devices is None else list(devices)
  return jax.make_mesh((len(devices),), (axis_name,), axis_types=(axis_type,), devices=devices)


def pmap_mesh(devices: Sequence | None = None, axis_name: str = AXIS) -> Mesh:
  """The mesh ``jax.pmap`` itself puts its inputs and outputs on (axis type ``Auto``).

  Arrays placed on it (``replicate(states, pmap_mesh())``, ``split_batch``) are already
  where ``pmap`` wants them, so the first call does not compile a second program for
  differently placed states, and batches are not copied again.
  """
  return data_mesh(jax.local_devices() if devices is None else devices, axis_name,
                   jax.sharding.AxisType.Auto)


def replicate(tree: PyTree, mesh: Mesh) -> PyTree:
  """Places a pytree (e.g. the states) on every device of ``mesh``; consumes ``tree``."""
  sharding = NamedSharding(mesh, P())
  if jax.process_count() == 1:
    return jax.device_put(tree, sharding)
  # Multi-host: every process holds the same full value; each places its own replicas.
  def place(x):
    if jnp.issubdtype(jnp.result_type(x), jax.dtypes.prng_key):  # typed keys: via their data
      data = np.asarray(jax.random.key_data(x))
      impl = jax.random.key_impl(x)
      return jax.random.wrap_key_data(
          jax.make_array_from_process_local_data(sharding, data, data.shape), impl=impl)
    return jax.make_array_from_process_local_data(sharding, np.asarray(x), np.shape(x))

  return jax.tree.map(place, tree)


def _batch_error(what: str, shape, devices: int, fix: str) -> ValueError:
  return ValueError(f"{what} has shape {tuple(shape)}: its number of examples "
                    f"({shape[0] if shape else '?'}) must divide evenly over {devices} devices. "
                    f"{fix}")


@functools.cache
def _local_split_sharding(devices: tuple) -> NamedSharding:
  # Cached: split_batch runs once per batch in the data loop.
  return NamedSharding(pmap_mesh(devices), P(AXIS))


def shard_batch(batch: Mapping[str, Any], mesh: Mesh, batch_axis: int = 0) -> dict:
  """Makes global arrays sharded over the mesh's axis from this process's share of a batch.

  On one process ``batch`` is the whole global batch; on a multi-host run each process
  passes its own share (``global_batch / process_count`` examples), which becomes part of
  one global array (``jax.make_array_from_process_local_data``).

  Args:
    batch: dict of arrays with the examples on ``batch_axis``.
    mesh: a 1-D mesh (``data_mesh``).
    batch_axis: the examples' axis (1 for a stack ``[K, B, ...]`` of fused steps).

  Returns:
    The batch as global ``jax.Array``s, examples sharded over the mesh.

  Raises:
    ValueError: the examples do not divide evenly over this process's devices.
  """
  (axis,) = mesh.axis_names
  local_devices = len([d for d in mesh.devices.flat if d.process_index == jax.process_index()])
  spec = P(*([None] * batch_axis), axis)
  sharding = NamedSharding(mesh, spec)
  out = {}
  for name, x in batch.items():
    x = np.asarray(x)
    if x.ndim <= batch_axis or x.shape[batch_axis] % local_devices:
      raise _batch_error(f"batch[{name!r}]", x.shape[batch_axis:], local_devices,
                         "Choose a global batch size that is a multiple of the device count "
                         f"({mesh.devices.size} devices in all).")
    global_shape = list(x.shape)
    global_shape[batch_axis] *= jax.process_count()
    out[name] = jax.make_array_from_process_local_data(sharding, x, tuple(global_shape))
  return out


def split_batch(batch: Mapping[str, Any], num_devices: int | None = None,
                batch_axis: int = 0, devices: Sequence | None = None) -> dict:
  """Splits a host batch for ``pmap``: ``[B, ...]`` -> ``[devices, B / devices, ...]``.

  With ``batch_axis=1`` (a stack ``[K, B, ...]``) the result is ``[devices, K, B / devices, ...]``.
  When ``num_devices`` is the local device count (the default), or ``devices`` names the
  devices, the result is placed on them, one slice each, so ``pmap`` does not copy it again.

  Raises:
    ValueError: ``B`` does not divide by the device count.
  """
  if devices is not None:
    devices = tuple(devices)
    n = len(devices)
  else:
    n = jax.local_device_count() if num_devices is None else num_devices
    devices = tuple(jax.local_devices()) if n == jax.local_device_count() else None
  sharding = None if devices is None else _local_split_sharding(devices)
  out = {}
  for name, x in batch.items():
    x = np.asarray(x) if not isinstance(x, jax.Array) else x
    if x.ndim <= batch_axis or x.shape[batch_axis] % n:
      raise _batch_error(f"batch[{name!r}]", x.shape[batch_axis:], n,
                         "Choose a batch size that is a multiple of jax.local_device_count().")
    shape = x.shape[:batch_axis] + (n, x.shape[batch_axis] // n) + x.shape[batch_axis + 1:]
    x = x.reshape(shape)
    x = jnp.moveaxis(x, batch_axis, 0) if batch_axis else x
    out[name] = x if sharding is None else jax.device_put(x, sharding)
  return out


def _step_axis(step_fn: Callable, axis_name: str) -> None:
  # jaxgan's steps are dataclasses with their axis as a field; a user's function may be anything.
  made_with = getattr(step_fn, "axis_name", axis_name)
  if made_with != axis_name:
    raise ConfigError(
        f"The train step was made with axis_name={made_with!r}, but it is being mapped "
        f"over the axis {axis_name!r}. Make it with jaxgan.make_train_step(..., "
        f"axis_name={axis_name!r}).")


# Steps unrolled per loop iteration on the CPU (a loop over groups of this many steps):
# the fastest measured for the MLP pair at K=100 (a plain loop about 25% slower, groups
# of 8 or 10 slower too, full unrolling 5x slower after minutes of compiling); the DCGAN pair
# runs as fast as single steps either way (BUILD_NOTES.md, "Fused steps").
CPU_UNROLL = 4
# A convolution XLA:CPU runs at full speed inside a loop body: 2-D, NHWC/HWIO/NHWC.
_PLAIN_CONV = jax.lax.ConvDimensionNumbers((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2))


def all_eqns(jaxpr):
  """Every equation of ``jaxpr`` and of the jaxprs nested in it (pjit, custom_jvp/vjp,
  scan, cond: every branch), depth first."""
  for eqn in jaxpr.eqns:
    yield eqn
    for value in eqn.params.values():
      for inner in value if isinstance(value, tuple | list) else (value,):
        inner = getattr(inner, "jaxpr", inner)  # ClosedJaxpr -> Jaxpr
        if hasattr(inner, "eqns"):
          yield from all_eqns(inner)


def _slow_in_loops(jaxpr) -> bool:
  """Whether ``jaxpr`` holds a convolution in another layout than NHWC/HWIO, such as the
  weight and input gradients autodiff makes of ``lax.conv_general_dilated``: XLA:CPU
  runs those 2-170x slower inside a loop body than outside one (jax-ml/jax#12868).
  ``jaxgan.models.layers.conv_general_dilated`` writes its gradients in the plain form."""
  return any(eqn.primitive.name == "conv_general_dilated"
             and eqn.params["dimension_numbers"] != _PLAIN_CONV for eqn in all_eqns(jaxpr))


def _scan(body: Callable, carry, xs, length: int, unroll: bool | int | None):
  """``lax.scan`` with the CPU's unrolling when ``unroll`` is None.

  On the CPU: a loop over groups of ``CPU_UNROLL`` steps, unless the body holds a
  convolution XLA:CPU runs slowly in loops (``_slow_in_loops``; e.g. a user's module
  built on ``nn.Conv``'s default convolution), which is unrolled fully, at a compile time
  in proportion to the number of steps. Elsewhere a loop. Decided at trace time.
  """
  if unroll is None:
    unroll = 1
    if jax.default_backend() == "cpu":
      x = None if xs is None else jax.tree.map(lambda v: v[0], xs)
      slow = _slow_in_loops(jax.make_jaxpr(body)(carry, x).jaxpr)
      unroll = True if slow else min(CPU_UNROLL, length)
      if slow and length > 2 * CPU_UNROLL:
        warnings.warn(
            f"{length} steps per call are unrolled into one program on the CPU, because the "
            "step holds convolutions whose gradients XLA:CPU runs 2-170x slower inside a "
            "loop; compiling takes time in proportion. Build the modules' convolutions with "
            "nn.Conv(..., conv_general_dilated=jaxgan.models.layers.conv_general_dilated) "
            "to run them in a loop at full speed, or fuse fewer steps.", stacklevel=3)
  return jax.lax.scan(body, carry, xs, length=length, unroll=unroll)


@dataclasses.dataclass(frozen=True, eq=False)
class FusedSteps:
  """``K`` steps in one call (``fuse_steps``); a value, like the step it runs."""

  train_step: Callable
  unroll: bool | int | None = None

  @property
  def axis_name(self) -> str | None:
    return getattr(self.train_step, "axis_name", None)

  def __call__(self, state_g, state_d, batches, key):
    def body(carry, batch):
      state_g, state_d, metrics = self.train_step(*carry, batch, key)
      return (state_g, state_d), metrics

    k = jax.tree.leaves(batches)[0].shape[0]
    (state_g, state_d), metrics = _scan(body, (state_g, state_d), batches, k, self.unroll)
    return state_g, state_d, metrics


def fuse_steps(train_step: Callable, *, unroll: bool | int | None = None) -> FusedSteps:
  """``K`` steps in one call: a per-device ``(state_g, state_d, batches, key)`` function.

  ``batches`` is a dict of stacks ``[K, B, ...]``; ``K`` is taken from its shape. Returns
  the states after ``K`` steps and the metrics stacked ``[K]``. Equal to ``K`` calls of
  ``train_step``, one per batch: bit for bit as a loop, to float rounding when unrolled
  (XLA may then fuse across steps). ``unroll`` is ``lax.scan``'s; None: on the CPU a loop
  over groups of ``CPU_UNROLL`` unrolled steps (fully unrolled when the step holds
  convolutions that XLA:CPU runs slowly in loops, see ``_scan``), a loop elsewhere.
  """
  return FusedSteps(train_step, unroll)


@dataclasses.dataclass(frozen=True, eq=False)
class FusedStepsOnDevice:
  """``num_steps`` steps in one call with the dataset on the device
  (``fuse_steps_on_device``); a value, like the step it runs."""

  train_step: Callable
  num_steps: int
  batch_size: int
  data_key: jax.Array
  unroll: bool | int | None = None

  @property
  def axis_name(self) -> str | None:
    return getattr(self.train_step, "axis_name", None)

  def __call__(self, state_g, state_d, dataset, key):
    axis_name = self.axis_name
    num_examples = dataset["image"].shape[0]
    devices = 1 if axis_name is None else jax.lax.psum(1, axis_name)
    local = self.batch_size // devices
    offset = 0 if axis_name is None else jax.lax.axis_index(axis_name) * local

    def body(carry, _):
      state_g, state_d = carry
      index = order_lib.batch_indices(self.data_key, state_g.step, self.batch_size,
                                      num_examples)
      index = jax.lax.dynamic_slice_in_dim(index, offset, local)
      batch = {"image": sources.to_model_range(dataset["image"][index])}
      if "label" in dataset:
        batch["label"] = dataset["label"][index].astype(jnp.int32)
      state_g, state_d, metrics = self.train_step(state_g, state_d, batch, key)
      return (state_g, state_d), metrics

    (state_g, state_d), metrics = _scan(body, (state_g, state_d), None, self.num_steps,
                                        self.unroll)
    return state_g, state_d, metrics


def fuse_steps_on_device(train_step: Callable, num_steps: int, batch_size: int,
                         data_key: jax.Array, *, unroll: bool | int | None = None
                         ) -> FusedStepsOnDevice:
  """``num_steps`` steps per call with the dataset on the device.

  Returns a per-device ``(state_g, state_d, dataset, key)`` function; ``dataset`` is
  ``{"image": uint8 [N, H, W, C], "label": int [N]}`` held whole on every device. Step
  ``s`` (the generator's step counter) trains on ``jaxgan.data.order.batch_indices(data_key,
  s, batch_size, N)``, this device's slice of it when the step is mapped over an axis: the
  same examples a host pipeline would feed, with no host work in the loop.

  Args:
    train_step: from ``make_train_step``.
    num_steps: steps per call (static).
    batch_size: the global batch size.
    data_key: the run's data key.
    unroll: ``lax.scan``'s unroll; None: as ``fuse_steps``.
  """
  return FusedStepsOnDevice(train_step, num_steps, batch_size, data_key, unroll)


def pmap_step(step_fn: Callable, *, axis_name: str = AXIS, donate: bool = True,
              data_on_device: bool = False, devices: Sequence | None = None,
              compiler_options: Mapping[str, Any] | None = None) -> Callable:
  """``jax.pmap`` over local devices with the states unmapped.

  Args:
    step_fn: a per-device function ``(state_g, state_d, batch, key)`` (``train_step``,
      ``fuse_steps(...)``, ``fuse_steps_on_device(...)``) made with ``axis_name``.
    axis_name: the pmapped axis.
    donate: donate the state buffers.
    data_on_device: the third argument is a dataset replicated on every device
      (``fuse_steps_on_device``) rather than a per-device split batch.
    devices: the devices to map over (default: every local device).
    compiler_options: XLA options for the compilation (e.g. ``jaxgan.cpu.compiler_options()``);
      ``jax.pmap`` takes none itself, so the step is then compiled ahead of time, once
      per argument signature.

  Returns:
    ``f(state_g, state_d, batch, key)``; ``batch`` leaves are ``[local_devices, ...]``
    (``split_batch``). States and metrics come back unmapped (one copy).
  """
  _step_axis(step_fn, axis_name)
  n = jax.local_device_count() if devices is None else len(devices)
  if data_on_device:
    # pmap needs one mapped argument; with the dataset replicated, map a device index.
    def per_device(state_g, state_d, dataset, key, device_index):
      del device_index
      return step_fn(state_g, state_d, dataset, key)

    in_axes = (None, None, None, None, 0)
    device_index = np.arange(n)
  else:
    per_device, in_axes, device_index = step_fn, (None, None, 0, None), None
  mapped = jax.pmap(per_device, axis_name=axis_name, in_axes=in_axes,
                    out_axes=(None, None, None), donate_argnums=(0, 1) if donate else (),
                    devices=None if devices is None else list(devices))
  if compiler_options:
    mapped = _compiled_per_signature(mapped, dict(compiler_options))

  @functools.wraps(step_fn)
  def run(state_g, state_d, batch, key):
    if not data_on_device:
      for name, x in batch.items():
        if np.ndim(x) < 2 or np.shape(x)[0] != n:
          raise ConfigError(
              f"pmap_step takes batch leaves split as [devices={n}, per_device, ...]; "
              f"batch[{name!r}] has shape {tuple(np.shape(x))}. Split a host batch with "
              "jaxgan.parallel.split_batch(batch).")
      return mapped(state_g, state_d, batch, key)
    return mapped(state_g, state_d, batch, key, device_index)

  return run


def _compiled_per_signature(fn: Callable, compiler_options: dict) -> Callable:
  """``fn.lower(*args).compile(compiler_options)``, kept per shapes, dtypes and tree."""
  compiled = {}

  def call(*args):
    leaves, treedef = jax.tree.flatten(args)
    signature = (treedef, tuple(jax.typeof(x) for x in leaves))
    if signature not in compiled:
      compiled[signature] = fn.lower(*args).compile(compiler_options)
    return compiled[signature](*args)

  return call


def shard_map_step(step_fn: Callable, mesh: Mesh, *, donate: bool = True,
                   batch_axis: int = 0, data_on_device: bool = False,
                   compiler_options: Mapping[str, Any] | None = None) -> Callable:
  """``jax.jit(jax.shard_map(step_fn))`` over a 1-D mesh.

  Args:
    step_fn: a per-device function made with the mesh's axis name.
    mesh: from ``data_mesh``.
    donate: donate the state buffers.
    batch_axis: the examples' axis in the batch leaves (1 for ``fuse_steps`` stacks).
    data_on_device: the third argument is a dataset replicated on every device.
    compiler_options: XLA options for ``jax.jit`` (e.g. ``jaxgan.cpu.compiler_options()``).

  Returns:
    ``f(state_g, state_d, batch, key)`` taking the global batch. Host arrays are placed
    with ``shard_batch`` (single process; on multi-host runs pass ``shard_batch``'s
    output); states not yet on the mesh are placed with ``replicate`` (consuming them).
  """
  (axis,) = mesh.axis_names
  _step_axis(step_fn, axis)
  batch_spec = P() if data_on_device else P(*([None] * batch_axis), axis)
  mapped = jax.jit(
      jax.shard_map(step_fn, mesh=mesh, in_specs=(P(), P(), batch_spec, P()),
                    out_specs=(P(), P(), P())),
      donate_argnums=(0, 1) if donate else (),
      compiler_options=dict(compiler_options) if compiler_options else None)
  replicated = NamedSharding(mesh, P())
  batch_sharding = NamedSharding(mesh, batch_spec)

  def on_mesh(x, sharding):
    return isinstance(x, jax.Array) and x.sharding == sharding

  @functools.wraps(step_fn)
  def run(state_g, state_d, batch, key):
    # One leaf of each tells where the states are (a NetState, or a dict of them).
    if not all(on_mesh(jax.tree.leaves(s)[0], replicated) for s in (state_g, state_d)):
      state_g, state_d = replicate((state_g, state_d), mesh)
    if data_on_device:
      if not all(on_mesh(x, replicated) for x in batch.values()):
        batch = replicate(batch, mesh)
    elif not all(on_mesh(x, batch_sharding) for x in batch.values()):
      batch = shard_batch(batch, mesh, batch_axis)
    if not on_mesh(key, replicated):
      key = replicate(key, mesh)
    return mapped(state_g, state_d, batch, key)

  return run

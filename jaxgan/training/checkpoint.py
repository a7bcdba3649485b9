"""Checkpoints of a training run: the only module that imports Orbax.

A checkpoint at step ``s`` holds everything the run needs to continue bit for bit from
``s``: a pytree of arrays (both networks' ``NetState``: params, optimizer state, BatchNorm
and spectral-norm vectors, the generator's EMA and step counters; the root RNG key) and a
JSON document (the config and facts about the run). ``Checkpoints`` wraps an Orbax
``CheckpointManager``:

* saves are asynchronous: ``save`` returns once the arrays are copied off the device,
  and the files are written in a background thread while training goes on;
* a preservation policy keeps the newest ``keep`` checkpoints;
* a save is first written to a temporary directory and renamed when complete, so a
  process killed at any moment leaves either a complete checkpoint or a temporary
  directory, which is never restored (and is removed when the directory is opened again);
* ``restore_latest`` restores into an abstract target (shapes, dtypes and shardings,
  e.g. ``jaxgan.abstract_states``), so a run saved on 8 devices restores on 1 and the
  reverse; an unreadable checkpoint is moved aside with a notice and the one before it
  is tried.

"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from jaxgan import __version__
from jaxgan.errors import ConfigError, Error
from jaxgan.training.config import MAY_CHANGE, MUST_MATCH, STREAMS
from jaxgan.training.logs import notice

PyTree = Any
CORRUPT_DIR = "unreadable"  # where unreadable checkpoints are moved, inside the directory
# The layout of a checkpoint's arrays and JSON. A jaxgan reads its own format only: a run
# written in another is finished by the jaxgan that wrote it.
FORMAT = 1


class CheckpointError(Error, RuntimeError):
  """No checkpoint in the directory can be restored."""


class CheckpointMismatchError(Error, ValueError):
  """A checkpoint exists but belongs to a run the current config cannot continue."""


def _leaf_paths(tree: PyTree) -> dict[str, Any]:
  leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
  return {jax.tree_util.keystr(path, simple=True, separator="/"): leaf for path, leaf in leaves}


def _describe(leaf) -> str:
  return f"{getattr(leaf, 'dtype', '?')}{list(getattr(leaf, 'shape', ()))}"


def tree_differences(saved: PyTree, target: PyTree, limit: int = 5) -> list[str]:
  """Leaves that differ in presence, shape or dtype between two trees of arrays/metadata."""
  saved, target = _leaf_paths(saved), _leaf_paths(target)
  out = [f"{k}: only in the checkpoint" for k in saved if k not in target]
  out += [f"{k}: not in the checkpoint" for k in target if k not in saved]
  for k in saved.keys() & target.keys():
    a, b = saved[k], target[k]
    if tuple(a.shape) != tuple(b.shape) or np.dtype(a.dtype) != np.dtype(b.dtype):
      out.append(f"{k}: checkpoint {_describe(a)}, now {_describe(b)}")
  return sorted(out)[:limit] + ([f"... {len(out) - limit} more"] if len(out) > limit else [])


def run_target(abstract_states: tuple[PyTree, PyTree], mesh) -> dict[str, PyTree]:
  """The tree a training run saves, as shapes replicated over ``mesh``: what restores read
  into. ``abstract_states`` is ``(state_g, state_d)`` of ``jax.ShapeDtypeStruct``s."""
  from jax.sharding import NamedSharding
  from jax.sharding import PartitionSpec as P

  replicated = NamedSharding(mesh, P())
  abstract_g, abstract_d = abstract_states
  key_shape = jax.eval_shape(lambda: jax.random.key_data(jax.random.key(0)))
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated),
                      {"g": abstract_g, "d": abstract_d, "rng": key_shape})


class Checkpoints:
  """Asynchronous checkpoints of ``(arrays, json)`` pairs in one directory.

  Args:
    directory: where the step directories go (created when missing).
    keep: how many of the newest checkpoints to keep.
    log: where notices go (a fallback to an older checkpoint).
  """

  def __init__(self, directory: str, *, keep: int = 3,
               log: Callable[[str], None] = print):
    if keep < 1:
      raise ConfigError(f"keep must be at least 1 (checkpoints to keep), got {keep}.")
    self.directory = os.path.abspath(directory)
    self.keep = keep
    self._log = log
    self._manager = self._open()

  def _open(self) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(
        preservation_policy=ocp.checkpoint_managers.LatestN(self.keep),
        cleanup_tmp_directories=True,  # partial saves of a killed process
        enable_async_checkpointing=True,
    )
    # Handlers named up front, so a fresh manager (a resumed run) can read metadata.
    return ocp.CheckpointManager(
        self.directory, options=options,
        item_handlers={"arrays": ocp.StandardCheckpointHandler(),
                       "meta": ocp.JsonCheckpointHandler()})

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, arrays: PyTree, meta: dict) -> None:
    """Starts saving ``arrays`` and ``meta`` as step ``step``; returns before the write ends.

    The arrays are copied to host memory before this returns, so their device buffers
    may be donated to the next training step right away.
    """
    meta = {**meta, "format": FORMAT}
    self._manager.save(int(step), args=ocp.args.Composite(
        arrays=ocp.args.StandardSave(arrays), meta=ocp.args.JsonSave(meta)), force=True)

  def reached_preemption(self, step: int) -> bool:
    """Multi-host runs: True at the step all processes agreed to stop at (JAX's preemption
    service, which watches for SIGTERM)."""
    return self._manager.reached_preemption(step)

  def wait(self) -> None:
    """Blocks until every started save is complete on disk."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()

  def read_meta(self, step: int) -> dict:
    return self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))[
        "meta"]

  def restore(self, step: int, target: PyTree) -> PyTree:
    """Restores step ``step``'s arrays into ``target``'s structure, shapes and shardings.

    Raises:
      CheckpointMismatchError: the saved arrays differ from ``target`` in shape, dtype
        or structure.
    """
    saved = self._manager.item_metadata(step)["arrays"]
    saved = getattr(saved, "tree", saved)
    diffs = tree_differences(saved, target)
    if diffs:
      raise CheckpointMismatchError(
          f"The checkpoint at step {step} in {self.directory} does not match the state this "
          "config builds:\n  " + "\n  ".join(diffs))
    return self._manager.restore(step, args=ocp.args.Composite(
        arrays=ocp.args.StandardRestore(target)))["arrays"]

  def restore_latest(self, target: PyTree, check_meta: Callable[[dict], None] | None = None
                     ) -> tuple[int, PyTree, dict] | None:
    """Restores the newest readable checkpoint, or returns None when there is none.

    A checkpoint that cannot be read is moved to ``<directory>/unreadable/<step>`` (not
    deleted) with a notice, and the one before it is tried.

    Args:
      target: the abstract tree to restore into (``jax.ShapeDtypeStruct`` leaves with
        shardings).
      check_meta: called with the checkpoint's JSON before its arrays are read; raises to
        refuse it (e.g. a config from another run). Its errors are passed through.

    Returns:
      ``(step, arrays, meta)`` or None.

    Raises:
      CheckpointError: checkpoints exist but none can be read.
      CheckpointMismatchError: the newest readable checkpoint does not fit ``target``.
    """
    failures: list[str] = []
    for step in reversed(self.all_steps()):
      try:
        meta = self.read_meta(step)
      except Exception as e:  # noqa: BLE001 - any failure to read means unreadable files
        self._unreadable(step, e, failures)
        continue
      check_format(meta, self.directory)
      if check_meta is not None:
        check_meta(meta)
      try:
        arrays = self.restore(step, target)
      except CheckpointMismatchError:
        raise
      except Exception as e:  # noqa: BLE001
        self._unreadable(step, e, failures)
        continue
      return step, arrays, meta
    if failures:
      raise CheckpointError(
          f"None of the checkpoints in {self.directory} can be read:\n  " + "\n  ".join(failures)
          + f"\nThey were moved to {os.path.join(self.directory, CORRUPT_DIR)}. Start afresh "
          "with another --workdir, or restore a copy of the checkpoints.")
    return None

  def _unreadable(self, step: int, error: Exception, failures: list[str]) -> None:
    why = f"{type(error).__name__}: {(str(error).splitlines() or [''])[0][:200]}"
    failures.append(f"step {step}: {why}")
    moved = self._set_aside(step)
    self._log(f"jaxgan: checkpoint {step} in {self.directory} cannot be read ({why}); moved "
              f"it to {moved}; trying the one before it.")

  def _set_aside(self, step: int) -> str:
    """Moves an unreadable step directory out of the manager's sight; returns where."""
    self._manager.wait_until_finished()
    source = os.path.join(self.directory, str(step))
    dest_dir = os.path.join(self.directory, CORRUPT_DIR)
    os.makedirs(dest_dir, exist_ok=True)
    dest = os.path.join(dest_dir, str(step))
    suffix = 1
    while os.path.exists(dest):
      dest, suffix = os.path.join(dest_dir, f"{step}.{suffix}"), suffix + 1
    if jax.process_index() == 0:
      shutil.move(source, dest)
    self._manager.close()
    self._manager = self._open()
    return dest


def check_format(meta: dict, directory: str) -> None:
  """Raises ``CheckpointMismatchError`` for a checkpoint in another format than this
  jaxgan's, naming the format and the version that wrote it."""
  if meta.get("format") != FORMAT:
    raise CheckpointMismatchError(
        f"{directory} holds a checkpoint (step {meta.get('step')}) in format "
        f"{meta.get('format', 0)}, written by jaxgan {meta.get('jaxgan', '(unknown)')}; this "
        f"jaxgan ({__version__}) reads format {FORMAT} only. Finish that run with the jaxgan "
        "that wrote it, or start a new run in another --workdir.")


def check_resumable(meta: dict, config, facts: dict, directory: str,
                    must_match: Sequence[str] = MUST_MATCH,
                    may_change: Sequence[str] = MAY_CHANGE) -> None:
  """Raises when the checkpoint's run differs in a ``must_match`` field or in ``facts``
  (the image shape and the data actually loaded, which ``dataset="mnist"`` may replace
  offline); lists the ``may_change`` fields that differ."""
  saved = {**meta.get("config", {}), **{k: meta.get(k) for k in facts}}
  current = {**config.to_dict(), **facts}
  for field, what in STREAMS.items():
    if saved[field] != facts[field]:
      raise CheckpointMismatchError(
          f"{directory} holds a checkpoint (step {meta.get('step')}) of a run whose {what} "
          f"({saved[field]!r}; this jaxgan uses {facts[field]!r}), so resuming it here would "
          "not continue that run. Use another --workdir to start a new run, or finish this "
          f"one with the jaxgan that started it (jaxgan {meta.get('jaxgan')}).")
  differ = [k for k in (*must_match, *facts) if saved.get(k) != current[k]]
  if differ:
    lines = [f"{k}: checkpoint {saved.get(k)!r}, config {current[k]!r}" for k in differ]
    raise CheckpointMismatchError(
        f"{directory} holds a checkpoint (step {meta.get('step')}) of a run this config cannot "
        "continue:\n  " + "\n  ".join(lines) + "\nUse another --workdir to start a new run, or "
        "set these back to the checkpoint's values to resume it.")
  changed = [f"{k} {saved[k]!r} -> {config[k]!r}" for k in may_change
             if k in saved and saved[k] != config[k]]
  if changed:
    notice(f"jaxgan: resuming step {meta.get('step')} with changed settings (the run goes on "
            f"with the new values): {', '.join(changed)}.")


def restore_newest(workdir: str, target_for: Callable[[dict], tuple[PyTree, Any]],
                   log: Callable[[str], None] = notice) -> tuple[PyTree, dict, Any]:
  """The newest checkpoint of the run in ``workdir``, on one device: what using a trained
  network (sampling, translating) starts from.

  Args:
    workdir: the run's directory.
    target_for: ``meta -> (abstract states, context)``: the states to restore into, built
      from the checkpoint's JSON (its config and shapes), and anything the caller wants
      back with them (e.g. the modules it built).
    log: where notices go.

  Returns:
    ``(arrays, meta, context)``: the restored ``{"g", "d", "rng"}``, the JSON, the context.

  Raises:
    CheckpointError: no checkpoint in ``workdir``, or none readable.
    CheckpointMismatchError: a checkpoint of another format.
  """
  from jaxgan import parallel

  directory = os.path.join(os.path.abspath(workdir), "checkpoints")
  if not os.path.isdir(directory):
    raise CheckpointError(f"No checkpoint in {workdir}: train first (python "
                          f"experiments/<name>.py --workdir={workdir}), or pass the workdir of "
                          "a run.")
  checkpoints = Checkpoints(directory, log=log)
  try:
    step = checkpoints.latest_step()
    if step is None:
      raise CheckpointError(f"No complete checkpoint in {directory} yet.")
    meta = checkpoints.read_meta(step)
    check_format(meta, directory)
    abstract, context = target_for(meta)
    restored = checkpoints.restore_latest(
        run_target(abstract, parallel.data_mesh(jax.devices()[:1])))
  finally:
    checkpoints.close()
  if restored is None:
    raise CheckpointError(f"No readable checkpoint in {directory}.")
  _, arrays, meta = restored
  return arrays, meta, context

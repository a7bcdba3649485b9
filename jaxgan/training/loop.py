"""``train_and_evaluate(config, workdir)``: the training loop, one for every family.

The loop owns everything around the pure step: devices, checkpoints, logging, the
schedules of pictures and evaluations. What differs per family (data, networks, step,
pictures, measures) comes from its task (``jaxgan.training.tasks``).

* **Exact resume.** The run's randomness is a function of ``(seed, step)`` (the step
  folds the generator's step counter into the root key; batch ``s`` is a pure function of
  ``(seed, s)``), and a checkpoint holds both networks' whole states and the root key. So a
  run stopped at any checkpoint and started again on the same workdir ends bit for bit
  where an uninterrupted run ends.
* **Preemption.** SIGTERM or SIGINT (Ctrl-C) makes the loop finish the current step, save
  it, wait for the save and return; a second SIGINT interrupts at once. A process killed
  outright restarts from its newest complete checkpoint.
* **NaN/Inf guard.** Metrics stay on the device until they are fetched, every
  ``log_every`` steps, before every save, and at the end; a non-finite value stops the
  run with ``NonFiniteError`` naming the step and metric, and a state is checked finite
  before it is saved, so the newest checkpoint is always a good one.
* **Logging** (process 0): a progress bar with steps/s and the losses, ``metrics.jsonl``
  (means over each interval), TensorBoard events in ``workdir/tensorboard``, and sample
  grids from a fixed set of latent vectors in ``workdir/samples/step_XXXXXXX.png``.

"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxgan import __version__, cpu, parallel
from jaxgan.data import pipeline
from jaxgan.errors import ConfigError, Error
from jaxgan.state import NetState
from jaxgan.training import checkpoint as ckpt_lib
from jaxgan.training.checkpoint import check_resumable
from jaxgan.training.config import complete_any
from jaxgan.training.logs import Logs, newest_grid, notice
from jaxgan.training.preemption import Stopped, StopRequest, stop_on_signals
from jaxgan.training.tasks import make_task
from jaxgan.training.tasks.base import Task


class NonFiniteError(Error, FloatingPointError):
  """Training produced NaN or Inf; the message names the step, the metric and the checkpoint."""


@dataclasses.dataclass
class RunResult:
  """What ``train_and_evaluate`` returns.

  Attributes:
    state_g: the generator's final state (replicated over the devices used).
    state_d: the discriminator's.
    G: the generator module (``jaxgan.generate(G, state_g, key, n)`` samples it).
    D: the discriminator module.
    step: the step reached.
    metrics: means over the last logged interval.
    evaluation: the last evaluation (``fd``, ``coverage``, ``kl``, ``fd_floor``; the
      diversity measures and ``collapsed``, the list of collapsed classes), if any.
    preempted: the run stopped on a signal before ``config.steps``.
    grid: the newest sample grid (``workdir/samples/step_XXXXXXX.png``), or None.
  """

  state_g: NetState
  state_d: NetState
  G: Any
  D: Any
  step: int
  metrics: dict[str, float]
  evaluation: dict[str, Any]
  preempted: bool
  grid: str | None = None


def _devices(config) -> list:
  if config.num_devices == 0:
    return jax.devices()
  if jax.process_count() > 1:
    raise ConfigError("num_devices picks devices of a single process; on a multi-host run "
                      "leave it at 0 (every device).")
  if config.num_devices > jax.device_count():
    raise ConfigError(f"num_devices={config.num_devices}, but there are only "
                      f"{jax.device_count()} devices.")
  return jax.devices()[:config.num_devices]


@jax.jit
def _nonfinite_leaves(tree) -> Any:
  return jax.tree.map(lambda x: ~jnp.all(jnp.isfinite(x)), tree)


def _first_nonfinite_leaf(tree) -> str | None:
  flags = jax.device_get(_nonfinite_leaves(tree))
  bad = [jax.tree_util.keystr(path, simple=True, separator="/")
         for path, flag in jax.tree_util.tree_flatten_with_path(flags)[0] if flag]
  return bad[0] if bad else None


def _mean_metrics(pending: list[tuple[int, dict]], last_good: Callable[[], str]) -> dict:
  """Fetches the metrics of the steps in ``pending``; raises on the first non-finite one."""
  fetched = jax.device_get([m for _, m in pending])
  for (step, _), metrics in zip(pending, fetched, strict=True):
    if metrics.get("labels_out_of_range", 0) > 0:
      raise ConfigError(
          f"At step {step}, {100 * float(metrics['labels_out_of_range']):.1f}% of the batch's "
          "labels were outside the classes the models were built for (the training split's "
          f"labels at the start of the run). Check the data's labels. {last_good()}")
    for name, value in metrics.items():
      if not np.isfinite(value):
        raise NonFiniteError(
            f"Training diverged: {name} = {float(value)} at step {step}, the first non-finite "
            f"value. {last_good()} Lower the learning rates, or add a stabiliser "
            "(r1_weight, gp_weight, spectral_norm, clip), then run again to resume from it.")
  return {name: float(np.mean([m[name] for m in fetched])) for name in fetched[0]}


def _restore_or_init(task: Task, checkpoints, mesh):
  """The newest complete checkpoint, restored onto ``mesh``; else fresh states."""
  config = task.config
  restored = checkpoints.restore_latest(
      ckpt_lib.run_target(task.abstract_states(), mesh),
      lambda meta: check_resumable(meta, config, task.facts, checkpoints.directory,
                                    task.must_match, task.may_change))
  if restored is None:
    root_key = jax.random.key(config.seed)
    state_g, state_d = task.init_states(jax.random.fold_in(root_key, 0))
    return 0, *parallel.replicate((state_g, state_d), mesh), root_key, {}
  step, arrays, meta = restored
  notice(f"jaxgan: resumed from step {step} in {checkpoints.directory}.")
  if step >= config.steps:
    notice(f"jaxgan: the run is already at step {step} (config.steps={config.steps}); "
            "nothing to train. Raise --config.steps to train further.")
  # The key goes via the host: then it is committed to no mesh, as a fresh run's is.
  return (step, arrays["g"], arrays["d"], jax.random.wrap_key_data(np.asarray(arrays["rng"])),
          meta)


def train_and_evaluate(config: ml_collections.ConfigDict | dict, workdir: str) -> RunResult:
  """Trains a GAN as ``config`` says, resuming from ``workdir`` when it holds a checkpoint.

  SIGTERM or a first Ctrl-C at any moment stops it within one step: it saves what there
  is (an evaluation the signal interrupted is marked in the checkpoint and made on
  resume) and returns with ``preempted`` set; running again resumes bit for bit.

  Args:
    config: fields of ``default_config()`` (missing ones take their defaults).
    workdir: where checkpoints (``checkpoints/``), ``metrics.jsonl``, TensorBoard events
      (``tensorboard/``) and sample grids (``samples/``) go.

  Returns:
    A ``RunResult``. ``preempted`` is True when a signal stopped the run early (it saved
    first; running again resumes). A signal before training started (while the data
    loaded or the classifier trained) returns no states.

  Raises:
    ValueError: a bad config, or a batch that does not divide over the devices.
    jaxgan.training.checkpoint.CheckpointMismatchError: ``workdir`` holds a run this config
      cannot continue (the message names the differences).
    jaxgan.training.checkpoint.CheckpointError: ``workdir`` holds checkpoints, none readable.
    NonFiniteError: a metric or the state became NaN/Inf.
    jaxgan.data.DataError: the dataset cannot be loaded.
  """
  with stop_on_signals() as stop:
    try:
      return _train_and_evaluate(config, workdir, stop)
    except Stopped:
      notice(f"jaxgan: stopped ({stop.signal}) before training; nothing in "
              f"{os.path.abspath(workdir)} changed. Run the same command again to resume.")
      return RunResult(None, None, None, None, -1, {}, {}, True)


def _train_and_evaluate(config, workdir: str, stop: StopRequest) -> RunResult:
  config = complete_any(config)
  workdir = os.path.abspath(workdir)
  devices = _devices(config)
  if config.batch_size % len(devices):
    raise ConfigError(f"batch_size={config.batch_size} does not divide over {len(devices)} "
                      "devices; make it a multiple of the device count.")
  task = make_task(config, stop)
  task.abstract_states()  # networks that cannot be built for the data's shape fail here
  stop.check()
  # Only now: bad data, a bad config or a model that does not fit the data, found while the
  # task was made, leaves no workdir.
  os.makedirs(workdir, exist_ok=True)
  run = _Run(task, workdir, devices, stop)
  try:
    return run.train()
  finally:
    run.close()


class _Run:
  """One run's moving parts: the states, the checkpoints, the logs and the compiled steps.

  ``train`` is the loop; the other methods are its phases. The states are replaced, never
  changed in place, at every step.
  """

  def __init__(self, task: Task, workdir: str, devices: list, stop: StopRequest):
    config = self.config = task.config
    self.task, self.workdir, self.devices, self.stop = task, workdir, devices, stop
    self.pmap_devices = devices if config.num_devices else None  # None: pmap's own, all
    self.mesh = (parallel.pmap_mesh(self.pmap_devices) if config.parallel == "pmap"
                 else parallel.data_mesh(devices))
    self.checkpoints = ckpt_lib.Checkpoints(os.path.join(workdir, "checkpoints"),
                                            keep=config.keep_checkpoints, log=notice)
    self.logs = self.bar = self.batches = None
    try:
      (self.start_step, self.state_g, self.state_d, root_key,
       self.meta) = _restore_or_init(task, self.checkpoints, self.mesh)
      stop.check()
    except BaseException:
      self.checkpoints.close()
      raise
    self.root_key = root_key
    self.step_key = parallel.replicate(jax.random.fold_in(root_key, 1), self.mesh)
    self.grid_key = jax.random.fold_in(root_key, 2)
    self.eval_key = jax.random.fold_in(root_key, 3)  # the same latents at every evaluation
    self.last_saved = self.checkpoints.latest_step()
    self.train_step = task.make_step(parallel.AXIS)
    self.options = cpu.compiler_options(config.get("cpu_conv_kernels", "xla"))
    self.step_fns: dict = {}

  def close(self) -> None:
    if self.batches is not None:
      self.batches.close()
    if self.bar is not None:
      self.bar.close()
    if self.logs is not None:
      self.logs.close()
    self.checkpoints.close()

  def last_good(self) -> str:
    """Where the run can go on from, for an error's message."""
    self.checkpoints.wait()
    if self.last_saved is None:
      return "No checkpoint was saved before it."
    return (f"The newest checkpoint, step {self.last_saved} in {self.checkpoints.directory}, "
            "was saved before it and is finite.")

  def step_fn(self, step: int):
    """The compiled step for ``step``: one for the run, or with the task's lazy schedule
    fixed, one per pattern (``TrainStep.at``)."""
    pattern = self.train_step.lazy_at(step) if self.task.fix_schedule else None
    if pattern not in self.step_fns:
      fn = self.train_step if pattern is None else self.train_step.at(step)
      if self.config.parallel == "pmap":
        self.step_fns[pattern] = parallel.pmap_step(fn, devices=self.pmap_devices,
                                                    compiler_options=self.options)
      else:
        self.step_fns[pattern] = parallel.shard_map_step(fn, self.mesh,
                                                         compiler_options=self.options)
    return self.step_fns[pattern]

  def place(self, batch):
    if self.config.parallel == "pmap":
      return parallel.split_batch(batch, devices=self.pmap_devices)
    return parallel.shard_batch(batch, mesh=self.mesh)

  def save(self, step: int, eval_pending: bool) -> None:
    bad = _first_nonfinite_leaf((self.state_g, self.state_d))
    if bad is not None:
      raise NonFiniteError(f"Training diverged: the state has NaN/Inf in {bad} at step {step}; "
                           f"it was not saved. {self.last_good()}")
    self.checkpoints.save(
        step, {"g": self.state_g, "d": self.state_d, "rng": jax.random.key_data(self.root_key)},
        {"config": self.config.to_dict(), "step": step, **self.task.facts,
         "devices": len(self.devices), "processes": jax.process_count(),
         "jax": jax.__version__, "jaxgan": __version__, "eval_pending": eval_pending})
    self.last_saved = step

  def evaluate(self, step: int, final: bool = False) -> dict:
    """The evaluation at ``step``, logged; {} when a signal interrupted it."""
    try:
      result = self.task.evaluate(self.state_g, self.eval_key, self.stop.check, final)
    except Stopped:
      return {}
    self.logs.metrics(step, result, prefix="eval")
    return result

  def _open_outputs(self) -> None:
    config = self.config
    self.logs = Logs(self.workdir, self.start_step)
    if config.progress and jax.process_index() == 0:
      from tqdm import tqdm

      self.bar = tqdm(total=config.steps, initial=min(self.start_step, config.steps),
                      unit="step", dynamic_ncols=True, desc="train")

  def train(self) -> RunResult:
    config, task, stop = self.config, self.task, self.stop
    self._open_outputs()
    # Compiled here rather than at the first save, which would stall the loop; a restored
    # state is finite by construction (only finite states are saved), so this also checks
    # the files once more.
    if (bad := _first_nonfinite_leaf((self.state_g, self.state_d))) is not None:
      raise NonFiniteError(f"The state at step {self.start_step} has NaN/Inf in {bad}.")
    evaluates = task.evaluates and config.eval_every > 0
    step, metrics, evaluation = self.start_step, {}, {}
    # An evaluation a signal interrupted before the checkpoint was saved: made now, so the
    # run's logs hold what an uninterrupted run's hold.
    eval_pending = bool(self.meta.get("eval_pending")) and evaluates
    if eval_pending and stop.signal is None:
      evaluation = self.evaluate(step, final=step >= config.steps)
      eval_pending = not evaluation
    pending: list[tuple[int, dict]] = []
    interval_start, interval_step = time.perf_counter(), step
    self.batches = pipeline.Prefetch(task.batches(step), place=self.place)
    if stop.signal is not None:  # during the restore or the pending evaluation: nothing new
      raise Stopped(stop.signal)
    while step < config.steps:
      _, batch = next(self.batches)
      self.state_g, self.state_d, step_metrics = self.step_fn(step)(
          self.state_g, self.state_d, batch, self.step_key)
      step += 1
      pending.append((step, step_metrics))
      if self.bar is not None:
        self.bar.update(1)
      final = step == config.steps
      stopping = _stopping(stop, self.checkpoints, step)
      saving = step % config.checkpoint_every == 0 or final or stopping
      if step % config.log_every == 0 or saving:  # metrics are checked before every save
        metrics = _mean_metrics(pending, self.last_good)
        now = time.perf_counter()
        rate = (step - interval_step) / (now - interval_start)
        interval_start, interval_step, pending = now, step, []
        self.logs.metrics(step, {**metrics, "steps_per_sec": rate, "time": time.time()})
        if self.bar is not None:
          self.bar.set_postfix(**task.postfix(metrics), refresh=False)
      if step % config.sample_every == 0 or final or stopping:
        images, columns = task.grid(self.state_g, self.grid_key)
        self.logs.grid(step, np.asarray(images), columns)
      if evaluates and (step % config.eval_every == 0 or final):
        evaluation = {} if stopping else self.evaluate(step, final)
        eval_pending = not evaluation  # a signal came before or during it: made on resume
        stopping, saving = stopping or eval_pending, saving or eval_pending
      if saving:
        self.save(step, eval_pending)
      if stopping:
        break
      eval_pending = False
    return self._finish(step, metrics, evaluation, eval_pending)

  def _finish(self, step: int, metrics: dict, evaluation: dict, eval_pending: bool
              ) -> RunResult:
    preempted = step < self.config.steps or eval_pending  # an evaluation is still owed
    self.checkpoints.wait()
    if preempted:
      notice(f"jaxgan: stopped at step {step} ({self.stop.signal or 'preemption'}); the "
             f"checkpoint is saved in {self.checkpoints.directory}. Run the same command "
             "again to resume.")
    elif evaluation and jax.process_index() == 0:
      print(self.task.summary(step, evaluation), flush=True)
    return RunResult(self.state_g, self.state_d, self.task.G, self.task.D, step, metrics,
                     evaluation, preempted, newest_grid(self.workdir))


def _stopping(stop: StopRequest, checkpoints, step: int) -> bool:
  """A signal arrived, or (multi-host) the processes agreed to stop at this step."""
  return stop.signal is not None or (
      jax.process_count() > 1 and checkpoints.reached_preemption(step))



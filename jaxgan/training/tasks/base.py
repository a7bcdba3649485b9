"""What the training loop needs to know of a family.

One loop (``jaxgan.training.train_and_evaluate``) serves every family: it keeps the
checkpoints, preemption, the NaN guard, logging, the sample grids' schedule and the
evaluations' schedule. What differs between noise-to-image, pix2pix and CycleGAN (the
data, the models and their states, the step, the pictures, the measures) is a ``Task``,
built once per run from the completed config.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import jax


class Task:
  """One family's part of a run. A subclass's ``__init__`` loads its data and builds its
  networks, and sets:

  Attributes:
    config: the completed config.
    facts: recorded in every checkpoint; a run resumes only with the same (the data's
      description and shapes, the random streams, what the step keeps in the states).
    G: the generator module (a dict of modules for CycleGAN), for ``RunResult``.
    D: the discriminator module (or dict).
    must_match: config fields a resumed run may not change.
    may_change: config fields a resumed run may change (a notice lists them).
    fix_schedule: compile one step per lazy-regularisation pattern (``TrainStep.at``)
      instead of deciding inside the step (what a CPU runs faster).
  """

  config: Any
  facts: dict
  G: Any
  D: Any
  must_match: tuple[str, ...] = ()
  may_change: tuple[str, ...] = ()
  fix_schedule: bool = False

  def make_step(self, axis_name: str | None) -> Callable:
    """The family's step (a frozen dataclass with ``axis_name`` and ``prepare_states``)."""
    raise NotImplementedError

  def init_states(self, key: jax.Array) -> tuple[Any, Any]:
    """``(state_g, state_d)`` at step 0, with the step's own state."""
    raise NotImplementedError

  def abstract_states(self) -> tuple[Any, Any]:
    """The states as ``jax.ShapeDtypeStruct``s: what a checkpoint restores into."""
    return jax.eval_shape(self.init_states, jax.random.key(0))

  def batches(self, start_step: int) -> Iterator:
    """Iterator of ``(step, host batch)`` from ``start_step`` on."""
    raise NotImplementedError

  def grid(self, state_g, key: jax.Array) -> tuple[Any, int]:
    """``(images [N, H, W, C] in [-1, 1], columns)``: the picture saved every
    ``sample_every`` steps."""
    raise NotImplementedError

  @property
  def evaluates(self) -> bool:
    """Whether ``evaluate`` measures anything (a family without a classifier may not)."""
    return False

  def evaluate(self, state_g, key: jax.Array, check: Callable[[], None], final: bool
               ) -> dict[str, float]:
    """The measures of ``state_g``; ``check`` is called between chunks of work (it raises
    to stop)."""
    return {}

  def summary(self, step: int, evaluation: dict) -> str:
    """The lines printed when the run ends."""
    raise NotImplementedError

  def postfix(self, metrics: dict) -> dict:
    """What the progress bar shows of the step's metrics."""
    return {"d_loss": f"{metrics['d_loss']:.3f}", "g_loss": f"{metrics['g_loss']:.3f}"}

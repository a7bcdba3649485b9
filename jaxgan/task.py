"""What the training loop needs to know of a family: the description ``train.py`` runs.

One loop (``jaxgan.train.train_and_evaluate``) serves every family: it keeps the
checkpoints, preemption, the NaN guard, logging, the sample grids' schedule and the
evaluations' schedule. What differs between noise-to-image, pix2pix and CycleGAN (the
data, the models and their states, the step, the pictures, the measures) comes in as a
``Task``: plain values and pure-ish callables, built once per run from the config.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any


@dataclasses.dataclass
class Task:
  """One family's part of a run.

  Attributes:
    config: the completed config (``steps`` and the other auto fields resolved).
    facts: recorded in every checkpoint; a run resumes only with the same (the data's
      description and shapes, the random streams, what the step keeps in the states).
    G: the generator module (a dict of modules for CycleGAN), for ``RunResult``.
    D: the discriminator module (or dict).
    make_step: ``axis_name -> train_step`` (with ``.config.axis_name`` and
      ``.prepare_states``).
    init_states: ``key -> (state_g, state_d)`` at step 0, with the step's own state.
    abstract_states: ``() -> (state_g, state_d)`` as ``jax.ShapeDtypeStruct``s (what a
      checkpoint restores into).
    batches: ``start_step -> iterator of (step, host batch)``.
    grid: ``(state_g, key) -> (images [N, H, W, C] in [-1, 1], columns)``: the picture
      saved every ``sample_every`` steps.
    evaluate: ``(state_g, key, check, final) -> dict of floats``, or None (no measures);
      ``check`` is called between chunks of work (it raises to stop).
    summary: ``(step, evaluation) -> str``: the lines printed when the run ends.
    must_match: config fields a resumed run may not change.
    may_change: config fields a resumed run may change (a notice lists them).
    defaults: the config's defaults (what a checkpoint written before a field existed
      ran with).
    lazy_at: ``step -> static pattern`` for steps with lazy regularisation on a CPU (one
      compiled step per pattern, see ``jaxgan.step``), or None.
    postfix: ``metrics -> dict`` shown in the progress bar.
  """

  config: Any
  facts: dict
  G: Any
  D: Any
  make_step: Callable[[str | None], Callable]
  init_states: Callable[[Any], tuple[Any, Any]]
  abstract_states: Callable[[], tuple[Any, Any]]
  batches: Callable[[int], Iterator]
  grid: Callable[[Any, Any], tuple[Any, int]]
  evaluate: Callable[..., dict] | None
  summary: Callable[[int, dict], str]
  must_match: tuple[str, ...]
  may_change: tuple[str, ...]
  defaults: dict
  lazy_at: Callable[[int], Any] | None = None
  postfix: Callable[[dict], dict] = lambda metrics: {
      "d_loss": f"{metrics['d_loss']:.3f}", "g_loss": f"{metrics['g_loss']:.3f}"}

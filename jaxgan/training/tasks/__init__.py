"""One file per family: what the loop needs to run it (``Task``), built from a config."""

from __future__ import annotations

from jaxgan.training.tasks.base import Task
from jaxgan.training.tasks.cyclegan import CycleGANTask
from jaxgan.training.tasks.noise import NoiseTask
from jaxgan.training.tasks.pix2pix import Pix2PixTask

FAMILY_TASKS = {"noise": NoiseTask, "pix2pix": Pix2PixTask, "cyclegan": CycleGANTask}


def make_task(config, stop) -> Task:
  """The family's ``Task`` for a completed config (``config.family``)."""
  return FAMILY_TASKS[config.family](config, stop)


__all__ = ["FAMILY_TASKS", "CycleGANTask", "NoiseTask", "Pix2PixTask", "Task", "make_task"]

"""What a run writes for people (process 0 only): notices on stderr, ``metrics.jsonl``,
TensorBoard events and sample grids in the workdir.
"""

from __future__ import annotations

import json
import os
import sys

import jax
import numpy as np

from jaxgan.evaluators import pictures


def notice(message: str) -> None:
  if jax.process_index() == 0:
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)


class Logs:
  """metrics.jsonl, TensorBoard events and sample PNGs in the workdir (process 0 only)."""

  def __init__(self, workdir: str, start_step: int):
    self.enabled = jax.process_index() == 0
    if not self.enabled:
      return
    self.jsonl = os.path.join(workdir, "metrics.jsonl")
    self.samples = os.path.join(workdir, "samples")
    truncate_jsonl(self.jsonl, start_step)
    from tensorboardX import SummaryWriter

    # purge_step: TensorBoard hides events a killed run wrote after the checkpoint.
    self.tb = SummaryWriter(os.path.join(workdir, "tensorboard"), purge_step=start_step)
    self.file = open(self.jsonl, "a")  # noqa: SIM115 - closed in close()

  def metrics(self, step: int, values: dict[str, float], prefix: str = "train") -> None:
    if not self.enabled:
      return
    record = {"step": step, **values} if prefix == "train" else {"step": step, prefix: values}
    self.file.write(json.dumps(record) + "\n")
    self.file.flush()
    for name, value in values.items():
      if name != "time" and isinstance(value, int | float):  # not the list of classes
        self.tb.add_scalar(f"{prefix}/{name}", value, step)

  def grid(self, step: int, images: np.ndarray, columns: int) -> str | None:
    if not self.enabled:
      return None
    picture = pictures.image_grid(images, columns)  # exact size: TensorBoard zooms itself
    path = os.path.join(self.samples, f"step_{step:07d}.png")
    pictures.save_image(pictures.for_display(picture, images.shape[1:3]), path)
    self.tb.add_image("samples", picture, step, dataformats="HWC")
    return path

  def close(self) -> None:
    if self.enabled:
      self.file.close()
      self.tb.close()


def truncate_jsonl(path: str, last_step: int) -> None:
  """Drops records after ``last_step`` (written by a run killed after its checkpoint)."""
  if not os.path.exists(path):
    return
  with open(path) as f:
    lines = f.readlines()
  keep = []
  for line in lines:
    try:
      if json.loads(line)["step"] <= last_step:
        keep.append(line)
    except (ValueError, KeyError, TypeError):
      continue  # a line cut short by a kill
  if len(keep) != len(lines):
    with open(path + ".tmp", "w") as f:
      f.writelines(keep)
    os.replace(path + ".tmp", path)


def newest_grid(workdir: str) -> str | None:
  """The newest ``samples/step_XXXXXXX.png`` of a run's directory, or None."""
  samples = os.path.join(workdir, "samples")
  if not os.path.isdir(samples):
    return None
  names = sorted(n for n in os.listdir(samples) if n.startswith("step_") and n.endswith(".png"))
  return os.path.join(samples, names[-1]) if names else None

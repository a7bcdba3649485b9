"""Batches of a source in the run's order, prefetched and placed on the devices."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator

import jax
import numpy as np

from jaxgan.data.order import host_batch_indices
from jaxgan.data.sources import ArraySource, DataError, to_model_range


def batches(source: ArraySource, batch_size: int, seed: int, start_step: int = 0, *,
            process_index: int | None = None, process_count: int | None = None,
            stream: int = 0) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
  """Yields ``(step, batch)`` for ``step = start_step, start_step + 1, ...``.

  ``batch`` is this process's share of global batch ``step``: examples
  ``batch_indices(key(seed), step, batch_size, N)[p * b : (p + 1) * b]`` with
  ``b = batch_size / process_count``, as ``{"image": float32 [b, H, W, C] in [-1, 1],
  "label": int32 [b]}``. A run restarted at step ``s`` gets exactly the batches it would
  have had; the indices are computed on the host CPU with the same function the
  on-device loop uses (``jaxgan.parallel.fuse_steps_on_device`` with
  ``data_key=jax.random.key(seed)``).

  Any source with ``len()``, ``description`` and ``get(indices) -> dict`` of uint8 pixel
  arrays (and ``label``) serves (``jaxgan.data.pairs.PairedSource``: ``source`` and
  ``image``); every field but ``label`` comes out in [-1, 1]. ``stream`` > 0 orders the
  examples by the key ``fold_in(key(seed), stream)`` instead: an order independent of
  stream 0's (a second dataset of the same run).

  Raises:
    DataError: the batch does not divide over the processes, or exceeds the split.
  """
  p = jax.process_index() if process_index is None else process_index
  count = jax.process_count() if process_count is None else process_count
  if batch_size % count:
    raise DataError(f"The global batch size {batch_size} does not divide over {count} "
                    "processes; make it a multiple of the process count.")
  if batch_size > len(source):
    raise DataError(f"The batch size {batch_size} exceeds the {len(source)} examples of "
                    f"{source.description}.")
  share = batch_size // count
  key = jax.random.key(seed)
  if stream:
    key = jax.random.fold_in(key, stream)
  key_words = np.asarray(jax.random.key_data(key))
  step = start_step
  while True:
    index = host_batch_indices(key_words, step, batch_size, len(source))[p * share:
                                                                          (p + 1) * share]
    examples = source.get(index)
    yield step, {name: x.astype(np.int32) if name == "label" else to_model_range(x)
                 for name, x in examples.items()}
    step += 1


class Prefetch:
  """Prepares batches in a background thread and places them on the device ahead of use.

  ``for step, batch in Prefetch(batches(...), place=...)`` keeps ``size`` batches ready,
  already transferred (``place`` is e.g. ``jax.device_put``,
  ``jaxgan.parallel.split_batch`` or ``functools.partial(shard_batch, mesh=mesh)``), so
  the device does not wait for the host. An exception in the producer is raised in the
  consumer. ``close()`` (or leaving a ``with`` block) stops the thread.
  """

  _DONE = object()

  def __init__(self, iterator: Iterator, place: Callable = jax.device_put, size: int = 2):
    self._queue: queue.Queue = queue.Queue(maxsize=size)
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._fill, args=(iterator, place), daemon=True)
    self._thread.start()

  def _fill(self, iterator, place):
    try:
      for step, batch in iterator:
        item = (step, place(batch))
        while not self._stop.is_set():
          try:
            self._queue.put(item, timeout=0.1)
            break
          except queue.Full:
            continue
        if self._stop.is_set():
          return
    except BaseException as e:  # noqa: BLE001 - handed to the consumer
      self._queue.put(e)
      return
    self._queue.put(self._DONE)

  def __iter__(self):
    return self

  def __next__(self):
    item = self._queue.get()
    if item is self._DONE:
      raise StopIteration
    if isinstance(item, BaseException):
      raise item
    return item

  def close(self) -> None:
    self._stop.set()
    while not self._queue.empty():  # unblock a producer waiting on a full queue
      try:
        self._queue.get_nowait()
      except queue.Empty:
        break
    self._thread.join(timeout=5)

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()

"""Batches of a source in the run's order, prefetched and placed on the devices."""

from __future__ import annotations

import dataclasses
import itertools
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import jax
import numpy as np

from jaxgan.data.order import host_batch_indices
from jaxgan.data.sources import DataError, to_model_range


@dataclasses.dataclass(frozen=True)
class BatchReader:
  """Batch ``step``'s share for one process: ``step -> (step, batch)``, a pure function of
  the step (a worker process computes the same batch the main process would)."""

  source: Any
  batch_size: int
  key_words: np.ndarray
  first: int
  share: int

  def __call__(self, step: int) -> tuple[int, dict[str, np.ndarray]]:
    index = host_batch_indices(self.key_words, step, self.batch_size,
                               len(self.source))[self.first:self.first + self.share]
    examples = self.source.get(index)
    return step, {name: x.astype(np.int32) if name == "label" else to_model_range(x)
                  for name, x in examples.items()}


def batches(source, batch_size: int, seed: int, start_step: int = 0, *,
            process_index: int | None = None, process_count: int | None = None,
            stream: int = 0, workers: int = 0) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
  """Yields ``(step, batch)`` for ``step = start_step, start_step + 1, ...``.

  ``batch`` is this process's share of global batch ``step``: examples
  ``batch_indices(key(seed), step, batch_size, N)[p * b : (p + 1) * b]`` with
  ``b = batch_size / process_count``, as ``{"image": float32 [b, H, W, C] in [-1, 1],
  "label": int32 [b]}``. A run restarted at step ``s`` gets exactly the batches it would
  have had; the indices are computed on the host CPU with the same function the
  on-device loop uses (``jaxgan.parallel.fuse_steps_on_device`` with
  ``data_key=jax.random.key(seed)``). Each process reads only its own share.

  Any source with ``len()``, ``description`` and ``get(indices) -> dict`` of uint8 pixel
  arrays (and ``label``) serves (``jaxgan.data.pairs.PairedSource``: ``source`` and
  ``image``); every field but ``label`` comes out in [-1, 1]. ``stream`` > 0 orders the
  examples by the key ``fold_in(key(seed), stream)`` instead: an order independent of
  stream 0's (a second dataset of the same run).

  ``workers`` > 0 reads and decodes the batches in that many worker processes (Grain's
  ``mp_prefetch``; the source is pickled to them), each computing whole batches, handed
  back in step order: the same batches as ``workers=0``, which reads them in this process.

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
  read = BatchReader(source, batch_size, np.asarray(jax.random.key_data(key)), p * share, share)
  if workers > 0:
    return _GrainBatches(read, start_step, workers)
  return map(read, itertools.count(start_step))


# Far beyond any run: Grain's datasets have a length.
_LAST_STEP = 2**31 - 1


class _GrainBatches:
  """The iterator over a Grain pipeline of ``read`` in worker processes; ``close()`` stops
  the workers."""

  def __init__(self, read: BatchReader, start_step: int, workers: int):
    import grain
    from absl import flags

    if not flags.FLAGS.is_parsed():
      # Grain reads its absl flags (defaults are fine) and fails outside absl.app.run
      # (a script, a notebook, a test) unless they count as parsed.
      flags.FLAGS.mark_as_parsed()
    dataset = grain.MapDataset.range(start_step, _LAST_STEP).map(read)
    # One reading thread per worker, a batch or two ahead: the batches are whole and
    # large, and threads beyond the cores only take them from the step.
    dataset = dataset.to_iter_dataset(grain.ReadOptions(num_threads=1, prefetch_buffer_size=1))
    self._iterator = iter(dataset.mp_prefetch(
        grain.MultiprocessingOptions(num_workers=workers, per_worker_buffer_size=2)))

  def __iter__(self):
    return self

  def __next__(self):
    step, batch = next(self._iterator)
    # Out of Grain's shared memory at once: its arrays free that memory when collected, and
    # those still alive when the interpreter exits complain that it is gone.
    return step, {name: np.array(x) for name, x in batch.items()}

  def close(self) -> None:
    if self._iterator is not None:
      self._iterator.close()
      self._iterator = None


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
    self._iterator = iterator
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
    close = getattr(self._iterator, "close", None)
    if close is not None and not self._thread.is_alive():  # a generator running can't close
      close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()

"""The one timing rule every benchmark here uses: warm up, then the median of repeats."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_seconds(fn: Callable[[], object], repeats: int, *, warmup: int = 0, calls: int = 1,
                   sync: Callable[[], object] | None = None) -> float:
  """Median over ``repeats`` of the time of ``calls`` calls of ``fn``, divided by ``calls``.

  ``warmup`` untimed calls come first (compilation). ``sync`` waits for queued device work
  (e.g. ``block_until_ready``) before each clock reading; without it, ``fn`` must block.
  """
  sync = sync or (lambda: None)
  for _ in range(warmup):
    fn()
  sync()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(calls):
      fn()
    sync()
    times.append((time.perf_counter() - start) / calls)
  return statistics.median(times)

"""Stopping on a signal: SIGTERM or a first Ctrl-C becomes a request that the loop and
the long phases around it honour at the next safe point; a second Ctrl-C stops at once.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Sequence

from jaxgan.training.logs import notice


class Stopped(Exception):
  """A stop signal arrived at a point where the run keeps nothing new: the workdir holds
  what it held, and running again resumes from it."""


class StopRequest:
  """Turns SIGTERM and the first SIGINT (Ctrl-C) into a request to stop.

  The loop and the long phases around it (data loading, classifier training, the
  evaluations, sample export) ``check()`` it at safe points: a run stops within one step
  of the signal, saves what it has and returns. A second SIGINT interrupts at once.
  Install it with ``stop_on_signals`` (or ``install_stop_handlers`` for a whole process).
  """

  def __init__(self):
    self.signal: str | None = None
    self._previous: dict = {}

  def install(self) -> None:
    if threading.current_thread() is threading.main_thread():
      for sig in (signal.SIGTERM, signal.SIGINT):
        self._previous[sig] = signal.signal(sig, self.handle)

  def restore(self) -> None:
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    self._previous = {}

  def handle(self, signum, frame=None) -> None:
    if self.signal is not None and signum == signal.SIGINT:
      raise KeyboardInterrupt  # a second Ctrl-C: stop now (the last checkpoint stays good)
    if self.signal is None:
      self.signal = signal.Signals(signum).name
      notice(f"jaxgan: {self.signal} received; stopping at the next safe point, saving what "
              "there is (Ctrl-C again to stop at once).")

  def check(self) -> None:
    """Raises ``Stopped`` once a signal has arrived."""
    if self.signal is not None:
      raise Stopped(self.signal)


_STOPS: list[StopRequest] = []  # the active requests: the process's first, if installed


def install_stop_handlers(pending: Sequence[int] = ()) -> StopRequest:
  """Handles SIGTERM and SIGINT for the rest of the process (a script's first line).

  Every later ``train_and_evaluate`` and ``export_samples`` uses this request instead
  of installing their own, so that a signal at any moment of the process, teardown
  included, ends it with status 0. ``pending``: signals received before this was called
  (by a handler the script installed before its imports), handled now.
  """
  if not _STOPS:
    _STOPS.append(StopRequest())
    _STOPS[0].install()
  for signum in pending:
    _STOPS[0].handle(signum)
  return _STOPS[0]


@contextlib.contextmanager
def stop_on_signals():
  """The active ``StopRequest``; else one installed for the duration of the block (the
  previous handlers come back after it)."""
  if _STOPS:
    yield _STOPS[-1]
    return
  stop = StopRequest()
  stop.install()
  _STOPS.append(stop)
  try:
    yield stop
  finally:
    _STOPS.remove(stop)
    stop.restore()

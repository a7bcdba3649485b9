"""The on-disk cache of trained classifiers and converted weights, shared by processes."""

from __future__ import annotations

import contextlib
import os
import time

from flax import serialization


def read_cached(path: str, target, log, quiet: bool = False):
  """The params in ``path``, or None when it is missing or unreadable (said, unless
  ``quiet``)."""
  if not os.path.exists(path):
    return None
  try:
    with open(path, "rb") as f:
      return serialization.from_bytes(target, f.read())
  except Exception as e:  # noqa: BLE001 - a damaged cache file is rebuilt
    if not quiet:
      log(f"jaxgan: the cached classifier {path} cannot be read ({type(e).__name__}); "
          "training it again.")
    return None


@contextlib.contextmanager
def file_lock(path: str, log=print, check=None,
               waiting: str = "another process is training the evaluation classifier"):
  """An exclusive advisory lock on ``path`` for the block (released if the process dies).

  While another process holds it, says so once (``waiting``) and waits, calling ``check``
  (which raises to stop: a signal) every 0.2 s. No lock where ``fcntl`` is missing (Windows).
  """
  try:
    import fcntl
  except ImportError:
    yield
    return
  with open(path, "a") as f:
    said = False
    while True:
      try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        break
      except BlockingIOError:
        if not said:
          log(f"jaxgan: {waiting}; waiting for its cache file.")
          said = True
        if check is not None:
          check()
        time.sleep(0.2)
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


def cache_dir(directory: str | None = None) -> str:
  return directory or os.environ.get("JAXGAN_CACHE_DIR") or os.path.join(
      os.path.expanduser("~"), ".cache", "jaxgan")

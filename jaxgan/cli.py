"""Command-line programs on jaxgan: a bad input prints as its message, not as a traceback.

The experiments are written as::

    _CONFIG = cli.define_config(os.path.join(os.path.dirname(__file__), "configs", "mnist.py"))
    ...
    if __name__ == "__main__":
      cli.run(main)

A mistake of the caller (a misspelt or ill-typed ``--config`` field, a flag absl cannot
parse, and every ``jaxgan.errors.Error``: an unknown loss, a batch that does not divide
over the devices, a workdir of another run, a missing dataset) prints ``error: <message>``
on stderr and exits with status 2. ``--verbosity=1`` (or more) or ``JAXGAN_TRACEBACK=1``
shows the traceback instead. Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable, Sequence

from absl import app, flags

from jaxgan.errors import Error

TRACEBACK_ENV = "JAXGAN_TRACEBACK"
USAGE_STATUS = 2  # as argparse and the shells use for a bad invocation


def _verbosity_in(argv: Sequence[str]) -> int:
  """``--verbosity`` (or ``-v``) as written in ``argv``, before absl has parsed it."""
  value = None
  for i, arg in enumerate(argv):
    for name in ("--verbosity", "-v"):
      if arg == name and i + 1 < len(argv):
        value = argv[i + 1]
      elif arg.startswith(name + "="):
        value = arg.split("=", 1)[1]
  try:
    return int(value) if value is not None else 0
  except ValueError:
    return 0


def wants_traceback(argv: Sequence[str] | None = None) -> bool:
  """Whether the caller asked for tracebacks: ``JAXGAN_TRACEBACK`` or ``--verbosity >= 1``."""
  if os.environ.get(TRACEBACK_ENV, "").strip() not in ("", "0"):
    return True
  return _verbosity_in(sys.argv if argv is None else argv) >= 1


def fail(message: str) -> None:
  """Prints ``error: message`` (and how to see the traceback) on stderr; exits with 2."""
  sys.stderr.write(f"error: {message}\n(for the traceback: --verbosity=1 or "
                   f"{TRACEBACK_ENV}=1)\n")
  sys.stderr.flush()
  sys.exit(USAGE_STATUS)


def _innermost_text(e: BaseException) -> str:
  """The message of an exception, unwrapped from the ``AttributeError(KeyError(...))``
  chains ``ml_collections`` raises, on one line."""
  while e.args and isinstance(e.args[0], BaseException):
    e = e.args[0]
  text = str(e.args[0]) if e.args else str(e)
  return text.replace("\n", " ")


def define_config(path: str, help_text: str = "Training config; override fields with "
                  "--config.field=value.", name: str = "config"):
  """``ml_collections.config_flags.DEFINE_config_file``, with a bad override as an error.

  ``config_flags`` reads the ``--config.field=value`` overrides while the flag is defined (at
  import), so a misspelt field raises there, outside ``app.run``.
  """
  from ml_collections import config_flags

  try:
    return config_flags.DEFINE_config_file(name, path, help_text)
  except Exception as e:  # noqa: BLE001 - the overrides or the config file are the input
    if wants_traceback():
      raise
    overrides = [a.split("=", 1)[0] for a in sys.argv[1:] if a.startswith(f"--{name}.")]
    where = f" (overrides: {', '.join(overrides)})" if overrides else ""
    what = "no such field: " if isinstance(e, KeyError | AttributeError) else ""
    fail(f"--{name}: {what}{_innermost_text(e)}{where}. Every field is listed with "
         f"--helpfull; the defaults are in {path}.")


def config_fields_given(argv: Sequence[str], name: str = "config") -> list[str]:
  """The top-level fields of ``--name.field=value`` (or ``--name.field value``) overrides
  in ``argv``, in order: what the caller set on the command line."""
  prefix = f"--{name}."
  fields = [a[len(prefix):].split("=", 1)[0].split(".", 1)[0] for a in argv
            if a.startswith(prefix)]
  return list(dict.fromkeys(fields))


def longer_cpu_run(argv: Sequence[str], step: int, steps: int) -> str | None:
  """The command that goes on with a finished auto CPU run (``steps=-1`` on a CPU-only
  machine) to ``steps``: the same arguments with ``--config.cpu_steps=steps`` in place of
  any given, so that it resumes the same run (``cpu_steps`` is not a setting a checkpoint
  must match). None when the run is already that long."""
  if step >= steps:
    return None
  args, skip = [], False
  for a in argv[1:]:
    if skip:
      skip = False
    elif a == "--config.cpu_steps":
      skip = True  # the "--flag value" spelling
    elif not a.startswith("--config.cpu_steps="):
      args.append(a)
  return "python " + shlex.join([argv[0], *args, f"--config.cpu_steps={steps}"])


def _parse_flags(argv: list[str]) -> list[str]:
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    if wants_traceback(argv):
      raise
    fail(f"{e} (every flag: --helpfull)")


def run(main: Callable[[list[str]], object], argv: list[str] | None = None) -> None:
  """``absl.app.run(main)``, with the caller's mistakes printed as ``error: ...``, status 2."""

  def guarded(argv: list[str]):
    try:
      return main(argv)
    except Error as e:
      if wants_traceback():
        raise
      fail(str(e))

  app.run(guarded, argv=argv, flags_parser=_parse_flags)


def translation_main(argv: list[str], config, workdir: str, translate_in: str | None,
                     translate_out: str | None, direction: str,
                     pending: Sequence[int] = ()) -> None:
  """The main of ``experiments/pix2pix.py`` and ``experiments/cyclegan.py``: train (or
  resume) in ``workdir``, or, with ``translate_in``, translate a .npy of uint8 images with
  the newest checkpoint into ``translate_out`` and exit. ``pending``: signals the script
  recorded before its imports."""
  from jaxgan import train, translation_tasks

  train.install_stop_handlers(pending=pending)
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])} (flags are --name=value).")
  from absl import logging

  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO level
  if translate_in or translate_out:
    if not (translate_in and translate_out):
      raise Error("--translate_in and --translate_out go together: the uint8 images to "
                  "translate (.npy) and where to write the translations.")
    images, meta = translation_tasks.translate_file(workdir, translate_in, translate_out,
                                                    direction)
    which = f" ({direction})" if meta["config"]["family"] == "cyclegan" else ""
    print(f"wrote {images.shape[0]} translations{which} {list(images.shape)} uint8 from step "
          f"{meta['step']} of {os.path.abspath(workdir)} to {translate_out}")
    return
  report(train.train_and_evaluate(config, workdir), workdir)


def report(result, workdir: str) -> None:
  """The lines an experiment prints when its run returns: how it ended, where the outputs
  are, and the newest picture's path."""
  if result.state_g is None:
    print(f"stopped before training; {os.path.abspath(workdir)} is as it was")
    return
  state = "stopped early; run again to resume" if result.preempted else "done"
  print(f"step {result.step} ({state}); outputs in {os.path.abspath(workdir)}")
  if result.grid:
    print(f"samples: {os.path.abspath(result.grid)}")

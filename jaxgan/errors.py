"""The errors jaxgan raises about what its caller gave it.

Every one names the problem and the fix in its message. They subclass the built-in type a
caller would expect (``ValueError`` for a bad value, ``TypeError`` for a wrong type), so
``except ValueError`` keeps working, and they share the base ``jaxgan.errors.Error``, so a
command-line program can print them as their message alone (``jaxgan.cli.run``) while any
other exception, a bug, keeps its traceback.
"""

from __future__ import annotations


class Error(Exception):
  """Base of jaxgan's errors about its input: a config, data, a checkpoint, arguments."""


class ConfigError(Error, ValueError):
  """A setting or argument has a value jaxgan cannot use."""


class InputTypeError(Error, TypeError):
  """An argument has a type jaxgan cannot use."""


def positive_int(value) -> bool:
  """Whether ``value`` is an int >= 1 (a bool is not): the check of every count setting."""
  return isinstance(value, int) and not isinstance(value, bool) and value >= 1

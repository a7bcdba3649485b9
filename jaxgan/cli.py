"""Command-line programs on jaxgan: a bad input prints as its message, not as a traceback.

Every experiment is ``experiment_main`` over its config file::

    if __name__ == "__main__":
      cli.experiment_main(__file__, "mnist")  # experiments/configs/mnist.py

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
from collections.abc import Callable, Mapping, Sequence

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

  from jaxgan.training.config import REMOVED

  removed = removed_fields_given(sys.argv[1:], name)
  if removed:
    fail("; ".join(f"--{name}.{f} was removed: {REMOVED[f]}" for f in removed) + ".")
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


def removed_fields_given(argv: Sequence[str], name: str = "config") -> list[str]:
  """The ``--name.field`` overrides in ``argv`` of fields that were removed."""
  from jaxgan.training.config import REMOVED

  prefix = f"--{name}."
  fields = [a[len(prefix):].split("=", 1)[0].split(".", 1)[0] for a in argv
            if a.startswith(prefix)]
  return [f for f in dict.fromkeys(fields) if f in REMOVED]


def longer_run(argv: Sequence[str], step: int, steps: int) -> str | None:
  """The command that goes on with a finished run to ``steps``: the same arguments with
  ``--config.steps=steps`` in place of any given (a run resumes under another length).
  None when the run is already that long."""
  if step >= steps:
    return None
  args, skip = [], False
  for a in argv[1:]:
    if skip:
      skip = False
    elif a == "--config.steps":
      skip = True  # the "--flag value" spelling
    elif not a.startswith("--config.steps="):
      args.append(a)
  return "python " + shlex.join([argv[0], *args, f"--config.steps={steps}"])


def longer_line(result, config, longer: Mapping[str, tuple[int, str]],
                argv: Sequence[str]) -> str | None:
  """What the end of a finished CPU-variant run suggests: going on to the length ``longer``
  gives its model, with the command. None for a preempted run, one already that long, a
  model with no suggestion, and a collapsed generator (its summary names other changes to
  try rather than more of the same steps)."""
  more_of = longer.get(config.get("model"))
  if (not more_of or config.get("variant") != "cpu" or not result.grid or result.preempted
      or result.evaluation.get("collapsed")):
    return None
  steps, what = more_of
  more = longer_run(argv, result.step, steps)
  return more and (f"{what}: go on with this run to {steps:,} steps (it resumes at step "
                   f"{result.step:,}): {more}")


def _parse_flags(argv: list[str]) -> list[str]:
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    if wants_traceback(argv):
      raise
    text = str(e)
    # A config file that raised one of ours (an unknown variant, say): its message alone,
    # not the traceback config_flags puts in the flag's error.
    ours = [line for line in text.splitlines() if line.startswith("jaxgan.errors.")]
    if ours:
      fail(f"--{text.split('=', 1)[0].split('--', 1)[-1]}: {ours[-1].split(': ', 1)[1]}")
    fail(f"{text} (every flag: --helpfull)")


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


# What each experiment's family offers on the command line besides training.
_SAMPLE_FAMILIES = ("noise",)
_TRANSLATE_FAMILIES = ("pix2pix", "cyclegan")


def experiment_main(script: str, name: str, family: str = "noise", *,
                    pending: Sequence[int] = (),
                    longer: Mapping[str, tuple[int, str]] | None = None,
                    after: Callable[[object, object, str], None] | None = None) -> None:
  """The main of every experiment (``experiments/NAME.py``): train (or resume) in
  ``--workdir`` with ``experiments/configs/NAME.py``; or, without training, export samples
  of the newest checkpoint (``--sample_out``; noise-to-image) or translate a file with it
  (``--translate_in``; pix2pix, CycleGAN).

  Args:
    script: the experiment's ``__file__`` (its configs are beside it).
    name: the experiment's name: its config file and default workdir.
    family: ``noise``, ``pix2pix`` or ``cyclegan``: which flags it offers.
    pending: signals the script recorded before its imports, handled first.
    longer: ``{model: (steps, what)}``: after a finished CPU-variant run of that model
      shorter than ``steps`` whose generator has not collapsed, print the command that goes
      on with it to ``steps`` and what that brings.
    after: ``after(result, config, workdir)``, called when a run has trained to its end
      (not when stopped early): an experiment's own measure of the result.
  """
  define_config(os.path.join(os.path.dirname(os.path.abspath(script)), "configs", f"{name}.py"))
  workdir = flags.DEFINE_string("workdir", f"workdirs/{name}", "Checkpoints, metrics, "
                                "TensorBoard events and pictures go here.")
  extra = _define_outputs(family)

  def main(argv):
    from jaxgan import training

    # For the rest of the process, teardown included: a signal stops at the next safe point.
    training.install_stop_handlers(pending=pending)
    if len(argv) > 1:
      raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])} (flags are "
                           "--name=value).")
    from absl import logging

    if not flags.FLAGS["verbosity"].present:
      logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO level
    if family in _SAMPLE_FAMILIES and extra["sample_out"].value:
      return _export(workdir.value, extra)
    if family in _TRANSLATE_FAMILIES and (extra["translate_in"].value
                                          or extra["translate_out"].value):
      return _translate(workdir.value, extra)
    run_config = config_of_command_line()
    result = training.train_and_evaluate(run_config, workdir.value)
    report(result, workdir.value)
    if after is not None and result.state_g is not None and not result.preempted:
      after(result, run_config, workdir.value)
    line = longer_line(result, run_config, longer or {}, sys.argv)
    if line:
      print(line)

  run(main)


def config_of_command_line(flag=None):
  """The config the command line names: ``--config``'s value, or, where the config file holds
  a recipe per model (it lists them in ``MODELS``) and the command line sets
  ``--config.model`` or ``--config.conditional``, the file's recipe for that model (in the
  variant the file was given), built knowing whether the run is conditional, with the
  command line's other fields on top: ``--config.model=resnet`` runs the ResNet's recipe,
  not the default model's with another network, and a recipe may differ for its
  conditional run."""
  flag = flags.FLAGS["config"] if flag is None else flag  # a parsed config_flags flag
  overrides = flag.override_values
  config = flag.value
  if "model" in overrides or "conditional" in overrides:
    config = _recipe(flag, overrides.get("conditional")) or config
  if ("conditional" not in overrides and config.get("conditional")
      and _without_labels(config)):
    # The user's own unlabelled images under a recipe that trains on labels (the default
    # CPU run is class-conditional): the recipe's unconditional variant, said once.
    unconditional = _recipe(flag, False)
    if unconditional is not None:
      print(f"jaxgan: {config.dataset} has no class labels (no class sub-folders), so this "
            "runs the recipe's unconditional variant (--config.conditional=False).",
            file=sys.stderr, flush=True)
      return unconditional
  return config


def _recipe(flag, conditional: bool | None):
  """The config file's recipe for the command line's model, built for ``conditional`` (None:
  the recipe's choice), with the command line's fields on top; None where the file holds
  no recipes per model (no ``MODELS``) or names another model."""
  overrides = flag.override_values
  filename = flag.config_filename
  path, arg = (filename, "") if os.path.exists(filename) else filename.rsplit(":", 1)
  import runpy

  module = runpy.run_path(path)
  models = module.get("MODELS", ())
  if not models:
    return None
  from jaxgan.training.config import config_arg

  named, variant = config_arg(arg, models)
  model = overrides.get("model", named)
  if model is not None and model not in models:
    return None
  config = module["get_config"](",".join(filter(None, (model, variant))),
                                conditional=conditional)
  config.update_from_flattened_dict(overrides)
  if conditional is not None:
    config.conditional = conditional
  return config


def _without_labels(config) -> bool:
  from jaxgan.data import sources

  dataset = config.get("dataset")
  return (isinstance(dataset, str) and sources.is_path(dataset)
          and sources.without_labels(dataset, config.get("class_folders", "auto")))


def _define_outputs(family: str) -> dict:
  if family in _SAMPLE_FAMILIES:
    return {
        "sample_out": flags.DEFINE_string(
            "sample_out", None, "Write samples of the newest checkpoint to this .npy file "
            "and exit without training. For a conditional run, image i is of class "
            "i % num_classes."),
        "num_samples": flags.DEFINE_integer("num_samples", 1000,
                                            "How many samples --sample_out writes."),
        "sample_seed": flags.DEFINE_integer("sample_seed", 0,
                                            "Seed of the exported samples' latents.")}
  out = {"translate_in": flags.DEFINE_string(
             "translate_in", None, "Translate this .npy of uint8 images [N, H, W, C] with the "
             "newest checkpoint, and exit."),
         "translate_out": flags.DEFINE_string(
             "translate_out", None, "Where --translate_in's translations go (.npy, uint8).")}
  if family == "cyclegan":
    out["direction"] = flags.DEFINE_enum(
        "direction", "ab", ["ab", "ba"], "--translate_in's direction: ab (A -> B) or ba "
        "(B -> A).")
  return out


def _export(workdir: str, extra: dict) -> None:
  from jaxgan import training

  out = extra["sample_out"].value
  try:
    images, meta = training.export_samples(workdir, out, extra["num_samples"].value,
                                           extra["sample_seed"].value)
  except training.Stopped as stopped:
    print(f"stopped ({stopped}) before writing {out}; nothing was written. Run the same "
          "command again to export.")
    return
  classes = meta.get("num_classes") or 0
  which = f" (image i of class i % {classes})" if classes else ""
  print(f"wrote {images.shape[0]} samples {list(images.shape)} uint8{which} from step "
        f"{meta['step']} of {os.path.abspath(workdir)} to {out}")


def _translate(workdir: str, extra: dict) -> None:
  from jaxgan import training

  path_in, path_out = extra["translate_in"].value, extra["translate_out"].value
  if not (path_in and path_out):
    raise Error("--translate_in and --translate_out go together: the uint8 images to "
                "translate (.npy) and where to write the translations.")
  direction = extra["direction"].value if "direction" in extra else "ab"
  images, meta = training.translate_file(workdir, path_in, path_out, direction)
  which = f" ({direction})" if meta["config"]["family"] == "cyclegan" else ""
  print(f"wrote {images.shape[0]} translations{which} {list(images.shape)} uint8 from step "
        f"{meta['step']} of {os.path.abspath(workdir)} to {path_out}")


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

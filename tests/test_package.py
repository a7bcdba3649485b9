"""The package's shape: imports run one way, no module reaches into another's private
names, and ``import jaxgan`` stays light."""

import ast
import os
import pathlib
import subprocess
import sys

from helpers import ROOT

PACKAGE = pathlib.Path(ROOT) / "jaxgan"
# Each part of the package and its floor: a module imports only from parts on lower floors
# (or from its own part). The public face (jaxgan/__init__.py) and the command line sit on
# top.
FLOORS = {
    "errors": 0,
    "rng": 1, "cpu": 1, "state": 1, "losses": 1, "data": 1,
    "augment": 2, "models": 2, "optim": 2, "parallel": 2, "sweep": 2, "evaluators": 2,
    "steps": 3,
    "training": 4,
    "cli": 5, "__init__": 5,
}


def modules():
  for path in sorted(PACKAGE.rglob("*.py")):
    yield path, ast.parse(path.read_text())


def part(path: pathlib.Path) -> str:
  return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def imported(tree):
  """``(module, name)`` for each ``from jaxgan... import name``, and ``(module, None)`` for
  each ``import jaxgan...``, anywhere in the file (function-level imports included)."""
  for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "jaxgan":
      for alias in node.names:
        yield node.module, alias.name
    elif isinstance(node, ast.Import):
      for alias in node.names:
        if alias.name.split(".")[0] == "jaxgan":
          yield alias.name, None


def test_every_part_has_a_floor():
  assert {part(path) for path, _ in modules()} == set(FLOORS)


def test_imports_run_downward_only():
  upward = []
  for path, tree in modules():
    mine = part(path)
    for module, name in imported(tree):
      target = module.split(".")[1] if module != "jaxgan" else name
      if target == "__version__" or target == mine:
        continue
      if FLOORS[target] >= FLOORS[mine]:
        upward.append(f"{path.relative_to(ROOT)} imports {module} {name or ''}")
  assert not upward, "\n".join(upward)


def test_no_module_imports_a_private_name_of_another():
  private = []
  for path, tree in modules():
    for module, name in imported(tree):
      if name is not None and name.startswith("_") and name != "__version__":
        private.append(f"{path.relative_to(ROOT)}: from {module} import {name}")
    # module._name through an imported module's alias
    aliases = {}
    for node in ast.walk(tree):
      if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("jaxgan"):
        for alias in node.names:
          aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    for node in ast.walk(tree):
      if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
          and node.value.id in aliases and node.attr.startswith("_")):
        private.append(f"{path.relative_to(ROOT)}: {node.value.id}.{node.attr}")
  assert not private, "\n".join(private)


def test_import_jaxgan_loads_neither_tfds_orbax_nor_the_command_line():
  heavy = ("tensorflow_datasets", "orbax.checkpoint", "ml_collections", "jaxgan.cli",
           "jaxgan.training", "jaxgan.data.sources", "jaxgan.evaluators")
  code = (f"import sys, jaxgan; print([m for m in {heavy!r} if m in sys.modules]); "
          "jaxgan.training; print('jaxgan.training' in sys.modules)")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "JAX_PLATFORMS": "cpu"}, timeout=120, check=True)
  loaded, later = out.stdout.split("\n")[:2]
  assert loaded == "[]", loaded
  assert later == "True"  # the lazy parts load on first use

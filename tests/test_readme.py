"""The README's Python blocks run as written, in order, in one namespace."""

import pathlib
import re

import numpy as np

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_blocks_run(capsys):
  blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
  assert len(blocks) >= 2
  namespace: dict = {}
  for block in blocks:
    exec(compile(block, str(README), "exec"), namespace)  # noqa: S102
  assert "d_loss" in capsys.readouterr().out
  assert namespace["samples"].shape == (16, 28, 28, 1)
  assert namespace["metrics"]["g_loss"].shape == (4,)
  assert int(namespace["state_g"].step) == 5 and np.isfinite(namespace["metrics"]["d_loss"]).all()

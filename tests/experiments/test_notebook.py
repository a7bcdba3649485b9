"""The Colab notebook, executed headless on the CPU with a tiny config."""

import os

import nbformat
import pytest
from helpers import ROOT, needs_fashion
from nbclient import NotebookClient

pytestmark = pytest.mark.slow  # whole runs and networks: the full suite, not the fast tier

NOTEBOOK = os.path.join(ROOT, "experiments", "colab_tpu.ipynb")


@needs_fashion
def test_colab_notebook_runs_headless(tmp_path, monkeypatch):
  monkeypatch.setenv("JAXGAN_NOTEBOOK_TINY", "1")
  monkeypatch.setenv("JAXGAN_WORKDIR", str(tmp_path / "workdir"))
  monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")  # silences a jupyter_core migration warning
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  nbformat.validate(notebook)
  client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                          resources={"metadata": {"path": ROOT}})
  client.execute()  # raises CellExecutionError, with the cell and traceback, on any failure

  text = "".join(o.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                 for o in cell.outputs if o.get("output_type") == "stream")
  assert "8 devices" in text  # the kernel saw the suite's 8 simulated devices (pmap over them)
  assert "step 20 (done)" in text
  assert "Frechet distance" in text and "'fd':" in text
  pictures = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs
              if "image/png" in o.get("data", {})]
  assert len(pictures) == 2  # the sample grid and the curves
  assert os.path.exists(tmp_path / "workdir" / "samples" / "step_0000020.png")

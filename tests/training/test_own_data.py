"""Training on the user's own images: a folder, arrays and a pack give the run the in-memory
data gives (the same examples in the same order); it resumes exactly and splits over
devices; bad data stops it before anything is written."""

import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import ROOT, assert_bitwise_equal, jsonl, leaves, tiny
from PIL import Image

from jaxgan.data import pack, sources
from jaxgan.training import loop

pytestmark = pytest.mark.slow  # whole runs


@pytest.fixture(scope="module")
def own(blobs, tmp_path_factory):
  """The blobs as a PNG folder with class folders, as an .npz in the folder's order, and
  as a pack."""
  root = tmp_path_factory.mktemp("own")
  idx = sources.load(f"idx:{blobs}")
  for i, (image, label) in enumerate(zip(idx.images, idx.labels, strict=True)):
    (root / "png" / f"class{label}").mkdir(parents=True, exist_ok=True)
    Image.fromarray(image[..., 0]).save(root / "png" / f"class{label}" / f"{i:03d}.png")
  folder = sources.load(str(root / "png"))
  everything = sources.sample(folder, len(folder))
  np.savez(root / "arrays.npz", image=everything["image"], label=everything["label"])
  pack.pack(folder, str(root / "set.pack"), progress=False, log=lambda line: None)
  np.savez(root / "idx_order.npz", image=idx.images, label=idx.labels)
  return {"png": str(root / "png"), "npz": str(root / "arrays.npz"),
          "pack": str(root / "set.pack"), "idx_order": str(root / "idx_order.npz")}


def test_a_folder_an_npz_and_a_pack_train_the_same_bits(blobs, own, tmp_path):
  runs = {}
  for name, workers in (("png", 2), ("npz", 0), ("pack", 1)):
    runs[name] = loop.train_and_evaluate(
        tiny(blobs, dataset=own[name], conditional=False, data_workers=workers),
        str(tmp_path / name))
  for name in ("npz", "pack"):
    assert_bitwise_equal(leaves(runs["png"]), leaves(runs[name]))
    assert jsonl(tmp_path / "png")[-1]["d_loss"] == jsonl(tmp_path / name)[-1]["d_loss"]
  # The in-memory IDX files and an array file of their images in their order: the same
  # bits too (the folder lists them class by class, another order, so another run).
  for name, dataset in (("idx", f"idx:{blobs}"), ("idx_order", own["idx_order"])):
    runs[name] = loop.train_and_evaluate(tiny(blobs, dataset=dataset, conditional=False),
                                         str(tmp_path / name))
  assert_bitwise_equal(leaves(runs["idx"]), leaves(runs["idx_order"]))


def test_a_folder_run_resumes_exactly_and_splits_over_devices(blobs, own, tmp_path):
  config = tiny(blobs, dataset=own["png"], data_workers=2)
  straight = loop.train_and_evaluate(config, str(tmp_path / "a"))
  loop.train_and_evaluate({**config, "steps": 10}, str(tmp_path / "b"))
  resumed = loop.train_and_evaluate(config, str(tmp_path / "b"))
  assert_bitwise_equal(leaves(straight), leaves(resumed))
  # 8 devices, each reading its eighth of the global batch, against 1 reading it whole: the
  # first step's measures, taken on the batch by the same initial networks, agree to the
  # rounding of a mean over another number of devices (another example would move them by
  # percents). The parameters after it are not compared: Adam's first update is lr * sign(g)
  # wherever g is tiny, and rounding flips such signs.
  one = loop.train_and_evaluate({**config, "num_devices": 1, "steps": 1, "log_every": 1},
                                str(tmp_path / "c"))
  eight = loop.train_and_evaluate({**config, "steps": 1, "log_every": 1}, str(tmp_path / "d"))
  assert one.step == eight.step == 1
  first = jsonl(tmp_path / "c")[0], jsonl(tmp_path / "d")[0]
  for name in ("d_loss", "g_loss", "real_logits", "fake_logits"):
    np.testing.assert_allclose(first[1][name], first[0][name], rtol=1e-5, err_msg=name)


def test_a_conditional_run_takes_its_classes_from_the_folders(blobs, own, tmp_path):
  result = loop.train_and_evaluate(
      tiny(blobs, dataset=own["png"], model="dcgan", width=0.125, conditional=True, steps=2,
           batch_size=16), str(tmp_path / "c"))
  assert result.state_g.num_classes == 10


def test_bad_data_stops_before_the_workdir_is_made(blobs, tmp_path):
  (tmp_path / "mixed").mkdir()
  Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "mixed" / "a.png")
  Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "mixed" / "b.png")
  with pytest.raises(sources.DataError, match="several sizes"):
    loop.train_and_evaluate(tiny(blobs, dataset=str(tmp_path / "mixed")), str(tmp_path / "w"))
  assert not (tmp_path / "w").exists()
  # The same from the command line: one error line, status 2, nothing written.
  child = subprocess.run(
      [sys.executable, os.path.join(ROOT, "experiments", "mnist.py"),
       f"--workdir={tmp_path / 'w'}", f"--config.dataset={tmp_path / 'mixed'}"],
      cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert child.returncode == 2, child.stderr[-2000:]
  errors = [line for line in child.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and "a.png is 28x28, " in errors[0] and "--config.resolution" in errors[0]
  assert not (tmp_path / "w").exists()
  # With a resolution the model follows the data's size; one it cannot build is named.
  with pytest.raises(Exception, match="halve to whole numbers"):
    loop.train_and_evaluate(tiny(blobs, dataset=str(tmp_path / "mixed"), model="dcgan",
                                 resolution=6), str(tmp_path / "w"))
  assert not (tmp_path / "w").exists()

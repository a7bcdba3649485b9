"""The user's own images: folders, arrays, packs; their errors; streaming them in workers."""

import itertools
import os
import pickle
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest
from helpers import ROOT
from PIL import Image

from jaxgan.data import files, pack, pipeline, sources
from jaxgan.data.order import host_batch_indices


def write_folder(root, images, labels=None, suffix=".png"):
  """``images`` uint8 [N, H, W, C] as files; class folders ``c<label>`` when labelled.

  Returns the paths relative to ``root`` in the order written."""
  paths = []
  for i, image in enumerate(images):
    folder = root if labels is None else root / f"c{int(labels[i])}"
    folder.mkdir(parents=True, exist_ok=True)
    pixels = image[..., 0] if image.shape[-1] == 1 else image
    Image.fromarray(pixels).save(folder / f"{i:03d}{suffix}")
    paths.append(os.path.relpath(folder / f"{i:03d}{suffix}", root))
  return paths


def numbered(n, size=8, channels=1):
  """Image i: every pixel i * 7 % 256 (tells which example a batch holds), a bright corner
  pixel of 255 - i (tells it again where values meet)."""
  images = np.empty((n, size, size, channels), np.uint8)
  for i in range(n):
    images[i] = i * 7 % 256
    images[i, 0, 0] = 255 - i
  return images


def test_a_folder_reads_every_image_with_its_class_in_sorted_order(tmp_path):
  images, labels = numbered(12), np.arange(12) % 3
  paths = write_folder(tmp_path, images, labels)
  (tmp_path / "c1" / "deeper").mkdir()
  Image.fromarray(numbered(13)[12, ..., 0]).save(tmp_path / "c1" / "deeper" / "x.png")
  (tmp_path / "notes.txt").write_text("not an image")
  source = sources.load(str(tmp_path))
  assert isinstance(source, files.FolderSource)
  assert (len(source), source.image_shape, source.num_classes) == (13, (8, 8, 1), 3)
  assert source.class_names == ["c0", "c1", "c2"]
  order = sorted(paths + [os.path.join("c1", "deeper", "x.png")])
  assert list(source.files) == order
  got = source.get(np.arange(13))
  for k, rel in enumerate(order):
    i = 12 if rel.endswith("x.png") else int(os.path.basename(rel)[:3])
    np.testing.assert_array_equal(got["image"][k], numbered(13)[i])  # PNG is lossless
    assert got["label"][k] == int(rel[1])
  assert "13 images, 3 classes from its sub-folders" in source.description


def test_jpeg_and_webp_are_read_and_gray_among_colour_becomes_rgb(tmp_path):
  rng = np.random.default_rng(0)
  colour = rng.integers(0, 256, (2, 16, 16, 3), np.uint8)
  ramp = np.arange(16, dtype=np.uint8) * 16
  colour[0] = np.stack([ramp[None, :].repeat(16, 0), ramp[:, None].repeat(16, 1),
                        np.full((16, 16), 128, np.uint8)], -1)  # smooth: JPEG keeps it
  write_folder(tmp_path, colour[:1], suffix=".jpg")
  Image.fromarray(colour[1]).save(tmp_path / "b.webp", lossless=True)
  gray = np.full((16, 16), 77, np.uint8)
  Image.fromarray(gray).save(tmp_path / "c.png")
  said = []
  source = sources.load(str(tmp_path), log=said.append)
  assert source.image_shape == (16, 16, 3) and source.num_classes == 0
  assert len([line for line in said if "grayscale" in line]) == 1 and "1 of 3" in said[0]
  got = source.get([0, 1, 2])["image"]
  assert np.abs(got[0].astype(int) - colour[0]).mean() < 4  # JPEG is lossy
  np.testing.assert_array_equal(got[1], colour[1])
  np.testing.assert_array_equal(got[2], np.full((16, 16, 3), 77))


def test_mixed_sizes_name_two_files_and_resolution_crops_the_centre(tmp_path):
  wide = np.zeros((4, 8), np.uint8)
  wide[:, 2:6] = np.arange(16).reshape(4, 4) * 10  # the centre 4x4 of a 4 (h) x 8 (w) image
  Image.fromarray(wide).save(tmp_path / "a.png")
  Image.fromarray(np.full((4, 4), 200, np.uint8)).save(tmp_path / "b.png")
  with pytest.raises(sources.DataError, match=r"a\.png is 8x4, b\.png is 4x4.*"
                                              r"--config\.resolution=N"):
    sources.load(str(tmp_path))
  source = sources.load(str(tmp_path), resolution=4)
  assert source.image_shape == (4, 4, 1)
  np.testing.assert_array_equal(source.get([0])["image"][0, ..., 0], wide[:, 2:6])
  smaller = sources.load(str(tmp_path), resolution=2).get([1])["image"]
  np.testing.assert_array_equal(smaller, np.full((1, 2, 2, 1), 200))  # a flat image stays flat


def test_folder_errors_are_one_line_with_the_fix(tmp_path):
  with pytest.raises(sources.DataError, match="no such file or folder"):
    sources.load(str(tmp_path / "missing"))
  (tmp_path / "empty").mkdir()
  with pytest.raises(sources.DataError, match="holds no images .*searched recursively"):
    sources.load(str(tmp_path / "empty"))
  write_folder(tmp_path / "one", numbered(3), np.zeros(3))
  assert sources.load(str(tmp_path / "one")).num_classes == 0  # auto: no classes
  with pytest.raises(sources.DataError, match=r"1 class folder \(c0\); classes need at least two"):
    sources.load(str(tmp_path / "one"), class_folders="yes")
  write_folder(tmp_path / "loose", numbered(4), np.arange(4) % 2)
  Image.fromarray(numbered(1)[0, ..., 0]).save(tmp_path / "loose" / "stray.png")
  with pytest.raises(sources.DataError, match=r"1 image\(s\) lie directly in .*stray\.png"):
    sources.load(str(tmp_path / "loose"), class_folders="yes")
  assert sources.load(str(tmp_path / "loose"), class_folders="no").num_classes == 0
  (tmp_path / "data.csv").write_text("1,2")
  with pytest.raises(sources.DataError, match="not a dataset jaxgan reads"):
    sources.load(str(tmp_path / "data.csv"))
  with pytest.raises(sources.DataError, match="no 'test' split"):
    sources.load(str(tmp_path / "one"), "test")


def test_a_corrupt_file_is_named_or_skipped_and_counted(tmp_path):
  write_folder(tmp_path, numbered(4))
  (tmp_path / "001.png").write_bytes(b"\x89PNG not really")
  with pytest.raises(sources.DataError, match=r"001\.png: not a readable image.*"
                                              r"skip_bad_images"):
    sources.load(str(tmp_path))
  said = []
  source = sources.load(str(tmp_path), skip_bad=True, log=said.append)
  assert list(source.files) == ["000.png", "002.png", "003.png"]
  assert any("skipped 1 unreadable" in line and "001.png" in line for line in said)
  # A file whose header reads but whose pixels are cut short fails when it is decoded.
  (tmp_path / "001.png").unlink()
  good = (tmp_path / "003.png").read_bytes()
  (tmp_path / "003.png").write_bytes(good[:len(good) // 2])
  strict = sources.load(str(tmp_path))
  assert len(strict) == 3  # the scan reads headers only
  with pytest.raises(sources.DataError, match=r"003\.png: not a readable image"):
    strict.get([2])
  # Skipping: the next readable file in order (wrapping round), a pure function of the index.
  lenient = sources.load(str(tmp_path), skip_bad=True)
  np.testing.assert_array_equal(lenient.get([2])["image"], numbered(4)[[0]])


def test_arrays_npy_and_npz_are_memory_mapped_and_checked(tmp_path):
  images, labels = numbered(10, channels=3), (np.arange(10) % 4).astype(np.int64)
  np.save(tmp_path / "x.npy", images)
  np.savez(tmp_path / "x.npz", image=images, label=labels)
  np.savez_compressed(tmp_path / "z.npz", image=images[..., :1].squeeze(-1))
  a, b = sources.load(str(tmp_path / "x.npy")), sources.load(str(tmp_path / "x.npz"))
  assert isinstance(a.images, np.memmap) and isinstance(b.images, np.memmap)
  assert (a.num_classes, b.num_classes, b.image_shape) == (0, 4, (8, 8, 3))
  np.testing.assert_array_equal(b.get([3, 1])["image"], images[[3, 1]])
  np.testing.assert_array_equal(b.get([3, 1])["label"], [3, 1])
  said = []
  z = sources.load(str(tmp_path / "z.npz"), log=said.append)
  assert z.image_shape == (8, 8, 1) and "compressed" in said[0]
  assert len(pickle.dumps(b)) < images.nbytes  # workers map the file, not copies of it
  np.testing.assert_array_equal(pickle.loads(pickle.dumps(b)).get([5])["image"], images[[5]])
  bad = {"float": ({"image": images.astype(np.float32)}, "must be uint8"),
         "chw": ({"image": np.moveaxis(images, 3, 1)}, "channels-first"),
         "nolabelcount": ({"image": images, "label": labels[:3]}, "'label' must be integer"),
         "negative": ({"image": images, "label": labels - 1}, "class ids >= 0"),
         "noimage": ({"images": images}, "has no 'image' array")}
  for name, (arrays, message) in bad.items():
    np.savez(tmp_path / f"{name}.npz", **arrays)
    with pytest.raises(sources.DataError, match=message):
      sources.load(str(tmp_path / f"{name}.npz"))


def test_a_pack_holds_the_source_exactly_and_refuses_what_is_incomplete(tmp_path):
  images, labels = numbered(20, size=6, channels=3), np.arange(20) % 5
  np.savez(tmp_path / "x.npz", image=images, label=labels)
  dest = pack.pack(sources.load(str(tmp_path / "x.npz")), str(tmp_path / "x.pack"),
                   progress=False, log=lambda line: None)
  packed = sources.load(dest)
  assert isinstance(packed, pack.PackedSource)
  assert (len(packed), packed.image_shape, packed.num_classes) == (20, (6, 6, 3), 5)
  got = packed.get([19, 0, 7])
  np.testing.assert_array_equal(got["image"], images[[19, 0, 7]])
  np.testing.assert_array_equal(got["label"], labels[[19, 0, 7]])
  np.testing.assert_array_equal(pickle.loads(pickle.dumps(packed)).get([4])["image"],
                                images[[4]])
  np.save(tmp_path / "u.npy", images)
  unlabelled = sources.load(pack.pack(sources.load(str(tmp_path / "u.npy"), resolution=3),
                                      str(tmp_path / "u.pack"), progress=False,
                                      log=lambda line: None))
  assert unlabelled.num_classes == 0 and "label" not in unlabelled.get([0])
  assert unlabelled.image_shape == (3, 3, 3) and "resized to 3x3" in unlabelled.meta["source"]
  with pytest.raises(sources.DataError, match="exists"):
    pack.pack(packed, dest, progress=False)
  meta = (tmp_path / "x.pack" / "meta.json").read_text()
  (tmp_path / "x.pack" / "meta.json").write_text(meta.replace('"count": 20', '"count": 21'))
  with pytest.raises(sources.DataError, match="promises 21 images.*holds 20"):
    sources.load(dest)


def test_an_interrupted_pack_leaves_nothing_that_looks_whole(tmp_path):
  class Failing(sources.Source):
    description, image_shape, num_classes = "failing", (4, 4, 1), 0

    def __len__(self):
      return 600

    def get(self, indices):
      if indices[0] >= 256:
        raise sources.DataError("disk gone")
      return {"image": np.zeros((len(indices), 4, 4, 1), np.uint8)}

  with pytest.raises(sources.DataError, match="disk gone"):
    pack.pack(Failing(), str(tmp_path / "f.pack"), progress=False)
  assert os.listdir(tmp_path) == []


def test_the_pack_command(tmp_path, capsys):
  write_folder(tmp_path / "imgs", numbered(6, size=10), np.arange(6) % 2)
  assert pack.main([str(tmp_path / "imgs"), str(tmp_path / "p.pack"), "--resolution=4"]) == 0
  packed = sources.load(str(tmp_path / "p.pack"))
  assert packed.image_shape == (4, 4, 1) and packed.num_classes == 2
  assert packed.meta["class_names"] == ["c0", "c1"]
  assert pack.main([str(tmp_path / "nothing"), str(tmp_path / "q.pack")]) == 2
  assert "error:" in capsys.readouterr().err and not (tmp_path / "q.pack").exists()


def test_a_fraction_and_a_bounded_sample_of_a_streamed_source(tmp_path):
  np.save(tmp_path / "x.npy", numbered(30))
  source = sources.load(str(tmp_path / "x.npy"))
  part = source.fraction(0.1)
  assert len(part) == 3 and "its first 3 examples (0.1 of 30)" in part.description
  with pytest.raises(IndexError):
    part.get([3])
  everything = sources.sample(source, 100, chunk=7)["image"]
  np.testing.assert_array_equal(everything, numbered(30))  # all, in order, when it fits
  some = sources.sample(source, 10, chunk=4)["image"]
  ids = [int(x[1, 1, 0]) // 7 for x in some]
  assert len(set(ids)) == 10 and ids == sorted(ids)  # ten distinct examples, in order
  assert source.reference() is source


@pytest.mark.slow
def test_workers_deliver_the_batches_the_training_process_reads(tmp_path):
  # Grain's worker processes (spawned) compute whole batches from the step alone: the
  # same batches, in step order, from any step.
  write_folder(tmp_path / "imgs", numbered(40), np.arange(40) % 4)
  np.save(tmp_path / "x.npy", numbered(40))
  for path in (str(tmp_path / "imgs"), str(tmp_path / "x.npy")):
    source = sources.load(path)
    want = list(itertools.islice(pipeline.batches(source, 8, seed=3, start_step=5), 6))
    stream = pipeline.batches(source, 8, seed=3, start_step=5, workers=2)
    got = list(itertools.islice(stream, 6))
    stream.close()
    assert [s for s, _ in got] == list(range(5, 11))
    for (_, a), (_, b) in zip(want, got, strict=True):
      assert sorted(a) == sorted(b)
      for name in a:
        np.testing.assert_array_equal(a[name], b[name])


@pytest.mark.slow
def test_two_processes_read_disjoint_shares_that_make_up_the_global_batch(tmp_path):
  write_folder(tmp_path / "imgs", numbered(40), np.arange(40) % 4)
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  worker = os.path.join(ROOT, "tests", "data_shares_worker.py")
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
         "JAX_PLATFORMS": "cpu"}
  procs = [subprocess.Popen([sys.executable, worker, str(port), str(i), str(tmp_path / "imgs"),
                             str(tmp_path)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True) for i in range(2)]
  outputs = [p.communicate(timeout=300)[0] for p in procs]
  for p, out in zip(procs, outputs, strict=True):
    assert p.returncode == 0, out[-3000:]
  shares = [np.load(tmp_path / f"process{i}.npz") for i in range(2)]
  source = sources.load(str(tmp_path / "imgs"))
  whole = list(itertools.islice(pipeline.batches(source, 8, seed=1, process_count=1,
                                                 process_index=0), 3))
  for step, (_, batch) in enumerate(whole):
    read = [set(s["read"][step].tolist()) for s in shares]
    assert len(read[0]) == len(read[1]) == 4 and not read[0] & read[1]  # disjoint halves
    key = np.asarray(jax.random.key_data(jax.random.key(1)))
    assert read[0] | read[1] == set(host_batch_indices(key, step, 8, 40).tolist())
    for name in ("image", "label"):
      np.testing.assert_array_equal(
          np.concatenate([shares[0][name][step], shares[1][name][step]]), batch[name])


def test_a_cheap_look_tells_unlabelled_data_as_opening_it_does(tmp_path):
  images, labels = numbered(6), np.arange(6) % 2
  write_folder(tmp_path / "classes", images, labels)
  write_folder(tmp_path / "flat", images)
  write_folder(tmp_path / "one_class", images, np.zeros(6))
  write_folder(tmp_path / "loose", images, labels)
  Image.fromarray(images[0, ..., 0]).save(tmp_path / "loose" / "top.png")
  np.savez(tmp_path / "labelled.npz", image=images, label=labels)
  np.savez(tmp_path / "images.npz", image=images)
  np.save(tmp_path / "images.npy", images)
  for name in ("labelled.npz", "images.npz"):
    pack.pack(sources.load(str(tmp_path / name)), str(tmp_path / (name + ".pack")),
              progress=False, log=lambda line: None)
  kinds = ["classes", "flat", "one_class", "loose", "labelled.npz", "images.npz",
           "images.npy", "labelled.npz.pack", "images.npz.pack"]
  # The look reads no image and agrees with the source opened in full (its classes).
  for kind in kinds:
    path = str(tmp_path / kind)
    assert sources.without_labels(path) == (sources.load(path).num_classes == 0), kind
  assert [k for k in kinds if sources.without_labels(str(tmp_path / k))] == [
      "flat", "one_class", "loose", "images.npz", "images.npy", "images.npz.pack"]
  # Class folders as asked; a path with nothing there is left to opening it to name.
  assert sources.without_labels(str(tmp_path / "classes"), "no")
  assert not sources.without_labels(str(tmp_path / "flat"), "yes")
  assert not sources.without_labels(str(tmp_path / "missing"))

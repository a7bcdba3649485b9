"""Writing small MNIST-format (IDX) datasets for tests."""

import gzip

import numpy as np


def write_idx(path, array, gz=True):
  codes = {np.uint8: 0x08, np.int32: 0x0C}
  header = bytes([0, 0, codes[array.dtype.type], array.ndim]) + b"".join(
      int(d).to_bytes(4, "big") for d in array.shape)
  payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
  with open(path, "wb") as f:
    f.write(gzip.compress(payload) if gz else payload)
  return payload


def small_idx_dir(tmp_path, n=50):
  # Image i is filled with the value i, so a batch tells which examples it holds.
  images = np.repeat(np.arange(n, dtype=np.uint8), 4 * 4).reshape(n, 4, 4)
  write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)
  write_idx(tmp_path / "train-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8))
  return tmp_path


def blobs_idx_dir(path, n=256, size=28, seed=0, square=8):
  """``n`` ``size`` x ``size`` images of one bright ``square`` x ``square`` each, at a random
  place: a tiny image dataset."""
  rng = np.random.default_rng(seed)
  images = np.zeros((n, size, size), np.uint8)
  for image, (r, c) in zip(images, rng.integers(0, size - square + 1, (n, 2)), strict=True):
    image[r:r + square, c:c + square] = 255
  path.mkdir(parents=True, exist_ok=True)
  write_idx(path / "train-images-idx3-ubyte.gz", images)
  write_idx(path / "train-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8))
  return path

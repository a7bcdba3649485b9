"""What several test modules share: paths, markers, small datasets, run configs and
comparisons. Fixtures live in conftest.py."""

import gzip
import json
import os
import shutil
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from jaxgan.data import sources


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


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny(blobs, **overrides):
  """A small MLP run that takes about a second per 20 steps on 8 simulated CPU devices."""
  config = dict(dataset=f"idx:{blobs}", model="mlp", latent_dim=16, batch_size=32, steps=20,
                spectral_norm=True, r1_weight=0.1, log_every=5, checkpoint_every=10,
                sample_every=10, grid_size=4, progress=False, lr_g=1e-3, lr_d=1e-3,
                eval_every=0)
  config.update(overrides)
  return config


def leaves(result):
  return jax.tree.leaves(jax.device_get((result.state_g, result.state_d)))


def assert_bitwise_equal(a, b):
  a, b = jax.tree.leaves(a), jax.tree.leaves(b)
  assert len(a) == len(b)
  for x, y in zip(a, b, strict=True):
    x, y = np.asarray(x), np.asarray(y)
    assert x.dtype == y.dtype and x.shape == y.shape
    assert x.tobytes() == y.tobytes()


def jsonl(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def logged_steps(workdir):
  try:
    return max([r["step"] for r in jsonl(workdir)], default=0)
  except (OSError, ValueError):
    return 0


def wait_for(condition, timeout=120.0, every=0.005):
  deadline = time.monotonic() + timeout
  while not condition():
    if time.monotonic() > deadline:
      raise TimeoutError("condition not reached")
    time.sleep(every)


def complete_checkpoints(workdir):
  names = os.listdir(os.path.join(workdir, "checkpoints"))
  return sorted(int(n) for n in names if n.isdigit())


def saving_now(workdir):
  try:
    return any("tmp" in n for n in os.listdir(os.path.join(workdir, "checkpoints")))
  except FileNotFoundError:
    return False


# Relative to each leaf's largest magnitude. Measured worst case 4e-5 (DCGAN, 5 steps,
# 8 CPU devices vs 1): reductions are summed in a different order across devices.
TOL = 3e-4


def assert_close(a, b, tol=TOL, name="", floor=1e-6):
  for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b),
                          strict=True):
    x, y = np.asarray(x), np.asarray(y)
    scale = max(float(np.abs(y).max()), floor)
    err = float(np.abs(x - y).max()) / scale
    assert err <= tol, f"{name}{jax.tree_util.keystr(path)}: relative error {err:.2e} > {tol}"


def export(workdir, out, num, seed):
  child = subprocess.run(
      [sys.executable, os.path.join(ROOT, "experiments", "mnist.py"), f"--workdir={workdir}",
       f"--sample_out={out}", f"--num_samples={num}", f"--sample_seed={seed}"],
      cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert child.returncode == 0, child.stderr[-3000:]
  return np.load(out), child.stdout


FASHION = sources.DEBIAN_FASHION_MNIST


# Skipped only outside CI: .ci/run installs the package and sets the variable, so there a
# missing dataset is a failure.
needs_fashion = pytest.mark.skipif(
    not os.path.exists(os.path.join(FASHION, "train-images-idx3-ubyte.gz"))
    and not os.environ.get("JAXGAN_REQUIRE_OFFLINE_DATA"),
    reason="apt-get install dataset-fashion-mnist (Debian) to run this test")


def resume_from_4(blobs, tmp_path, config):
  """(straight run, run resumed from its step-4 checkpoint, their metrics) of 8 steps."""
  from jaxgan.training import loop

  straight = loop.train_and_evaluate(config, str(tmp_path / "a"))
  shutil.copytree(tmp_path / "a", tmp_path / "b")
  shutil.rmtree(tmp_path / "b" / "checkpoints" / "8")
  resumed = loop.train_and_evaluate(config, str(tmp_path / "b"))
  assert_bitwise_equal(leaves(straight), leaves(resumed))
  strip = lambda rs: [{k: v for k, v in r.items() if k not in ("time", "steps_per_sec")}  # noqa
                      for r in rs]
  a, b = strip(jsonl(tmp_path / "a")), strip(jsonl(tmp_path / "b"))
  assert a == b
  return straight, resumed, a

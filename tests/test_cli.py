"""The experiments' command line: a caller's mistake is one message and status 2, a bug a
traceback (jaxgan.cli)."""

import os
import subprocess
import sys

import numpy as np
import pytest
from idx_files import blobs_idx_dir
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MNIST = os.path.join(ROOT, "experiments", "mnist.py")


@pytest.fixture(scope="module")
def blobs(tmp_path_factory):
  return str(blobs_idx_dir(tmp_path_factory.mktemp("blobs")))


def small(blobs, **overrides) -> list[str]:
  config = dict(dataset=f"idx:{blobs}", model="mlp", latent_dim=8, batch_size=16, steps=2,
                checkpoint_every=2, sample_every=2, eval_every=0, progress=False)
  config.update(overrides)
  return [f"--config.{k}={v}" for k, v in config.items()]


def cli(*args, env=None, devices=1, script=MNIST):
  env = {**{k: v for k, v in os.environ.items() if k != "JAXGAN_TRACEBACK"},
         "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}", **(env or {})}
  return subprocess.run([sys.executable, *([script] if script else []), *args], cwd=ROOT,
                        capture_output=True, text=True, env=env, timeout=300)


def assert_usage_error(child, *phrases):
  assert child.returncode == 2, (child.returncode, child.stderr[-3000:])
  assert "Traceback" not in child.stderr, child.stderr[-3000:]
  # One error line (notices may come before it), then its message and the hint.
  assert ("\n" + child.stderr).count("\nerror: ") == 1, child.stderr[-3000:]
  message = child.stderr[child.stderr.index("error: "):]
  assert message.rstrip().endswith("JAXGAN_TRACEBACK=1)"), message
  for phrase in phrases:
    assert phrase in message, (phrase, message)


def test_a_misspelt_config_field(tmp_path):
  child = cli(f"--workdir={tmp_path}", "--config.stpes=10")
  assert_usage_error(child, "no such field", '"steps"', "--config.stpes")
  assert not os.listdir(tmp_path)  # nothing written


def test_a_config_value_of_the_wrong_type(tmp_path):
  assert_usage_error(cli(f"--workdir={tmp_path}", "--config.steps=abc"), "--config.steps=abc",
                     "invalid literal")


def test_an_unknown_loss(blobs, tmp_path):
  assert_usage_error(cli(f"--workdir={tmp_path}", *small(blobs, loss="hingee")),
                     "Unknown loss 'hingee'", "hinge, least_squares")


def test_a_batch_that_does_not_divide_over_the_devices(blobs, tmp_path):
  child = cli(f"--workdir={tmp_path}", *small(blobs, batch_size=15), devices=2)
  assert_usage_error(child, "batch_size=15 does not divide over 2 devices", "multiple")


def test_a_missing_dataset(tmp_path):
  child = cli(f"--workdir={tmp_path / 'w'}", f"--config.dataset=idx:{tmp_path / 'nothing'}")
  assert_usage_error(child, "No train-images-idx3-ubyte[.gz] in", "nothing")


def test_a_workdir_of_another_run_and_the_tracebacks_on_request(blobs, tmp_path):
  workdir = str(tmp_path / "w")
  first = cli(f"--workdir={workdir}", *small(blobs))
  assert first.returncode == 0, first.stderr[-3000:]
  # The run ends by naming its newest grid, drawn at 3x (28 px images at 84).
  grid = os.path.join(workdir, "samples", "step_0000002.png")
  assert first.stdout.rstrip().endswith(f"samples: {grid}")
  assert np.asarray(Image.open(grid)).shape == (3 * (8 * 30 + 2),) * 2  # the 8 x 8 default
  args = (f"--workdir={workdir}", *small(blobs, seed=7, steps=4))
  assert_usage_error(cli(*args), "seed: checkpoint 0, config 7", "another --workdir")
  # On request, the traceback instead: --verbosity=1 or JAXGAN_TRACEBACK=1.
  for child in (cli(*args, "--verbosity=1"), cli(*args, env={"JAXGAN_TRACEBACK": "1"})):
    assert child.returncode != 0 and child.returncode != 2
    assert "Traceback" in child.stderr and "CheckpointMismatchError" in child.stderr
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2"]  # nothing lost


def test_an_unexpected_exception_keeps_its_traceback(tmp_path):
  script = tmp_path / "buggy.py"
  script.write_text("from jaxgan import cli\n\ndef main(argv):\n  raise RuntimeError('a bug')\n\n"
                    "cli.run(main)\n")
  child = cli(script=str(script))
  assert child.returncode == 1
  assert "Traceback" in child.stderr and "RuntimeError: a bug" in child.stderr
  assert "error: " not in child.stderr

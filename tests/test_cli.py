"""The experiments' command line: a caller's mistake is one message and status 2, a bug a
traceback (jaxgan.cli)."""

import json
import os
import shlex
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


def test_the_cpu_recipe_fills_in_what_the_command_line_does_not_set(blobs, tmp_path):
  # steps=-1 on this CPU: cpu_steps long, with cpu_recipe's settings except the given lr_g.
  flags = small(blobs, steps=-1, cpu_steps=2, cpu_recipe="ema_decay=0.5,lr_g=0.01",
                lr_g=0.003)
  child = cli(f"--workdir={tmp_path}", *flags)
  assert child.returncode == 0, child.stderr[-3000:]
  notice = next(line for line in child.stderr.splitlines() if "short CPU run" in line)
  assert "2 steps" in notice and "ema_decay=0.5" in notice and "lr_g" not in notice, notice
  with open(tmp_path / "checkpoints" / "2" / "meta" / "metadata") as f:
    config = json.load(f)["config"]
  assert (config["steps"], config["ema_decay"], config["lr_g"]) == (2, 0.5, 0.003)
  # Its last line is the command that goes on with the same run to 15,000 steps; run with a
  # shorter target, it resumes the run (a change of a setting the checkpoint records would
  # be refused), under the recipe's settings again.
  last = child.stdout.rstrip().splitlines()[-1]
  assert last.startswith("cleaner samples") and "resumes at step 2" in last, child.stdout
  command = shlex.split(last[last.index("python "):])
  without = [a for a in flags if not a.startswith("--config.cpu_steps=")]
  assert command == ["python", MNIST, f"--workdir={tmp_path}", *without,
                     "--config.cpu_steps=15000"]
  more = cli(*command[2:-1], "--config.cpu_steps=4")
  assert more.returncode == 0, more.stderr[-3000:]
  assert "resumed from step 2" in more.stderr and "step 4 (done)" in more.stdout, more.stderr
  with open(tmp_path / "checkpoints" / "4" / "meta" / "metadata") as f:
    config = json.load(f)["config"]
  assert (config["steps"], config["ema_decay"], config["lr_g"]) == (4, 0.5, 0.003)
  # A recipe that names a field it may not set, or a bad value, is a usage error.
  assert_usage_error(cli(f"--workdir={tmp_path / 'a'}", "--config.cpu_recipe=steps=3"),
                     "cpu_recipe: 'steps=3'", "field=value")
  assert_usage_error(cli(f"--workdir={tmp_path / 'b'}", *small(blobs, steps=-1,
                                                               cpu_recipe="lr_d=-1")),
                     "learning rates must be > 0", "cpu_recipe='lr_d=-1")
  assert not os.path.exists(tmp_path / "a") and not os.path.exists(tmp_path / "b" / "checkpoints")


def test_the_longer_cpu_run_keeps_the_arguments_and_replaces_the_length():
  from jaxgan.cli import longer_cpu_run

  argv = ["experiments/mnist.py", "--workdir=my dir", "--config.cpu_steps", "50",
          "--config.seed=1", "--config.cpu_steps=60"]
  assert longer_cpu_run(argv, 60, 15_000) == (
      "python experiments/mnist.py '--workdir=my dir' --config.seed=1 --config.cpu_steps=15000")
  assert longer_cpu_run(["mnist.py"], 5000, 15_000) == (
      "python mnist.py --config.cpu_steps=15000")
  assert longer_cpu_run(["mnist.py"], 15_000, 15_000) is None  # already that long

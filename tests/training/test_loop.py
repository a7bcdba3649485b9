"""The training loop: exact resume, preemption, device counts, bad checkpoints, NaN, logs."""

import json
import os
import runpy
import shutil
import signal
import subprocess
import sys
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import (
  ROOT,
  assert_bitwise_equal,
  complete_checkpoints,
  jsonl,
  leaves,
  logged_steps,
  needs_fashion,
  saving_now,
  tiny,
  wait_for,
)
from PIL import Image
from tensorboardX.proto import event_pb2

from jaxgan import parallel
from jaxgan.data import sources
from jaxgan.training import checkpoint as ckpt_lib
from jaxgan.training import config as config_lib
from jaxgan.training import loop
from jaxgan.training.tasks import noise as noise_tasks

pytestmark = pytest.mark.slow  # whole runs and networks: the full suite, not the fast tier


def training_values(records):
  # Wall-clock fields differ between runs; everything the training computed must not.
  return [{k: v for k, v in r.items() if k not in ("time", "steps_per_sec")} for r in records]


def read_checkpoint(workdir, step=None):
  """A checkpoint's arrays as host numpy, read back with the library's own reader."""
  ckpts = ckpt_lib.Checkpoints(os.path.join(workdir, "checkpoints"))
  step = ckpts.latest_step() if step is None else step
  meta = ckpts.read_meta(step)
  config = config_lib.complete_config(meta["config"])
  G, D = noise_tasks.make_models(config, meta["image_shape"])
  states = noise_tasks.noise_abstract_states(config, G, D, *noise_tasks.make_optimizers(config),
                                        tuple(meta["image_shape"]))
  target = ckpt_lib.run_target(states, parallel.data_mesh(jax.devices()[:1]))
  arrays = ckpts.restore(step, target)
  ckpts.close()
  return step, jax.device_get(arrays)


def test_stopping_and_resuming_gives_the_same_bits(blobs, tmp_path):
  straight = loop.train_and_evaluate(tiny(blobs, steps=40), str(tmp_path / "a"))
  half = loop.train_and_evaluate(tiny(blobs, steps=20), str(tmp_path / "b"))
  assert half.step == 20 and not half.preempted
  resumed = loop.train_and_evaluate(tiny(blobs, steps=40), str(tmp_path / "b"))
  assert straight.step == resumed.step == 40
  # Params, optimizer states, spectral-norm vectors, EMA and step counters, byte for byte.
  assert_bitwise_equal(leaves(straight), leaves(resumed))
  assert int(resumed.state_g.step) == int(resumed.state_d.step) == 40
  assert int(resumed.state_g.opt_state[0].count) == 40
  # The logged metrics of both runs agree too, step for step.
  a, b = jsonl(tmp_path / "a"), jsonl(tmp_path / "b")
  assert [r["step"] for r in a] == [5, 10, 15, 20, 25, 30, 35, 40]
  assert training_values(a) == training_values(b)
  # So do the saved states and the sample grids, drawn from the same fixed latent vectors.
  assert_bitwise_equal(read_checkpoint(tmp_path / "a")[1], read_checkpoint(tmp_path / "b")[1])
  for step in (10, 20, 30, 40):
    png = f"samples/step_{step:07d}.png"
    assert (np.asarray(Image.open(tmp_path / "a" / png)).tobytes()
            == np.asarray(Image.open(tmp_path / "b" / png)).tobytes())
  # Running a finished workdir again trains nothing and changes nothing.
  again = loop.train_and_evaluate(tiny(blobs, steps=40), str(tmp_path / "b"))
  assert again.step == 40
  assert_bitwise_equal(leaves(again), leaves(resumed))


@pytest.mark.parametrize("before, after", [(8, 1), (1, 8)])
def test_restore_on_another_device_count(blobs, tmp_path, before, after):
  first = loop.train_and_evaluate(tiny(blobs, num_devices=before, parallel="shard_map"),
                                   str(tmp_path / "w"))
  saved = read_checkpoint(tmp_path / "w", 20)[1]
  assert_bitwise_equal(saved["g"], jax.device_get(first.state_g))
  assert_bitwise_equal(saved["d"], jax.device_get(first.state_d))
  shutil.copytree(tmp_path / "w", tmp_path / "ref")
  resumed = loop.train_and_evaluate(tiny(blobs, num_devices=after, steps=21),
                                     str(tmp_path / "w"))
  assert resumed.step == 21
  assert {d.id for d in resumed.state_g.params["Dense_0"]["kernel"].sharding.device_set} == {
      d.id for d in jax.devices()[:after]}
  # The step taken after the restore equals the one the original device count takes from
  # the same checkpoint, up to the float reassociation of averaging over another number of
  # devices. (One step: over many, Adam's normalisation amplifies rounding differences.)
  reference = loop.train_and_evaluate(tiny(blobs, num_devices=before, steps=21),
                                       str(tmp_path / "ref"))
  for x, y in zip(leaves(resumed), leaves(reference), strict=True):
    np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6 * (np.abs(y).max() + 1e-6))
  np.testing.assert_allclose(jsonl(tmp_path / "w")[-1]["d_loss"],
                             jsonl(tmp_path / "ref")[-1]["d_loss"], rtol=1e-5)


def test_another_architecture_or_latent_size_is_refused_by_name(blobs, tmp_path, capfd):
  loop.train_and_evaluate(tiny(blobs, steps=10), str(tmp_path))
  with pytest.raises(ckpt_lib.CheckpointMismatchError,
                     match=r"latent_dim: checkpoint 16, config 32[\s\S]*another --workdir"):
    loop.train_and_evaluate(tiny(blobs, steps=20, latent_dim=32), str(tmp_path))
  with pytest.raises(ckpt_lib.CheckpointMismatchError, match="model: checkpoint 'mlp', config "
                     "'dcgan'"):
    loop.train_and_evaluate(tiny(blobs, steps=20, model="dcgan"), str(tmp_path))
  # Nothing was lost: the checkpoint is still there, and the right config resumes it,
  # saying which settings it changed.
  # Here it also switches to bfloat16 compute: the float32 checkpoint trains on in mixed
  # precision and the state stays float32.
  capfd.readouterr()
  result = loop.train_and_evaluate(tiny(blobs, steps=20, lr_d=5e-4, compute_dtype="bfloat16"),
                                    str(tmp_path))
  assert result.step == 20
  err = capfd.readouterr().err
  assert "resumed from step 10" in err
  assert "changed settings" in err and "lr_d 0.001 -> 0.0005" in err
  assert "compute_dtype" in err
  assert result.G.dtype == jnp.bfloat16
  floats = [x for x in leaves(result) if jnp.issubdtype(x.dtype, jnp.floating)]
  assert {x.dtype for x in floats} == {np.dtype(np.float32)}
  assert all(np.isfinite(x).all() for x in floats)


@pytest.mark.parametrize("stream,other,what", [
    ("data_order", "feistel-0", r"batches came in another order"),
    ("noise", "threefry-example-0", r"noise \(latents, dropout masks\) was drawn another way")])
def test_a_checkpoint_of_other_random_streams_is_refused(blobs, tmp_path, stream, other, what):
  # A run whose batches or noise this jaxgan draws otherwise must not resume silently.
  loop.train_and_evaluate(tiny(blobs, steps=10), str(tmp_path))
  meta_file = tmp_path / "checkpoints" / "10" / "meta" / "metadata"
  meta = json.loads(meta_file.read_text())
  assert (meta["data_order"], meta["noise"]) == ("feistel-1", "threefry-example-1")
  meta[stream], meta["jaxgan"] = other, "0.6.1"
  meta_file.write_text(json.dumps(meta))
  with pytest.raises(ckpt_lib.CheckpointMismatchError,
                     match=what + rf" \('{other}'; this jaxgan uses '[\s\S]*another "
                     r"--workdir[\s\S]*jaxgan 0.6.1"):
    loop.train_and_evaluate(tiny(blobs, steps=20), str(tmp_path))
  assert complete_checkpoints(tmp_path) == [10]  # nothing lost


def corrupt(step_dir):
  """Flips bytes in the second half of every file of a checkpoint's arrays."""
  for root, _, files in os.walk(os.path.join(step_dir, "arrays")):
    for name in files:
      with open(os.path.join(root, name), "r+b") as f:
        data = bytearray(f.read())
        data[len(data) // 2:] = bytes(b ^ 0xFF for b in data[len(data) // 2:])
        f.seek(0)
        f.write(bytes(data))


def test_an_unreadable_checkpoint_falls_back_to_the_one_before(blobs, tmp_path, capfd):
  straight = loop.train_and_evaluate(tiny(blobs, steps=30), str(tmp_path / "a"))
  loop.train_and_evaluate(tiny(blobs, steps=20), str(tmp_path / "b"))
  corrupt(tmp_path / "b" / "checkpoints" / "20")
  capfd.readouterr()
  resumed = loop.train_and_evaluate(tiny(blobs, steps=30), str(tmp_path / "b"))
  err = capfd.readouterr().err
  assert "checkpoint 20" in err and "cannot be read" in err and "resumed from step 10" in err
  # Set aside, not deleted; and the run redid steps 11-30 exactly.
  assert os.path.isdir(tmp_path / "b" / "checkpoints" / ckpt_lib.CORRUPT_DIR / "20")
  assert_bitwise_equal(leaves(straight), leaves(resumed))


def test_no_readable_checkpoint_is_a_clear_error(blobs, tmp_path):
  loop.train_and_evaluate(tiny(blobs, steps=20), str(tmp_path))
  for step in (10, 20):
    corrupt(tmp_path / "checkpoints" / str(step))
  with pytest.raises(ckpt_lib.CheckpointError, match=r"None of the checkpoints[\s\S]*step 20"
                     r"[\s\S]*step 10[\s\S]*another --workdir"):
    loop.train_and_evaluate(tiny(blobs, steps=30), str(tmp_path))


def test_divergence_stops_with_the_step_metric_and_last_good_checkpoint(blobs, tmp_path):
  loop.train_and_evaluate(tiny(blobs, steps=10), str(tmp_path))
  # A huge learning rate from step 10 on: Adam moves every weight by ~1e30 per step.
  with pytest.raises(loop.NonFiniteError) as info:
    loop.train_and_evaluate(tiny(blobs, steps=40, lr_g=1e30, lr_d=1e30, log_every=50),
                             str(tmp_path))
  message = str(info.value)
  step = int(message.split(" at step ")[1].split(",")[0])
  assert 10 < step <= 20, message  # the first bad step, found although the log interval is 50
  assert "newest checkpoint, step 10" in message and "is finite" in message
  saved_step, arrays = read_checkpoint(tmp_path)
  assert saved_step == 10
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(arrays))
  # The failing step is reported from the metrics; records after it were never written.
  assert max(r["step"] for r in jsonl(tmp_path)) == 10


def test_logs_metrics_tensorboard_and_grids(blobs, tmp_path, capfd):
  loop.train_and_evaluate(tiny(blobs, steps=20, progress=True), str(tmp_path))
  err = capfd.readouterr().err
  assert "20/20" in err and "step/s" in err and "d_loss=" in err  # the progress bar
  records = jsonl(tmp_path)
  assert [r["step"] for r in records] == [5, 10, 15, 20]
  for r in records:
    assert {"d_loss", "g_loss", "real_logits", "fake_logits", "r1", "steps_per_sec"} <= set(r)
    assert all(np.isfinite(v) for v in r.values())
  scalars = {}
  (events,) = os.listdir(tmp_path / "tensorboard")
  for event in read_tfrecords(tmp_path / "tensorboard" / events):
    for value in event.summary.value:
      scalars.setdefault(value.tag, []).append((event.step, value))
  assert [s for s, _ in scalars["train/d_loss"]] == [5, 10, 15, 20]
  np.testing.assert_allclose([v.simple_value for _, v in scalars["train/g_loss"]],
                             [r["g_loss"] for r in records], rtol=1e-6)
  assert [s for s, _ in scalars["samples"]] == [10, 20]
  # 4 x 4 grid of 28 x 28 images with 2-pixel borders, drawn 3x (84 px an image) in the
  # PNG; TensorBoard gets the exact size.
  for step in (10, 20):
    grid = np.asarray(Image.open(tmp_path / "samples" / f"step_{step:07d}.png"))
    assert grid.shape == (3 * (4 * 30 + 2), 3 * (4 * 30 + 2)) and grid.dtype == np.uint8
    exact = grid[::3, ::3]
    np.testing.assert_array_equal(grid, np.repeat(np.repeat(exact, 3, 0), 3, 1))
  (_, tb_grid), _ = scalars["samples"]
  assert (tb_grid.image.height, tb_grid.image.width) == (4 * 30 + 2, 4 * 30 + 2)


def read_tfrecords(path):
  """TFRecord framing: u64 length, u32 crc, payload, u32 crc; payloads are Event protos."""
  with open(path, "rb") as f:
    data = f.read()
  out, i = [], 0
  while i < len(data):
    n = int.from_bytes(data[i:i + 8], "little")
    out.append(event_pb2.Event.FromString(data[i + 12:i + 12 + n]))
    i += 12 + n + 4
  assert i == len(data)
  return out


def test_bad_config_is_refused_before_anything_runs(blobs, tmp_path):
  with pytest.raises(ValueError, match=r"Unknown config field\(s\): stesp \(did you mean steps"):
    loop.train_and_evaluate({**tiny(blobs), "stesp": 5}, str(tmp_path))
  with pytest.raises(ValueError, match="model must be one of"):
    loop.train_and_evaluate(tiny(blobs, model="stylegan9"), str(tmp_path))
  with pytest.raises(ValueError, match=r"compute_dtype must be one of \('float32', 'bfloat16'\)"):
    loop.train_and_evaluate(tiny(blobs, compute_dtype="float16"), str(tmp_path))
  with pytest.raises(ValueError, match=r"cpu_conv_kernels must be one of \('xla', 'jaxlib'\)"):
    loop.train_and_evaluate(tiny(blobs, cpu_conv_kernels="mkl"), str(tmp_path))
  with pytest.raises(ValueError, match="batch_size=30 does not divide over 8 devices"):
    loop.train_and_evaluate(tiny(blobs, batch_size=30), str(tmp_path))
  assert not os.path.exists(tmp_path / "checkpoints")


# -- preemption: real processes, real signals -----------------------------------------------

def launch(workdir, blobs, **overrides):
  """experiments/mnist.py in a child process (it inherits the 8 simulated devices), with
  its config's full variant: the recipe ``tiny`` completes in-process."""
  config = os.path.join(ROOT, "experiments", "configs", "mnist.py")
  args = [sys.executable, os.path.join(ROOT, "experiments", "mnist.py"), f"--config={config}:full",
          f"--workdir={workdir}"]
  args += [f"--config.{k}={v}" for k, v in tiny(blobs, **overrides).items()]
  return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)


def next_save(workdir):
  """A condition: true once a save starts after the previous kill's leftovers are removed."""
  cleaned = [False]

  def condition():
    if not cleaned[0]:
      cleaned[0] = not saving_now(workdir)
      return False
    return saving_now(workdir)

  return condition


# The child completes its config from the MLP recipe and the in-process run from the defaults:
# the fields where those differ are named, so that both train the same run.
SUBPROCESS_RUN = dict(steps=120, checkpoint_every=20, log_every=10, sample_every=60,
                      loss="hinge", b1=0.0, b2=0.9, ema_decay=0.99)


@pytest.fixture(scope="module")
def uninterrupted(blobs, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("uninterrupted")
  loop.train_and_evaluate(tiny(blobs, **SUBPROCESS_RUN), str(workdir))
  return read_checkpoint(workdir)


def finish_and_compare(workdir, blobs, uninterrupted, resumed_from):
  child = launch(workdir, blobs, **SUBPROCESS_RUN)
  out, err = child.communicate(timeout=300)
  assert child.returncode == 0, err[-3000:]
  assert f"resumed from step {resumed_from} " in err
  step, arrays = read_checkpoint(workdir)
  assert step == uninterrupted[0] == SUBPROCESS_RUN["steps"]
  assert_bitwise_equal(arrays, uninterrupted[1])


# SIGTERM in every window of a run's life, one window per process, on one workdir: each
# process exits 0 within 30 s, keeps what it had, and the run ends with the bytes and the
# evaluations of a run that was never stopped.
WINDOWS_RUN = dict(dataset=f"idx:{sources.DEBIAN_FASHION_MNIST}", model="mlp", conditional=False,
                   latent_dim=16,
                   batch_size=32, steps=120, checkpoint_every=20, log_every=10,
                   sample_every=60, eval_every=60, eval_samples=200, grid_size=4,
                   progress=False, lr_g=1e-3, lr_d=1e-3)


class Child:
  """A process of tests/signal_windows.py whose stderr lines are collected as they come."""

  def __init__(self, window, workdir, *flags, env=None, **config):
    args = [sys.executable, os.path.join(ROOT, "tests", "signal_windows.py"), window,
            f"--workdir={workdir}", *flags]
    args += [f"--config.{k}={v}" for k, v in {**WINDOWS_RUN, **config}.items()]
    self.proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True, env={**os.environ, **(env or {})})
    self.lines, self.out = [], []  # stderr and stdout, each read by a thread as it comes
    self.readers = [threading.Thread(target=lambda: self.lines.extend(self.proc.stderr)),
                    threading.Thread(target=lambda: self.out.extend(self.proc.stdout))]
    for reader in self.readers:
      reader.start()

  def signal_when(self, condition, timeout=300):
    wait_for(lambda: condition() or self.proc.poll() is not None, timeout)
    assert self.proc.poll() is None, ("".join(self.lines) + "".join(self.out))[-3000:]
    self.proc.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    self.proc.wait(timeout=120)
    elapsed = time.monotonic() - sent
    for reader in self.readers:
      reader.join(10)
    self.proc.stdout.close()
    self.proc.stderr.close()
    out = "".join(self.out)
    err = "".join(self.lines)
    assert self.proc.returncode == 0, err[-3000:]
    assert elapsed < 30, elapsed
    assert "SIGTERM received" in err
    return out, err

  def in_window(self, window):
    return lambda: any(line.startswith(f"JAXGAN_WINDOW {window}") for line in self.lines)


@needs_fashion
def test_sigterm_in_every_window_exits_0_keeps_everything_and_resumes_exactly(tmp_path):
  workdir = tmp_path / "run"
  reference = tmp_path / "reference"
  # The uninterrupted run: the script's own config, as the processes read it (the recipe of
  # the model their command line names).
  config = runpy.run_path(os.path.join(ROOT, "experiments", "configs", "mnist.py"))[
      "get_config"](WINDOWS_RUN["model"])
  config.update(WINDOWS_RUN)
  loop.train_and_evaluate(config, str(reference))
  want_step, want = read_checkpoint(reference)

  def meta(step):
    with open(workdir / "checkpoints" / str(step) / "meta" / "metadata") as f:
      return json.load(f)

  # Loading the data, and compiling the first step: nothing yet, then step 1.
  child = Child("data", workdir)
  out, _ = child.signal_when(child.in_window("data"))
  assert "stopped before training" in out and not (workdir / "checkpoints").exists()
  child = Child("compile", workdir)
  out, _ = child.signal_when(child.in_window("compile"))
  assert complete_checkpoints(workdir) == [1] and "step 1 (stopped early" in out
  # During the first evaluation (step 60): saved, with the evaluation marked as owed.
  child = Child("evaluation", workdir)
  child.signal_when(child.in_window("evaluation"))
  assert complete_checkpoints(workdir)[-1] == 60 and meta(60)["eval_pending"]
  # Training the evaluation classifier (an empty cache): nothing changes.
  child = Child("classifier", workdir, env={"JAXGAN_CACHE_DIR": str(tmp_path / "cache")})
  out, _ = child.signal_when(child.in_window("classifier"))
  assert "stopped before training" in out and complete_checkpoints(workdir)[-1] == 60
  assert not list((tmp_path / "cache").glob("classifiers/*.msgpack"))  # none half-trained
  # Between steps, after the owed evaluation was made on resume.
  child = Child("none", workdir)
  _, err = child.signal_when(lambda: logged_steps(workdir) >= 75)
  assert "resumed from step 60" in err
  stopped = int(err.split("stopped at step ")[1].split(" ")[0])
  assert 75 <= stopped < 120 and complete_checkpoints(workdir)[-1] == stopped
  # While the last checkpoint is being saved: the run finishes.
  child = Child("final_save", workdir)
  out, _ = child.signal_when(child.in_window("final_save"))
  assert "step 120 (done)" in out
  # Tearing down a finished run, and exporting samples: exit 0, and no partial file.
  child = Child("teardown", workdir)
  child.signal_when(child.in_window("teardown"))
  samples = tmp_path / "samples.npy"
  child = Child("sample_out", workdir, f"--sample_out={samples}", "--num_samples=3000")
  out, _ = child.signal_when(child.in_window("sample_out"))
  assert "nothing was written" in out and not os.path.exists(samples)

  step, got = read_checkpoint(workdir)
  assert step == want_step == 120
  assert_bitwise_equal(got, want)
  # The evaluations, the one a signal interrupted included, are the uninterrupted run's.
  # (Training records are means over log intervals, which a stop splits.)
  evaluations = [r for r in jsonl(workdir) if "eval" in r]
  assert [r["step"] for r in evaluations] == [60, 120]
  assert evaluations == [r for r in jsonl(reference) if "eval" in r]


def test_sigkill_at_any_moment_resumes_from_the_last_complete_checkpoint(
    blobs, tmp_path, uninterrupted):
  rng = np.random.default_rng(0)
  conditions = {  # what to wait for before SIGKILL (plus a random delay)
      "training": lambda: lambda: logged_steps(tmp_path) >= 25,
      "saving": lambda: next_save(tmp_path),  # while a checkpoint is being written
      "starting": lambda: lambda: True,  # during imports, compilation or the restore
  }
  moments = [("training", rng.uniform(0, 2)), ("saving", 0.0), ("starting", rng.uniform(0, 3)),
             ("saving", 0.0)]
  killed_while_saving = 0
  for moment, delay in moments:
    condition = conditions[moment]()
    child = launch(tmp_path, blobs, **SUBPROCESS_RUN)
    wait_for(lambda c=condition, p=child: c() or p.poll() is not None)
    time.sleep(delay)
    was_saving = saving_now(tmp_path)
    child.kill()
    _, err = child.communicate()
    assert child.returncode == -signal.SIGKILL, err[-3000:]  # it was running, not failed
    killed_while_saving += was_saving
  assert killed_while_saving >= 1  # at least one kill hit a save in progress
  last = complete_checkpoints(tmp_path)[-1]
  assert last < SUBPROCESS_RUN["steps"]
  # The partial save is never restored: the run resumes from the last complete one.
  finish_and_compare(tmp_path, blobs, uninterrupted, last)
  assert not saving_now(tmp_path)  # and the leftover temporary directory was removed


def test_sigint_in_process_stops_at_a_saved_step(blobs, tmp_path):
  import threading

  def interrupt():
    wait_for(lambda: logged_steps(tmp_path) >= 10)
    os.kill(os.getpid(), signal.SIGINT)

  before = signal.getsignal(signal.SIGINT)  # Python's default, or SIG_IGN under nohup
  thread = threading.Thread(target=interrupt, daemon=True)
  thread.start()
  result = loop.train_and_evaluate(tiny(blobs, steps=10_000, checkpoint_every=1000),
                                    str(tmp_path))
  thread.join()
  assert result.preempted and 10 <= result.step < 10_000
  step, arrays = read_checkpoint(tmp_path)
  assert step == result.step
  assert_bitwise_equal(arrays["g"], jax.device_get(result.state_g))
  # The handler is gone afterwards: the process's own SIGINT behaviour is back.
  assert signal.getsignal(signal.SIGINT) is before

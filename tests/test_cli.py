"""The experiments' command line: a caller's mistake is one message and status 2, a bug a
traceback (jaxgan.cli)."""

import json
import os
import shlex
import subprocess
import sys

import numpy as np
import pytest
from helpers import ROOT
from PIL import Image

MNIST = os.path.join(ROOT, "experiments", "mnist.py")


def small(blobs, **overrides) -> list[str]:
  # On this CPU the script runs its config's cpu variant, a conditional DCGAN: here an
  # unconditional MLP of it.
  config = dict(dataset=f"idx:{blobs}", model="mlp", conditional=False, latent_dim=8,
                batch_size=16, steps=2, checkpoint_every=2, sample_every=2, eval_every=0,
                progress=False)
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


@pytest.mark.slow
def test_a_workdir_of_another_run_and_the_tracebacks_on_request(blobs, tmp_path):
  workdir = str(tmp_path / "w")
  first = cli(f"--workdir={workdir}", *small(blobs))
  assert first.returncode == 0, first.stderr[-3000:]
  # The run ends by naming its newest grid, drawn at 3x (28 px images at 84).
  grid = os.path.join(workdir, "samples", "step_0000002.png")
  assert f"samples: {grid}" in first.stdout.splitlines()
  assert np.asarray(Image.open(grid)).shape == (3 * (8 * 30 + 2),) * 2  # the 8 x 8 default
  args = (f"--workdir={workdir}", *small(blobs, seed=7, steps=4))
  assert_usage_error(cli(*args), "seed: checkpoint 0, config 7", "another --workdir")
  # On request, the traceback instead: JAXGAN_TRACEBACK=1, or --verbosity=1 (the same
  # switch, read from the command line).
  child = cli(*args, env={"JAXGAN_TRACEBACK": "1"})
  assert child.returncode != 0 and child.returncode != 2
  assert "Traceback" in child.stderr and "CheckpointMismatchError" in child.stderr
  from jaxgan.cli import wants_traceback

  assert wants_traceback(["mnist.py", "--verbosity=1"])
  assert wants_traceback(["mnist.py", "--verbosity", "2"])
  assert not wants_traceback(["mnist.py", "--verbosity=0"])
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2"]  # nothing lost


def test_an_unexpected_exception_keeps_its_traceback(tmp_path):
  script = tmp_path / "buggy.py"
  script.write_text("from jaxgan import cli\n\ndef main(argv):\n  raise RuntimeError('a bug')\n\n"
                    "cli.run(main)\n")
  child = cli(script=str(script))
  assert child.returncode == 1
  assert "Traceback" in child.stderr and "RuntimeError: a bug" in child.stderr
  assert "error: " not in child.stderr


@pytest.mark.slow
def test_the_cpu_variant_keeps_what_the_command_line_sets_and_ends_with_the_longer_run(
    blobs, tmp_path):
  # On this CPU mnist.py runs the cpu variant of the DCGAN's recipe (conditional, hinge
  # loss, Adam betas (0, 0.9)); what the command line sets stays set.
  flags = small(blobs, model="dcgan", width=0.125, conditional=True, lr_g=0.003)
  child = cli(f"--workdir={tmp_path}", *flags)
  assert child.returncode == 0, child.stderr[-3000:]
  notice = next(line for line in child.stderr.splitlines() if "the config's CPU run" in line)
  assert "2 steps of the class-conditional dcgan (width 0.125), hinge loss" in notice, notice
  with open(tmp_path / "checkpoints" / "2" / "meta" / "metadata") as f:
    config = json.load(f)["config"]
  assert (config["variant"], config["steps"], config["loss"], config["b1"], config["b2"],
          config["lr_g"]) == ("cpu", 2, "hinge", 0.0, 0.9, 0.003)
  # Its last line is the command that goes on with the same run to 15,000 steps; run with a
  # shorter target, it resumes the run (a change of a setting the checkpoint records would
  # be refused), under the same settings.
  last = child.stdout.rstrip().splitlines()[-1]
  assert last.startswith("cleaner samples") and "resumes at step 2" in last, child.stdout
  command = shlex.split(last[last.index("python "):])
  without = [a for a in flags if not a.startswith("--config.steps=")]
  assert command == ["python", MNIST, f"--workdir={tmp_path}", *without,
                     "--config.steps=15000"]
  more = cli(*command[2:-1], "--config.steps=4")
  assert more.returncode == 0, more.stderr[-3000:]
  assert "resumed from step 2" in more.stderr and "step 4 (done)" in more.stdout, more.stderr
  with open(tmp_path / "checkpoints" / "4" / "meta" / "metadata") as f:
    config = json.load(f)["config"]
  assert (config["steps"], config["loss"], config["lr_g"]) == (4, "hinge", 0.003)
  # The full variant offers no longer run (test_the_longer_run_is_offered_only_for_...).


def test_removed_fields_and_unknown_variants_are_usage_errors(tmp_path):
  assert_usage_error(cli(f"--workdir={tmp_path / 'a'}", "--config.cpu_steps=15000"),
                     "--config.cpu_steps was removed", "--config.steps=15000")
  assert_usage_error(cli(f"--workdir={tmp_path / 'b'}", "--config.cpu_recipe=loss=hinge"),
                     "--config.cpu_recipe was removed", "--config=FILE:cpu")
  config = os.path.join(ROOT, "experiments", "configs", "mnist.py")
  assert_usage_error(cli(f"--workdir={tmp_path / 'c'}", f"--config={config}:gpu"),
                     "Unknown config argument 'gpu'", "('cpu', 'full')")
  assert not any(os.path.exists(tmp_path / d) for d in "abc")


def parsed_config_flag(*args, config="mnist.py"):
  """The experiment's --config flag parsed from ``args``, in-process."""
  from absl import flags
  from ml_collections import config_flags

  values = flags.FlagValues()
  path = os.path.join(ROOT, "experiments", "configs", config)
  # The fields' override flags are defined from the arguments the flag is given.
  argv = ["mnist.py", *args]
  config_flags.DEFINE_config_file("config", path, flag_values=values, sys_argv=argv)
  values(argv)
  return values["config"]


def test_the_model_on_the_command_line_runs_that_models_recipe(capsys):
  from jaxgan.cli import config_of_command_line

  path = os.path.join(ROOT, "experiments", "configs", "mnist.py")
  default = config_of_command_line(parsed_config_flag())
  assert (default.model, default.variant, default.n_critic, default.loss) == (
      "dcgan", "cpu", 1, "hinge")
  # --config.model=resnet: the ResNet's recipe (SNGAN's hinge loss and Adam betas; on a CPU
  # 2 D steps per G step and a lazy R1, the reference's 5 and no R1 on an accelerator), with
  # what else the command line sets on top.
  resnet = config_of_command_line(parsed_config_flag("--config.model=resnet",
                                                     "--config.lr_g=0.003"))
  assert (resnet.model, resnet.n_critic, resnet.loss, resnet.b1, resnet.b2, resnet.lr_g,
          resnet.lr_d, resnet.g_channels, resnet.r1_weight, resnet.r1_every) == (
              "resnet", 2, "hinge", 0.0, 0.9, 0.003, 2e-4, 32, 0.1, 4)
  resnet_full = config_of_command_line(parsed_config_flag(f"--config={path}:resnet,full"))
  assert (resnet_full.n_critic, resnet_full.steps, resnet_full.g_channels,
          resnet_full.r1_weight) == (5, 20_000, 0, 0)
  # The same as naming it after the file; the variant named there is kept.
  named = config_of_command_line(parsed_config_flag(f"--config={path}:resnet"))
  assert named.to_dict() == {**resnet.to_dict(), "lr_g": 2e-4}
  full = config_of_command_line(parsed_config_flag(f"--config={path}:full",
                                                   "--config.model=stylegan2"))
  assert (full.model, full.variant, full.steps, full.r1_every) == ("stylegan2", "full",
                                                                   50_000, 16)
  # The run's first line says which recipe runs.
  from jaxgan.training import config as config_lib

  config_lib.complete_any(resnet)
  err = capsys.readouterr().err
  assert ("jaxgan: no accelerator found, so this is the config's CPU run: 1,400 steps of the "
          "class-conditional resnet (G 32, D 16 channels), hinge loss, 2 D steps per G step, "
          "R1 gamma 0.1 every 4 steps, Adam betas (0, 0.9)") in err
  # A recipe that cannot give recognisable samples here says so next, with what does.
  (note,) = [line for line in err.splitlines() if "learns slowly" in line]
  assert note.startswith("jaxgan: the ResNet") and note.endswith("python experiments/mnist.py")
  config_lib.complete_any(default)
  err = capsys.readouterr().err  # no penalty: none named between the loss and the betas
  assert "learns slowly" not in err and "hinge loss, Adam betas (0, 0.9)" in err
  # R1 every step and WGAN-GP are named without a schedule.
  config_lib.complete_any(config_of_command_line(parsed_config_flag(
      "--config.r1_weight=0.5", "--config.gp_weight=10")))
  assert "hinge loss, R1 gamma 0.5, gradient penalty 10, Adam betas (0, 0.9)" in \
      capsys.readouterr().err
  # A recipe sees whether the run is conditional: StyleGAN2's conditional CPU run is its
  # own (half the steps, the class faded in), named with --config.model or after the file.
  sg2 = config_of_command_line(parsed_config_flag("--config.model=stylegan2"))
  assert (sg2.width, sg2.steps, sg2.conditional, sg2.transition_end) == (0.25, 1700, False, 0)
  for args in (("--config.model=stylegan2", "--config.conditional=True"),
               (f"--config={path}:stylegan2,cpu", "--config.conditional=True")):
    cond = config_of_command_line(parsed_config_flag(*args))
    assert (cond.model, cond.width, cond.steps, cond.conditional, cond.transition_start,
            cond.transition_end, cond.augment) == ("stylegan2", 0.25, 1300, True, 300, 1000,
                                                   "diffaugment"), args
  # Its first line names the fade and the augmentation, which the unconditional run lacks.
  config_lib.complete_any(cond)
  assert ("1,300 steps of the class-conditional stylegan2 (width 0.25), non_saturating loss, "
          "R1 gamma 0.0032 every 16 steps, Adam betas (0, 0.99), the class faded in over "
          "steps 300-1,000, augment diffaugment (on a GPU") in capsys.readouterr().err
  config_lib.complete_any(sg2)
  err = capsys.readouterr().err
  assert "1,700 steps of the stylegan2 (width 0.25), non_saturating loss, R1 gamma 0.0032 " \
      "every 16 steps, Adam betas (0, 0.99) (on a GPU" in err and "faded" not in err
  # A recipe's own choice gives way to the command line's (the DCGAN's CPU run is
  # conditional), and the other fields are the recipe's.
  dcgan = config_of_command_line(parsed_config_flag("--config.conditional=False"))
  assert not dcgan.conditional and dcgan.to_dict() == {**default.to_dict(),
                                                       "conditional": False}
  # A model the file has no recipe for is left to the validation to name.
  other = config_of_command_line(parsed_config_flag("--config.model=transformer"))
  assert other.model == "transformer" and other.loss == "hinge"
  # A config file without recipes per model: --config.model sets the field only.
  cifar = config_of_command_line(parsed_config_flag("--config.model=dcgan",
                                                    config="cifar10.py"))
  assert cifar.model == "dcgan" and cifar.to_dict() == {
      **parsed_config_flag(config="cifar10.py").value.to_dict(), "model": "dcgan"}


def test_unlabelled_images_run_the_recipes_unconditional_variant(tmp_path, capsys):
  from jaxgan.cli import config_of_command_line

  image = np.zeros((8, 8), np.uint8)
  for folder in ("flat", "classes/a", "classes/b"):
    (tmp_path / folder).mkdir(parents=True)
    Image.fromarray(image).save(tmp_path / folder / "0.png")
  default = config_of_command_line(parsed_config_flag())
  assert default.conditional  # the DCGAN's CPU run trains on labels
  # A folder without class folders: the recipe built unconditional, said once.
  flat = config_of_command_line(parsed_config_flag(f"--config.dataset={tmp_path}/flat"))
  assert flat.to_dict() == {**default.to_dict(), "conditional": False,
                            "dataset": f"{tmp_path}/flat"}
  assert capsys.readouterr().err.count("has no class labels") == 1
  # StyleGAN2's unconditional CPU run is its own recipe, not the conditional one's fields.
  sg2 = config_of_command_line(parsed_config_flag(f"--config.dataset={tmp_path}/flat",
                                                  "--config.model=stylegan2"))
  assert (sg2.conditional, sg2.steps) == (False, 1700)
  # Labelled data, or a conditional run the command line asks for, is left as it is (the
  # latter then stops with an error naming the missing labels).
  classes = config_of_command_line(parsed_config_flag(f"--config.dataset={tmp_path}/classes"))
  asked = config_of_command_line(parsed_config_flag(f"--config.dataset={tmp_path}/flat",
                                                    "--config.conditional=True"))
  assert classes.conditional and asked.conditional
  assert "has no class labels" not in capsys.readouterr().err


def test_the_longer_run_is_offered_only_for_a_finished_healthy_cpu_run_of_a_listed_model():
  import types

  from jaxgan.cli import longer_line

  def result(**changes):
    return types.SimpleNamespace(**{"grid": "g.png", "preempted": False, "step": 5000,
                                    "evaluation": {"fd": 3.0, "collapsed": []}, **changes})

  cpu = {"model": "dcgan", "variant": "cpu"}
  longer = {"dcgan": (15_000, "cleaner samples")}
  assert longer_line(result(), cpu, longer, ["mnist.py"]) == (
      "cleaner samples: go on with this run to 15,000 steps (it resumes at step 5,000): "
      "python mnist.py --config.steps=15000")
  # Collapsed (any class), preempted, no grid, the full variant, another model, long enough.
  assert longer_line(result(evaluation={"collapsed": [3]}), cpu, longer, ["m.py"]) is None
  assert longer_line(result(preempted=True), cpu, longer, ["m.py"]) is None
  assert longer_line(result(grid=None), cpu, longer, ["m.py"]) is None
  assert longer_line(result(), {**cpu, "variant": "full"}, longer, ["m.py"]) is None
  assert longer_line(result(), {**cpu, "model": "resnet"}, longer, ["m.py"]) is None
  assert longer_line(result(step=15_000), cpu, longer, ["m.py"]) is None


def test_the_longer_run_keeps_the_arguments_and_replaces_the_length():
  from jaxgan.cli import longer_run

  argv = ["experiments/mnist.py", "--workdir=my dir", "--config.steps", "50",
          "--config.seed=1", "--config.steps=60"]
  assert longer_run(argv, 60, 15_000) == (
      "python experiments/mnist.py '--workdir=my dir' --config.seed=1 --config.steps=15000")
  assert longer_run(["mnist.py"], 5000, 15_000) == "python mnist.py --config.steps=15000"
  assert longer_run(["mnist.py"], 15_000, 15_000) is None  # already that long


def test_r3gan_and_the_stacked_runs_have_their_recipes(capsys):
  from jaxgan.cli import config_of_command_line
  from jaxgan.training import config as config_lib

  # R3GAN's CPU run: the thin network 10 minutes allow, its schedules over the whole run
  # (520 steps of 64 images), and a note that it needs an accelerator.
  r3 = config_of_command_line(parsed_config_flag("--config.model=r3gan"))
  assert (r3.steps, r3.channel_base, r3.channel_max, r3.stage_blocks, r3.loss, r3.r1_weight,
          r3.r2_weight, r3.b1, r3.schedule_kimg) == (520, 256, 32, 1, "relativistic", 0.05,
                                                     0.05, 0.0, 520 * 64 / 1000)
  config_lib.complete_any(r3)
  err = capsys.readouterr().err
  assert "R3GAN needs an accelerator" in err
  assert "relativistic loss, R1 gamma 0.05, R2 gamma 0.05, Adam betas (0, 0.9)" in err
  path = os.path.join(ROOT, "experiments", "configs", "mnist.py")
  full = config_of_command_line(parsed_config_flag(f"--config={path}:r3gan,full"))
  assert (full.steps, full.width, full.stage_blocks, full.schedule_kimg) == (
      200_000, 0.25, 2, 2000.0)
  # Stacked Fashion-MNIST: each model's own unconditional recipe on the stacked images,
  # shorter on a CPU (equal time).
  for model, steps in (("r3gan", 520), ("dcgan", None), ("stylegan2", None)):
    stacked = config_of_command_line(parsed_config_flag(
        f"--config.model={model}", config="stacked.py"))
    mnist = config_of_command_line(parsed_config_flag(f"--config.model={model}",
                                                      "--config.conditional=False"))
    assert (stacked.model, stacked.dataset, stacked.conditional, stacked.loss) == (
        model, "stacked:fashion_mnist", False, mnist.loss)
    assert stacked.steps == (steps or stacked.steps) and stacked.steps < mnist.steps + 1

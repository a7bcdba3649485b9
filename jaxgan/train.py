"""``train_and_evaluate(config, workdir)``: the training loop.

The loop owns everything around the pure step: data, devices, checkpoints, logging.

* **Exact resume.** The run's randomness is a function of ``(seed, step)`` (the step
  folds the generator's step counter into the root key; batch ``s`` is a pure function of
  ``(seed, s)``), and a checkpoint holds both networks' whole states and the root key. So a
  run stopped at any checkpoint and started again on the same workdir ends bit for bit
  where an uninterrupted run ends.
* **Preemption.** SIGTERM or SIGINT (Ctrl-C) makes the loop finish the current step, save
  it, wait for the save and return; a second SIGINT interrupts at once. A process killed
  outright restarts from its newest complete checkpoint.
* **NaN/Inf guard.** Metrics stay on the device until they are fetched, every
  ``log_every`` steps, before every save, and at the end; a non-finite value stops the
  run with ``NonFiniteError`` naming the step and metric, and a state is checked finite
  before it is saved, so the newest checkpoint is always a good one.
* **Logging** (process 0): a progress bar with steps/s and the losses, ``metrics.jsonl``
  (means over each interval), TensorBoard events in ``workdir/tensorboard``, and sample
  grids from a fixed set of latent vectors in ``workdir/samples/step_XXXXXXX.png``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxgan import __version__, cpu, evaluate, models, parallel, rng
from jaxgan import augment as augment_lib
from jaxgan import checkpoint as ckpt_lib
from jaxgan import data as data_lib
from jaxgan import losses as losses_lib
from jaxgan import metrics as metrics_lib
from jaxgan import step as step_lib
from jaxgan.errors import ConfigError, Error
from jaxgan.state import NetState, abstract_states, create_states
from jaxgan.step import generate, make_train_step
from jaxgan.task import Task

MODELS = ("mlp", "dcgan", "resnet", "stylegan2")
LR_SCHEDULES = ("constant", "linear")
CPU_STEPS = 1200
PARALLEL = ("pmap", "shard_map")
COMPUTE_DTYPES = ("float32", "bfloat16")
# Settings a checkpoint's run cannot change: they change the state's shapes, the data or
# the random streams. Resuming under other values is refused with an error.
MUST_MATCH = ("model", "width", "latent_dim", "spectral_norm", "dataset", "seed", "conditional",
              "conditioning", "attention", "shared_embedding", "g_channels", "d_channels",
              "w_dim", "mapping_layers", "channel_base", "channel_max", "mbstd_group_size",
              "d_architecture", "data_fraction")
# The random streams a checkpoint records (jaxgan.data.ORDER, jaxgan.rng.SCHEME): a run
# resumes only with the streams it started with. For each, the value of the checkpoints
# written before it was recorded, and what differs when it does not match.
STREAMS = {"data_order": ("permutation", "batches came in another order"),
           "noise": ("fold_in", "noise (latents, dropout masks) was drawn another way")}
# Settings that may change on resume (a notice lists them): the run goes on, but it is no
# longer the run an uninterrupted job would have made.
MAY_CHANGE = ("loss", "n_critic", "gp_weight", "r1_weight", "clip", "ema_decay", "lr_g", "lr_d",
              "b1", "b2", "batch_size", "compute_dtype", "fake_labels", "ac_weight", "lr_schedule",
              "weight_init", "augment", "ada_target", "ada_kimg", "r1_every", "style_mixing",
              "pl_weight", "pl_every", "lazy_g_every", "eval_metrics")


def default_config() -> ml_collections.ConfigDict:
  """Every field ``train_and_evaluate`` reads, with defaults. See the comments for units."""
  c = ml_collections.ConfigDict()
  c.family = "noise"  # noise (-to-image); experiments/pix2pix.py and cyclegan.py set theirs
  c.dataset = "mnist"  # a TFDS name, or idx:/dir for MNIST-format files
  c.data_dir = ml_collections.config_dict.placeholder(str)  # TFDS data_dir (None: default)
  c.model = "dcgan"  # mlp | dcgan | resnet | stylegan2
  c.width = 1.0  # channel multiplier (DCGAN: of the TF tutorial's; ResNet: G 256, D 128)
  c.latent_dim = 100
  c.spectral_norm = False  # in the discriminator (the ResNet D has it whatever this says)
  # Class-conditional training on the dataset's labels (resnet, dcgan): G(z, y), D(x, y).
  c.conditional = False
  c.conditioning = "projection"  # ResNet D: projection | ac (an auxiliary classifier)
  c.fake_labels = "uniform"  # the fakes' classes: uniform (drawn) | real (the batch's)
  c.ac_weight = 1.0  # ACGAN class-loss weight (conditioning=ac)
  c.attention = 0  # ResNet: a self-attention block at this resolution in G and D (0: none)
  c.shared_embedding = 0  # ResNet G: BigGAN's shared class embedding of this size (0: none)
  c.weight_init = "glorot"  # ResNet: glorot (SNGAN) | orthogonal (BigGAN)
  c.g_channels = 0  # ResNet G's channels (0: 256 * width)
  c.d_channels = 0  # ResNet D's channels (0: 128 * width)
  # StyleGAN2 (model=stylegan2): channels min(channel_base // res, channel_max); 0: the
  # small CPU preset's 1024 * width and 128 * width (the reference's cifar: 32768, 512).
  c.channel_base = 0
  c.channel_max = 0
  c.w_dim = 64  # StyleGAN2's w (the reference: 512); z is latent_dim
  c.mapping_layers = 2  # StyleGAN2 mapping network depth (paper 8, the reference's cifar 2)
  c.mbstd_group_size = 4  # StyleGAN2 D's minibatch-stddev group (cifar: 32)
  c.d_architecture = "resnet"  # StyleGAN2 D: resnet | orig (cifar: orig)
  c.style_mixing = 0.0  # StyleGAN2: style-mixing probability (paper 0.9; cifar 0)
  c.pl_weight = 0.0  # StyleGAN2: path-length penalty weight (paper 2; cifar 0)
  c.pl_every = 4  # ... as its own G update every so many steps
  c.lazy_g_every = 0  # G's Adam corrected as if regularised every k steps (0: pl_every
  #                     when pl_weight > 0, else none; the reference's cifar config: 4)
  # Augmentation of everything D sees (any model): none | diffaugment[:ops] | ada | ada:p
  c.augment = "none"
  c.ada_target = 0.6  # ADA: the target of E[sign(D(real))]
  c.ada_kimg = 500.0  # ADA: thousands of images for p to move by 1 (100 reacts faster)
  c.data_fraction = 1.0  # train on the first fraction of the training split (0.1: 10%)
  c.loss = "non_saturating"  # see jaxgan.losses.names()
  c.n_critic = 1  # discriminator updates per generator update
  c.gp_weight = 0.0  # WGAN-GP weight (0: off)
  c.r1_weight = 0.0  # R1 gamma (0: off)
  c.r1_every = 1  # R1 every step (1), or lazily every k steps as its own D update (SG2: 16)
  c.clip = 0.0  # WGAN weight clipping bound (0: off)
  c.ema_decay = 0.999  # generator EMA (0: off)
  c.compute_dtype = "float32"  # float32 | bfloat16 (mixed precision: params stay float32)
  c.upsample = "auto"  # DCGAN generator: auto | transpose | subpixel (the same function)
  c.cpu_conv_kernels = "xla"  # on a CPU: xla | jaxlib (jaxgan.cpu; the same function)
  c.lr_g = 2e-4
  c.lr_d = 2e-4
  c.b1 = 0.5
  c.b2 = 0.999
  c.lr_schedule = "constant"  # constant | linear (decayed to 0 at the last step)
  c.batch_size = 256  # global, over all devices
  c.steps = -1  # generator updates in all (resuming continues up to this); -1: auto, below
  c.full_steps = 20_000  # auto on an accelerator: the full-length run
  c.cpu_steps = CPU_STEPS  # auto on a CPU-only machine: a run of minutes ...
  c.cpu_width = 0.5  # ... with a DCGAN (or StyleGAN2) of half the channels (4x fewer FLOPs)
  c.cpu_resnet_width = 0.125  # ... or a ResNet of G 32, D 16 channels
  # ... and these settings, "field=value,field=value" (e.g. "conditional=True"): the CPU
  # run's recipe where it differs from the full run's. Empty: the config's own.
  c.cpu_recipe = ""
  c.seed = 0
  c.parallel = "pmap"  # pmap | shard_map
  c.num_devices = 0  # 0: every device; n: the first n (one process only)
  c.log_every = 100
  c.checkpoint_every = 1000
  c.keep_checkpoints = 3
  c.sample_every = 1000
  c.grid_size = 8  # sample grids of grid_size x grid_size images
  c.eval_every = 2000  # FD / coverage / KL every so many steps and at the end (0: off)
  c.eval_samples = -1  # generated images per evaluation; -1: 10,000 (2,000 on a CPU)
  # What each evaluation measures, comma-separated: "classifier" (the library's classifier:
  # FD, class coverage, KL; cheap) and Inception's "fid", "kid", "pr" (precision/recall),
  # "dc" (density/coverage); see jaxgan.metrics (needs its weights; on a CPU an Inception
  # evaluation of 2,000 samples takes minutes).
  c.eval_metrics = "classifier"
  c.cas_steps = 500  # conditional runs, final evaluation: CAS classifier steps (0: no CAS)
  c.progress = True  # progress bar
  return c


def complete_config(config: ml_collections.ConfigDict | dict) -> ml_collections.ConfigDict:
  """``default_config()`` updated with ``config``; checks names and values.

  Raises:
    ValueError: an unknown field (with the closest names), or a value out of range.
  """
  out = default_config()
  given = config.to_dict() if isinstance(config, ml_collections.ConfigDict) else dict(config)
  unknown = [k for k in given if k not in out]
  if unknown:
    import difflib

    close = {k: difflib.get_close_matches(k, list(out), 2) for k in unknown}
    hints = [f"{k} (did you mean {', '.join(close[k])}?)" if close[k] else k for k in unknown]
    raise ConfigError(f"Unknown config field(s): {', '.join(hints)}. Known fields: "
                      f"{', '.join(sorted(out))}.")
  with out.ignore_type():
    out.update(given)
  checks = [
      (out.family == "noise", f"family={out.family!r} is not noise-to-image: run it with "
       "jaxgan.train.train_and_evaluate (or experiments/pix2pix.py, experiments/cyclegan.py)"),
      (out.model in MODELS, f"model must be one of {MODELS}, got {out.model!r}"),
      (not out.conditional or out.model in ("resnet", "dcgan", "stylegan2"),
       "conditional=True needs model=resnet, dcgan or stylegan2 (a conditional G, a "
       "projection D)"),
      (not out.conditional or out.model == "resnet" or out.conditioning == "projection",
       "conditioning=ac needs model=resnet"),
      (out.conditioning in models.resnet.CONDITIONINGS, f"conditioning must be one of "
       f"{models.resnet.CONDITIONINGS}, got {out.conditioning!r}"),
      (out.fake_labels in step_lib.FAKE_LABELS, f"fake_labels must be one of "
       f"{step_lib.FAKE_LABELS}, got {out.fake_labels!r}"),
      (out.weight_init in models.resnet.INITS, f"weight_init must be one of "
       f"{models.resnet.INITS}, got {out.weight_init!r}"),
      (out.lr_schedule in LR_SCHEDULES, f"lr_schedule must be one of {LR_SCHEDULES}, got "
       f"{out.lr_schedule!r}"),
      (out.ac_weight >= 0, f"ac_weight must be >= 0, got {out.ac_weight}"),
      (min(out.attention, out.shared_embedding, out.cas_steps, out.g_channels,
           out.d_channels) >= 0,
       "attention, shared_embedding, cas_steps, g_channels and d_channels must be >= 0 "
       "(0: off, or from width)"),
      (out.parallel in PARALLEL, f"parallel must be one of {PARALLEL}, got {out.parallel!r}"),
      (out.compute_dtype in COMPUTE_DTYPES, f"compute_dtype must be one of {COMPUTE_DTYPES}, "
       f"got {out.compute_dtype!r}"),
      (out.upsample in models.UPSAMPLE_METHODS, f"upsample must be one of "
       f"{models.UPSAMPLE_METHODS}, got {out.upsample!r}"),
      (out.cpu_conv_kernels in cpu.CONV_KERNELS, f"cpu_conv_kernels must be one of "
       f"{cpu.CONV_KERNELS}, got {out.cpu_conv_kernels!r}"),
      (out.steps >= -1, f"steps must be >= 0, or -1 for auto; got {out.steps}"),
      (out.full_steps >= 0 and out.cpu_steps >= 0, "full_steps and cpu_steps must be >= 0"),
      (out.eval_every >= 0, f"eval_every must be >= 0 (0: off), got {out.eval_every}"),
      (out.eval_samples == -1 or out.eval_samples >= 2,
       f"eval_samples must be >= 2, or -1 for auto; got {out.eval_samples}"),
      (_eval_metrics_error(out.eval_metrics) is None,
       _eval_metrics_error(out.eval_metrics)),
      (out.batch_size >= 1, f"batch_size must be >= 1, got {out.batch_size}"),
      (out.latent_dim >= 1, f"latent_dim must be >= 1, got {out.latent_dim}"),
      (out.width > 0 and out.cpu_width > 0 and out.cpu_resnet_width > 0,
       f"width, cpu_width and cpu_resnet_width must be > 0, got {out.width}, {out.cpu_width}, "
       f"{out.cpu_resnet_width}"),
      (out.lr_g > 0 and out.lr_d > 0, f"learning rates must be > 0, got lr_g={out.lr_g}, "
       f"lr_d={out.lr_d}"),
      (0 <= out.b1 < 1 and 0 <= out.b2 < 1, f"b1 and b2 must be in [0, 1), got {out.b1}, "
       f"{out.b2}"),
      (out.num_devices >= 0, f"num_devices must be >= 0 (0: all), got {out.num_devices}"),
      (out.clip >= 0, f"clip must be >= 0 (0: off), got {out.clip}"),
      (out.grid_size >= 1, f"grid_size must be >= 1, got {out.grid_size}"),
      (0 < out.data_fraction <= 1, f"data_fraction must be in (0, 1] (1: the whole split), "
       f"got {out.data_fraction}"),
      (out.d_architecture in models.stylegan2.ARCHITECTURES, f"d_architecture must be one of "
       f"{models.stylegan2.ARCHITECTURES}, got {out.d_architecture!r}"),
      (min(out.channel_base, out.channel_max, out.lazy_g_every) >= 0 and out.w_dim >= 1
       and out.mapping_layers >= 0 and out.mbstd_group_size >= 1,
       "channel_base, channel_max and lazy_g_every must be >= 0, w_dim and mbstd_group_size "
       ">= 1, mapping_layers >= 0"),
      (out.model == "stylegan2" or not (out.style_mixing or out.pl_weight),
       "style_mixing and pl_weight need model=stylegan2"),
      (out.ada_kimg > 0 and 0 < out.ada_target < 1, f"ada_kimg must be > 0 and ada_target in "
       f"(0, 1), got {out.ada_kimg}, {out.ada_target}"),
  ]
  for every in ("log_every", "checkpoint_every", "sample_every", "keep_checkpoints"):
    checks.append((out[every] >= 1, f"{every} must be >= 1, got {out[every]}"))
  try:
    parse_cpu_recipe(out.cpu_recipe)
  except ConfigError as e:
    checks.append((False, str(e)))
  bad = [message for ok, message in checks if not ok]
  if bad:
    raise ConfigError("Invalid config: " + "; ".join(bad) + ".")
  losses_lib.get(out.loss)  # raises on an unknown loss, listing the known ones
  make_augment(out)  # raises on an unknown augmentation
  step_lib._check_options(out.n_critic, out.gp_weight, out.r1_weight, out.clip or None,
                          out.ema_decay or None, out.r1_every)
  return out


def make_augment(config):
  """The step's augmentation (``config.augment``); adaptive ADA takes ``ada_target`` and
  ``ada_kimg`` from the config."""
  aug = augment_lib.parse(config.augment)
  if isinstance(aug, augment_lib.ADA) and aug.target is not None:
    aug = dataclasses.replace(aug, target=float(config.ada_target), kimg=float(config.ada_kimg))
  return aug


def make_step(config, G, D, axis_name: str | None = parallel.AXIS):
  """The train step the config describes (its ``prepare_states`` adds the state it keeps)."""
  return make_train_step(
      G, D, config.loss, n_critic=config.n_critic, gp_weight=config.gp_weight,
      r1_weight=config.r1_weight, clip=config.clip or None, ema_decay=config.ema_decay or None,
      axis_name=axis_name, fake_labels=config.fake_labels, ac_weight=config.ac_weight,
      augment=make_augment(config), r1_every=config.r1_every,
      style_mixing=config.style_mixing, pl_weight=config.pl_weight, pl_every=config.pl_every)


def make_models(config: ml_collections.ConfigDict, image_shape: Sequence[int],
                num_classes: int = 0):
  """The ``(G, D)`` pair the config names, for images of ``image_shape`` (conditional on
  ``num_classes`` classes when it is not 0)."""
  image_shape = tuple(image_shape)
  dtype = jnp.dtype(config.compute_dtype)
  if config.model == "stylegan2":
    base = config.channel_base or max(4, round(1024 * config.width))
    cmax = config.channel_max or max(1, round(128 * config.width))
    return (models.StyleGAN2Generator(image_shape, w_dim=config.w_dim,
                                      mapping_layers=config.mapping_layers, channel_base=base,
                                      channel_max=cmax, num_classes=num_classes),
            models.StyleGAN2Discriminator(channel_base=base, channel_max=cmax,
                                          architecture=config.d_architecture,
                                          mbstd_group_size=config.mbstd_group_size,
                                          num_classes=num_classes,
                                          mapping_layers=config.mapping_layers))
  if config.model == "resnet":
    attention = (config.attention,) if config.attention else ()
    common = {"num_classes": num_classes, "attention": attention,
              "weight_init": config.weight_init, "dtype": dtype}
    return (models.ResNetGenerator(image_shape,
                                   config.g_channels or max(1, round(256 * config.width)),
                                   shared_embedding=config.shared_embedding, **common),
            models.ResNetDiscriminator(config.d_channels or max(1, round(128 * config.width)),
                                       conditioning=config.conditioning, **common))
  if config.model == "mlp":
    return (models.MLPGenerator(image_shape=image_shape, dtype=dtype),
            models.MLPDiscriminator(spectral_norm=config.spectral_norm, dtype=dtype))
  # No axis_name: inside the step the models follow the step's device axis.
  return (models.DCGANGenerator(image_shape=image_shape, width=config.width,
                                upsample=config.upsample, dtype=dtype, num_classes=num_classes),
          models.DCGANDiscriminator(width=config.width, spectral_norm=config.spectral_norm,
                                    dtype=dtype, num_classes=num_classes))


def make_optimizers(config: ml_collections.ConfigDict):
  """Adam for each network, with its own learning rate (TTUR when they differ).

  ``lr_schedule="linear"`` decays each rate linearly to 0 over the run (SNGAN, cGAN-PD,
  Mimicry): G over ``steps`` updates, D over ``steps * n_critic``. The schedule's position
  is the optimizer's own count, so a resumed run continues it exactly. A network
  regularised lazily (``r1_every``, ``pl_weight`` with ``pl_every``) gets StyleGAN2's
  correction (``jaxgan.lazy_adam``).
  """
  lr_g, lr_d = config.lr_g, config.lr_d
  if config.lr_schedule == "linear":
    steps = max(1, config.steps)
    lr_g = optax.linear_schedule(config.lr_g, 0.0, steps)
    lr_d = optax.linear_schedule(config.lr_d, 0.0, steps * config.n_critic)
  every_d = config.r1_every if config.r1_weight > 0 else 1
  every_g = config.lazy_g_every or (config.pl_every if config.pl_weight > 0 else 1)
  return (step_lib.lazy_adam(lr_g, config.b1, config.b2, every_g, eps=1e-8),
          step_lib.lazy_adam(lr_d, config.b1, config.b2, every_d, eps=1e-8))


class NonFiniteError(Error, FloatingPointError):
  """Training produced NaN or Inf; the message names the step, the metric and the checkpoint."""


@dataclasses.dataclass
class RunResult:
  """What ``train_and_evaluate`` returns.

  Attributes:
    state_g: the generator's final state (replicated over the devices used).
    state_d: the discriminator's.
    G: the generator module (``jaxgan.generate(G, state_g, key, n)`` samples it).
    D: the discriminator module.
    step: the step reached.
    metrics: means over the last logged interval.
    evaluation: the last evaluation (``fd``, ``coverage``, ``kl``, ``fd_floor``), if any.
    preempted: the run stopped on a signal before ``config.steps``.
    grid: the newest sample grid (``workdir/samples/step_XXXXXXX.png``), or None.
  """

  state_g: NetState
  state_d: NetState
  G: Any
  D: Any
  step: int
  metrics: dict[str, float]
  evaluation: dict[str, float]
  preempted: bool
  grid: str | None = None


# -- process-0 output ---------------------------------------------------------------------

def _notice(message: str) -> None:
  if jax.process_index() == 0:
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)


class _Logs:
  """metrics.jsonl, TensorBoard events and sample PNGs in the workdir (process 0 only)."""

  def __init__(self, workdir: str, start_step: int):
    self.enabled = jax.process_index() == 0
    if not self.enabled:
      return
    self.jsonl = os.path.join(workdir, "metrics.jsonl")
    self.samples = os.path.join(workdir, "samples")
    _truncate_jsonl(self.jsonl, start_step)
    from tensorboardX import SummaryWriter

    # purge_step: TensorBoard hides events a killed run wrote after the checkpoint.
    self.tb = SummaryWriter(os.path.join(workdir, "tensorboard"), purge_step=start_step)
    self.file = open(self.jsonl, "a")  # noqa: SIM115 - closed in close()

  def metrics(self, step: int, values: dict[str, float], prefix: str = "train") -> None:
    if not self.enabled:
      return
    record = {"step": step, **values} if prefix == "train" else {"step": step, prefix: values}
    self.file.write(json.dumps(record) + "\n")
    self.file.flush()
    for name, value in values.items():
      if name != "time":
        self.tb.add_scalar(f"{prefix}/{name}", value, step)

  def grid(self, step: int, images: np.ndarray, columns: int) -> str | None:
    if not self.enabled:
      return None
    picture = evaluate.image_grid(images, columns)  # exact size: TensorBoard zooms itself
    path = os.path.join(self.samples, f"step_{step:07d}.png")
    evaluate.save_image(evaluate.for_display(picture, images.shape[1:3]), path)
    self.tb.add_image("samples", picture, step, dataformats="HWC")
    return path

  def close(self) -> None:
    if self.enabled:
      self.file.close()
      self.tb.close()


def _truncate_jsonl(path: str, last_step: int) -> None:
  """Drops records after ``last_step`` (written by a run killed after its checkpoint)."""
  if not os.path.exists(path):
    return
  with open(path) as f:
    lines = f.readlines()
  keep = []
  for line in lines:
    try:
      if json.loads(line)["step"] <= last_step:
        keep.append(line)
    except (ValueError, KeyError, TypeError):
      continue  # a line cut short by a kill
  if len(keep) != len(lines):
    with open(path + ".tmp", "w") as f:
      f.writelines(keep)
    os.replace(path + ".tmp", path)


class Stopped(Exception):
  """A stop signal arrived at a point where the run keeps nothing new: the workdir holds
  what it held, and running again resumes from it."""


class StopRequest:
  """Turns SIGTERM and the first SIGINT (Ctrl-C) into a request to stop.

  The loop and the long phases around it (data loading, classifier training, the
  evaluations, sample export) ``check()`` it at safe points: a run stops within one step
  of the signal, saves what it has and returns. A second SIGINT interrupts at once.
  Install it with ``stop_on_signals`` (or ``install_stop_handlers`` for a whole process).
  """

  def __init__(self):
    self.signal: str | None = None
    self._previous: dict = {}

  def install(self) -> None:
    if threading.current_thread() is threading.main_thread():
      for sig in (signal.SIGTERM, signal.SIGINT):
        self._previous[sig] = signal.signal(sig, self.handle)

  def restore(self) -> None:
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    self._previous = {}

  def handle(self, signum, frame=None) -> None:
    if self.signal is not None and signum == signal.SIGINT:
      raise KeyboardInterrupt  # a second Ctrl-C: stop now (the last checkpoint stays good)
    if self.signal is None:
      self.signal = signal.Signals(signum).name
      _notice(f"jaxgan: {self.signal} received; stopping at the next safe point, saving what "
              "there is (Ctrl-C again to stop at once).")

  def check(self) -> None:
    """Raises ``Stopped`` once a signal has arrived."""
    if self.signal is not None:
      raise Stopped(self.signal)


_STOPS: list[StopRequest] = []  # the active requests: the process's first, if installed


def install_stop_handlers(pending: Sequence[int] = ()) -> StopRequest:
  """Handles SIGTERM and SIGINT for the rest of the process (a script's first line).

  Every later ``train_and_evaluate`` and ``export_samples`` uses this request instead
  of installing their own, so that a signal at any moment of the process, teardown
  included, ends it with status 0. ``pending``: signals received before this was called
  (by a handler the script installed before its imports), handled now.
  """
  if not _STOPS:
    _STOPS.append(StopRequest())
    _STOPS[0].install()
  for signum in pending:
    _STOPS[0].handle(signum)
  return _STOPS[0]


@contextlib.contextmanager
def stop_on_signals():
  """The active ``StopRequest``; else one installed for the duration of the block (the
  previous handlers come back after it)."""
  if _STOPS:
    yield _STOPS[-1]
    return
  stop = StopRequest()
  stop.install()
  _STOPS.append(stop)
  try:
    yield stop
  finally:
    _STOPS.remove(stop)
    stop.restore()


# -- data, evaluation, the run's length -------------------------------------------------------

# Fields a CPU recipe may not set: the run length and width have their own cpu_ fields,
# and the rest say what the run is rather than how it trains.
_NOT_IN_CPU_RECIPE = ("steps", "width", "full_steps", "cpu_steps", "cpu_width",
                      "cpu_resnet_width", "cpu_recipe", "family", "dataset", "data_dir")


def parse_cpu_recipe(text: str) -> dict:
  """``"field=value,field=value"`` as ``{field: value}``, each value of its field's type in
  ``default_config()`` (bools: True/False). Raises ``ConfigError`` naming a bad item."""
  defaults = default_config()
  recipe = {}
  for item in (t.strip() for t in str(text).split(",")):
    if not item:
      continue
    name, eq, value = (p.strip() for p in item.partition("="))
    if not eq or name not in defaults or name in _NOT_IN_CPU_RECIPE:
      why = ("is not field=value" if not eq else
             "is set by its own cpu_ field or is not a training setting"
             if name in _NOT_IN_CPU_RECIPE else "is not a config field")
      raise ConfigError(f"cpu_recipe: {item!r} {why} (write it as \"field=value,...\", e.g. "
                        "\"conditional=True,ema_decay=0.999\"; empty: the config's own recipe)")
    kind = type(defaults[name])
    try:
      if kind is bool:
        if value.lower() not in ("true", "false", "1", "0"):
          raise ValueError(value)
        recipe[name] = value.lower() in ("true", "1")
      else:
        recipe[name] = kind(value)
    except ValueError:
      raise ConfigError(f"cpu_recipe: {name}={value!r} is not of type {kind.__name__}") from None
  return recipe


def prefer_given(config: ml_collections.ConfigDict,
                 given: Sequence[str]) -> ml_collections.ConfigDict:
  """``config`` with the fields in ``given`` (set on the command line) kept in a CPU run:
  dropped from ``cpu_recipe``, and a given ``width`` used as the CPU width too."""
  config = ml_collections.ConfigDict(config.to_dict() if isinstance(
      config, ml_collections.ConfigDict) else dict(config))
  if "cpu_recipe" in config:
    recipe = parse_cpu_recipe(config.cpu_recipe)
    config.cpu_recipe = ",".join(f"{k}={v}" for k, v in recipe.items() if k not in given)
  if "width" in given:
    config.cpu_width = config.cpu_resnet_width = config.width
  return config


def is_auto_cpu_run(config) -> bool:
  """Whether ``resolve_auto`` makes ``config`` the CPU run (``steps=-1`` on a CPU-only
  machine): ``cpu_steps`` long, at ``cpu_width``, with ``cpu_recipe``'s settings."""
  return config.steps == -1 and jax.default_backend() == "cpu"


def resolve_auto(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Fills ``steps=-1`` and ``eval_samples=-1`` for this machine, saying which it chose.

  On a CPU-only machine the run is ``cpu_steps`` long with DCGAN ``width=cpu_width`` and the
  settings of ``cpu_recipe``, a run of minutes that still leaves recognisable samples; on a
  GPU or TPU it is the full-length ``full_steps`` with the config's width and recipe.
  """
  config = ml_collections.ConfigDict(config.to_dict())
  on_cpu = jax.default_backend() == "cpu"
  if config.eval_samples == -1:
    config.eval_samples = 2000 if on_cpu else 10_000
  if config.steps == -1:
    auto_cpu = is_auto_cpu_run(config)
    config.steps = config.cpu_steps if auto_cpu else config.full_steps
    if auto_cpu:
      recipe = parse_cpu_recipe(config.cpu_recipe)
      with config.ignore_type():
        config.update(recipe)
      try:
        config = complete_config(config)  # the recipe's values, checked
      except ConfigError as e:
        raise ConfigError(f"{str(e).rstrip('.')} (in the CPU run's cpu_recipe="
                          f"{config.cpu_recipe!r}: set --config.cpu_recipe, or --config.steps "
                          "for the config's own recipe)") from None
      config.width = {"dcgan": config.cpu_width, "stylegan2": config.cpu_width,
                      "resnet": config.cpu_resnet_width}.get(config.model, config.width)
      settings = "".join(f", {k}={v}" for k, v in recipe.items())
      _notice(f"jaxgan: no accelerator found, so this is the short CPU run: {config.steps:,} "
              f"steps, width {config.width}{settings} (on a GPU or TPU the default is the full "
              f"run, {config.full_steps:,} steps). Set --config.steps to choose.")
    else:
      _notice(f"jaxgan: {jax.device_count()} x {jax.devices()[0].device_kind}: the full run, "
              f"{config.steps:,} steps. Set --config.steps to choose.")
  return config


def load_train_data(config) -> tuple[str, data_lib.ArraySource]:
  """``(dataset name, train split)``. ``mnist`` that cannot be had (no internet, not
  prepared) is replaced by the offline Fashion-MNIST, with a one-line notice."""
  try:
    return config.dataset, data_lib.load(config.dataset, "train", data_dir=config.data_dir,
                                         log=_notice)
  except data_lib.DataError as e:
    if config.dataset != "mnist" or not os.path.exists(
        os.path.join(data_lib.DEBIAN_FASHION_MNIST, "train-images-idx3-ubyte.gz")):
      raise
    tried = [line.strip(" -") for line in str(e).splitlines() if line.startswith("  - ")]
    reason = tried[-1] if tried else str(e).splitlines()[0]
    _notice(f"jaxgan: MNIST is not available here ({reason}); training on the offline "
            f"Fashion-MNIST in {data_lib.DEBIAN_FASHION_MNIST} instead (same shape, 10 classes). "
            "Set --config.dataset to choose.")
    return "fashion_mnist", data_lib.load_idx(data_lib.DEBIAN_FASHION_MNIST, "train")


EVAL_METRICS = ("classifier", *metrics_lib.METRICS)


def _eval_metrics_error(text) -> str | None:
  try:
    metrics_lib.parse_metrics(str(text), EVAL_METRICS)
  except ValueError as e:
    return f"eval_metrics: {e}"
  return None


def _inception_metrics(config) -> tuple[str, ...]:
  return tuple(m for m in metrics_lib.parse_metrics(config.eval_metrics, EVAL_METRICS)
               if m != "classifier")


def _make_inception_evaluator(config, train_source, check: Callable[[], None] | None = None):
  which = _inception_metrics(config)
  if not which:
    return None
  test = train_source.split("test")
  _notice(f"jaxgan: eval_metrics={config.eval_metrics}: each evaluation also passes "
          f"{config.eval_samples:,} samples through Inception (the test split's and the "
          "floor's features are computed once and cached).")
  return metrics_lib.InceptionEvaluator(train_source, test, which=which,
                                        num_samples=config.eval_samples, log=_notice,
                                        check=check)


def _make_evaluator(config, train_source, check: Callable[[], None] | None = None):
  if "classifier" not in metrics_lib.parse_metrics(config.eval_metrics, EVAL_METRICS):
    return None
  if train_source.labels is None:
    _notice(f"jaxgan: {train_source.description} has no labels, so there is no evaluation "
            "classifier; eval_every is ignored.")
    return None
  return evaluate.Evaluator(train_source, train_source.split("test"),
                            num_samples=config.eval_samples, log=_notice, check=check,
                            progress=config.progress)


def balanced_labels(num: int, num_classes: int) -> np.ndarray | None:
  """Image ``i``'s class ``i % num_classes`` (None for an unconditional generator): what a
  conditional run's evaluations and exports draw."""
  return (np.arange(num) % num_classes).astype(np.int32) if num_classes else None


def _sample(G, state_g, key, num: int, check: Callable[[], None] | None = None,
            chunk: int = 1000) -> np.ndarray:
  """``num`` images from the EMA generator, drawn in chunks (equal to one draw of ``num``);
  a conditional generator's image ``i`` is of class ``i % num_classes``. ``check`` is
  called before each chunk (it raises to stop)."""
  labels = balanced_labels(num, state_g.num_classes)
  out = []
  for i in range(0, num, chunk):
    if check is not None:
      check()
    n = min(chunk, num - i)
    out.append(np.asarray(generate(G, state_g, key, n, offset=i,
                                   labels=None if labels is None else labels[i:i + n])))
  return np.concatenate(out)


def summary(step: int, evaluation: dict, evaluator, data: str) -> str:
  """The lines printed when a run ends."""
  lines = (f"jaxgan: evaluation at step {step} on {data}, {evaluator.num_samples:,} samples:\n"
           f"  Frechet distance {evaluation['fd']:.2f} (real train vs test images: "
           f"{evaluation['fd_floor']:.2f}, the floor)\n"
           f"  class coverage {evaluation['coverage']}/{evaluator.num_classes} (classes with "
           f">= 2% of samples), KL to uniform {evaluation['kl']:.3f} nats")
  if "label_accuracy" in evaluation:
    lines += (f"\n  label accuracy {100 * evaluation['label_accuracy']:.1f}% (the classifier's "
              f"class for G(z, y) is y; on real test images it is right "
              f"{100 * evaluation['classifier_accuracy']:.1f}%)\n"
              f"  intra-class FD {evaluation['intra_fd']:.2f} (mean over classes of each "
              f"class's FD; real train vs test: {evaluation['intra_fd_floor']:.2f})")
  if "cas" in evaluation:
    lines += (f"\n  classification accuracy score {100 * evaluation['cas']:.1f}% (a classifier "
              f"trained on the {evaluator.num_samples:,} generated images, tested on real test "
              f"images; trained on as many real images: {100 * evaluation['cas_real']:.1f}%)")
  return lines


# -- the loop -------------------------------------------------------------------------------

def _devices(config) -> list:
  if config.num_devices == 0:
    return jax.devices()
  if jax.process_count() > 1:
    raise ConfigError("num_devices picks devices of a single process; on a multi-host run "
                      "leave it at 0 (every device).")
  if config.num_devices > jax.device_count():
    raise ConfigError(f"num_devices={config.num_devices}, but there are only "
                      f"{jax.device_count()} devices.")
  return jax.devices()[:config.num_devices]


def _check_resumable(meta: dict, config, facts: dict, directory: str,
                     must_match: Sequence[str] = MUST_MATCH,
                     may_change: Sequence[str] = MAY_CHANGE,
                     defaults: dict | None = None) -> None:
  """Raises when the checkpoint's run differs in a ``must_match`` field or in ``facts``
  (the image shape and the data actually loaded, which ``dataset="mnist"`` may replace
  offline); lists the ``may_change`` fields that differ."""
  # Fields added since the checkpoint was written take their defaults (what it ran with).
  defaults = default_config().to_dict() if defaults is None else defaults
  saved = {**defaults, **meta.get("config", {}), **{k: meta.get(k) for k in facts}}
  if saved.get("num_classes") is None:
    saved["num_classes"] = 0
  if saved.get("step_state") is None:  # written before the step kept state of its own
    saved["step_state"] = {"g": [], "d": []}
  current = {**config.to_dict(), **facts}
  for field, (old, what) in STREAMS.items():
    saved[field] = saved.get(field) or old
    if saved[field] != facts[field]:
      raise ckpt_lib.CheckpointMismatchError(
          f"{directory} holds a checkpoint (step {meta.get('step')}) of a run whose {what} "
          f"({saved[field]!r}; this jaxgan uses {facts[field]!r}), so resuming it here would "
          "not continue that run. Use another --workdir to start a new run, or finish this "
          f"one with the jaxgan that started it (jaxgan {meta.get('jaxgan', '0.1.0')}).")
  differ = [k for k in (*must_match, *facts) if saved.get(k) != current[k]]
  if differ:
    lines = [f"{k}: checkpoint {saved.get(k)!r}, config {current[k]!r}" for k in differ]
    raise ckpt_lib.CheckpointMismatchError(
        f"{directory} holds a checkpoint (step {meta.get('step')}) of a run this config cannot "
        "continue:\n  " + "\n  ".join(lines) + "\nUse another --workdir to start a new run, or "
        "set these back to the checkpoint's values to resume it.")
  changed = [f"{k} {saved[k]!r} -> {config[k]!r}" for k in may_change
             if k in saved and saved[k] != config[k]]
  if changed:
    _notice(f"jaxgan: resuming step {meta.get('step')} with changed settings (the run goes on "
            f"with the new values): {', '.join(changed)}.")


def newest_grid(workdir: str) -> str | None:
  """The newest ``samples/step_XXXXXXX.png`` of a run's directory, or None."""
  samples = os.path.join(workdir, "samples")
  if not os.path.isdir(samples):
    return None
  names = sorted(n for n in os.listdir(samples) if n.startswith("step_") and n.endswith(".png"))
  return os.path.join(samples, names[-1]) if names else None


@jax.jit
def _nonfinite_leaves(tree) -> Any:
  return jax.tree.map(lambda x: ~jnp.all(jnp.isfinite(x)), tree)


def _first_nonfinite_leaf(tree) -> str | None:
  flags = jax.device_get(_nonfinite_leaves(tree))
  bad = [jax.tree_util.keystr(path, simple=True, separator="/")
         for path, flag in jax.tree_util.tree_flatten_with_path(flags)[0] if flag]
  return bad[0] if bad else None


def _mean_metrics(pending: list[tuple[int, dict]], last_good: Callable[[], str]) -> dict:
  """Fetches the metrics of the steps in ``pending``; raises on the first non-finite one."""
  fetched = jax.device_get([m for _, m in pending])
  for (step, _), metrics in zip(pending, fetched, strict=True):
    if metrics.get("labels_out_of_range", 0) > 0:
      raise ConfigError(
          f"At step {step}, {100 * float(metrics['labels_out_of_range']):.1f}% of the batch's "
          "labels were outside the classes the models were built for (the training split's "
          f"labels at the start of the run). Check the data's labels. {last_good()}")
    for name, value in metrics.items():
      if not np.isfinite(value):
        raise NonFiniteError(
            f"Training diverged: {name} = {float(value)} at step {step}, the first non-finite "
            f"value. {last_good()} Lower the learning rates, or add a stabiliser "
            "(r1_weight, gp_weight, spectral_norm, clip), then run again to resume from it.")
  return {name: float(np.mean([m[name] for m in fetched])) for name in fetched[0]}


def _checkpoint_target(abstract_states, mesh):
  """The checkpoint's tree as shapes, replicated over ``mesh`` (``checkpoint.run_target``)."""
  return ckpt_lib.run_target(abstract_states, mesh)


def _noise_abstract_states(config, G, D, tx_g, tx_d, image_shape, num_classes=0):
  return jax.eval_shape(
      make_step(config, G, D).prepare_states,
      *abstract_states(G, D, tx_g, tx_d, latent_dim=config.latent_dim,
                       image_shape=image_shape, num_classes=num_classes))


def _restore_or_init(task: Task, checkpoints, mesh):
  """The newest complete checkpoint, restored onto ``mesh``; else fresh states."""
  config = task.config
  restored = checkpoints.restore_latest(
      _checkpoint_target(task.abstract_states(), mesh),
      lambda meta: _check_resumable(meta, config, task.facts, checkpoints.directory,
                                    task.must_match, task.may_change, task.defaults))
  if restored is None:
    root_key = jax.random.key(config.seed)
    state_g, state_d = task.init_states(jax.random.fold_in(root_key, 0))
    return 0, *parallel.replicate((state_g, state_d), mesh), root_key, {}
  step, arrays, meta = restored
  _notice(f"jaxgan: resumed from step {step} in {checkpoints.directory}.")
  if step >= config.steps:
    _notice(f"jaxgan: the run is already at step {step} (config.steps={config.steps}); "
            "nothing to train. Raise --config.steps to train further.")
  # The key goes via the host: then it is committed to no mesh, as a fresh run's is.
  return (step, arrays["g"], arrays["d"], jax.random.wrap_key_data(np.asarray(arrays["rng"])),
          meta)


def noise_task(config, stop: StopRequest) -> Task:
  """The noise-to-image family (MLP, DCGAN, ResNet, StyleGAN2; conditional or not): its
  data, models, states, step, sample grids and measures, for the loop."""
  _, full_source = load_train_data(config)
  stop.check()
  source = full_source.fraction(config.data_fraction)
  if config.data_fraction < 1:
    _notice(f"jaxgan: data_fraction={config.data_fraction:g}: training on "
            f"{source.description}; evaluated against the whole split's statistics.")
  image_shape = source.image_shape
  if config.conditional and source.labels is None:
    raise ConfigError(f"conditional=True trains on the dataset's labels, but "
                      f"{source.description} has none. Use a labelled dataset, or set "
                      "--config.conditional=False.")
  num_classes = source.num_classes if config.conditional else 0
  facts = {"image_shape": list(image_shape), "data": source.description,
           "data_order": data_lib.ORDER, "noise": rng.SCHEME, "num_classes": num_classes}
  G, D = make_models(config, image_shape, num_classes)
  # What the step keeps in the states (ADA's p, lazy R1, the path-length mean): a run
  # resumes only into states of the same shape.
  train_step = make_step(config, G, D)
  keeps = train_step.config.step_state_init()
  facts["step_state"] = {"g": sorted(keeps[0]), "d": sorted(keeps[1])}
  tx_g, tx_d = make_optimizers(config)
  evaluator = _make_evaluator(config, full_source, stop.check) if config.eval_every else None
  inception = (_make_inception_evaluator(config, full_source, stop.check)
               if config.eval_every else None)

  def init_states(key):
    state_g, state_d = create_states(key, G, D, tx_g, tx_d, latent_dim=config.latent_dim,
                                     image_shape=image_shape, num_classes=num_classes)
    return train_step.prepare_states(state_g, state_d)

  def grid(state_g, key):
    # A conditional run's grid: one class per row, grid_size images of each.
    rows = num_classes or config.grid_size
    labels = (np.repeat(np.arange(num_classes), config.grid_size).astype(np.int32)
              if num_classes else None)
    return (np.asarray(generate(G, state_g, key, rows * config.grid_size, labels=labels)),
            config.grid_size)

  def evaluate_run(state_g, key, check, final):
    images = _sample(G, state_g, key, config.eval_samples, check)
    labels = balanced_labels(len(images), num_classes)
    result = {}
    if evaluator is not None:
      # An unconditional run's evaluation holds what it always held.
      floors = evaluator.floors if labels is not None else {"fd_floor": evaluator.floor}
      result.update({**evaluator(images, labels), **floors})
      if final and labels is not None and config.cas_steps:
        result.update(evaluator.cas(images, labels, config.cas_steps))
    if inception is not None:
      result.update({**inception(images), **inception.floors})
    return result

  def summarize(step, evaluation):
    lines = []
    if evaluator is not None:
      lines.append(summary(step, evaluation, evaluator, source.description))
    else:
      lines.append(f"jaxgan: evaluation at step {step} on {source.description}, "
                   f"{config.eval_samples:,} samples:")
    if inception is not None:
      lines += ["  " + line for line in inception.summary(evaluation, config.eval_samples)]
    return "\n".join(lines)

  # Lazy regularisation on a CPU: one compiled step per (R1, path length) pattern, chosen
  # from the step number, instead of lax.cond inside the step: XLA:CPU runs R1's second
  # derivatives ~20x slower inside a conditional (BUILD_NOTES.md, issue 17).
  static_lazy = jax.default_backend() == "cpu" and (
      train_step.config.lazy_r1 or (config.pl_weight > 0 and config.pl_every > 1))

  def postfix(metrics):
    out = {"d_loss": f"{metrics['d_loss']:.3f}", "g_loss": f"{metrics['g_loss']:.3f}"}
    if "ada_p" in metrics:
      out["p"] = f"{metrics['ada_p']:.3f}"
    return out

  return Task(
      config=config, facts=facts, G=G, D=D,
      make_step=lambda axis_name: make_step(config, G, D, axis_name),
      init_states=init_states,
      abstract_states=lambda: _noise_abstract_states(config, G, D, tx_g, tx_d, image_shape,
                                                     num_classes),
      batches=lambda start: data_lib.batches(source, config.batch_size, config.seed, start),
      grid=grid,
      evaluate=evaluate_run if evaluator is not None or inception is not None else None,
      summary=summarize,
      must_match=MUST_MATCH, may_change=MAY_CHANGE, defaults=default_config().to_dict(),
      lazy_at=train_step.lazy_at if static_lazy else None, postfix=postfix)


def train_and_evaluate(config: ml_collections.ConfigDict | dict, workdir: str) -> RunResult:
  """Trains a GAN as ``config`` says, resuming from ``workdir`` when it holds a checkpoint.

  SIGTERM or a first Ctrl-C at any moment stops it within one step: it saves what there
  is (an evaluation the signal interrupted is marked in the checkpoint and made on
  resume) and returns with ``preempted`` set; running again resumes bit for bit.

  Args:
    config: fields of ``default_config()`` (missing ones take their defaults).
    workdir: where checkpoints (``checkpoints/``), ``metrics.jsonl``, TensorBoard events
      (``tensorboard/``) and sample grids (``samples/``) go.

  Returns:
    A ``RunResult``. ``preempted`` is True when a signal stopped the run early (it saved
    first; running again resumes). A signal before training started (while the data
    loaded or the classifier trained) returns no states.

  Raises:
    ValueError: a bad config, or a batch that does not divide over the devices.
    jaxgan.checkpoint.CheckpointMismatchError: ``workdir`` holds a run this config
      cannot continue (the message names the differences).
    jaxgan.checkpoint.CheckpointError: ``workdir`` holds checkpoints, none readable.
    NonFiniteError: a metric or the state became NaN/Inf.
    jaxgan.data.DataError: the dataset cannot be loaded.
  """
  with stop_on_signals() as stop:
    try:
      return _train_and_evaluate(config, workdir, stop)
    except Stopped:
      _notice(f"jaxgan: stopped ({stop.signal}) before training; nothing in "
              f"{os.path.abspath(workdir)} changed. Run the same command again to resume.")
      return RunResult(None, None, None, None, -1, {}, {}, True)


def make_task(config, stop: StopRequest) -> Task:
  """The family's ``Task`` for a completed config (``config.family``)."""
  if config.get("family", "noise") == "noise":
    return noise_task(config, stop)
  from jaxgan import translation_tasks  # the translation families' data and measures

  return translation_tasks.make_task(config, stop, _notice)


def complete_any(config) -> ml_collections.ConfigDict:
  """``complete_config`` of the config's family (noise-to-image, pix2pix or CycleGAN)."""
  given = config.to_dict() if isinstance(config, ml_collections.ConfigDict) else dict(config)
  family = given.get("family", "noise")
  if family == "noise":
    return resolve_auto(complete_config(given))
  from jaxgan import translation_tasks

  return translation_tasks.complete_config(given, _notice)


def _train_and_evaluate(config, workdir: str, stop: StopRequest) -> RunResult:
  config = complete_any(config)
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  devices = _devices(config)
  if config.batch_size % len(devices):
    raise ConfigError(f"batch_size={config.batch_size} does not divide over {len(devices)} "
                      "devices; make it a multiple of the device count.")
  task = make_task(config, stop)
  stop.check()
  facts = task.facts
  pmap_devices = devices if config.num_devices else None  # None: pmap's own choice, all
  mesh = (parallel.pmap_mesh(pmap_devices) if config.parallel == "pmap"
          else parallel.data_mesh(devices))
  checkpoints = ckpt_lib.Checkpoints(os.path.join(workdir, "checkpoints"),
                                     keep=config.keep_checkpoints, log=_notice)

  try:
    start_step, state_g, state_d, root_key, meta = _restore_or_init(task, checkpoints, mesh)
    stop.check()
  except BaseException:
    checkpoints.close()
    raise
  step_key = parallel.replicate(jax.random.fold_in(root_key, 1), mesh)
  grid_key = jax.random.fold_in(root_key, 2)
  eval_key = jax.random.fold_in(root_key, 3)  # the same images' latents at every evaluation
  last_saved = [checkpoints.latest_step()]

  def last_good() -> str:
    checkpoints.wait()
    if last_saved[0] is None:
      return "No checkpoint was saved before it."
    return (f"The newest checkpoint, step {last_saved[0]} in {checkpoints.directory}, was "
            "saved before it and is finite.")

  train_step = task.make_step(parallel.AXIS)
  options = cpu.compiler_options(config.get("cpu_conv_kernels", "xla"))
  step_fns: dict = {}

  def step_fn_at(step: int):
    # A step with lazy regularisation on a CPU: one compiled step per static pattern.
    lazy = task.lazy_at(step) if task.lazy_at is not None else None
    if lazy not in step_fns:
      fn = train_step if lazy is None else functools.partial(train_step, lazy=lazy)
      if lazy is not None:
        fn.config = train_step.config
      if config.parallel == "pmap":
        step_fns[lazy] = parallel.pmap_step(fn, devices=pmap_devices, compiler_options=options)
      else:
        step_fns[lazy] = parallel.shard_map_step(fn, mesh, compiler_options=options)
    return step_fns[lazy]

  if config.parallel == "pmap":
    place = functools.partial(parallel.split_batch, devices=pmap_devices)
  else:
    place = functools.partial(parallel.shard_batch, mesh=mesh)

  logs = _Logs(workdir, start_step)
  bar = None
  if config.progress and jax.process_index() == 0:
    from tqdm import tqdm

    bar = tqdm(total=config.steps, initial=min(start_step, config.steps), unit="step",
               dynamic_ncols=True, desc="train")

  def save(step: int, eval_pending: bool) -> None:
    bad = _first_nonfinite_leaf((state_g, state_d))
    if bad is not None:
      raise NonFiniteError(f"Training diverged: the state has NaN/Inf in {bad} at step {step}; "
                           f"it was not saved. {last_good()}")
    checkpoints.save(step, {"g": state_g, "d": state_d, "rng": jax.random.key_data(root_key)},
                     {"config": config.to_dict(), "step": step, **facts, "devices": len(devices),
                      "processes": jax.process_count(), "jax": jax.__version__,
                      "jaxgan": __version__, "eval_pending": eval_pending})
    last_saved[0] = step

  def evaluate_now(step: int, final: bool = False) -> dict:
    """The evaluation at ``step``, logged; {} when a signal interrupted it."""
    try:
      result = task.evaluate(state_g, eval_key, stop.check, final)
    except Stopped:
      return {}
    logs.metrics(step, result, prefix="eval")
    return result

  # Compiled here rather than at the first save, which would stall the loop; a restored
  # state is finite by construction (only finite states are saved), so this also checks
  # the files once more.
  if (bad := _first_nonfinite_leaf((state_g, state_d))) is not None:
    raise NonFiniteError(f"The state at step {start_step} has NaN/Inf in {bad}.")

  evaluates = task.evaluate is not None and config.eval_every > 0
  step, metrics, evaluation, preempted = start_step, {}, {}, False
  # An evaluation a signal interrupted before the checkpoint was saved: made now, so the
  # run's logs hold what an uninterrupted run's hold.
  eval_pending = bool(meta.get("eval_pending")) and evaluates
  if eval_pending and stop.signal is None:
    evaluation = evaluate_now(step, final=step >= config.steps)
    eval_pending = not evaluation
  pending: list[tuple[int, dict]] = []
  interval_start, interval_step = time.perf_counter(), start_step
  batches = data_lib.Prefetch(task.batches(start_step), place=place)
  try:
    if stop.signal is not None:  # during the restore or the pending evaluation: nothing new
      raise Stopped(stop.signal)
    while step < config.steps:
      _, batch = next(batches)
      state_g, state_d, step_metrics = step_fn_at(step)(state_g, state_d, batch, step_key)
      step += 1
      pending.append((step, step_metrics))
      if bar is not None:
        bar.update(1)
      final = step == config.steps
      stopping = _stopping(stop, checkpoints, step)
      saving = step % config.checkpoint_every == 0 or final or stopping
      if step % config.log_every == 0 or saving:  # metrics are checked before every save
        metrics = _mean_metrics(pending, last_good)
        now = time.perf_counter()
        rate = (step - interval_step) / (now - interval_start)
        interval_start, interval_step, pending = now, step, []
        logs.metrics(step, {**metrics, "steps_per_sec": rate, "time": time.time()})
        if bar is not None:
          bar.set_postfix(**task.postfix(metrics), refresh=False)
      if step % config.sample_every == 0 or final or stopping:
        images, columns = task.grid(state_g, grid_key)
        logs.grid(step, np.asarray(images), columns)
      if evaluates and (step % config.eval_every == 0 or final):
        evaluation = {} if stopping else evaluate_now(step, final)
        eval_pending = not evaluation  # a signal came before or during it: made on resume
        stopping, saving = stopping or eval_pending, saving or eval_pending
      if saving:
        save(step, eval_pending)
      if stopping:
        break
      eval_pending = False
    preempted = step < config.steps or eval_pending  # an evaluation is still owed
    checkpoints.wait()
    if preempted:
      _notice(f"jaxgan: stopped at step {step} ({stop.signal or 'preemption'}); the checkpoint "
              f"is saved in {checkpoints.directory}. Run the same command again to resume.")
    elif evaluation and jax.process_index() == 0:
      print(task.summary(step, evaluation), flush=True)
  finally:
    batches.close()
    if bar is not None:
      bar.close()
    logs.close()
    checkpoints.close()
  return RunResult(state_g, state_d, task.G, task.D, step, metrics, evaluation, preempted,
                   newest_grid(workdir))


def _stopping(stop: StopRequest, checkpoints, step: int) -> bool:
  """A signal arrived, or (multi-host) the processes agreed to stop at this step."""
  return stop.signal is not None or (
      jax.process_count() > 1 and checkpoints.reached_preemption(step))


# -- using a finished (or running) run ----------------------------------------------------------

def load_generator(workdir: str) -> tuple[Any, NetState, dict]:
  """The generator of the newest checkpoint in ``workdir``, on one device.

  Returns:
    ``(G, state_g, meta)``: the module, its state (with the EMA parameters, which
    ``jaxgan.generate`` uses by default) and the checkpoint's JSON (``step``, ``config``).

  Raises:
    jaxgan.checkpoint.CheckpointError: no checkpoint in ``workdir``.
  """
  directory = os.path.join(os.path.abspath(workdir), "checkpoints")
  if not os.path.isdir(directory):
    raise ckpt_lib.CheckpointError(
        f"No checkpoint in {workdir}: train first (python experiments/mnist.py "
        f"--workdir={workdir}), or pass the workdir of a run.")
  checkpoints = ckpt_lib.Checkpoints(directory, log=_notice)
  try:
    step = checkpoints.latest_step()
    if step is None:
      raise ckpt_lib.CheckpointError(f"No complete checkpoint in {directory} yet.")
    meta = checkpoints.read_meta(step)
    config, image_shape = complete_config(meta["config"]), tuple(meta["image_shape"])
    num_classes = int(meta.get("num_classes") or 0)
    G, D = make_models(config, image_shape, num_classes)
    target = _checkpoint_target(
        _noise_abstract_states(config, G, D, *make_optimizers(config), image_shape,
                               num_classes), parallel.data_mesh(jax.devices()[:1]))
    restored = checkpoints.restore_latest(target)
  finally:
    checkpoints.close()
  if restored is None:
    raise ckpt_lib.CheckpointError(f"No readable checkpoint in {directory}.")
  step, arrays, meta = restored
  return G, arrays["g"], meta


def export_samples(workdir: str, path: str, num: int, seed: int = 0) -> tuple[np.ndarray, dict]:
  """Writes ``num`` uint8 samples ``[num, H, W, C]`` of the newest checkpoint to ``path`` (.npy).

  The EMA generator is used when the run kept one. A conditional run's image ``i`` is of
  class ``i % num_classes``. The same workdir, ``num`` and ``seed``
  give the same file; the first ``n`` images of a larger export equal an export of ``n``.
  The file is written whole, then renamed into place: a signal (SIGTERM, Ctrl-C) during
  the export raises ``Stopped`` and leaves no file.

  Returns:
    ``(images, meta)``.
  """
  if num < 1:
    raise ConfigError(f"num_samples must be >= 1, got {num}.")
  with stop_on_signals() as stop:
    G, state_g, meta = load_generator(workdir)
    images = evaluate.to_uint8(_sample(G, state_g, jax.random.key(seed), num, stop.check))
    stop.check()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path + ".tmp", "wb") as f:
    np.save(f, images)
  os.replace(path + ".tmp", path)
  return images, meta

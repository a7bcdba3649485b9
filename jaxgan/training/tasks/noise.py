"""The noise-to-image family as a task of the loop (MLP, DCGAN, ResNet, StyleGAN2;
conditional or not): its data, networks, optimizers, step, sample grids and measures, and
loading a trained generator for sampling (``load_generator``, ``export_samples``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxgan import augment as augment_lib
from jaxgan import models, optim, parallel, rng
from jaxgan.data import order as order_lib
from jaxgan.data import pipeline, sources
from jaxgan.errors import ConfigError
from jaxgan.evaluators import classifier as classifier_lib
from jaxgan.evaluators import inception as inception_lib
from jaxgan.evaluators import pictures
from jaxgan.state import NetState, abstract_states, create_states
from jaxgan.steps.noise import generate, make_train_step
from jaxgan.training import checkpoint as ckpt_lib
from jaxgan.training.config import (
  EVAL_METRICS,
  MAY_CHANGE,
  MUST_MATCH,
  complete_config,
  make_augment,
)
from jaxgan.training.logs import notice
from jaxgan.training.preemption import StopRequest, stop_on_signals
from jaxgan.training.tasks.base import Task


def make_step(config, G, D, axis_name: str | None = parallel.AXIS):
  """The train step the config describes (its ``prepare_states`` adds the state it keeps)."""
  return make_train_step(
      G, D, config.loss, n_critic=config.n_critic, gp_weight=config.gp_weight,
      r1_weight=config.r1_weight, r2_weight=config.r2_weight, clip=config.clip or None,
      ema_decay=config.ema_decay or None,
      axis_name=axis_name, fake_labels=config.fake_labels, ac_weight=config.ac_weight,
      augment=make_augment(config), r1_every=config.r1_every,
      style_mixing=config.style_mixing, pl_weight=config.pl_weight, pl_every=config.pl_every,
      transition=_transition(config), schedules=step_schedules(config))


def step_schedules(config) -> optim.StepSchedules | None:
  """R3GAN's cosine schedules over ``schedule_kimg`` thousand images that the step reads:
  the gammas from ``r1_weight``/``r2_weight`` to ``gamma_final``, the G average's
  half-life from 0 to ``ema_kimg``, a fixed-p ADA's p to ``augment_p_final``."""
  if not config.schedule_kimg:
    return None
  total = config.schedule_kimg * 1000
  gamma = config.r1_weight or config.r2_weight
  aug = make_augment(config)
  fixed_p = isinstance(aug, augment_lib.ADA) and aug.target is None
  return optim.StepSchedules(
      penalty_scale=optim.Cosine(1.0, config.gamma_final / gamma, total)
      if gamma else None,
      ema_half_life=optim.Cosine(0.0, config.ema_kimg * 1000, total)
      if config.ema_kimg else None,
      augment_p=optim.Cosine(aug.p, config.augment_p_final, total) if fixed_p
      else None)


def _transition(config) -> tuple[int, int] | None:
  """A conditional StyleGAN2's class transition, or None (off, or nothing to fade in)."""
  if not (config.transition_end and config.conditional):
    return None
  return config.transition_start, config.transition_end


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
                                          mapping_layers=config.mapping_layers,
                                          unconditional_head=_transition(config) is not None))
  if config.model == "r3gan":
    return r3gan_pair(config, image_shape, num_classes)
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


def r3gan_pair(config: ml_collections.ConfigDict, image_shape: Sequence[int],
               num_classes: int = 0):
  """R3GAN's pair for images of ``image_shape``: a stage per resolution from 4x4 to the
  image's (the next power of two), ``min(channel_base // res, channel_max)`` channels
  (rounded to a multiple of 8), ``group_channels`` per group, ``stage_blocks`` blocks
  each; the 32x32 pair of width 1 is the reference's CIFAR-10 preset, the 64x64 one its
  FFHQ-64. With ``compute_dtype=bfloat16`` every stage above 4x4 runs in bfloat16 (the
  reference: 3 of CIFAR-10's 4, 4 of FFHQ-64's 5)."""
  side = models.stylegan2.resolution_of(image_shape)
  base = config.channel_base or round(24576 * config.width)
  cmax = config.channel_max or round(768 * config.width)
  widths = [max(8, round(min(base // (4 << i), cmax) / 8) * 8)
            for i in range(side.bit_length() - 2)]
  groups = [max(1, 2 * w // config.group_channels) for w in widths]
  for w, g in zip(widths, groups, strict=True):
    if (2 * w) % g:
      raise ConfigError(
          f"group_channels={config.group_channels} splits R3GAN's inner width {2 * w} "
          f"(2 x {w} channels) into {g} groups of unequal size; set --config.group_channels "
          f"to a divisor of {2 * w} (the reference: 16).")
  low = len(widths) - 1 if config.compute_dtype == "bfloat16" else 0
  return models.r3gan.r3gan(image_shape, widths, groups, [config.stage_blocks] * len(widths),
                            num_classes, low_precision_stages=low)


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
  every_d = config.r1_every if config.r1_weight > 0 or config.r2_weight > 0 else 1
  every_g = config.lazy_g_every or (config.pl_every if config.pl_weight > 0 else 1)
  if config.schedule_kimg:
    # R3GAN: the rate and beta2 of both networks along the cosine of the images seen
    # (the optimizer's count times the images per update, D's n_critic per G step).
    total = config.schedule_kimg * 1000
    b2 = optim.Cosine(config.b2, config.b2_final, total)
    return tuple(optim.cosine_adam(optim.Cosine(lr, config.lr_final, total),
                                           config.b1, b2, config.batch_size / per_step)
                 for lr, per_step in ((config.lr_g, 1), (config.lr_d, config.n_critic)))
  return (optim.lazy_adam(lr_g, config.b1, config.b2, every_g, eps=1e-8),
          optim.lazy_adam(lr_d, config.b1, config.b2, every_d, eps=1e-8))


def load_train_data(config) -> tuple[str, sources.Source]:
  """``(dataset name, train split)``. ``mnist`` that cannot be had (no internet, not
  prepared) is replaced by the offline Fashion-MNIST, with a one-line notice. A folder's
  classes are required for a conditional run (``class_folders=auto`` then says why not)."""
  class_folders = config.class_folders
  if config.conditional and class_folders == "auto":
    class_folders = "yes"
  try:
    return config.dataset, sources.load(config.dataset, "train", data_dir=config.data_dir,
                                         log=notice, resolution=config.resolution,
                                         class_folders=class_folders,
                                         skip_bad=config.skip_bad_images)
  except sources.DataError as e:
    if config.dataset != "mnist":
      raise
    if not os.path.exists(os.path.join(sources.DEBIAN_FASHION_MNIST,
                                       "train-images-idx3-ubyte.gz")):
      # The default run's offline data: a new user without internet needs the package's
      # name more than TFDS's list of what it tried.
      raise sources.DataError(
          f"{e}\nOr train offline on Fashion-MNIST: apt-get install dataset-fashion-mnist "
          f"(its IDX files in {sources.DEBIAN_FASHION_MNIST}), then run the same command."
      ) from None
    tried = [line.strip(" -") for line in str(e).splitlines() if line.startswith("  - ")]
    reason = tried[-1] if tried else str(e).splitlines()[0]
    notice(f"jaxgan: MNIST is not available here ({reason}); training on the offline "
            f"Fashion-MNIST in {sources.DEBIAN_FASHION_MNIST} instead (same shape, 10 classes). "
            "Set --config.dataset to choose.")
    return "fashion_mnist", sources.load("idx:" + sources.DEBIAN_FASHION_MNIST, "train",
                                         resolution=config.resolution)


def data_workers(config, source) -> int:
  """``config.data_workers``, or when it is -1: none for data already in memory (nothing
  to decode) or on a machine of 4 cores or fewer (the step uses them all: a worker only
  takes from it), else a quarter of the cores, at most 8 (BUILD_NOTES.md, "Your own
  data")."""
  if config.data_workers >= 0:
    return config.data_workers
  cores = os.cpu_count() or 1
  if isinstance(source, sources.ArraySource) or cores <= 4:
    return 0
  return min(8, cores // 4)


def _inception_metrics(config) -> tuple[str, ...]:
  return tuple(m for m in inception_lib.parse_metrics(config.eval_metrics, EVAL_METRICS)
               if m != "classifier")


def _make_inception_evaluator(config, train_source, check: Callable[[], None] | None = None):
  which = _inception_metrics(config)
  if not which:
    return None
  test = train_source.reference()
  notice(f"jaxgan: eval_metrics={config.eval_metrics}: each evaluation also passes "
          f"{config.eval_samples:,} samples through Inception (the test split's and the "
          "floor's features are computed once and cached).")
  return inception_lib.InceptionEvaluator(train_source, test, which=which,
                                        num_samples=config.eval_samples, log=notice,
                                        check=check)


def _make_evaluator(config, train_source, check: Callable[[], None] | None = None):
  if "classifier" not in inception_lib.parse_metrics(config.eval_metrics, EVAL_METRICS):
    return None
  if not train_source.num_classes:
    notice(f"jaxgan: {train_source.description} has no labels, so there is no evaluation "
            "classifier; eval_every is ignored.")
    return None
  return classifier_lib.Evaluator(train_source, train_source.reference(notice),
                            num_samples=config.eval_samples, log=notice, check=check,
                            progress=config.progress)


def balanced_labels(num: int, num_classes: int) -> np.ndarray | None:
  """Image ``i``'s class ``i % num_classes`` (None for an unconditional generator): what a
  conditional run's evaluations and exports draw."""
  return (np.arange(num) % num_classes).astype(np.int32) if num_classes else None


def sample(G, state_g, key, num: int, check: Callable[[], None] | None = None,
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


def summary(step: int, evaluation: dict, evaluator, data: str, held_out: bool = True) -> str:
  """The lines printed when a run ends. ``held_out``: the data has a test split; without
  one the floors compare two draws of the training images, and the lines say so (a
  classifier tested on images it was trained on scores higher than on new ones)."""
  pair, real = (("real train vs test", "real test images") if held_out else
                ("two draws of the real images", "real images (its training images)"))
  lines = (f"jaxgan: evaluation at step {step} on {data}, {evaluator.num_samples:,} samples:\n"
           f"  Frechet distance {evaluation['fd']:.2f} ({pair}: "
           f"{evaluation['fd_floor']:.2f}, the floor)\n"
           f"  class coverage {evaluation['coverage']}/{evaluator.num_classes} (classes with "
           f">= 2% of samples), KL to uniform {evaluation['kl']:.3f} nats")
  if "label_accuracy" in evaluation:
    lines += (f"\n  label accuracy {100 * evaluation['label_accuracy']:.1f}% (the classifier's "
              f"class for G(z, y) is y; on {real} it is right "
              f"{100 * evaluation['classifier_accuracy']:.1f}%)\n"
              f"  intra-class FD {evaluation['intra_fd']:.2f} (mean over classes of each "
              f"class's FD; {pair}: {evaluation['intra_fd_floor']:.2f})")
  if "diversity" in evaluation:
    by = "class asked for" if "label_accuracy" in evaluation else "predicted class"
    lines += (f"\n  diversity {evaluation['diversity']:.2f} (each {by}'s feature variance over "
              f"the real class's, mean; lowest {evaluation['diversity_min']:.2f}; real train "
              f"images: {evaluation.get('diversity_real', 1.0):.2f})")
  if "cas" in evaluation:
    lines += (f"\n  classification accuracy score {100 * evaluation['cas']:.1f}% (a classifier "
              f"trained on the {evaluator.num_samples:,} generated images, tested on {real}; "
              f"trained on as many real images: {100 * evaluation['cas_real']:.1f}%)")
  return lines


def collapse_warning(evaluation: dict, config) -> str | None:
  """The plain statement of a collapsed generator (classes whose samples vary far less
  than the real class's), with what to try; None when no class collapsed."""
  collapsed = evaluation.get("collapsed")
  if not collapsed:
    return None
  which = ", ".join(str(c) for c in collapsed)
  n = len(collapsed)
  # Heuristics, not guarantees: what the GAN literature reaches for against collapse.
  if not config.r1_weight:
    penalty = "R1 on the real images (--config.r1_weight=0.1)"
  elif config.r2_weight:
    # R1 and R2 together (R3GAN): both stronger, and a scheduled gamma's end with them,
    # or the schedule would take the stronger penalty back down.
    flags = f"--config.r1_weight={10 * config.r1_weight:g} " \
            f"--config.r2_weight={10 * config.r2_weight:g}"
    if config.schedule_kimg and config.gamma_final:
      flags += f" --config.gamma_final={10 * config.gamma_final:g}"
    penalty = f"stronger R1 and R2 ({flags})"
  else:
    penalty = f"a stronger R1 (--config.r1_weight={10 * config.r1_weight:g})"
  tries = ["5 D steps per G step, as SNGAN trains (--config.n_critic=5)"
           if config.n_critic == 1 else None,
           penalty,
           f"lower learning rates (--config.lr_g={config.lr_g / 2:g} "
           f"--config.lr_d={config.lr_d / 2:g})",
           "an unconditional run (--config.conditional=False)" if config.conditional else None]
  rows = ", the grid's rows counted from 0" if config.conditional else ""
  return (f"jaxgan: COLLAPSED: the generator has collapsed in {n} class{'es' * (n > 1)} "
          f"({which}{rows}): their samples vary less than "
          f"{classifier_lib.COLLAPSE_THRESHOLD:g} of the real class's variance, so they repeat "
          "a few images. Try " + "; or ".join(t for t in tries if t) + ".")


def noise_abstract_states(config, G, D, tx_g, tx_d, image_shape, num_classes=0):
  return jax.eval_shape(
      make_step(config, G, D).prepare_states,
      *abstract_states(G, D, tx_g, tx_d, latent_dim=config.latent_dim,
                       image_shape=image_shape, num_classes=num_classes))


class NoiseTask(Task):
  """The noise-to-image family (MLP, DCGAN, ResNet, StyleGAN2; conditional or not): its
  data, models, states, step, sample grids and measures, for the loop."""

  must_match, may_change = MUST_MATCH, MAY_CHANGE

  def __init__(self, config, stop: StopRequest):
    self.config = config
    _, full_source = load_train_data(config)
    stop.check()
    self.source = source = full_source.fraction(config.data_fraction)
    if config.data_fraction < 1:
      notice(f"jaxgan: data_fraction={config.data_fraction:g}: training on "
             f"{source.description}; evaluated against the whole split's statistics.")
    self.image_shape = source.image_shape
    if config.conditional and not source.num_classes:
      raise ConfigError(f"conditional=True trains on the dataset's labels, but "
                        f"{source.description} has none. Use a labelled dataset, or set "
                        "--config.conditional=False.")
    self.num_classes = source.num_classes if config.conditional else 0
    self.G, self.D = make_models(config, self.image_shape, self.num_classes)
    self.train_step = make_step(config, self.G, self.D)
    # What the step keeps in the states (ADA's p, lazy R1, the path-length mean): a run
    # resumes only into states of the same shape.
    keeps = self.train_step.step_state_init()
    self.facts = {"image_shape": list(self.image_shape), "data": source.description,
                  "data_order": order_lib.ORDER, "noise": rng.SCHEME,
                  "num_classes": self.num_classes,
                  "step_state": {"g": sorted(keeps[0]), "d": sorted(keeps[1])}}
    self.tx_g, self.tx_d = make_optimizers(config)
    self.evaluator = self.inception = None
    self.held_out = "test" in full_source.splits  # else the evaluation reads these images
    if config.eval_every:
      self.evaluator = _make_evaluator(config, full_source, stop.check)
      self.inception = _make_inception_evaluator(config, full_source, stop.check)
    # Lazy regularisation on a CPU: one compiled step per (R1, path length) pattern instead
    # of lax.cond inside the step: XLA:CPU runs R1's second derivatives ~30x slower inside
    # a conditional (BUILD_NOTES.md, "Lazy regularisation on a CPU").
    self.fix_schedule = jax.default_backend() == "cpu" and (
        self.train_step.lazy_r1 or (config.pl_weight > 0 and config.pl_every > 1))

  def make_step(self, axis_name):
    return make_step(self.config, self.G, self.D, axis_name)

  def init_states(self, key):
    state_g, state_d = create_states(key, self.G, self.D, self.tx_g, self.tx_d,
                                     latent_dim=self.config.latent_dim,
                                     image_shape=self.image_shape,
                                     num_classes=self.num_classes)
    return self.train_step.prepare_states(state_g, state_d)

  def abstract_states(self):
    return noise_abstract_states(self.config, self.G, self.D, self.tx_g, self.tx_d,
                                 self.image_shape, self.num_classes)

  def batches(self, start_step):
    return pipeline.batches(self.source, self.config.batch_size, self.config.seed, start_step,
                            workers=data_workers(self.config, self.source))

  def grid(self, state_g, key):
    # A conditional run's grid: one class per row, grid_size images of each.
    n, size = self.num_classes, self.config.grid_size
    labels = np.repeat(np.arange(n), size).astype(np.int32) if n else None
    return np.asarray(generate(self.G, state_g, key, (n or size) * size, labels=labels)), size

  @property
  def evaluates(self):
    return self.evaluator is not None or self.inception is not None

  def evaluate(self, state_g, key, check, final):
    config = self.config
    images = sample(self.G, state_g, key, config.eval_samples, check)
    labels = balanced_labels(len(images), self.num_classes)
    result = {}
    if self.evaluator is not None:
      # An unconditional run's evaluation holds what it always held.
      floors = (self.evaluator.floors if labels is not None
                else {k: v for k, v in self.evaluator.floors.items()
                      if k in ("fd_floor", "diversity_real")})
      result.update({**self.evaluator(images, labels), **floors})
      if final and labels is not None and config.cas_steps:
        result.update(self.evaluator.cas(images, labels, config.cas_steps))
    if self.inception is not None:
      result.update({**self.inception(images), **self.inception.floors})
    return result

  def summary(self, step, evaluation):
    if self.evaluator is not None:
      lines = [summary(step, evaluation, self.evaluator, self.source.description,
                       held_out=self.held_out)]
    else:
      lines = [f"jaxgan: evaluation at step {step} on {self.source.description}, "
               f"{self.config.eval_samples:,} samples:"]
    if self.inception is not None:
      lines += ["  " + line for line in self.inception.summary(evaluation,
                                                                self.config.eval_samples)]
    warning = collapse_warning(evaluation, self.config)
    if warning:
      lines.append(warning)
    return "\n".join(lines)

  def postfix(self, metrics):
    out = super().postfix(metrics)
    if "ada_p" in metrics:
      out["p"] = f"{metrics['ada_p']:.3f}"
    return out


def load_generator(workdir: str) -> tuple[Any, NetState, dict]:
  """The generator of the newest checkpoint in ``workdir``, on one device.

  Returns:
    ``(G, state_g, meta)``: the module, its state (with the EMA parameters, which
    ``jaxgan.generate`` uses by default) and the checkpoint's JSON (``step``, ``config``).

  Raises:
    jaxgan.training.checkpoint.CheckpointError: no checkpoint in ``workdir``.
  """
  def target_for(meta):
    config, image_shape = complete_config(meta["config"]), tuple(meta["image_shape"])
    num_classes = int(meta["num_classes"])
    G, D = make_models(config, image_shape, num_classes)
    return noise_abstract_states(config, G, D, *make_optimizers(config), image_shape,
                                 num_classes), G

  arrays, meta, G = ckpt_lib.restore_newest(workdir, target_for)
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
    images = pictures.to_uint8(sample(G, state_g, jax.random.key(seed), num, stop.check))
    stop.check()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path + ".tmp", "wb") as f:
    np.save(f, images)
  os.replace(path + ".tmp", path)
  return images, meta

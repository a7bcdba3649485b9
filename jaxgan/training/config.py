"""The configs of a run: one schema per family, one validation path, and the variants.

``default_config()`` lists every field of a noise-to-image run,
``translation_default_config(family)`` those of pix2pix and CycleGAN. ``complete_any`` fills
a given config in and checks it (a misspelt field is named with the closest ones, a removed
one with what replaced it).

An experiment's config file has variants, ``get_config(variant)`` (``--config=FILE:cpu``):
``full`` is the run an accelerator makes, ``cpu`` a run of minutes on a laptop's CPU; with
none named, ``for_this_machine`` picks ``cpu`` where JAX finds no accelerator. A file that
holds a recipe per model lists them in ``MODELS`` and takes ``[MODEL][,VARIANT]``
(``config_arg``); the experiments' command line then builds the recipe of the model it is
given (``--config.model=resnet``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import ml_collections

from jaxgan import augment as augment_lib
from jaxgan import cpu, models
from jaxgan import losses as losses_lib
from jaxgan.data import pairs as pairs_lib
from jaxgan.errors import ConfigError
from jaxgan.evaluators import inception as inception_lib
from jaxgan.models import translation as nets
from jaxgan.steps import noise as noise_step
from jaxgan.steps import pix2pix as pix2pix_step
from jaxgan.training.logs import notice

MODELS = ("mlp", "dcgan", "resnet", "stylegan2", "r3gan")
LR_SCHEDULES = ("constant", "linear")
PARALLEL = ("pmap", "shard_map")
COMPUTE_DTYPES = ("float32", "bfloat16")
CLASS_FOLDERS = ("auto", "yes", "no")


# Settings a checkpoint's run cannot change: they change the state's shapes, the data or
# the random streams. Resuming under other values is refused with an error.
MUST_MATCH = ("model", "width", "latent_dim", "spectral_norm", "dataset", "seed", "conditional",
              "conditioning", "attention", "shared_embedding", "g_channels", "d_channels",
              "w_dim", "mapping_layers", "channel_base", "channel_max", "mbstd_group_size",
              "d_architecture", "data_fraction", "transition_start", "transition_end",
              "resolution", "class_folders", "skip_bad_images", "stage_blocks",
              "group_channels")


# The random streams a checkpoint records (jaxgan.data.ORDER, jaxgan.rng.SCHEME): a run
# resumes only with the streams it started with. For each, what differs when they do not.
STREAMS = {"data_order": "batches came in another order",
           "noise": "noise (latents, dropout masks) was drawn another way"}


# Settings that may change on resume (a notice lists them): the run goes on, but it is no
# longer the run an uninterrupted job would have made.
MAY_CHANGE = ("loss", "n_critic", "gp_weight", "r1_weight", "r2_weight", "clip", "ema_decay",
              "lr_g", "lr_d",
              "b1", "b2", "batch_size", "compute_dtype", "fake_labels", "ac_weight", "lr_schedule",
              "weight_init", "augment", "ada_target", "ada_kimg", "r1_every", "style_mixing",
              "pl_weight", "pl_every", "lazy_g_every", "eval_metrics", "data_workers",
              "schedule_kimg", "lr_final", "b2_final", "gamma_final", "ema_kimg",
              "augment_p_final")
EVAL_METRICS = ("classifier", *inception_lib.METRICS)


def default_config() -> ml_collections.ConfigDict:
  """Every field ``train_and_evaluate`` reads, with defaults. See the comments for units."""
  c = ml_collections.ConfigDict()
  c.family = "noise"  # noise (-to-image); experiments/pix2pix.py and cyclegan.py set theirs
  # A TFDS name, idx:/dir for MNIST-format files, or the user's own images: a folder, a
  # .npy / .npz, a pack (python -m jaxgan.data.pack); see docs/data.md.
  c.dataset = "mnist"
  c.data_dir = ml_collections.config_dict.placeholder(str)  # TFDS data_dir (None: default)
  c.resolution = 0  # centre-crop and resize every image to N x N (0: the data's own size)
  c.class_folders = "auto"  # a folder's classes from its sub-folders: auto | yes | no
  c.skip_bad_images = False  # leave unreadable image files out (counted) instead of stopping
  # Processes reading and decoding batches (Grain); 0: a thread of the training process;
  # -1: 0 for data in memory or on up to 4 cores, else a quarter of the cores (at most 8).
  c.data_workers = -1
  c.model = "dcgan"  # mlp | dcgan | resnet | stylegan2 | r3gan
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
  # StyleGAN2 and R3GAN: channels min(channel_base // res, channel_max); 0: StyleGAN2's
  # small CPU preset's 1024 * width and 128 * width (the reference's cifar: 32768, 512),
  # R3GAN's 24576 * width and 768 * width (the reference's CIFAR-10 and FFHQ-64 widths).
  c.channel_base = 0
  c.channel_max = 0
  c.stage_blocks = 2  # R3GAN: residual blocks per resolution
  c.group_channels = 16  # R3GAN: channels per group of a block's grouped 3x3 convolution
  c.w_dim = 64  # StyleGAN2's w (the reference: 512); z is latent_dim
  c.mapping_layers = 2  # StyleGAN2 mapping network depth (paper 8, the reference's cifar 2)
  c.mbstd_group_size = 4  # StyleGAN2 D's minibatch-stddev group (cifar: 32)
  c.d_architecture = "resnet"  # StyleGAN2 D: resnet | orig (cifar: orig)
  c.style_mixing = 0.0  # StyleGAN2: style-mixing probability (paper 0.9; cifar 0)
  c.pl_weight = 0.0  # StyleGAN2: path-length penalty weight (paper 2; cifar 0)
  c.pl_every = 4  # ... as its own G update every so many steps
  c.lazy_g_every = 0  # G's Adam corrected as if regularised every k steps (0: pl_every
  #                     when pl_weight > 0, else none; the reference's cifar config: 4)
  # Conditional StyleGAN2: unconditional until transition_start, the class fading in to
  # transition_end (steps; Shahbazi et al. 2022; D gains an unconditional output).
  # transition_end=0: off. An unconditional run has no class to fade in: unused there.
  c.transition_start = 0
  c.transition_end = 0
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
  c.r2_weight = 0.0  # R2 gamma: R1 on the fakes (R3GAN: r1_weight = r2_weight; 0: off)
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
  # R3GAN's cosine schedules (0: off): over schedule_kimg thousand images seen, lr_g and
  # lr_d go to lr_final, b2 to b2_final, r1_weight and r2_weight to gamma_final, the G
  # average's half-life from 0 to ema_kimg thousand images (instead of ema_decay; 0: keep
  # ema_decay) and a fixed-p ADA's p (augment=ada:p) to augment_p_final.
  c.schedule_kimg = 0.0
  c.lr_final = 5e-5
  c.b2_final = 0.99
  c.gamma_final = 0.0
  c.ema_kimg = 0.0
  c.augment_p_final = 0.0
  c.batch_size = 256  # global, over all devices
  c.steps = 20_000  # generator updates in all (resuming continues up to this)
  c.variant = ""  # which variant of an experiment's config this is (cpu | full), if any
  # What the cpu variant cannot give and the command that does, said when it starts.
  c.cpu_note = ""
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
  # "dc" (density/coverage); see jaxgan.evaluators.inception (needs its weights; on a CPU an
  # Inception evaluation of 2,000 samples takes minutes).
  c.eval_metrics = "classifier"
  c.cas_steps = 500  # conditional runs, final evaluation: CAS classifier steps (0: no CAS)
  c.progress = True  # progress bar
  return c


FAMILIES = ("pix2pix", "cyclegan")
GENERATORS = ("unet", "resnet")


# Settings a checkpoint's run cannot change (the state's shapes, the data, the streams).
TRANSLATION_MUST_MATCH = ("family", "dataset", "task", "sr_factor", "hole", "domain_a",
                          "domain_b", "image_size", "generator", "ngf", "ndf", "n_blocks",
                          "num_downs", "n_layers_d", "norm_g", "norm_d", "dropout",
                          "dropout_blocks", "pool_size", "seed")
TRANSLATION_MAY_CHANGE = ("loss", "l1_weight", "cycle_weight", "identity_weight", "lr_g",
                          "lr_d", "b1", "b2", "batch_size", "lr_schedule", "decay_start")


def translation_default_config(family: str) -> ml_collections.ConfigDict:
  """Every field of a translation run (``family``: ``pix2pix`` or ``cyclegan``), with the
  reference's defaults where the laptop scale allows."""
  if family not in FAMILIES:
    raise ConfigError(f"family must be one of {('noise', *FAMILIES)}, got {family!r}.")
  cycle = family == "cyclegan"
  c = ml_collections.ConfigDict()
  c.family = family
  # fashion_mnist (offline: Debian's IDX files), idx:/dir, or (CycleGAN) cycle_gan/<name>.
  c.dataset = "fashion_mnist"
  c.data_dir = ml_collections.config_dict.placeholder(str)
  c.task = "edges"  # pix2pix: edges | super_resolution | inpainting
  c.sr_factor = 2  # super_resolution: the shrinking factor (28 -> 14)
  c.hole = 12  # inpainting: the hole's side in pixels
  c.domain_a = 7  # CycleGAN on a labelled dataset: class of domain A (7: sneaker)
  c.domain_b = 9  # ... and of domain B (9: ankle boot)
  c.image_size = 256  # CycleGAN on TFDS cycle_gan/*: images resized to this side
  c.generator = "resnet" if cycle else "unet"
  c.ngf = 64
  c.ndf = 64
  c.n_blocks = 9  # ResNet generator: residual blocks (9 at 256 px, 6 at 128)
  c.num_downs = 0  # U-Net: down-samplings (0: down to 1x1, e.g. 8 at 256, 5 at 28 -> 32)
  c.n_layers_d = 3  # PatchGAN: stride-2 layers (3: 70x70 patches; 1 or 2 at 28 px)
  c.norm_g = "instance" if cycle else "batch"
  c.norm_d = "instance" if cycle else "batch"
  c.dropout = 0.0 if cycle else 0.5  # U-Net decoder dropout (pix2pix's noise)
  c.dropout_blocks = -1  # U-Net: blocks with dropout next to the innermost (-1: reference's)
  c.loss = "least_squares" if cycle else "non_saturating"
  c.l1_weight = 100.0  # pix2pix
  c.cycle_weight = 10.0  # CycleGAN
  c.identity_weight = 0.5  # CycleGAN, relative to cycle_weight
  c.pool_size = 50 if cycle else 0  # CycleGAN's image pools
  c.lr_g = 2e-4
  c.lr_d = 2e-4
  c.b1 = 0.5
  c.b2 = 0.999
  c.lr_schedule = "linear"  # constant | linear (to 0 from decay_start of the run)
  c.decay_start = 0.5  # the reference's 100 epochs constant, then 100 decaying
  c.batch_size = 1  # the reference's
  c.steps = 200_000
  c.variant = ""  # which variant of an experiment's config this is (cpu | full), if any
  # What the cpu variant cannot give and the command that does, said when it starts.
  c.cpu_note = ""
  c.seed = 0
  c.parallel = "pmap"
  c.num_devices = 0
  c.log_every = 100
  c.checkpoint_every = 1000
  c.keep_checkpoints = 3
  c.sample_every = 500
  c.grid_size = 8  # rows of the picture (input | output | target or reconstruction)
  c.eval_every = 1000  # 0: off
  c.eval_samples = -1  # test images translated per evaluation (-1: all, at most 10,000)
  c.cpu_conv_kernels = "xla"
  c.progress = True
  return c


# Fields that were removed, with what replaced them (a config or an override naming one
# fails with this).
REMOVED = {
    "cpu_steps": "the CPU run is the config's cpu variant, and its length is steps "
                 "(--config.steps=15000)",
    "full_steps": "the full run is the config's full variant (--config=FILE:full), and its "
                  "length is steps (--config.steps=N)",
    "cpu_width": "the config's cpu variant sets width (--config.width=W)",
    "cpu_resnet_width": "the config's cpu variant sets the ResNet's g_channels and d_channels "
                        "(--config.g_channels=C --config.d_channels=C)",
    "cpu_recipe": "the CPU run's settings are the config's cpu variant (--config=FILE:cpu), "
                  "each overridden as itself (--config.loss=hinge)",
}
VARIANTS = ("cpu", "full")


def for_this_machine(variant: str | None = None) -> str:
  """The variant to build: ``variant`` when named (``cpu`` or ``full``), else ``cpu`` on a
  machine where JAX finds no accelerator and ``full`` on a GPU or TPU."""
  if variant in (None, "", "auto"):
    return "cpu" if jax.default_backend() == "cpu" else "full"
  if variant not in VARIANTS:
    raise ConfigError(f"Unknown config variant {variant!r}: name one of {VARIANTS} after the "
                      "config file (--config=experiments/configs/mnist.py:cpu), or none for "
                      "this machine's.")
  return variant


def config_arg(arg: str | None, models: Sequence[str]) -> tuple[str | None, str]:
  """A config file's argument, ``[MODEL][,VARIANT]`` (``cpu``, ``resnet``, ``resnet,cpu``;
  ``--config=FILE:resnet,cpu``), as ``(model or None, variant)``; the variant is
  ``for_this_machine``'s when not named.

  Raises:
    jaxgan.errors.ConfigError: a part that is neither one of ``models`` nor a variant.
  """
  model, variant = None, None
  for part in filter(None, (p.strip() for p in (arg or "").split(","))):
    if part in models and model is None:
      model = part
    elif part in (*VARIANTS, "auto") and variant is None:
      variant = part
    else:
      raise ConfigError(f"Unknown config argument {part!r} in {arg!r}: name a model "
                        f"{tuple(models)}, a variant {VARIANTS}, or both (resnet,cpu), after "
                        "the config file (--config=experiments/configs/mnist.py:resnet,cpu).")
  return model, for_this_machine(variant)


def complete_any(config: ml_collections.ConfigDict | dict) -> ml_collections.ConfigDict:
  """The completed, checked config of its family (noise-to-image, pix2pix or CycleGAN),
  with this machine's evaluation size; says which variant runs."""
  given = _as_dict(config)
  if given.get("family", "noise") == "noise":
    out = complete_config(given)
    if out.eval_samples == -1:
      out.eval_samples = 2000 if jax.default_backend() == "cpu" else 10_000
  else:
    out = complete_translation_config(given)
  _say_variant(out)
  return out


def complete_config(config: ml_collections.ConfigDict | dict) -> ml_collections.ConfigDict:
  """``default_config()`` updated with ``config``; checks names and values.

  Raises:
    jaxgan.errors.ConfigError: an unknown or removed field (with the closest names, or
      what replaced it), or a value out of range.
  """
  out = _filled(default_config(), _as_dict(config))
  _check(out, _common_checks(out) + _noise_checks(out))
  losses_lib.get(out.loss)  # raises on an unknown loss, listing the known ones
  make_augment(out)  # raises on an unknown augmentation
  noise_step.check_options(out.n_critic, out.gp_weight, out.r1_weight, out.clip or None,
                           out.ema_decay or None, out.r1_every, out.r2_weight)
  return out


def complete_translation_config(config: ml_collections.ConfigDict | dict
                                ) -> ml_collections.ConfigDict:
  """The family's ``translation_default_config`` updated with ``config``, checked.

  Raises:
    jaxgan.errors.ConfigError: an unknown or removed field, or a bad value.
  """
  given = _as_dict(config)
  out = _filled(translation_default_config(given.get("family", "pix2pix")), given)
  _check(out, _common_checks(out) + _translation_checks(out))
  return out


def _as_dict(config) -> dict:
  return config.to_dict() if isinstance(config, ml_collections.ConfigDict) else dict(config)


def _filled(out: ml_collections.ConfigDict, given: dict) -> ml_collections.ConfigDict:
  """The defaults ``out`` updated with ``given``; raises on a field ``out`` does not have."""
  removed = [k for k in given if k in REMOVED and k not in out]
  if removed:
    raise ConfigError("; ".join(f"config field {k} was removed: {REMOVED[k]}"
                                for k in removed) + ".")
  unknown = [k for k in given if k not in out]
  if unknown:
    import difflib

    close = {k: difflib.get_close_matches(k, list(out), 2) for k in unknown}
    hints = [f"{k} (did you mean {', '.join(close[k])}?)" if close[k] else k for k in unknown]
    which = "" if out.family == "noise" else f" for family={out.family}"
    raise ConfigError(f"Unknown config field(s){which}: {', '.join(hints)}. Known fields: "
                      f"{', '.join(sorted(out))}.")
  with out.ignore_type():
    out.update(given)
  return out


def _check(out: ml_collections.ConfigDict, checks: list[tuple[bool, str]]) -> None:
  bad = [message for ok, message in checks if not ok]
  if bad:
    raise ConfigError("Invalid config: " + "; ".join(bad) + ".")


def _common_checks(out) -> list[tuple[bool, str]]:
  """What every family's run needs of the fields every schema has."""
  checks = [
      (out.variant in ("", *VARIANTS), f"variant must be one of {VARIANTS} (or empty), got "
       f"{out.variant!r}"),
      (out.steps >= 0, f"steps must be >= 0, got {out.steps}"),
      (out.batch_size >= 1, f"batch_size must be >= 1, got {out.batch_size}"),
      (out.lr_g > 0 and out.lr_d > 0, f"learning rates must be > 0, got lr_g={out.lr_g}, "
       f"lr_d={out.lr_d}"),
      (0 <= out.b1 < 1 and 0 <= out.b2 < 1, f"b1 and b2 must be in [0, 1), got {out.b1}, "
       f"{out.b2}"),
      (out.lr_schedule in LR_SCHEDULES, f"lr_schedule must be one of {LR_SCHEDULES}, got "
       f"{out.lr_schedule!r}"),
      (out.parallel in PARALLEL, f"parallel must be one of {PARALLEL}, got {out.parallel!r}"),
      (out.num_devices >= 0, f"num_devices must be >= 0 (0: all), got {out.num_devices}"),
      (out.eval_every >= 0, f"eval_every must be >= 0 (0: off), got {out.eval_every}"),
      (out.eval_samples == -1 or out.eval_samples >= 2,
       f"eval_samples must be >= 2, or -1 for auto; got {out.eval_samples}"),
      (out.grid_size >= 1, f"grid_size must be >= 1, got {out.grid_size}"),
      (out.cpu_conv_kernels in cpu.CONV_KERNELS, f"cpu_conv_kernels must be one of "
       f"{cpu.CONV_KERNELS}, got {out.cpu_conv_kernels!r}"),
  ]
  for every in ("log_every", "checkpoint_every", "sample_every", "keep_checkpoints"):
    checks.append((out[every] >= 1, f"{every} must be >= 1, got {out[every]}"))
  return checks


def _noise_checks(out) -> list[tuple[bool, str]]:
  return [
      (out.family == "noise", f"family={out.family!r} is not noise-to-image: complete it "
       "with complete_translation_config (or run experiments/pix2pix.py, "
       "experiments/cyclegan.py)"),
      (bool(str(out.dataset).strip()), "no dataset: set --config.dataset to a TFDS name, "
       "or your images' folder, array file or pack (docs/data.md)"),
      (out.model in MODELS, f"model must be one of {MODELS}, got {out.model!r}"),
      (not out.conditional or out.model in ("resnet", "dcgan", "stylegan2", "r3gan"),
       "conditional=True needs model=resnet, dcgan, stylegan2 or r3gan (a conditional G, a "
       "projection D)"),
      (out.schedule_kimg >= 0 and min(out.lr_final, out.gamma_final, out.ema_kimg) >= 0
       and 0 <= out.b2_final < 1 and 0 <= out.augment_p_final <= 1,
       "schedule_kimg, lr_final, gamma_final and ema_kimg must be >= 0, b2_final in [0, 1) "
       "and augment_p_final in [0, 1]"),
      (not out.schedule_kimg or (out.lr_schedule == "constant" and out.r1_every == 1),
       f"schedule_kimg (R3GAN's cosine schedules) sets the learning rate's course itself and "
       f"counts images by the optimizers' updates: it needs lr_schedule=constant and "
       f"r1_every=1, got {out.lr_schedule!r} and {out.r1_every}"),
      (not out.schedule_kimg or not out.gamma_final or out.r1_weight or out.r2_weight,
       "gamma_final is where r1_weight and r2_weight end: set one of them (its start)"),
      (out.stage_blocks >= 0 and out.group_channels >= 1, f"stage_blocks must be >= 0 and "
       f"group_channels >= 1, got {out.stage_blocks} and {out.group_channels}"),
      (not out.conditional or out.model == "resnet" or out.conditioning == "projection",
       "conditioning=ac needs model=resnet"),
      (out.conditioning in models.resnet.CONDITIONINGS, f"conditioning must be one of "
       f"{models.resnet.CONDITIONINGS}, got {out.conditioning!r}"),
      (out.fake_labels in noise_step.FAKE_LABELS, f"fake_labels must be one of "
       f"{noise_step.FAKE_LABELS}, got {out.fake_labels!r}"),
      (out.weight_init in models.resnet.INITS, f"weight_init must be one of "
       f"{models.resnet.INITS}, got {out.weight_init!r}"),
      (out.ac_weight >= 0, f"ac_weight must be >= 0, got {out.ac_weight}"),
      (min(out.attention, out.shared_embedding, out.cas_steps, out.g_channels,
           out.d_channels) >= 0,
       "attention, shared_embedding, cas_steps, g_channels and d_channels must be >= 0 "
       "(0: off, or from width)"),
      (out.compute_dtype in COMPUTE_DTYPES, f"compute_dtype must be one of {COMPUTE_DTYPES}, "
       f"got {out.compute_dtype!r}"),
      (out.upsample in models.UPSAMPLE_METHODS, f"upsample must be one of "
       f"{models.UPSAMPLE_METHODS}, got {out.upsample!r}"),
      (eval_metrics_error(out.eval_metrics) is None, eval_metrics_error(out.eval_metrics)),
      (out.latent_dim >= 1, f"latent_dim must be >= 1, got {out.latent_dim}"),
      (out.width > 0, f"width must be > 0, got {out.width}"),
      (out.clip >= 0, f"clip must be >= 0 (0: off), got {out.clip}"),
      (0 < out.data_fraction <= 1, f"data_fraction must be in (0, 1] (1: the whole split), "
       f"got {out.data_fraction}"),
      (out.resolution == 0 or out.resolution >= 4, f"resolution must be 0 (the data's own "
       f"size) or a side of at least 4 pixels, got {out.resolution}"),
      (out.class_folders in CLASS_FOLDERS, f"class_folders must be one of {CLASS_FOLDERS}, "
       f"got {out.class_folders!r}"),
      (out.data_workers >= -1, f"data_workers must be >= 0 (0: read in the training "
       f"process) or -1 (automatic), got {out.data_workers}"),
      (out.d_architecture in models.stylegan2.ARCHITECTURES, f"d_architecture must be one of "
       f"{models.stylegan2.ARCHITECTURES}, got {out.d_architecture!r}"),
      (min(out.channel_base, out.channel_max, out.lazy_g_every) >= 0 and out.w_dim >= 1
       and out.mapping_layers >= 0 and out.mbstd_group_size >= 1,
       "channel_base, channel_max and lazy_g_every must be >= 0, w_dim and mbstd_group_size "
       ">= 1, mapping_layers >= 0"),
      (out.model == "stylegan2" or not (out.style_mixing or out.pl_weight),
       "style_mixing and pl_weight need model=stylegan2"),
      (not out.transition_end or out.model == "stylegan2",
       "transition_start/transition_end fade a conditional StyleGAN2's class in: they need "
       "model=stylegan2 (0: off)"),
      (not out.transition_end or 0 <= out.transition_start < out.transition_end <= out.steps,
       f"the class's transition needs 0 <= transition_start < transition_end <= steps (the "
       f"last steps must train the conditional pair that is sampled), got "
       f"{out.transition_start}, {out.transition_end} with steps={out.steps}"),
      (out.ada_kimg > 0 and 0 < out.ada_target < 1, f"ada_kimg must be > 0 and ada_target in "
       f"(0, 1), got {out.ada_kimg}, {out.ada_target}"),
  ]


def _translation_checks(out) -> list[tuple[bool, str]]:
  return [
      (out.task in pairs_lib.PAIRED_TASKS, f"task must be one of {pairs_lib.PAIRED_TASKS}, got "
       f"{out.task!r}"),
      (out.generator in GENERATORS, f"generator must be one of {GENERATORS}, got "
       f"{out.generator!r}"),
      (out.norm_g in nets.NORMS and out.norm_d in nets.NORMS, f"norm_g and norm_d must be "
       f"one of {nets.NORMS}, got {out.norm_g!r}, {out.norm_d!r}"),
      (out.loss in pix2pix_step.ADVERSARIAL, f"loss must be one of "
       f"{pix2pix_step.ADVERSARIAL} (the reference's lsgan and vanilla), got {out.loss!r}"),
      (0 <= out.decay_start <= 1, f"decay_start must be in [0, 1] (a fraction of the run), "
       f"got {out.decay_start}"),
      (min(out.ngf, out.ndf, out.n_blocks, out.n_layers_d, out.sr_factor, out.hole,
           out.image_size) >= 1,
       "ngf, ndf, n_blocks, n_layers_d, sr_factor, hole and image_size must be >= 1"),
      (out.num_downs == 0 or out.num_downs >= 2, f"num_downs must be 0 (auto) or >= 2, got "
       f"{out.num_downs}"),
      (0 <= out.dropout < 1, f"dropout must be in [0, 1), got {out.dropout}"),
      (min(out.l1_weight, out.cycle_weight, out.identity_weight, out.pool_size) >= 0,
       "l1_weight, cycle_weight, identity_weight and pool_size must be >= 0"),
      (out.family != "cyclegan" or out.domain_a != out.domain_b,
       "domain_a and domain_b must differ"),
  ]


def _penalties(config) -> str:
  """The gradient penalties a start line names, as ", R1 gamma 0.1 every 4 steps" (lazy R1:
  its own D update every 4th step)."""
  out = ""
  if config.r1_weight:
    out += f", R1 gamma {config.r1_weight:g}"
    out += f" every {config.r1_every} steps" if config.r1_every > 1 else ""
  if config.r2_weight:
    out += f", R2 gamma {config.r2_weight:g}"
  if config.gp_weight:
    out += f", gradient penalty {config.gp_weight:g}"
  return out


def _say_variant(config) -> None:
  """One line on which variant of its config file runs, and how to choose another."""
  if not config.variant:
    return
  on_cpu = jax.default_backend() == "cpu"
  what = f"{config.steps:,} steps"
  if config.family == "noise":
    kind = "class-conditional " if config.conditional else ""
    size = (f"G {config.g_channels or round(256 * config.width)}, D "
            f"{config.d_channels or round(128 * config.width)} channels"
            if config.model == "resnet" else "" if config.model == "mlp"
            else f"channels min({config.channel_base} / resolution, {config.channel_max})"
            if config.channel_base and config.channel_max else f"width {config.width:g}")
    what += (f" of the {kind}{config.model}{f' ({size})' if size else ''}, {config.loss} loss"
             f"{f', {config.n_critic} D steps per G step' if config.n_critic > 1 else ''}"
             f"{_penalties(config)}, Adam betas ({config.b1:g}, {config.b2:g})")
    if config.conditional and config.transition_end:
      what += (f", the class faded in over steps {config.transition_start:,}-"
               f"{config.transition_end:,}")
    if config.augment != "none":
      what += f", augment {config.augment}"
  if config.variant == "cpu":
    why = "no accelerator found, so this is" if on_cpu else "this is"
    notice(f"jaxgan: {why} the config's CPU run: {what} (on a GPU or TPU the config's full "
           "variant runs; --config=FILE:full chooses it here). Set --config.steps to choose "
           "the length.")
    if config.get("cpu_note"):
      notice(f"jaxgan: {config.cpu_note}")
  else:
    where = ("a CPU (no accelerator found; --config=FILE:cpu is a run of minutes)" if on_cpu
             else f"{jax.device_count()} x {jax.devices()[0].device_kind}")
    notice(f"jaxgan: {where}: the config's full run, {what}. Set --config.steps to choose.")


def make_augment(config):
  """The step's augmentation (``config.augment``); adaptive ADA takes ``ada_target`` and
  ``ada_kimg`` from the config."""
  aug = augment_lib.parse(config.augment)
  if isinstance(aug, augment_lib.ADA) and aug.target is not None:
    aug = dataclasses.replace(aug, target=float(config.ada_target), kimg=float(config.ada_kimg))
  return aug


def eval_metrics_error(text) -> str | None:
  try:
    inception_lib.parse_metrics(str(text), EVAL_METRICS)
  except ValueError as e:
    return f"eval_metrics: {e}"
  return None

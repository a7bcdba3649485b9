"""pix2pix and CycleGAN as tasks of the training loop: configs, data, models, pictures and
measures (``jaxgan.train.train_and_evaluate`` runs them as it runs noise-to-image).

The configs' defaults are the reference's recipes (junyanz/pytorch-CycleGAN-and-pix2pix)
at the sizes a laptop trains; the experiments (``experiments/pix2pix.py``,
``experiments/cyclegan.py``) set the offline Fashion-MNIST tasks.

Measures, on the test split (every ``eval_every`` steps and at the end):

* pix2pix: ``l1`` (mean absolute error in [-1, 1]) and ``psnr`` (dB, pixels in [0, 1]) of
  the outputs against the targets, ``fd`` (the evaluation classifier's Frechet distance
  between the outputs and the test images; ``fd_floor``: real training images against
  them); for super-resolution the same three for bicubic interpolation
  (``bicubic_l1``, ``bicubic_psnr``, ``bicubic_fd``), the baseline to beat.
* CycleGAN on a labelled dataset's classes: ``ab_target`` (the share of translated test
  A images the evaluation classifier assigns to B's class; ``ab_floor``: the share of the
  untranslated ones), ``ab_fd`` (translated A against B's test images; ``ab_fd_floor``:
  B's training images against them), ``cycle_a`` (L1 of ``G_ba(G_ab(a))`` to ``a``), and
  the same the other way (``ba_*``, ``cycle_b``). TFDS ``cycle_gan/*`` has no classifier:
  the cycle L1s only.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import ml_collections
import numpy as np
import optax

from jaxgan import data as data_lib
from jaxgan import evaluate, rng
from jaxgan import translation as tr
from jaxgan import translation_data as td
from jaxgan.errors import ConfigError
from jaxgan.models import translation as nets
from jaxgan.task import Task

FAMILIES = ("pix2pix", "cyclegan")
GENERATORS = ("unet", "resnet")
LR_SCHEDULES = ("constant", "linear")
# Settings a checkpoint's run cannot change (the state's shapes, the data, the streams).
MUST_MATCH = ("family", "dataset", "task", "sr_factor", "hole", "domain_a", "domain_b",
              "image_size", "generator", "ngf", "ndf", "n_blocks", "num_downs", "n_layers_d",
              "norm_g", "norm_d", "dropout", "dropout_blocks", "pool_size", "seed")
MAY_CHANGE = ("loss", "l1_weight", "cycle_weight", "identity_weight", "lr_g", "lr_d", "b1",
              "b2", "batch_size", "lr_schedule", "decay_start")
FASHION_NAMES = ("T-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
                 "sneaker", "bag", "ankle boot")


def default_config(family: str) -> ml_collections.ConfigDict:
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
  c.steps = -1  # -1: cpu_steps on a CPU-only machine, full_steps on an accelerator
  c.full_steps = 200_000
  c.cpu_steps = 2000
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


def complete_config(given: dict, log: Callable[[str], None]) -> ml_collections.ConfigDict:
  """The family's ``default_config`` updated with ``given``, checked, and ``steps=-1``
  resolved for this machine (said on ``log``).

  Raises:
    jaxgan.errors.ConfigError: an unknown field (with the closest names) or a bad value.
  """
  out = default_config(given.get("family", "pix2pix"))
  unknown = [k for k in given if k not in out]
  if unknown:
    import difflib

    hints = [f"{k} (did you mean {', '.join(difflib.get_close_matches(k, list(out), 2))}?)"
             if difflib.get_close_matches(k, list(out), 2) else k for k in unknown]
    raise ConfigError(f"Unknown config field(s) for family={out.family}: {', '.join(hints)}. "
                      f"Known fields: {', '.join(sorted(out))}.")
  with out.ignore_type():
    out.update(given)
  cycle = out.family == "cyclegan"
  checks = [
      (out.task in td.PAIRED_TASKS, f"task must be one of {td.PAIRED_TASKS}, got {out.task!r}"),
      (out.generator in GENERATORS, f"generator must be one of {GENERATORS}, got "
       f"{out.generator!r}"),
      (out.norm_g in nets.NORMS and out.norm_d in nets.NORMS, f"norm_g and norm_d must be "
       f"one of {nets.NORMS}, got {out.norm_g!r}, {out.norm_d!r}"),
      (out.loss in tr.ADVERSARIAL, f"loss must be one of {tr.ADVERSARIAL} (the reference's "
       f"lsgan and vanilla), got {out.loss!r}"),
      (out.lr_schedule in LR_SCHEDULES, f"lr_schedule must be one of {LR_SCHEDULES}, got "
       f"{out.lr_schedule!r}"),
      (0 <= out.decay_start <= 1, f"decay_start must be in [0, 1] (a fraction of the run), "
       f"got {out.decay_start}"),
      (min(out.ngf, out.ndf, out.n_blocks, out.n_layers_d, out.batch_size, out.sr_factor,
           out.hole, out.grid_size, out.image_size) >= 1,
       "ngf, ndf, n_blocks, n_layers_d, batch_size, sr_factor, hole, grid_size and image_size "
       "must be >= 1"),
      (out.num_downs == 0 or out.num_downs >= 2, f"num_downs must be 0 (auto) or >= 2, got "
       f"{out.num_downs}"),
      (0 <= out.dropout < 1, f"dropout must be in [0, 1), got {out.dropout}"),
      (min(out.l1_weight, out.cycle_weight, out.identity_weight, out.pool_size) >= 0,
       "l1_weight, cycle_weight, identity_weight and pool_size must be >= 0"),
      (out.lr_g > 0 and out.lr_d > 0, "learning rates must be > 0"),
      (0 <= out.b1 < 1 and 0 <= out.b2 < 1, "b1 and b2 must be in [0, 1)"),
      (out.steps >= -1, f"steps must be >= 0, or -1 for auto; got {out.steps}"),
      (out.eval_every >= 0, "eval_every must be >= 0 (0: off)"),
      (out.eval_samples == -1 or out.eval_samples >= 2, "eval_samples must be >= 2 or -1"),
      (out.parallel in ("pmap", "shard_map"), f"parallel must be pmap or shard_map, got "
       f"{out.parallel!r}"),
      (out.num_devices >= 0, "num_devices must be >= 0 (0: all)"),
      (not cycle or out.domain_a != out.domain_b, "domain_a and domain_b must differ"),
  ]
  for every in ("log_every", "checkpoint_every", "sample_every", "keep_checkpoints"):
    checks.append((out[every] >= 1, f"{every} must be >= 1, got {out[every]}"))
  bad = [message for ok, message in checks if not ok]
  if bad:
    raise ConfigError("Invalid config: " + "; ".join(bad) + ".")
  if out.steps == -1:
    on_cpu = jax.default_backend() == "cpu"
    out.steps = out.cpu_steps if on_cpu else out.full_steps
    where = ("no accelerator found, so this is the short CPU run" if on_cpu else
             f"{jax.device_count()} x {jax.devices()[0].device_kind}: the full run")
    log(f"jaxgan: {where}: {out.steps:,} steps. Set --config.steps to choose.")
  return out


def optimizers(config) -> tuple[optax.GradientTransformation, optax.GradientTransformation]:
  """Adam for the generators and for the discriminators; ``linear``: constant until
  ``decay_start`` of the run, then linearly to 0 at its last step (the reference's
  ``--lr_policy linear``, stepped per step instead of per epoch)."""
  def rate(lr):
    if config.lr_schedule == "constant":
      return lr
    start = int(round(config.decay_start * config.steps))
    return optax.join_schedules(
        [optax.constant_schedule(lr), optax.linear_schedule(lr, 0.0,
                                                            max(1, config.steps - start))],
        [start])

  return (optax.adam(rate(config.lr_g), b1=config.b1, b2=config.b2),
          optax.adam(rate(config.lr_d), b1=config.b1, b2=config.b2))


def _num_downs(config, size: int) -> int:
  """The U-Net's depth: down to 1x1 (``ceil(log2 size)``) unless set."""
  return config.num_downs or max(2, math.ceil(math.log2(size)))


def make_generator(config, out_channels: int, size: int):
  if config.generator == "resnet":
    return nets.ResNetTranslator(out_channels, config.ngf, config.n_blocks, config.norm_g,
                                 config.dropout)
  return nets.UNetTranslator(out_channels, _num_downs(config, size), config.ngf, config.norm_g,
                             config.dropout,
                             None if config.dropout_blocks < 0 else config.dropout_blocks)


def make_discriminator(config):
  return nets.PatchDiscriminator(config.ndf, config.n_layers_d, config.norm_d)


def _for_display(images: np.ndarray, channels: int) -> np.ndarray:
  """``images`` in [-1, 1] with ``channels`` channels: the first (grey) channel repeated,
  or the first ``channels`` (an inpainting input's mask channel left out)."""
  if images.shape[-1] == channels:
    return images
  if channels == 3 and images.shape[-1] < 3:
    return np.repeat(images[..., :1], 3, axis=-1)
  return images[..., :channels]


def _rows(*columns: np.ndarray) -> np.ndarray:
  """Interleaves columns of images ``[N, ...]`` into rows: ``[N * len(columns), ...]``."""
  return np.stack(columns, axis=1).reshape(-1, *columns[0].shape[1:])


def _translated(G, state, images: np.ndarray, batch: int = 500) -> np.ndarray:
  out = [np.asarray(tr.translate(G, state, data_lib.to_model_range(images[i:i + batch])))
         for i in range(0, len(images), batch)]
  return np.concatenate(out)


def psnr(images, targets) -> float:
  """Peak signal-to-noise ratio in dB of images in [-1, 1] (pixels mapped to [0, 1]), from
  the mean squared error over the whole set."""
  mse = float(np.mean(np.square((np.asarray(images, np.float64)
                                 - np.asarray(targets, np.float64)) / 2.0)))
  return float("inf") if mse == 0 else 10.0 * math.log10(1.0 / mse)


def _eval_subset(n: int, config) -> np.ndarray:
  """Indices of the test examples an evaluation uses: all (at most 10,000), or
  ``eval_samples`` spread evenly over the split."""
  k = min(n, 10_000 if config.eval_samples == -1 else config.eval_samples)
  return np.linspace(0, n - 1, k).round().astype(int)


def _classifier(train: data_lib.ArraySource, check):
  return evaluate.load_classifier(train, log=lambda line: None, check=check)


def _fd(model, params, images, stats) -> float:
  _, features = evaluate.classify(model, params, images)
  return evaluate.frechet_distance(evaluate.gaussian_stats(features), stats)


def make_task(config, stop, log: Callable[[str], None]) -> Task:
  """The ``Task`` of a completed pix2pix or CycleGAN config."""
  return (_cyclegan_task if config.family == "cyclegan" else _pix2pix_task)(config, stop, log)


def _load(config, log) -> data_lib.ArraySource:
  name = config.dataset
  return data_lib.load(name, "train", data_dir=config.data_dir, log=log)


def _test_split(train_images: data_lib.ArraySource, log) -> data_lib.ArraySource:
  """The dataset's test split; without one, the training split (said once)."""
  try:
    return train_images.split("test")
  except data_lib.DataError as e:
    log(f"jaxgan: {train_images.description} has no test split ({str(e).splitlines()[0]}); "
        "the pictures and the measures use training images.")
    return train_images


def _facts(description: str, **shapes) -> dict:
  return {"data": description, "data_order": data_lib.ORDER, "noise": rng.SCHEME,
          "num_classes": 0, "step_state": {"g": [], "d": []},
          **{k: list(v) for k, v in shapes.items()}}


def _pix2pix_task(config, stop, log) -> Task:
  train_images = _load(config, log)
  stop.check()
  kw = {"factor": config.sr_factor, "hole": config.hole}
  pairs = td.make_pairs(train_images, config.task, **kw)
  test_images = _test_split(train_images, log)
  test_pairs = td.make_pairs(test_images, config.task, **kw)
  source_shape, image_shape = pairs.source_shape, pairs.image_shape
  G = make_generator(config, image_shape[-1], max(image_shape[:2]))
  D = make_discriminator(config)
  tx_g, tx_d = optimizers(config)
  facts = _facts(pairs.description, source_shape=source_shape, image_shape=image_shape)

  def init_states(key):
    return tr.create_pix2pix_states(key, G, D, tx_g, tx_d, source_shape=source_shape,
                                    image_shape=image_shape)

  def abstract_states():
    return jax.eval_shape(init_states, jax.random.key(0))

  shown = np.linspace(0, len(test_pairs) - 1, config.grid_size).round().astype(int)

  def grid(state_g, key):
    del key  # inference is deterministic
    source = test_pairs.source[shown]
    output = _translated(G, state_g, source)
    channels = image_shape[-1]
    return _rows(_for_display(data_lib.to_model_range(source), channels), output,
                 data_lib.to_model_range(test_pairs.images[shown])), 3

  subset = _eval_subset(len(test_pairs), config)
  measures = {}

  def evaluate_run(state_g, key, check, final):
    del key, final
    if not measures:  # once per run: the classifier, the test statistics, the baseline
      model, params = _classifier(train_images, check)
      _, test_features = evaluate.classify(model, params,
                                           data_lib.to_model_range(test_images.images))
      stats = evaluate.gaussian_stats(test_features)
      floor = np.random.default_rng(0).permutation(len(train_images))[:len(subset)]
      measures.update(model=model, params=params, stats=stats, fd_floor=_fd(
          model, params, data_lib.to_model_range(train_images.images[np.sort(floor)]), stats))
      if config.task == "super_resolution":
        small = td.low_resolution(test_pairs.images[subset], config.sr_factor)
        measures["bicubic"] = td.bicubic_upsample(small, config.sr_factor)
    check()
    target = data_lib.to_model_range(test_pairs.images[subset])
    out = _translated(G, state_g, test_pairs.source[subset])
    check()
    result = {"l1": float(np.mean(np.abs(out - target))), "psnr": psnr(out, target),
              "fd": _fd(measures["model"], measures["params"], out, measures["stats"]),
              "fd_floor": measures["fd_floor"]}
    if "bicubic" in measures:
      bicubic = measures["bicubic"]
      result.update(bicubic_l1=float(np.mean(np.abs(bicubic - target))),
                    bicubic_psnr=psnr(bicubic, target),
                    bicubic_fd=_fd(measures["model"], measures["params"], bicubic,
                                   measures["stats"]))
    return result

  def summary(step, ev):
    lines = (f"jaxgan: pix2pix ({config.task}) at step {step}, on {len(subset):,} test pairs "
             f"of {test_pairs.description}:\n"
             f"  L1 {ev['l1']:.4f}, PSNR {ev['psnr']:.2f} dB, Frechet distance {ev['fd']:.2f} "
             f"(real train vs test images: {ev['fd_floor']:.2f}, the floor)")
    if "bicubic_psnr" in ev:
      verdict = "above" if ev["psnr"] > ev["bicubic_psnr"] else "NOT above"
      lines += (f"\n  bicubic upscaling: L1 {ev['bicubic_l1']:.4f}, PSNR "
                f"{ev['bicubic_psnr']:.2f} dB, Frechet distance {ev['bicubic_fd']:.2f} "
                f"(the generator's PSNR is {verdict} bicubic's)")
    return lines

  labelled = train_images.labels is not None
  return Task(
      config=config, facts=facts, G=G, D=D,
      make_step=lambda axis_name: tr.make_pix2pix_step(G, D, config.loss,
                                                       l1_weight=config.l1_weight,
                                                       axis_name=axis_name),
      init_states=init_states, abstract_states=abstract_states,
      batches=lambda start: td.paired_batches(pairs, config.batch_size, config.seed, start),
      grid=grid, evaluate=evaluate_run if labelled else None, summary=summary,
      must_match=MUST_MATCH, may_change=MAY_CHANGE,
      defaults=default_config("pix2pix").to_dict())


def _cyclegan_task(config, stop, log) -> Task:
  if config.dataset.startswith("cycle_gan/"):
    domains = td.load_cycle_gan(config.dataset, "train", size=config.image_size,
                                data_dir=config.data_dir)
    test = td.load_cycle_gan(config.dataset, "test", size=config.image_size,
                             data_dir=config.data_dir)
    train_images = None
  else:
    train_images = _load(config, log)
    stop.check()
    names = None
    if train_images.num_classes == 10 and "ashion" in train_images.description:
      names = (FASHION_NAMES[config.domain_a], FASHION_NAMES[config.domain_b])
    domains = td.class_domains(train_images, config.domain_a, config.domain_b, names)
    test = td.class_domains(_test_split(train_images, log), config.domain_a, config.domain_b,
                            names)
  shape_a, shape_b = domains.shape_a, domains.shape_b
  size = max(*shape_a[:2], *shape_b[:2])
  G = {"ab": make_generator(config, shape_b[-1], size),
       "ba": make_generator(config, shape_a[-1], size)}
  D = {"a": make_discriminator(config), "b": make_discriminator(config)}
  tx_g, tx_d = optimizers(config)
  facts = _facts(domains.description, shape_a=shape_a, shape_b=shape_b)
  step_config = tr.make_cyclegan_step(G["ab"], G["ba"], D["a"], D["b"],
                                      pool_size=config.pool_size).config
  keeps = step_config.step_state_init(shape_a, shape_b)
  facts["step_state"] = {"g": [], "d": sorted({*keeps[0], *keeps[1]})}

  def make_step(axis_name):
    return tr.make_cyclegan_step(G["ab"], G["ba"], D["a"], D["b"], config.loss,
                                 cycle_weight=config.cycle_weight,
                                 identity_weight=config.identity_weight,
                                 pool_size=config.pool_size, axis_name=axis_name)

  def init_states(key):
    states = tr.create_cyclegan_states(key, G["ab"], G["ba"], D["a"], D["b"], tx_g, tx_d,
                                       shape_a=shape_a, shape_b=shape_b)
    return step_config.prepare_states(*states)

  def abstract_states():
    return jax.eval_shape(init_states, jax.random.key(0))

  half = max(1, config.grid_size // 2)
  shown_a = np.linspace(0, len(test.a) - 1, half).round().astype(int)
  shown_b = np.linspace(0, len(test.b) - 1, half).round().astype(int)

  def grid(state_g, key):
    del key
    rows = []
    for images, forward, back in ((test.a.images[shown_a], "ab", "ba"),
                                  (test.b.images[shown_b], "ba", "ab")):
      x = data_lib.to_model_range(images)
      y = _translated(G[forward], state_g[forward], images)
      z = np.asarray(tr.translate(G[back], state_g[back], y))
      rows.append(_rows(x, y, z))
    channels = max(shape_a[-1], shape_b[-1])
    return np.concatenate([_for_display(r, channels) for r in rows]), 3

  sub_a, sub_b = _eval_subset(len(test.a), config), _eval_subset(len(test.b), config)
  measures = {}

  def evaluate_run(state_g, key, check, final):
    del key, final
    labelled = train_images is not None
    if labelled and not measures:
      model, params = _classifier(train_images, check)
      measures.update(model=model, params=params)
      for name, split, train_split, sub in (("a", test.a, domains.a, sub_a),
                                            ("b", test.b, domains.b, sub_b)):
        _, feats = evaluate.classify(model, params, data_lib.to_model_range(split.images))
        stats = evaluate.gaussian_stats(feats)
        floor = np.sort(np.random.default_rng(0).permutation(len(train_split))[:len(sub)])
        measures[f"stats_{name}"] = stats
        measures[f"fd_floor_{name}"] = _fd(model, params, data_lib.to_model_range(
            train_split.images[floor]), stats)
    result = {}
    for src, dst, images, sub, cls in (("a", "b", test.a.images, sub_a, config.domain_b),
                                       ("b", "a", test.b.images, sub_b, config.domain_a)):
      check()
      forward, back = src + dst, dst + src
      x = data_lib.to_model_range(images[sub])
      y = _translated(G[forward], state_g[forward], images[sub])
      z = np.asarray(tr.translate(G[back], state_g[back], y))
      result[f"cycle_{src}"] = float(np.mean(np.abs(z - x)))
      if labelled:
        model, params = measures["model"], measures["params"]
        translated, _ = evaluate.classify(model, params, y)
        untranslated, _ = evaluate.classify(model, params, x)
        result[f"{forward}_target"] = float(np.mean(translated == cls))
        result[f"{forward}_floor"] = float(np.mean(untranslated == cls))
        result[f"{forward}_fd"] = _fd(model, params, y, measures[f"stats_{dst}"])
        result[f"{forward}_fd_floor"] = measures[f"fd_floor_{dst}"]
    return result

  def summary(step, ev):
    lines = [f"jaxgan: CycleGAN at step {step} on {len(sub_a):,} + {len(sub_b):,} test images "
             f"of {test.description}:"]
    for src, dst in (("a", "b"), ("b", "a")):
      key = src + dst
      line = f"  {src.upper()} -> {dst.upper()}:"
      if f"{key}_target" in ev:
        line += (f" {100 * ev[f'{key}_target']:.1f}% classified as {dst.upper()} "
                 f"(untranslated: {100 * ev[f'{key}_floor']:.1f}%), Frechet distance to "
                 f"{dst.upper()} {ev[f'{key}_fd']:.2f} (real: {ev[f'{key}_fd_floor']:.2f}),")
      line += f" cycle L1 {ev[f'cycle_{src}']:.4f}"
      lines.append(line)
    return "\n".join(lines)

  def postfix(metrics):
    return {"d_loss": f"{metrics['d_loss']:.3f}", "g_loss": f"{metrics['g_loss']:.3f}",
            "cycle": f"{metrics['cycle_a'] + metrics['cycle_b']:.3f}"}

  return Task(
      config=config, facts=facts, G=G, D=D, make_step=make_step, init_states=init_states,
      abstract_states=abstract_states,
      batches=lambda start: td.unpaired_batches(domains, config.batch_size, config.seed,
                                                start),
      grid=grid, evaluate=evaluate_run, summary=summary, must_match=MUST_MATCH,
      may_change=MAY_CHANGE, defaults=default_config("cyclegan").to_dict(), postfix=postfix)


def translate_file(workdir: str, path_in: str, path_out: str, direction: str = "ab"
                   ) -> tuple[np.ndarray, dict]:
  """Translates uint8 images ``[N, H, W, C]`` in ``path_in`` (.npy) with the newest
  checkpoint in ``workdir``; writes uint8 ``[N, H, W, C_out]`` to ``path_out``.

  Inference mode (BatchNorm's running statistics, no dropout): the same input gives the
  same output, image by image. ``direction``: CycleGAN's ``ab`` or ``ba`` (pix2pix has one).

  Raises:
    jaxgan.errors.ConfigError: a missing or unreadable file, or images of another shape or
      dtype than the run's (the message says which it needs).
    jaxgan.checkpoint.CheckpointError: no checkpoint in ``workdir``.
  """
  import os

  from jaxgan import checkpoint as ckpt_lib
  from jaxgan import parallel

  if not os.path.exists(path_in):
    raise ConfigError(f"--translate_in: no file {path_in}.")
  try:
    images = np.load(path_in, allow_pickle=False)
  except Exception as e:  # noqa: BLE001 - any unreadable file is the caller's input
    raise ConfigError(f"--translate_in: {path_in} is not a .npy array ({type(e).__name__}: "
                      f"{e}).") from e
  directory = os.path.join(os.path.abspath(workdir), "checkpoints")
  if not os.path.isdir(directory):
    raise ckpt_lib.CheckpointError(f"No checkpoint in {workdir}: train first, or pass the "
                                   "workdir of a run.")
  checkpoints = ckpt_lib.Checkpoints(directory, log=lambda line: None)
  try:
    step = checkpoints.latest_step()
    if step is None:
      raise ckpt_lib.CheckpointError(f"No complete checkpoint in {directory} yet.")
    meta = checkpoints.read_meta(step)
    config = complete_config(meta["config"], lambda line: None)
    if config.family == "cyclegan":
      if direction not in ("ab", "ba"):
        raise ConfigError(f"--direction must be ab or ba, got {direction!r}.")
      shapes = {"ab": meta["shape_a"], "ba": meta["shape_b"]}
      out_shapes = {"ab": meta["shape_b"], "ba": meta["shape_a"]}
      size = max(*meta["shape_a"][:2], *meta["shape_b"][:2])
      G = {"ab": make_generator(config, out_shapes["ab"][-1], size),
           "ba": make_generator(config, out_shapes["ba"][-1], size)}
      D = {"a": make_discriminator(config), "b": make_discriminator(config)}
      tx_g, tx_d = optimizers(config)
      step_config = tr.make_cyclegan_step(G["ab"], G["ba"], D["a"], D["b"],
                                          pool_size=config.pool_size).config
      abstract = jax.eval_shape(lambda k: step_config.prepare_states(*tr.create_cyclegan_states(
          k, G["ab"], G["ba"], D["a"], D["b"], tx_g, tx_d, shape_a=meta["shape_a"],
          shape_b=meta["shape_b"])), jax.random.key(0))
      in_shape, module = tuple(shapes[direction]), G[direction]
    else:
      source_shape, image_shape = meta["source_shape"], meta["image_shape"]
      module = make_generator(config, image_shape[-1], max(image_shape[:2]))
      tx_g, tx_d = optimizers(config)
      abstract = jax.eval_shape(lambda k: tr.create_pix2pix_states(
          k, module, make_discriminator(config), tx_g, tx_d, source_shape=source_shape,
          image_shape=image_shape), jax.random.key(0))
      in_shape = tuple(source_shape)
    _check_translate_input(images, in_shape, path_in)
    restored = checkpoints.restore_latest(ckpt_lib.run_target(
        abstract, parallel.data_mesh(jax.devices()[:1])))
  finally:
    checkpoints.close()
  _, arrays, meta = restored
  state = arrays["g"][direction] if config.family == "cyclegan" else arrays["g"]
  out = evaluate.to_uint8(_translated(module, state, images))
  os.makedirs(os.path.dirname(os.path.abspath(path_out)), exist_ok=True)
  with open(path_out + ".tmp", "wb") as f:
    np.save(f, out)
  os.replace(path_out + ".tmp", path_out)
  return out, meta


def _check_translate_input(images: np.ndarray, shape: tuple, path: str) -> None:
  if images.dtype != np.uint8:
    raise ConfigError(f"--translate_in: {path} holds {images.dtype} values; it must be uint8 "
                      f"pixels [N, {', '.join(map(str, shape))}] in 0..255 (e.g. "
                      "np.round((x + 1) * 127.5).astype(np.uint8) for images in [-1, 1]).")
  if images.ndim != 4 or tuple(images.shape[1:]) != shape:
    raise ConfigError(f"--translate_in: {path} has shape {list(images.shape)}; this run "
                      f"translates uint8 images [N, {', '.join(map(str, shape))}].")
  if len(images) == 0:
    raise ConfigError(f"--translate_in: {path} holds no images.")


"""What the pix2pix and CycleGAN tasks share: their networks, optimizers, data, pictures and
measures, and translating files with a trained generator (``translate_file``).

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
import os

import jax
import numpy as np
import optax

from jaxgan import rng
from jaxgan.data import order as order_lib
from jaxgan.data import sources
from jaxgan.errors import ConfigError
from jaxgan.evaluators import classifier as classifier_lib
from jaxgan.evaluators import measures as measures_lib
from jaxgan.evaluators import pictures
from jaxgan.models import translation as nets
from jaxgan.steps import cyclegan as cyclegan_step
from jaxgan.steps import pix2pix as pix2pix_step
from jaxgan.training import checkpoint as ckpt_lib
from jaxgan.training.config import complete_translation_config

FASHION_NAMES = ("T-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
                 "sneaker", "bag", "ankle boot")


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


def num_downs(config, size: int) -> int:
  """The U-Net's depth: down to 1x1 (``ceil(log2 size)``) unless set."""
  return config.num_downs or max(2, math.ceil(math.log2(size)))


def make_generator(config, out_channels: int, size: int):
  if config.generator == "resnet":
    return nets.ResNetTranslator(out_channels, config.ngf, config.n_blocks, config.norm_g,
                                 config.dropout)
  return nets.UNetTranslator(out_channels, num_downs(config, size), config.ngf, config.norm_g,
                             config.dropout,
                             None if config.dropout_blocks < 0 else config.dropout_blocks)


def make_discriminator(config):
  return nets.PatchDiscriminator(config.ndf, config.n_layers_d, config.norm_d)


def display_images(images: np.ndarray, channels: int) -> np.ndarray:
  """``images`` in [-1, 1] with ``channels`` channels: the first (grey) channel repeated,
  or the first ``channels`` (an inpainting input's mask channel left out)."""
  if images.shape[-1] == channels:
    return images
  if channels == 3 and images.shape[-1] < 3:
    return np.repeat(images[..., :1], 3, axis=-1)
  return images[..., :channels]


def picture_rows(*columns: np.ndarray) -> np.ndarray:
  """Interleaves columns of images ``[N, ...]`` into rows: ``[N * len(columns), ...]``."""
  return np.stack(columns, axis=1).reshape(-1, *columns[0].shape[1:])


def translate_batched(G, state, images: np.ndarray, batch: int = 500) -> np.ndarray:
  out = [np.asarray(pix2pix_step.translate(G, state, sources.to_model_range(images[i:i + batch])))
         for i in range(0, len(images), batch)]
  return np.concatenate(out)


def psnr(images, targets) -> float:
  """Peak signal-to-noise ratio in dB of images in [-1, 1] (pixels mapped to [0, 1]), from
  the mean squared error over the whole set."""
  mse = float(np.mean(np.square((np.asarray(images, np.float64)
                                 - np.asarray(targets, np.float64)) / 2.0)))
  return float("inf") if mse == 0 else 10.0 * math.log10(1.0 / mse)


def eval_subset(n: int, config) -> np.ndarray:
  """Indices of the test examples an evaluation uses: all (at most 10,000), or
  ``eval_samples`` spread evenly over the split."""
  k = min(n, 10_000 if config.eval_samples == -1 else config.eval_samples)
  return np.linspace(0, n - 1, k).round().astype(int)


def make_classifier(train: sources.ArraySource, check):
  return classifier_lib.load_classifier(train, log=lambda line: None, check=check)


def classifier_fd(model, params, images, stats) -> float:
  _, features = classifier_lib.classify(model, params, images)
  return measures_lib.frechet_distance(measures_lib.gaussian_stats(features), stats)


def load_data(config, log) -> sources.ArraySource:
  """The training split in memory: the translation tasks pair or split whole sets."""
  name = config.dataset
  return sources.in_memory(sources.load(name, "train", data_dir=config.data_dir, log=log))


def test_split(train_images: sources.ArraySource, log) -> sources.ArraySource:
  """The dataset's test split; without one, the training split (said once)."""
  try:
    return train_images.split("test")
  except sources.DataError as e:
    log(f"jaxgan: {train_images.description} has no test split ({str(e).splitlines()[0]}); "
        "the pictures and the measures use training images.")
    return train_images


def run_facts(description: str, **shapes) -> dict:
  return {"data": description, "data_order": order_lib.ORDER, "noise": rng.SCHEME,
          "num_classes": 0, "step_state": {"g": [], "d": []},
          **{k: list(v) for k, v in shapes.items()}}


def translate_file(workdir: str, path_in: str, path_out: str, direction: str = "ab"
                   ) -> tuple[np.ndarray, dict]:
  """Translates uint8 images ``[N, H, W, C]`` in ``path_in`` (.npy) with the newest
  checkpoint in ``workdir``; writes uint8 ``[N, H, W, C_out]`` to ``path_out``.

  Inference mode (BatchNorm's running statistics, no dropout): the same input gives the
  same output, image by image. ``direction``: CycleGAN's ``ab`` or ``ba`` (pix2pix has one).

  Raises:
    jaxgan.errors.ConfigError: a missing or unreadable file, or images of another shape or
      dtype than the run's (the message says which it needs).
    jaxgan.training.checkpoint.CheckpointError: no checkpoint in ``workdir``.
  """

  if not os.path.exists(path_in):
    raise ConfigError(f"--translate_in: no file {path_in}.")
  try:
    images = np.load(path_in, allow_pickle=False)
  except Exception as e:  # noqa: BLE001 - any unreadable file is the caller's input
    raise ConfigError(f"--translate_in: {path_in} is not a .npy array ({type(e).__name__}: "
                      f"{e}).") from e
  def target_for(meta):
    config = complete_translation_config(meta["config"])
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
      step = cyclegan_step.make_cyclegan_step(G["ab"], G["ba"], D["a"], D["b"],
                                              pool_size=config.pool_size)
      abstract = jax.eval_shape(lambda k: step.prepare_states(
          *cyclegan_step.create_cyclegan_states(
              k, G["ab"], G["ba"], D["a"], D["b"], tx_g, tx_d, shape_a=meta["shape_a"],
              shape_b=meta["shape_b"])), jax.random.key(0))
      in_shape, module = tuple(shapes[direction]), G[direction]
    else:
      source_shape, image_shape = meta["source_shape"], meta["image_shape"]
      module = make_generator(config, image_shape[-1], max(image_shape[:2]))
      tx_g, tx_d = optimizers(config)
      abstract = jax.eval_shape(lambda k: pix2pix_step.create_pix2pix_states(
          k, module, make_discriminator(config), tx_g, tx_d, source_shape=source_shape,
          image_shape=image_shape), jax.random.key(0))
      in_shape = tuple(source_shape)
    _check_translate_input(images, in_shape, path_in)
    return abstract, (config, module)

  arrays, meta, (config, module) = ckpt_lib.restore_newest(workdir, target_for,
                                                          log=lambda line: None)
  state = arrays["g"][direction] if config.family == "cyclegan" else arrays["g"]
  out = pictures.to_uint8(translate_batched(module, state, images))
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

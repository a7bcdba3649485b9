"""Measures of a generator in the space of a small classifier of its dataset.

* A small classifier per dataset, trained in JAX once and cached on disk
  (``load_classifier``); its 128-d feature layer is the space of the Frechet distance
  (``frechet_distance``, FID's formula in a feature space fitted to the dataset instead of
  Inception's), and its predictions give class coverage (classes receiving at least 2% of
  the samples) and the KL divergence of the predicted-class histogram to uniform, the
  usual measures of mode collapse on MNIST-like data.
* For a class-conditional generator: label accuracy (the classifier's class for
  ``G(z, y)`` against ``y``), intra-class FD (the mean over classes of each class's FD), and
  the classification accuracy score (a classifier trained only on generated images, tested
  on real ones).

"""

from __future__ import annotations

import functools
import hashlib
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import serialization

from jaxgan import cpu
from jaxgan.data import order as order_lib
from jaxgan.data import pipeline, sources
from jaxgan.errors import ConfigError
from jaxgan.evaluators.cache import file_lock, read_cached
from jaxgan.evaluators.measures import (
  class_coverage,
  collapsed_classes,
  diversity_ratios,
  frechet_distance,
  gaussian_stats,
  intra_class_fd,
  kl_to_uniform,
  label_accuracy,
  mode_coverage,
)
from jaxgan.evaluators.pictures import to_uint8

CLASSIFIER_VERSION = 1  # part of the cache key: bump when the module or its training changes

# A class whose samples vary less than this share of the real class's variance (in the
# classifier's feature space) has collapsed. On Fashion-MNIST at 2,000 samples, real images
# score 0.81 or more in every class, one image per class repeated 0, two 0.14 in the
# lowest class; the healthy CPU runs of every model 0.42 or more in their lowest class,
# and the rows of a conditional StyleGAN2 that repeat one shape 0.21-0.35 (BUILD_NOTES.md,
# "Collapse"; python benchmarks/collapse_calibration.py).
COLLAPSE_THRESHOLD = 0.4


class Classifier(nn.Module):
  """A small CNN: two stride-2 convolutions, a 128-unit feature layer, logits.

  ``__call__`` returns ``(logits, features)``; ``features`` (the ReLU of the 128-unit
  layer) is the space the Frechet distance is measured in.
  """

  num_classes: int = 10
  features: int = 128

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    x = nn.relu(nn.Conv(32, (3, 3), strides=2)(x))
    x = nn.relu(nn.Conv(64, (3, 3), strides=2)(x))
    features = nn.relu(nn.Dense(self.features)(x.reshape(x.shape[0], -1)))
    return nn.Dense(self.num_classes)(features), features


def train_classifier(source, *, steps: int = 1500, batch_size: int = 128, seed: int = 0,
                     learning_rate: float = 1e-3, check=None, progress: bool = True) -> dict:
  """Trains ``Classifier`` on a labelled ``jaxgan.data.ArraySource``; returns its params
  (with a progress bar unless ``progress`` is false).

  ``check``, when given, is called before every step; it raises to stop the training
  (e.g. on SIGTERM), and nothing is returned or cached then.
  """
  if not source.num_classes:
    raise ConfigError(f"{source.description} has no labels; the evaluation classifier needs "
                      "them.")
  num_classes = source.num_classes
  model = Classifier(num_classes=num_classes)
  tx = optax.adam(learning_rate)
  params = model.init(jax.random.key(seed), jnp.zeros((1, *source.image_shape)))["params"]
  opt_state = tx.init(params)

  @functools.partial(jax.jit, compiler_options=cpu.compiler_options())
  def step(params, opt_state, images, labels):
    def loss_fn(params):
      logits, _ = model.apply({"params": params}, images)
      return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    grads = jax.grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  from tqdm import tqdm

  batches = pipeline.batches(source, batch_size, seed)
  for _ in tqdm(range(steps), desc="classifier", unit="step", leave=False,
                disable=not progress or jax.process_index() != 0):
    if check is not None:
      check()
    _, batch = next(batches)
    params, opt_state = step(params, opt_state, batch["image"], batch["label"])
  return jax.device_get(params)


def _slug(text: str) -> str:
  return "".join(c if c.isalnum() else "_" for c in text).strip("_")[:60]


def load_classifier(source, cache_dir: str | None = None, log=print, steps: int = 1500,
                    check=None, progress: bool = True) -> tuple[Classifier, dict]:
  """The classifier for ``source``'s dataset, trained once (``steps`` Adam steps of 128
  examples) and cached on disk.

  The cache file is keyed by the dataset (description, size, label count), ``steps`` and
  ``CLASSIFIER_VERSION``; default directory ``$JAXGAN_CACHE_DIR`` or
  ``~/.cache/jaxgan``. An unreadable cache file is replaced. ``check``: as in
  ``train_classifier``.
  """
  cache_dir = cache_dir or os.environ.get("JAXGAN_CACHE_DIR") or os.path.join(
      os.path.expanduser("~"), ".cache", "jaxgan")
  num_classes = source.num_classes
  # The data order decides the training batches, so it is part of the key too; a folder's
  # fingerprint changes when its files do.
  key = (f"{source.description}|{len(source)}|{num_classes}|{steps}|v{CLASSIFIER_VERSION}|"
         f"{order_lib.ORDER}" + (f"|{source.fingerprint}" if source.fingerprint else ""))
  digest = hashlib.sha256(key.encode()).hexdigest()[:12]
  path = os.path.join(cache_dir, "classifiers", f"{_slug(source.description)}-{digest}.msgpack")
  model = Classifier(num_classes=max(num_classes, 1))
  target = jax.device_get(model.init(jax.random.key(0), jnp.zeros((1, *source.image_shape)))[
      "params"])
  cached = read_cached(path, target, log)
  if cached is not None:
    return model, cached
  os.makedirs(os.path.dirname(path), exist_ok=True)
  # One process trains, the others wait for its file: runs started together (a sweep of
  # experiments, the test workers) do not each train the same classifier.
  with file_lock(path + ".lock", log, check):
    cached = read_cached(path, target, log, quiet=True)
    if cached is not None:
      return model, cached
    log(f"jaxgan: training the evaluation classifier on {source.description} (once; cached "
        f"in {path}).")
    params = train_classifier(source, steps=steps, check=check, progress=progress)
    with open(path + ".tmp", "wb") as f:
      f.write(serialization.to_bytes(params))
    os.replace(path + ".tmp", path)
  return model, params


@functools.cache
def _classify_fn(model):
  def apply(params, images):
    logits, features = model.apply({"params": params}, images)
    return jnp.argmax(logits, -1), features

  return jax.jit(apply, compiler_options=cpu.compiler_options())


def classify(model: Classifier, params: dict, images, batch_size: int = 1000
             ) -> tuple[np.ndarray, np.ndarray]:
  """``(predicted classes [N], float64 features [N, 128])`` of images in [-1, 1]."""
  images = np.asarray(images, np.float32)
  preds, feats = [], []
  for i in range(0, len(images), batch_size):
    chunk = images[i:i + batch_size]
    n = len(chunk)
    if n < batch_size and len(images) > batch_size:  # pad: one compiled shape
      chunk = np.concatenate([chunk, np.zeros((batch_size - n, *chunk.shape[1:]), np.float32)])
    p, f = jax.device_get(_classify_fn(model)(params, chunk))
    preds.append(p[:n])
    feats.append(f[:n])
  return np.concatenate(preds), np.concatenate(feats).astype(np.float64)


def stacked_modes(model: Classifier, params: dict, images) -> np.ndarray:
  """The modes ``100 c0 + 10 c1 + c2`` of stacked RGB images in [-1, 1] (``[N, H, W, 3]``),
  each channel classified by the base dataset's classifier."""
  images = np.asarray(images, np.float32)
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f"Stacked images are [N, H, W, 3], got {images.shape}.")
  c = [classify(model, params, images[..., k:k + 1])[0] for k in range(3)]
  return 100 * c[0] + 10 * c[1] + c[2]


def stacked_coverage(images, base_train, base_test, *, cache_dir: str | None = None,
                     log=print, progress: bool = True) -> dict[str, float]:
  """Modes covered (of 1,000) and KL to uniform of stacked images (``[N, H, W, 3]`` in
  [-1, 1]), each channel classified by the classifier of ``base_train`` (trained once,
  cached), beside the same figures for ``N`` real stacked triples of ``base_test`` (the
  floor this classifier allows: its mistakes spread the real modes' histogram)."""
  model, params = load_classifier(base_train, cache_dir, log, progress=progress)
  covered, kl = mode_coverage(stacked_modes(model, params, images),
                                       sources.STACKED_MODES)
  real = sources.Stacked.of(base_test, n=len(images), seed=1)
  real_images = sources.to_model_range(sources.sample(real, len(real))["image"])
  floor, floor_kl = mode_coverage(stacked_modes(model, params, real_images),
                                           sources.STACKED_MODES)
  return {"modes": covered, "kl": kl, "floor_modes": floor, "floor_kl": floor_kl,
          "samples": len(images)}


def classifier_accuracy(model: Classifier, params: dict, images, labels) -> float:
  """Top-1 accuracy of a classifier on ``images`` in [-1, 1] with ``labels``."""
  predictions, _ = classify(model, params, images)
  return label_accuracy(predictions, labels)


def classification_accuracy_score(images, labels, test, *, steps: int = 500, seed: int = 0,
                                  check=None, progress: bool = True) -> float:
  """CAS (Ravuri & Vinyals, 2019): the test accuracy of a classifier trained only on
  ``images`` (in [-1, 1], with their ``labels``), on the real ``test`` split.

  The classifier is ``Classifier`` trained as the evaluation classifier is (Adam 1e-3,
  batches of 128), for ``steps`` steps. Fed real training images, it gives the score of
  real data: the ceiling to compare with.
  """
  source = sources.ArraySource(to_uint8(images), np.asarray(labels, np.int32),
                                "images for the classification accuracy score")
  params = train_classifier(source, steps=steps, seed=seed, check=check, progress=progress)
  model = Classifier(num_classes=source.num_classes)
  real = sources.sample(test)
  return classifier_accuracy(model, params, sources.to_model_range(real["image"]),
                             real["label"])


def floor_index(num_train: int, num_samples: int) -> np.ndarray:
  """The training images (sorted indices) whose measures are the floor: a fixed draw of
  ``min(num_samples, num_train)``."""
  return np.sort(np.random.default_rng(0).permutation(num_train)[:min(num_samples, num_train)])


class Evaluator:
  """Frechet distance, class coverage and KL of generated images against a dataset; for a
  conditional generator also label accuracy, intra-class FD and (on request) CAS.

  Fits the test split's feature statistics once (per class too). ``floors`` are the
  measures of ``num_samples`` real training images against the test split: what a perfect
  generator would score with this many samples (FD is biased upwards for small sample
  sizes), and the classifier's accuracy on the real test images.

  Args:
    train: the training split (the classifier is trained on it, or read from the cache).
    test: the test split.
    num_samples: how many generated images each evaluation uses (and the floor's size).
    cache_dir: classifier cache (default ``$JAXGAN_CACHE_DIR`` or ``~/.cache/jaxgan``).
    log: where the one-time training notice goes.
    check: called between the classifier's training steps; raises to stop them.
  """

  def __init__(self, train, test, *, num_samples: int = 10_000, cache_dir: str | None = None,
               log=print, check=None, progress: bool = True):
    self.model, self.params = load_classifier(train, cache_dir, log, check=check,
                                              progress=progress)
    self.progress = progress  # the classifiers' progress bars
    self.num_classes = self.model.num_classes
    self.num_samples = num_samples
    self.train, self.test, self.check = train, test, check
    real = sources.sample(test)  # a bounded draw of a large split
    test_labels = real.get("label")
    test_predictions, test_features = classify(self.model, self.params,
                                               sources.to_model_range(real["image"]))
    self.test_stats = gaussian_stats(test_features)
    self.class_stats = {}
    if test_labels is not None:
      self.class_stats = {c: gaussian_stats(test_features[test_labels == c])
                          for c in range(self.num_classes) if np.sum(test_labels == c) >= 2}
    index = floor_index(len(train), num_samples)
    floor = train.get(index)
    self.floor_images = sources.to_model_range(floor["image"])
    self.floor_labels = floor.get("label")
    floor = self(self.floor_images, self.floor_labels)
    self.floor = floor["fd"]
    self.floors = {"fd_floor": self.floor}
    if "diversity" in floor:
      self.floors["diversity_real"] = floor["diversity"]
    if self.floor_labels is not None and test_labels is not None:
      self.floors["intra_fd_floor"] = floor["intra_fd"]
      self.floors["classifier_accuracy"] = label_accuracy(test_predictions, test_labels)
    self._cas_real: dict[int, float] = {}

  def __call__(self, images, labels=None) -> dict:
    """``{"fd", "coverage", "kl"}`` of ``images [N, H, W, C]`` in [-1, 1]; with the classes
    ``labels [N]`` they were generated for, also ``label_accuracy`` and ``intra_fd``.

    With a labelled test split, also the diversity of each class against the real class's
    (``diversity_ratios``; by ``labels``, or by the predicted class without them, over the
    classes with at least 2% of the samples): ``diversity`` (their mean),
    ``diversity_min`` and ``collapsed`` (the classes below ``COLLAPSE_THRESHOLD``, a list).
    """
    predictions, features = classify(self.model, self.params, images)
    out = {"fd": frechet_distance(gaussian_stats(features), self.test_stats),
           "coverage": class_coverage(predictions, self.num_classes),
           "kl": kl_to_uniform(predictions, self.num_classes)}
    if labels is not None and self.class_stats:
      out["label_accuracy"] = label_accuracy(predictions, labels)
      out["intra_fd"] = intra_class_fd(features, labels, self.class_stats)
    if self.class_stats:
      by, least = (labels, 2) if labels is not None else (predictions,
                                                           max(2, len(predictions) // 50))
      ratios = diversity_ratios(features, by, self.class_stats, least)
      if ratios:
        out["diversity"] = float(np.mean(list(ratios.values())))
        out["diversity_min"] = min(ratios.values())
        out["collapsed"] = collapsed_classes(ratios, COLLAPSE_THRESHOLD)
    return out

  def cas(self, images, labels, steps: int = 500) -> dict[str, float]:
    """``{"cas", "cas_real"}``: the classification accuracy score of ``images`` and, for
    comparison, of as many real training images (computed once per ``steps``)."""
    if steps not in self._cas_real:
      self._cas_real[steps] = classification_accuracy_score(
          self.floor_images, self.floor_labels, self.test, steps=steps, check=self.check,
          progress=self.progress)
    return {"cas": classification_accuracy_score(images, labels, self.test, steps=steps,
                                                 check=self.check, progress=self.progress),
            "cas_real": self._cas_real[steps]}

"""Measures and pictures of a generator.

* Sample grids (``image_grid``, ``save_image``).
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

import contextlib
import functools
import hashlib
import math
import os
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import serialization

from jaxgan import cpu
from jaxgan import data as data_lib
from jaxgan.errors import ConfigError


def to_uint8(images) -> np.ndarray:
  """Images in [-1, 1] -> uint8 in [0, 255] (values outside the range are clipped)."""
  images = np.asarray(images, np.float32)
  return np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def image_grid(images, columns: int | None = None, padding: int = 2) -> np.ndarray:
  """Tiles ``[N, H, W, C]`` images in [-1, 1] into one uint8 picture.

  Args:
    images: ``N`` images with 1 or 3 channels.
    columns: images per row (default: a square grid).
    padding: pixels of black between images.

  Returns:
    uint8 ``[rows * (H + padding) + padding, columns * (W + padding) + padding, C]``.
  """
  images = to_uint8(images)
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ConfigError(f"image_grid takes images [N, H, W, C] with C = 1 or 3, got shape "
                      f"{images.shape}.")
  n, h, w, c = images.shape
  columns = columns or math.ceil(math.sqrt(n))
  rows = math.ceil(n / columns)
  grid = np.zeros((rows * (h + padding) + padding, columns * (w + padding) + padding, c),
                  np.uint8)
  for i, image in enumerate(images):
    r, col = divmod(i, columns)
    top, left = padding + r * (h + padding), padding + col * (w + padding)
    grid[top:top + h, left:left + w] = image
  return grid


# The smallest side, in screen pixels, of one image in a picture written for people to look
# at: 28x28 MNIST digits are drawn 3x (84 px), 32x32 CIFAR images 3x (96 px), 64x64 2x.
MIN_IMAGE_PX = 84


def display_scale(height: int, width: int, min_px: int = MIN_IMAGE_PX) -> int:
  """The integer factor that draws an ``height x width`` image at least ``min_px`` a side."""
  if height < 1 or width < 1:
    raise ConfigError(f"display_scale takes a positive image size, got {height}x{width}.")
  return max(1, math.ceil(min_px / min(height, width)))


def upscale(picture: np.ndarray, factor: int) -> np.ndarray:
  """``[H, W, C]`` -> ``[factor * H, factor * W, C]`` by nearest neighbour (each pixel a
  ``factor x factor`` block: no blur, no invented detail)."""
  if not isinstance(factor, int) or factor < 1:
    raise ConfigError(f"upscale takes an integer factor >= 1, got {factor!r}.")
  return np.repeat(np.repeat(picture, factor, axis=0), factor, axis=1)


def display_grid(images, columns: int | None = None, min_px: int = MIN_IMAGE_PX
                 ) -> np.ndarray:
  """``image_grid`` drawn for a screen: every image at least ``min_px`` a side.

  The grid (its padding included) is scaled by ``display_scale`` of one image, by nearest
  neighbour, so each pixel of a sample stays a sharp block. Every picture jaxgan writes
  for people (the training loop's sample grids, the experiments' rows) goes through it;
  ``image_grid`` is the exact-size array (what TensorBoard gets).
  """
  return for_display(image_grid(images, columns), np.shape(images)[1:3], min_px)


def for_display(grid: np.ndarray, image_size: tuple[int, int], min_px: int = MIN_IMAGE_PX
                ) -> np.ndarray:
  """An exact-size ``image_grid`` of images ``image_size`` (H, W), scaled for a screen."""
  return upscale(grid, display_scale(*image_size, min_px))


def save_image(picture: np.ndarray, path: str) -> None:
  """Writes a uint8 ``[H, W, C]`` picture as PNG (written whole, then renamed into place)."""
  from PIL import Image

  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  picture = picture[..., 0] if picture.shape[-1] == 1 else picture
  tmp = path + ".tmp"
  Image.fromarray(picture).save(tmp, format="PNG")
  os.replace(tmp, path)
# -- a small classifier: the feature space of the Frechet distance and class predictions -----

CLASSIFIER_VERSION = 1  # part of the cache key: bump when the module or its training changes


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
  if source.labels is None:
    raise ConfigError(f"{source.description} has no labels; the evaluation classifier needs "
                      "them.")
  num_classes = int(source.labels.max()) + 1
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

  batches = data_lib.batches(source, batch_size, seed)
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
  num_classes = int(source.labels.max()) + 1 if source.labels is not None else 0
  # The data order decides the training batches, so it is part of the key too.
  key = (f"{source.description}|{len(source)}|{num_classes}|{steps}|v{CLASSIFIER_VERSION}|"
         f"{data_lib.ORDER}")
  digest = hashlib.sha256(key.encode()).hexdigest()[:12]
  path = os.path.join(cache_dir, "classifiers", f"{_slug(source.description)}-{digest}.msgpack")
  model = Classifier(num_classes=max(num_classes, 1))
  target = jax.device_get(model.init(jax.random.key(0), jnp.zeros((1, *source.image_shape)))[
      "params"])
  cached = _read_cached(path, target, log)
  if cached is not None:
    return model, cached
  os.makedirs(os.path.dirname(path), exist_ok=True)
  # One process trains, the others wait for its file: runs started together (a sweep of
  # experiments, the test workers) do not each train the same classifier.
  with _file_lock(path + ".lock", log, check):
    cached = _read_cached(path, target, log, quiet=True)
    if cached is not None:
      return model, cached
    log(f"jaxgan: training the evaluation classifier on {source.description} (once; cached "
        f"in {path}).")
    params = train_classifier(source, steps=steps, check=check, progress=progress)
    with open(path + ".tmp", "wb") as f:
      f.write(serialization.to_bytes(params))
    os.replace(path + ".tmp", path)
  return model, params


def _read_cached(path: str, target, log, quiet: bool = False):
  """The params in ``path``, or None when it is missing or unreadable (said, unless
  ``quiet``)."""
  if not os.path.exists(path):
    return None
  try:
    with open(path, "rb") as f:
      return serialization.from_bytes(target, f.read())
  except Exception as e:  # noqa: BLE001 - a damaged cache file is rebuilt
    if not quiet:
      log(f"jaxgan: the cached classifier {path} cannot be read ({type(e).__name__}); "
          "training it again.")
    return None


@contextlib.contextmanager
def _file_lock(path: str, log=print, check=None,
               waiting: str = "another process is training the evaluation classifier"):
  """An exclusive advisory lock on ``path`` for the block (released if the process dies).

  While another process holds it, says so once (``waiting``) and waits, calling ``check``
  (which raises to stop: a signal) every 0.2 s. No lock where ``fcntl`` is missing (Windows).
  """
  try:
    import fcntl
  except ImportError:
    yield
    return
  with open(path, "a") as f:
    said = False
    while True:
      try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        break
      except BlockingIOError:
        if not said:
          log(f"jaxgan: {waiting}; waiting for its cache file.")
          said = True
        if check is not None:
          check()
        time.sleep(0.2)
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


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


# -- the measures ----------------------------------------------------------------------------

def gaussian_stats(features) -> tuple[np.ndarray, np.ndarray]:
  """Mean and covariance (float64) of ``features [N, D]``."""
  features = np.asarray(features, np.float64)
  return features.mean(0), np.atleast_2d(np.cov(features, rowvar=False))  # [D, D], D = 1 too


def frechet_distance(stats_a, stats_b) -> float:
  """Frechet distance between Gaussians ``(mu, sigma)``, as in FID (Heusel et al., 2017).

  ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))``; the trace of the square root
  is computed as the sum of square roots of the eigenvalues of
  ``S_a^(1/2) S_b S_a^(1/2)`` (symmetric, so ``eigh`` applies and no complex parts arise).
  """
  (mu_a, s_a), (mu_b, s_b) = stats_a, stats_b
  w, v = np.linalg.eigh(s_a)
  root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
  inner = np.linalg.eigvalsh(root_a @ s_b @ root_a)
  trace_sqrt = np.sqrt(np.clip(inner, 0, None)).sum()
  return float(np.sum((mu_a - mu_b) ** 2) + np.trace(s_a) + np.trace(s_b) - 2 * trace_sqrt)


def class_coverage(predictions, num_classes: int, min_share: float = 0.02) -> int:
  """Classes predicted for at least ``min_share`` of the samples."""
  counts = np.bincount(np.asarray(predictions), minlength=num_classes)
  return int(np.sum(counts >= min_share * len(predictions)))


def kl_to_uniform(predictions, num_classes: int) -> float:
  """KL(p || uniform) of the predicted-class histogram ``p``, in nats (0: balanced)."""
  p = np.bincount(np.asarray(predictions), minlength=num_classes) / len(predictions)
  nonzero = p > 0
  return float(np.sum(p[nonzero] * np.log(p[nonzero] * num_classes)))


def label_accuracy(predictions, labels) -> float:
  """The fraction of images the classifier assigns the class they were generated for."""
  return float(np.mean(np.asarray(predictions) == np.asarray(labels)))


def intra_class_fd(features, labels, class_stats) -> float:
  """The mean over classes of the Frechet distance between each class's features and that
  class's reference statistics (Miyato & Koyama's intra-FID: the mean, not the sum).

  Args:
    features: ``[N, D]``.
    labels: ``[N]`` class of each row.
    class_stats: ``{class: (mu, sigma)}``; every class in it needs at least 2 rows.
  """
  labels = np.asarray(labels)
  distances = []
  for c, stats in class_stats.items():
    rows = np.asarray(features)[labels == c]
    if len(rows) < 2:
      raise ConfigError(f"intra-class FD needs at least 2 samples of each class; class {c} "
                        f"has {len(rows)}. Draw more samples (e.g. class i % num_classes).")
    distances.append(frechet_distance(gaussian_stats(rows), stats))
  return float(np.mean(distances))


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
  source = data_lib.ArraySource(to_uint8(images), np.asarray(labels, np.int32),
                                "images for the classification accuracy score")
  params = train_classifier(source, steps=steps, seed=seed, check=check, progress=progress)
  model = Classifier(num_classes=source.num_classes)
  return classifier_accuracy(model, params, data_lib.to_model_range(test.images), test.labels)


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
    test_predictions, test_features = classify(self.model, self.params,
                                               data_lib.to_model_range(test.images))
    self.test_stats = gaussian_stats(test_features)
    self.class_stats = {}
    if test.labels is not None:
      self.class_stats = {c: gaussian_stats(test_features[test.labels == c])
                          for c in range(self.num_classes) if np.sum(test.labels == c) >= 2}
    index = floor_index(len(train), num_samples)
    self.floor_images = data_lib.to_model_range(train.images[index])
    self.floor_labels = None if train.labels is None else train.labels[index]
    floor = self(self.floor_images, self.floor_labels)
    self.floor = floor["fd"]
    self.floors = {"fd_floor": self.floor}
    if self.floor_labels is not None and test.labels is not None:
      self.floors["intra_fd_floor"] = floor["intra_fd"]
      self.floors["classifier_accuracy"] = label_accuracy(test_predictions, test.labels)
    self._cas_real: dict[int, float] = {}

  def __call__(self, images, labels=None) -> dict[str, float]:
    """``{"fd", "coverage", "kl"}`` of ``images [N, H, W, C]`` in [-1, 1]; with the classes
    ``labels [N]`` they were generated for, also ``label_accuracy`` and ``intra_fd``."""
    predictions, features = classify(self.model, self.params, images)
    out = {"fd": frechet_distance(gaussian_stats(features), self.test_stats),
           "coverage": class_coverage(predictions, self.num_classes),
           "kl": kl_to_uniform(predictions, self.num_classes)}
    if labels is not None and self.class_stats:
      out["label_accuracy"] = label_accuracy(predictions, labels)
      out["intra_fd"] = intra_class_fd(features, labels, self.class_stats)
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

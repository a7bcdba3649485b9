"""Translation data: the paired tasks, the unpaired domains, their batches, against hand-built
cases."""

import numpy as np
import pytest

from jaxgan.data import pairs as pairs_lib
from jaxgan.data import pipeline, sources
from jaxgan.data.sources import ArraySource, DataError
from jaxgan.training.tasks.translation import psnr


def square_image(size=12, lo=3, hi=9):
  image = np.zeros((1, size, size, 1), np.uint8)
  image[0, lo:hi, lo:hi] = 255
  return image


def test_edge_map_marks_the_outline_of_a_square_and_nothing_else():
  edges = pairs_lib.edge_map(square_image())[0, ..., 0] > 0
  # Sobel responds on both sides of each step: rows/cols 2..3 and 8..9 around the square.
  ring = np.zeros((12, 12), bool)
  ring[2:10, 2:10] = True
  ring[4:8, 4:8] = False
  np.testing.assert_array_equal(edges, ring)
  assert not pairs_lib.edge_map(np.full((1, 6, 6, 1), 77, np.uint8)).any()  # flat: no edges


def test_low_resolution_averages_blocks_and_replication_restores_the_size():
  x = np.arange(16, dtype=np.uint8).reshape(1, 4, 4, 1)
  small = pairs_lib.low_resolution(x, 2)
  # Blocks {0, 1, 4, 5} -> 2.5 -> 2 (round half to even), {2, 3, 6, 7} -> 4.5 -> 4, ...
  np.testing.assert_array_equal(small[0, ..., 0], [[2, 4], [10, 12]])
  big = pairs_lib.replicate_pixels(small, 2)
  np.testing.assert_array_equal(big[0, ..., 0], [[2, 2, 4, 4], [2, 2, 4, 4], [10, 10, 12, 12],
                                                 [10, 10, 12, 12]])
  with pytest.raises(DataError, match="divisible"):
    pairs_lib.low_resolution(np.zeros((1, 6, 6, 1), np.uint8), 4)


def test_bicubic_reproduces_a_linear_ramp_in_the_interior():
  # Keys' cubic kernel reproduces linear functions: away from the border, upsampling a
  # ramp gives the ramp at the output pixels' centres (half-pixel convention).
  ramp = np.tile(np.arange(0, 256, 32, dtype=np.uint8), (8, 1))[None, ..., None]  # 8x8
  up = pairs_lib.bicubic_upsample(ramp, 2)[0, ..., 0]  # [16, 16] in [-1, 1]
  centres = (np.arange(16) + 0.5) / 2 - 0.5  # output pixel centres in input coordinates
  want = sources.PIXEL_TABLE[0] + centres * (32 / 127.5)
  np.testing.assert_allclose(up[4, 4:12], want[4:12], atol=1e-5)
  flat = pairs_lib.bicubic_upsample(np.full((1, 4, 4, 1), 100, np.uint8), 2)
  np.testing.assert_allclose(flat, sources.PIXEL_TABLE[100], atol=1e-6)


def test_psnr_by_hand():
  x = np.zeros((2, 4, 4, 1))
  assert psnr(x + 0.2, x) == pytest.approx(20.0)  # 0.1 in [0, 1]: MSE 0.01
  assert psnr(x, x) == float("inf")


def test_holes_are_one_square_each_fixed_by_the_index():
  masks = pairs_lib.hole_masks(np.arange(50), 28, 28, 12)
  for m in masks:
    rows, cols = np.nonzero(m)
    assert m.sum() == 144 and rows.max() - rows.min() == 11 and cols.max() - cols.min() == 11
  assert len({np.flatnonzero(m)[0] for m in masks}) > 10  # places vary
  np.testing.assert_array_equal(pairs_lib.hole_masks(np.array([7, 3]), 28, 28, 12),
                                masks[[7, 3]])  # the same for the example in any batch
  with pytest.raises(DataError, match="hole"):
    pairs_lib.hole_masks(np.arange(2), 8, 8, 9)


def test_paired_tasks_are_built_from_each_image():
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (6, 28, 28, 1), dtype=np.uint8)
  source = ArraySource(images, np.arange(6, dtype=np.int32), "noise")
  sr = pairs_lib.make_pairs(source, "super_resolution", factor=4)
  small = pairs_lib.low_resolution(images, 4)
  np.testing.assert_array_equal(sr.source, pairs_lib.replicate_pixels(small, 4))
  np.testing.assert_array_equal(sr.images, images)
  inpaint = pairs_lib.make_pairs(source, "inpainting", hole=10)
  masks = pairs_lib.hole_masks(np.arange(6), 28, 28, 10)
  assert inpaint.source_shape == (28, 28, 2)
  np.testing.assert_array_equal(inpaint.source[..., 0][masks], pairs_lib.MID_GREY)
  np.testing.assert_array_equal(inpaint.source[..., 0][~masks], images[..., 0][~masks])
  np.testing.assert_array_equal(inpaint.source[..., 1] == 255, masks)
  edges = pairs_lib.make_pairs(source, "edges")
  np.testing.assert_array_equal(edges.source, pairs_lib.edge_map(images))
  batch = next(pairs_lib.paired_batches(edges, 4, seed=0))[1]
  assert set(batch) == {"source", "image"} and batch["source"].dtype == np.float32
  assert batch["source"].min() >= -1 and batch["image"].max() <= 1
  with pytest.raises(DataError, match="Unknown paired task"):
    pairs_lib.make_pairs(source, "colourise")


def test_unpaired_domains_by_class_and_their_independent_orders():
  images = np.arange(40, dtype=np.uint8)[:, None, None, None] * np.ones((40, 2, 2, 1), np.uint8)
  source = ArraySource(images, (np.arange(40) % 4).astype(np.int32), "numbers")
  domains = pairs_lib.class_domains(source, 1, 3)
  assert set(domains.a.labels) == {1} and set(domains.b.labels) == {3} and len(domains.a) == 10
  stream = pairs_lib.unpaired_batches(domains, 5, seed=2)
  first = [next(stream) for _ in range(3)]
  # A follows the seed's own order (stream 0), B another (stream 1); both restart exactly.
  want_a = [batch["image"] for _, (_, batch) in zip(range(3), pipeline.batches(domains.a, 5, 2),
                                                      strict=False)]
  for (_, got), want in zip(first, want_a, strict=True):
    np.testing.assert_array_equal(got["a"], want)
  again = next(pairs_lib.unpaired_batches(domains, 5, seed=2, start_step=2))
  np.testing.assert_array_equal(again[1]["b"], first[2][1]["b"])
  order_a = [int(round((x[0, 0, 0] + 1) * 127.5)) // 4 for x in first[0][1]["a"]]
  order_b = [int(round((x[0, 0, 0] + 1) * 127.5)) // 4 for x in first[0][1]["b"]]
  assert order_a != order_b  # not the same positions in both domains
  with pytest.raises(DataError, match="no images of class 5"):
    pairs_lib.class_domains(source, 1, 5)


def test_tfds_cycle_gan_splits_resized(tmp_path):
  import tensorflow_datasets as tfds

  with tfds.testing.mock_data(num_examples=6):
    domains = pairs_lib.load_cycle_gan("horse2zebra", "train", size=32)
  assert domains.shape_a == domains.shape_b == (32, 32, 3)
  assert len(domains.a) == len(domains.b) == 6 and "trainA" in domains.a.description

"""DiffAugment and ADA: each op against hand-computed cases and invariants."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import augment
from jaxgan.errors import ConfigError, InputTypeError

N, H, W = 64, 32, 32


def _images(c=1, n=N, h=H, w=W, seed=0):
  # Distinct, nonzero values, so that a shifted or cut pixel is recognisable.
  rng = np.random.default_rng(seed)
  return jnp.asarray(rng.uniform(0.1, 1.0, (n, h, w, c)).astype(np.float32))


def _shifted(x, th, tw, fill="zero"):
  """x shifted so that out[i, j] = x[i + th, j + tw] (numpy, zero or reflect outside)."""
  h, w = x.shape[:2]
  out = np.zeros_like(x)
  for i in range(h):
    for j in range(w):
      si, sj = i + th, j + tw
      if fill == "reflect":
        si = abs(si) if si < h else 2 * (h - 1) - si
        sj = abs(sj) if sj < w else 2 * (w - 1) - sj
      if 0 <= si < h and 0 <= sj < w:
        out[i, j] = x[si, sj]
  return out


def test_translation_shifts_pixels_and_zero_fills():
  x = np.asarray(_images())
  out = np.asarray(augment.diffaugment(jax.random.key(1), jnp.asarray(x), "translation"))
  shift = int(H * 0.125 + 0.5)
  assert shift == 4
  seen = set()
  for n in range(N):
    matches = [(th, tw) for th in range(-shift, shift + 1) for tw in range(-shift, shift + 1)
               if np.array_equal(out[n], _shifted(x[n], th, tw))]
    assert len(matches) == 1, f"image {n}: {matches}"
    seen.add(matches[0][0])
    th, tw = matches[0]
    # The pixels shifted in are exactly zero, the others nonzero.
    assert np.sum(out[n] == 0) == H * W - (H - abs(th)) * (W - abs(tw))
  assert len(seen) >= 7  # the shifts are drawn per example across the whole range


def test_cutout_zeroes_exactly_a_square_clipped_to_the_image():
  x = np.asarray(_images(c=3))
  out = np.asarray(augment.diffaugment(jax.random.key(2), jnp.asarray(x), "cutout"))
  size = int(H * 0.5 + 0.5)
  clipped = 0
  for n in range(N):
    cut = np.all(out[n] == 0, axis=-1)
    kept = ~cut
    np.testing.assert_array_equal(out[n][kept], x[n][kept])
    rows, cols = np.nonzero(cut)
    assert rows.size > 0
    r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    assert cut[r0:r1, c0:c1].all() and cut.sum() == (r1 - r0) * (c1 - c0)  # a rectangle
    for lo, hi, extent in ((r0, r1, H), (c0, c1, W)):
      assert hi - lo <= size
      if hi - lo < size:  # only a square sticking out of the image is smaller
        assert lo == 0 or hi == extent
        clipped += 1
  assert clipped > 0


def _one_factor(out, x):
  """The factor f_n with out[n] = f_n * x[n] (asserting that one exists per image)."""
  f = (out * x).reshape(N, -1).sum(1) / (x * x).reshape(N, -1).sum(1)
  np.testing.assert_allclose(out, f[:, None, None, None] * x, atol=1e-5)
  return f


def test_brightness_adds_one_offset_per_image():
  x = _images(c=3)
  out = augment._brightness(jax.random.key(3), x, 0)
  d = np.asarray(out - x)
  per_image = d.reshape(N, -1)
  np.testing.assert_allclose(per_image, per_image[:, :1] * np.ones_like(per_image), atol=1e-6)
  assert per_image[:, 0].min() >= -0.5 and per_image[:, 0].max() < 0.5
  assert np.std(per_image[:, 0]) > 0.2  # uniform on [-0.5, 0.5): std 0.29


def test_saturation_and_contrast_scale_about_their_means():
  x = _images(c=3)
  sat = np.asarray(augment._saturation(jax.random.key(4), x, 0))
  m = np.asarray(jnp.mean(x, axis=3, keepdims=True))
  f = _one_factor(sat - m, np.asarray(x) - m)
  assert f.min() >= 0 and f.max() < 2 and f.std() > 0.4  # U[0, 2): std 0.58
  # One channel: the pixel's channel mean is the pixel, saturation is the identity.
  g = _images(c=1)
  np.testing.assert_array_equal(np.asarray(augment._saturation(jax.random.key(4), g, 0)), g)

  con = np.asarray(augment._contrast(jax.random.key(5), x, 0))
  mean = np.asarray(x).mean(axis=(1, 2, 3), keepdims=True)
  np.testing.assert_allclose(con.mean(axis=(1, 2, 3), keepdims=True), mean, atol=1e-5)
  f = _one_factor(con - mean, np.asarray(x) - mean)
  assert f.min() >= 0.5 and f.max() < 1.5 and f.std() > 0.2  # U[0.5, 1.5): std 0.29


def test_color_policy_is_brightness_saturation_contrast_in_order():
  x = _images(c=3)
  key = jax.random.key(6)
  op_key = jax.random.fold_in(key, augment.DIFFAUGMENT_OPS.index("color"))
  expected = x
  for j, fn in enumerate((augment._brightness, augment._saturation, augment._contrast)):
    expected = fn(jax.random.fold_in(op_key, j), expected, 0)
  np.testing.assert_array_equal(np.asarray(augment.diffaugment(key, x, "color")),
                                np.asarray(expected))


@pytest.mark.parametrize("fn,arg", [(augment.diffaugment, "color,translation,cutout"),
                                    (augment.ada, 0.7)])
def test_per_example_draws_do_not_depend_on_the_batch_split(fn, arg):
  x = _images(c=3, n=16)
  key = jax.random.key(7)
  whole = np.asarray(fn(key, x, arg))
  parts = [np.asarray(fn(key, x[i:i + 4], arg, offset=i)) for i in range(0, 16, 4)]
  np.testing.assert_array_equal(whole, np.concatenate(parts))


def test_diffaugment_is_differentiable_through_the_fakes():
  x = _images(c=3, n=8)
  key = jax.random.key(8)
  # translation and cutout are linear in x: the gradient of sum(aug(x) * v) is aug^T v,
  # which for cutout is v where the pixel is kept and 0 where it is cut.
  out = augment.diffaugment(key, x, "cutout")
  grad = jax.grad(lambda x: jnp.sum(augment.diffaugment(key, x, "cutout")))(x)
  np.testing.assert_array_equal(np.asarray(grad), np.asarray(out != 0).astype(np.float32))
  # Full policy: finite, nonzero, and matching a finite difference.
  f = lambda x: jnp.sum(augment.diffaugment(key, x) ** 2)  # noqa: E731
  g = jax.grad(f)(x)
  assert np.isfinite(np.asarray(g)).all() and np.abs(np.asarray(g)).sum() > 0
  v = jax.random.normal(jax.random.key(9), x.shape)
  eps = 1e-2
  fd = (f(x + eps * v) - f(x - eps * v)) / (2 * eps)
  np.testing.assert_allclose(float(jnp.sum(g * v)), float(fd), rtol=2e-2)


def test_ada_with_p_zero_is_the_identity():
  x = _images(c=3)
  ops = ",".join(augment.ADA_OPS)
  np.testing.assert_array_equal(np.asarray(augment.ada(jax.random.key(10), x, 0.0, ops)), x)


def test_ada_ops_at_p_one():
  x = np.asarray(_images(c=1))
  key = jax.random.key(11)
  flip = np.asarray(augment.ada(key, jnp.asarray(x), 1.0, "xflip"))
  flipped = [np.array_equal(flip[n], x[n, :, ::-1]) for n in range(N)]
  same = [np.array_equal(flip[n], x[n]) for n in range(N)]
  assert all(a != b for a, b in zip(flipped, same, strict=True))
  assert 16 <= sum(flipped) <= 48  # a mirror image half the time

  rot = np.asarray(augment.ada(key, jnp.asarray(x), 1.0, "rotate90"))
  turns = []
  for n in range(N):
    k = [k for k in range(4) if np.array_equal(rot[n], np.rot90(x[n], k))]
    assert len(k) == 1
    turns.append(k[0])
  assert set(turns) == {0, 1, 2, 3}

  shift = np.asarray(augment.ada(key, jnp.asarray(x), 1.0, "xint"))
  for n in range(N):
    m = [(a, b) for a in range(-4, 5) for b in range(-4, 5)
         if np.array_equal(shift[n], _shifted(x[n], a, b, "reflect"))]
    assert len(m) == 1, n  # an integer shift of at most 1/8 of the size, reflected

  b = np.asarray(augment.ada(key, jnp.asarray(x), 1.0, "brightness")) - x
  assert np.allclose(b, b[:, :1, :1]) and 0.1 < b[:, 0, 0].std() < 0.3  # N(0, 0.2^2)
  c = np.asarray(augment.ada(key, jnp.asarray(x), 1.0, "contrast")) / x
  assert np.allclose(c, c[:, :1, :1], rtol=1e-5)
  assert 0.3 < np.log2(c[:, 0, 0]).std() < 0.7  # 2^N(0, 0.5^2) about zero

  cut = np.asarray(augment.ada(key, jnp.asarray(x), 1.0, "cutout"))
  for n in range(N):
    rows, cols = np.nonzero(cut[n, ..., 0] == 0)
    assert rows.max() - rows.min() + 1 <= 16 and cols.max() - cols.min() + 1 <= 16
    assert (cut[n, ..., 0] == 0).sum() == (rows.max() - rows.min() + 1) * (
        cols.max() - cols.min() + 1)


def test_ada_fires_each_op_with_probability_p():
  x = _images(c=1, n=2048, h=4, w=4)
  out = np.asarray(augment.ada(jax.random.key(12), x, 0.25, "brightness"))
  fired = np.abs(out - np.asarray(x)).max(axis=(1, 2, 3)) > 0
  assert abs(fired.mean() - 0.25) < 0.04


def test_ada_adjust_hand_computed():
  # batch 64, interval 4: 256 images per adjustment, 500 kimg per unit of p.
  up = augment.ada_adjust(jnp.float32(0.1), jnp.float32(0.9), 256)
  down = augment.ada_adjust(jnp.float32(0.1), jnp.float32(0.3), 256)
  np.testing.assert_allclose(float(up), 0.1 + 256 / 500_000, rtol=1e-6)
  np.testing.assert_allclose(float(down), 0.1 - 256 / 500_000, rtol=1e-6)
  assert float(augment.ada_adjust(jnp.float32(0.0), jnp.float32(0.0), 256)) == 0.0
  np.testing.assert_allclose(float(augment.ada_adjust(jnp.float32(0.5), 0.7, 100, kimg=100)),
                             0.501, rtol=1e-6)


def test_parse_and_bad_options():
  assert augment.parse("none") is None and augment.parse(None) is None
  assert augment.parse("diffaugment") == augment.DiffAugment("color,translation,cutout")
  assert augment.parse("DiffAugment:translation, cutout").policy == "translation,cutout"
  assert augment.parse("ada") == augment.ADA()
  assert augment.parse("ada:0.3") == augment.ADA(target=None, p=0.3)
  with pytest.raises(ConfigError, match=r"Unknown DiffAugment op.*'colour'.*color, "):
    augment.parse("diffaugment:colour")
  with pytest.raises(ConfigError, match="Unknown ADA op"):
    augment.ADA(ops="xflip,zoom")
  with pytest.raises(ConfigError, match=r"p must be a probability in \[0, 1\]"):
    augment.parse("ada:1.5")
  with pytest.raises(ConfigError, match=r"p must be a probability"):
    augment.ADA(p=-0.1)
  with pytest.raises(ConfigError, match="fixed probability"):
    augment.parse("ada:high")
  with pytest.raises(ConfigError, match="Unknown augment 'mixup'"):
    augment.parse("mixup")
  with pytest.raises(ConfigError, match="interval"):
    augment.ADA(interval=0)
  with pytest.raises(ConfigError, match="target"):
    augment.ADA(target=1.5)
  with pytest.raises(InputTypeError, match=r"\[N, H, W, C\]"):
    augment.diffaugment(jax.random.key(0), jnp.zeros((32, 32, 3)))
  with pytest.raises(ConfigError, match="square"):
    augment.ada(jax.random.key(0), jnp.zeros((2, 8, 4, 1)), 0.5, "rotate90")

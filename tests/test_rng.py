"""jaxgan.rng: the per-example draws against JAX's own hash and against their distributions."""

import jax
import jax.extend.random as jex_random
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxgan import rng


def test_threefry_is_jaxs_hash_bit_for_bit():
  # Reference: JAX's Threefry-2x32, which hashes the two halves of `count` as (x0, x1).
  r = np.random.default_rng(0)
  for _ in range(5):
    k = r.integers(0, 2**32, 2, dtype=np.uint64).astype(np.uint32)
    count = r.integers(0, 2**32, 2 * 257, dtype=np.uint64).astype(np.uint32)
    want = np.asarray(jex_random.threefry_2x32((jnp.uint32(k[0]), jnp.uint32(k[1])),
                                               jnp.asarray(count)))
    x0, x1 = jax.jit(rng.threefry2x32)(jnp.uint32(k[0]), jnp.uint32(k[1]),
                                       jnp.asarray(count[:257]), jnp.asarray(count[257:]))
    np.testing.assert_array_equal(np.concatenate([x0, x1]), want)


def test_the_known_answer_of_random123():
  # Random123's kat_vectors for threefry2x32_20: key (0, 0), counter (0, 0).
  x0, x1 = rng.threefry2x32(jnp.uint32(0), jnp.uint32(0), jnp.uint32(0), jnp.uint32(0))
  assert (int(x0), int(x1)) == (0x6B200159, 0x99BA4EFE)


def test_a_row_depends_on_the_key_and_its_global_index_only():
  key = jax.random.key(3)
  full = rng.example_normal(key, 10, (4, 3))
  np.testing.assert_array_equal(rng.example_normal(key, 3, (4, 3), offset=6), full[6:9])
  # The words of example g are the hash of the counters (g, 0), (g, 1), ...
  bits = rng.example_bits(key, jnp.arange(10, dtype=jnp.uint32), 5)
  k0, k1 = jax.random.key_data(key)
  w0, w1 = rng.threefry2x32(k0, k1, jnp.uint32(7), jnp.arange(3, dtype=jnp.uint32))
  np.testing.assert_array_equal(bits[7], np.stack([w0, w1], -1).reshape(-1)[:5])
  # Fewer words per example are a prefix of more.
  np.testing.assert_array_equal(rng.example_bits(key, jnp.arange(10, dtype=jnp.uint32), 8)[:, :5],
                                bits)
  assert not np.array_equal(full, rng.example_normal(jax.random.key(4), 10, (4, 3)))


def test_the_distributions():
  key = jax.random.key(0)
  z = np.asarray(rng.example_normal(key, 4000, (50,))).ravel()
  assert stats.kstest(z, "norm").pvalue > 1e-3
  assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
  u = np.asarray(rng.example_uniform(jax.random.key(1), 4000, (50,))).ravel()
  assert u.min() >= 0 and u.max() < 1
  assert stats.kstest(u, "uniform").pvalue > 1e-3
  b = np.asarray(rng.example_bernoulli(jax.random.key(2), 0.3, 4000, (50,)))
  assert abs(b.mean() - 0.3) < 0.005
  # Neighbouring examples and neighbouring values are uncorrelated.
  zz = z.reshape(4000, 50)
  assert abs(np.corrcoef(zz[:-1].ravel(), zz[1:].ravel())[0, 1]) < 0.01
  assert abs(np.corrcoef(zz[:, :-1].ravel(), zz[:, 1:].ravel())[0, 1]) < 0.01


def test_keys_of_every_kind():
  raw = jax.random.PRNGKey(5)
  np.testing.assert_array_equal(rng.example_normal(raw, 4, (3,)),
                                rng.example_normal(jax.random.wrap_key_data(raw), 4, (3,)))
  rbg = jax.random.key(5, impl="rbg")
  z = rng.example_normal(rbg, 4, (3,))
  assert z.shape == (4, 3) and np.all(np.isfinite(z))
  with pytest.raises(TypeError, match="uint32\\[2\\] key"):
    rng.example_normal(jnp.zeros(3, jnp.int32), 4, (3,))


def test_normal_in_other_float_dtypes():
  z = rng.example_normal(jax.random.key(0), 4, (3,), dtype=jnp.bfloat16)
  assert z.dtype == jnp.bfloat16
  np.testing.assert_allclose(z.astype(np.float32), rng.example_normal(jax.random.key(0), 4, (3,)),
                             rtol=1e-2)

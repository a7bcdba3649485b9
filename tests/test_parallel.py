"""pmap, shard_map and one device agree; fused steps equal single steps; clear errors."""

import functools
import os
import socket
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxgan
from jaxgan import data as data_lib
from jaxgan import models, parallel

STEPS = 5
# Relative to each leaf's largest magnitude. Measured worst case 4e-5 (DCGAN, 5 steps,
# 8 CPU devices vs 1): reductions are summed in a different order across devices.
TOL = 3e-4


def assert_close(a, b, tol=TOL):
  for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b),
                          strict=True):
    x, y = np.asarray(x), np.asarray(y)
    scale = max(float(np.abs(y).max()), 1e-6)
    err = float(np.abs(x - y).max()) / scale
    assert err <= tol, f"{jax.tree_util.keystr(path)}: relative error {err:.2e} > {tol}"


def mlp(axis):
  G = models.MLPGenerator(image_shape=(4, 4, 1), hidden=(32,))
  D = models.MLPDiscriminator(hidden=(32,))
  # Not hinge: at initialisation every hinge is active, the real and fake terms of some
  # gradients cancel to rounding noise, and Adam's first update (~lr * sign(g)) turns
  # that noise into lr-sized differences between summation orders.
  step = jaxgan.make_train_step(G, D, "non_saturating", gp_weight=1.0, axis_name=axis)
  return G, D, step, (4, 4, 1)


def dcgan(axis):
  G = models.DCGANGenerator(width=0.125, axis_name=axis)  # BatchNorm synced over the axis
  D = models.DCGANDiscriminator(width=0.125, axis_name=axis, spectral_norm=True)
  return G, D, jaxgan.make_train_step(G, D, "non_saturating", axis_name=axis), (28, 28, 1)


def states(G, D, shape):
  tx = optax.adam(1e-3, b1=0.5)
  return jaxgan.create_states(jax.random.key(0), G, D, tx, tx, latent_dim=8, image_shape=shape)


def images(shape, steps=STEPS, batch=16):
  return np.asarray(jax.random.uniform(jax.random.key(1), (steps, batch, *shape), minval=-1,
                                       maxval=1))


@pytest.mark.parametrize("family", [mlp, dcgan], ids=["mlp", "dcgan_bn_dropout"])
def test_pmap_shard_map_and_one_device_agree(family):
  assert jax.device_count() == 8
  key = jax.random.key(3)
  G, D, step, shape = family(None)
  x = images(shape)
  sg, sd = states(G, D, shape)
  one = jax.jit(step)
  for i in range(STEPS):
    sg, sd, m = one(sg, sd, {"image": x[i]}, key)
  reference = (sg, sd, m)

  # The DCGAN runs with the CPU convolution option (jaxgan.cpu), against a reference
  # compiled without it: other kernels, the same function.
  options = jaxgan.cpu.compiler_options() if family is dcgan else None
  G, D, step, shape = family(parallel.AXIS)
  sg, sd = states(G, D, shape)
  pm = parallel.pmap_step(step, compiler_options=options)
  for i in range(STEPS):
    sg, sd, m = pm(sg, sd, parallel.split_batch({"image": x[i]}), key)
  assert_close((sg, sd, m), reference)
  assert sg.params[next(iter(sg.params))][next(iter(sg.params[next(iter(sg.params))]))].ndim > 0

  sg, sd = states(G, D, shape)
  sm = parallel.shard_map_step(step, parallel.data_mesh(), compiler_options=options)
  for i in range(STEPS):
    sg, sd, m = sm(sg, sd, {"image": x[i]}, key)
  assert_close((sg, sd, m), reference)
  assert int(sg.step) == STEPS


def test_users_own_shard_map_without_vma_checks_agrees():
  # The gradient reduction must be right whether or not shard_map tracks varying axes.
  G, D, step, shape = mlp(parallel.AXIS)
  mesh = parallel.data_mesh()
  P = jax.sharding.PartitionSpec
  x = images(shape, steps=1)[0]
  results = []
  for check_vma in (True, False):
    sg, sd = parallel.replicate(states(G, D, shape), mesh)
    f = jax.jit(jax.shard_map(step, mesh=mesh, in_specs=(P(), P(), P("data"), P()),
                              out_specs=(P(), P(), P()), check_vma=check_vma))
    results.append(f(sg, sd, parallel.shard_batch({"image": x}, mesh), jax.random.key(0)))
  assert_close(results[0], results[1], tol=1e-6)
  assert np.isfinite(float(results[0][2]["d_grad_norm"]))


def test_fused_steps_equal_single_steps():
  G, D, step, shape = mlp(None)
  x = images(shape)
  key = jax.random.key(7)
  sg0, sd0 = states(G, D, shape)
  one = jax.jit(step)
  sg, sd = sg0, sd0
  for i in range(STEPS):
    sg, sd, m = one(sg, sd, {"image": x[i]}, key)
  # 1: the loop that accelerators run, bit for bit the single steps.
  fused = jax.jit(parallel.fuse_steps(step, unroll=1))
  sg_f, sd_f, m_f = fused(sg0, sd0, {"image": x}, key)
  chex.assert_trees_all_equal((sg_f, sd_f), (sg, sd))
  chex.assert_trees_all_equal(jax.tree.map(lambda v: v[-1], m_f), m)
  # None: unrolled on the CPU, where XLA may fuse across steps: equal to float rounding.
  sg_u, sd_u, m_u = jax.jit(parallel.fuse_steps(step))(sg0, sd0, {"image": x}, key)
  assert_close((sg_u, sd_u, m_u), (sg_f, sd_f, m_f), tol=1e-5)


def test_fused_on_device_data_equals_single_steps_with_host_batches():
  G, D, step, shape = mlp(None)
  n = 40  # batches of 16 over 40 examples cross epoch boundaries
  dataset = {"image": np.asarray(jax.random.randint(jax.random.key(5), (n, *shape), 0, 256),
                                 np.uint8),
             "label": np.arange(n, dtype=np.int32) % 10}
  data_key, key = jax.random.key(11), jax.random.key(12)
  sg0, sd0 = states(G, D, shape)
  fused = jax.jit(parallel.fuse_steps_on_device(step, STEPS, 16, data_key, unroll=1))
  sg_f, sd_f, m_f = fused(sg0, sd0, dataset, key)
  one = jax.jit(step)
  sg, sd = sg0, sd0
  for s in range(STEPS):
    index = np.asarray(data_lib.batch_indices(data_key, s, 16, n))
    # The host path converts pixels with the same function the fused loop uses.
    batch = {"image": jax.jit(data_lib.to_model_range)(dataset["image"][index]),
             "label": dataset["label"][index]}
    sg, sd, m = one(sg, sd, batch, key)
  chex.assert_trees_all_equal((sg_f, sd_f), (sg, sd))
  assert m_f["g_loss"].shape == (STEPS,)


def test_fused_steps_compose_with_pmap_and_shard_map():
  # unroll=1 throughout: the composition is what is tested here (unrolling, above).
  fuse_steps = functools.partial(parallel.fuse_steps, unroll=1)
  fuse_steps_on_device = functools.partial(parallel.fuse_steps_on_device, unroll=1)
  key, data_key = jax.random.key(4), jax.random.key(9)
  G, D, step, shape = mlp(None)
  x = images(shape)
  sg, sd = states(G, D, shape)
  reference = jax.jit(fuse_steps(step))(sg, sd, {"image": x}, key)

  G, D, step, shape = mlp(parallel.AXIS)
  sg, sd = states(G, D, shape)
  pm = parallel.pmap_step(fuse_steps(step))
  assert_close(pm(sg, sd, parallel.split_batch({"image": x}, batch_axis=1), key), reference)
  sg, sd = states(G, D, shape)
  sm = parallel.shard_map_step(fuse_steps(step), parallel.data_mesh(), batch_axis=1)
  assert_close(sm(sg, sd, {"image": x}, key), reference)

  # On-device data: 8 devices each gather their slice of the same global batch.
  dataset = {"image": np.asarray(jax.random.randint(jax.random.key(5), (64, *shape), 0, 256),
                                 np.uint8)}
  G1, D1, step1, _ = mlp(None)
  sg, sd = states(G1, D1, shape)
  reference = jax.jit(fuse_steps_on_device(step1, STEPS, 16, data_key))(
      sg, sd, dataset, key)
  sg, sd = states(G, D, shape)
  f = fuse_steps_on_device(step, STEPS, 16, data_key)
  assert_close(parallel.pmap_step(f, data_on_device=True)(sg, sd, dataset, key), reference)
  sg, sd = states(G, D, shape)
  got = parallel.shard_map_step(f, parallel.data_mesh(), data_on_device=True)(sg, sd, dataset,
                                                                             key)
  assert_close(got, reference)


def test_batch_indices_cover_each_epoch_once():
  key, n, b = jax.random.key(0), 50, 16
  stream = np.concatenate([np.asarray(data_lib.batch_indices(key, s, b, n)) for s in range(25)])
  for epoch in range(len(stream) // n):
    assert sorted(stream[epoch * n:(epoch + 1) * n]) == list(range(n))
  assert not np.array_equal(stream[:n], stream[n:2 * n])  # a fresh permutation per epoch
  # Restarting at step 7 gives the same batches.
  np.testing.assert_array_equal(data_lib.batch_indices(key, 7, b, n), stream[7 * b:8 * b])
  with pytest.raises(ValueError, match="exceeds the number of examples"):
    data_lib.batch_indices(key, 0, 60, n)


# -- errors ------------------------------------------------------------------------------


def test_error_batch_not_divisible_by_devices():
  with pytest.raises(ValueError, match=r"\(12, 4, 4, 1\).*divide evenly over 8 devices"):
    parallel.split_batch({"image": np.zeros((12, 4, 4, 1))})
  with pytest.raises(ValueError, match="multiple of the device count"):
    parallel.shard_batch({"image": np.zeros((12, 4, 4, 1))}, parallel.data_mesh())
  G, D, step, shape = mlp(parallel.AXIS)
  sg, sd = states(G, D, shape)
  with pytest.raises(ValueError, match="divide evenly"):
    parallel.shard_map_step(step, parallel.data_mesh())(sg, sd, {"image": np.zeros((12, 4, 4, 1))},
                                                        jax.random.key(0))


def test_error_batch_leading_axis_not_devices():
  G, D, step, shape = mlp(parallel.AXIS)
  sg, sd = states(G, D, shape)
  with pytest.raises(ValueError, match=r"split as \[devices=8.*split_batch"):
    parallel.pmap_step(step)(sg, sd, {"image": jnp.zeros((16, 4, 4, 1))}, jax.random.key(0))


def test_error_step_axis_does_not_match():
  G, D, step, _ = mlp(None)
  with pytest.raises(ValueError, match=r"axis_name=None.*axis 'data'"):
    parallel.pmap_step(step)
  with pytest.raises(ValueError, match="axis_name='data'"):
    parallel.shard_map_step(step, parallel.data_mesh())


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_two_processes_match_one_process(tmp_path):
  # Two processes with 4 CPU devices each, joined by jax.distributed on loopback, each
  # feeding its half of the global batch, end where this process (8 devices) ends.
  port = _free_port()
  worker = os.path.join(os.path.dirname(__file__), "multihost_worker.py")
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
         "JAX_PLATFORMS": "cpu"}
  procs = [subprocess.Popen([sys.executable, worker, str(port), str(i), str(tmp_path)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
           for i in range(2)]
  outputs = [p.communicate(timeout=600)[0] for p in procs]
  for p, out in zip(procs, outputs, strict=True):
    assert p.returncode == 0, out[-3000:]

  import multihost_worker  # the same model, data and steps, here on 8 local devices

  reference = multihost_worker.run(parallel.data_mesh(), local_share=slice(None))
  for i in range(2):
    got = dict(np.load(tmp_path / f"process{i}.npz"))
    want = multihost_worker.flatten(reference)
    assert sorted(got) == sorted(want)
    assert_close(got, want)

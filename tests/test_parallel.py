"""pmap, shard_map and one device agree; fused steps equal single steps; clear errors."""

import contextlib
import functools
import os
import socket
import subprocess
import sys
from unittest import mock

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import assert_close

import jaxgan
from jaxgan import models, parallel
from jaxgan.data import order as order_lib
from jaxgan.data import sources
from jaxgan.models import layers

P = jax.sharding.PartitionSpec
NamedSharding = jax.sharding.NamedSharding

STEPS = 5


def mlp(axis):
  G = models.MLPGenerator(image_shape=(4, 4, 1), hidden=(32,))
  D = models.MLPDiscriminator(hidden=(32,))
  # Not hinge: at initialisation every hinge is active, the real and fake terms of some
  # gradients cancel to rounding noise, and Adam's first update (~lr * sign(g)) turns
  # that noise into lr-sized differences between summation orders.
  step = jaxgan.make_train_step(G, D, "non_saturating", gp_weight=1.0, axis_name=axis)
  return G, D, step, (4, 4, 1)


def dcgan(axis):
  # Built as a user builds them, with no axis_name: the models follow the step's axis
  # (BatchNorm statistics of the global batch, dropout masks per global example).
  G = models.DCGANGenerator(width=0.125)
  D = models.DCGANDiscriminator(width=0.125, spectral_norm=True)
  return G, D, jaxgan.make_train_step(G, D, "non_saturating", axis_name=axis), (28, 28, 1)


class UsersDiscriminator(nn.Module):
  """A user's own D with Flax's BatchNorm and Dropout, neither told of any axis."""

  @nn.compact
  def __call__(self, x, train=True):
    # No bias before BatchNorm: its gradient is 0 in exact arithmetic, so rounding noise,
    # which Adam's first updates (~lr * sign(g)) would blow up to lr-sized differences.
    x = nn.Dense(32, use_bias=False)(x.reshape(x.shape[0], -1))
    x = nn.BatchNorm(use_running_average=not train)(x)
    x = nn.Dropout(0.3, deterministic=not train)(nn.leaky_relu(x, 0.2))
    return nn.Dense(1)(x)


def users_modules(axis):
  G = models.MLPGenerator(image_shape=(8, 8, 1), hidden=(32,))
  D = UsersDiscriminator()
  return G, D, jaxgan.make_train_step(G, D, "non_saturating", axis_name=axis), (8, 8, 1)


def states(G, D, shape):
  tx = optax.adam(1e-3, b1=0.5)
  return jaxgan.create_states(jax.random.key(0), G, D, tx, tx, latent_dim=8, image_shape=shape)


def images(shape, steps=STEPS, batch=16):
  return np.asarray(jax.random.uniform(jax.random.key(1), (steps, batch, *shape), minval=-1,
                                       maxval=1))


def users_pmap(step, axis):
  """What a user writes: their own jax.pmap, with an axis name of their choosing."""
  f = jax.pmap(step, axis_name=axis, in_axes=(None, None, 0, None), out_axes=(None, None, 0))
  n = jax.local_device_count()
  return lambda sg, sd, x, key: f(sg, sd, {"image": x.reshape(n, -1, *x.shape[1:])}, key)


def users_shard_map(step, axis, check_vma):
  """What a user writes: jax.jit(jax.shard_map(...)) over their own mesh."""
  mesh = jax.make_mesh((jax.device_count(),), (axis,))
  f = jax.jit(jax.shard_map(step, mesh=mesh, in_specs=(P(), P(), P(axis), P()),
                            out_specs=(P(), P(), P()), check_vma=check_vma))
  replicated, split = NamedSharding(mesh, P()), NamedSharding(mesh, P(axis))

  def run(sg, sd, x, key):
    sg, sd, key = jax.device_put((sg, sd, key), replicated)
    return f(sg, sd, {"image": jax.device_put(x, split)}, key)

  return run


@pytest.mark.parametrize("family", [mlp, dcgan, users_modules],
                         ids=["mlp", "dcgan_bn_dropout", "users_bn_dropout"])
@pytest.mark.slow
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
  _, _, step, _ = family(parallel.AXIS)
  runs = {"pmap_step": lambda: parallel.pmap_step(step, compiler_options=options),
          "shard_map_step": lambda: parallel.shard_map_step(step, parallel.data_mesh(),
                                                            compiler_options=options)}
  # The user's own compositions, over an axis named as they like (for the MLP pairs: what
  # they check is the composition, which does not depend on the model; the DCGAN runs the
  # library's two).
  if family is not dcgan:
    _, _, users_step, _ = family("batch")
    runs["users_pmap"] = lambda: users_pmap(users_step, "batch")
    for check_vma in (True, False):
      runs[f"users_shard_map_vma_{check_vma}"] = functools.partial(
          users_shard_map, users_step, "batch", check_vma)
  for name, make in runs.items():
    run = make()
    sg, sd = states(G, D, shape)
    for i in range(STEPS):
      batch = (parallel.split_batch({"image": x[i]}) if name == "pmap_step"
               else {"image": x[i]} if name == "shard_map_step" else x[i])
      sg, sd, m = run(sg, sd, batch, key)
    if name == "users_pmap":
      m = jax.tree.map(lambda v: v[0], m)  # out_axes=0: one copy per device
    assert int(sg.step) == STEPS, name
    assert_close((sg, sd, m), reference, name=name)


@pytest.mark.slow
def test_a_different_model_is_not_trained_silently():
  # The mechanism the agreement rests on, checked to fail without it: the users' pair
  # over 8 devices with the library's axis following turned off differs from one device.
  G, D, step, shape = users_modules(None)
  x = images(shape, steps=1)[0]
  key = jax.random.key(3)
  _, _, want = jax.jit(step)(*states(G, D, shape), {"image": x}, key)
  _, _, users_step, _ = users_modules("batch")
  _, _, got = users_pmap(users_step, "batch")(*states(G, D, shape), x, key)
  np.testing.assert_allclose(got["d_loss"][0], want["d_loss"], rtol=1e-5)
  with mock.patch.object(layers, "device_independent", lambda axis: contextlib.nullcontext()):
    _, _, users_step, _ = users_modules("batch")
    _, _, got = users_pmap(users_step, "batch")(*states(G, D, shape), x, key)
  assert abs(float(got["d_loss"][0]) - float(want["d_loss"])) > 1e-3


@pytest.mark.slow
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


class ConvDiscriminator(nn.Module):
  """A user's D on nn.Conv's default convolution, whose autodiff gradients XLA:CPU runs
  2-170x slower inside a loop body."""

  @nn.compact
  def __call__(self, x, train=True):
    x = nn.leaky_relu(nn.Conv(8, (3, 3), strides=2)(x), 0.2)
    return nn.Dense(1)(x.reshape(x.shape[0], -1))


def _scans(fn, *args):
  return [(e.params["unroll"], e.params["length"]) for e in jax.make_jaxpr(fn)(*args).jaxpr.eqns
          if e.primitive.name == "scan"]


@pytest.mark.slow
def test_cpu_loops_unroll_groups_unless_the_convolutions_are_slow_in_loops():
  dataset = {"image": np.zeros((40, 28, 28, 1), np.uint8)}
  key = jax.random.key(0)
  for G, D in ((models.MLPGenerator(hidden=(8,)), models.MLPDiscriminator(hidden=(8,))),
               (models.DCGANGenerator(width=0.125), models.DCGANDiscriminator(width=0.125))):
    step = jaxgan.make_train_step(G, D)
    sg, sd = states(G, D, (28, 28, 1))
    # The library's models: a loop over groups of CPU_UNROLL steps, bounded compile time.
    assert _scans(parallel.fuse_steps_on_device(step, 20, 8, key), sg, sd, dataset, key) == [
        (parallel.CPU_UNROLL, 20)]
    assert _scans(parallel.fuse_steps(step), sg, sd, {"image": np.zeros((3, 8, 28, 28, 1))},
                  key) == [(3, 3)]
  # A user's nn.Conv: fully unrolled, with a warning naming the fix when that is long.
  G, D = models.MLPGenerator(hidden=(8,)), ConvDiscriminator()
  step = jaxgan.make_train_step(G, D)
  sg, sd = states(G, D, (28, 28, 1))
  with pytest.warns(UserWarning, match="conv_general_dilated=jaxgan.models.layers"):
    assert _scans(parallel.fuse_steps_on_device(step, 20, 8, key), sg, sd, dataset, key) == [
        (20, 20)]
  # Off the CPU (where loops are fast), a loop.
  with mock.patch.object(jax, "default_backend", lambda: "gpu"):
    assert _scans(parallel.fuse_steps_on_device(step, 20, 8, key), sg, sd, dataset, key) == [
        (1, 20)]


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
    index = np.asarray(order_lib.batch_indices(data_key, s, 16, n))
    # The host path converts pixels with the same function the fused loop uses.
    batch = {"image": jax.jit(sources.to_model_range)(dataset["image"][index]),
             "label": dataset["label"][index]}
    sg, sd, m = one(sg, sd, batch, key)
  chex.assert_trees_all_equal((sg_f, sd_f), (sg, sd))
  assert m_f["g_loss"].shape == (STEPS,)


@pytest.mark.slow
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


@pytest.mark.slow
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

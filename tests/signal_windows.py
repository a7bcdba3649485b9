"""experiments/mnist.py with one window of its life announced and held open, for the tests.

  python tests/signal_windows.py WINDOW [experiments/mnist.py's flags ...]

When the process enters WINDOW it prints ``JAXGAN_WINDOW WINDOW`` on stderr and waits
``HOLD_S`` before it goes on, so that a signal the test sends on reading that line arrives
inside the window. Windows:

* ``data``: loading the dataset;
* ``classifier``: training the evaluation classifier (a fresh ``JAXGAN_CACHE_DIR``);
* ``compile``: the first call of the training step, which compiles it;
* ``evaluation``: the first evaluation of the run;
* ``final_save``: saving the checkpoint of the run's last step;
* ``sample_out``: drawing the samples of ``--sample_out``;
* ``teardown``: closing the checkpoints as the process finishes;
* ``none``: no window (the script as it is).
"""

import functools
import os
import runpy
import sys
import time

from helpers import ROOT

HOLD_S = 1.0


def announce(window: str) -> None:
  print(f"JAXGAN_WINDOW {window}", file=sys.stderr, flush=True)
  end = time.monotonic() + HOLD_S
  while time.monotonic() < end:  # signals are handled between these sleeps
    time.sleep(0.01)


def at_first_call(window: str, fn, when=lambda *args, **kwargs: True):
  """``fn`` that announces ``window`` the first time it is called with ``when`` true."""
  done = [False]

  @functools.wraps(fn)
  def wrapper(*args, **kwargs):
    if not done[0] and when(*args, **kwargs):
      done[0] = True
      announce(window)
    return fn(*args, **kwargs)

  return wrapper


def main():
  window = sys.argv.pop(1)
  from jaxgan import parallel
  from jaxgan.evaluators import classifier as classifier_lib
  from jaxgan.training import checkpoint as ckpt_lib
  from jaxgan.training.tasks import noise as noise_tasks

  if window == "data":
    noise_tasks.load_train_data = at_first_call(window, noise_tasks.load_train_data)
  elif window == "classifier":
    classifier_lib.train_classifier = at_first_call(window, classifier_lib.train_classifier)
  elif window == "compile":
    def pmap_step(*args, **kwargs):
      return at_first_call(window, make_pmap_step(*args, **kwargs))

    make_pmap_step, parallel.pmap_step = parallel.pmap_step, pmap_step
  elif window in ("evaluation", "sample_out"):
    noise_tasks.sample = at_first_call(window, noise_tasks.sample)
  elif window == "final_save":
    steps = int(next(a.split("=")[1] for a in sys.argv if a.startswith("--config.steps=")))
    ckpt_lib.Checkpoints.save = at_first_call(
        window, ckpt_lib.Checkpoints.save, lambda self, step, *rest: step == steps)
  elif window == "teardown":
    ckpt_lib.Checkpoints.close = at_first_call(window, ckpt_lib.Checkpoints.close)
  elif window != "none":
    sys.exit(f"unknown window {window!r}")
  sys.argv[0] = os.path.join(ROOT, "experiments", "mnist.py")
  runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
  main()

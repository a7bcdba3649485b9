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

HOLD_S = 1.0
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
  from jaxgan import checkpoint, evaluate, parallel, train

  if window == "data":
    train.load_train_data = at_first_call(window, train.load_train_data)
  elif window == "classifier":
    evaluate.train_classifier = at_first_call(window, evaluate.train_classifier)
  elif window == "compile":
    def pmap_step(*args, **kwargs):
      return at_first_call(window, make_pmap_step(*args, **kwargs))

    make_pmap_step, parallel.pmap_step = parallel.pmap_step, pmap_step
  elif window in ("evaluation", "sample_out"):
    train._sample = at_first_call(window, train._sample)
  elif window == "final_save":
    steps = int(next(a.split("=")[1] for a in sys.argv if a.startswith("--config.steps=")))
    checkpoint.Checkpoints.save = at_first_call(
        window, checkpoint.Checkpoints.save, lambda self, step, *rest: step == steps)
  elif window == "teardown":
    checkpoint.Checkpoints.close = at_first_call(window, checkpoint.Checkpoints.close)
  elif window != "none":
    sys.exit(f"unknown window {window!r}")
  sys.argv[0] = os.path.join(ROOT, "experiments", "mnist.py")
  runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
  main()

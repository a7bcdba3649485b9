r"""Mode coverage as the papers measure it: Stacked Fashion-MNIST (1,000 modes).

  python experiments/stacked.py                                    # R3GAN, this machine's run
  python experiments/stacked.py --config.model=dcgan --workdir=workdirs/stacked_dcgan
  python experiments/stacked.py --config.model=stylegan2 --workdir=workdirs/stacked_sg2

Each training image is three Fashion-MNIST images drawn independently as the channels of
one 28x28 RGB image; its mode is the triple of their classes. At the end the run draws
26,000 samples (the protocol of VEEGAN, PacGAN, PresGAN and R3GAN), classifies each
channel with the library's Fashion-MNIST classifier and prints the modes covered of 1,000
and the KL divergence of the mode histogram to uniform, beside the same figures for
26,000 real stacked test triples (the floor this classifier allows). They are written to
WORKDIR/modes.json. Running again on the same workdir resumes; the recipes per model are
in experiments/configs/stacked.py.
"""

import signal

_EARLY_SIGNALS: list[int] = []
for _sig in (signal.SIGTERM, signal.SIGINT):
  signal.signal(_sig, lambda signum, frame: _EARLY_SIGNALS.append(signum))

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

from jaxgan import cli  # noqa: E402

SAMPLES = 26_000


def measure_modes(result, config, workdir: str) -> None:
  import jax

  from jaxgan import training
  from jaxgan.data import sources
  from jaxgan.evaluators import classifier
  from jaxgan.training.tasks import noise

  def notice(line):
    print(line, file=sys.stderr, flush=True)

  base = config.dataset[len(sources.STACKED_PREFIX):]
  train = sources.load(base, "train", data_dir=config.data_dir, log=notice)
  test = sources.load(base, "test", data_dir=config.data_dir, log=notice)
  with training.stop_on_signals() as stop:
    G, state_g, _ = training.load_generator(workdir)
    images = noise.sample(G, state_g, jax.random.key(0), SAMPLES, stop.check)
    stop.check()
  found = classifier.stacked_coverage(images, train, test, log=notice,
                                      progress=config.progress)
  with open(os.path.join(workdir, "modes.json"), "w") as f:
    json.dump({"step": result.step, **found}, f)
  print(f"modes covered: {found['modes']} of 1,000, KL to uniform {found['kl']:.3f} nats "
        f"({SAMPLES:,} samples; real stacked test images through the same classifier: "
        f"{found['floor_modes']} modes, KL {found['floor_kl']:.3f})")


if __name__ == "__main__":
  cli.experiment_main(__file__, "stacked", pending=_EARLY_SIGNALS, after=measure_modes)

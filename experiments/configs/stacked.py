"""Configs of experiments/stacked.py: Stacked Fashion-MNIST (three Fashion-MNIST images as
the channels of one 28x28 RGB image, 1,000 modes), unconditional, a recipe per model.

``get_config("[MODEL][,VARIANT]")``: ``--config=experiments/configs/stacked.py:dcgan,cpu``,
or ``python experiments/stacked.py --config.model=dcgan``. Each model runs its recipe of
experiments/configs/mnist.py on the stacked images, unconditional (the modes are what the
run must find by itself); the CPU variants run about the same wall-clock time on a 2-core
CPU (BUILD_NOTES.md, "R3GAN"), where R3GAN, the default, is the paper's recipe for this
protocol (1,000 of 1,000 modes, KL 0.029).
"""

import os
import runpy

from jaxgan.training.config import config_arg

_MNIST = runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "mnist.py"))
MODELS = ("r3gan", "dcgan", "stylegan2")
# Steps of each model's CPU run: 8 to 10 minutes of steps each on the 2-core CPU
# (python benchmarks/recipe_steps.py on the AMD EPYC, 28x28x1: R3GAN 1.16 steps/s, the
# DCGAN 4.87; StyleGAN2 4.42 between its lazy R1 steps, fewer over a whole run).
CPU_STEPS = {"r3gan": 520, "dcgan": 2600, "stylegan2": 1700}


def get_config(arg: str | None = None, conditional: bool | None = None):
  """``arg``: ``[MODEL][,VARIANT]``; none: R3GAN, this machine's variant. ``conditional``
  (the command line's) is not a choice here: the stacked images have no labels."""
  model, variant = config_arg(arg, MODELS)
  model = model or "r3gan"
  config = _MNIST["get_config"](f"{model},{variant}", False)
  config.dataset = "stacked:fashion_mnist"
  config.conditional = False
  config.eval_every = 0  # the modes are counted at the end (experiments/stacked.py)
  if variant == "cpu":
    config.steps = CPU_STEPS[model]
    if model == "r3gan":
      config.schedule_kimg = config.steps * config.batch_size / 1000
    config.cpu_note = (
        f"the {model} CPU run on Stacked Fashion-MNIST: {config.steps:,} steps, about 10 "
        f"minutes here, then 26,000 samples classified channel by channel (a minute)")
  return config

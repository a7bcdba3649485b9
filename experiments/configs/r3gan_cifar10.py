"""CIFAR-10 (TFDS ``cifar10``), class-conditional R3GAN: the reference's ``CIFAR10`` preset
(brownvc/R3GAN ``train.py --preset=CIFAR10 --cond=True``, FID 1.96 in the paper).

  python experiments/mnist.py --config=experiments/configs/r3gan_cifar10.py \\
      --workdir=workdirs/r3gan_cifar10

The pair of ``jaxgan.models.r3gan_cifar10``: 4 stages of width 768, 96 groups, 2 blocks
each, z of 64, the class embedded in 64 values in G and projected in D (768); the
relativistic pairing loss with R1 and R2 every step; Adam with beta1 0 and eps 1e-8; over
the first 20M images the cosine schedules of the reference: learning rate 2e-4 -> 5e-5,
beta2 0.9 -> 0.99, gamma 0.05 -> 0.005, the G average's half-life 0 -> 5M images, the
augmentation probability 0 -> 0.55 (a fixed schedule, not ADA's feedback); batch 512;
250M images in all (the paper's Table 9); bfloat16 in the 3 highest-resolution stages on
accelerators. The augmentations are jaxgan's ADA ops (flips, 90-degree rotations, integer
translation, brightness, contrast, saturation, cutout), a subset of the reference's
pipeline (no scale, rotation, anisotropy, fractional translation, luma flip or hue).

The cpu variant (the default where JAX finds no accelerator) runs 20 steps of it at a
sixteenth of the width, batch 64: a check that the recipe runs, not a result.
"""

import jax

from jaxgan.training.config import default_config, for_this_machine


def get_config(variant: str | None = None):
  """``variant``: ``full`` (an accelerator's run) or ``cpu``; none: this machine's."""
  config = default_config()
  config.dataset = "cifar10"
  config.model = "r3gan"
  config.conditional = True
  config.width = 1.0  # 768 channels at every resolution (channel_max 768 x width)
  config.stage_blocks = 2
  config.group_channels = 16  # 2 x 768 / 96
  config.latent_dim = 64
  config.loss = "relativistic"
  config.r1_weight = config.r2_weight = 0.05
  config.gamma_final = 0.005
  config.lr_g = config.lr_d = 2e-4
  config.lr_final = 5e-5
  config.b1, config.b2, config.b2_final = 0.0, 0.9, 0.99
  config.ema_kimg = 5000.0
  config.augment = "ada:0"
  config.augment_p_final = 0.55
  config.schedule_kimg = 20_000.0
  config.batch_size = 512
  config.steps = 488_282  # 250M images
  config.eval_every = 20_000
  config.variant = for_this_machine(variant)
  if jax.default_backend() != "cpu":
    config.compute_dtype = "bfloat16"  # every stage above 4x4: 3 of the 4, as the reference
  if config.variant == "cpu":
    config.width = 0.0625
    config.batch_size = 64
    config.steps = 20
    config.eval_every = 0
  return config

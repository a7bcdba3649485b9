"""Your own 64x64 faces (FFHQ at 64x64), unconditional R3GAN: the reference's ``FFHQ-64``
preset (brownvc/R3GAN ``train.py --preset=FFHQ-64``, FID 1.95 in the paper).

  python -m jaxgan.data.pack /data/ffhq /data/ffhq64.pack --resolution=64
  python experiments/mnist.py --config=experiments/configs/r3gan_ffhq64.py \\
      --config.dataset=/data/ffhq64.pack --workdir=workdirs/r3gan_ffhq64

FFHQ is not on TFDS: the dataset is your folder or pack (docs/data.md). The pair of
``jaxgan.models.r3gan_ffhq64``: 5 stages of widths 768 x 4 and 384 at 64x64, groups 96 x
4 and 48, 2 blocks each, z of 64; the relativistic pairing loss with R1 and R2 every step;
Adam with beta1 0 and eps 1e-8; over the first 20M images the reference's cosine
schedules: learning rate 2e-4 -> 5e-5, beta2 0.9 -> 0.99, gamma 2 -> 0.2, the G average's
half-life 0 -> 0.5M images, the augmentation probability 0 -> 0.3; batch 256; bfloat16
in the 4 highest-resolution stages on accelerators. The reference trains until it is
stopped (its ``--kimg`` default has no practical end); 50M images here
(``--config.steps``). The augmentations are jaxgan's ADA ops, a subset of the
reference's (see r3gan_cifar10.py).

The cpu variant runs 20 steps at a sixteenth of the width, batch 32: a check that the
recipe runs on your data, not a result.
"""

import jax

from jaxgan.training.config import default_config, for_this_machine


def get_config(variant: str | None = None):
  """``variant``: ``full`` (an accelerator's run) or ``cpu``; none: this machine's."""
  config = default_config()
  config.dataset = ""  # your folder or pack of 64x64 images: --config.dataset=PATH
  config.model = "r3gan"
  config.conditional = False
  config.width = 1.0  # 768 channels up to 32x32, 384 at 64x64
  config.stage_blocks = 2
  config.group_channels = 16
  config.latent_dim = 64
  config.loss = "relativistic"
  config.r1_weight = config.r2_weight = 2.0
  config.gamma_final = 0.2
  config.lr_g = config.lr_d = 2e-4
  config.lr_final = 5e-5
  config.b1, config.b2, config.b2_final = 0.0, 0.9, 0.99
  config.ema_kimg = 500.0
  config.augment = "ada:0"
  config.augment_p_final = 0.3
  config.schedule_kimg = 20_000.0
  config.batch_size = 256
  config.steps = 195_313  # 50M images
  config.eval_every = 20_000
  config.resolution = 64
  config.variant = for_this_machine(variant)
  if jax.default_backend() != "cpu":
    config.compute_dtype = "bfloat16"  # every stage above 4x4: 4 of the 5, as the reference
  if config.variant == "cpu":
    config.width = 0.0625
    config.batch_size = 32
    config.steps = 20
    config.eval_every = 0
  return config

"""Default config of experiments/pix2pix.py: pix2pix on Fashion-MNIST's paired tasks.

The reference's recipe (junyanz/pytorch-CycleGAN-and-pix2pix, pix2pix_model.py): a U-Net
generator with BatchNorm and decoder dropout, a PatchGAN discriminator on (input, output)
pairs, the vanilla (non-saturating) GAN loss, L1 weight 100, Adam 2e-4 with betas (0.5,
0.999), the learning rate constant for the first half and decayed linearly to 0 over the
second. At 28x28 (run at 32x32): 5 down-samplings (down to 1x1), dropout on the decoders of
the 2 blocks next to the innermost (the reference's rule gives none below 6 downs, and
dropout is pix2pix's only noise), a PatchGAN of 2 stride-2 layers (34x34 patches: the 70x70
one would be the whole image), batch 32 (the reference's 1 wastes a CPU). Every field:
jaxgan.training.config.translation_default_config("pix2pix").
"""

from jaxgan.training.config import for_this_machine, translation_default_config


def get_config(variant: str | None = None):
  """``variant``: ``full`` (an accelerator's run) or ``cpu``; none: this machine's."""
  config = translation_default_config("pix2pix")
  config.dataset = "fashion_mnist"  # offline: Debian's IDX files
  config.task = "edges"  # edges | super_resolution | inpainting
  config.generator = "unet"
  config.num_downs = 5
  config.ngf = 32
  config.ndf = 32
  config.n_layers_d = 2
  config.dropout_blocks = 2
  config.batch_size = 32
  config.steps = 20_000
  config.sample_every = 250
  config.eval_every = 1000
  config.variant = for_this_machine(variant)
  if config.variant == "cpu":  # the default where JAX finds no accelerator
    config.steps = 2000
  return config

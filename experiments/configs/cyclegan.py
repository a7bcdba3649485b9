"""Default config of experiments/cyclegan.py: CycleGAN between two Fashion-MNIST classes.

The reference's recipe (junyanz/pytorch-CycleGAN-and-pix2pix, cycle_gan_model.py): ResNet
generators with instance norm and reflection padding, PatchGAN discriminators with instance
norm, the least-squares GAN loss, cycle weight 10 both ways, identity weight 0.5 (5 per
term), image pools of 50, Adam 2e-4 with betas (0.5, 0.999), the learning rate constant for
the first half and decayed linearly to 0 over the second. At 28x28: 32 generator channels
and 6 residual blocks (the reference's 128-px setting), PatchGANs of 2 stride-2 layers
(34x34 patches), batch 8. Domain A is class 7 (sneaker), B class 9 (ankle boot). Every field:
jaxgan.training.config.translation_default_config("cyclegan").
"""

from jaxgan.training.config import for_this_machine, translation_default_config


def get_config(variant: str | None = None):
  """``variant``: ``full`` (an accelerator's run) or ``cpu``; none: this machine's."""
  config = translation_default_config("cyclegan")
  config.dataset = "fashion_mnist"  # offline: Debian's IDX files
  config.domain_a = 7  # sneaker
  config.domain_b = 9  # ankle boot
  config.generator = "resnet"
  config.ngf = 32
  config.n_blocks = 6
  config.ndf = 32
  config.n_layers_d = 2
  config.batch_size = 8
  config.steps = 50_000
  config.sample_every = 250
  config.eval_every = 1000
  config.variant = for_this_machine(variant)
  if config.variant == "cpu":  # the default where JAX finds no accelerator
    config.steps = 1000
  return config

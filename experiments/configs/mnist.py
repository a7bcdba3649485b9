"""Default config of experiments/mnist.py: the library's recommended DCGAN recipe.

Every field is listed in jaxgan.training.config.default_config(); override any with
--config.field=value. The full variant (an accelerator's run): the TensorFlow tutorial's
DCGAN pair with spectral normalisation in the discriminator, the non-saturating loss, Adam
4e-4 for both networks with betas (0.5, 0.999), and a generator EMA (decay 0.99), 20,000
steps. Chosen by FD, coverage and KL among five recipes at equal steps and batch
(BUILD_NOTES.md, "Recipes"). The cpu variant (the default where JAX finds no accelerator;
--config=experiments/configs/mnist.py:cpu or :full chooses): 5,000 steps of a
class-conditional DCGAN at half width with the hinge loss and Adam's betas (0, 0.9) (G(z, y),
a projection D; the grid has one class per row, and image i of --sample_out is of class
i % 10), the best samples of the candidates measured at equal time within a 10-minute budget
on a 2-core CPU (BUILD_NOTES.md, "The first run"); a ResNet chosen with --config.model=resnet
has G 32 and D 16 channels there.
"""

from jaxgan.training.config import default_config, for_this_machine


def get_config(variant: str | None = None):
  """``variant``: ``full`` (an accelerator's run) or ``cpu``; none: this machine's."""
  config = default_config()
  config.dataset = "mnist"  # offline: Fashion-MNIST from Debian's package, with a notice
  config.model = "dcgan"
  config.loss = "non_saturating"
  config.spectral_norm = True
  config.lr_g = 4e-4
  config.lr_d = 4e-4
  config.b1 = 0.5
  config.b2 = 0.999
  config.ema_decay = 0.99
  config.batch_size = 64
  config.steps = 20_000
  config.variant = for_this_machine(variant)
  if config.variant == "cpu":
    config.steps = 5000
    config.width = 0.5  # a DCGAN (or StyleGAN2) of half the channels: 4x fewer FLOPs
    config.g_channels, config.d_channels = 32, 16  # a ResNet's, if chosen
    config.conditional = True
    config.loss = "hinge"
    config.b1, config.b2 = 0.0, 0.9
  return config

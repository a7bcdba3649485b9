"""The small StyleGAN2 pair on MNIST (offline: Fashion-MNIST), a recipe for a 2-core CPU.

  python experiments/mnist.py --config=experiments/configs/stylegan2_mnist.py \\
      --workdir=workdirs/stylegan2_mnist

``jaxgan.models.stylegan2_small``: z = w = 64, 2 mapping layers, at most 128 channels
(``width`` scales them; the cpu variant, the default where JAX finds no accelerator, runs
1,300 steps at width 0.5); a residual D with minibatch-stddev groups of 4. The reference's optimiser
(Adam 0.0025, betas (0, 0.99)) and loss (non-saturating, R1 every 16 steps with the
reference's ``auto`` gamma, 0.0002 * 32^2 / batch), no style mixing and no path length
(the reference's ``cifar`` config has neither), a G average of half-life ~350 steps.
Augmentation: none by default, since the full training split does not overfit in a CPU run
(``--config.augment=diffaugment`` or ``ada`` for small data, with ``data_fraction``).
The measured run: BUILD_NOTES.md, "StyleGAN2 and data-efficient augmentation".
"""

from jaxgan.training.config import default_config, for_this_machine


def get_config(variant: str | None = None):
  """``variant``: ``full`` (an accelerator's run) or ``cpu``; none: this machine's."""
  config = default_config()
  config.dataset = "mnist"  # offline: Fashion-MNIST from Debian's package, with a notice
  config.model = "stylegan2"
  config.latent_dim = 64
  config.w_dim = 64
  config.mapping_layers = 2
  config.mbstd_group_size = 4
  config.d_architecture = "resnet"
  config.loss = "non_saturating"
  config.r1_weight = 0.0002 * 32**2 / 64  # the reference's auto gamma: 0.0032
  config.r1_every = 16
  config.lr_g = 0.0025
  config.lr_d = 0.0025
  config.b1 = 0.0
  config.b2 = 0.99
  config.ema_decay = 0.998
  config.batch_size = 64
  config.augment = "none"
  config.steps = 50_000
  config.sample_every = 500
  config.variant = for_this_machine(variant)
  if config.variant == "cpu":
    config.steps = 1300
    config.width = 0.5  # channels {4: 64, 8: 64, 16: 32, 32: 16}
  return config

"""CIFAR-10 (TFDS ``cifar10``, 32x32x3), class-conditional: the SNGAN / cGAN-PD recipe.

  python experiments/mnist.py --config=experiments/configs/cifar10.py --workdir=workdirs/cifar10

Miyato & Koyama's cGANs with projection discriminator as Mimicry trains it (CIFAR-10 FID
10.84 there, 50k vs 50k): the SNGAN-32 pair (``jaxgan.models.sngan32``: G 256 channels with
per-class conditional BatchNorm, D 128 channels with projection and spectral norm
everywhere), latent size 128, hinge loss, Adam 2e-4 with betas (0, 0.9) for both
networks, 5 discriminator updates per generator update, batch 64, 100,000 generator steps
with both learning rates decayed linearly to 0, no EMA. The fakes' classes are drawn
uniformly (every SNGAN/BigGAN reference does).

That is the full variant (an accelerator's). The cpu variant (the default where JAX finds
no accelerator; ``:cpu`` or ``:full`` after the file chooses) runs the same recipe for
1,200 steps with G 32 and D 16 channels.
"""

from jaxgan.training.config import default_config, for_this_machine


def get_config(variant: str | None = None):
  """``variant``: ``full`` (an accelerator's run) or ``cpu``; none: this machine's."""
  config = default_config()
  config.dataset = "cifar10"
  config.model = "resnet"
  config.width = 1.0  # G 256, D 128 channels: SNGAN-32
  config.latent_dim = 128
  config.conditional = True
  config.conditioning = "projection"
  config.fake_labels = "uniform"
  config.weight_init = "glorot"
  config.loss = "hinge"
  config.n_critic = 5
  config.lr_g = 2e-4
  config.lr_d = 2e-4
  config.b1 = 0.0
  config.b2 = 0.9
  config.lr_schedule = "linear"
  config.ema_decay = 0.0  # Mimicry and the Chainer code keep no EMA
  config.batch_size = 64
  config.steps = 100_000
  config.eval_every = 10_000
  config.variant = for_this_machine(variant)
  if config.variant == "cpu":
    config.steps = 1200
    config.g_channels, config.d_channels = 32, 16
  return config

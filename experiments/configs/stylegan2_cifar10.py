"""CIFAR-10 (TFDS ``cifar10``), class-conditional StyleGAN2 with ADA: the reference's
``cifar`` configuration (NVlabs/stylegan2-ada-pytorch ``train.py --cfg=cifar --cond=1``).

  python experiments/mnist.py --config=experiments/configs/stylegan2_cifar10.py \\
      --workdir=workdirs/stylegan2_cifar10

The pair of ``jaxgan.models.stylegan2_cifar``: z = w = 512, 2 mapping layers, 512 channels
at every resolution, a plain ("orig") D with minibatch-stddev groups of 32; the
non-saturating loss, R1 with gamma 0.01 every 16 steps, no path length, no style mixing;
Adam 0.0025 with betas (0, 0.99), corrected for lazy regularisation (D every 16, G every 4,
as the reference does although its G has no regulariser here); batch 64; ADA from p = 0
toward E[sign(D(real))] = 0.6; a G average of half-life 500k images. The reference trains
100,000 kimg (1,562,500 steps); the cpu variant (the default where JAX finds no
accelerator) runs 1,200 steps of it.
"""

from jaxgan.training.config import default_config, for_this_machine


def get_config(variant: str | None = None):
  """``variant``: ``full`` (an accelerator's run) or ``cpu``; none: this machine's."""
  config = default_config()
  config.dataset = "cifar10"
  config.model = "stylegan2"
  config.conditional = True
  config.latent_dim = 512
  config.w_dim = 512
  config.mapping_layers = 2
  config.channel_base = 32768
  config.channel_max = 512
  config.d_architecture = "orig"
  config.mbstd_group_size = 32
  config.loss = "non_saturating"
  config.r1_weight = 0.01
  config.r1_every = 16
  config.lazy_g_every = 4
  config.lr_g = 0.0025
  config.lr_d = 0.0025
  config.b1 = 0.0
  config.b2 = 0.99
  config.batch_size = 64
  config.augment = "ada"
  config.ada_target = 0.6
  config.ada_kimg = 500.0
  config.ema_decay = 0.5 ** (64 / 500_000)  # ema_kimg 500 at batch 64: 0.99991
  config.steps = 1_562_500  # 100,000 kimg
  config.eval_every = 50_000
  config.variant = for_this_machine(variant)
  if config.variant == "cpu":
    config.steps = 1200
  return config

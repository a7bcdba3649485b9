"""Configs of experiments/mnist.py: a recipe per model, each with its accelerator run and
its CPU run.

``get_config("[MODEL][,VARIANT]")``: ``--config=experiments/configs/mnist.py:resnet,cpu``;
the model's recipe is also what ``python experiments/mnist.py --config.model=resnet``
builds. The variant (``full``: an accelerator's run; ``cpu``: minutes on a 2-core CPU) is
this machine's when not named. Every field of ``jaxgan.training.config.default_config()``
can still be overridden (``--config.field=value``); the command line wins over the recipe.

* ``dcgan`` (the default): the TensorFlow tutorial's pair with spectral normalisation in D,
  the non-saturating loss, Adam 4e-4 with betas (0.5, 0.999), a G EMA, 20,000 steps, chosen
  among five recipes at equal steps (BUILD_NOTES.md, "Recipes"). On a CPU: 5,000 steps of a
  class-conditional DCGAN at half width with the hinge loss and betas (0, 0.9), the best of
  the candidates at equal time (BUILD_NOTES.md, "The first run").
* ``mlp``: the original GAN's fully connected pair (Goodfellow et al., 2014), unconditional
  (the model has no class input), the hinge loss, Adam 2e-4 with betas (0, 0.9), the best of
  four at equal steps: 20,000 steps, minutes on a 2-core CPU, the same on an accelerator.
* ``resnet``: SNGAN and cGAN-PD (Miyato et al., 2018; Miyato & Koyama, 2018): the hinge loss,
  5 D updates per G update, Adam 2e-4 with betas (0, 0.9), a class-conditional projection D.
  On a CPU: G 32 / D 16 channels, 2 D updates per G update for 1,400 steps (at equal time
  better than the reference's 5 for 900), which draws rough shapes: the run says so when
  it starts.
* ``stylegan2``: the small StyleGAN2 pair (``jaxgan.models.stylegan2_small``: z = w = 64, 2
  mapping layers, at most 128 channels x width) with the reference's optimiser (Adam 0.0025,
  betas (0, 0.99)), non-saturating loss and lazy R1 (every 16 steps, the reference's ``auto``
  gamma 0.0002 * 32^2 / batch), no style mixing or path length (as its ``cifar`` config), a G
  average of half-life ~350 steps, no augmentation (``--config.augment=diffaugment`` or
  ``ada`` for small data, with ``data_fraction``). On a CPU: width 0.25, 1,700 steps;
  conditional (``--config.conditional=True``), 1,300 steps with the class faded in over steps
  300-1,000 (Shahbazi et al.'s transitional training, without which each class collapses onto
  one shape) and DiffAugment. Both draw rough shapes, and the run says so when it starts.
* ``r3gan``: R3GAN (Huang et al., 2024): its ResNet of grouped residual blocks, the
  relativistic pairing loss with R1 and R2 (gamma 0.05 -> 0.005), Adam with beta1 0, and its
  cosine schedules of the learning rate (2e-4 -> 5e-5), beta2 (0.9 -> 0.99), gamma and the
  G average's half-life, over 2M images of a 200,000-step run (as its CIFAR-10 preset at
  a quarter of the width: 192 channels, 2 blocks per stage). On a CPU: channels 32, 32, 16
  and 8 from 4x4 to 32x32, one block per stage, 520 steps with the schedules over them (the
  width and length 10 minutes allow); rough shapes, and the run says so.

Each CPU run is measured in BUILD_NOTES.md, "Every model's CPU run", and docs/families.md.
"""

from jaxgan.training.config import config_arg, default_config


def get_config(arg: str | None = None, conditional: bool | None = None):
  """``arg``: ``[MODEL][,VARIANT]``, e.g. ``resnet,cpu``; none: the DCGAN, this machine's
  variant. ``conditional``: what the command line asks for (``--config.conditional``), which
  a recipe may answer with other settings; None: the recipe's choice."""
  model, variant = config_arg(arg, MODELS)
  config = default_config()
  config.dataset = "mnist"  # offline: Fashion-MNIST from Debian's package, with a notice
  config.batch_size = 64
  config.variant = variant
  config.model = model or "dcgan"
  if conditional is not None:
    config.conditional = conditional  # what the recipe sees
  _RECIPES[config.model](config, variant == "cpu")
  if conditional is not None:
    config.conditional = conditional  # over a recipe's own choice
  return config


def _dcgan(config, cpu: bool) -> None:
  config.loss = "non_saturating"
  config.spectral_norm = True
  config.lr_g = config.lr_d = 4e-4
  config.b1, config.b2 = 0.5, 0.999
  config.ema_decay = 0.99
  config.steps = 20_000
  if cpu:
    config.steps = 5000
    config.width = 0.5  # half the channels: 4x fewer FLOPs
    config.conditional = True  # G(z, y), a projection D; the grid has a class per row
    config.loss = "hinge"
    config.b1, config.b2 = 0.0, 0.9


def _mlp(config, cpu: bool) -> None:  # one run for both variants
  # Hinge with Adam betas (0, 0.9), as the DCGAN's CPU run: at 20,000 steps FD 17.2 and
  # 10/10 classes against 41.4 and 9/10 for the non-saturating loss with betas (0.5, 0.999)
  # (BUILD_NOTES.md, "Every model's CPU run").
  config.loss = "hinge"
  config.lr_g = config.lr_d = 2e-4
  config.b1, config.b2 = 0.0, 0.9
  config.ema_decay = 0.99
  config.steps = 20_000  # minutes on a 2-core CPU: the CPU run is the same


def _resnet(config, cpu: bool) -> None:
  config.conditional = True
  config.loss = "hinge"
  config.n_critic = 5
  config.lr_g = config.lr_d = 2e-4
  config.b1, config.b2 = 0.0, 0.9
  config.ema_decay = 0.99
  config.steps = 20_000
  if cpu:
    config.g_channels, config.d_channels = 32, 16
    # In the 10 minutes of a 2-core AVX2 CPU the reference's 5 D updates a step allow 900
    # steps (FD 143, label accuracy 16%); 2 a step allow 1,400, which scored FD 90 and 24%
    # in less time, collapsing nothing at seed 0 (BUILD_NOTES.md, "Every model's CPU run").
    config.n_critic = 2
    config.steps = 1400
    # At seed 1 those 1,400 steps left the sneakers' row black (diversity 0.16, flagged);
    # R1 on the real images, its own D update every 4th step, kept every class at both
    # seeds and scored better at seed 0 (FD 82, 30%), at about the same cost; halving both
    # learning rates kept them too but drew worse (FD 156 and 119).
    config.r1_weight = 0.1
    config.r1_every = 4
    config.cpu_note = (
        "the ResNet learns slowly on a CPU: its 10 minutes draw striped tops, flat strokes "
        "for sandals and sneakers and pale blocks for bags (FD ~82, label accuracy ~30%; "
        "unconditional FD ~106); for recognisable samples run it on a GPU or TPU (the same "
        "command there runs its full recipe), or the DCGAN here: python experiments/mnist.py")


def _stylegan2(config, cpu: bool) -> None:
  config.latent_dim = config.w_dim = 64
  config.mapping_layers = 2
  config.mbstd_group_size = 4
  config.d_architecture = "resnet"
  config.loss = "non_saturating"
  config.r1_weight = 0.0002 * 32**2 / config.batch_size  # the reference's auto gamma
  config.r1_every = 16
  config.lr_g = config.lr_d = 0.0025
  config.b1, config.b2 = 0.0, 0.99
  config.ema_decay = 0.998
  config.augment = "none"
  config.steps = 50_000
  config.sample_every = 500
  if cpu:
    # A quarter of the channels ({4: 32, 8: 32, 16: 16, 32: 8}): at about equal time, 2,600
    # steps of it drew more varied shapes than 1,300 of width 0.5 (FD 83 against 93), but
    # took 830 s on the slower 2-core CPU, where 1,700 steps take 494 s (BUILD_NOTES.md).
    config.width = 0.25
    config.steps = 1700
    if config.conditional:
      # Conditional steps collapse each class onto one shape unless the class fades in
      # (Shahbazi et al.): unconditional to step 300, weight 1 from step 1,000. Faded in
      # alone, the shirts still collapsed at seed 0 (0.38 and 0.39 for ends 800 and 1,000);
      # DiffAugment keeps D from fixing on one shape a class: lowest class 0.47 and 0.55 at
      # seeds 0 and 1 (BUILD_NOTES.md, "Every model's CPU run").
      config.steps = 1300
      config.transition_start, config.transition_end = 300, 1000
      config.augment = "diffaugment"
    config.cpu_note = (
        "StyleGAN2 needs an accelerator: its CPU run draws shoes, trousers and rounded "
        "blocks for the tops (FD ~105; conditional, rows of rough shapes, FD ~67, label "
        "accuracy ~48%); for recognisable samples run it on a GPU or TPU "
        "(the same command there runs its full recipe), or the DCGAN here: "
        "python experiments/mnist.py")


def _r3gan(config, cpu: bool) -> None:
  config.latent_dim = 64
  config.loss = "relativistic"
  config.r1_weight = config.r2_weight = 0.05
  config.gamma_final = 0.005
  config.lr_g = config.lr_d = 2e-4
  config.lr_final = 5e-5
  config.b1, config.b2, config.b2_final = 0.0, 0.9, 0.99
  config.width = 0.25  # 192 channels at every resolution, groups of 16
  config.stage_blocks = 2
  config.steps = 200_000
  config.schedule_kimg = 2000.0  # the reference's 20M images of CIFAR-10, a tenth
  config.ema_kimg = 500.0
  config.sample_every = 1000
  if cpu:
    # XLA:CPU computes these small convolutions at a few GFLOP/s: about 1.1 steps per
    # second for this width at batch 64 (BUILD_NOTES.md, "R3GAN").
    config.channel_base, config.channel_max = 256, 32  # 32, 32, 16, 8 channels
    config.stage_blocks = 1
    config.steps = 520
    config.schedule_kimg = 520 * 64 / 1000  # the whole course within the run
    # The G average's half-life ends at 1,000 images (16 steps), not 5,000: over so short
    # a run the longer average lags a generator still moving fast (FD 163 and 159 against
    # 173 and 172 at seeds 0 and 1, the same cost; BUILD_NOTES.md, "R3GAN").
    config.ema_kimg = 1.0
    config.sample_every = 100
    config.cpu_note = (
        "R3GAN needs an accelerator: its CPU run (520 steps of a thin network, the most "
        "10 minutes allow) draws soft grey blobs, no garments yet (FD ~163; conditional, "
        "FD ~150, label accuracy ~25%); for recognisable "
        "samples run it on a GPU or TPU (the same command there runs its full recipe), or "
        "the DCGAN here: python experiments/mnist.py")


_RECIPES = {"dcgan": _dcgan, "mlp": _mlp, "resnet": _resnet, "stylegan2": _stylegan2,
            "r3gan": _r3gan}
MODELS = tuple(_RECIPES)  # the models with a recipe here; the command line reads it

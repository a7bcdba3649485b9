"""Default config of experiments/mnist.py: the library's recommended DCGAN recipe.

Every field is listed in jaxgan.train.default_config(); override any with
--config.field=value. The recipe: the TensorFlow tutorial's DCGAN pair with spectral
normalisation in the discriminator, the non-saturating loss, Adam 4e-4 for both networks
with betas (0.5, 0.999), and a generator EMA (decay 0.99). Chosen by FD, coverage and KL
among five recipes at equal steps and batch (BUILD_NOTES.md, "Recipes").
steps=-1 picks the run for the machine (the script says which it chose): on an accelerator
the full run of this recipe; on a CPU-only machine 5,000 steps of a class-conditional DCGAN
at half width with the hinge loss and Adam's betas (0, 0.9) (G(z, y), a projection D; the
grid has one class per row, and image i of --sample_out is of class i % 10), the best
samples of the candidates measured at equal time within a 10-minute budget on a 2-core CPU
(BUILD_NOTES.md, "The first run").
Any field set on the command line stays as set.
"""

from jaxgan.train import default_config


def get_config():
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
  config.steps = -1
  config.cpu_steps = 5000
  config.cpu_recipe = "conditional=True,loss=hinge,b1=0.0,b2=0.9"
  return config

"""The pure train steps, one file per family, over the helpers they share (``common``).

Every step has one shape, ``train_step(state_g, state_d, batch, key) -> (state_g, state_d,
metrics)``, and is a frozen, callable dataclass: a value, hashable, whose fields are its
static hyperparameters.
"""

from jaxgan.steps.common import sample_latent
from jaxgan.steps.cyclegan import CycleGANStep, create_cyclegan_states, make_cyclegan_step
from jaxgan.steps.noise import TrainStep, generate, make_train_step, sample_labels
from jaxgan.steps.pix2pix import Pix2PixStep, create_pix2pix_states, make_pix2pix_step, translate

__all__ = ["CycleGANStep", "Pix2PixStep", "TrainStep", "create_cyclegan_states",
           "create_pix2pix_states", "generate", "make_cyclegan_step", "make_pix2pix_step",
           "make_train_step", "sample_labels", "sample_latent", "translate"]

"""jaxgan: generative adversarial networks in JAX/Flax.

The public API::

    G, D = jaxgan.models.DCGANGenerator(), jaxgan.models.DCGANDiscriminator()
    state_g, state_d = jaxgan.create_states(key, G, D, tx_g, tx_d, latent_dim=100,
                                            image_shape=(28, 28, 1))
    train_step = jaxgan.make_train_step(G, D, "hinge")
    state_g, state_d, metrics = jax.jit(train_step)(state_g, state_d, batch, key)

The step's building blocks (``losses``, ``state``, ``rng``, ``augment``, ``optim``), the
steps (``steps``) and the networks (``models``) load with the package. ``data``,
``parallel``, ``evaluators``, ``training`` (the loop, configs, checkpoints) and ``cli`` load
on first use,
so that importing jaxgan loads neither TFDS, Orbax nor the command line's flags (absl itself
comes with Flax and Optax).
"""

__version__ = "0.6.0"  # before the imports: modules of the package read it

import importlib

from jaxgan import augment, cpu, errors, losses, models, optim, rng, steps, sweep
from jaxgan.optim import lazy_adam
from jaxgan.state import NetState, abstract_states, create_states
from jaxgan.steps.common import sample_latent
from jaxgan.steps.noise import TrainStep, generate, make_train_step, sample_labels

_LAZY = ("cli", "data", "evaluators", "parallel", "training")


def __getattr__(name: str):
  if name in _LAZY:
    return importlib.import_module(f"jaxgan.{name}")
  raise AttributeError(f"module 'jaxgan' has no attribute {name!r}")


__all__ = [
    "NetState",
    "TrainStep",
    "abstract_states",
    "augment",
    "cli",
    "cpu",
    "create_states",
    "data",
    "errors",
    "evaluators",
    "generate",
    "lazy_adam",
    "losses",
    "make_train_step",
    "models",
    "optim",
    "parallel",
    "rng",
    "sample_labels",
    "sample_latent",
    "steps",
    "sweep",
    "training",
]

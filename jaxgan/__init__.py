"""jaxgan: generative adversarial networks in JAX/Flax.

The public API::

    G, D = jaxgan.models.DCGANGenerator(), jaxgan.models.DCGANDiscriminator()
    state_g, state_d = jaxgan.create_states(key, G, D, tx_g, tx_d, latent_dim=100,
                                            image_shape=(28, 28, 1))
    train_step = jaxgan.make_train_step(G, D, "hinge")
    state_g, state_d, metrics = jax.jit(train_step)(state_g, state_d, batch, key)
"""

__version__ = "0.5.0"  # before the imports: modules of the package read it

from jaxgan import augment, cli, cpu, errors, losses, models, rng, sweep
from jaxgan.state import NetState, abstract_states, create_states
from jaxgan.step import (
    TrainStep,
    generate,
    lazy_adam,
    make_train_step,
    sample_labels,
    sample_latent,
)

__all__ = [
    "NetState",
    "TrainStep",
    "abstract_states",
    "augment",
    "cli",
    "cpu",
    "create_states",
    "errors",
    "generate",
    "lazy_adam",
    "losses",
    "make_train_step",
    "models",
    "rng",
    "sample_labels",
    "sample_latent",
    "sweep",
]

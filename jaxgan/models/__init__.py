"""Generator and discriminator modules (Flax Linen), one file per family.

Every module here, and any module a user brings, follows one call signature:
``G(z, train=...) -> images [B, ...]`` and ``D(x, train=...) -> logits [B]`` (or ``[B, 1]``).
"""

from jaxgan.models.dcgan import DCGANDiscriminator, DCGANGenerator
from jaxgan.models.layers import UPSAMPLE_METHODS, ExampleDropout, UpConv
from jaxgan.models.mlp import MLPDiscriminator, MLPGenerator

__all__ = [
    "DCGANDiscriminator", "DCGANGenerator", "ExampleDropout", "MLPDiscriminator", "MLPGenerator",
    "UPSAMPLE_METHODS", "UpConv",
]

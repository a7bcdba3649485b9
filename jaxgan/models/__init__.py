"""Generator and discriminator modules (Flax Linen), one file per family.

Every module here, and any module a user brings, follows one call signature:
``G(z, train=...) -> images [B, ...]`` and ``D(x, train=...) -> logits [B]`` (or ``[B, 1]``);
a class-conditional pair takes int32 class ids ``y [B]`` too: ``G(z, y, train=...)`` and
``D(x, y, train=...)``. The translation networks (``translation``) map images to images:
``G(x, train=...) -> images``, ``D(x, train=...) -> patch logits [B, h, w]``.
"""

from jaxgan.models.dcgan import DCGANDiscriminator, DCGANGenerator
from jaxgan.models.layers import UPSAMPLE_METHODS, ExampleDropout, UpConv
from jaxgan.models.mlp import MLPDiscriminator, MLPGenerator
from jaxgan.models.r3gan import R3GANDiscriminator, R3GANGenerator, r3gan_cifar10, r3gan_ffhq64
from jaxgan.models.resnet import (
    ConditionalBatchNorm,
    ResNetDiscriminator,
    ResNetGenerator,
    SelfAttention,
    biggan32,
    sngan32,
)
from jaxgan.models.stylegan2 import (
    StyleGAN2Discriminator,
    StyleGAN2Generator,
    stylegan2_cifar,
    stylegan2_small,
)
from jaxgan.models.translation import (
    InstanceNorm,
    PatchDiscriminator,
    ResNetTranslator,
    UNetTranslator,
)

__all__ = [
    "ConditionalBatchNorm", "DCGANDiscriminator", "DCGANGenerator", "ExampleDropout",
    "InstanceNorm", "MLPDiscriminator", "MLPGenerator", "PatchDiscriminator",
    "R3GANDiscriminator", "R3GANGenerator",
    "ResNetDiscriminator", "ResNetGenerator", "ResNetTranslator", "SelfAttention",
    "StyleGAN2Discriminator", "StyleGAN2Generator", "UNetTranslator", "UPSAMPLE_METHODS",
    "UpConv", "biggan32", "r3gan_cifar10", "r3gan_ffhq64", "sngan32", "stylegan2_cifar",
    "stylegan2_small",
]

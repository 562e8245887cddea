"""CycleGAN (Zhu et al. 2017): two generators that translate between two unpaired picture domains.

A generator is an encoder, a stack of residual blocks and a decoder (Johnson et al.'s "ResNet"
generator): two stride-2 convolutions shrink the picture 4x, six residual blocks repaint it at that
size, and two upsample-then-convolve steps grow it back. Upsampling followed by a 3x3 convolution
replaces transposed convolutions, whose uneven overlap paints checkerboards. Instance norm
normalises each picture on its own, so a translation does not depend on the rest of the batch.
Everything is convolutional, so a generator trained on 128 px pictures runs on any size whose
sides are multiples of 4.

The discriminator is a PatchGAN: it scores overlapping patches of about 70x70 px as real or fake,
which judges texture (stripes, hair) rather than layout.

`checkpoints/horse2zebra` ships the two generators only (`CycleGenerators`); the discriminators
are needed only to train and stay in the training run's folder.

No `from __future__ import annotations` here: PyTorchModelHubMixin reads the config's type
annotation at run time to rebuild the dataclass from config.json.
"""

from dataclasses import dataclass, field

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn


@dataclass
class CycleGANConfig:
    base_channels: int = 32  # the first layer's width; doubled at each of the two downsamplings
    residual_blocks: int = 6  # at 1/4 of the picture size: where the repainting happens
    image_size: int = 128  # the training size; any multiple of 4 works at inference
    domains: list[str] = field(default_factory=lambda: ["horse", "zebra"])  # domain A, domain B
    training_data: str = "procedural"  # what it learned from, shown by the app


def conv_norm_relu(in_ch: int, out_ch: int, kernel: int, stride: int = 1) -> list[nn.Module]:
    """Reflection padding (no dark borders), a convolution, instance norm and ReLU; H and W shrink by `stride`."""
    return [
        nn.ReflectionPad2d(kernel // 2),
        nn.Conv2d(in_ch, out_ch, kernel, stride=stride, bias=False),
        nn.InstanceNorm2d(out_ch, affine=True),
        nn.ReLU(inplace=True),
    ]


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        layers = conv_norm_relu(channels, channels, 3)
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=False), nn.InstanceNorm2d(channels, affine=True)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """(B, 3, H, W) in [-1, 1] -> (B, 3, H, W) in [-1, 1]; H and W multiples of 4."""

    def __init__(self, base_channels: int = 32, residual_blocks: int = 6):
        super().__init__()
        c = base_channels
        layers = conv_norm_relu(3, c, 7)  # (B, c, H, W)
        layers += conv_norm_relu(c, 2 * c, 3, stride=2)  # (B, 2c, H/2, W/2)
        layers += conv_norm_relu(2 * c, 4 * c, 3, stride=2)  # (B, 4c, H/4, W/4)
        layers += [ResidualBlock(4 * c) for _ in range(residual_blocks)]
        layers += [nn.Upsample(scale_factor=2, mode="nearest"), *conv_norm_relu(4 * c, 2 * c, 3)]  # (B, 2c, H/2, W/2)
        layers += [nn.Upsample(scale_factor=2, mode="nearest"), *conv_norm_relu(2 * c, c, 3)]  # (B, c, H, W)
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(c, 3, 7), nn.Tanh()]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class PatchDiscriminator(nn.Module):
    """(B, 3, H, W) in [-1, 1] -> (B, 1, H/8 - 2, W/8 - 2) realness scores, one per ~70 px patch."""

    def __init__(self, base_channels: int = 32):
        super().__init__()
        c = base_channels

        def down(in_ch: int, out_ch: int, stride: int, norm: bool) -> list[nn.Module]:
            layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, 4, stride=stride, padding=1, bias=not norm)]
            if norm:
                layers.append(nn.InstanceNorm2d(out_ch, affine=True))
            return [*layers, nn.LeakyReLU(0.2, inplace=True)]

        self.layers = nn.Sequential(
            *down(3, c, 2, norm=False),
            *down(c, 2 * c, 2, norm=True),
            *down(2 * c, 4 * c, 2, norm=True),
            *down(4 * c, 8 * c, 1, norm=True),
            nn.Conv2d(8 * c, 1, 4, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class CycleGenerators(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="pytorch",
    license="mit",
    tags=["image-to-image", "cyclegan", "unpaired-translation", "model-show"],
    repo_url="https://github.com/model-show/model-show",
):
    """Both directions in one checkpoint: `horse_to_zebra` (A -> B) and `zebra_to_horse` (B -> A)."""

    def __init__(self, config: CycleGANConfig):
        super().__init__()
        self.config = config
        self.horse_to_zebra = ResnetGenerator(config.base_channels, config.residual_blocks)
        self.zebra_to_horse = ResnetGenerator(config.base_channels, config.residual_blocks)

    def generator(self, direction: str) -> ResnetGenerator:
        """ "horse_to_zebra" or "zebra_to_horse"."""
        if direction not in ("horse_to_zebra", "zebra_to_horse"):
            raise ValueError(f"direction must be 'horse_to_zebra' or 'zebra_to_horse', not {direction!r}")
        return getattr(self, direction)

    def forward(self, images: torch.Tensor, direction: str = "horse_to_zebra") -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, 3, H, W) in [0, 1], translated; H and W multiples of 4."""
        return (self.generator(direction)(images * 2 - 1) + 1) / 2

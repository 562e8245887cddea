"""A small U-Net (Ronneberger et al. 2015) that labels every pixel.

The encoder halves the picture at each level and doubles the channels: it learns *what* is there.
The decoder doubles the picture back, level by level: it learns *where*. Skip connections hand
each decoder level the encoder's feature maps of the same size, so fine outlines lost in the
small, deep maps come back. Upsampling is bilinear followed by a 3x3 convolution (no transposed
convolutions: no checkerboard artefacts). The network is fully convolutional, so it reads any
picture whose sides are multiples of 2^levels.

No `from __future__ import annotations` here: PyTorchModelHubMixin reads the config's type
annotation at run time to rebuild the dataclass from config.json.
"""

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from data.digit_scenes import CLASS_COLOURS, CLASS_NAMES


@dataclass
class UNetConfig:
    in_channels: int = 1  # greyscale
    channels: list[int] = field(default_factory=lambda: [16, 32, 64, 128])  # per encoder level; the last is the bottleneck
    class_names: list[str] = field(default_factory=lambda: list(CLASS_NAMES))  # index 0 is the background
    class_colours: list[str] = field(default_factory=lambda: list(CLASS_COLOURS))  # "#rrggbb" per class, for overlays
    image_size: int = 128  # the canvas it was trained on; any multiple of 2^(levels - 1) works


def conv_block(in_ch: int, out_ch: int) -> nn.Sequential:
    """Two 3x3 convolutions with batch norm and ReLU; keeps H and W."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


def encode(encoder: nn.ModuleList, images: torch.Tensor) -> list[torch.Tensor]:
    """The encoder half: (B, 1, H, W) in [0, 1] -> each level's output, (B, C_level, H / 2^level, W / 2^level)."""
    x = (images - 0.5) / 0.5
    levels = []
    for level, block in enumerate(encoder):
        x = block(x if level == 0 else F.max_pool2d(x, 2))
        levels.append(x)
    return levels


class UNet(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="pytorch",
    license="mit",
    tags=["image-segmentation", "unet", "mnist", "model-show"],
    repo_url="https://github.com/model-show/model-show",
):
    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        ch = config.channels
        self.encoder = nn.ModuleList(
            [conv_block(config.in_channels, ch[0])] + [conv_block(a, b) for a, b in zip(ch[:-1], ch[1:], strict=True)]
        )
        # Decoder level i: upsample the deeper map, reduce it to ch[i] channels, concatenate the skip, convolve.
        self.reduce = nn.ModuleList([nn.Conv2d(ch[i + 1], ch[i], 3, padding=1) for i in range(len(ch) - 1)])
        self.decoder = nn.ModuleList([conv_block(2 * ch[i], ch[i]) for i in range(len(ch) - 1)])
        self.classify = nn.Conv2d(ch[0], len(config.class_names), 1)

    @property
    def multiple(self) -> int:
        """Input sides must be multiples of this."""
        return 2 ** (len(self.config.channels) - 1)

    def forward_with_features(self, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(B, 1, H, W) in [0, 1] -> ((B, classes, H, W) logits, every encoder and decoder level's output)."""
        skips = encode(self.encoder, images)
        features, x = list(skips), skips[-1]
        for i in reversed(range(len(self.decoder))):
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            x = self.decoder[i](torch.cat([skips[i], self.reduce[i](x)], dim=1))
            features.append(x)
        return self.classify(x), features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) in [0, 1] -> (B, classes, H, W) logits."""
        return self.forward_with_features(images)[0]

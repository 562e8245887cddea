"""A feature-memory defect detector (the PatchCore idea, Roth et al. 2022) on EfficientNet-Lite0.

Nothing is trained. A pretrained ImageNet network describes every 8 x 8 px patch of a picture
with its mid-level features (stride 8 and stride 16 maps, joined and averaged over 3 x 3
neighbours). The memory bank stores such descriptions of patches from flawless swatches. A patch of
a new picture is as suspicious as its distance to the nearest remembered patch: weave that was
seen before is close to something in the bank; a hole or a stain is far from everything.

As with the autoencoder, the map is standardised with the mean and spread of the same distances on
flawless validation swatches, and the thresholds calibrated there are stored in the config, one
entry per product. Each product has its own bank (`bank` is (products, bank_size, D)): a patch is
compared only with its own product's patches, which is 3x faster than one shared bank and, measured
on the three procedural products, scores exactly the same (their patches never come close).
The bank is kept in float16 (half the size); distances are computed in float32.
"""

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from models.autoencoder import blur
from models.efficientnet_lite import EfficientNetLite

FEATURE_BLOCKS = (4, 10)  # EfficientNet-Lite0 block outputs: stride 8 (40 channels) and stride 16 (112 channels)


@dataclass
class PatchMemoryConfig:
    feature_dim: int = 152  # 40 + 112
    bank_size: int = 16384  # patches remembered per product
    image_size: int = 256
    smooth_sigma: float = 4.0  # px, blur of the upsampled distance map
    # Calibration, one entry per product (as in AutoencoderConfig):
    products: list[str] = field(default_factory=lambda: ["fabric"])
    error_mean: list[float] = field(default_factory=lambda: [0.0])  # mean distance on flawless validation swatches
    error_std: list[float] = field(default_factory=lambda: [1.0])
    pixel_threshold: list[float] = field(default_factory=lambda: [4.0])
    image_threshold: list[float] = field(default_factory=lambda: [6.0])


def patch_features(backbone: EfficientNetLite, images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> (B, 152, H/8, W/8) locally averaged mid-level features."""
    x = backbone.stem(backbone.normalize(images))
    taken = []
    for index, block in enumerate(backbone.blocks):
        x = block(x)
        if index in FEATURE_BLOCKS:
            taken.append(x)
        if index == max(FEATURE_BLOCKS):
            break
    fine, coarse = taken
    coarse = F.interpolate(coarse, size=fine.shape[-2:], mode="bilinear", align_corners=False)
    return F.avg_pool2d(torch.cat([fine, coarse], 1), 3, stride=1, padding=1)


class PatchMemory(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="pytorch",
    license="apache-2.0",
    tags=["anomaly-detection", "patchcore", "model-show"],
    repo_url="https://github.com/model-show/model-show",
):
    """The memory bank and its calibration; the backbone is the shipped `imagenet-classifier`."""

    def __init__(self, config: PatchMemoryConfig):
        super().__init__()
        self.config = config
        n_products = len(config.products)
        self.register_buffer("bank", torch.zeros(n_products, config.bank_size, config.feature_dim, dtype=torch.float16))

    def distances(self, features: torch.Tensor, product: int = 0, chunk: int = 4096) -> torch.Tensor:
        """(B, D, h, w) -> (B, 1, h, w) distance of each patch to the nearest remembered patch of the product."""
        b, d, h, w = features.shape
        queries = features.permute(0, 2, 3, 1).reshape(-1, d).float()
        bank = self.bank[product].float()
        nearest = torch.cat([torch.cdist(queries[i : i + chunk], bank).amin(1) for i in range(0, len(queries), chunk)])
        return nearest.view(b, 1, h, w)

    def raw_map(self, backbone: EfficientNetLite, images: torch.Tensor, product: int = 0) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 1, H, W) nearest-patch distance (to the product's bank), upsampled and blurred."""
        dist = self.distances(patch_features(backbone, images), product)
        dist = F.interpolate(dist, size=images.shape[-2:], mode="bilinear", align_corners=False)
        return blur(dist, self.config.smooth_sigma)

    def anomaly_map(self, backbone: EfficientNetLite, images: torch.Tensor, product: int = 0) -> torch.Tensor:
        """(B, 3, H, W) -> standardised anomaly map (B, 1, H, W) on product's fixed scale from normal data."""
        return (self.raw_map(backbone, images, product) - self.config.error_mean[product]) / self.config.error_std[product]


def build_bank(features: torch.Tensor, size: int, seed: int = 0) -> torch.Tensor:
    """Pick `size` patches of (N, D) features that cover them well: greedy farthest-point (coreset)
    sampling from a random start, on a random 128-dimensional projection for speed."""
    generator = torch.Generator().manual_seed(seed)
    if len(features) <= size:
        return features.clone()
    projection = torch.randn(features.shape[1], 128, generator=generator) / 128**0.5
    projected = features.float() @ projection
    norms = (projected**2).sum(1)  # |x|^2, so that |x - p|^2 = |x|^2 - 2 x.p + |p|^2 costs one matrix-vector product
    chosen = [int(torch.randint(len(features), (1,), generator=generator))]
    nearest = norms - 2 * projected @ projected[chosen[0]] + norms[chosen[0]]  # squared distances: same argmax
    to_pick = torch.empty_like(nearest)
    for _ in range(size - 1):
        pick = int(nearest.argmax())
        chosen.append(pick)
        torch.addmv(norms, projected, projected[pick], alpha=-2, out=to_pick)  # in place: no new 100k-long tensors per step
        torch.minimum(nearest, to_pick.add_(norms[pick]), out=nearest)
    return features[chosen].clone()

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

import numpy as np
import torch
from huggingface_hub import PyTorchModelHubMixin
from PIL import Image
from torch import nn

from data.photos import to_model_input
from models.digit_judge import frechet_distance
from models.efficientnet_lite import EfficientNetLite
from models.precision import cpu_has_native_bf16


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


ZEBRA_CLASS, SORREL_CLASS = 340, 339  # ImageNet-1k indices


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [0, 1] -> (B, H, W, 3) uint8."""
    return (images.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).contiguous().cpu().numpy()


@torch.inference_mode()
def translate(generators: CycleGenerators, images: np.ndarray, direction: str, batch: int = 16) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, H, W, 3) uint8, translated in `direction`."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    device = next(generators.parameters()).device
    return np.concatenate([to_uint8(generators(x[i : i + batch].to(device), direction)) for i in range(0, len(x), batch)])


@torch.inference_mode()
def judge_pictures(judge: EfficientNetLite, images: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    """(N, H, W, 3) uint8 -> ((N, 1000) ImageNet probabilities, (N, 1280) pooled features)."""
    x = torch.stack([to_model_input(im, judge.config.image_size) for im in images])
    probs, feats = [], []
    for i in range(0, len(x), 32):
        f = judge.pooled_features(x[i : i + 32])
        feats.append(f)
        probs.append(judge.classifier(f).softmax(-1))
    return torch.cat(probs), torch.cat(feats).numpy().astype(np.float64)


def in_top5(probs: torch.Tensor, class_index: int) -> float:
    """Share of pictures whose five most likely classes include `class_index`."""
    return float((probs.topk(5).indices == class_index).any(-1).float().mean())


def evaluate(generators: CycleGenerators, judge: EfficientNetLite, horses: np.ndarray, zebras: np.ndarray) -> dict[str, float]:
    """The honest judge: our ImageNet classifier, which learned from real photos, on held-out animals."""
    to_zebra = translate(generators, horses, "horse_to_zebra")
    to_horse = translate(generators, zebras, "zebra_to_horse")
    horses_back = translate(generators, to_zebra, "zebra_to_horse")
    zebras_back = translate(generators, to_horse, "horse_to_zebra")
    p_horses, f_horses = judge_pictures(judge, horses)
    p_zebras, f_zebras = judge_pictures(judge, zebras)
    p_to_zebra, f_to_zebra = judge_pictures(judge, to_zebra)
    p_to_horse, _ = judge_pictures(judge, to_horse)

    def l1(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean() / 255)

    return {
        "zebra_rate_real": in_top5(p_zebras, ZEBRA_CLASS),
        "horse_rate_real": in_top5(p_horses, SORREL_CLASS),
        "zebra_rate_before": in_top5(p_horses, ZEBRA_CLASS),
        "zebra_rate_after": in_top5(p_to_zebra, ZEBRA_CLASS),
        "horse_rate_after": in_top5(p_to_horse, SORREL_CLASS),
        "zebra_rate_of_zebras_to_horses": in_top5(p_to_horse, ZEBRA_CLASS),
        "fid_effnet": frechet_distance(f_to_zebra, f_zebras),
        "fid_effnet_baseline": frechet_distance(f_horses, f_zebras),
        "cycle_l1": (l1(horses_back, horses) + l1(zebras_back, zebras)) / 2,
        "cycle_l1_horse": l1(horses_back, horses),
        "cycle_l1_zebra": l1(zebras_back, zebras),
    }


def judge_reference(judge: EfficientNetLite, horses: np.ndarray, zebras: np.ndarray) -> dict[str, torch.Tensor]:
    """What pictures like the training pictures look like to the judge: the mean of its pooled features over
    both domains, and a cosine-similarity threshold (1st percentile minus 0.1) below which the app says a
    picture is unlike them. Measured on validation pictures, never the test split."""
    _, features = judge_pictures(judge, np.concatenate([horses, zebras]))
    features = torch.from_numpy(features).float()
    mean = features.mean(0)
    similarity = torch.nn.functional.cosine_similarity(features, mean[None], dim=1)
    return {"mean_feature": mean, "threshold": torch.tensor(float(np.percentile(similarity.numpy(), 1)) - 0.1)}


def prepare_picture(rgb: np.ndarray, size: int) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, h, w) in [0, 1] with the long side `size` and both sides multiples of 4."""
    h, w = rgb.shape[:2]
    scale = size / max(h, w)
    new_w, new_h = (max(4, round(side * scale / 4) * 4) for side in (w, h))
    im = Image.fromarray(rgb).resize((new_w, new_h), Image.Resampling.BICUBIC if scale > 1 else Image.Resampling.LANCZOS)
    return torch.from_numpy(np.asarray(im, dtype=np.float32) / 255).permute(2, 0, 1)[None].contiguous()


def run_generator(net: CycleGenerators, x: torch.Tensor, direction: str) -> torch.Tensor:
    """(1, 3, H, W) in [0, 1] -> the translation, same shape, in fp32. bf16 autocast on a CPU with native bf16 (close to
    twice as fast there; benchmarks/ measures it); fp32 elsewhere (emulated bf16 is far slower)."""
    device = next(net.parameters()).device
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=device.type == "cpu" and cpu_has_native_bf16()):
        return net(x.to(device), direction).float()

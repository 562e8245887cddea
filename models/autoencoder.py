"""A convolutional autoencoder that finds flaws by failing to draw them.

The encoder squeezes a colour picture through four stride-2 convolutions into a small grid of
numbers (1/16 of the side, `latent` channels); the decoder paints the picture back with
upsample-then-convolve steps. Trained only on flawless fabric, it learns to redraw weave, and
nothing else: a hole or a stain comes back as plain cloth, and the difference between input and
reconstruction marks the flaw.

The anomaly map is computed here too, because its calibration travels with the weights. It adds two
errors, both blurred: a structural one (mean of L1 and 1 - SSIM), which weave edges dominate, and a
colour one (the length of the blurred RGB difference), because an autoencoder redraws a stain's
texture well and only its colour gives it away. The blur (`smooth_sigma`) and `colour_weight` were
chosen by the training script on a tuning split of defective swatches that the test split never shares.
The sum is standardised with its mean and standard deviation on flawless validation swatches
(`error_mean`, `error_std`). Every image is scored on that one fixed scale; nothing is normalised per
image. The pixel and image thresholds were calibrated on the same flawless validation swatches and
are stored in the config. One network
redraws every product it was trained on, but each product (`products`) has its own scale and
thresholds, as each line on a factory floor would: entry k of every calibration list is product k.

No `from __future__ import annotations` here: PyTorchModelHubMixin reads the config's type
annotation at run time to rebuild the dataclass from config.json.
"""

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn


@dataclass
class AutoencoderConfig:
    channels: list[int] = field(default_factory=lambda: [24, 48, 96, 128])  # per stride-2 encoder stage
    latent: int = 32  # channels at the bottleneck (1/16 of the side)
    image_size: int = 256  # swatch side the thresholds were calibrated at
    smooth_sigma: float = 3.0  # px, blur of the error map before scoring
    # Weight of the colour error next to the structural one: the structural error barely sees a stain of the weave's own
    # texture in the wrong colour. 0 in checkpoints calibrated before it existed.
    colour_weight: float = 0.0
    # px along each edge whose own error is left out of the map and its calibration: the network sees zero padding there
    # and redraws even flawless cloth badly, so without the band every swatch's hottest pixel sits on its edge. The band
    # repeats the nearest reliable value instead, so a flaw that reaches the edge stays marked up to it (the card says
    # how wide the error stays high on flawless swatches). 0 in checkpoints from before it existed.
    border: int = 0
    # Calibration, one entry per product (data/fabric.py PRODUCTS, or a visitor's own cloth):
    products: list[str] = field(default_factory=lambda: ["fabric"])
    error_mean: list[float] = field(default_factory=lambda: [0.0])  # mean per-pixel error on flawless validation swatches
    error_std: list[float] = field(default_factory=lambda: [1.0])  # its standard deviation: the map is (error - mean) / std
    pixel_threshold: list[float] = field(default_factory=lambda: [4.0])  # standardised error above which a pixel is defective
    image_threshold: list[float] = field(default_factory=lambda: [6.0])  # image score (max of the map) above which it is defective


def gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, int(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


def blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """(N, 1, H, W) -> the same, Gaussian-blurred (separable, reflect padding).

    The N maps go through as the channels of one depthwise convolution: as a batch of N one-channel images, oneDNN's
    time on a CPU jumps about by an order of magnitude from call to call; as channels it stays low and steady."""
    n, _, h, w = maps.shape
    k = gaussian_kernel(sigma).to(maps)
    r = len(k) // 2
    x = maps.reshape(1, n, h, w)
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).expand(n, 1, 1, -1), groups=n)
    x = F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1).expand(n, 1, -1, 1), groups=n)
    return x.reshape(n, 1, h, w)


def ssim_map(x: torch.Tensor, y: torch.Tensor, sigma: float = 1.5) -> torch.Tensor:
    """Structural similarity per pixel (Wang et al. 2004) on (B, C, H, W) in [0, 1] -> (B, 1, H, W)."""
    c1, c2 = 0.01**2, 0.03**2
    # Always in float32: E[x^2] - E[x]^2 in bf16 can go negative and turn the ratio into inf/NaN.
    with torch.autocast(device_type=x.device.type, enabled=False):
        return _ssim_map(x.float(), y.float(), sigma, c1, c2)


def _ssim_map(x: torch.Tensor, y: torch.Tensor, sigma: float, c1: float, c2: float) -> torch.Tensor:
    b, c, h, w = x.shape
    # The five local statistics in one blur: (5 * B * C, 1, H, W).
    stats = blur(torch.stack([x, y, x * x, y * y, x * y]).reshape(5 * b * c, 1, h, w), sigma).view(5, b * c, 1, h, w)
    mu_x, mu_y = stats[0], stats[1]
    var_x = stats[2] - mu_x**2
    var_y = stats[3] - mu_y**2
    cov = stats[4] - mu_x * mu_y
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return s.view(b, c, h, w).mean(1, keepdim=True)


def conv_bn(in_ch: int, out_ch: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(out_ch), nn.LeakyReLU(0.1, inplace=True)
    )


class FabricAutoencoder(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="pytorch",
    license="mit",
    tags=["anomaly-detection", "autoencoder", "model-show"],
    repo_url="https://github.com/model-show/model-show",
):
    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        self.config = config
        ch = config.channels
        deep = len(ch) // 2  # stages from here on are small enough for a second convolution
        encoder, in_ch = [], 3
        for stage, out_ch in enumerate(ch):
            encoder.append(conv_bn(in_ch, out_ch, stride=2))
            if stage >= deep:
                encoder.append(conv_bn(out_ch, out_ch))
            in_ch = out_ch
        encoder.append(nn.Conv2d(in_ch, config.latent, 1))
        self.encoder = nn.Sequential(*encoder)
        # Mirror image: upsample, then convolve; full resolution gets only the final 3x3 to RGB.
        decoder, in_ch = [conv_bn(config.latent, ch[-1])], ch[-1]
        for stage in reversed(range(len(ch) - 1)):
            decoder += [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), conv_bn(in_ch, ch[stage])]
            if stage >= deep:
                decoder.append(conv_bn(ch[stage], ch[stage]))
            in_ch = ch[stage]
        decoder += [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), nn.Conv2d(in_ch, 3, 3, padding=1), nn.Sigmoid()]
        self.decoder = nn.Sequential(*decoder)

    @property
    def multiple(self) -> int:
        return 2 ** len(self.config.channels)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1], H and W multiples of 16 -> the reconstruction, same shape.

        channels_last inside: on a CPU this layout runs the convolutions two to three times faster (benchmarks/ has the latency)."""
        return self.decoder(self.encoder(images.contiguous(memory_format=torch.channels_last)))

    def error_parts(
        self, images: torch.Tensor, reconstruction: torch.Tensor, sigma: float | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(structural, colour) per-pixel errors, both blurred (sigma px; default the config's), each (B, 1, H, W).

        structural: mean of L1 (over colours) and (1 - SSIM) / 2. colour: length of the blurred RGB difference, which
        stays near 0 on flawless cloth (the weave's small errors cancel out) and grows over a patch of wrong colour."""
        sigma = self.config.smooth_sigma if sigma is None else sigma
        difference = images - reconstruction
        structural = blur((difference.abs().mean(1, keepdim=True) + (1 - ssim_map(images, reconstruction)) / 2) / 2, sigma)
        b, c, h, w = difference.shape
        blurred = blur(difference.reshape(b * c, 1, h, w), sigma).reshape(b, c, h, w)
        # The length over colours, spelled out: torch's CPU norm(dim=1) is two orders of magnitude slower on this shape.
        colour = blurred.square().sum(1, keepdim=True).sqrt()
        return structural, colour

    def raw_error(self, images: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
        """The defect map before standardisation: structural + colour_weight * colour. (B, 1, H, W)."""
        structural, colour = self.error_parts(images, reconstruction)
        return structural + self.config.colour_weight * colour

    def calibration_error(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> the raw error inside the border, (B, 1, H - 2 border, W - 2 border): what calibration measures."""
        return self.interior(self.raw_error(images, self(images)))

    def interior(self, maps: torch.Tensor) -> torch.Tensor:
        """(..., H, W) -> the part of the maps more than `border` px from every edge: what calibration looks at."""
        b = self.config.border
        return maps[..., b : maps.shape[-2] - b, b : maps.shape[-1] - b] if b > 0 else maps

    def anomaly_map(self, images: torch.Tensor, product: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) -> (reconstruction, standardised anomaly map (B, 1, H, W)) on product's fixed scale from normal data.

        The `border` band repeats the nearest value inside it (`fill_border`): its own error measures the zero padding, not the cloth."""
        reconstruction = self(images)
        error = self.raw_error(images, reconstruction)
        return reconstruction, self.fill_border((error - self.config.error_mean[product]) / self.config.error_std[product])

    def fill_border(self, maps: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) maps -> the same, with the `border` band repeating the nearest value inside it."""
        b = self.config.border
        return F.pad(self.interior(maps), (b, b, b, b), mode="replicate") if b > 0 else maps

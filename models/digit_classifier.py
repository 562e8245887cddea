"""A small convolutional network for 28x28 handwritten digits.

Built only from the talk's building blocks: 3x3 convolutions that look for strokes and corners,
max-pooling that halves the picture and keeps the strongest response, dropout against
memorising, and a fully connected head that votes for one of ten classes. Batch normalisation
after each convolution keeps training stable with a high learning rate.

No `from __future__ import annotations` here: PyTorchModelHubMixin reads the config's type
annotation at run time to rebuild the dataclass from config.json.
"""

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from data.font_digits import font_digit_set
from data.mnist import sketch_to_mnist


@dataclass
class DigitClassifierConfig:
    image_size: int = 28  # MNIST canvas, px
    labels: list[str] = field(default_factory=lambda: [str(d) for d in range(10)])
    channels: list[int] = field(default_factory=lambda: [32, 64, 128])  # per conv block; each block halves H and W
    hidden: int = 128  # width of the fully connected layer
    dropout: float = 0.4  # in the head; the conv blocks use a quarter of it
    # Normalisation: the mean and std of MNIST pixels in [0, 1]; inference must use the same.
    mean: float = 0.1307
    std: float = 0.3081
    # Sketch -> MNIST preprocessing (data.mnist.sketch_to_mnist), stored with the weights so
    # the app prepares an input exactly as the benchmark did.
    box_size: int = 20  # the digit's longer side is scaled to this, then centred by mass
    ink_threshold: float = 0.25  # pixels above this (after contrast stretch) count as ink
    min_stroke_fraction: float = 0.09  # thinner strokes are thickened to this share of the height


class DigitClassifier(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="pytorch",
    license="mit",
    tags=["image-classification", "mnist", "model-show"],
    repo_url="https://github.com/model-show/model-show",
):
    def __init__(self, config: DigitClassifierConfig):
        super().__init__()
        self.config = config
        blocks = []
        in_ch = 1
        for out_ch in config.channels:
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
                    nn.BatchNorm2d(out_ch),
                    nn.ReLU(inplace=True),
                    nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
                    nn.BatchNorm2d(out_ch),
                    nn.ReLU(inplace=True),
                    nn.MaxPool2d(2),  # floor: 28 -> 14 -> 7 -> 3
                    nn.Dropout2d(config.dropout / 4),
                )
            )
            in_ch = out_ch
        self.features = nn.Sequential(*blocks)
        side = config.image_size
        for _ in config.channels:
            side //= 2
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_ch * side * side, config.hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden, len(config.labels)),
        )

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28, 28) in [0, 1] -> standardised network input."""
        return (images - self.config.mean) / self.config.std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28, 28) pixels in [0, 1] -> (B, 10) logits."""
        return self.head(self.features(self.normalize(images)))

    def forward_with_activations(self, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits and the output of every conv block: [(B, 32, 14, 14), (B, 64, 7, 7), (B, 128, 3, 3)]."""
        x = self.normalize(images)
        activations = []
        for block in self.features:
            x = block(x)
            activations.append(x)
        return self.head(x), activations

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28, 28) in [0, 1] -> (B, hidden) activations of the last hidden layer (the features
        a GAN's samples are compared on: FID, diversity)."""
        return self.head[:-2](self.features(self.normalize(images)))  # Flatten, Linear, ReLU; stops before Dropout

    def first_layer(self) -> nn.Sequential:
        """The first 3x3 convolution with its batch norm and ReLU: (B, 1, 28, 28) normalised -> (B, 32, 28, 28)."""
        return self.features[0][:3]

    @torch.inference_mode()
    def predict_proba(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28, 28) in [0, 1] -> (B, 10) class probabilities."""
        return F.softmax(self(images), dim=-1)


@dataclass
class PixelArithmetic:
    """The arithmetic behind one pixel of a first-layer feature map, as CNN Explainer shows it."""

    window: np.ndarray  # (3, 3) normalised input around the pixel; the padding outside the picture is 0
    weights: np.ndarray  # (3, 3) the learned filter
    total: float  # sum of window * weights (the convolution has no bias: batch norm shifts instead)
    mean: float  # batch norm: the running mean and standard deviation of `total` over the training digits
    std: float
    gamma: float  # batch norm: the learned scale and shift
    beta: float
    pre_activation: float  # (total - mean) / std * gamma + beta
    value: float  # ReLU(pre_activation): the feature map's pixel

    @property
    def products(self) -> np.ndarray:
        return self.window * self.weights


@torch.inference_mode()
def first_layer_maps(model: DigitClassifier, images: torch.Tensor) -> torch.Tensor:
    """(B, 1, 28, 28) pixels in [0, 1] -> (B, 32, 28, 28): the first convolution after batch norm and ReLU."""
    return model.first_layer()(model.normalize(images))


@torch.inference_mode()
def pixel_arithmetic(model: DigitClassifier, digit: np.ndarray, channel: int, row: int, column: int) -> PixelArithmetic:
    """How pixel (row, column) of first-layer map `channel` comes out of the (28, 28) digit in [0, 1]."""
    conv, norm = model.first_layer()[:2]
    x = model.normalize(torch.as_tensor(digit, dtype=torch.float32))
    padded = F.pad(x, (1, 1, 1, 1))  # the convolution's padding=1, in normalised units
    window = padded[row : row + 3, column : column + 3].double()
    weights = conv.weight[channel, 0].detach().cpu().double()
    total = float((window * weights).sum())
    mean = float(norm.running_mean[channel])
    std = float(torch.sqrt(norm.running_var[channel].double() + norm.eps))
    gamma, beta = float(norm.weight[channel]), float(norm.bias[channel])
    pre_activation = (total - mean) / std * gamma + beta
    return PixelArithmetic(window.numpy(), weights.numpy(), total, mean, std, gamma, beta, pre_activation, max(0.0, pre_activation))


def to_tensor(images_uint8: np.ndarray) -> torch.Tensor:
    """(N, 28, 28) uint8 -> (N, 1, 28, 28) float in [0, 1]."""
    return torch.from_numpy(images_uint8).float().div(255).unsqueeze(1)


@torch.inference_mode()
def evaluate(model: DigitClassifier, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of `model` on (N, 1, 28, 28) images in [0, 1]."""
    model.eval()
    device = next(model.parameters()).device
    correct, loss = 0, 0.0
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].to(device)
        y = labels[start : start + batch_size].to(device)
        logits = model(x).float()
        loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(-1) == y).sum().item()
    return correct / len(images), loss / len(images)


def font_digit_accuracy(model: DigitClassifier, variants_per_font: int = 5, seed: int = 0) -> tuple[float, int]:
    """Accuracy on digits rendered from the machine's fonts, prepared exactly like a sketch.

    Returns (accuracy, number of digits). Renderings that preprocessing rejects count as wrong."""
    c = model.config
    images, labels, _ = font_digit_set(variants_per_font=variants_per_font, seed=seed)
    prepared, ok = [], []
    for img in images:
        try:
            prepared.append(sketch_to_mnist(img, c.image_size, c.box_size, c.ink_threshold, c.min_stroke_fraction))
            ok.append(True)
        except ValueError:
            prepared.append(np.zeros((c.image_size, c.image_size), np.float32))
            ok.append(False)
    x = torch.from_numpy(np.stack(prepared)).unsqueeze(1)
    acc, _ = evaluate(model, x, torch.from_numpy(labels))
    return acc * np.mean(ok), len(labels)

"""A small convolutional network for 28x28 handwritten digits.

Built only from the talk's building blocks: 3x3 convolutions that look for strokes and corners,
max-pooling that halves the picture and keeps the strongest response, dropout against
memorising, and a fully connected head that votes for one of ten classes. Batch normalisation
after each convolution keeps training stable with a high learning rate.

No `from __future__ import annotations` here: PyTorchModelHubMixin reads the config's type
annotation at run time to rebuild the dataclass from config.json.
"""

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn


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

    @torch.inference_mode()
    def predict_proba(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28, 28) in [0, 1] -> (B, 10) class probabilities."""
        return F.softmax(self(images), dim=-1)

"""A class-conditional DCGAN for 28x28 digits (Radford et al. 2016, conditioned like Miyato & Koyama 2018).

The generator turns 64 random numbers plus a digit label into a picture: a linear layer makes a
7x7 stack of 256 feature maps, and two transposed convolutions double it to 14x14 and 28x28.
The discriminator looks at a picture and a label and scores "real digit of that class" against
"generated". Each learns from the other: the discriminator from its mistakes on both kinds of
picture, the generator from how the discriminator judged its pictures. Both ship: the generator as
the checkpoint's model, the discriminator (the "critic") beside it in `discriminator.safetensors`.

No `from __future__ import annotations`: PyTorchModelHubMixin reads the config annotation at run time.
"""

from dataclasses import dataclass

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from models.digit_classifier import DigitClassifier
from models.digit_judge import judge_digits


@dataclass
class DigitGeneratorConfig:
    latent_dim: int = 64  # length of the noise vector z
    num_classes: int = 10
    channels: int = 128  # feature maps at 7x7; halved at each upsampling
    image_size: int = 28


class DigitGenerator(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="pytorch",
    license="mit",
    tags=["gan", "dcgan", "conditional-image-generation", "mnist", "model-show"],
    repo_url="https://github.com/model-show/model-show",
):
    def __init__(self, config: DigitGeneratorConfig):
        super().__init__()
        self.config = config
        c = config.channels
        self.label_embedding = nn.Embedding(config.num_classes, config.latent_dim)
        self.project = nn.Sequential(nn.Linear(2 * config.latent_dim, c * 7 * 7, bias=False), nn.BatchNorm1d(c * 7 * 7), nn.ReLU(True))
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(c, c // 2, 4, stride=2, padding=1, bias=False),  # 7 -> 14
            nn.BatchNorm2d(c // 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(c // 2, c // 4, 4, stride=2, padding=1, bias=False),  # 14 -> 28
            nn.BatchNorm2d(c // 4),
            nn.ReLU(True),
            nn.Conv2d(c // 4, 1, 3, padding=1),
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """z (B, latent_dim), labels (B,) int -> images (B, 1, 28, 28) in [0, 1], white ink on black."""
        return self.from_class_vectors(z, self.label_embedding(labels))

    def from_class_vectors(self, z: torch.Tensor, class_vectors: torch.Tensor) -> torch.Tensor:
        """Like forward, but with the label already embedded (B, latent_dim): blending two digits'
        vectors draws the digits in between."""
        h = self.project(torch.cat([z, class_vectors], dim=1))
        h = h.view(-1, self.config.channels, 7, 7)
        return torch.sigmoid(self.upsample(h))

    def noise(self, n: int, seed: int) -> torch.Tensor:
        """(n, latent_dim) standard normal noise, the same for the same (n, seed) on every machine."""
        generator = torch.Generator().manual_seed(seed)
        return torch.randn(n, self.config.latent_dim, generator=generator)


class DigitDiscriminator(nn.Module):
    """Image + label -> realness score. Spectral norm keeps it smooth; the label enters by projection:
    score = w . h(x) + embed(y) . h(x), so it judges "a real 7", not just "a real digit"."""

    def __init__(self, num_classes: int = 10, channels: int = 64):
        super().__init__()
        c = channels
        self.features = nn.Sequential(
            spectral_norm(nn.Conv2d(1, c, 4, stride=2, padding=1)),  # 28 -> 14
            nn.LeakyReLU(0.2, True),
            spectral_norm(nn.Conv2d(c, 2 * c, 4, stride=2, padding=1)),  # 14 -> 7
            nn.LeakyReLU(0.2, True),
            spectral_norm(nn.Conv2d(2 * c, 4 * c, 3, stride=2, padding=1)),  # 7 -> 4
            nn.LeakyReLU(0.2, True),
        )
        # +1 feature: how much the batch varies (Karras et al. 2018). A generator that draws the same
        # digit for every noise vector makes a batch with no variety, which this makes easy to spot.
        self.score = spectral_norm(nn.Linear(4 * c * 4 * 4 + 1, 1))
        self.label_projection = spectral_norm(nn.Embedding(num_classes, 4 * c * 4 * 4))
        # The variety feature of a batch of real training digits, kept at the end of training: a picture judged on its
        # own (a drawing, one generated digit) has no batch, so it is judged as if it came in a batch as varied as real.
        self.register_buffer("real_variety", torch.zeros(()))

    def forward(self, images: torch.Tensor, labels: torch.Tensor, variety: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 1, 28, 28) in [0, 1], (B,) -> (B,) scores; higher means "real". `variety` (a scalar) replaces the
        batch's own variety feature, so each picture's score depends on it alone."""
        h = self.features(images * 2 - 1).flatten(1)  # (B, 4096)
        if variety is None:
            variety = self.batch_variety(h)
        batch_std = variety.reshape(1, 1).expand(h.shape[0], 1)  # (B, 1)
        return self.score(torch.cat([h, batch_std], 1)).squeeze(1) + (self.label_projection(labels) * h).sum(1)

    @staticmethod
    def batch_variety(h: torch.Tensor) -> torch.Tensor:
        """(B, F) features -> scalar: their standard deviation over the batch, averaged over features."""
        return h.std(dim=0).mean()

    @torch.no_grad()
    def measure_real_variety(self, real: torch.Tensor) -> None:
        """Keep the variety feature of real digits (B, 1, 28, 28), B >= 2, in batches of 64 as in training."""
        was_training = self.training
        self.eval()
        starts = range(0, max(1, len(real) - 63), 64)  # whole batches of 64; one smaller batch when there are fewer
        varieties = [self.batch_variety(self.features(real[i : i + 64] * 2 - 1).flatten(1)) for i in starts]
        self.real_variety.copy_(torch.stack(varieties).mean())
        self.train(was_training)


DISCRIMINATOR_FILE = "discriminator.safetensors"


@torch.no_grad()
def critic_p_real(discriminator: DigitDiscriminator, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B, 1, 28, 28) in [0, 1], (B,) labels -> (B,) the critic's P("a real digit of this label") in [0, 1].

    The critic learned with the hinge loss, which pushes real scores above +1 and generated ones below -1; P(real) is
    sigmoid(score), the score squashed to 0..1 (a hinge critic is not calibrated, so read it as a ranking, not a
    frequency). Each picture is judged alone, with the variety feature of real digits (see `real_variety`)."""
    discriminator.eval()
    return torch.sigmoid(discriminator(images, labels, discriminator.real_variety))


def load_discriminator(path: str) -> DigitDiscriminator:
    """The critic from its safetensors file, strictly: every weight and buffer name and shape must match."""
    from safetensors.torch import load_model

    discriminator = DigitDiscriminator()
    load_model(discriminator, path, strict=True)
    return discriminator.eval()


@torch.no_grad()
def critic_metrics(discriminator: DigitDiscriminator, generator: "DigitGenerator", test_x, test_y, seed: int = 0) -> dict[str, float]:
    """The critic's mean P(real) on the real test digits (uint8 (N, 28, 28), labels (N,)) and on as many generated
    digits (an equal share of each class, noise seeded by `seed`): held-out pictures it never trained on."""
    real = torch.as_tensor(test_x).float().div(255).unsqueeze(1)
    labels = torch.as_tensor(test_y).long()
    fake_labels = torch.arange(10).repeat_interleave(len(labels) // 10)
    fake = sample(generator, fake_labels, seed)
    return {
        "critic_p_real_on_real": round(float(critic_p_real(discriminator, real, labels).mean()), 4),
        "critic_p_real_on_generated": round(float(critic_p_real(discriminator, fake, fake_labels).mean()), 4),
    }


@torch.no_grad()
def sample(generator: DigitGenerator, labels: torch.Tensor, seed: int, batch: int = 1000) -> torch.Tensor:
    """Generated digits for the given labels, (N, 1, 28, 28), from noise seeded by `seed`."""
    generator.eval()
    z = generator.noise(len(labels), seed)
    return torch.cat([generator(z[i : i + batch], labels[i : i + batch]) for i in range(0, len(labels), batch)])


@torch.no_grad()
def evaluate_generator(generator: DigitGenerator, judge: DigitClassifier, per_class: int = 1000, seed: int = 0) -> dict[str, float]:
    """Quality as judged by our digit classifier: class accuracy, Fréchet distance on its features, diversity."""
    labels = torch.arange(10).repeat_interleave(per_class)
    return judge_digits(sample(generator, labels, seed), labels, judge, seed)

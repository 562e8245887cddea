"""Teach the photo classifier your own classes (transfer learning, as Google's Teachable Machine does it).

The ImageNet network stays frozen: each photo becomes its 1,280 pooled features, and only a new last layer, one
linear map from those features to your classes, is learned, by full-batch Adam on a few dozen photos. Mirrored
copies of the training photos double the data for free. About 30% of each class is held back, and the head is
scored on those photos only, so the accuracy it reports is for photos it never learned from.
"""

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from data.photos import held_out_split, to_model_input
from models.efficientnet_lite import EfficientNetLite


@dataclass
class HeadTraining:
    held_out: float = 0.3  # share of each class kept back to score the head (never trained on)
    steps: int = 150  # full-batch steps: a few dozen photos fit in one batch, and the loss has flattened by then
    lr: float = 0.01  # Adam on a linear layer over fixed features: large steps are safe
    weight_decay: float = 1e-3  # keeps the weights small, so a handful of photos is not memorised by one feature
    init_std: float = 0.01  # near-zero start: every class begins equally likely
    batch: int = 16  # photos per forward pass of the frozen network


@dataclass
class TaughtHead:
    """A linear layer on EfficientNet's 1,280 pooled features, for the visitor's own classes. Lives in
    that visitor's session state only."""

    labels: list[str]
    weight: torch.Tensor  # (C, 1280)
    bias: torch.Tensor  # (C,)
    held_out_accuracy: float
    n_train: int
    n_held_out: int

    def probabilities(self, features: torch.Tensor) -> torch.Tensor:
        """(N, 1280) pooled features -> (N, C) probabilities of the taught classes."""
        return (features @ self.weight.T + self.bias).softmax(-1)


def pooled_features(net: EfficientNetLite, images: list[np.ndarray], flip: bool = False, batch: int = HeadTraining.batch) -> torch.Tensor:
    """RGB photos (H, W, 3) uint8 -> (N, 1280) features from the frozen network (mirrored when flip is set), on the CPU."""
    device = next(net.parameters()).device
    x = torch.stack([to_model_input(rgb, net.config.image_size) for rgb in images]).to(device)
    if flip:
        x = x.flip(-1)
    with torch.inference_mode():
        return torch.cat([net.pooled_features(x[i : i + batch]).float().cpu() for i in range(0, len(x), batch)])


def train_head(
    net: EfficientNetLite,
    labels: list[str],
    images: list[np.ndarray],
    targets: np.ndarray,
    settings: HeadTraining | None = None,
    progress=None,
    seed: int = 0,
) -> TaughtHead:
    """Hold out part of each class, learn a linear head on the rest (plus mirrored copies), score the held-out part.
    progress(fraction, desc=...) is told how far the head has come (from 0.5 to 1: the features come first)."""
    s = settings or HeadTraining()
    train_idx, held_idx = held_out_split(targets, fraction=s.held_out, seed=seed)
    feats = pooled_features(net, images, batch=s.batch)
    feats_flipped = pooled_features(net, [images[i] for i in train_idx], flip=True, batch=s.batch)
    x_train = torch.cat([feats[train_idx], feats_flipped])  # (2 * n_train, 1280)
    y_train = torch.from_numpy(np.concatenate([targets[train_idx], targets[train_idx]]))
    generator = torch.Generator().manual_seed(seed)
    head = torch.nn.Linear(feats.shape[1], len(labels))
    with torch.no_grad():
        head.weight.normal_(0, s.init_std, generator=generator)
        head.bias.zero_()
    optimizer = torch.optim.Adam(head.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    for step in range(s.steps):
        loss = F.cross_entropy(head(x_train), y_train)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if progress is not None and step % 15 == 0:
            progress(0.5 + 0.5 * step / s.steps, desc="Learning the new last layer")
    with torch.no_grad():
        held_acc = (
            float((head(feats[held_idx]).argmax(-1) == torch.from_numpy(targets[held_idx])).float().mean())
            if len(held_idx)
            else float("nan")
        )
    return TaughtHead(labels, head.weight.detach().clone(), head.bias.detach().clone(), held_acc, len(train_idx), len(held_idx))

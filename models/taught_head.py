"""Teach the photo classifier your own classes (transfer learning, as Google's Teachable Machine does it).

The ImageNet network stays frozen: each photo becomes its 1,280 pooled features, and only a new last layer, one
linear map from those features to your classes, is learned, by full-batch Adam on a few dozen photos. Mirrored
copies of the training photos double the data for free. About 30% of each class is held back, and the head is
scored on those photos only, so the accuracy it reports is for photos it never learned from.
"""

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from data.photos import held_out_split, square_crop, to_model_input
from models.efficientnet_lite import EfficientNetLite


@dataclass
class HeadTraining:
    held_out: float = 0.3  # share of each class kept back to score the head (never trained on)
    epochs: int = 150  # passes over the training photos: a few dozen fit in one batch, and the loss has flattened by then
    lr: float = 0.01  # Adam on a linear layer over fixed features: large steps are safe
    batch_size: int = 0  # photos per update; 0 = all of them at once (full-batch Adam)
    weight_decay: float = 1e-3  # keeps the weights small, so a handful of photos is not memorised by one feature
    init_std: float = 0.01  # near-zero start: every class begins equally likely
    batch: int = 4  # photos per forward pass of the frozen network (larger batches ran slower per photo on 2 cores)


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
    history: list[dict] = field(default_factory=list)  # per epoch: train_loss, train_accuracy, held_out_loss, held_out_accuracy
    confusion: list[list[int]] | None = None  # held-out photos, [true class][predicted class] counts
    held_out_index: list[int] = field(default_factory=list)  # which of the given photos were held out

    @property
    def weights_learned(self) -> int:
        return self.weight.numel() + self.bias.numel()

    def per_class_accuracy(self) -> list[float]:
        """Held-out accuracy of each class (NaN for a class with no held-out photo), from the confusion matrix."""
        if self.confusion is None:
            return [float("nan")] * len(self.labels)
        rows = [sum(row) for row in self.confusion]
        return [self.confusion[k][k] / n if n else float("nan") for k, n in enumerate(rows)]

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """(N, 1280) pooled features -> (N, C) scores of the taught classes (a Grad-CAM classifier too)."""
        return features @ self.weight.to(features.device, features.dtype).T + self.bias.to(features.device, features.dtype)

    def probabilities(self, features: torch.Tensor) -> torch.Tensor:
        """(N, 1280) pooled features -> (N, C) probabilities of the taught classes."""
        return self.logits(features).softmax(-1)


def pooled_features(net: EfficientNetLite, images: list[np.ndarray], flip: bool = False, batch: int = HeadTraining.batch) -> torch.Tensor:
    """RGB photos (H, W, 3) uint8 -> (N, 1280) features from the frozen network (mirrored when flip is set), on the CPU.
    Each photo is framed as a taught class frames it: its centre square, resized (a no-op for a frame cropped already)."""
    device = next(net.parameters()).device
    size = net.config.image_size
    x = torch.stack([to_model_input(square_crop(rgb, size), size) for rgb in images]).to(device)
    if flip:
        x = x.flip(-1)
    with torch.inference_mode():
        return torch.cat([net.pooled_features(x[i : i + batch]).float().cpu() for i in range(0, len(x), batch)])


@dataclass
class Example:
    """One example of a taught class, prepared once when it is added (a webcam frame or an image): teaching then
    only fits the last layer, so it takes well under a second. Only the features are kept, not the pixels: 10 kB an
    example, so a session with 5 full classes holds 3 MB."""

    features: torch.Tensor  # (1280,) pooled features of the image
    mirrored: torch.Tensor  # (1280,) pooled features of its mirror image (free extra training data)


def make_examples(net: EfficientNetLite, images: list[np.ndarray], batch: int = HeadTraining.batch) -> list[Example]:
    """RGB photos (H, W, 3) uint8 -> Examples: each cropped and resized once, then its features and its mirror's."""
    if not images:
        return []
    size = net.config.image_size
    crops = [square_crop(rgb, size) for rgb in images]
    plain = pooled_features(net, crops, batch=batch)
    mirrored = pooled_features(net, crops, flip=True, batch=batch)
    return [Example(f, m) for f, m in zip(plain, mirrored, strict=True)]


def fit_head(
    labels: list[str],
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_held: torch.Tensor,
    y_held: torch.Tensor,
    settings: HeadTraining | None = None,
    progress=None,
    seed: int = 0,
) -> TaughtHead:
    """Learn a linear head on features x_train (N, 1280) -> classes y_train (N,) with Adam; score it on the held-out
    features after every epoch (recorded, never used to train or to choose anything)."""
    s = settings or HeadTraining()
    generator = torch.Generator().manual_seed(seed)
    head = torch.nn.Linear(x_train.shape[1], len(labels))
    with torch.no_grad():
        head.weight.normal_(0, s.init_std, generator=generator)
        head.bias.zero_()
    optimizer = torch.optim.Adam(head.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    batch = s.batch_size if 0 < s.batch_size < len(x_train) else len(x_train)
    history = []
    for epoch in range(1, s.epochs + 1):
        order = torch.randperm(len(x_train), generator=generator) if batch < len(x_train) else torch.arange(len(x_train))
        for start in range(0, len(x_train), batch):
            picked = order[start : start + batch]
            loss = F.cross_entropy(head(x_train[picked]), y_train[picked])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            train_logits = head(x_train)
            entry = {
                "epoch": epoch,
                "train_loss": float(F.cross_entropy(train_logits, y_train)),
                "train_accuracy": float((train_logits.argmax(-1) == y_train).float().mean()),
            }
            if len(x_held):
                held_logits = head(x_held)
                entry["held_out_loss"] = float(F.cross_entropy(held_logits, y_held))
                entry["held_out_accuracy"] = float((held_logits.argmax(-1) == y_held).float().mean())
        history.append(entry)
        if progress is not None and epoch % 15 == 0:
            progress(0.5 + 0.5 * epoch / s.epochs, desc="Learning the new last layer")
    confusion = [[0] * len(labels) for _ in labels]
    if len(x_held):
        with torch.no_grad():
            predicted = head(x_held).argmax(-1)
        for true, guess in zip(y_held.tolist(), predicted.tolist(), strict=True):
            confusion[true][guess] += 1
    held_acc = history[-1].get("held_out_accuracy", float("nan")) if history else float("nan")
    return TaughtHead(
        labels, head.weight.detach().clone(), head.bias.detach().clone(), held_acc, 0, len(x_held), history=history, confusion=confusion
    )


def train_head(
    net: EfficientNetLite,
    labels: list[str],
    images: list[np.ndarray],
    targets: np.ndarray,
    settings: HeadTraining | None = None,
    progress=None,
    seed: int = 0,
) -> TaughtHead:
    """Photos -> Examples (make_examples), then fit_examples. progress(fraction, desc=...) is told how far it has come."""
    s = settings or HeadTraining()
    return fit_examples(labels, make_examples(net, images, batch=s.batch), targets, s, progress, seed)


def fit_examples(
    labels: list[str],
    examples: list[Example],
    targets: np.ndarray,
    settings: HeadTraining | None = None,
    progress=None,
    seed: int = 0,
) -> TaughtHead:
    """Hold out part of each class, learn a linear head on the rest (plus their mirror images), score the held-out part.
    progress(fraction, desc=...) is told how far the head has come (from 0.5 to 1)."""
    s = settings or HeadTraining()
    train_idx, held_idx = held_out_split(targets, fraction=s.held_out, seed=seed)
    feats = torch.stack([e.features for e in examples])  # (N, 1280)
    mirrored = torch.stack([e.mirrored for e in examples])
    x_train = torch.cat([feats[train_idx], mirrored[train_idx]])  # (2 * n_train, 1280)
    y_train = torch.from_numpy(np.concatenate([targets[train_idx], targets[train_idx]]))
    head = fit_head(labels, x_train, y_train, feats[held_idx], torch.from_numpy(targets[held_idx]), s, progress, seed)
    head.n_train, head.held_out_index = len(train_idx), held_idx.tolist()
    return head


# --- The head as a file ---------------------------------------------------------------------------------------------
# A plain safetensors file: tensors "weight" (C, FEATURES) and "bias" (C,), float32, with string metadata saying what
# they mean (labels, one per line, in class order; the backbone; how photos are prepared). No pickle anywhere.

FEATURES = 1280  # EfficientNet-Lite0's pooled features: the head's input width
MAX_HEAD_BYTES = 2 * 2**20  # a 30-class head is 150 kB; anything near this is not a head
MAX_LABEL_CHARS = 40
HEAD_FORMAT = "model-show taught head"


class HeadFileError(ValueError):
    """A file that is not a head this app made, or not for this backbone; the message says what is wrong."""


def head_bytes(head: TaughtHead, backbone: str, image_size: int) -> bytes:
    """The head as a safetensors file: its weights, labels and preprocessing in the metadata."""
    from safetensors.torch import save

    metadata = {
        "format": HEAD_FORMAT,
        "labels": "\n".join(head.labels),
        "backbone": backbone,
        "features": f"pooled {FEATURES}-d features of {backbone}",
        "preprocessing": f"RGB, the centre square resized to {image_size} x {image_size}, scaled to [0, 1] ({backbone} normalises itself)",
        "image_size": str(image_size),
        "held_out_accuracy": f"{head.held_out_accuracy:.6f}",
        "n_train": str(head.n_train),
        "n_held_out": str(head.n_held_out),
    }
    return save({"weight": head.weight.float().contiguous(), "bias": head.bias.float().contiguous()}, metadata=metadata)


def _metadata(data: bytes) -> dict[str, str]:
    """The __metadata__ of a safetensors file's JSON header (8-byte little-endian length, then the header)."""
    import json

    if len(data) < 8:
        raise HeadFileError("That file is too short to be a safetensors file.")
    length = int.from_bytes(data[:8], "little")
    if length <= 0 or 8 + length > len(data):
        raise HeadFileError("That file is not a safetensors file (its header is cut short or damaged).")
    try:
        header = json.loads(data[8 : 8 + length])
    except (UnicodeDecodeError, ValueError):
        raise HeadFileError("That file is not a safetensors file (its header is not readable).") from None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return meta if isinstance(meta, dict) else {}


def load_head_bytes(data: bytes, backbone: str, max_classes: int) -> TaughtHead:
    """A head file made by head_bytes -> the TaughtHead it holds, checked strictly; anything else is a HeadFileError."""
    from safetensors.torch import load

    if len(data) > MAX_HEAD_BYTES:
        raise HeadFileError(
            f"That file is {len(data) / 2**20:.1f} MB; a taught head is far smaller. Upload the .safetensors file this tab made."
        )
    meta = _metadata(data)
    if meta.get("format") != HEAD_FORMAT and "labels" not in meta:
        raise HeadFileError("That safetensors file is not a head this tab made (its metadata names no classes).")
    if meta.get("backbone") != backbone:
        raise HeadFileError(f"That head was taught on {meta.get('backbone')!r:.60}, not on {backbone!r}: it cannot read these features.")
    try:
        tensors = load(data)
    except Exception:  # safetensors raises its own error types for every kind of damage
        raise HeadFileError("That file is not a readable safetensors file: it may be damaged.") from None
    if set(tensors) != {"weight", "bias"}:
        raise HeadFileError(f"A head holds exactly 'weight' and 'bias'; this file holds {sorted(tensors)[:5]}.")
    weight, bias = tensors["weight"], tensors["bias"]
    if weight.dtype != torch.float32 or bias.dtype != torch.float32:
        raise HeadFileError(f"A head's weights are float32; this file's are {weight.dtype} and {bias.dtype}.")
    labels = meta.get("labels", "").split("\n")
    classes = len(labels)
    if weight.ndim != 2 or weight.shape[1] != FEATURES or bias.shape != (weight.shape[0],):
        raise HeadFileError(
            f"A head maps {FEATURES} features to its classes: weight (classes, {FEATURES}) and bias (classes,); "
            f"this file has {tuple(weight.shape)} and {tuple(bias.shape)}."
        )
    if weight.shape[0] != classes:
        raise HeadFileError(f"The file names {classes} classes but its weights have {weight.shape[0]} rows.")
    if not 2 <= classes <= max_classes:
        raise HeadFileError(f"A head has 2 to {max_classes} classes; this one has {classes}.")
    if any(not label.strip() or len(label) > MAX_LABEL_CHARS for label in labels) or len(set(labels)) != classes:
        raise HeadFileError(f"The class names must be {classes} different names of 1 to {MAX_LABEL_CHARS} characters.")
    if not (torch.isfinite(weight).all() and torch.isfinite(bias).all()):
        raise HeadFileError("The head's weights hold NaN or infinite values.")

    def number(key: str, default, kind):
        try:
            return kind(meta.get(key, default))
        except ValueError:
            return kind(default)

    return TaughtHead(
        labels=labels,
        weight=weight,
        bias=bias,
        held_out_accuracy=number("held_out_accuracy", "nan", float),
        n_train=number("n_train", 0, int),
        n_held_out=number("n_held_out", 0, int),
    )

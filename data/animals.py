"""Rabbits and unicorns, described by two features: speed and size.

Procedural, like the talk's example: both features run from 0 to 10. Rabbits are small and slow,
unicorns big and fast, so in the easy case the talk's neuron (speed + size - 10 > 0 means
unicorn) already separates them. Six layouts show what a model can and cannot learn:

    separable     two well-apart clusters: one straight line separates them
    overlapping   the clusters overlap: no line (and no model) can be perfect
    curved        rabbits in the middle, unicorns all around: no straight line works
    few samples   the curved layout, noisy, with only a handful of training animals:
                  a big network memorises them (overfitting)
    rings         rabbits in the middle and on an outer ring, unicorns on the ring between:
                  two curves are needed, so one hidden layer of few neurons struggles
    xor           quadrants: unicorns are fast or big but not both; no line works, but one
                  engineered input (speed·size) or two hidden neurons do

Every draw is seeded; train and test come from one draw, split by a seeded shuffle.
"""

from dataclasses import dataclass

import numpy as np

LAYOUTS = ["separable", "overlapping", "curved", "few samples", "rings", "xor"]
FEATURES = ["speed", "size"]
CLASSES = ["rabbit", "unicorn"]  # label 0, label 1
LOW, HIGH = 0.0, 10.0  # both features live in [0, 10]


@dataclass
class AnimalData:
    """x: (N, 2) float32 [speed, size] in [0, 10]; y: (N,) int64, 0 = rabbit, 1 = unicorn."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


def make_animals(layout: str, n_samples: int = 200, noise: float = 0.3, train_fraction: float = 0.5, seed: int = 0) -> AnimalData:
    """Draw `n_samples` animals in the given layout and split them into train and test.

    noise: 0 = textbook-clean clusters, 1 = very spread out (and more mislabelled-looking animals).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {LAYOUTS}")
    rng = np.random.default_rng(seed)
    n_unicorns = n_samples // 2
    y = np.concatenate([np.zeros(n_samples - n_unicorns, np.int64), np.ones(n_unicorns, np.int64)])
    if layout == "separable":
        x = _clusters(rng, y, centre_gap=4.4, spread=0.55 + 0.6 * noise)
    elif layout == "overlapping":
        x = _clusters(rng, y, centre_gap=2.2, spread=0.9 + 0.9 * noise)
    elif layout == "rings":
        x = _rings(rng, y, spread=0.15 + 0.6 * noise)
    elif layout == "xor":
        x = _quadrants(rng, y, gap=0.6 * (1 - noise), spread=0.8 * noise)
    else:  # curved and few samples: rabbits in a disc, unicorns in a ring around it
        x = _ring(rng, y, spread=0.25 + 1.1 * noise)
    x = np.clip(x, LOW, HIGH).astype(np.float32)
    order = rng.permutation(n_samples)
    n_train = int(round(n_samples * train_fraction))
    n_train = min(max(n_train, 2), n_samples - 2)  # at least two animals on each side
    train, test = order[:n_train], order[n_train:]
    return AnimalData(x[train], y[train], x[test], y[test])


def _clusters(rng: np.random.Generator, y: np.ndarray, centre_gap: float, spread: float) -> np.ndarray:
    """Two round clusters on the diagonal: rabbits at lower left (slow, small), unicorns at upper right."""
    half = centre_gap / 2 / np.sqrt(2)
    centres = np.array([[5 - half, 5 - half], [5 + half, 5 + half]])
    return centres[y] + rng.normal(0, spread, (len(y), 2))


def _ring(rng: np.random.Generator, y: np.ndarray, spread: float) -> np.ndarray:
    """Rabbits in a disc of radius ~1.6 around (5, 5); unicorns on a ring of radius ~3.6 around them."""
    angle = rng.uniform(0, 2 * np.pi, len(y))
    radius = np.where(y == 0, 1.6 * np.sqrt(rng.uniform(0, 1, len(y))), 3.6) + rng.normal(0, spread, len(y)) * np.where(y == 0, 0.6, 1.0)
    return np.stack([5 + radius * np.cos(angle), 5 + radius * np.sin(angle)], axis=1)


def _rings(rng: np.random.Generator, y: np.ndarray, spread: float) -> np.ndarray:
    """Around (5, 5): rabbits in a disc of radius ~1.2 and on a ring of radius ~4.2 (alternately), unicorns on a
    ring of radius ~2.7 between them."""
    angle = rng.uniform(0, 2 * np.pi, len(y))
    outer = np.arange(len(y)) % 2 == 1  # half the rabbits live on the outer ring
    radius = np.where(y == 1, 2.7, np.where(outer, 4.2, 1.2 * np.sqrt(rng.uniform(0, 1, len(y)))))
    radius = radius + rng.normal(0, spread, len(y)) * np.where((y == 0) & ~outer, 0.5, 1.0)
    return np.stack([5 + radius * np.cos(angle), 5 + radius * np.sin(angle)], axis=1)


def _quadrants(rng: np.random.Generator, y: np.ndarray, gap: float, spread: float) -> np.ndarray:
    """Uniform in the four quadrants around (5, 5), kept `gap` away from the middle lines: rabbits in the slow-small and
    fast-big quadrants, unicorns in the other two; then blurred by normal noise of `spread`."""
    side = rng.integers(0, 2, len(y))  # which of the class's two quadrants
    sign_speed = np.where(side == 1, 1.0, -1.0)
    sign_size = np.where(y == 1, -sign_speed, sign_speed)  # same signs: rabbit; opposite: unicorn
    offsets = rng.uniform(gap, 5.0, (len(y), 2))
    x = 5 + np.stack([sign_speed, sign_size], 1) * offsets
    return x + rng.normal(0, spread, x.shape)

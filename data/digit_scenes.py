"""Scenes of real handwritten digits with true pixel masks: the segmentation data.

No real person, street or medical masks exist offline, but real MNIST digits do. A scene places 1
to 5 of them on a canvas with random scale, rotation, pen thickness and position; they may overlap,
and the top-most digit owns a pixel. Clutter makes drawings and photos of paper work too: paper
texture and shading, noise, blur, stray pen strokes that are not digits, and both polarities (dark
ink on light paper, light ink on dark).

Masks have 11 classes: 0 = background, 1 + d = digit d. A pixel belongs to a digit where that
digit's ink is at least half strength.

Splits follow the MNIST split (data.mnist.load_splits): train scenes use only training digits,
validation scenes only validation digits and test scenes only test digits. The 500 test scenes
are fixed by a seed. Everything is generated in batches with torch (affine grids), so a fresh
training batch costs milliseconds.
"""

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from data.mnist import load_splits

NUM_CLASSES = 11
CLASS_NAMES = ["background"] + [str(d) for d in range(10)]
# Ten well-separated colours for the digits (background is drawn transparent in the app).
CLASS_COLOURS = [
    "#000000",
    "#e6194b",
    "#3cb44b",
    "#ffe119",
    "#4363d8",
    "#f58231",
    "#911eb4",
    "#42d4f4",
    "#f032e6",
    "#bfef45",
    "#9a6324",
]
TEST_SCENES, TEST_SEED = 500, 2024
VAL_SCENES, VAL_SEED = 200, 2025


@dataclass
class SceneConfig:
    size: int = 128  # canvas side, px
    min_digits: int = 1
    max_digits: int = 5
    digit_px: tuple[float, float] = (30.0, 64.0)  # height of the 28 px MNIST box on the canvas
    rotate_deg: float = 20.0
    thickness_p: float = 0.4  # chance of a thicker or thinner pen
    bold_p: float = 0.0  # chance of a much bolder pen (a 4x4 max filter: a marker); training only, the fixed scenes have none
    stray_strokes: tuple[int, int] = (0, 3)  # pen strokes that are not digits, per scene
    invert_p: float = 0.5  # chance of light ink on a dark background
    noise: float = 0.06  # max std of pixel noise
    blur_p: float = 0.3


def _digit_layers(digits: torch.Tensor, count: torch.Tensor, cfg: SceneConfig, generator: torch.Generator) -> torch.Tensor:
    """Place each digit on its own canvas layer.

    digits (B, K, 28, 28) in [0, 1]; count (B,) how many of the K slots are used.
    Returns (B, K, size, size) ink in [0, 1]; unused slots are empty."""
    b, k = digits.shape[:2]
    n = b * k
    flat = digits.reshape(n, 1, 28, 28)

    def uniform(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(shape or (n,), generator=generator)

    # Pen thickness, as in the classifier's augmentation: a 3x3 max filter thickens, a 2x2 min thins (and a 4x4 max makes a marker).
    pick = uniform(0, 1).view(n, 1, 1, 1)
    thicker = F.max_pool2d(flat, 3, stride=1, padding=1)
    thinner = -F.max_pool2d(F.pad(-flat, (0, 1, 0, 1), value=-1.0), 2, stride=1)
    flat = torch.where(pick < cfg.thickness_p / 2, thicker, flat)
    flat = torch.where((pick >= cfg.thickness_p / 2) & (pick < cfg.thickness_p), thinner, flat)
    if cfg.bold_p > 0:  # the same draw decides, so scenes without bold pens are exactly as before
        flat = torch.where(pick >= 1 - cfg.bold_p, F.max_pool2d(F.pad(flat, (1, 2, 1, 2)), 4, stride=1), flat)

    # theta maps canvas coordinates ([-1, 1]) to digit coordinates: scale, rotate, then place.
    box = uniform(*cfg.digit_px) / cfg.size * 2  # the 28 px box's side in canvas units
    scale = 2 / box  # canvas units -> digit units
    angle = uniform(-1, 1) * math.radians(cfg.rotate_deg)
    aspect = uniform(0.85, 1.15)
    centre = torch.stack([uniform(-1, 1), uniform(-1, 1)], 1) * (1 - box[:, None] * 0.35)  # keep most of the digit inside
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = cos * scale * aspect
    theta[:, 0, 1] = sin * scale * aspect
    theta[:, 1, 0] = -sin * scale
    theta[:, 1, 1] = cos * scale
    theta[:, :, 2] = -(theta[:, :, :2] @ centre[:, :, None])[:, :, 0]
    grid = F.affine_grid(theta, [n, 1, cfg.size, cfg.size], align_corners=False)
    layers = F.grid_sample(flat, grid, mode="bilinear", padding_mode="zeros", align_corners=False).view(b, k, cfg.size, cfg.size)
    used = torch.arange(k)[None, :] < count[:, None]  # (B, K)
    return layers * used[:, :, None, None]


def _strokes(b: int, cfg: SceneConfig, generator: torch.Generator) -> torch.Tensor:
    """Stray pen strokes (quadratic curves) that belong to no digit: (B, size, size) ink in [0, 1].

    Each curve is splatted as 4 points per pixel of length, then widened with a max filter (pen
    width 1, 3 or 5 px) and softened with a 3x3 blur."""
    lo, hi = cfg.stray_strokes
    size = cfg.size
    count = torch.randint(lo, hi + 1, (b,), generator=generator)
    n_points = 4 * size
    t = torch.linspace(0, 1, n_points)[None, :, None]
    ink = torch.zeros(b, size * size)
    for s in range(max(hi, 1)):
        points = torch.rand(b, 3, 2, generator=generator) * size  # start, control, end
        curve = (1 - t) ** 2 * points[:, :1] + 2 * (1 - t) * t * points[:, 1:2] + t**2 * points[:, 2:]  # (B, n_points, 2)
        xy = curve.round().long().clamp(0, size - 1)
        flat = xy[..., 1] * size + xy[..., 0]
        drawn = (s < count).float()[:, None].expand(b, n_points).contiguous()
        ink.scatter_reduce_(1, flat, drawn, reduce="amax")
    ink = ink.view(b, 1, size, size)
    width = torch.randint(0, 3, (b,), generator=generator)  # 0, 1, 2 -> 1, 3, 5 px
    wide = [ink, F.max_pool2d(ink, 3, stride=1, padding=1), F.max_pool2d(ink, 5, stride=1, padding=2)]
    ink = torch.stack(wide, 0)[width, torch.arange(b)]
    kernel = torch.tensor([1.0, 2.0, 1.0])
    kernel = (kernel[:, None] * kernel[None, :] / 16).view(1, 1, 3, 3)
    return (F.conv2d(ink, kernel, padding=1) * 1.6).clamp(0, 1)[:, 0]


def _paper(b: int, cfg: SceneConfig, generator: torch.Generator) -> torch.Tensor:
    """Paper: a base tone, smooth shading and fine grain. (B, size, size) in [0, 1], 1 = paper colour."""
    base = 0.75 + 0.25 * torch.rand(b, 1, 1, generator=generator)
    shading = F.interpolate(torch.randn(b, 1, 4, 4, generator=generator), size=(cfg.size, cfg.size), mode="bicubic", align_corners=False)[
        :, 0
    ]
    grain = F.interpolate(torch.randn(b, 1, cfg.size // 4, cfg.size // 4, generator=generator), size=(cfg.size, cfg.size), mode="bilinear")[
        :, 0
    ]
    return (base + 0.06 * shading + 0.03 * grain).clamp(0, 1)


def make_scenes(
    digits: torch.Tensor, labels: torch.Tensor, count: torch.Tensor, cfg: SceneConfig, generator: torch.Generator, instances: bool = False
):
    """digits (B, K, 28, 28) in [0, 1], labels (B, K), count (B,) -> (images (B, 1, S, S) in [0, 1], masks (B, S, S) int64),
    and with `instances` also (B, S, S) int64: which digit (slot + 1, 0 = none) each mask pixel belongs to. The random
    draws are the same either way, so the same seed gives the same scenes."""
    b, k = labels.shape
    layers = _digit_layers(digits, count, cfg, generator)  # (B, K, S, S)
    masks = torch.zeros(b, cfg.size, cfg.size, dtype=torch.long)
    owner = torch.zeros(b, cfg.size, cfg.size, dtype=torch.long)
    ink = torch.zeros(b, cfg.size, cfg.size)
    for slot in range(k):  # later slots lie on top
        layer = layers[:, slot]
        masks = torch.where(layer >= 0.5, labels[:, slot, None, None] + 1, masks)
        owner = torch.where(layer >= 0.5, slot + 1, owner)
        ink = torch.maximum(ink, layer)
    ink = torch.maximum(ink, _strokes(b, cfg, generator) * (0.6 + 0.4 * torch.rand(b, 1, 1, generator=generator)))
    paper = _paper(b, cfg, generator)
    pen = 0.25 * torch.rand(b, 1, 1, generator=generator)  # ink darkness: 0 = black
    image = paper * (1 - ink) + pen * ink  # dark ink on light paper
    invert = torch.rand(b, 1, 1, generator=generator) < cfg.invert_p
    image = torch.where(invert, 1 - image, image)
    blur = torch.rand(b, generator=generator) < cfg.blur_p
    if blur.any():
        kernel = torch.tensor([1.0, 2.0, 1.0])
        kernel = (kernel[:, None] * kernel[None, :] / 16).view(1, 1, 3, 3)
        image[blur] = F.conv2d(image[blur][:, None], kernel, padding=1)[:, 0]
    image = image + torch.randn(image.shape, generator=generator) * cfg.noise * torch.rand(b, 1, 1, generator=generator)
    return (image.clamp(0, 1)[:, None], masks, owner) if instances else (image.clamp(0, 1)[:, None], masks)


def sample_scenes(
    pool_x: np.ndarray | torch.Tensor,
    pool_y: np.ndarray | torch.Tensor,
    n: int,
    cfg: SceneConfig,
    generator: torch.Generator,
    instances: bool = False,
):
    """n scenes whose digits are drawn (with replacement) from the pool (N, 28, 28) uint8 or float, labels (N,)."""
    pool_x = torch.as_tensor(pool_x)
    pool_x = pool_x.float() / 255 if pool_x.dtype == torch.uint8 else pool_x.float()
    pool_y = torch.as_tensor(pool_y).long()
    k = cfg.max_digits
    index = torch.randint(len(pool_y), (n, k), generator=generator)
    count = torch.randint(cfg.min_digits, k + 1, (n,), generator=generator)
    return make_scenes(pool_x[index], pool_y[index], count, cfg, generator, instances)


@functools.cache
def fixed_scenes(split: str, dataset: str | None = None, size: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed validation (200) or test (500) scenes, built only from that split's digits."""
    return fixed_scenes_with_instances(split, dataset, size)[:2]


@functools.cache
def fixed_scenes_with_instances(split: str, dataset: str | None = None, size: int = 128) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """fixed_scenes, and which digit each mask pixel belongs to (make_scenes' instances): per-digit scoring."""
    splits = load_splits(dataset)
    pool = {"val": (splits.val_x, splits.val_y), "test": (splits.test_x, splits.test_y)}[split]
    n, seed = (VAL_SCENES, VAL_SEED) if split == "val" else (TEST_SCENES, TEST_SEED)
    return sample_scenes(*pool, n, SceneConfig(size=size), torch.Generator().manual_seed(seed), instances=True)


def font_scenes(n: int = 300, seed: int = 7, size: int = 128, instances: bool = False):
    """Scenes built from digits rendered in the machine's fonts, prepared like MNIST: a proxy for drawings (with
    `instances`, also which digit each mask pixel belongs to)."""
    from data.font_digits import font_digit_set
    from data.mnist import sketch_to_mnist

    images, labels, _ = font_digit_set(variants_per_font=2, seed=seed)
    prepared, kept = [], []
    for img, label in zip(images, labels, strict=True):
        try:
            prepared.append(sketch_to_mnist(img))
            kept.append(label)
        except ValueError:
            continue
    pool_x = torch.from_numpy(np.stack(prepared))
    return sample_scenes(pool_x, np.asarray(kept), n, SceneConfig(size=size), torch.Generator().manual_seed(seed), instances)


# --- Any (image, mask) dataset, for --dataset ---------------------------------------------------------


@dataclass
class MaskDataset:
    """Images (N, 1, S, S) in [0, 1] and masks (N, S, S) int64 class indices, per split."""

    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    class_names: list[str]
    source: str


def _pair_to_tensors(image, mask, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    from PIL import Image

    image = image.convert("L").resize((size, size), Image.Resampling.BILINEAR)
    mask = mask.resize((size, size), Image.Resampling.NEAREST)  # class indices must not be blended
    return torch.from_numpy(np.asarray(image, np.float32) / 255)[None], torch.from_numpy(np.asarray(mask, np.int64))


def _stack(pairs: list) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


def _seeded_split(pairs: list, seed: int = 0) -> tuple[list, list, list]:
    order = np.random.default_rng(seed).permutation(len(pairs))
    n_test = n_val = max(1, len(pairs) // 10)
    pick = lambda idx: [pairs[i] for i in idx]  # noqa: E731
    return pick(order[n_test + n_val :]), pick(order[n_test : n_test + n_val]), pick(order[:n_test])


def load_mask_dataset(source: str, size: int = 128) -> MaskDataset:
    """A local folder or a Hub dataset of (image, mask) pairs, resized to size x size.

    Folder: `<root>/images/<name>.png|jpg` with `<root>/masks/<name>.png` (pixel value = class
    index), optionally inside `train/`, `val/` and `test/`; `<root>/classes.txt` names the
    classes, one per line. Without split folders, a seeded 80/10/10 split is made.
    Hub: `datasets.load_dataset(source)` with an image column `image` and a mask column
    (`mask`, `annotation`, `label` or `segmentation`); its own train/validation/test splits are used
    where they exist."""
    from pathlib import Path

    from PIL import Image

    root = Path(source)
    if root.is_dir():

        def read(folder: Path) -> list:
            pairs = []
            for image_path in sorted((folder / "images").iterdir()):
                mask_path = folder / "masks" / (image_path.stem + ".png")
                if mask_path.is_file():
                    pairs.append(_pair_to_tensors(Image.open(image_path), Image.open(mask_path), size))
            if not pairs:
                raise FileNotFoundError(f"no image/mask pairs in {folder} (expected images/<name>.* and masks/<name>.png)")
            return pairs

        if (root / "train").is_dir():
            train, test = read(root / "train"), read(root / "test")
            val = read(root / "val") if (root / "val").is_dir() else _seeded_split(train)[1]
        else:
            train, val, test = _seeded_split(read(root))
        all_masks = torch.cat([_stack(train)[1].flatten(), _stack(test)[1].flatten()])
        names_file = root / "classes.txt"
        names = names_file.read_text().split("\n") if names_file.is_file() else [f"class {i}" for i in range(int(all_masks.max()) + 1)]
        return MaskDataset(_stack(train), _stack(val), _stack(test), [n for n in names if n.strip()], str(root))

    from datasets import load_dataset

    data = load_dataset(source)
    columns = data[next(iter(data))].column_names
    mask_column = next((c for c in ("mask", "annotation", "label", "segmentation") if c in columns), None)
    if "image" not in columns or mask_column is None:
        raise ValueError(f"{source} needs an 'image' column and a mask column; it has {columns}")

    def read_split(split) -> list:
        return [_pair_to_tensors(row["image"], row[mask_column], size) for row in split]

    train = read_split(data["train"])
    test = read_split(data["test"]) if "test" in data else None
    val = read_split(data["validation"]) if "validation" in data else None
    if test is None or val is None:
        split_train, split_val, split_test = _seeded_split(train)
        train, val, test = split_train, val or split_val, test or split_test
    n_classes = int(max(_stack(train)[1].max(), _stack(test)[1].max())) + 1
    return MaskDataset(_stack(train), _stack(val), _stack(test), [f"class {i}" for i in range(n_classes)], source)

"""Photos: the bundled sample photos, image-folder datasets, and the one way a photo becomes network input.

Offline there is no ImageNet; the photos that exist are the ones bundled in scikit-image
(`skimage.data`: chelsea the cat, coffee, astronaut, rocket; CC0 / public domain) and scikit-learn
(`load_sample_images`: china, flower; CC BY 2.0). Copies live in `examples/photos/` for the app.

`to_model_input` is the inference preprocessing, used by the import check, fine-tuning, the
benchmarks and the app alike: resize the whole photo to image_size x image_size and scale to
[0, 1] (the model normalises itself).
"""

from pathlib import Path

import numpy as np
import torch
from PIL import Image

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples" / "photos"
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def sample_photos() -> dict[str, np.ndarray]:
    """name -> (H, W, 3) uint8 RGB, straight from the packages (lossless, unlike the example JPEGs)."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    photos = {name: getattr(skimage.data, name)() for name in ("chelsea", "coffee", "astronaut", "rocket")}
    bunch = load_sample_images()
    for image, filename in zip(bunch.images, bunch.filenames, strict=True):
        photos[Path(filename).stem] = image
    return photos


def to_model_input(rgb: np.ndarray, image_size: int = 224) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, image_size, image_size) float in [0, 1]: the whole photo, resized."""
    im = Image.fromarray(rgb).resize((image_size, image_size), Image.Resampling.BILINEAR)
    return torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


def square_crop(rgb: np.ndarray, image_size: int = 224) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (image_size, image_size, 3) uint8: the centre square, resized. How a taught class frames a
    webcam picture or a photo (as Teachable Machine does), done once per example; a crop already that size is kept as is."""
    h, w = rgb.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = np.ascontiguousarray(rgb[top : top + side, left : left + side])
    if side == image_size:
        return square
    return np.asarray(Image.fromarray(square).resize((image_size, image_size), Image.Resampling.BILINEAR))


def image_folder(root: str | Path) -> tuple[list[Path], np.ndarray, list[str]]:
    """`<root>/<class name>/*.jpg` -> (paths, labels (N,) int64, class names sorted)."""
    root = Path(root)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    paths, labels = [], []
    for k, name in enumerate(classes):
        for path in sorted((root / name).iterdir()):
            if path.suffix.lower() in IMAGE_EXTENSIONS:
                paths.append(path)
                labels.append(k)
    if len(classes) < 2 or not paths:
        raise FileNotFoundError(f"{root} needs at least two class folders with images in them (<root>/<class>/*.jpg)")
    return paths, np.asarray(labels, dtype=np.int64), classes


def held_out_split(labels: np.ndarray, fraction: float = 0.3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, held-out indices): per class, a seeded `fraction` (at least one) is held out."""
    rng = np.random.default_rng(seed)
    train, held = [], []
    for label in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == label))
        n_held = max(1, int(round(len(idx) * fraction))) if len(idx) > 1 else 0
        held.extend(idx[:n_held])
        train.extend(idx[n_held:])
    return np.sort(np.asarray(train, dtype=np.int64)), np.sort(np.asarray(held, dtype=np.int64))

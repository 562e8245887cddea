"""Horses and zebras: two unpaired procedural domains for the CycleGAN, and readers for the real ones.

No horse or zebra photos exist offline (no horse2zebra), so both domains are painted here from one
body: the horse silhouette from scikit-image's sample data (`skimage.data.horse`, CC0). Every
animal gets its own pose (scale, slight rotation, mirror, a smooth elastic warp that bends the neck
and legs), a light direction, and a ground and sky behind it. Only the coat differs:

    horse   bay, chestnut, grey, black, palomino or white, with darker (palomino: paler) mane,
            tail and lower legs, fine hair texture and soft dapples
    zebra   black and white stripes that follow the body: vertical on the torso, bending on the
            rump, across the neck and face, horizontal on the legs; a dark muzzle and tail tuft

The shared parts are drawn with the same random streams, so the two domains differ in coat and not
in shape, pose or background distribution (a test checks it). The two domains never share an
animal: horses and zebras use disjoint seeds.

Splits are fixed by seed ranges: training from 0, validation from 1,000,000, test from 2,000,000;
zebras add 500,000 to a horse's seed range.

The silhouette and the two ground textures (`skimage.data.grass` and `gravel`, both CC0) ship as lossless PNGs in
`data/assets/`, pixel for pixel the arrays scikit-image returns (a test checks it), so the app paints held-out animals
with nothing but Pillow: scikit-image is not in requirements.txt, which is all a Space installs.

`image_folder_pair` and `hub_pair` read the real horse2zebra (trainA = horses, trainB = zebras)
for anyone who has it.
"""

import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from data.fabric import hsv_to_rgb, smooth_noise

ASSETS = Path(__file__).resolve().parent / "assets"
SIZE = 256
DOMAINS = ("horse", "zebra")
SPLIT_SEEDS = {"train": 0, "val": 1_000_000, "test": 2_000_000}
ZEBRA_SEED_OFFSET = 500_000
COATS = ("bay", "chestnut", "grey", "black", "palomino", "white")
GROUNDS = ("grass", "savanna", "gravel", "dirt")
# (body, points = mane/tail/lower legs) RGB in [0, 1]
COAT_RGB = {
    "bay": ((0.45, 0.25, 0.12), (0.07, 0.05, 0.04)),
    "chestnut": ((0.62, 0.32, 0.14), (0.42, 0.2, 0.09)),
    "grey": ((0.66, 0.66, 0.66), (0.3, 0.3, 0.31)),
    "black": ((0.1, 0.09, 0.09), (0.04, 0.04, 0.04)),
    "palomino": ((0.83, 0.66, 0.36), (0.95, 0.91, 0.8)),
    "white": ((0.9, 0.89, 0.86), (0.72, 0.7, 0.67)),
}


@dataclass
class Body:
    """The silhouette and its parts in silhouette pixels, (328, 400) each; built once."""

    mask: np.ndarray  # bool
    height: np.ndarray  # float, 0 at the outline rising to 1 in the thickest part (for shading)
    normal_x: np.ndarray
    normal_y: np.ndarray
    legs: np.ndarray  # float weight, 1 on the lower legs
    neck: np.ndarray  # float weight, 1 on neck and head
    head: np.ndarray  # float weight, 1 on the head
    tail: np.ndarray  # bool
    mane: np.ndarray  # bool
    muzzle: np.ndarray  # float weight
    hooves: np.ndarray  # bool


@cache
def asset(name: str) -> np.ndarray:
    """One of scikit-image's sample arrays, as shipped in data/assets/: "horse" (328, 400) bool, where True is the
    white background; "grass" and "gravel" (512, 512) uint8 grey."""
    from PIL import Image

    with Image.open(ASSETS / f"{name}.png") as im:
        return np.asarray(im)


def smoothstep(a: float, b: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - a) / (b - a), 0, 1)
    return t * t * (3 - 2 * t)


@cache
def body() -> Body:
    """Parts of the horse silhouette (a 400x328 side view facing right), measured once by hand."""
    from scipy import ndimage

    mask = ~asset("horse")
    h, w = mask.shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    dist = ndimage.distance_transform_edt(mask)
    height = np.sqrt(np.clip(dist / 18.0, 0, 1))  # limbs are round too: saturate at 18 px in
    height = ndimage.gaussian_filter(height, 1.5)
    gy, gx = np.gradient(height)
    gz = np.full_like(gx, 0.08)
    norm = np.sqrt(gx**2 + gy**2 + gz**2)
    tail = mask & (x <= 52) & (y > 85)
    legs = smoothstep(182, 212, y) * ~tail
    neck = smoothstep(228, 268, x) * (1 - smoothstep(150, 175, y))
    head = smoothstep(318, 335, x) * (1 - smoothstep(100, 112, y))
    top = np.where(mask.any(0), mask.argmax(0), h)  # first body row of every column
    mane = mask & (x >= 245) & (x <= 336) & (y < top[None, :] + 9 + 0.04 * (x - 245))
    muzzle = smoothstep(360, 376, x) * smoothstep(58, 72, y) * mask
    hooves = mask & (y > 296)
    return Body(mask, height, -gx / norm, -gy / norm, legs, neck, head, tail, mane, muzzle, hooves)


def stripes(b: Body, rng: np.random.Generator) -> np.ndarray:
    """(328, 400) in [0, 1], 1 = black stripe: bands that follow the body, as on a plains zebra."""
    h, w = b.mask.shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    period = rng.uniform(19, 25)
    wobble = 0.35 * smooth_noise(rng, (h, w), (4, 5))
    # Torso: vertical bands, leaning back over the rump (x < 140) where real stripes turn diagonal.
    rump = 1 - smoothstep(90, 150, x)
    torso = (x + rump * 0.9 * (y - 150)) / period + 0.25 * np.sin(y / 30)
    legs = y / (0.55 * period)  # horizontal rings, thinner than the torso's bands
    neck = (0.62 * x - 0.78 * y) / (0.95 * period)  # across the neck, which rises at about 50 degrees
    head = (0.55 * x + 0.83 * y) / (0.6 * period)  # across the face, which points down-right
    phase = torso * (1 - b.legs) + legs * b.legs
    phase = phase * (1 - b.neck) + neck * b.neck
    phase = phase * (1 - b.head) + head * b.head
    wave = np.cos(2 * math.pi * (phase + wobble))
    black = 1 / (1 + np.exp(-6 * (wave - rng.uniform(-0.15, 0.2))))  # soft-edged, roughly half black
    return np.maximum(black, b.muzzle)


def coat(domain: str, b: Body, rng: np.random.Generator) -> np.ndarray:
    """(328, 400, 3) unshaded coat colour in [0, 1]."""
    h, w = b.mask.shape
    hair = 0.04 * rng.standard_normal((h, w)) + 0.05 * smooth_noise(rng, (h, w), (12, 15))
    if domain == "zebra":
        black = stripes(b, rng)
        white = np.array([0.93, 0.92, 0.88]) * rng.uniform(0.85, 1.0)
        dark = np.array([0.09, 0.08, 0.08])
        rgb = white * (1 - black[..., None]) + dark * black[..., None]
        mane_tuft = b.tail & (np.mgrid[0:h, 0:w][0] > 205)
        rgb[mane_tuft] = dark
        return np.clip(rgb + hair[..., None], 0, 1)
    name = str(rng.choice(COATS))
    tone = rng.uniform(0.85, 1.12)  # lighter or darker, with only a small shift in hue
    body_rgb, points_rgb = (np.array(c) * tone * rng.uniform(0.97, 1.03, 3) for c in COAT_RGB[name])
    rgb = np.broadcast_to(body_rgb, (h, w, 3)).copy()
    if name in ("grey", "white"):  # dapples
        rgb *= 1 + 0.08 * np.sin(smooth_noise(rng, (h, w), (16, 20)) * 3)[..., None]
    low_legs = smoothstep(225, 250, np.mgrid[0:h, 0:w][0]) * ~b.tail
    points = np.maximum(low_legs, b.tail | b.mane)[..., None]
    rgb = rgb * (1 - points) + points_rgb * points
    muzzle = 0.5 * b.muzzle[..., None]
    rgb = rgb * (1 - muzzle) + np.array([0.12, 0.1, 0.09]) * muzzle
    return np.clip(rgb * (1 + hair[..., None]), 0, 1)


def background(rng: np.random.Generator, size: int, horizon: float) -> np.ndarray:
    """(size, size, 3) in [0, 1]: sky above `horizon` (a share of the height), ground below."""
    y = np.linspace(0, 1, size)[:, None, None]
    sky_top = hsv_to_rgb(rng.uniform(0.55, 0.62), rng.uniform(0.35, 0.65), rng.uniform(0.7, 0.95))
    sky_low = np.clip(sky_top + rng.uniform(0.1, 0.25), 0, 1)
    sky = sky_top + (sky_low - sky_top) * (y / max(horizon, 1e-3))
    clouds = np.clip(smooth_noise(rng, (size, size), (2, 5)) - 0.8, 0, None)[..., None] * rng.uniform(0, 0.3)
    sky = np.clip(sky + clouds, 0, 1) * np.ones((1, size, 3))

    kind = str(rng.choice(GROUNDS))
    source = asset("grass") if kind in ("grass", "savanna") else asset("gravel")
    scale = rng.uniform(0.4, 1.0)
    crop = int(512 * scale)
    top, left = rng.integers(0, 512 - crop + 1, 2)
    from PIL import Image

    texture = Image.fromarray(source[top : top + crop, left : left + crop]).resize((size, size), Image.Resampling.BILINEAR)
    texture = np.asarray(texture, dtype=np.float64)[..., None] / 255.0
    tint = {
        "grass": hsv_to_rgb(rng.uniform(0.2, 0.3), rng.uniform(0.45, 0.7), rng.uniform(0.45, 0.7)),
        "savanna": hsv_to_rgb(rng.uniform(0.1, 0.15), rng.uniform(0.4, 0.6), rng.uniform(0.65, 0.85)),
        "gravel": hsv_to_rgb(rng.uniform(0.05, 0.12), rng.uniform(0.05, 0.2), rng.uniform(0.55, 0.8)),
        "dirt": hsv_to_rgb(rng.uniform(0.05, 0.1), rng.uniform(0.35, 0.55), rng.uniform(0.4, 0.6)),
    }[kind]
    contrast = 0.35 if kind == "dirt" else 0.8
    ground = tint * (1 - contrast + 2 * contrast * texture)
    ground *= (0.85 + 0.25 * (y - horizon) / max(1 - horizon, 1e-3)) * (1 + 0.08 * smooth_noise(rng, (size, size), (3, 3)))[..., None]
    ground_weight = smoothstep(horizon - 0.01, horizon + 0.01, y)
    if rng.uniform() < 0.5:  # a far tree line or hill on the horizon
        hill = horizon - rng.uniform(0.02, 0.08) * (1 + 0.6 * smooth_noise(rng, (1, size), (1, 6))[0])  # (size,)
        far = hsv_to_rgb(rng.uniform(0.22, 0.35), rng.uniform(0.3, 0.6), rng.uniform(0.25, 0.45))
        sky = np.where(y > hill[None, :, None], far, sky)
    return np.clip(sky * (1 - ground_weight) + ground * ground_weight, 0, 1)


def animal(domain: str, seed: int, size: int = SIZE) -> np.ndarray:
    """One (size, size, 3) uint8 RGB picture of a horse or a zebra in a field. Same seed, same picture."""
    return animal_and_mask(domain, seed, size)[0]


def animal_and_mask(domain: str, seed: int, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """(the picture (size, size, 3) uint8, the animal's coverage (size, size) float in [0, 1]).

    The pose, light and background come from `seed` alone and the coat from its own stream, so a horse
    and a zebra drawn with the same seed have exactly the same outline (the tests rely on it)."""
    from scipy import ndimage

    if domain not in DOMAINS:
        raise ValueError(f"domain must be one of {DOMAINS}, not {domain!r}")
    b = body()
    scene = np.random.default_rng(seed)  # pose, light and background: the same distribution for both domains
    horizon = scene.uniform(0.25, 0.55)
    back = background(scene, size, horizon)
    width = scene.uniform(0.6, 0.95) * size  # the animal's length in pixels
    zoom = width / 400.0  # canvas px per silhouette px
    angle = scene.uniform(-8, 8) * math.pi / 180
    flip = scene.uniform() < 0.5
    feet_y = scene.uniform(horizon + 0.3 * (1 - horizon), 0.97) * size
    feet_y = min(feet_y, size - 2)
    centre_x = scene.uniform(min(0.5 * width, 0.5 * size), max(size - 0.5 * width, 0.5 * size))  # keep the animal in the frame
    light = np.array([scene.uniform(-0.8, 0.8), scene.uniform(-0.9, -0.3), 0.6])
    light /= np.linalg.norm(light)
    warp_y = smooth_noise(scene, (size, size), (3, 3)) * scene.uniform(0, 6)
    warp_x = smooth_noise(scene, (size, size), (3, 3)) * scene.uniform(0, 6)

    colour = coat(domain, b, np.random.default_rng(seed + 7_919))  # the coat's own stream

    # Canvas pixel (v, u) -> silhouette pixel (y, x): undo translation, rotation and zoom, then warp.
    v, u = np.mgrid[0:size, 0:size].astype(np.float64)
    du, dv = u - centre_x, v - feet_y
    cos, sin = math.cos(angle), math.sin(angle)
    xs = (cos * du + sin * dv) / zoom
    ys = (-sin * du + cos * dv) / zoom
    xs = -xs if flip else xs
    xs, ys = xs + 200 + warp_x / zoom, ys + 305 + warp_y / zoom  # silhouette feet rest at y = 305, centre x = 200
    coords = np.stack([ys, xs])

    def sample(layer: np.ndarray, order: int = 1) -> np.ndarray:
        return ndimage.map_coordinates(layer, coords, order=order, mode="constant", cval=0.0)

    alpha = np.clip(sample(ndimage.gaussian_filter(b.mask.astype(np.float64), 0.7)), 0, 1)
    nx = sample(b.normal_x) * (-1 if flip else 1)
    ny = sample(b.normal_y)
    nz = np.sqrt(np.clip(1 - nx**2 - ny**2, 0, 1))
    shade = 0.45 + 0.7 * np.clip(nx * light[0] + ny * light[1] + nz * light[2], 0, 1)
    rgb = np.stack([sample(colour[..., c]) for c in range(3)], axis=-1) * shade[..., None]

    # A soft contact shadow under the feet.
    shadow = np.exp(-(((u - centre_x) / (0.45 * width)) ** 2 + ((v - feet_y) / (0.05 * width + 2)) ** 2) * 2)
    back = back * (1 - 0.35 * shadow[..., None])
    out = back * (1 - alpha[..., None]) + rgb * alpha[..., None]
    out = ndimage.gaussian_filter(out, (0.5, 0.5, 0)) + 0.012 * scene.standard_normal(out.shape)
    return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8), alpha


def animals(domain: str, split: str, count: int, size: int = SIZE, start: int = 0) -> np.ndarray:
    """(count, size, size, 3) uint8: animals `start` .. `start + count - 1` of a split."""
    if split not in SPLIT_SEEDS:
        raise ValueError(f"split must be one of {tuple(SPLIT_SEEDS)}, not {split!r}")
    base = SPLIT_SEEDS[split] + (ZEBRA_SEED_OFFSET if domain == "zebra" else 0)
    return np.stack([animal(domain, base + start + i, size) for i in range(count)])


def read_image_folder(folder: str | Path, size: int) -> np.ndarray:
    """Every picture in a folder -> (N, size, size, 3) uint8, resized (the real dataset is 256x256 already)."""
    from PIL import Image

    from data.photos import IMAGE_EXTENSIONS

    paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not paths:
        raise ValueError(f"{folder} holds no pictures ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    return np.stack([np.asarray(Image.open(p).convert("RGB").resize((size, size), Image.Resampling.BICUBIC)) for p in paths])


def image_folder_pair(root: str | Path, split: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The real horse2zebra layout: `<root>/{train,test}{A,B}/*.jpg`, A = horses, B = zebras."""
    part = "train" if split == "train" else "test"
    root = Path(root)
    return read_image_folder(root / f"{part}A", size), read_image_folder(root / f"{part}B", size)


def hub_pair(dataset_id: str, split: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A Hub dataset with an image column and a domain label ("A"/"B", 0/1, "horse"/"zebra")."""
    from datasets import load_dataset
    from PIL import Image

    part = "train" if split == "train" else "test"
    rows = load_dataset(dataset_id, split=part)
    image_key = next(k for k in rows.column_names if k in ("image", "img", "imageA", "A"))
    label_key = next((k for k in rows.column_names if k in ("label", "domain", "class")), None)
    horses, zebras = [], []
    for row in rows:
        picture = np.asarray(row[image_key].convert("RGB").resize((size, size), Image.Resampling.BICUBIC))
        label = str(row[label_key]).lower() if label_key else "a"
        (zebras if label in ("1", "b", "zebra", "trainb", "testb") else horses).append(picture)
    if not horses or not zebras:
        raise ValueError(f"{dataset_id} did not give both domains (found {len(horses)} horses, {len(zebras)} zebras)")
    return np.stack(horses), np.stack(zebras)

"""Procedural woven fabric, flawless for training, with labelled defects for testing.

No real fabric-defect data (MVTec AD, AITEX) exists offline, so swatches are woven here: warp yarns
run vertically, weft yarns horizontally, and a weave pattern decides which is on top at each
crossing (plain: alternate; twill: diagonal steps; satin: long floats). Each yarn is shaded as a
round thread with fibre texture and its own thickness and tone; the cloth gets a colour, a slight
rotation and wobble, uneven lighting and sensor noise.

As on a real inspection line (and in MVTec AD, one category per model), a detector learns *one
product*: `PRODUCTS` holds three (a plain-weave linen, a twill denim and a satin). Swatches of a
product differ the way bolts of the same cloth do: their own yarns, a dye-lot shade, a degree of
skew, the light. `random_weave` makes a cloth that is none of them (the app's "fit to your own
fabric" demo).

Defects are applied **only** by `defective_swatch`, which the training split never calls:
holes, cuts, stains, oil spots, missing threads, broken threads, knots, colour bleeding and folds.
Each comes with its pixel mask.

Splits are fixed by seed ranges: training swatches use seeds from 0, validation (normal only,
for calibrating thresholds) from 10,000,000, test (half normal, half defective, every defect type
equally often, for every product) from 20,000,000. A tuning split built like the test split, from
30,000,000, chooses the autoencoder map's two scoring settings (blur and colour weight) so the test
split is never looked at before the end; no network ever trains on it.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

WEAVES = ("plain", "twill", "satin")
DEFECTS = ("hole", "cut", "stain", "oil_spot", "missing_thread", "broken_thread", "knot", "colour_bleeding", "fold")
SIZE = 256
TRAIN_SEED, VAL_SEED, TEST_SEED, TUNE_SEED = 0, 10_000_000, 20_000_000, 30_000_000
VAL_COUNT, TEST_NORMAL, TEST_PER_DEFECT = 30, 45, 5  # per product
TUNE_NORMAL, TUNE_PER_DEFECT = 30, 4  # per product
PRODUCT_SEEDS = 1_000_000  # each product's seeds within a split: base + product * PRODUCT_SEEDS + k


@dataclass
class Weave:
    kind: str
    period: float  # px per yarn
    yarn_width: float  # share of the period the yarn fills; the rest is shadowy gap
    angle: float  # radians
    warp_rgb: np.ndarray  # (3,)
    weft_rgb: np.ndarray  # (3,)
    seed: int


@dataclass(frozen=True)
class Product:
    """One cloth as a mill makes it: what every bolt of it shares."""

    key: str  # short name for metric keys
    name: str
    kind: str
    period: float  # px per yarn at 256 px
    yarn_width: float
    warp_rgb: tuple[float, float, float]
    weft_rgb: tuple[float, float, float]


PRODUCTS = (
    Product("linen", "linen (plain weave)", "plain", 10.0, 0.80, (0.80, 0.72, 0.58), (0.76, 0.69, 0.56)),
    Product("denim", "denim (twill)", "twill", 8.0, 0.86, (0.20, 0.28, 0.50), (0.84, 0.82, 0.76)),
    Product("satin", "rose satin", "satin", 7.0, 0.88, (0.86, 0.60, 0.64), (0.80, 0.58, 0.62)),
)
PRODUCT_NAMES = tuple(p.name for p in PRODUCTS)


def product_weave(product: int, rng: np.random.Generator) -> Weave:
    """One bolt of PRODUCTS[product]: its own yarns, a dye-lot shade (+-3%), up to 1 degree of skew."""
    spec = PRODUCTS[product]
    shade = rng.uniform(0.97, 1.03)
    return Weave(
        kind=spec.kind,
        period=spec.period,
        yarn_width=spec.yarn_width,
        angle=float(rng.uniform(-1, 1) * math.pi / 180),
        warp_rgb=np.clip(np.array(spec.warp_rgb) * shade, 0, 1),
        weft_rgb=np.clip(np.array(spec.weft_rgb) * shade, 0, 1),
        seed=int(rng.integers(2**31)),
    )


def random_weave(rng: np.random.Generator) -> Weave:
    """A random cloth: weave, yarn size, colour scheme (one tone, two tones like denim, or near white)."""
    hue, sat, val = rng.uniform(0, 1), rng.uniform(0.15, 0.75), rng.uniform(0.35, 0.9)
    base = hsv_to_rgb(hue, sat, val)
    scheme = rng.uniform()
    if scheme < 0.55:  # one tone
        warp, weft = base * rng.uniform(0.95, 1.05, 3), base * rng.uniform(0.9, 1.0, 3)
    elif scheme < 0.85:  # two tones (denim: coloured warp, pale weft)
        warp, weft = base, hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0, 0.25), rng.uniform(0.75, 0.95))
    else:  # undyed
        warp = weft = hsv_to_rgb(rng.uniform(0.08, 0.15), rng.uniform(0.03, 0.15), rng.uniform(0.8, 0.95))
    return Weave(
        kind=str(rng.choice(WEAVES)),
        period=float(rng.uniform(6, 12)),
        yarn_width=float(rng.uniform(0.72, 0.92)),
        angle=float(rng.uniform(-4, 4) * math.pi / 180),
        warp_rgb=np.clip(warp, 0, 1),
        weft_rgb=np.clip(weft, 0, 1),
        seed=int(rng.integers(2**31)),
    )


def hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i], dtype=np.float64)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: tuple[int, int]) -> np.ndarray:
    """Noise with `cells` random values per axis, bilinearly interpolated to `shape`; about N(0, 1)."""
    coarse = rng.standard_normal((cells[0] + 1, cells[1] + 1))
    ys = np.linspace(0, cells[0], shape[0])
    xs = np.linspace(0, cells[1], shape[1])
    y0, x0 = np.minimum(ys.astype(int), cells[0] - 1), np.minimum(xs.astype(int), cells[1] - 1)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    a, b = coarse[y0][:, x0], coarse[y0][:, x0 + 1]
    c, d = coarse[y0 + 1][:, x0], coarse[y0 + 1][:, x0 + 1]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


def render(weave: Weave, size: int = SIZE, missing: tuple[str, int, float, float] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Weave -> (H, W, 3) float RGB in [0, 1].

    missing = (direction "weft" or "warp", yarn index offset from the centre, start, end as fractions
    of the image along the yarn): that yarn is absent there. Returns the image and, when a yarn is
    missing, the mask of where it should have been."""
    rng = np.random.default_rng(weave.seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    cx = cy = size / 2
    cos, sin = math.cos(weave.angle), math.sin(weave.angle)
    wobble = 1.5 * smooth_noise(rng, (size, size), (3, 3))
    x = cos * (xx - cx) + sin * (yy - cy) + cx + wobble
    y = -sin * (xx - cx) + cos * (yy - cy) + cy + 1.5 * smooth_noise(rng, (size, size), (3, 3))
    u, v = x / weave.period, y / weave.period
    i, j = np.floor(u).astype(int), np.floor(v).astype(int)
    fu, fv = u - i, v - j
    if weave.kind == "plain":
        warp_on_top = (i + j) % 2 == 0
    elif weave.kind == "twill":
        warp_on_top = (i + j) % 4 < 2
    else:  # 5-harness satin: warp floats over four wefts, under one
        warp_on_top = (2 * i + j) % 5 != 0

    # Per-yarn variation: thickness (slubs) and tone.
    n = size // 4 + 64
    warp_thick = 1 + 0.06 * rng.standard_normal(n)
    weft_thick = 1 + 0.06 * rng.standard_normal(n)
    warp_tone = 1 + 0.05 * rng.standard_normal(n)
    weft_tone = 1 + 0.05 * rng.standard_normal(n)
    wi, wj = i % n, j % n

    def profile(f: np.ndarray, thickness: np.ndarray) -> np.ndarray:
        """Brightness across a round yarn: bright ridge, dark edges, 0 in the gap."""
        half = weave.yarn_width * thickness / 2
        d = np.abs(f - 0.5) / np.maximum(half, 1e-3)
        return np.where(d < 1, np.sqrt(np.clip(1 - d**2, 0, 1)), 0.0)

    warp_shape = profile(fu, warp_thick[wi]) * (0.75 + 0.25 * np.sin(np.pi * fv) ** 0.5)  # dips under the weft at cell ends
    weft_shape = profile(fv, weft_thick[wj]) * (0.75 + 0.25 * np.sin(np.pi * fu) ** 0.5)
    # Fibres run along each yarn: noise fast across it, slow along it.
    warp_fibre = 1 + 0.08 * smooth_noise(rng, (size, size), (size // 24, size // 2))
    weft_fibre = 1 + 0.08 * smooth_noise(rng, (size, size), (size // 2, size // 24))

    warp_present = np.ones((size, size), bool)
    weft_present = np.ones((size, size), bool)
    gone = None
    if missing is not None:
        direction, offset, start, end = missing
        along = (yy if direction == "warp" else xx) / size
        span = (along >= start) & (along <= end)
        if direction == "weft":
            gone = (j == int(np.floor(cy / weave.period)) + offset) & span
            weft_present &= ~gone
        else:
            gone = (i == int(np.floor(cx / weave.period)) + offset) & span
            warp_present &= ~gone

    show_warp = warp_present & (warp_on_top | ~weft_present)
    show_weft = weft_present & ~show_warp
    warp_light = warp_shape * warp_tone[wi] * warp_fibre
    weft_light = weft_shape * weft_tone[wj] * weft_fibre
    light = np.where(show_warp, warp_light, np.where(show_weft, weft_light, 0.0))
    colour = np.where(show_warp[..., None], weave.warp_rgb, weave.weft_rgb)
    gap = 0.25 * (weave.warp_rgb + weave.weft_rgb) / 2  # the shadow between yarns
    image = gap + (colour - gap) * np.clip(light, 0, 1.2)[..., None] ** 0.8
    lighting = 1 + 0.12 * smooth_noise(rng, (size, size), (2, 2))
    image = image * lighting[..., None] + 0.012 * rng.standard_normal((size, size, 3))
    mask = None
    if gone is not None:
        mask = gone & (np.abs((fv if missing[0] == "weft" else fu) - 0.5) < 0.5)
    return np.clip(image, 0, 1).astype(np.float32), mask


def _blob(rng: np.random.Generator, size: int, radius: float, lumps: int = 4) -> np.ndarray:
    """A soft random blob (sum of gaussians) in [0, 1], centred somewhere away from the edges."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    cy, cx = rng.uniform(radius + 8, size - radius - 8, 2)
    out = np.zeros((size, size))
    for _ in range(lumps):
        oy, ox = rng.normal(0, radius / 2.5, 2)
        r = radius * rng.uniform(0.4, 0.8)
        out = np.maximum(out, np.exp(-(((yy - cy - oy) ** 2 + (xx - cx - ox) ** 2) / (2 * r**2))))
    return out


def _line(size: int, p0: np.ndarray, p1: np.ndarray, width: float) -> np.ndarray:
    """Soft coverage in [0, 1] of a straight segment of the given width."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    d = p1 - p0
    t = np.clip(((xx - p0[0]) * d[0] + (yy - p0[1]) * d[1]) / max(float(d @ d), 1e-6), 0, 1)
    dist = np.hypot(xx - (p0[0] + t * d[0]), yy - (p0[1] + t * d[1]))
    return np.clip(width / 2 + 0.5 - dist, 0, 1)


def add_defect(image: np.ndarray, weave: Weave, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) flawless swatch -> (the swatch with one defect, (H, W) bool mask of the defect)."""
    size = image.shape[0]
    image = image.copy()
    backing = rng.uniform(0.02, 0.25) * np.ones(3)  # what shows through a hole: a dark table or backing
    if kind == "hole":
        blob = _blob(rng, size, rng.uniform(7, 18), lumps=3)
        frayed = blob + 0.15 * smooth_noise(rng, (size, size), (size // 6, size // 6))
        mask = frayed > 0.5
        image[mask] = backing
    elif kind == "cut":
        p0 = rng.uniform(40, size - 40, 2)
        angle = rng.uniform(0, np.pi)
        length = rng.uniform(25, 60)
        p1 = p0 + length * np.array([math.cos(angle), math.sin(angle)])
        cover = _line(size, p0, p1, rng.uniform(1.5, 3.5))
        mask = cover > 0.3
        image = image * (1 - cover[..., None]) + backing * cover[..., None]
    elif kind == "stain":
        blob = _blob(rng, size, rng.uniform(10, 28))
        dye = hsv_to_rgb(rng.uniform(0.05, 0.14), rng.uniform(0.4, 0.8), rng.uniform(0.25, 0.55))  # coffee, rust, mud
        alpha = rng.uniform(0.45, 0.75) * np.clip(blob * 1.4, 0, 1)
        image = image * (1 - alpha[..., None]) + (image * dye * 1.6) * alpha[..., None]
        mask = alpha > 0.12
    elif kind == "oil_spot":
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
        cy, cx = rng.uniform(30, size - 30, 2)
        r = rng.uniform(6, 16)
        d = np.hypot(yy - cy, xx - cx) / r
        darkness = np.where(d < 1, 0.45 + 0.2 * d**4, np.clip(1 - (1 - 0.65) * np.exp(-((d - 1) ** 2) * 30), 0, 1))
        image = image * darkness[..., None]
        mask = d < 1.1
    elif kind in ("missing_thread", "broken_thread"):
        # Satin shows its warp floats on the face; a weft yarn missing under them is invisible, so only face yarns go missing.
        direction = "warp" if weave.kind == "satin" else str(rng.choice(["weft", "warp"]))
        offset = int(rng.integers(-8, 9))
        start, end = (0.0, 1.0) if kind == "missing_thread" else sorted(rng.uniform(0.15, 0.85, 2))
        if kind == "broken_thread":
            end = min(start + rng.uniform(0.08, 0.2), 0.95)
        image, mask = render(weave, size, missing=(direction, offset, start, end))
        if kind == "broken_thread":  # a loose end curls off the break
            ys, xs = np.nonzero(mask)
            tip = np.array([xs.max(), ys.mean()]) if direction == "weft" else np.array([xs.mean(), ys.max()])
            p1 = tip + rng.uniform(-12, 12, 2)
            cover = _line(size, tip, p1, weave.period * 0.5)
            colour = weave.weft_rgb if direction == "weft" else weave.warp_rgb
            image = image * (1 - cover[..., None]) + colour * 1.1 * cover[..., None]
            mask = mask | (cover > 0.3)
    elif kind == "knot":  # a tangle of one yarn sitting on the cloth: a lit ball with swirled fibres and a drop shadow
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
        cy, cx = rng.uniform(20, size - 20, 2)
        r = rng.uniform(6, 10)
        d = np.hypot(yy - cy, xx - cx) / r
        shadow = np.exp(-((np.hypot(yy - cy - r / 3, xx - cx - r / 3) / r) ** 2) * 1.5)  # light from the top left
        image = image * (1 - 0.45 * shadow)[..., None]
        swirl = 0.75 + 0.25 * np.sin(3 * np.arctan2(yy - cy, xx - cx) + 9 * d + rng.uniform(0, 2 * np.pi))
        shade = 0.6 + 0.7 * np.clip(1 - np.hypot(yy - cy + r / 3, xx - cx + r / 3) / (1.3 * r), 0, 1)
        colour = (weave.warp_rgb if rng.uniform() < 0.5 else weave.weft_rgb) * 1.1
        body = np.clip(colour * (shade * swirl)[..., None], 0, 1)
        alpha = np.clip(3 * (1 - d**2), 0, 1)  # opaque, with a soft rim
        image = image * (1 - alpha[..., None]) + body * alpha[..., None]
        mask = (d < 1.0) | (shadow > 0.6)
    elif kind == "colour_bleeding":
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
        cy, cx = rng.uniform(50, size - 50, 2)
        angle = rng.uniform(0, np.pi)
        along = (xx - cx) * math.cos(angle) + (yy - cy) * math.sin(angle)
        across = -(xx - cx) * math.sin(angle) + (yy - cy) * math.cos(angle)
        streak = np.exp(-(along**2) / (2 * rng.uniform(20, 40) ** 2) - across**2 / (2 * rng.uniform(3, 7) ** 2))
        dye = hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.7, 1.0), rng.uniform(0.5, 0.9))
        alpha = 0.65 * streak
        image = image * (1 - alpha[..., None]) + dye * alpha[..., None]
        mask = alpha > 0.12
    elif kind == "fold":
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
        angle = rng.uniform(0, np.pi)
        c = rng.uniform(60, size - 60)
        across = (xx - size / 2) * -math.sin(angle) + (yy - size / 2) * math.cos(angle) + size / 2 - c
        width = rng.uniform(5, 10)
        crease = np.clip(1 - np.abs(across) / width, 0, 1)
        shade = 1 + 0.45 * np.sign(across) * crease - 0.35 * crease**4  # one side lit, one in shadow, dark ridge
        image = image * shade[..., None]
        mask = crease > 0.15
    else:
        raise ValueError(f"unknown defect {kind!r}; expected one of {DEFECTS}")
    return np.clip(image, 0, 1).astype(np.float32), mask.astype(bool)


def normal_swatch(seed: int, product: int = 0, size: int = SIZE) -> np.ndarray:
    """One flawless swatch of PRODUCTS[product], (H, W, 3) float in [0, 1]; the same seed gives the same cloth."""
    return render(product_weave(product, np.random.default_rng(seed)), size)[0]


def defective_swatch(seed: int, kind: str, product: int = 0, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """One swatch of PRODUCTS[product] with a `kind` defect, and its (H, W) bool mask. Never used for training."""
    rng = np.random.default_rng(seed)
    weave = product_weave(product, rng)
    return add_defect(render(weave, size)[0], weave, kind, rng)


def _seed(split_base: int, product: int, k: int) -> int:
    return split_base + product * PRODUCT_SEEDS + k


def training_swatches(count: int, product: int = 0, start: int = 0, size: int = SIZE) -> np.ndarray:
    """(count, H, W, 3) flawless training swatches of one product (no defects, by construction)."""
    return np.stack([normal_swatch(_seed(TRAIN_SEED, product, start + k), product, size) for k in range(count)])


def validation_swatches(product: int = 0, count: int = VAL_COUNT, size: int = SIZE) -> np.ndarray:
    """The fixed flawless validation swatches of one product that calibrate its thresholds."""
    return np.stack([normal_swatch(_seed(VAL_SEED, product, k), product, size) for k in range(count)])


def test_set(
    product: int = 0, size: int = SIZE, normal: int = TEST_NORMAL, per_defect: int = TEST_PER_DEFECT
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """One product's test swatches: (images (N, H, W, 3), masks (N, H, W) bool, kinds ("normal" or a defect)).

    Half normal, every defect equally often. Smaller counts give a prefix of each part of the full set."""
    return labelled_set(TEST_SEED, product, size, normal, per_defect)


def tuning_set(
    product: int = 0, size: int = SIZE, normal: int = TUNE_NORMAL, per_defect: int = TUNE_PER_DEFECT
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Like test_set, from seeds the test split never uses: for choosing scoring settings, never for training weights."""
    return labelled_set(TUNE_SEED, product, size, normal, per_defect)


def labelled_set(split_base: int, product: int, size: int, normal: int, per_defect: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    images, masks, kinds = [], [], []
    for k in range(normal):
        images.append(normal_swatch(_seed(split_base, product, k), product, size))
        masks.append(np.zeros((size, size), bool))
        kinds.append("normal")
    for d, kind in enumerate(DEFECTS):
        for k in range(per_defect):
            image, mask = defective_swatch(_seed(split_base, product, 1000 + d * 100 + k), kind, product, size)
            images.append(image)
            masks.append(mask)
            kinds.append(kind)
    return np.stack(images), np.stack(masks), kinds


# What both fabric checkpoints' cards say about this data.
PROCEDURAL_DATA = (
    "Procedural woven fabric (ours, `data/fabric.py`), three products as on an inspection line: "
    + ", ".join(PRODUCT_NAMES)
    + ". Round shaded yarns with fibre texture, per-yarn thickness and tone; swatches of a product differ by their yarns, a dye-lot "
    "shade, up to 1 degree of skew, wobble and lighting. Defects (holes, cuts, stains, oil spots, missing and broken threads, knots, "
    "colour bleeding, folds) are drawn only into test swatches. No real fabric-defect photographs (MVTec AD, AITEX) exist offline; "
    "these are synthetic and cleaner than real cloth."
)


@dataclass
class NormalImages:
    """Flawless swatches per product: what the detectors learn from and are calibrated on."""

    products: list[str]
    train: list[np.ndarray]  # per product (N, H, W, 3) float in [0, 1]
    val: list[np.ndarray]
    source: str


def normal_images(dataset: str, count: int, seed: int = 0, val_count: int = VAL_COUNT) -> NormalImages:
    """count training swatches per product and the fixed validation swatches: procedural (every product in
    PRODUCTS), or an MVTec-style folder's train/good (one product, a tenth held out for validation)."""
    if not dataset:
        return NormalImages(
            products=list(PRODUCT_NAMES),
            train=[training_swatches(count, p) for p in range(len(PRODUCTS))],
            val=[validation_swatches(p, val_count) for p in range(len(PRODUCTS))],
            source="procedural fabric",
        )
    from PIL import Image

    root = Path(dataset)
    paths = sorted((root / "train" / "good").glob("*.png")) + sorted((root / "train" / "good").glob("*.jpg"))
    if len(paths) < 10:
        raise FileNotFoundError(f"{root}/train/good needs at least 10 flawless images (MVTec AD layout)")
    arrays = np.stack([np.asarray(Image.open(p).convert("RGB").resize((SIZE, SIZE)), np.float32) / 255 for p in paths])
    order = np.random.default_rng(seed).permutation(len(arrays))
    n_val = max(5, len(arrays) // 10)
    return NormalImages([root.name], [arrays[order[n_val:]][:count]], [arrays[order[:n_val]]], str(root))

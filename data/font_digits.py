"""Digits rendered from the fonts on this machine: a stand-in for hand drawing.

Nobody's hand-drawn sketches exist offline, so the benchmark draws digits with every TrueType
/ OpenType font it finds, with varied stroke width, size, rotation and position, dark ink on a
light canvas like a sketchpad, and then runs them through the same `sketch_to_mnist` a sketch
goes through. The classifier never trains on these.
"""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_DIRS = ["/usr/share/fonts", "/usr/local/share/fonts", str(Path.home() / ".fonts")]


def find_fonts() -> list[Path]:
    """Every .ttf / .otf font on the machine, sorted, so a run is repeatable on one machine."""
    fonts: set[Path] = set()
    for folder in FONT_DIRS:
        if Path(folder).is_dir():
            fonts.update(p for p in Path(folder).rglob("*") if p.suffix.lower() in {".ttf", ".otf"})
    return sorted(fonts)


def render_digit(font_path: Path | None, digit: int, rng: np.random.Generator, canvas: int = 160) -> np.ndarray:
    """One digit as a (canvas, canvas) float image in [0, 1]: dark ink on a light background."""
    size = int(rng.integers(60, 110))
    font = ImageFont.truetype(str(font_path), size) if font_path else ImageFont.load_default(size)
    stroke = int(rng.integers(0, 4))  # 0..3 px extra outline = thin to bold pen
    im = Image.new("L", (canvas * 2, canvas * 2), 255)
    draw = ImageDraw.Draw(im)
    draw.text((canvas, canvas), str(digit), font=font, fill=0, anchor="mm", stroke_width=stroke, stroke_fill=0)
    im = im.rotate(float(rng.uniform(-15, 15)), resample=Image.Resampling.BILINEAR, fillcolor=255)
    # Random position: crop a canvas-sized window whose centre is up to 25 px off the digit.
    dx, dy = rng.integers(-25, 26, size=2)
    left, top = canvas // 2 + int(dx), canvas // 2 + int(dy)
    im = im.crop((left, top, left + canvas, top + canvas))
    return np.asarray(im, dtype=np.float32) / 255.0


def font_digit_set(variants_per_font: int = 5, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray, list[str]]:
    """(images, labels, font names): every font x 10 digits x `variants_per_font` random renderings."""
    rng = np.random.default_rng(seed)
    fonts: list[Path | None] = list(find_fonts()) or [None]  # Pillow's built-in font if the machine has none
    images, labels, names = [], [], []
    for font_path in fonts:
        try:
            for digit in range(10):
                for _ in range(variants_per_font):
                    images.append(render_digit(font_path, digit, rng))
                    labels.append(digit)
                    names.append(font_path.name if font_path else "pillow-default")
        except OSError:  # a font file PIL cannot read
            continue
    return images, np.asarray(labels, dtype=np.int64), names

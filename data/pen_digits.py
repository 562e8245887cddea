"""Digits drawn the way a mouse or finger draws them: a few strokes of one constant pen width.

A sketchpad digit is unlike an MNIST digit: straight, evenly wide lines, sharp corners, a 1 that is
a single vertical bar. A segmenter trained only on MNIST scenes can call such a bar a stray stroke
(background). These digits come from stroke templates (lines and elliptic arcs in a unit box, several
ways of writing each digit), bent by random shear, aspect, point jitter and pen width, rendered in
MNIST's format (a 20 px box in a 28 x 28 frame, ink = 1). They are a training supplement only: no
benchmark scores on them, and the benchmark's drawing proxy (machine fonts, data/font_digits.py)
stays unseen.
"""

import math

import numpy as np
from PIL import Image, ImageDraw

Stroke = list[tuple[float, float]]  # points in a unit box, x right, y down


def _arc(cx: float, cy: float, rx: float, ry: float, start_deg: float, end_deg: float, n: int = 24) -> Stroke:
    """An elliptic arc; angles in degrees with 0 = right and 90 = down (y points down)."""
    angles = np.radians(np.linspace(start_deg, end_deg, n))
    return [(cx + rx * math.cos(a), cy + ry * math.sin(a)) for a in angles]


# Each digit: a list of ways to write it; each way: a list of strokes.
TEMPLATES: dict[int, list[list[Stroke]]] = {
    0: [[_arc(0.5, 0.5, 0.38, 0.5, -90, 270, 36)], [_arc(0.5, 0.5, 0.3, 0.5, -100, 265, 36)]],
    1: [
        [[(0.5, 0.0), (0.5, 1.0)]],
        [[(0.25, 0.22), (0.55, 0.0), (0.55, 1.0)]],
        [[(0.3, 0.2), (0.55, 0.0), (0.55, 1.0)], [(0.25, 1.0), (0.85, 1.0)]],
    ],
    2: [
        [_arc(0.5, 0.3, 0.38, 0.3, 190, 390) + [(0.08, 1.0), (0.92, 1.0)]],
        [_arc(0.5, 0.28, 0.36, 0.28, 180, 360) + [(0.1, 1.0), (0.95, 0.98)]],
    ],
    3: [
        [_arc(0.45, 0.25, 0.38, 0.25, 200, 450) + _arc(0.45, 0.75, 0.42, 0.25, 270, 520)],
        [[(0.1, 0.0), (0.85, 0.0), (0.4, 0.42)] + _arc(0.45, 0.7, 0.42, 0.3, 270, 520)],
    ],
    4: [
        [[(0.62, 0.0), (0.08, 0.66), (0.95, 0.66)], [(0.7, 0.3), (0.7, 1.0)]],
        [[(0.2, 0.0), (0.12, 0.58), (0.9, 0.58)], [(0.72, 0.0), (0.72, 1.0)]],
    ],
    5: [
        [[(0.88, 0.0), (0.25, 0.0), (0.2, 0.45)] + _arc(0.5, 0.7, 0.38, 0.3, 220, 510)],
        [[(0.25, 0.0), (0.2, 0.45)] + _arc(0.5, 0.7, 0.38, 0.3, 220, 510), [(0.25, 0.0), (0.9, 0.0)]],
    ],
    6: [
        [_arc(0.7, 0.6, 0.55, 0.6, 265, 180) + _arc(0.5, 0.72, 0.35, 0.28, 180, 540)],
        [[(0.75, 0.0), (0.2, 0.6)] + _arc(0.5, 0.73, 0.32, 0.27, 200, 560)],
    ],
    7: [
        [[(0.08, 0.0), (0.92, 0.0), (0.4, 1.0)]],
        [[(0.08, 0.0), (0.92, 0.0), (0.45, 1.0)], [(0.35, 0.5), (0.8, 0.5)]],
        [[(0.1, 0.12), (0.1, 0.0), (0.9, 0.0), (0.55, 1.0)]],
    ],
    8: [
        [_arc(0.5, 0.25, 0.3, 0.25, 0, 360), _arc(0.5, 0.74, 0.38, 0.26, -90, 270)],
        [_arc(0.5, 0.25, 0.3, 0.25, 90, -270) + _arc(0.5, 0.75, 0.36, 0.25, -90, 270)],
    ],
    9: [
        [_arc(0.5, 0.28, 0.38, 0.28, 0, 360), [(0.88, 0.28), (0.82, 1.0)]],
        [_arc(0.5, 0.28, 0.36, 0.28, 0, 360) + [(0.86, 0.3), (0.6, 1.0)]],
    ],
}


def render_pen_digit(digit: int, rng: np.random.Generator, scale: int = 4) -> np.ndarray:
    """One digit in MNIST format: (28, 28) float32 ink in [0, 1], drawn at `scale` x and shrunk (antialiased)."""
    strokes = TEMPLATES[digit][int(rng.integers(len(TEMPLATES[digit])))]
    height = 20 * scale
    width = height * (0.12 if digit == 1 else rng.uniform(0.55, 0.95))
    shear = rng.uniform(-0.3, 0.3)  # slant: x moves by shear * (distance above the middle)
    jitter = rng.normal(0, 0.025, size=2)
    canvas = 28 * scale
    im = Image.new("L", (canvas, canvas), 0)
    draw = ImageDraw.Draw(im)
    pen = float(rng.uniform(1.4, 3.4) * scale)
    for stroke in strokes:
        points = []
        for x, y in stroke:
            x, y = x + rng.normal(0, 0.02) + jitter[0], y + rng.normal(0, 0.02) + jitter[1]
            px = canvas / 2 + (x - 0.5) * width + shear * (0.5 - y) * height
            py = canvas / 2 + (y - 0.5) * height
            points.append((px, py))
        draw.line(points, fill=255, width=round(pen), joint="curve")
        for px, py in (points[0], points[-1]):  # round pen ends
            draw.ellipse((px - pen / 2, py - pen / 2, px + pen / 2, py + pen / 2), fill=255)
    small = im.resize((28, 28), Image.Resampling.BOX)
    return np.asarray(small, np.float32) / 255


def pen_digit_set(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n pen-drawn digits, classes in turn: ((n, 28, 28) float32 in [0, 1], (n,) int64 labels)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    images = np.stack([render_pen_digit(int(d), rng) for d in labels])
    return images, labels.astype(np.int64)


def draw_digit(digit: int, size: int = 300, stroke: int = 18, dark_on_light: bool = True):
    """A big sketch of a 0, 1, 4 or 7 (size x size, "L"), drawn with PIL lines as a person draws on a sketchpad: the
    fixed drawing that tests and benchmarks hand the tabs (not a training digit)."""
    strokes = {
        1: [[(0.5, 0.15), (0.5, 0.85)]],
        4: [[(0.6, 0.85), (0.6, 0.15), (0.25, 0.6), (0.75, 0.6)]],
        7: [[(0.25, 0.2), (0.75, 0.2), (0.45, 0.85)]],
        0: [[(0.5, 0.15), (0.72, 0.3), (0.72, 0.7), (0.5, 0.85), (0.28, 0.7), (0.28, 0.3), (0.5, 0.15)]],
    }[digit]
    ink, paper = (0, 255) if dark_on_light else (255, 0)
    im = Image.new("L", (size, size), paper)
    draw = ImageDraw.Draw(im)
    for line in strokes:
        draw.line([(x * size, y * size) for x, y in line], fill=ink, width=stroke, joint="curve")
    return im

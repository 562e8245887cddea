"""How each image endpoint's cost grows with the size of the upload: 128 to 1024 px (and the working-size
setting where a tab has one). The size caps in apps/common.py and in each tab were chosen from this curve.

    python -m benchmarks.cost                          # markdown table, and benchmarks/cost_growth.json

Each cell is the median of 3 calls of the tab's own function (decode, checks, resize, model, pictures),
after one warm-up call; the upload is a PNG of that size on disk, as the server would hand it over.
"""

import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

SIZES = [128, 256, 512, 1024]
OUT = Path(__file__).resolve().parent / "cost_growth.json"


def upload(size: int, folder: Path) -> str:
    """A size x size RGB photo-like PNG (smooth colours plus noise, so PNG cannot shrink it to nothing)."""
    rng = np.random.default_rng(size)
    y, x = np.mgrid[0:size, 0:size] / size
    rgb = np.stack([x, y, 0.5 + 0.5 * np.sin(6 * x * y)], -1) * 200 + rng.normal(0, 20, (size, size, 3))
    path = folder / f"upload_{size}.png"
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(path)
    return str(path)


def median_ms(fn: Callable[[], object], repeats: int = 3) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 1)


def endpoints() -> dict[str, Callable[[str], object]]:
    from apps import attack, classify, digits, fabric, horse2zebra, segment

    return {
        "/classify_digit": lambda path: digits.classify_digit(path),
        "/classify_image": lambda path: classify.classify_image(path),
        "/explain_image": lambda path: classify.explain_image(path),
        "/segment_digits": lambda path: segment.segment_digits(path, 0.5, segment.ANY_DIGIT),
        "/attack (photo, PGD-10)": lambda path: attack.attack(
            path, "photo", "pgd", epsilon=4, steps=10, pixels=1, target=attack.NO_TARGET, population=40, iterations=20, seed=0
        ),
        "/detect_defects (autoencoder)": lambda path: fabric.detect_defects(path, fabric.AUTOENCODER),
        "/detect_defects (features)": lambda path: fabric.detect_defects(path, fabric.FEATURES),
        "/horse_to_zebra (working size 256)": lambda path: horse2zebra.horse_to_zebra(path, "horse → zebra", 256),
        "/horse_to_zebra (working size = upload, cap 512)": lambda path: horse2zebra.horse_to_zebra(
            path, "horse → zebra", min(Image.open(path).size[0], horse2zebra.MAX_SIZE)
        ),
    }


def main() -> dict[str, dict[str, float]]:
    # Latencies time the work itself: a repeat must not be answered from the apps' memory of recent answers.
    os.environ["MODEL_SHOW_ANSWER_CACHE"] = "0"
    folder = Path(tempfile.mkdtemp(prefix="cost-"))
    paths = {size: upload(size, folder) for size in SIZES}
    results: dict[str, dict[str, float]] = {}
    for name, fn in endpoints().items():
        results[name] = {f"{size}px_ms": median_ms(lambda fn=fn, size=size: fn(paths[size])) for size in SIZES}
        print(name, results[name], flush=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print("\n| endpoint | " + " | ".join(f"{s} px" for s in SIZES) + " |")
    print("| --- |" + " --- |" * len(SIZES))
    for name, row in results.items():
        print(f"| `{name}` | " + " | ".join(f"{row[f'{s}px_ms']:,.0f} ms" for s in SIZES) + " |")
    return results


if __name__ == "__main__":
    main()

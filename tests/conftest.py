"""Shared fixtures: the real app, launched once per test session the way a user launches it."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningApp:
    def __init__(self, url: str, process: subprocess.Popen, startup_s: float, log_path: Path):
        self.url = url
        self.process = process
        self.startup_s = startup_s
        self.log_path = log_path


@pytest.fixture(scope="session")
def running_app(tmp_path_factory) -> RunningApp:
    """`python app.py` on a free loopback port; yields once the page answers."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("app") / "app.log"
    env = {
        **os.environ,
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
        # Fitting to your own fabric fine-tunes for 35 s by default; the API and bad-input tests fit 6 times and check
        # the answer, not the fit's quality (tests/test_apps_fabric.py does that, by step count).
        "MODEL_SHOW_FIT_SECONDS": "2",
    }
    start = time.perf_counter()
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "app.py"], cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = start + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"app.py exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(url + "gradio_api/info", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if time.perf_counter() > deadline:
            process.kill()
            raise RuntimeError(f"app.py did not answer within 60 s:\n{log_path.read_text()}")
        time.sleep(0.1)
    app = RunningApp(url, process, time.perf_counter() - start, log_path)
    yield app
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


def draw_digit(digit: int, size: int = 300, stroke: int = 18, dark_on_light: bool = True):
    """A digit drawn with PIL lines, the way a person draws it with a pen (not a font)."""
    from PIL import Image, ImageDraw

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


def needs_checkpoint(name: str, weights: str = "model.safetensors"):
    """Skip, saying why, until checkpoint `name` is trained and shipped (its tab is not in the app before that)."""
    import pytest

    missing = not (REPO_ROOT / "checkpoints" / name / weights).is_file()
    return pytest.mark.skipif(missing, reason=f"checkpoints/{name} is not shipped yet: its issue is still open")

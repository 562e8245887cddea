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


# The Python that runs app.py. .ci/run points this at a venv built from requirements.txt alone, exactly what a Space
# installs, so every test that talks to the launched app (API, bad input, browser, disk) proves the Space install too.
APP_PYTHON = os.environ.get("MODEL_SHOW_APP_PYTHON") or sys.executable


class RunningApp:
    def __init__(self, url: str, process: subprocess.Popen, startup_s: float, log_path: Path, cache_dir: Path, temp_dir: Path):
        self.url = url
        self.process = process
        self.startup_s = startup_s
        self.log_path = log_path
        self.cache_dir = cache_dir  # GRADIO_TEMP_DIR: Gradio's upload folder and cache
        self.temp_dir = temp_dir  # TMPDIR: where anything else the server writes to "temp" would land

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def launch_app(folder: Path, **env_overrides: str) -> RunningApp:
    """`python app.py` on a free loopback port, with its cache and temp folders inside `folder`; returns once the
    page answers."""
    port = free_port()
    cache_dir, temp_dir = folder / "gradio-cache", folder / "tmp"
    cache_dir.mkdir(parents=True, exist_ok=True)
    temp_dir.mkdir(parents=True, exist_ok=True)
    log_path = folder / "app.log"
    env = {
        **os.environ,
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "GRADIO_TEMP_DIR": str(cache_dir),
        "TMPDIR": str(temp_dir),
        "HF_HUB_OFFLINE": "1",
        # Fitting to your own fabric fine-tunes for 35 s by default; the API and bad-input tests fit 6 times and check
        # the answer, not the fit's quality (tests/test_apps_fabric.py does that, by step count).
        "MODEL_SHOW_FIT_SECONDS": "2",
        # The live robustness curve attacks 200 digits (about 30 s); the tests check that it answers, on 20.
        "MODEL_SHOW_CURVE_DIGITS": "20",
        **env_overrides,
    }
    start = time.perf_counter()
    with open(log_path, "w") as log:
        process = subprocess.Popen([APP_PYTHON, "app.py"], cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
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
    return RunningApp(url, process, time.perf_counter() - start, log_path, cache_dir, temp_dir)


@pytest.fixture(scope="session", autouse=True)
def upload_folder_holds_test_files(tmp_path_factory):
    """In-process tests hand the tabs' functions files from tmp_path, as Gradio hands them uploads. The tabs open a
    client's file only inside Gradio's upload folder (GRADIO_TEMP_DIR), so point that at pytest's temp root here.
    The launched app gets a folder of its own (launch_app), so this never widens what a client can reach."""
    before = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(tmp_path_factory.getbasetemp())
    yield
    if before is None:
        os.environ.pop("GRADIO_TEMP_DIR", None)
    else:
        os.environ["GRADIO_TEMP_DIR"] = before


@pytest.fixture(scope="session")
def running_app(tmp_path_factory) -> RunningApp:
    """The app every API, bad-input and browser test shares, launched the way a user launches it."""
    app = launch_app(tmp_path_factory.mktemp("app"))
    yield app
    app.stop()


def needs_checkpoint(name: str, weights: str = "model.safetensors"):
    """Skip, saying why, until checkpoint `name` is trained and shipped (its tab is not in the app before that)."""
    import pytest

    missing = not (REPO_ROOT / "checkpoints" / name / weights).is_file()
    return pytest.mark.skipif(missing, reason=f"checkpoints/{name} is not shipped yet: its issue is still open")

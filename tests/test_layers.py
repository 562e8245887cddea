"""The layers (CONTRIBUTING.md, ../shared/ARCHITECTURE.md) hold in every file:

    data  <-  models  <-  apps      (tabs: present only)
                      <-  training  (one script per checkpoint)
              benchmarks on top (measures models and the tabs' own functions)

A layer imports only the layers below it (and its own): a tab never imports a training script, a benchmark never
imports a training script or a test, models/ and data/ never reach up. Every import counts, nested ones included,
so a new edge anywhere fails here.
"""

import ast
from pathlib import Path

from tests.conftest import REPO_ROOT

# layer -> the layers of ours it must not import. "app" is app.py, which assembles the tabs.
FORBIDDEN = {
    "data": {"models", "apps", "app", "training", "benchmarks", "tests"},
    "models": {"apps", "app", "training", "benchmarks", "tests"},
    "apps": {"app", "training", "benchmarks", "tests"},
    "app": {"training", "benchmarks", "tests"},
    "training": {"apps", "app", "benchmarks", "tests"},
    "benchmarks": {"training", "tests"},
}
OURS = set(FORBIDDEN) | {"tests"}


def layer_of(path: Path, root: Path) -> str | None:
    first = path.relative_to(root).parts[0]
    return "app" if first == "app.py" else first if first in FORBIDDEN else None


def imported_packages(path: Path) -> list[tuple[int, str]]:
    """(line, top-level package) of every absolute import in the file, nested imports included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            found.append((node.lineno, "relative import"))
    return found


def layer_violations(root: Path = REPO_ROOT) -> list[str]:
    """One line per forbidden import in any file of ours under `root`."""
    problems = []
    for path in sorted([root / "app.py", *[p for layer in FORBIDDEN if layer != "app" for p in (root / layer).rglob("*.py")]]):
        layer = layer_of(path, root)
        if layer is None or not path.is_file():
            continue
        for line, package in imported_packages(path):
            if package == "relative import":
                problems.append(f"{path.relative_to(root)}:{line} uses a relative import (write the layer's name out)")
            elif package in FORBIDDEN[layer]:
                problems.append(f"{path.relative_to(root)}:{line} ({layer}) imports {package}")
    return problems


def test_every_file_imports_only_the_layers_below_it():
    assert layer_violations() == []


def test_the_layer_check_catches_a_tab_that_imports_a_training_script(tmp_path):
    """A test of the test: the real Digits tab with one deliberately added line, checked the same way."""
    for layer in FORBIDDEN:
        if layer != "app":
            (tmp_path / layer).mkdir()
    tab = (REPO_ROOT / "apps" / "digits.py").read_text()
    (tmp_path / "apps" / "digits.py").write_text(tab)
    (tmp_path / "app.py").write_text((REPO_ROOT / "app.py").read_text())
    assert layer_violations(tmp_path) == []

    nested = tab.replace(
        "def model()", "def model():\n    from training.train_digit_classifier import evaluate  # noqa\n\n\ndef _model()", 1
    )
    (tmp_path / "apps" / "digits.py").write_text("from training.train_digit_classifier import TrainConfig\n" + nested)
    problems = layer_violations(tmp_path)
    assert problems == ["apps/digits.py:1 (apps) imports training", f"apps/digits.py:{nested_line(nested) + 1} (apps) imports training"]


def test_the_layer_check_catches_a_benchmark_that_imports_a_test_and_a_model_that_reaches_up(tmp_path):
    for layer in FORBIDDEN:
        if layer != "app":
            (tmp_path / layer).mkdir()
    (tmp_path / "app.py").write_text("import apps\n")
    (tmp_path / "benchmarks" / "run.py").write_text("def bench():\n    from tests.conftest import launch_app\n    import apps.digits\n")
    (tmp_path / "models" / "unet.py").write_text("import torch\nfrom apps.common import check_number\n")
    (tmp_path / "data" / "scenes.py").write_text("from . import fabric\nimport models.unet\n")
    assert layer_violations(tmp_path) == [
        "benchmarks/run.py:2 (benchmarks) imports tests",
        "data/scenes.py:1 uses a relative import (write the layer's name out)",
        "data/scenes.py:2 (data) imports models",
        "models/unet.py:2 (models) imports apps",
    ]


def nested_line(source: str) -> int:
    """The line of the nested training import in `source` (1-based, before the added first line)."""
    return next(i for i, line in enumerate(source.splitlines(), 1) if "from training.train_digit_classifier import evaluate" in line)

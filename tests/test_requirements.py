"""requirements.txt is what a Hugging Face Space installs: every package the app can import must be in it.

The scan follows the app's import graph from app.py through every module of ours it reaches (top-level and nested
imports alike), so a tab that imports a training script drags that script's imports in too. What a static scan
cannot see (which nested imports run) the Space-exact CI run settles: .ci/run starts the app in a venv built from
requirements.txt alone and the API and browser tests drive it (tests/conftest.py, MODEL_SHOW_APP_PYTHON).
"""

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

OURS = {"app", "apps", "models", "data", "training", "benchmarks", "tests"}
# Training-only packages, and the only places the app's graph may import them: inside a function that the app never
# calls. Anywhere else (another file, or the top of one of these) fails the test.
TRAINING_ONLY = {
    "datasets": {"data/mnist.py", "data/austen.py", "data/horses.py", "data/digit_scenes.py"},  # --dataset <hub id>
    "rdata": {"data/austen.py"},  # reads the Austen corpus for training and the benchmark; the app reads the tokenizer
    "skimage": {"data/photos.py"},  # sample_photos, for the import check and tests; the app uses examples/
    "sklearn": {"data/photos.py"},  # the same
}
OPTIONAL = {"spaces"}  # imported only when installed (ZeroGPU Spaces provide it)


def imported_modules(path: Path) -> set[tuple[str, bool]]:
    """Every absolute module imported in the file, nested imports included: (module, imported at the top level).
    `from our_package import name` also yields our_package.name, which is a module when name is a submodule."""
    tree = ast.parse(path.read_text())
    top_level = {id(node) for node in tree.body}
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update((alias.name, id(node) in top_level) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add((node.module, id(node) in top_level))
            if node.module.split(".")[0] in OURS:
                found.update((f"{node.module}.{alias.name}", id(node) in top_level) for alias in node.names)
    return found


def module_file(module: str, root: Path = REPO_ROOT) -> Path | None:
    """Our module's source file, or None for a name that is not a module of ours (a function, a class)."""
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def app_import_graph(root: Path = REPO_ROOT, entry: str = "app") -> dict[Path, set[tuple[str, bool]]]:
    """Every file of ours the app can reach from `entry`, with the modules each imports."""
    graph: dict[Path, set[tuple[str, bool]]] = {}
    todo = [module_file(entry, root)]
    while todo:
        path = todo.pop()
        if path is None or path in graph:
            continue
        graph[path] = imported_modules(path)
        for module, _ in graph[path]:
            if module.split(".")[0] in OURS:
                parts = module.split(".")
                todo += [module_file(".".join(parts[:n]), root) for n in range(1, len(parts) + 1)]
    return graph


def requirement_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            names.add(normalise(re.split(r"[<>=!~\[; ]", line)[0]))
    return names


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def problems(root: Path = REPO_ROOT, requirements: Path | None = None) -> tuple[dict, list]:
    """(packages missing from requirements.txt -> where imported, training-only imports outside their allowed place)."""
    distributions = importlib.metadata.packages_distributions()  # import name -> distribution names
    wanted = requirement_names(requirements or root / "requirements.txt")
    missing, exposed = {}, []
    for path, modules in app_import_graph(root).items():
        where = path.relative_to(root).as_posix()
        for module, at_top in modules:
            top = module.split(".")[0]
            if top in TRAINING_ONLY:
                if at_top or where not in TRAINING_ONLY[top]:
                    exposed.append(f"{where}: import {module}")
                continue
            if top in OURS or top in sys.stdlib_module_names or top in OPTIONAL:
                continue
            dists = {normalise(d) for d in distributions.get(top, [top])}
            if not dists & wanted:
                missing.setdefault(sorted(dists)[0], []).append(f"{where}: import {module}")
    return missing, exposed


def test_every_third_party_import_the_app_can_reach_is_in_requirements_txt():
    missing, exposed = problems()
    assert not missing, f"add these to requirements.txt (the Space installs only that file): {missing}"
    assert not exposed, f"training-only packages where the app can import them: {exposed}"


def test_the_graph_reaches_tabs_models_and_data_but_no_training_script():
    reached = {p.relative_to(REPO_ROOT).as_posix() for p in app_import_graph()}
    assert {"app.py", "apps/fabric.py", "models/fabric_scoring.py", "data/horses.py"} <= reached
    assert not any(p.startswith(("training/", "benchmarks/", "tests/")) for p in reached), sorted(reached)


def test_the_check_follows_imports_through_modules_of_ours(tmp_path):
    """The guard itself can fail: a tab that imports a helper, which imports a training script that needs
    accelerate at its top, is caught two hops away from app.py (the chain that once kept the Space from starting)."""
    (tmp_path / "apps").mkdir()
    (tmp_path / "training").mkdir()
    (tmp_path / "app.py").write_text("import apps\n")
    (tmp_path / "apps" / "__init__.py").write_text("from apps import fabric\n")
    (tmp_path / "apps" / "fabric.py").write_text("from training.train_thing import calibrate\n")
    (tmp_path / "training" / "__init__.py").write_text("")
    (tmp_path / "training" / "train_thing.py").write_text("import torch\nfrom training.common import setup\n")
    (tmp_path / "training" / "common.py").write_text("from accelerate import Accelerator\nimport skimage.data\n")
    (tmp_path / "requirements.txt").write_text("torch\n")
    missing, exposed = problems(tmp_path)
    assert "accelerate" in missing and missing["accelerate"] == ["training/common.py: import accelerate"]
    assert exposed == ["training/common.py: import skimage.data"]


def test_the_check_notices_a_missing_requirement(tmp_path):
    reqs = tmp_path / "requirements.txt"
    reqs.write_text((REPO_ROOT / "requirements.txt").read_text().replace("torch>=", "# torch>="))
    missing, _ = problems(requirements=reqs)
    assert "torch" in missing


def test_ci_launches_the_app_from_a_venv_holding_only_requirements_txt():
    """In CI every launched-app test must run the Space's install: MODEL_SHOW_APP_PYTHON points at a venv built from
    requirements.txt alone, which has none of the training or test packages."""
    import os
    import subprocess

    from tests.conftest import APP_PYTHON

    if os.environ.get("CI") == "true":
        assert os.environ.get("MODEL_SHOW_APP_PYTHON"), ".ci/run must build the Space venv and export MODEL_SHOW_APP_PYTHON"
    if not os.environ.get("MODEL_SHOW_APP_PYTHON"):
        import pytest

        pytest.skip("the app runs in this dev venv (set MODEL_SHOW_APP_PYTHON to a requirements.txt-only venv, as .ci/run does)")
    code = "import importlib.util as u; print(' '.join(m for m in ('accelerate', 'datasets', 'skimage', 'pytest', 'playwright') if u.find_spec(m)))"
    extra = subprocess.run([APP_PYTHON, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout.split()
    assert not extra, f"the Space venv holds packages requirements.txt does not list: {extra}"

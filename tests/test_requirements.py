"""requirements.txt is what a Hugging Face Space installs: every package the app can import must be in it."""

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

# Packages imported only inside functions the app never calls (modules shared with training/ and tests/).
# They must stay inside functions: the test fails if one moves to the top of a file.
TRAINING_ONLY = {
    "datasets": "--dataset <hub id> in the training scripts",
    "rdata": "data/austen.py reads the Austen corpus for training and the benchmark; the app reads the tokenizer",
    "skimage": "data/photos.sample_photos, for the import check and tests; the app uses the copies in examples/",
    "sklearn": "the same",
}
OPTIONAL = {"spaces"}  # imported only when installed (ZeroGPU Spaces provide it)


def imported_modules(path: Path) -> set[tuple[str, bool]]:
    """Every absolute module imported in the file, nested imports included: (module, imported at the top level)."""
    tree = ast.parse(path.read_text())
    top_level = {id(node) for node in tree.body}
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update((alias.name, id(node) in top_level) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add((node.module, id(node) in top_level))
    return found


def app_files() -> list[Path]:
    """app.py and every package the app imports from: apps/, models/, data/."""
    return [REPO_ROOT / "app.py", *sorted(p for d in ("apps", "models", "data") for p in (REPO_ROOT / d).glob("*.py"))]


def requirement_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            names.add(normalise(re.split(r"[<>=!~\[; ]", line)[0]))
    return names


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_third_party_import_of_the_app_is_in_requirements_txt():
    ours = {"app", "apps", "models", "data", "training", "benchmarks", "tests"}
    distributions = importlib.metadata.packages_distributions()  # import name -> distribution names
    wanted = requirement_names(REPO_ROOT / "requirements.txt")
    missing, exposed = {}, []
    for path in app_files():
        for module, at_top in imported_modules(path):
            top = module.split(".")[0]
            if top in TRAINING_ONLY and at_top:
                exposed.append(f"{path.relative_to(REPO_ROOT)}: import {module}")
            if top in ours or top in sys.stdlib_module_names or top in TRAINING_ONLY or top in OPTIONAL:
                continue
            dists = {normalise(d) for d in distributions.get(top, [top])}
            if not dists & wanted:
                missing.setdefault(sorted(dists)[0], []).append(f"{path.relative_to(REPO_ROOT)}: import {module}")
    assert not missing, f"add these to requirements.txt (the Space installs only that file): {missing}"
    assert not exposed, f"training-only packages imported at the top of a module the app loads: {exposed}"


def test_the_check_notices_a_missing_requirement(tmp_path):
    """The guard itself can fail: a file without torch in it is caught."""
    reqs = tmp_path / "requirements.txt"
    reqs.write_text((REPO_ROOT / "requirements.txt").read_text().replace("torch>=", "# torch>="))
    assert "torch" not in requirement_names(reqs) and "torch" in requirement_names(REPO_ROOT / "requirements.txt")

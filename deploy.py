"""Put Model Show on a Hugging Face Space: one commit holding exactly what the Space runs.

    python -m deploy --space you/model-show                      # the app, its examples and every checkpoint
    python -m deploy --space you/model-show --models-from you    # models from the Hub repos you/<name> instead
    python -m deploy --space you/model-show --dry-run            # list what would go up, contact nobody

What goes up is what git tracks (so runs/, caches and anything untracked never do), filtered to what the app needs:
app.py, requirements.txt, README.md (the Space's card), .gitattributes, apps/, models/, data/, examples/, the
benchmark results the tabs quote (benchmarks/*.json), the screenshots the card shows and checkpoints/. Tests, training
scripts, benchmark code and CI stay home. The commit also deletes files the Space holds that are no longer shipped, so
the Space mirrors main.

With --models-from NAMESPACE the checkpoints stay out: the Space gets the variable MODEL_SHOW_HUB_NAMESPACE (the
app then reads <namespace>/<name> from the Hub, models/hub.py) and its card lists them under `models:`.
--push-models first uploads each checkpoint folder to <namespace>/<name>. Uploads go through huggingface_hub, which
sends large files (the checkpoints) through LFS/Xet, as the Hub requires for files over 10 MiB.

Log in first (`hf auth login`) or pass --token.
"""

import argparse
import fnmatch
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

REPO_ROOT = Path(__file__).resolve().parent
# fnmatch patterns over paths relative to the repo root ("*" also crosses "/").
SPACE_FILES = (
    "app.py",
    "requirements.txt",
    "README.md",
    ".gitattributes",
    "apps/*.py",
    "models/*.py",
    "data/*.py",
    "data/assets/*",
    "examples/*",
    "benchmarks/*.json",
    "docs/screenshots/*",
    "checkpoints/*",
)
NEVER = ("*/__pycache__/*", "*.pyc", "*/in-progress/*")


@dataclass
class Plan:
    files: list[str]  # repo-relative paths to upload, README.md included
    readme: bytes  # README.md as the Space gets it (front matter with `models:` when they come from the Hub)
    models: list[str]  # Hub ids of the checkpoints, when --models-from is used


def tracked_files(root: Path = REPO_ROOT) -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout
    return sorted(name for name in out.decode().split("\0") if name and (root / name).is_file())


def checkpoint_names(files: list[str]) -> list[str]:
    return sorted({path.split("/")[1] for path in files if path.startswith("checkpoints/") and path.count("/") >= 2})


def space_readme(readme: str, models: list[str]) -> str:
    """README.md with `models:` in its front matter set to `models` (left as it is when there are none)."""
    if not models:
        return readme
    head, sep, body = readme.partition("\n---\n")
    if not readme.startswith("---\n") or not sep:
        raise ValueError("README.md has no front matter for the Space")
    head = re.sub(r"\nmodels:\n(?:  - .*\n?)*", "\n", head + "\n").rstrip("\n")
    return head + "\nmodels:\n" + "".join(f"  - {m}\n" for m in models) + "---\n" + body


def plan(root: Path = REPO_ROOT, models_from: str = "") -> Plan:
    files = [
        f for f in tracked_files(root) if any(fnmatch.fnmatch(f, p) for p in SPACE_FILES) and not any(fnmatch.fnmatch(f, p) for p in NEVER)
    ]
    models = [f"{models_from}/{name}" for name in checkpoint_names(files)] if models_from else []
    if models_from:
        files = [f for f in files if not f.startswith("checkpoints/")]
    readme = space_readme((root / "README.md").read_text(), models).encode()
    return Plan(files, readme, models)


def deploy(
    space: str,
    models_from: str = "",
    push_models: bool = False,
    private: bool = False,
    token: str | None = None,
    root: Path = REPO_ROOT,
) -> str:
    """Create or update the Space; returns its URL."""
    what = plan(root, models_from)
    api = HfApi(token=token)
    if push_models:
        for repo_id in what.models:
            api.create_repo(repo_id, repo_type="model", exist_ok=True)
            api.upload_folder(folder_path=str(root / "checkpoints" / repo_id.split("/")[-1]), repo_id=repo_id, repo_type="model")
    api.create_repo(space, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
    shipped = set(what.files)
    operations = [
        CommitOperationAdd(path_in_repo=f, path_or_fileobj=what.readme if f == "README.md" else str(root / f)) for f in what.files
    ]
    operations += [CommitOperationDelete(path_in_repo=f) for f in api.list_repo_files(space, repo_type="space") if f not in shipped]
    api.create_commit(space, operations=operations, commit_message="Deploy Model Show", repo_type="space")
    if models_from:
        api.add_space_variable(space, "MODEL_SHOW_HUB_NAMESPACE", models_from, description="checkpoints come from <namespace>/<name>")
    return f"https://huggingface.co/spaces/{space}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", required=True, help="the Space's id, owner/name (created if needed)")
    parser.add_argument("--models-from", default="", help="Hub namespace holding the checkpoints as <namespace>/<name>; leaves them out")
    parser.add_argument("--push-models", action="store_true", help="with --models-from: upload each checkpoint folder there first")
    parser.add_argument("--private", action="store_true", help="create the Space private")
    parser.add_argument("--token", default=None, help="a Hub token with write access (default: the logged-in one)")
    parser.add_argument("--dry-run", action="store_true", help="print what would be uploaded and stop")
    args = parser.parse_args(argv)
    if args.push_models and not args.models_from:
        parser.error("--push-models needs --models-from NAMESPACE")
    if args.dry_run:
        what = plan(REPO_ROOT, args.models_from)
        size = sum((REPO_ROOT / f).stat().st_size for f in what.files)
        print("\n".join(what.files))
        print(f"{len(what.files)} files, {size / 2**20:.1f} MiB" + (f"; models from {', '.join(what.models)}" if what.models else ""))
        return
    print(deploy(args.space, args.models_from, args.push_models, args.private, args.token))


if __name__ == "__main__":
    main()

"""`python -m deploy`: what goes up to a Space, tested offline by intercepting huggingface_hub's HfApi."""

import os
import shutil
import subprocess

import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, ModelCard

import deploy
from tests.conftest import APP_PYTHON, REPO_ROOT

CHECKPOINTS = sorted(p.name for p in (REPO_ROOT / "checkpoints").iterdir() if (p / "config.json").is_file())


@pytest.fixture
def hub(monkeypatch):
    """Every HfApi call deploy makes, recorded instead of sent. The Space already holds app.py and a stale file."""
    calls = []
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: calls.append(("create_repo", repo_id, kw)))
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, **kw: calls.append(("upload_folder", kw["repo_id"], kw)))
    monkeypatch.setattr(HfApi, "list_repo_files", lambda self, repo_id, **kw: ["app.py", "old_tab.py", "README.md"])
    monkeypatch.setattr(HfApi, "create_commit", lambda self, repo_id, **kw: calls.append(("create_commit", repo_id, kw)))
    monkeypatch.setattr(
        HfApi, "add_space_variable", lambda self, repo_id, key, value, **kw: calls.append(("variable", repo_id, (key, value)))
    )
    return calls


def commit_of(calls) -> tuple[dict[str, object], list[str]]:
    (commit,) = [kw for name, _, kw in calls if name == "create_commit"]
    adds = {op.path_in_repo: op for op in commit["operations"] if isinstance(op, CommitOperationAdd)}
    deletes = [op.path_in_repo for op in commit["operations"] if isinstance(op, CommitOperationDelete)]
    return adds, deletes


def readme_of(adds) -> str:
    return adds["README.md"].path_or_fileobj.decode()  # bytes: the card as rewritten for the Space


def test_a_space_gets_the_app_its_models_and_nothing_of_development(hub):
    url = deploy.deploy("you/model-show")
    assert url == "https://huggingface.co/spaces/you/model-show"
    (create,) = [c for c in hub if c[0] == "create_repo"]
    assert create[1] == "you/model-show" and create[2]["repo_type"] == "space" and create[2]["space_sdk"] == "gradio"
    adds, deletes = commit_of(hub)
    assert {"app.py", "requirements.txt", "README.md", ".gitattributes", "apps/common.py", "models/hub.py", "data/assets/horse.png"} <= set(
        adds
    )
    for name in CHECKPOINTS:  # every file of every checkpoint folder, weights included
        assert {f"checkpoints/{name}/{f.name}" for f in (REPO_ROOT / "checkpoints" / name).iterdir()} <= set(adds), name
    assert any(p.startswith("examples/") for p in adds) and "benchmarks/latest.json" in adds
    assert not [p for p in adds if p.startswith(("tests/", "training/", ".ci/", "runs/")) or p.endswith(".pyc")]
    assert not [p for p in adds if p.startswith("benchmarks/") and p.endswith(".py")]
    assert "requirements-dev.txt" not in adds and "deploy.py" not in adds
    assert deletes == ["old_tab.py"]  # the Space mirrors main: a stale file goes, the rest is replaced
    assert not [c for c in hub if c[0] == "variable"], "models ship inside the Space: no Hub namespace to set"


def test_models_from_the_hub_leave_checkpoints_out_and_name_them_in_the_card(hub, tmp_path):
    deploy.deploy("you/model-show", models_from="you", push_models=True)
    adds, _ = commit_of(hub)
    assert not [p for p in adds if p.startswith("checkpoints/")]
    card_file = tmp_path / "README.md"
    card_file.write_text(readme_of(adds))
    meta = ModelCard.load(card_file, ignore_metadata_errors=False).data.to_dict()
    assert meta["models"] == [f"you/{name}" for name in CHECKPOINTS]
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py"
    assert ("variable", "you/model-show", ("MODEL_SHOW_HUB_NAMESPACE", "you")) in hub
    pushed = {repo: kw["folder_path"] for name, repo, kw in hub if name == "upload_folder"}
    assert pushed == {f"you/{name}": str(REPO_ROOT / "checkpoints" / name) for name in CHECKPOINTS}


def test_only_tracked_files_go_up(tmp_path):
    """runs/, caches and files nobody committed never reach the Space."""
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    for name in ("app.py", "README.md", "apps/tab.py", "tests/test_tab.py", "checkpoints/m/config.json", "runs/m/model.safetensors"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("---\nsdk: gradio\n---\n" if name == "README.md" else "x\n")
    subprocess.run(["git", "add", "app.py", "README.md", "apps", "tests", "checkpoints"], cwd=tmp_path, check=True)
    (tmp_path / "apps" / "scratch.py").write_text("untracked\n")
    assert deploy.plan(tmp_path).files == ["README.md", "app.py", "apps/tab.py", "checkpoints/m/config.json"]
    assert deploy.plan(tmp_path, models_from="me").models == ["me/m"]


def test_the_dry_run_lists_files_and_contacts_nobody(capsys, monkeypatch):
    monkeypatch.setattr(HfApi, "create_commit", lambda *a, **k: pytest.fail("a dry run must not upload"))
    deploy.main(["--space", "you/model-show", "--dry-run"])
    out = capsys.readouterr().out
    assert "app.py" in out and "files," in out and "tests/" not in out


def test_what_goes_up_is_enough_to_run_the_app(tmp_path):
    """The planned files alone, copied into an empty folder, build every tab and answer a request with a shipped
    checkpoint, in the Python that runs the app (the Space-exact venv in CI)."""
    for name in deploy.plan().files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, tmp_path / name)
    code = (
        "import app\n"
        "app.build_demo()\n"
        "from apps import digits\n"
        "label, _, _ = digits.classify_digit(str(digits.EXAMPLES_DIR / 'mnist_test_7.png'))\n"
        "print(max(label, key=label.get))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_TEMP_DIR": str(tmp_path / "cache"), "PYTHONPATH": ""}
    result = subprocess.run([APP_PYTHON, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "7"

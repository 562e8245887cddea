"""Every shipped checkpoint, as the Hub would serve it: pushed folder-exact, and loaded by the app from an
offline Hub cache through MODEL_SHOW_HUB_NAMESPACE."""

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT
from training import common

CHECKPOINTS = REPO_ROOT / "checkpoints"
# checkpoint -> how the app loads it: (module, class) for `hub.load(class, name)`, or the name of a `hub` function
LOADERS = {
    "digit-classifier": ("models.digit_classifier", "DigitClassifier"),
    "digit-classifier-robust": ("models.digit_classifier", "DigitClassifier"),
    "imagenet-classifier": ("models.efficientnet_lite", "EfficientNetLite"),
    "digit-gan": ("models.dcgan", "DigitGenerator"),
    "digit-diffusion": "load_diffusion_unet",
    "digit-segmenter": ("models.unet", "UNet"),
    "horse2zebra": ("models.cyclegan", "CycleGenerators"),
    "fabric-autoencoder": ("models.autoencoder", "FabricAutoencoder"),
    "fabric-features": ("models.patch_memory", "PatchMemory"),
    "word-lstm": ("models.word_lstm", "WordLSTM"),
    "word-gpt": "load_causal_lm",
}
SHIPPED = sorted(p.name for p in CHECKPOINTS.iterdir() if p.is_dir())


def test_every_shipped_checkpoint_has_a_loader_here():
    assert set(SHIPPED) <= set(LOADERS), f"add a loader for {sorted(set(SHIPPED) - set(LOADERS))}"


@pytest.mark.parametrize("name", SHIPPED)
def test_push_uploads_exactly_the_checkpoint_folder(name, monkeypatch):
    uploads = []
    monkeypatch.setattr(common.HfApi, "create_repo", lambda self, repo_id, **kw: None)
    monkeypatch.setattr(common.HfApi, "upload_folder", lambda self, **kw: uploads.append(kw))
    common.push_checkpoint(CHECKPOINTS / name, f"someone/{name}")
    (call,) = uploads
    assert call["folder_path"] == str(CHECKPOINTS / name) and call["repo_id"] == f"someone/{name}" and call["repo_type"] == "model"
    # What that folder holds is what a Hub user gets: the weights, their config and the card, nothing pickled.
    files = {p.name for p in (CHECKPOINTS / name).iterdir()}
    assert "README.md" in files and "config.json" in files and any(f.endswith(".safetensors") for f in files)


def test_the_app_loads_every_checkpoint_from_an_offline_hub_cache(tmp_path):
    """A Hub cache laid out as `huggingface_hub` writes it (refs/main -> snapshots/<commit>/files), filled with
    links to the shipped files; the app's loaders must find every model there with HF_HUB_OFFLINE=1."""
    cache = tmp_path / "hub"
    commit = "0123456789abcdef0123456789abcdef01234567"
    for name in SHIPPED:
        repo = cache / f"models--someone--{name}"
        snapshot = repo / "snapshots" / commit
        snapshot.mkdir(parents=True)
        for path in (CHECKPOINTS / name).iterdir():
            (snapshot / path.name).symlink_to(path)
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text(commit)
    lines = ["from models import hub"]
    for name in SHIPPED:
        loader = LOADERS[name]
        if isinstance(loader, tuple):
            lines.append(f"from {loader[0]} import {loader[1]}\nm = hub.load({loader[1]}, {name!r})")
        else:
            lines.append(f"m = hub.{loader}({name!r})")
        lines.append(f"print({name!r}, 'loaded', sum(p.numel() for p in m.parameters()))")
        lines.append(f"assert hub.checkpoint_file({name!r}, 'README.md') is not None")
    env = {
        **os.environ,
        "HF_HUB_CACHE": str(cache),
        "HF_HUB_OFFLINE": "1",
        "MODEL_SHOW_HUB_NAMESPACE": "someone",
        "MODEL_SHOW_DEVICE": "cpu",
    }
    result = subprocess.run([sys.executable, "-c", "\n".join(lines)], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in SHIPPED:
        assert f"{name} loaded" in result.stdout


def test_numbers_a_tab_shows_come_from_the_checkpoint_it_loads(tmp_path):
    """With MODEL_SHOW_HUB_NAMESPACE set, the Attack and Text tabs show the Hub copy's numbers, not the repository's:
    a Hub cache whose measurement files differ from the local ones must show its own values."""
    import json
    import shutil

    cache = tmp_path / "hub"
    commit = "0123456789abcdef0123456789abcdef01234567"
    for name in ("digit-classifier-robust", "word-lstm", "word-gpt"):
        snapshot = cache / f"models--someone--{name}" / "snapshots" / commit
        shutil.copytree(CHECKPOINTS / name, snapshot)
        (snapshot.parent.parent / "refs").mkdir()
        (snapshot.parent.parent / "refs" / "main").write_text(commit)
    robust = cache / "models--someone--digit-classifier-robust" / "snapshots" / commit
    rates = json.loads((robust / "attack_metrics.json").read_text()) | {"fgsm_success_eps0.3": 0.1234}
    (robust / "attack_metrics.json").write_text(json.dumps(rates))
    curve = json.loads((robust / "robustness_curve.json").read_text()) | {"n_digits": 4321}
    (robust / "robustness_curve.json").write_text(json.dumps(curve))
    ladder = {f"test_{attack}_accuracy_eps{eps}": 0.9 - eps for attack in ("pgd40", "apgd") for eps in (0.1, 0.2, 0.3)}
    card = json.loads((robust / "metrics.json").read_text()) | ladder | {"test_apgd_accuracy_eps0.2": 0.4321}
    (robust / "metrics.json").write_text(json.dumps(card))
    for name in ("word-lstm", "word-gpt"):
        metrics_file = cache / f"models--someone--{name}" / "snapshots" / commit / "metrics.json"
        metrics_file.write_text(json.dumps(json.loads(metrics_file.read_text()) | {"test_ppl_trigram": 12.34}))
    code = (
        "from apps import attack, text\n"
        "assert '12.3% fooled' in attack.measured_rates(), attack.measured_rates()\n"
        "assert '4,321 held-out' in attack.curve_caption(), attack.curve_caption()\n"
        "assert '**43.2%**' in attack.measured_rates(), attack.measured_rates()\n"
        "assert 0.4321 in set(attack.precomputed_curve().query('model == \"robust (APGD)\"').accuracy)\n"
        "assert '| 12.3 |' in text.scores_markdown(), text.scores_markdown()\n"
    )
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "MODEL_SHOW_HUB_NAMESPACE": "someone"}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]


def test_no_tab_reads_numbers_from_the_repository():
    """Tabs read measurements through models.hub only; benchmarks/ is the measuring tool, not a data source."""
    for path in (REPO_ROOT / "apps").glob("*.py"):
        source = path.read_text()
        assert '/ "benchmarks"' not in source and "benchmarks/latest.json" not in source, path.name

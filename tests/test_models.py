import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from models import hub
from models.digit_classifier import DigitClassifier, DigitClassifierConfig

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_forward_shapes():
    model = DigitClassifier(DigitClassifierConfig()).eval()
    x = torch.rand(4, 1, 28, 28)
    assert model(x).shape == (4, 10)
    logits, acts = model.forward_with_activations(x)
    assert [tuple(a.shape) for a in acts] == [(4, 32, 14, 14), (4, 64, 7, 7), (4, 128, 3, 3)]
    assert torch.allclose(model.predict_proba(x).sum(-1), torch.ones(4))


def test_save_and_strict_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = DigitClassifier(DigitClassifierConfig(hidden=64, labels=[str(d) for d in range(10)])).eval()
    model.save_pretrained(tmp_path)
    assert {"config.json", "model.safetensors"} <= {p.name for p in tmp_path.iterdir()}
    assert json.loads((tmp_path / "config.json").read_text())["hidden"] == 64
    loaded = DigitClassifier.from_pretrained(tmp_path, strict=True)
    assert isinstance(loaded.config, DigitClassifierConfig) and loaded.config.hidden == 64
    x = torch.rand(2, 1, 28, 28)
    assert torch.equal(model(x), loaded(x))


def test_strict_load_refuses_a_checkpoint_with_renamed_weights(tmp_path, monkeypatch):
    folder = tmp_path / "digit-classifier"
    DigitClassifier(DigitClassifierConfig()).save_pretrained(folder)
    weights = load_file(folder / "model.safetensors")
    weights["head.9.weight"] = weights.pop("head.4.weight")  # a layer renamed between versions
    save_file(weights, folder / "model.safetensors")
    monkeypatch.setattr(hub, "CHECKPOINTS", tmp_path)
    monkeypatch.delenv("MODEL_SHOW_HUB_NAMESPACE", raising=False)
    hub.clear_cache()
    with pytest.raises(hub.CheckpointError, match="python -m training.train_digit_classifier"):
        hub.load(DigitClassifier, "digit-classifier")


def test_missing_checkpoint_names_the_training_command(tmp_path, monkeypatch):
    monkeypatch.setattr(hub, "CHECKPOINTS", tmp_path)
    monkeypatch.delenv("MODEL_SHOW_HUB_NAMESPACE", raising=False)
    hub.clear_cache()
    with pytest.raises(hub.CheckpointError, match=r"python -m training\.train_digit_classifier"):
        hub.load(DigitClassifier, "digit-classifier")


def test_load_is_cached_and_in_eval_mode(tmp_path, monkeypatch):
    DigitClassifier(DigitClassifierConfig()).save_pretrained(tmp_path / "digit-classifier")
    monkeypatch.setattr(hub, "CHECKPOINTS", tmp_path)
    monkeypatch.delenv("MODEL_SHOW_HUB_NAMESPACE", raising=False)
    hub.clear_cache()
    first = hub.load(DigitClassifier, "digit-classifier")
    assert first is hub.load(DigitClassifier, "digit-classifier")
    assert not first.training
    hub.clear_cache()


def test_device_choice_can_be_forced(monkeypatch):
    monkeypatch.setenv("MODEL_SHOW_DEVICE", "cpu")
    assert hub.pick_device().type == "cpu"
    monkeypatch.delenv("MODEL_SHOW_DEVICE")
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert hub.pick_device().type == expected


def test_hub_namespace_loads_from_offline_cache(tmp_path):
    """MODEL_SHOW_HUB_NAMESPACE + HF_HUB_OFFLINE=1 resolves `<namespace>/<name>` from a local HF_HUB_CACHE."""
    cache = tmp_path / "hub"
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = cache / "models--someone--digit-classifier" / "snapshots" / commit
    torch.manual_seed(1)
    DigitClassifier(DigitClassifierConfig(hidden=32)).save_pretrained(snapshot)
    (snapshot / "training_log.json").write_text("[]")
    refs = cache / "models--someone--digit-classifier" / "refs"
    refs.mkdir(parents=True)
    (refs / "main").write_text(commit)
    script = (
        "from models import hub; from models.digit_classifier import DigitClassifier;"
        "m = hub.load(DigitClassifier, 'digit-classifier'); print('hidden', m.config.hidden);"
        "print('log', hub.checkpoint_file('digit-classifier', 'training_log.json') is not None)"
    )
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "MODEL_SHOW_HUB_NAMESPACE": "someone"}
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "hidden 32" in out.stdout and "log True" in out.stdout


def test_perceptron_rule_learns_a_separable_problem():
    from models.mlp import Perceptron

    x = torch.tensor([[1.0, 2.0], [2.0, 1.0], [8.0, 9.0], [9.0, 7.0]])
    y = torch.tensor([0, 0, 1, 1])
    p = Perceptron()
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        p.perceptron_epoch(x, y, lr=0.1, generator=g)
    assert torch.equal(p.predict_proba(x), y.float())


def test_mlp_shapes_seeded_init_and_step_gradient():
    from models.mlp import MLP, MLPConfig

    a, b = MLP(MLPConfig(3, 5, "step")), MLP(MLPConfig(3, 5, "step"))
    a.reset_parameters(torch.Generator().manual_seed(1))
    b.reset_parameters(torch.Generator().manual_seed(1))
    x = torch.rand(7, 2) * 10
    assert a(x).shape == (7,) and torch.equal(a(x), b(x))
    a(x).sum().backward()
    assert a.layers[0].weight.grad.abs().sum() > 0  # the straight-through step still passes a gradient
    with pytest.raises(ValueError, match="unknown activation"):
        MLP(MLPConfig(1, 2, "swish"))(x)


def test_mlp_dropout_is_repeatable_with_its_own_generator():
    from models.mlp import MLP, MLPConfig

    m = MLP(MLPConfig(2, 16, "relu", dropout=0.5)).train()
    x = torch.rand(4, 2)
    m.generator = torch.Generator().manual_seed(5)
    first = m(x)
    m.generator = torch.Generator().manual_seed(5)
    assert torch.equal(first, m(x))
    m.eval()
    assert torch.equal(m(x), m(x))  # no dropout at evaluation


@pytest.mark.parametrize("size, stride, kernel", [(224, 2, 3), (225, 2, 5), (37, 1, 5), (7, 2, 3)])
def test_same_padding_matches_tensorflow_output_size(size, stride, kernel):
    from models.efficientnet_lite import SamePadConv2d

    conv = SamePadConv2d(3, 4, kernel, stride=stride, bias=False)
    out = conv(torch.rand(1, 3, size, size + 3))
    assert out.shape[-2:] == (-(-size // stride), -(-(size + 3) // stride))


def test_efficientnet_lite_shapes_and_hub_round_trip(tmp_path):
    from models.efficientnet_lite import EfficientNetLite, EfficientNetLiteConfig

    model = EfficientNetLite(EfficientNetLiteConfig(labels=["a", "b", "c"])).eval()
    x = torch.rand(2, 3, 224, 224)
    assert model.features(x).shape == (2, 1280, 7, 7) and model(x).shape == (2, 3)
    assert sum(p.numel() for p in model.parameters()) == 4_652_008 - 1_281_000 + 3 * 1281  # reference count, 3-class layer
    model.save_pretrained(tmp_path)
    loaded = EfficientNetLite.from_pretrained(tmp_path, strict=True)
    assert loaded.config.labels == ["a", "b", "c"] and torch.allclose(loaded(x), model(x))

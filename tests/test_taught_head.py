"""A taught head as a file: saved with its labels and preprocessing, loaded back strictly, refused when it is anything else."""

import pytest
import torch
from safetensors.torch import save

from models.taught_head import FEATURES, HeadFileError, TaughtHead, head_bytes, load_head_bytes

BACKBONE = "imagenet-classifier"


def a_head(classes: int = 3, seed: int = 0) -> TaughtHead:
    g = torch.Generator().manual_seed(seed)
    labels = [f"class {k}" for k in range(classes)]
    return TaughtHead(labels, torch.randn(classes, FEATURES, generator=g), torch.randn(classes, generator=g), 0.875, 14, 6)


def test_a_saved_head_loads_back_and_classifies_exactly_as_before():
    head = a_head()
    loaded = load_head_bytes(head_bytes(head, BACKBONE, 224), BACKBONE, max_classes=5)
    features = torch.randn(8, FEATURES, generator=torch.Generator().manual_seed(1))
    assert loaded.labels == head.labels and (loaded.held_out_accuracy, loaded.n_train, loaded.n_held_out) == (0.875, 14, 6)
    assert (loaded.probabilities(features) - head.probabilities(features)).abs().max() <= 1e-6


def foreign(tensors: dict, metadata: dict | None = None) -> bytes:
    return save(tensors, metadata=metadata)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "too short"),
        (b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all", "not readable"),
        (b"\xff" * 64, "cut short or damaged"),
        (foreign({"weight": torch.zeros(3, FEATURES), "bias": torch.zeros(3)}), "names no classes"),
        (
            foreign({"w": torch.zeros(2, FEATURES), "bias": torch.zeros(2)}, {"labels": "a\nb", "backbone": BACKBONE}),
            "exactly 'weight' and 'bias'",
        ),
        (
            foreign({"weight": torch.zeros(2, 512), "bias": torch.zeros(2)}, {"labels": "a\nb", "backbone": BACKBONE}),
            "weight \\(classes, 1280\\)",
        ),
        (
            foreign({"weight": torch.zeros(3, FEATURES), "bias": torch.zeros(3)}, {"labels": "a\nb", "backbone": BACKBONE}),
            "names 2 classes",
        ),
        (
            foreign({"weight": torch.zeros(2, FEATURES).half(), "bias": torch.zeros(2).half()}, {"labels": "a\nb", "backbone": BACKBONE}),
            "float32",
        ),
        (foreign({"weight": torch.zeros(1, FEATURES), "bias": torch.zeros(1)}, {"labels": "a", "backbone": BACKBONE}), "2 to 5 classes"),
        (
            foreign({"weight": torch.zeros(2, FEATURES), "bias": torch.zeros(2)}, {"labels": "a\na", "backbone": BACKBONE}),
            "different names",
        ),
        (
            foreign({"weight": torch.full((2, FEATURES), float("nan")), "bias": torch.zeros(2)}, {"labels": "a\nb", "backbone": BACKBONE}),
            "NaN",
        ),
        (
            foreign({"weight": torch.zeros(2, FEATURES), "bias": torch.zeros(2)}, {"labels": "a\nb", "backbone": "resnet"}),
            "taught on 'resnet'",
        ),
        (b"\x00" * (3 * 2**20), "far smaller"),
    ],
)
def test_anything_but_a_head_of_ours_is_refused_with_a_reason(data, message):
    with pytest.raises(HeadFileError, match=message):
        load_head_bytes(data, BACKBONE, max_classes=5)


def test_a_head_with_more_classes_than_the_tab_allows_is_refused():
    with pytest.raises(HeadFileError, match="2 to 5 classes"):
        load_head_bytes(head_bytes(a_head(classes=6), BACKBONE, 224), BACKBONE, max_classes=5)


def test_fitting_records_every_epoch_and_a_confusion_matrix_of_the_held_out_photos():
    from models.taught_head import HeadTraining, fit_head

    g = torch.Generator().manual_seed(3)
    centres = torch.randn(3, FEATURES, generator=g) * 0.05  # weak signal in every feature: learning takes epochs
    y = torch.arange(3).repeat_interleave(10)
    x = centres[y] + torch.randn(len(y), FEATURES, generator=g)
    train, held = torch.arange(len(y)) % 5 != 0, torch.arange(len(y)) % 5 == 0  # 2 held out per class
    for settings in (HeadTraining(epochs=40), HeadTraining(epochs=40, batch_size=8, lr=0.005)):
        head = fit_head(["a", "b", "c"], x[train], y[train], x[held], y[held], settings)
        assert [e["epoch"] for e in head.history] == list(range(1, 41))
        assert head.history[-1]["train_loss"] < head.history[0]["train_loss"]
        assert sum(map(sum, head.confusion)) == int(held.sum()) == head.n_held_out
        correct = sum(head.confusion[k][k] for k in range(3))
        assert head.held_out_accuracy == pytest.approx(correct / int(held.sum())) == head.history[-1]["held_out_accuracy"]
        assert head.per_class_accuracy() == [head.confusion[k][k] / 2 for k in range(3)]
        assert head.weights_learned == 3 * FEATURES + 3

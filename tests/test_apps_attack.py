"""The Attack tab through its pure functions: real attacks on the shipped models, honest reports, clear errors."""

import gradio as gr
import numpy as np
import pytest
import torch
from PIL import Image

from apps import attack as tab
from data.mnist import load_splits
from data.photos import EXAMPLES_DIR as PHOTOS
from models import attacks


class NoProgress:
    def __call__(self, *args, **kwargs):
        pass


def run(
    image,
    kind="digit",
    how="fgsm",
    eps=76.5,
    steps=10,
    pixels=1,
    target="none",
    population=40,
    iterations=20,
    seed=0,
    defence="none",
    jpeg_quality=75,
    adaptive=False,
):
    return tab.attack(
        image, kind, how, eps, steps, pixels, target, population, iterations, seed, defence, jpeg_quality, adaptive, progress=NoProgress()
    )


@pytest.fixture(scope="module")
def test_digit_png(tmp_path_factory):
    """A raw 28x28 MNIST test digit (white on black), as the 'Random test digit' button makes it."""
    splits = load_splits()
    path = tmp_path_factory.mktemp("digit") / "digit.png"
    Image.fromarray(splits.test_x[0]).save(path)
    return str(path), int(splits.test_y[0])


def test_a_28px_digit_is_read_exactly_as_stored(test_digit_png):
    path, _ = test_digit_png
    x = tab.prepare_input(path, tab.DIGIT)
    assert x.shape == (1, 1, 28, 28)
    stored = np.asarray(Image.open(path), dtype=np.float32) / 255
    assert np.allclose(x[0, 0].numpy(), stored)


def test_fgsm_fools_the_standard_model_and_reports_the_change(test_digit_png):
    path, label = test_digit_png
    original, adversarial, amplified, before, after, report, transfer, png = run(path, how="fgsm", eps=76.5)
    assert next(iter(before)) == str(label)
    assert next(iter(after)) != str(label)
    assert report.startswith("### Fooled")
    assert "L∞ = **76** grey levels" in report  # rounded toward zero onto whole grey levels: never above eps
    assert original.shape == adversarial.shape == amplified.shape[:2] == (224, 224)
    assert "robust model" in transfer
    saved = np.asarray(Image.open(png))
    assert saved.shape == (28, 28) and int(np.abs(saved.astype(int) - np.asarray(Image.open(path), dtype=int)).max()) <= 76


def test_targeted_pgd_turns_every_example_photo_into_an_ostrich():
    for photo in sorted(PHOTOS.glob("*.jpg"))[:2]:  # the benchmark covers all of them
        *_, before, after, report, transfer, png = run(str(photo), kind="photo", how="pgd", eps=4, steps=10, target="9: ostrich")
        assert next(iter(after)) == "ostrich", report
        assert "L∞ = **4** grey levels" in report and transfer == ""
        x = tab.prepare_input(str(photo), tab.PHOTO)
        saved = np.asarray(Image.open(png), dtype=np.float32) / 255
        assert np.abs(saved - x[0].permute(1, 2, 0).numpy()).max() <= 4 / 255 + 1e-6


def test_one_pixel_on_a_digit_changes_only_the_pixels_it_may(test_digit_png):
    path, _ = test_digit_png
    original, adversarial, *_, report, _, png = run(path, how="one-pixel", pixels=3, population=60, iterations=20)
    assert "L0 = **" in report
    changed = int(report.split("L0 = **")[1].split("**")[0])
    assert changed <= 3
    assert ("### Fooled" in report) or ("rarely work" in report)


def test_an_attack_is_repeatable_for_a_seed(test_digit_png, monkeypatch):
    path, _ = test_digit_png
    monkeypatch.setenv("MODEL_SHOW_ANSWER_CACHE", "0")  # both attacks really run
    first = run(path, how="pgd", eps=40, steps=5, seed=7)
    second = run(path, how="pgd", eps=40, steps=5, seed=7)
    assert np.array_equal(first[1], second[1])


def test_a_repeated_attack_is_answered_from_memory_and_says_so(test_digit_png):
    path, _ = test_digit_png
    first = run(path, how="pgd", eps=40, steps=5, seed=11)
    again = run(path, how="pgd", eps=40, steps=5, seed=11)
    other_seed = run(path, how="pgd", eps=40, steps=5, seed=12)
    assert np.array_equal(first[1], again[1]) and first[7] == again[7] and first[3] == again[3]
    assert "memory of recent answers" not in first[5] and "memory of recent answers" in again[5]
    assert "memory of recent answers" not in other_seed[5]
    again[3].clear()  # a caller that changes its answer does not change the remembered one
    assert run(path, how="pgd", eps=40, steps=5, seed=11)[3] == first[3]


def test_targets_parse_by_number_name_or_none():
    assert tab.parse_target("none (any wrong answer)", tab.PHOTO) is None
    assert tab.parse_target("", tab.PHOTO) is None and tab.parse_target(None, tab.DIGIT) is None
    assert tab.parse_target("9: ostrich", tab.PHOTO) == 9 == tab.parse_target("ostrich", tab.PHOTO) == tab.parse_target("9", tab.PHOTO)
    assert tab.parse_target("3", tab.DIGIT) == 3
    choices = tab.target_choices(tab.PHOTO)
    assert choices[0] == tab.NO_TARGET and choices[1] == "9: ostrich" and len(choices) == 1001


@pytest.mark.parametrize(
    "change, message",
    [
        ({"image": None}, "Nothing was uploaded"),
        ({"kind": "resnet"}, "Unknown model"),
        ({"how": "deep-dream"}, "Unknown attack"),
        ({"defence": "tinfoil"}, "Unknown defence"),
        ({"defence": "jpeg", "jpeg_quality": 0}, "JPEG quality"),
        ({"eps": 300}, "ε"),
        ({"steps": 0}, "PGD steps"),
        ({"target": "12"}, "does not exist"),
        ({"target": "toothbrush", "kind": "photo"}, "not one of this model's classes"),
        ({"how": "one-pixel", "kind": "photo", "population": 400, "iterations": 200}, "budget"),
        ({"seed": "abc"}, "seed"),
    ],
)
def test_bad_requests_get_clear_messages(test_digit_png, change, message):
    args = {"image": test_digit_png[0]} | change
    with pytest.raises(gr.Error, match=message):
        run(**args)


def test_a_blank_drawing_is_refused_clearly(tmp_path):
    blank = tmp_path / "blank.png"
    Image.new("L", (200, 200), 255).save(blank)
    with pytest.raises(gr.Error, match="No digit found"):
        run(str(blank))
    with pytest.raises(gr.Error, match="empty"):
        tab.use_drawing({"background": None, "layers": [], "composite": None}, tab.DIGIT)


def test_random_test_digit_switches_a_photo_model_to_digits():
    path, kind, note, epsilon, *_ = tab.random_test_digit(tab.PHOTO)
    assert kind == tab.DIGIT and "true label" in note
    assert Image.open(path).size == (28, 28)
    assert epsilon["value"] == tab.DEFAULTS[tab.DIGIT]["eps"]  # switching to the digit model brings its budgets
    *_, unchanged = tab.random_test_digit(tab.DIGIT)
    assert unchanged is gr.skip() or unchanged == gr.skip()  # already on digits: the person's budgets stay


def test_the_live_robustness_curve_separates_the_models():
    frame = tab.measure_robustness_curve(n_digits=40, steps=5, eps_grid=(0, 0.3))
    acc = {(row.model, row.eps): row.accuracy for row in frame.itertuples()}
    assert acc[("standard", 0)] > 0.9 and acc[("robust", 0)] > 0.9
    assert acc[("standard", 0.3)] < 0.2 < 0.6 < acc[("robust", 0.3)]


def test_quantised_result_still_matches_the_reported_answer(test_digit_png):
    """The verdict is computed on the 8-bit image you download, not on a float image that was never saved."""
    path, _ = test_digit_png
    *_, after, report, _, png = run(path, how="pgd", eps=60, steps=20)
    net = tab.model(tab.DIGIT)
    x = tab.prepare_input(png, tab.DIGIT)
    assert net.config.labels[int(attacks.predict(net, x)[0])] == next(iter(after))


def test_the_attack_tab_never_changes_the_models_other_tabs_share():
    """It attacks channels_last copies; the cached models the Digits and Classify tabs use keep their layout."""
    from models import hub
    from models.digit_classifier import DigitClassifier

    shared = hub.load(DigitClassifier, "digit-classifier")
    own = tab.model(tab.DIGIT)
    assert own is not shared
    # A convolution with several input channels: one with a single input channel is the same in both layouts.
    conv = next(m for m in own.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    shared_conv = next(m for m in shared.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1)
    assert shared_conv.weight.is_contiguous() and not shared_conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert all(torch.equal(a, b) for a, b in zip(own.state_dict().values(), shared.state_dict().values(), strict=True))


def test_deepfool_and_the_smallest_budget_fool_with_small_changes(test_digit_png):
    path, _ = test_digit_png
    *_, report, _, _ = run(path, how="deepfool")
    assert report.startswith("### Fooled") and "no ε budget" in report
    *_, report, _, _ = run(path, how="smallest-eps", eps=128)
    assert report.startswith("### Fooled") and "The smallest budget PGD-10 needed:" in report
    needed = float(report.split("PGD-10 needed: ")[1].split(" grey level")[0].strip("*"))
    *_, half_report, _, _ = run(path, how="pgd", eps=max(1, needed // 2))  # half of that budget is not enough
    assert half_report.startswith("### Not fooled")


def test_a_defence_answers_and_the_adaptive_attack_goes_through_it(test_digit_png):
    path, _ = test_digit_png
    for defence in ("jpeg", "bitdepth", "median"):
        *_, naive, _, _ = run(path, how="pgd", defence=defence)
        *_, adaptive, _, _ = run(path, how="pgd", defence=defence, adaptive=True)
        assert "made on the bare model" in naive and "made through the defence" in adaptive
        assert adaptive.startswith("### Fooled"), (defence, adaptive)
    assert "BPDA" in run(path, how="pgd", defence="jpeg", adaptive=True)[5]

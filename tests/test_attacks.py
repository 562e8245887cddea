"""The attacks in models/attacks.py against the real shipped classifiers: every adversarial image stays
inside its budget and in [0, 1], every reported success is a real misclassification, and a seed
gives the same attack twice."""

import pytest
import torch

from data.mnist import load_splits
from data.photos import sample_photos, to_model_input
from models import attacks, hub
from models.digit_classifier import DigitClassifier
from models.efficientnet_lite import EfficientNetLite


@pytest.fixture(scope="module")
def digits():
    """(model, 64 test digits of every class that the standard model gets right, their labels)."""
    model = hub.load(DigitClassifier, "digit-classifier")
    splits = load_splits()
    x = torch.from_numpy(splits.test_x[::12]).float().div(255).unsqueeze(1)  # the split is sorted by class: take every 12th
    y = torch.from_numpy(splits.test_y[::12]).long()
    right = attacks.predict(model, x) == y
    return model, x[right][:64], y[right][:64]


@pytest.fixture(scope="module")
def robust():
    return hub.load(DigitClassifier, "digit-classifier-robust")


def check_result(model, x, y, result, eps=None, target=None):
    adv = result.adversarial
    assert adv.shape == x.shape and adv.min() >= 0 and adv.max() <= 1
    if eps is not None:
        assert float((adv - x).abs().max()) <= eps + 1e-6
    predictions = attacks.predict(model, adv)
    assert torch.equal(predictions, result.predictions)
    expected = predictions == target if target is not None else predictions != y
    assert torch.equal(result.success, expected), "success must mean a real misclassification (or the target) on the returned image"


@pytest.mark.parametrize("eps", [0.05, 0.3])
def test_fgsm_stays_in_budget_and_reports_honestly(digits, eps):
    model, x, y = digits
    result = attacks.fgsm(model, x, y, eps)
    check_result(model, x, y, result, eps)


def test_pgd_is_stronger_than_fgsm_and_repeatable(digits):
    model, x, y = digits
    fgsm = attacks.fgsm(model, x, y, 0.15)
    pgd = attacks.pgd(model, x, y, 0.15, steps=20, seed=3)
    check_result(model, x, y, pgd, 0.15)
    assert pgd.success.float().mean() >= fgsm.success.float().mean()
    assert pgd.success.float().mean() > 0.9
    again = attacks.pgd(model, x, y, 0.15, steps=20, seed=3)
    assert torch.equal(again.adversarial, pgd.adversarial)


def test_targeted_pgd_reaches_the_target(digits):
    model, x, y = digits
    target = (y + 1) % 10
    result = attacks.pgd(model, x[:16], y[:16], 0.3, steps=40, target=target[:16])
    check_result(model, x[:16], y[:16], result, 0.3, target[:16])
    assert result.success.float().mean() > 0.9


def test_zero_budget_changes_nothing(digits):
    model, x, y = digits
    result = attacks.pgd(model, x, y, 0.0, steps=3)
    assert torch.equal(result.adversarial, x) and not result.success.any()


def test_one_pixel_changes_at_most_k_pixels_and_is_repeatable(digits):
    model, x, y = digits
    for k in (1, 3):
        result = attacks.one_pixel(model, x[:8], y[:8], pixels=k, population=30, iterations=10, seed=1)
        check_result(model, x[:8], y[:8], result)
        for original, adversarial in zip(x[:8], result.adversarial, strict=True):
            assert attacks.perturbation_size(original, adversarial)["L0_pixels"] <= k
        again = attacks.one_pixel(model, x[:8], y[:8], pixels=k, population=30, iterations=10, seed=1)
        assert torch.equal(again.adversarial, result.adversarial)


def test_targeted_one_pixel_reports_only_the_target(digits):
    model, x, y = digits
    target = (y[:6] + 3) % 10
    result = attacks.one_pixel(model, x[:6], y[:6], pixels=5, population=40, iterations=15, target=target, seed=0)
    check_result(model, x[:6], y[:6], result, target=target)


def test_targeted_pgd_turns_a_photo_into_an_ostrich_within_4_grey_levels():
    model = hub.load(EfficientNetLite, "imagenet-classifier")
    x = to_model_input(sample_photos()["coffee"])[None]
    y = attacks.predict(model, x)
    target = torch.tensor([9])
    result = attacks.pgd(model, x, y, 4 / 255, steps=10, target=target)
    check_result(model, x, y, result, 4 / 255, target)
    assert bool(result.success[0])


def test_perturbation_size_counts_pixels_not_channels():
    original = torch.zeros(3, 10, 10)
    changed = original.clone()
    changed[:, 2, 3] = 0.5  # one pixel, all three channels
    changed[0, 5, 5] = 0.1
    size = attacks.perturbation_size(original, changed)
    assert size["L0_pixels"] == 2
    assert size["Linf"] == pytest.approx(0.5) and size["Linf_grey_levels"] == pytest.approx(127.5)
    assert size["L2"] == pytest.approx((3 * 0.25 + 0.01) ** 0.5)


def test_robust_model_resists_what_breaks_the_standard_one(digits, robust):
    """On 64 held-out digits at eps 0.3: PGD breaks nearly all of the standard model's answers and few of the robust model's."""
    model, x, y = digits
    standard_acc = float((attacks.pgd(model, x, y, 0.3, steps=20).predictions == y).float().mean())
    robust_acc = float((attacks.pgd(robust, x, y, 0.3, steps=20).predictions == y).float().mean())
    assert standard_acc < 0.05
    assert robust_acc > 0.7

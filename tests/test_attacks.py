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


# --- APGD, DeepFool, the smallest eps, defences ------------------------------------------------------------


def test_apgd_checkpoints_follow_the_papers_schedule():
    """p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06); w_j = ceil(p_j * N_iter) (Croce & Hein 2020)."""
    assert attacks.apgd_checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    checkpoints = attacks.apgd_checkpoints(1000)
    assert checkpoints[:3] == [220, 410, 570] and all(b - a >= 60 for a, b in zip(checkpoints, checkpoints[1:], strict=False))


def test_dlr_loss_matches_its_definition_and_ignores_the_logits_scale():
    z = torch.tensor([[4.0, 1.0, 3.0, 0.5, -1.0]])
    y, t = torch.tensor([0]), torch.tensor([3])
    # sorted: 4, 3, 1, 0.5, -1. Untargeted: -(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3) = -(4 - 3) / (4 - 1)
    assert float(attacks.dlr_loss(z, y)) == pytest.approx(-1 / 3)
    # Targeted at 3: -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2) = -(4 - 0.5) / (4 - 0.75)
    assert float(attacks.dlr_loss(z, y, t)) == pytest.approx(-3.5 / 3.25)
    # A wrong answer scores above 0, and scaling or shifting the logits changes nothing (unlike cross-entropy).
    assert float(attacks.dlr_loss(z, torch.tensor([2]))) > 0
    assert torch.allclose(attacks.dlr_loss(10 * z + 7, y), attacks.dlr_loss(z, y))


def test_apgd_stays_in_budget_and_is_at_least_as_strong_as_pgd(robust, digits):
    _, x, y = digits
    x, y = x[:32], y[:32]
    result = attacks.apgd(robust, x, y, 0.3, steps=30)
    check_result(robust, x, y, result, eps=0.3)
    pgd = attacks.pgd(robust, x, y, 0.3, steps=30, seed=0)
    assert result.success.sum() >= pgd.success.sum()
    targeted = attacks.apgd(robust, x, y, 0.3, steps=30, loss="dlr", target=(y + 1) % 10)
    check_result(robust, x, y, targeted, eps=0.3, target=(y + 1) % 10)
    still_right = attacks.worst_case_apgd(robust, x, y, 0.3, steps=20, targets=3)
    assert still_right.sum() <= (~result.success).sum()  # the worst case is never kinder than APGD-CE alone


def test_deepfool_lands_just_across_the_decision_boundary(digits):
    model, x, y = digits
    x, y = x[:16], y[:16]
    result = attacks.deepfool(model, x, y)
    check_result(model, x, y, result)
    assert bool(result.success.all())
    # Near-minimal: scaled back to 80% of the way, most of the changes no longer fool the model.
    halfway = x + 0.8 * (result.adversarial - x)
    assert float((attacks.predict(model, halfway) == y).float().mean()) >= 0.5
    sizes = (result.adversarial - x).flatten(1).norm(dim=1)
    fgsm = attacks.fgsm(model, x, y, 0.3)
    assert float(sizes.median()) < float((fgsm.adversarial - x).flatten(1).norm(dim=1).median())


def test_smallest_eps_is_the_boundary_between_fooled_and_not(digits):
    """PGD's success is not perfectly monotone in eps (its step grows with eps), so: the budget found fools, and a
    clearly smaller one mostly does not."""
    model, x, y = digits
    fooled_smaller = 0
    for i in range(0, 40, 10):
        eps, adversarial = attacks.smallest_pgd_eps(model, x[i : i + 1], y[i : i + 1], steps=10)
        assert eps is not None and 0 < eps < 0.5
        assert float((adversarial - x[i : i + 1]).abs().max()) <= eps + 1e-6
        assert bool(attacks.predict(model, adversarial)[0] != y[i])  # the 8-bit image it returns fools the model
        fooled_smaller += int(attacks.pgd(model, x[i : i + 1], y[i : i + 1], 0.8 * eps, steps=10, seed=0).success[0])
    assert fooled_smaller <= 1


def test_defences_and_bpda():
    x = torch.rand(2, 1, 28, 28, requires_grad=True)
    squeezed = attacks.reduce_bit_depth(x, bits=1)
    assert set(squeezed.unique().tolist()) <= {0.0, 1.0}
    assert attacks.jpeg_resave(x.detach(), quality=50).shape == x.shape
    assert attacks.median_filter(torch.eye(5)[None, None])[..., 1:-1, 1:-1].abs().sum() == 0  # a thin line is smoothed away
    # BPDA: the forward pass is the defence, the gradient is the identity's; without it, rounding gives none.
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 10))
    adaptive = attacks.Defended(model, "bitdepth", adaptive=True, bits=3)
    assert torch.allclose(adaptive(x), model(attacks.reduce_bit_depth(x, bits=3)))
    (grad,) = torch.autograd.grad(adaptive(x)[:, 0].sum(), x)
    assert torch.allclose(grad[0].flatten(), model[1].weight[0])
    (flat,) = torch.autograd.grad(attacks.Defended(model, "bitdepth", bits=3)(x)[:, 0].sum(), x)
    assert flat.abs().sum() == 0

"""Attack tab: fool a classifier with an invisible perturbation or a few pixels, and meet a model that resists.

Trace: upload -> `apps.common.open_image` -> the chosen model's own preprocessing (a 28x28 digit or a
224x224 photo, pixels in [0, 1]) -> `models.attacks` (FGSM, PGD, one-pixel) -> the adversarial image,
the amplified difference, its size, and the top-5 answers before and after.
"""

import copy
import functools
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
import torch
from PIL import Image

from apps.common import (
    HEAVY_LANE,
    RecentAnswers,
    check_number,
    class_from_text,
    drawing_file,
    drawing_pad,
    image_file,
    lease_number,
    link_choice,
    link_flag,
    link_number,
    load_model,
    on_gpu,
    on_link,
    open_image,
    read_link,
    share_link,
    to_gray,
    to_rgb,
    upscale,
)
from data.mnist import load_splits, sketch_to_mnist
from data.photos import EXAMPLES_DIR as PHOTO_EXAMPLES
from data.photos import to_model_input
from models import attacks, hub
from models.digit_classifier import DigitClassifier
from models.efficientnet_lite import EfficientNetLite

TITLE = "Attack"
REPO_ROOT = Path(__file__).resolve().parent.parent
DIGIT_EXAMPLES = REPO_ROOT / "examples" / "digits"

PHOTO, DIGIT, ROBUST = "photo", "digit", "digit-robust"
MODELS = [
    ("Photo classifier (EfficientNet-Lite0, 1,000 ImageNet classes)", PHOTO),
    ("Digit classifier (standard training)", DIGIT),
    ("Digit classifier (robust: adversarially trained)", ROBUST),
]
CHECKPOINTS = {PHOTO: "imagenet-classifier", DIGIT: "digit-classifier", ROBUST: "digit-classifier-robust"}
# Measured by `python -m benchmarks.run --only attack`, kept beside the robust model (so they travel to the Hub with it).
CURVE_FILE, RATES_FILE = "robustness_curve.json", "attack_metrics.json"
ATTACKS = [
    ("FGSM: one step along the gradient's sign", "fgsm"),
    ("PGD: many small steps, kept inside the budget", "pgd"),
    ("One-pixel: evolve a few pixel changes, no gradients", "one-pixel"),
    ("DeepFool: step to the nearest decision boundary (a near-smallest L2 change)", "deepfool"),
    ("Smallest ε: search the budget PGD-10 needs", "smallest-eps"),
]
NO_DEFENCE = "none"
DEFENCE_CHOICES = [
    ("No defence", NO_DEFENCE),
    ("JPEG re-save (compress, then read back)", "jpeg"),
    ("Bit-depth reduction (3 bits: 8 grey levels)", "bitdepth"),
    ("Median filter (3 x 3)", "median"),
]
NO_TARGET = "none (any wrong answer)"
# Szegedy et al. 2014 turned everything into an ostrich. ImageNet-1k has no toothbrush or octopus;
# these are the nearest real classes.
SUGGESTED_PHOTO_TARGETS = [9, 117, 107, 696]  # ostrich, chambered nautilus, jellyfish, paintbrush
# Budgets that keep one request to a few seconds on a 2-core CPU; the sliders stop here.
MAX_STEPS = 100
MAX_QUERIES = {PHOTO: 4_000, DIGIT: 100_000, ROBUST: 100_000}  # population x iterations for one-pixel
DEFAULTS = {  # eps in grey levels (of 255), PGD steps, one-pixel population and iterations
    PHOTO: {"eps": 4.0, "steps": 10, "population": 40, "iterations": 20},
    DIGIT: {"eps": 76.5, "steps": 40, "population": 100, "iterations": 60},
    ROBUST: {"eps": 76.5, "steps": 40, "population": 100, "iterations": 60},
}

INTRO = """
### Fool a network with changes you can hardly see
An **adversarial attack** nudges the pixels of an image in exactly the direction that hurts the network most: it asks the network
itself, through its gradient, which way each pixel should move. **FGSM** takes one step; **PGD** takes many small ones and always stays
inside the budget **ε** (the largest change any pixel may get, in grey levels out of 255). The **one-pixel** attack needs no gradient at
all: it evolves a few pixel changes by trial and error. The twist: the **robust** digit model was trained on such attacks
(adversarial training) and shrugs most of them off. Pick a model, a picture and an attack, and press **Attack**.
"""


# --- Models and inputs -------------------------------------------------------------------------


@functools.cache
def model(kind: str) -> torch.nn.Module:
    """This tab's own copy of the classifier for a model choice, in channels_last memory layout (faster convolutions on
    CPU for the many forward and backward passes of an attack). A copy: the cached model is the one the Digits and
    Classify tabs use too, and one tab never changes another's model."""
    if kind not in CHECKPOINTS:
        raise gr.Error(f"Unknown model {kind!r}. Choose one of: {', '.join(CHECKPOINTS)}.")
    net = load_model(hub.load, EfficientNetLite if kind == PHOTO else DigitClassifier, CHECKPOINTS[kind])
    return copy.deepcopy(net).to(memory_format=torch.channels_last)


@functools.cache
def labels_of(kind: str) -> list[str]:
    """Class names from the checkpoint's config.json, without loading the weights (keeps start-up fast)."""
    path = hub.checkpoint_file(CHECKPOINTS[kind], "config.json") if kind in CHECKPOINTS else None
    if path is None:
        return list(model(kind).config.labels)  # raises the clear "model missing" error
    return list(json.loads(path.read_text())["labels"])


def prepare_input(image, kind: str) -> torch.Tensor:
    """Any picture -> (1, C, H, W) in [0, 1] on the model's device, exactly what the model reads,
    rounded to whole grey levels (so the adversarial PNG you download is the image that was judged).

    Digits: a 28x28 picture is taken as an MNIST digit already (white ink on black; a mostly white
    one is inverted); anything larger goes through the same sketch preprocessing as the Digits tab.
    Photos: the whole photo resized to 224 x 224."""
    picture = open_image(image, "a picture to attack")
    net = model(kind)
    if kind == PHOTO:
        x = to_model_input(to_rgb(picture), net.config.image_size)[None]
    else:
        gray = to_gray(picture)
        c = net.config
        if gray.shape == (c.image_size, c.image_size):
            digit = gray if gray.mean() < 0.5 else 1.0 - gray
        else:
            try:
                digit = sketch_to_mnist(gray, c.image_size, c.box_size, c.ink_threshold, c.min_stroke_fraction)
            except ValueError:
                raise gr.Error("No digit found in the picture: it looks blank. Draw or upload one digit.", title="No digit found") from None
        x = torch.from_numpy(np.ascontiguousarray(digit, dtype=np.float32))[None, None]
    x = (x * 255).round() / 255
    return x.to(next(net.parameters()).device).contiguous(memory_format=torch.channels_last)


def parse_target(target, kind: str) -> int | None:
    """ "none", "", None -> None; "9", "9: ostrich" or "ostrich" -> 9; anything else -> a gr.Error."""
    if target is None:
        return None
    text = str(target).strip()
    if not text or text.lower().startswith("none"):
        return None
    return class_from_text(text, labels_of(kind), "Target class")


def target_choices(kind: str) -> list[str]:
    labels = labels_of(kind)
    first = SUGGESTED_PHOTO_TARGETS if kind == PHOTO else []
    rest = [i for i in range(len(labels)) if i not in first]
    return [NO_TARGET] + [f"{i}: {labels[i]}" for i in first + rest]


# --- The attack ----------------------------------------------------------------------------------


def top5(net: torch.nn.Module, x: torch.Tensor) -> dict[str, float]:
    with torch.inference_mode():
        probs = net(x).float().softmax(-1)[0].cpu()
    top = probs.topk(5)
    return {net.config.labels[i]: float(p) for p, i in zip(top.values, top.indices, strict=True)}


@dataclass
class AttackSettings:
    """One request's attack, checked (`attack` checks the raw request and builds it)."""

    attack: str  # "fgsm", "pgd", "one-pixel", "deepfool" or "smallest-eps"
    eps: float  # largest change per pixel, in [0, 1] units (FGSM, PGD)
    steps: int = 10  # PGD steps
    pixels: int = 1  # one-pixel: pixels to change
    target: int | None = None  # a class to turn it into, or None for any wrong answer
    population: int = 40  # one-pixel: candidates per generation
    iterations: int = 20  # one-pixel: generations
    seed: int = 0


def run_attack(net: torch.nn.Module, x: torch.Tensor, kind: str, s: AttackSettings, progress=None) -> tuple[torch.Tensor, int, int]:
    """Attack one image x (1, C, H, W) in [0, 1] as `s` says.

    Returns (adversarial image on the whole-grey-level grid, the label attacked, queries)."""
    with torch.no_grad():
        label = net(x).argmax(-1)  # untargeted = move away from the model's own current answer
    goal = None if s.target is None else torch.tensor([s.target], device=x.device)
    if s.attack == "fgsm":
        result = attacks.fgsm(net, x, label, s.eps, target=goal)
    elif s.attack == "pgd":
        result = attacks.pgd(net, x, label, s.eps, steps=s.steps, target=goal, seed=s.seed, progress=progress)
    elif s.attack == "deepfool":
        # The 10 likeliest classes are the candidate boundaries (all of them for digits), as the paper does on ImageNet.
        result = attacks.deepfool(net, x, label, classes=10)
    elif s.attack == "smallest-eps":  # already on the grey-level grid, and judged there
        eps, found = attacks.smallest_pgd_eps(net, x, label, steps=10, high=s.eps, seed=s.seed)
        return (x if found is None else found), int(label), 10 * (1 + 8) if found is not None else 10  # the widest, then halvings
    elif s.attack == "one-pixel":
        chunk = 64 if kind == PHOTO else 4096
        result = attacks.one_pixel(
            net,
            x,
            label,
            pixels=s.pixels,
            population=s.population,
            iterations=s.iterations,
            target=goal,
            seed=s.seed,
            chunk=chunk,
            progress=progress,
        )
    else:
        raise gr.Error(f"Unknown attack {s.attack!r}. Choose fgsm, pgd, one-pixel, deepfool or smallest-eps.")
    # Round the change to whole grey levels: the result is a real 8-bit image. Toward zero for the budgeted attacks, so
    # it stays inside the eps-ball (x itself is on the grid); away from zero for DeepFool, whose change has no budget and
    # ends just across the boundary, where rounding back would undo it.
    change = (result.adversarial - x) * 255
    delta = (change.sign() * change.abs().ceil() if s.attack == "deepfool" else torch.trunc(change)) / 255
    return (x + delta).clamp(0, 1), int(label), result.queries


def to_picture(x: torch.Tensor, scale: int) -> np.ndarray:
    """(1, C, H, W) in [0, 1] -> (H*scale, W*scale[, 3]) uint8, nearest-neighbour so pixels stay visible."""
    img = x[0].float().cpu().permute(1, 2, 0).numpy()
    img = img[..., 0] if img.shape[2] == 1 else img
    return (upscale(img, scale) * 255).round().astype(np.uint8) if scale > 1 else (img * 255).round().astype(np.uint8)


def perturbation_picture(x: torch.Tensor, adversarial: torch.Tensor, scale: int) -> tuple[np.ndarray, float]:
    """The difference, amplified: grey = unchanged, brighter/darker = pixel raised/lowered.

    Returns (picture, amplification factor)."""
    delta = (adversarial - x)[0].float().cpu()  # (C, H, W)
    changed = (delta.abs() > 0.5 / 255).any(0)
    if 0 < int(changed.sum()) <= 10 and delta.shape[-1] > 64:  # a few pixels in a big photo: grow each to 7x7 so it shows
        grow = torch.nn.functional.max_pool2d
        delta = grow(delta.clamp(min=0)[None], 7, stride=1, padding=3)[0] - grow((-delta).clamp(min=0)[None], 7, stride=1, padding=3)[0]
    biggest = float(delta.abs().max())
    gain = 0.5 / biggest if biggest > 0 else 1.0
    shown = (0.5 + gain * delta).clamp(0, 1)
    return to_picture(shown[None], scale), gain


def attack_lease_seconds(
    image,
    model_choice,
    attack_choice,
    epsilon,
    steps,
    pixels,
    target,
    population,
    iterations,
    seed,
    defence=NO_DEFENCE,
    jpeg_quality=75,
    adaptive=False,
    progress=None,
) -> int:
    """ZeroGPU lease for one attack: FGSM is one gradient; PGD one per step; the one-pixel search one batched pass
    over its population per generation. 0.2 s each (the photo model's gradient is the slowest), plus 10 s."""
    if attack_choice == "pgd":
        passes = lease_number(steps, 10, 1, 100)
    elif attack_choice == "one-pixel":
        passes = lease_number(iterations, 20, 1, 200) * (1 + lease_number(population, 40, 10, 400) / 400)
    elif attack_choice in ("deepfool", "smallest-eps"):
        passes = 90  # DeepFool: up to 50 steps of 10 class gradients, most done in a few; the search: 9 runs of PGD-10
    else:
        passes = 1
    return int(10 + 0.2 * passes)


@on_gpu(duration=attack_lease_seconds)
def attack(
    image,
    model_choice: str,
    attack_choice: str,
    epsilon: float,
    steps: float,
    pixels: float,
    target,
    population: float,
    iterations: float,
    seed: float,
    defence: str = NO_DEFENCE,
    jpeg_quality: float = 75,
    adaptive: bool = False,
    progress=gr.Progress(),  # noqa: B008 (Gradio injects it)
):
    """Make an adversarial example: change a picture a little so that a classifier gets it wrong.

    Args:
        image: a picture (a photo for the photo model, a digit for the digit models).
        model_choice: "photo" (EfficientNet-Lite0), "digit" (the digit CNN) or "digit-robust" (the adversarially trained one).
        attack_choice: "fgsm", "pgd", "one-pixel", "deepfool" or "smallest-eps".
        epsilon: the budget in grey levels out of 255, 0 to 128 (for "smallest-eps", the largest budget searched).
        steps: PGD steps, 1 to 100.
        pixels: pixels the one-pixel attack may change, 1 to 10.
        target: "none", or the class to turn it into as a number or name ("9", "9: ostrich").
        population: one-pixel attack's population, 10 to 400.
        iterations: one-pixel attack's generations, 1 to 200.
        seed: random seed, 0 to 2147483647.
        defence: put in front of the model: "none", "jpeg", "bitdepth" or "median".
        jpeg_quality: JPEG quality of the jpeg defence, 5 to 95.
        adaptive: attack through the defence (BPDA) instead of the bare model (true or false).
    Returns:
        The picture as the model sees it, the adversarial one, the change amplified, top-5 before and after, a report, the other digit model's answer, the exact adversarial PNG."""
    kind = model_choice
    if kind not in CHECKPOINTS:
        raise gr.Error(f"Unknown model {kind!r}. Choose one of: {', '.join(CHECKPOINTS)}.")
    eps_levels = check_number(epsilon, "ε (grey levels)", 0, 128)
    n_steps = int(check_number(steps, "PGD steps", 1, MAX_STEPS, integer=True))
    n_pixels = int(check_number(pixels, "pixels to change", 1, 10, integer=True))
    n_population = int(check_number(population, "population", 10, 400, integer=True))
    n_iterations = int(check_number(iterations, "iterations", 1, 200, integer=True))
    seed = int(check_number(seed, "seed", 0, 2**31 - 1, integer=True))
    if attack_choice == "one-pixel" and n_population * n_iterations > MAX_QUERIES[kind]:
        raise gr.Error(
            f"population x iterations = {n_population * n_iterations:,} is over this model's budget of {MAX_QUERIES[kind]:,} "
            "forward passes per request. Lower one of them."
        )
    if defence not in (NO_DEFENCE, *attacks.DEFENCES):
        raise gr.Error(f"Unknown defence {str(defence)[:40]!r}. Choose one of: {', '.join(v for _, v in DEFENCE_CHOICES)}.")
    quality = int(check_number(jpeg_quality, "JPEG quality", 5, 95, integer=True))
    goal = parse_target(target, kind) if attack_choice not in ("deepfool", "smallest-eps") else None
    bare = model(kind)
    x = prepare_input(image, kind)
    # Every attack here is deterministic given its seed: the same picture and settings give the same pixels.
    key = (kind, hashlib.sha256(x.cpu().numpy().tobytes()).hexdigest(), attack_choice, eps_levels, n_steps, n_pixels)
    key += (n_population, n_iterations, seed, goal, defence, quality, bool(adaptive))
    if (answer := RECENT.get(key)) is not None:
        *pictures, before, after, report, transfer, png = answer
        return (*pictures, copy.deepcopy(before), copy.deepcopy(after), report + REPEAT_NOTE, transfer, png)
    net, attacked = bare, bare  # who answers, and whose gradient the attack follows
    if defence != NO_DEFENCE:
        settings = attacks.DEFENCE_DEFAULTS[defence] | ({"quality": quality} if defence == "jpeg" else {})
        net = attacks.Defended(bare, defence, **settings)
        attacked = attacks.Defended(bare, defence, adaptive=True, **settings) if adaptive else bare
    report_progress = None
    if attack_choice in ("pgd", "one-pixel"):
        what = "PGD step" if attack_choice == "pgd" else "generation"
        progress(0, desc="Attacking")
        report_progress = lambda done, total: progress((done, total), desc=f"{what} {done} of {total}")  # noqa: E731

    started = time.perf_counter()
    settings = AttackSettings(
        attack_choice, eps_levels / 255, n_steps, pixels=n_pixels, target=goal, population=n_population, iterations=n_iterations, seed=seed
    )
    adversarial, label, queries = run_attack(attacked, x, kind, settings, report_progress)
    seconds = time.perf_counter() - started
    with torch.inference_mode():
        label = int(net(x).argmax(-1))  # the defended model's own answer on the clean picture

    scale = 1 if kind == PHOTO else 8
    before, after = top5(net, x), top5(net, adversarial)
    with torch.inference_mode():
        new_label = int(net(adversarial).argmax(-1))
    labels = net.config.labels
    size = attacks.perturbation_size(x[0], adversarial[0])
    amplified, gain = perturbation_picture(x, adversarial, scale)
    report = verdict(labels, label, new_label, goal, attack_choice) + "\n\n" + size_report(size, x, attack_choice, eps_levels, gain)
    if attack_choice == "smallest-eps":
        report += "\n\n" + (
            f"**The smallest budget PGD-10 needed: {size['Linf_grey_levels']:g} grey level{'s' if size['Linf_grey_levels'] != 1 else ''}** "
            f"(searched by halving between 0 and {eps_levels:g})."
            if new_label != label
            else f"PGD-10 did not fool it within {eps_levels:g} grey levels: raise ε to search a bigger range."
        )
    if defence != NO_DEFENCE:
        report += "\n\n" + defence_report(defence, quality, adaptive)
    calls = ("gradient computation", "gradient computations") if attack_choice != "one-pixel" else ("forward pass", "forward passes")
    report += f"\n\n{seconds:.2f} s, {queries:,} {calls[queries != 1]} through the network."
    transfer = transfer_report(kind, adversarial, label) if kind != PHOTO else ""
    answer = (to_picture(x, scale), to_picture(adversarial, scale), amplified, before, after, report, transfer, png_file(adversarial))
    RECENT.put(key, (*answer[:3], copy.deepcopy(before), copy.deepcopy(after), *answer[5:]))
    return answer


RECENT = RecentAnswers()
REPEAT_NOTE = (
    "\n\n*Shown again from this server's memory of recent answers: someone attacked this same picture with these "
    "settings and seed before, and that always gives the same pixels, so the attack did not run twice (the time above "
    "is the first run's).*"
)


def defence_report(defence: str, quality: int, adaptive: bool) -> str:
    name = dict((v, k) for k, v in DEFENCE_CHOICES)[defence] + (f", quality {quality}" if defence == "jpeg" else "")
    if adaptive:
        how = (
            "through the defence: the forward pass is the real defence and the gradient passes it as if it were not there "
            "(BPDA, Athalye et al. 2018)"
            if defence in attacks.NO_USEFUL_GRADIENT
            else "through the defence, following its own gradient"
        )
        return f"**Defence: {name}**, in front of the model. The attack was made {how}: an attacker who knows the defence."
    return (
        f"**Defence: {name}**, in front of the model. The attack was made on the bare model, as an attacker who does not "
        "know the defence; the answers above are the defended model's. Switch on *adaptive* to attack through it."
    )


def verdict(labels: list[str], label: int, new_label: int, goal: int | None, attack_choice: str) -> str:
    if goal is not None:
        if goal == label:
            return f"### Nothing to do: it already said **{labels[label]}**, the target. Pick another target."
        if new_label == goal:
            return f"### Fooled: it now says **{labels[new_label]}**, the target (it said **{labels[label]}** before)."
        return (
            f"### Not fooled into the target: it says **{labels[new_label]}**, not **{labels[goal]}**. Try a bigger budget or more steps."
        )
    if new_label != label:
        return f"### Fooled: **{labels[label]}** became **{labels[new_label]}**."
    hint = " One-pixel attacks rarely work: that is an honest result." if attack_choice == "one-pixel" else " Try a bigger ε or PGD."
    return f"### Not fooled: it still says **{labels[label]}**.{hint}"


def size_report(size: dict[str, float], x: torch.Tensor, attack_choice: str, eps_levels: float, gain: float) -> str:
    total = x.shape[-1] * x.shape[-2]
    if attack_choice == "one-pixel":
        budget = "no ε budget: any value for the chosen pixels"
    elif attack_choice == "deepfool":
        budget = "no ε budget: just across the nearest decision boundary"
    elif attack_choice == "smallest-eps":
        budget = f"the smallest ε that worked, searched up to {eps_levels:g} grey levels"
    else:
        budget = f"budget ε = {eps_levels:g} grey levels = {eps_levels / 255:.4f} in [0, 1] pixel units"
    return (
        f"**Size of the change** ({budget}; measured on the pixels before the model's own normalisation): "
        f"L0 = **{size['L0_pixels']:,}** of {total:,} pixels changed · L2 = **{size['L2']:.3f}** · "
        f"L∞ = **{size['Linf_grey_levels']:g}** grey levels ({size['Linf']:.4f}). The difference picture is amplified {gain:.0f}x."
    )


def transfer_report(kind: str, adversarial: torch.Tensor, label: int) -> str:
    """Does the adversarial digit made for one digit model also fool the other?"""
    other = ROBUST if kind == DIGIT else DIGIT
    try:
        net = model(other)
    except gr.Error as err:  # the attack itself worked; only the comparison is missing
        return f"*Transfer check unavailable: {err.message}*"
    with torch.inference_mode():
        probs = net(adversarial.to(next(net.parameters()).device)).float().softmax(-1)[0].cpu()
    answer = int(probs.argmax())
    names = {DIGIT: "standard", ROBUST: "robust"}
    fooled = "**fooled too**" if answer != label else "**not fooled**"
    return (
        f"**Transfer:** the {names[other]} model, which the attack never looked at, reads this adversarial digit as "
        f"**{answer}** ({probs[answer]:.0%}): {fooled}."
    )


def png_file(adversarial: torch.Tensor) -> str:
    """The exact adversarial image (model resolution, 8-bit PNG) for download."""
    return image_file(Image.fromarray(to_picture(adversarial, 1)), "adversarial.png")


# --- Robustness curve -------------------------------------------------------------------------------


def measure_robustness_curve(
    n_digits: int = 200, steps: int = 10, eps_grid: tuple[float, ...] = (0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4), progress=None
) -> pd.DataFrame:
    """Accuracy of both digit models on n test digits (all classes equally) under PGD-steps at each eps."""
    x, y = test_digits(n_digits)
    rows, total, done = [], 2 * len(eps_grid), 0
    for kind, name in ((DIGIT, "standard"), (ROBUST, "robust")):
        net = model(kind)
        device = next(net.parameters()).device
        for eps in eps_grid:
            if eps == 0:
                predictions = attacks.predict(net, x.to(device))
            else:
                predictions = attacks.pgd(net, x.to(device), y.to(device), eps, steps=steps, seed=0).predictions
            rows.append({"eps": eps, "accuracy": float((predictions.cpu() == y).float().mean()), "model": name})
            done += 1
            if progress is not None:
                progress((done, total), desc=f"{name} model, eps {eps:g}")
    return pd.DataFrame(rows)


@functools.cache
def test_digits(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n digits of the held-out test split, evenly spread over it (the split is sorted by class, so
    every k-th digit keeps all ten classes equally): ((n, 1, 28, 28) in [0, 1], (n,) labels)."""
    splits = load_splits()
    pick = np.linspace(0, len(splits.test_y) - 1, min(n, len(splits.test_y))).round().astype(int)
    return torch.from_numpy(splits.test_x[pick]).float().div(255).unsqueeze(1), torch.from_numpy(splits.test_y[pick]).long()


def measured(filename: str) -> dict | None:
    """A measurement file that travels with the robust checkpoint (models.hub: the local folder or the Hub), or None."""
    path = hub.checkpoint_file(CHECKPOINTS[ROBUST], filename)
    return json.loads(path.read_text()) if path is not None else None


# The budgets the robust model's card reports PGD-40 and APGD at, on all 1,000 test digits.
CARD_EPS = (0.1, 0.2, 0.3)


def card_apgd_points() -> list[dict]:
    """The robust model under APGD at each budget of its card (all 1,000 test digits), as curve points from eps 0."""
    card = measured("metrics.json") or {}
    keys = {eps: f"test_apgd_accuracy_eps{eps:g}" for eps in CARD_EPS}
    if "test_accuracy" not in card or not all(key in card for key in keys.values()):
        return []
    return [{"eps": 0.0, "accuracy": card["test_accuracy"], "model": "robust (APGD)"}] + [
        {"eps": eps, "accuracy": card[key], "model": "robust (APGD)"} for eps, key in keys.items()
    ]


def precomputed_curve() -> pd.DataFrame | None:
    """The benchmark's PGD curve for both models, with the robust model's APGD points from its card where it has
    them (all 1,000 test digits at each budget), else the benchmark's own."""
    data = measured(CURVE_FILE)
    if not data:
        return None
    card = card_apgd_points()
    points = [point for point in data["points"] if not (card and point["model"] == "robust (APGD)")] + card
    return pd.DataFrame(points)


def curve_caption() -> str:
    data = measured(CURVE_FILE)
    if not data:
        return "*No precomputed curve yet: run `python -m benchmarks.run --only attack`, or press the button.*"
    apgd = (
        " The red points come from the robust model's card: APGD on all 1,000 test digits."
        if card_apgd_points()
        else " The red points: APGD, measured by the benchmark (all 1,000 test digits at ε = 0.3, 200 of them at 0.1 and 0.2)."
    )
    return (
        f"Precomputed by the benchmark: PGD-{data['steps']} with a random start, on {data['n_digits']:,} held-out test digits "
        f"(all classes equally).{apgd}"
    )


# Test digits in the live curve, a multiple of 10 (each class equally). MODEL_SHOW_CURVE_DIGITS lowers it for a test server.
LIVE_CURVE_DIGITS = max(10, int(os.environ.get("MODEL_SHOW_CURVE_DIGITS", 200)) // 10 * 10)


@on_gpu(duration=int(20 + 0.1 * LIVE_CURVE_DIGITS))  # 18 PGD-10 runs over the digits, plus loading both models
def robustness_curve(progress=gr.Progress()):  # noqa: B008 (Gradio injects it)
    """Measure both digit models' accuracy against the attack budget, live: PGD-10 on held-out test digits.

    Returns:
        The accuracy-against-epsilon curve of the standard and the robust digit model, and a note."""
    started = time.perf_counter()
    frame = measure_robustness_curve(LIVE_CURVE_DIGITS, 10, progress=progress)
    return (
        frame,
        f"Recomputed live: PGD-10 with a random start on {LIVE_CURVE_DIGITS} held-out test digits ({LIVE_CURVE_DIGITS // 10} per class), "
        f"in {time.perf_counter() - started:.0f} s.",
    )


def robust_rows(m: dict) -> list[tuple[str, str, str]]:
    """The robust model's rows: PGD-40 beside APGD at each budget of its card (all 1,000 test digits), or the
    benchmark's eps 0.3 figures when the card has no such ladder."""
    card = measured("metrics.json") or {}
    ladder = [eps for eps in CARD_EPS if f"test_pgd40_accuracy_eps{eps:g}" in card and f"test_apgd_accuracy_eps{eps:g}" in card]
    if len(ladder) == len(CARD_EPS):
        return [
            (
                f"PGD-40 / **APGD**, ε = {eps:g} ({round(eps * 255)} grey levels)",
                "robust digit model, all 1,000 test digits (its card)" + (": **APGD is the number to trust**" if eps == 0.3 else ""),
                f"{card[f'test_pgd40_accuracy_eps{eps:g}']:.1%} / **{card[f'test_apgd_accuracy_eps{eps:g}']:.1%}** still right",
            )
            for eps in ladder
        ]
    rows = [("PGD-40, ε = 0.3", "robust digit model, all 1,000 test digits", f"{m['robust_pgd_accuracy_eps0.3']:.1%} still right")]
    for small in ("0_1", "0_2"):
        if f"robust_apgd_accuracy_eps{small}_200_digits" in m:
            rows.append(
                (
                    f"**APGD**, ε = {small.replace('_', '.')}",
                    "robust digit model, 200 test digits (20 per class)",
                    f"{m[f'robust_apgd_accuracy_eps{small}_200_digits']:.1%} still right",
                )
            )
    if "robust_apgd_accuracy_eps0_3" in m:
        rows.append(
            (
                "**APGD** (the worst of APGD-CE and targeted APGD-DLR at 9 classes, 100 steps each), ε = 0.3",
                "robust digit model, all 1,000 test digits: **the number to trust**",
                f"**{m['robust_apgd_accuracy_eps0_3']:.1%} still right**",
            )
        )
    return rows


def measured_rates() -> str:
    """The benchmark's attack numbers (attack_metrics.json beside the robust model), as a table a learner can trust."""
    m = measured(RATES_FILE)
    if not m:
        return "*No measurements yet: run `python -m benchmarks.run --only attack`.*"
    needed = ["fgsm_success_eps0.3", "pgd_success_eps0.3", "onepixel_success_1px", "onepixel_success_3px", "robust_pgd_accuracy_eps0.3"]
    if any(
        key not in m
        for key in needed + ["robust_clean_accuracy", "transfer_standard_to_robust", "photos", "photo_pgd_targeted_success_eps4/255"]
    ):
        return "*The saved measurements are incomplete: run `python -m benchmarks.run --only attack`.*"
    rows = [
        (
            "FGSM, ε = 0.3 (76 grey levels)",
            "standard digit model, 500 test digits it got right (50 per class)",
            f"{m['fgsm_success_eps0.3']:.1%} fooled",
        ),
        ("PGD-40, ε = 0.3", "same 500 digits", f"{m['pgd_success_eps0.3']:.1%} fooled"),
        ("One-pixel, 1 pixel", "every 5th of them (100), population 100, 60 generations", f"{m['onepixel_success_1px']:.1%} fooled"),
        ("One-pixel, 3 pixels", "same 100 digits and budget", f"{m['onepixel_success_3px']:.1%} fooled"),
        *robust_rows(m),
        ("no attack", "robust digit model, all 1,000 test digits", f"{m['robust_clean_accuracy']:.1%} right"),
        ("PGD-40 made for the standard model", "shown to the robust model", f"{m['transfer_standard_to_robust']:.1%} fooled"),
        (
            "targeted PGD-10 to 'ostrich', ε = 4/255",
            f"photo model, all {int(m['photos'])} example photos",
            f"{m['photo_pgd_targeted_success_eps4/255']:.0%} became ostriches",
        ),
    ]
    table = "| attack | on | result |\n| --- | --- | --- |\n" + "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)
    note = ""
    if any("APGD" in row[0] for row in rows):
        note = (
            "\n\nWhy two numbers for the robust model? Plain PGD takes fixed-size steps and can get stuck where the model's "
            "gradient is flat or misleading; APGD (Croce & Hein 2020) adapts its step and also attacks a loss that ignores how "
            "confident the logits look. Here APGD is the worst of APGD-CE and targeted APGD-DLR (9 target classes, 100 steps each), "
            "the white-box half of AutoAttack. The field (AutoAttack, RobustBench) reports robustness under it: when the two differ, "
            "the lower one is the truth, and the PGD figure overstated it."
        )
    return "Measured by `python -m benchmarks.run --only attack` on held-out test digits:\n\n" + table + note


def robust_training_note() -> str:
    text = (
        "Every training batch was attacked first: 10 small steps that push the network's answer as far as they can from its "
        "answer on the clean digit (TRADES, Zhang et al. 2019). The network then learned to read the clean digit right and to "
        "give the attacked one the same answer. ε grew from 0 to 0.3 over the first epochs (red)."
    )
    path = hub.checkpoint_file(CHECKPOINTS[ROBUST], "training_log.json")
    if path is None:
        return text
    log = [e for e in json.loads(path.read_text()) if e["eps"] >= 0.3 - 1e-9]
    if not log:
        return text
    best = max(log, key=lambda e: (e["val_pgd_accuracy"], e["epoch"]))
    return text + (
        f" Accuracy on validation digits under APGD-CE (orange; the attack the field measures with) peaked at epoch "
        f"{best['epoch']} ({best['val_pgd_accuracy']:.1%}); "
        "that epoch is the shipped model. Later it swings and falls while the training loss keeps dropping: **robust overfitting**, "
        "a known trait of adversarial training, which is why the epoch is chosen on attacked validation digits."
    )


def robust_training_curves() -> pd.DataFrame | None:
    path = hub.checkpoint_file(CHECKPOINTS[ROBUST], "training_log.json")
    if path is None:
        return None
    rows = []
    for entry in json.loads(path.read_text()):
        rows.append({"epoch": entry["epoch"], "value": entry["val_accuracy"], "curve": "validation accuracy, clean digits"})
        rows.append({"epoch": entry["epoch"], "value": entry["val_pgd_accuracy"], "curve": "validation accuracy under attack (eps 0.3)"})
        rows.append({"epoch": entry["epoch"], "value": entry["eps"], "curve": "training eps (grows, then stays)"})
    return pd.DataFrame(rows)


# --- Small events ---------------------------------------------------------------------------------


def model_changed(kind: str):
    """New model: its default budgets and its classes as targets."""
    d = DEFAULTS.get(kind, DEFAULTS[DIGIT])
    return (
        gr.update(value=d["eps"]),
        gr.update(value=d["steps"]),
        gr.update(value=d["population"]),
        gr.update(value=d["iterations"]),
        gr.update(choices=target_choices(kind), value=NO_TARGET),
    )


def switched_to_digits(kind: str) -> tuple:
    """A photo model switched to the digit model: its budgets and targets (as a person choosing it gets); else unchanged."""
    return model_changed(DIGIT) if kind == PHOTO else (gr.skip(),) * 5


def random_test_digit(kind: str):
    """A random held-out test digit as a 28x28 PNG; switches a photo model to the standard digit model."""
    splits = load_splits()
    index = int(np.random.default_rng().integers(len(splits.test_y)))
    path = image_file(Image.fromarray(splits.test_x[index]), f"test_digit_{index}_label_{splits.test_y[index]}.png")
    return (
        path,
        (DIGIT if kind == PHOTO else kind),
        f"Test digit #{index} (true label **{splits.test_y[index]}**), never seen in training.",
        *switched_to_digits(kind),
    )


def use_drawing(sketch, kind: str):
    return drawing_file(sketch), (DIGIT if kind == PHOTO else kind), *switched_to_digits(kind)


LINK = __name__.rsplit(".", 1)[-1]
EXAMPLE_PICTURES = {p.name: p for p in [*sorted(PHOTO_EXAMPLES.glob("*.jpg")), *sorted(DIGIT_EXAMPLES.glob("mnist_*.png"))]}
LINK_SETTINGS = [
    "picture", "model", "attack", "epsilon", "steps", "pixels", "target", "population", "iterations", "seed", "defence", "jpeg_quality", "adaptive"
]  # fmt: skip


def linked_picture(name: str) -> str:
    """A link's picture: an example by file name, or a random test digit by the name it was given (test_digit_<n>_...)."""
    if name in EXAMPLE_PICTURES:
        return str(EXAMPLE_PICTURES[name])
    match = re.fullmatch(r"test_digit_(\d{1,5})_label_\d\.png", name)
    splits = load_splits() if match else None
    if splits is None or int(match.group(1)) >= len(splits.test_y):
        raise ValueError(f"must be an example picture ({', '.join(EXAMPLE_PICTURES)}) or a test digit the tab picked")
    index = int(match.group(1))
    return image_file(Image.fromarray(splits.test_x[index]), f"test_digit_{index}_label_{splits.test_y[index]}.png")


def open_link(*values_and_request):
    """A page opened on a link to this tab: its picture (an example, by name) and settings; the attack itself waits for
    the Attack button (seconds of work). Called by on_link with the LINK_SETTINGS values as the page opens, then the request."""
    *values, request = values_and_request
    current = dict(zip(LINK_SETTINGS, values, strict=True))
    readers = {
        "picture": linked_picture,
        "model": link_choice([v for _, v in MODELS]),
        "attack": link_choice([v for _, v in ATTACKS]),
        "epsilon": link_number("ε", 0, 128),
        "steps": link_number("PGD steps", 1, MAX_STEPS, integer=True),
        "pixels": link_number("Pixels", 1, 10, integer=True),
        "target": str,  # checked below, against the linked model's classes
        "population": link_number("Population", 10, 400, integer=True),
        "iterations": link_number("Generations", 1, 200, integer=True),
        "seed": link_number("Seed", 0, 2**31 - 1, integer=True),
        "defence": link_choice([v for _, v in DEFENCE_CHOICES]),
        "jpeg_quality": link_number("JPEG quality", 5, 95, integer=True),
        "adaptive": link_flag,
    }
    link = read_link(request, LINK, readers, current)
    if link is None:
        return (gr.skip(),) * len(LINK_SETTINGS)
    kind = link["model"]
    choices = target_choices(kind)
    target = next((c for c in choices if c == link["target"] or c.split(": ", 1)[0] == str(link["target"])), NO_TARGET)
    gr.Info("The link's picture and settings are in place: press Attack to run it.")
    return (*(link[name] for name in LINK_SETTINGS[:6]), gr.update(choices=choices, value=target), *(link[n] for n in LINK_SETTINGS[7:]))


def build() -> None:
    """The Attack tab's components and events, inside the current gr.Tab."""
    gr.Markdown(INTRO)
    with gr.Row():
        with gr.Column():
            model_choice = gr.Radio(MODELS, value=PHOTO, label="Model to fool", elem_id="attack-model")
            picture = gr.Image(
                label="Picture to attack", type="filepath", sources=["upload", "webcam", "clipboard"], height=260, elem_id="attack-picture"
            )
            with gr.Row():
                random_digit = gr.Button("Random test digit")
            digit_note = gr.Markdown()
            attack_choice = gr.Radio(ATTACKS, value="pgd", label="Attack", elem_id="attack-kind")
            epsilon = gr.Slider(
                0, 128, value=4, step=0.5, label="ε: largest change per pixel, in grey levels out of 255 (FGSM, PGD)", elem_id="attack-eps"
            )
            target = gr.Dropdown(
                target_choices(PHOTO),
                value=NO_TARGET,
                label="Target class (optional)",
                info="ImageNet has no toothbrush or octopus class; the nearest real ones are paintbrush and chambered nautilus (or jellyfish). Ostrich is the classic.",
            )
            with gr.Accordion("Budget", open=False):
                steps = gr.Slider(1, MAX_STEPS, value=10, step=1, label="PGD steps")
                pixels = gr.Slider(1, 10, value=1, step=1, label="One-pixel: pixels to change")
                population = gr.Slider(10, 400, value=40, step=10, label="One-pixel: population (candidates per generation)")
                iterations = gr.Slider(1, 200, value=20, step=1, label="One-pixel: generations")
                seed = gr.Number(0, precision=0, label="Seed (same seed, same attack)")
            with gr.Accordion("Defence: does saving it as a JPEG undo the attack?", open=False):
                defence = gr.Radio(DEFENCE_CHOICES, value=NO_DEFENCE, label="Put in front of the model", elem_id="attack-defence")
                jpeg_quality = gr.Slider(5, 95, value=75, step=5, label="JPEG quality (lower = stronger compression)")
                adaptive = gr.Checkbox(
                    False,
                    label="Adaptive attack: attack through the defence (BPDA), as an attacker who knows it would",
                    elem_id="attack-adaptive",
                )
            go = gr.Button("Attack", variant="primary", elem_id="attack-run")
            link_settings = [picture, model_choice, attack_choice, epsilon, steps, pixels, target, population, iterations, seed]
            share_link(LINK, dict(zip(LINK_SETTINGS, [*link_settings, defence, jpeg_quality, adaptive], strict=True)))
            gr.Examples(
                [[str(p), PHOTO] for p in sorted(PHOTO_EXAMPLES.glob("*.jpg"))]
                + [[str(p), DIGIT] for p in sorted(DIGIT_EXAMPLES.glob("mnist_*.png"))],
                inputs=[picture, model_choice],
                label="Examples: photos for the photo classifier, digits for the digit classifiers",
            )
            with gr.Accordion("Draw a digit", open=False):
                sketch = drawing_pad("Draw one digit", 280, 280, 18, "attack-sketchpad")
                use_sketch = gr.Button("Use this drawing")
        with gr.Column():
            with gr.Row():
                original_view = gr.Image(label="What the model sees", type="numpy", buttons=[], height=224)
                adversarial_view = gr.Image(label="Adversarial", type="numpy", buttons=[], height=224)
                perturbation_view = gr.Image(label="The change, amplified (grey = none)", type="numpy", buttons=[], height=224)
            report = gr.Markdown(elem_id="attack-report")
            with gr.Row():
                before = gr.Label(num_top_classes=5, label="Top 5 before", elem_id="attack-before")
                after = gr.Label(num_top_classes=5, label="Top 5 after", elem_id="attack-after")
            transfer = gr.Markdown()
            download = gr.File(label="The adversarial image, exact pixels (PNG)")
    with gr.Accordion("How often does each attack work? (measured)", open=False):
        gr.Markdown(measured_rates())
    with gr.Accordion("Robustness curve: accuracy as ε grows, standard vs robust digit model", open=False):
        gr.Markdown(
            "Each point attacks held-out test digits with PGD at that ε. The standard model collapses at small ε; the robust model "
            "was trained against ε = 0.3 and holds on longer, at the price of a little clean accuracy. The red points attack the "
            "robust model with APGD, the stronger attack the field reports: where red sits below orange, PGD overstated it."
        )
        curve_plot = gr.LinePlot(
            precomputed_curve(),
            x="eps",
            y="accuracy",
            color="model",
            color_map={"standard": "#1f77b4", "robust": "#ff7f0e", "robust (APGD)": "#d62728"},
            y_lim=[0, 1],
            height=300,
            label="accuracy under PGD (blue: standard model, orange: robust model), and the robust model under APGD (red)",
        )
        curve_note = gr.Markdown(curve_caption())
        recompute = gr.Button(f"Recompute live on {LIVE_CURVE_DIGITS} test digits (about {max(1, LIVE_CURVE_DIGITS * 30 // 200)} s)")
    with gr.Accordion("How the robust model learned", open=False):
        gr.Markdown(robust_training_note())
        gr.LinePlot(
            robust_training_curves(),
            x="epoch",
            y="value",
            color="curve",
            color_map={
                "validation accuracy, clean digits": "#1f77b4",
                "validation accuracy under attack (eps 0.3)": "#ff7f0e",
                "training eps (grows, then stays)": "#d62728",
            },
            height=300,
            label="training progress (blue: clean validation accuracy, orange: under attack, red: training ε)",
        )

    outputs = [original_view, adversarial_view, perturbation_view, before, after, report, transfer, download]
    linked = [*link_settings, defence, jpeg_quality, adaptive]  # attack()'s inputs, in its order, and the link's
    go.click(
        attack,
        inputs=linked,
        outputs=outputs,
        api_name="attack",
        preprocess=False,
        **HEAVY_LANE,
    )
    budgets = [epsilon, steps, population, iterations, target]
    # `input`: only a person's choice resets the budgets; a link sets the model and its budgets together.
    model_choice.input(model_changed, model_choice, budgets, api_visibility="private")
    random_digit.click(random_test_digit, model_choice, [picture, model_choice, digit_note, *budgets], api_visibility="private")
    use_sketch.click(use_drawing, [sketch, model_choice], [picture, model_choice, *budgets], api_visibility="private")
    on_link(open_link, linked, linked)
    recompute.click(
        robustness_curve,
        None,
        [curve_plot, curve_note],
        api_name="robustness_curve",
        concurrency_id="robustness_curve",
        concurrency_limit=1,
    )

"""Adversarial attacks, written in plain torch: FGSM, PGD (L-infinity) and the one-pixel attack.

Every attack works on any of our classifiers because of one contract: images go in and come out
as pixels in [0, 1], shape (B, C, H, W); each model normalises its own input inside `forward`.
So "eps = 8/255" always means "each pixel moved by at most 8 grey levels", whatever the model.

* Untargeted: push the image away from its true label (any wrong answer counts).
* Targeted: pull the image towards one chosen class (only that class counts).
* Success is always re-checked with a clean forward pass on the final image: an attack is only
  called successful when the model really answers wrongly (or with the target).
* Deterministic: the same seed gives the same random start and the same evolution.

FGSM: Goodfellow et al. 2015. PGD: Madry et al. 2018. One-pixel: Su, Vargas and Sakurai 2019
(differential evolution, DE/rand/1, no gradients at all: the model is a black box).
"""

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# Called as progress(done, total) so a UI can show a bar; attacks run fine without it.
Progress = Callable[[int, int], None] | None


@dataclass
class AttackResult:
    adversarial: torch.Tensor  # (B, C, H, W) in [0, 1]
    success: torch.Tensor  # (B,) bool: wrong answer (untargeted) or the target's answer (targeted)
    predictions: torch.Tensor  # (B,) the model's answer on the adversarial image
    queries: int  # forward passes per image the attack spent (gradient steps count one each)


def _loss_sign(target: torch.Tensor | None) -> float:
    """Gradient ascent on the true label's loss, or descent on the target's."""
    return -1.0 if target is not None else 1.0


@torch.inference_mode()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """(B, C, H, W) in [0, 1] -> (B,) predicted class."""
    return torch.cat([model(images[i : i + batch_size]).argmax(-1) for i in range(0, len(images), batch_size)])


def _result(model: nn.Module, adversarial: torch.Tensor, labels: torch.Tensor, target: torch.Tensor | None, queries: int) -> AttackResult:
    adversarial = adversarial.detach()
    predictions = predict(model, adversarial)
    success = predictions == target if target is not None else predictions != labels
    return AttackResult(adversarial, success, predictions, queries)


def _input_gradient(model: nn.Module, images: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
    """d cross_entropy(model(images), goal) / d images, without touching the weights' .grad."""
    with torch.enable_grad():
        x = images.detach().clone().requires_grad_(True)
        # clone: labels made under inference_mode cannot take part in autograd
        loss = F.cross_entropy(model(x).float(), goal.clone(), reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
    return grad


def fgsm(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float, target: torch.Tensor | None = None) -> AttackResult:
    """Fast Gradient Sign Method: one step of size eps along the sign of the loss gradient.

    images (B, C, H, W) in [0, 1]; labels (B,) true classes; target (B,) or None."""
    goal = target if target is not None else labels
    grad = _input_gradient(model, images, goal)
    adversarial = (images + _loss_sign(target) * eps * grad.sign()).clamp(0, 1)
    return _result(model, adversarial, labels, target, queries=1)


def pgd(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    eps: float,
    steps: int = 40,
    step_size: float | None = None,
    target: torch.Tensor | None = None,
    random_start: bool = True,
    seed: int = 0,
    progress: Progress = None,
) -> AttackResult:
    """Projected Gradient Descent in the L-infinity ball: many small FGSM steps, each followed by
    a projection back into [x - eps, x + eps] and [0, 1].

    step_size defaults to 2.5 * eps / steps (Madry et al.), so the walk can cross the whole ball.
    random_start begins at a uniformly random point of the ball (seeded), which defeats the flat
    spot right at a clean image where some models' gradients vanish."""
    step_size = 2.5 * eps / max(steps, 1) if step_size is None else step_size
    goal = target if target is not None else labels
    sign = _loss_sign(target)
    images = images.detach()
    adversarial = images.clone()
    if random_start and eps > 0:
        generator = torch.Generator(device="cpu").manual_seed(seed)
        noise = (torch.rand(images.shape, generator=generator) * 2 - 1) * eps
        adversarial = (images + noise.to(images.device, images.dtype)).clamp(0, 1)
    for step in range(steps):
        grad = _input_gradient(model, adversarial, goal)
        adversarial = adversarial + sign * step_size * grad.sign()
        adversarial = torch.min(torch.max(adversarial, images - eps), images + eps).clamp(0, 1)
        if progress is not None:
            progress(step + 1, steps)
    return _result(model, adversarial, labels, target, queries=steps)


def _paint_pixels(images: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """Apply candidate pixel edits.

    images (B, C, H, W); candidates (B, P, k, 2 + C) as (x, y, value per channel) in pixel units
    and [0, 1] -> (B * P, C, H, W), one edited copy of image b per candidate."""
    b, c, h, w = images.shape
    _, p, k, _ = candidates.shape
    xs = candidates[..., 0].round().long().clamp(0, w - 1)
    ys = candidates[..., 1].round().long().clamp(0, h - 1)
    flat_index = (ys * w + xs).reshape(b * p, 1, k).expand(b * p, c, k)
    values = candidates[..., 2:].clamp(0, 1).reshape(b * p, k, c).transpose(1, 2).to(images.dtype)  # (B*P, C, k)
    edited = images.unsqueeze(1).expand(b, p, c, h, w).reshape(b * p, c, h * w).clone()
    edited.scatter_(2, flat_index, values)
    return edited.view(b * p, c, h, w)


def _fast_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast where the hardware does bf16 natively (most GPUs; CPUs with AVX512-BF16 or
    AMX), else nothing: emulated bf16 would be slower than fp32. Only used to rank one-pixel
    candidates (about 3x faster on our CPU); success is always re-checked in fp32."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if device.type == "cpu" and getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.inference_mode()
def _fitness(
    model: nn.Module, images: torch.Tensor, candidates: torch.Tensor, goal: torch.Tensor, targeted: bool, chunk: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lower is better. Untargeted: probability of the true class; targeted: minus the target's.

    Returns (fitness (B, P), predicted class (B, P))."""
    b, p = candidates.shape[:2]
    edited = _paint_pixels(images, candidates).contiguous(memory_format=torch.channels_last)
    with _fast_autocast(images.device):
        probs = torch.cat([model(edited[i : i + chunk]).float().softmax(-1) for i in range(0, len(edited), chunk)])
    probs = probs.view(b, p, -1)
    goal_prob = probs.gather(2, goal.view(b, 1, 1).expand(b, p, 1)).squeeze(2)
    return (-goal_prob if targeted else goal_prob), probs.argmax(-1)


@torch.inference_mode()
def one_pixel(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    pixels: int = 1,
    population: int = 400,
    iterations: int = 100,
    target: torch.Tensor | None = None,
    mutation: float = 0.5,
    seed: int = 0,
    chunk: int = 2048,
    progress: Progress = None,
) -> AttackResult:
    """Change at most `pixels` pixels (every channel of each), found by differential evolution.

    A candidate is k pixel edits (x, y, value per channel). Each generation, every candidate i
    proposes a trial r1 + mutation * (r2 - r3) from three other random candidates and keeps it
    if it lowers the goal class's probability (untargeted) or raises the target's (targeted).
    No gradients: only the model's output probabilities are used. An image stops evolving as
    soon as its best candidate succeeds, as in the paper."""
    b, c, h, w = images.shape
    generator = torch.Generator(device="cpu").manual_seed(seed)
    device = images.device
    targeted = target is not None
    goal = target if targeted else labels
    low = torch.tensor([0.0, 0.0] + [0.0] * c, device=device)
    high = torch.tensor([w - 1.0, h - 1.0] + [1.0] * c, device=device)

    def random_uniform(*shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=generator).to(device)

    candidates = low + random_uniform(b, population, pixels, 2 + c) * (high - low)  # (B, P, k, 2 + C)
    fitness, answers = _fitness(model, images, candidates, goal, targeted, chunk)
    queries = population
    done = torch.zeros(b, dtype=torch.bool, device=device)
    rows = torch.arange(population, device=device).view(1, population, 1)
    for iteration in range(iterations):
        best = fitness.argmin(1)
        best_answer = answers.gather(1, best[:, None]).squeeze(1)
        done = best_answer == goal if targeted else best_answer != labels
        if bool(done.all()):
            break
        active = (~done).nonzero().squeeze(1)
        # Three distinct partners per candidate, none of them itself: distinct offsets 1..P-1.
        offsets = random_uniform(len(active), population, population - 1).argsort(-1)[..., :3] + 1  # (A, P, 3)
        partners = (rows + offsets) % population
        pool = candidates[active]  # (A, P, k, 2 + C)
        r1, r2, r3 = (pool.gather(1, partners[..., j, None, None].expand_as(pool)) for j in range(3))
        trials = r1 + mutation * (r2 - r3)
        trials = torch.max(torch.min(trials, high), low)
        trial_fitness, trial_answers = _fitness(model, images[active], trials, goal[active], targeted, chunk)
        better = trial_fitness < fitness[active]
        candidates[active] = torch.where(better[..., None, None], trials, pool)
        fitness[active] = torch.where(better, trial_fitness, fitness[active])
        answers[active] = torch.where(better, trial_answers, answers[active])
        queries += population
        if progress is not None:
            progress(iteration + 1, iterations)
    best = fitness.argmin(1)
    winners = candidates[torch.arange(b, device=device), best][:, None]  # (B, 1, k, 2 + C)
    return _result(model, _paint_pixels(images, winners), labels, target, queries)


def perturbation_size(original: torch.Tensor, adversarial: torch.Tensor) -> dict[str, float]:
    """How big the change is, for one image (C, H, W) in [0, 1].

    L0: pixels changed (a pixel counts once even if all its channels changed; changes under half
    a grey level are rounding, not edits). L2: Euclidean length over all values. Linf: the
    largest change of any single value, also in grey levels out of 255."""
    delta = (adversarial - original).float()
    changed = (delta.abs() > 0.5 / 255).any(dim=0)
    linf = float(delta.abs().max())
    return {"L0_pixels": int(changed.sum()), "L2": float(delta.norm()), "Linf": linf, "Linf_grey_levels": round(linf * 255, 1)}

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
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.precision import cpu_has_native_bf16

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
    if device.type == "cpu" and cpu_has_native_bf16():
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


# --- APGD (Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an ensemble of diverse
# parameter-free attacks"): the attacks AutoAttack and RobustBench measure robustness with. -----------------


def apgd_checkpoints(steps: int) -> list[int]:
    """The iterations at which APGD may halve its step size: w_j = ceil(p_j * steps) with p_0 = 0, p_1 = 0.22 and
    p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06) (section 3.2 of the paper)."""
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    return sorted({min(steps, math.ceil(round(pj * steps, 6))) for pj in p[:-1]} - {0})


def dlr_loss(logits: torch.Tensor, labels: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
    """Difference of Logits Ratio, per example (B,); higher means closer to fooling.

    Untargeted: -(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3). Targeted at t: -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2),
    with z_pi the logits sorted from the largest. Dividing by a spread of the logits makes the loss unchanged when
    the logits are scaled or shifted, so a model cannot hide behind tiny gradients of a saturated softmax."""
    z = logits.float()
    ordered = z.sort(dim=1, descending=True).values
    z_y = z.gather(1, labels[:, None]).squeeze(1)
    if target is None:
        others = z.clone()
        others.scatter_(1, labels[:, None], float("-inf"))
        return -(z_y - others.max(1).values) / (ordered[:, 0] - ordered[:, 2] + 1e-12)
    z_t = z.gather(1, target[:, None]).squeeze(1)
    return -(z_y - z_t) / (ordered[:, 0] - (ordered[:, 2] + ordered[:, 3]) / 2 + 1e-12)


def _loss_and_gradient(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, loss: str, target: torch.Tensor | None):
    """(per-example loss (B,), its gradient with respect to x, logits) for APGD's objective (to be maximised)."""
    with torch.enable_grad():
        x = x.detach().clone().requires_grad_(True)
        logits = model(x).float()
        if loss == "ce":
            values = F.cross_entropy(logits, labels.clone(), reduction="none")
        else:
            values = dlr_loss(logits, labels.clone(), None if target is None else target.clone())
        (grad,) = torch.autograd.grad(values.sum(), x)
    return values.detach(), grad, logits.detach()


def apgd(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    eps: float,
    steps: int = 100,
    loss: str = "ce",
    target: torch.Tensor | None = None,
    seed: int = 0,
    rho: float = 0.75,
    momentum: float = 0.75,
) -> AttackResult:
    """Auto-PGD in the L-infinity ball, untargeted (loss "ce" or "dlr") or targeted at `target` (loss "dlr").

    No step size to tune: it starts at 2 eps and is halved, per example, at the checkpoints `apgd_checkpoints` when
    the loss rose in fewer than rho of the steps since the last checkpoint, or when neither the step size nor the best
    loss changed since then; after a halving the walk restarts from the best point so far. Each step mixes the new
    gradient step with the last move (momentum 0.75, Algorithm 1 of the paper). The point kept for each example is
    the first that fools the model, else the one of highest loss."""
    b = len(images)
    images = images.detach()
    goal = labels if target is None else target
    generator = torch.Generator(device="cpu").manual_seed(seed)
    noise = (torch.rand(images.shape, generator=generator) * 2 - 1).to(images.device, images.dtype)
    x = (images + eps * noise).clamp(0, 1)  # a random start inside the ball, as AutoAttack's APGD

    def project(z: torch.Tensor) -> torch.Tensor:
        return torch.min(torch.max(z, images - eps), images + eps).clamp(0, 1)

    def fooled(logits: torch.Tensor) -> torch.Tensor:
        answer = logits.argmax(1)
        return answer == goal if target is not None else answer != labels

    shape = (b,) + (1,) * (images.dim() - 1)
    step = torch.full((b,), 2.0 * eps, device=images.device)
    value, grad, logits = _loss_and_gradient(model, x, labels, loss, target)
    best_value, best_x, found = value.clone(), x.clone(), x.clone()
    done = fooled(logits)
    x_prev = x.clone()
    x = project(x + step.view(shape) * grad.sign())  # the first step has no momentum
    checkpoints = apgd_checkpoints(steps)
    last_checkpoint, rises = 0, torch.zeros(b, device=images.device)
    value_at_checkpoint, step_reduced = best_value.clone(), torch.ones(b, dtype=torch.bool, device=images.device)
    for k in range(1, steps):
        value_new, grad, logits = _loss_and_gradient(model, x, labels, loss, target)
        newly = fooled(logits) & ~done
        found[newly], done = x[newly], done | newly
        rises += (value_new > value).float()
        better = value_new > best_value
        best_value, best_x = torch.where(better, value_new, best_value), torch.where(better.view(shape), x, best_x)
        value = value_new
        if k in checkpoints:
            window = k - last_checkpoint
            halve = (rises < rho * window) | (~step_reduced & (value_at_checkpoint >= best_value))
            step = torch.where(halve, step / 2, step)
            x = torch.where(halve.view(shape), best_x, x)  # restart the halved ones from their best point
            if halve.any():
                value_restart, grad_restart, _ = _loss_and_gradient(model, x, labels, loss, target)
                grad = torch.where(halve.view(shape), grad_restart, grad)
                value = torch.where(halve, value_restart, value)
            step_reduced, value_at_checkpoint = halve, best_value.clone()
            last_checkpoint, rises = k, torch.zeros_like(rises)
        z = project(x + step.view(shape) * grad.sign())
        x, x_prev = project(x + momentum * (z - x) + (1 - momentum) * (x - x_prev)), x
    value_new, _, logits = _loss_and_gradient(model, x, labels, loss, target)
    newly = fooled(logits) & ~done
    found[newly], done = x[newly], done | newly
    better = value_new > best_value
    best_x = torch.where(better.view(shape), x, best_x)
    adversarial = torch.where(done.view(shape), found, best_x)
    return _result(model, adversarial, labels, target, queries=steps + 1)


def worst_case_apgd(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float, steps: int = 100, targets: int = 9, seed: int = 0
) -> torch.Tensor:
    """(B,) bool: still right after APGD-CE and after targeted APGD-DLR at each of the `targets` classes the clean
    image rates highest after the true one (AutoAttack's white-box pair). Later attacks only try the survivors."""
    robust = predict(model, images) == labels
    if robust.any():
        index = robust.nonzero().squeeze(1)
        robust[index] = ~apgd(model, images[index], labels[index], eps, steps, loss="ce", seed=seed).success
    with torch.inference_mode():
        logits = torch.cat([model(images[i : i + 256]).float() for i in range(0, len(images), 256)])
    logits = logits.clone().scatter_(1, labels[:, None], float("-inf"))  # a normal tensor: inference ones are read-only
    ranked = logits.argsort(1, descending=True)  # (B, classes): the most likely wrong classes first
    for rank in range(min(targets, ranked.shape[1] - 1)):
        index = robust.nonzero().squeeze(1)
        if len(index) == 0:
            break
        target = ranked[index, rank]
        result = apgd(model, images[index], labels[index], eps, steps, loss="dlr", target=target, seed=seed + 1 + rank)
        robust[index] = ~(result.predictions != labels[index])
    return robust


# --- The smallest change that fools ------------------------------------------------------------------------


def deepfool(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, steps: int = 50, overshoot: float = 0.02, classes: int | None = None
) -> AttackResult:
    """DeepFool (Moosavi-Dezfooli et al. 2016), L2: a near-minimal change that crosses the decision boundary.

    At each step the model is linearised around the current image; for every other class k the boundary with the
    current answer is the plane w_k . r + f_k = 0 (f_k the logit difference, w_k its gradient), the nearest plane is
    the class with the smallest |f_k| / ||w_k||, and the image moves just onto it. The total move is scaled by
    1 + overshoot so it lands across. An image stops as soon as its answer changes. classes limits the classes
    considered to the most likely ones (all when None)."""
    images = images.detach()
    b = len(images)
    with torch.inference_mode():
        logits0 = model(images).float()
    n = logits0.shape[1] if classes is None else min(classes, logits0.shape[1])
    candidates = logits0.clone().argsort(1, descending=True)[:, :n]  # (B, n): the true label's rivals, likeliest first
    start = labels.clone()
    total = torch.zeros_like(images)
    active = torch.ones(b, dtype=torch.bool, device=images.device)
    used = 0
    for _ in range(steps):
        x = (images + (1 + overshoot) * total).clamp(0, 1)
        index = active.nonzero().squeeze(1)
        if len(index) == 0:
            break
        used += 1
        with torch.enable_grad():
            xi = x[index].clone().requires_grad_(True)
            logits = model(xi).float()
            answer = logits.argmax(1)
            still = answer == start[index]
            gradients = []
            for j in range(n):  # one backward pass per candidate class: (n, A, C, H, W)
                (g,) = torch.autograd.grad(logits.gather(1, candidates[index, j : j + 1]).sum(), xi, retain_graph=j < n - 1)
                gradients.append(g)
        gradients = torch.stack(gradients, 1)  # (A, n, C, H, W)
        own = (candidates[index] == start[index, None]).float()  # which candidate is the original answer
        own_grad = (gradients * own[..., None, None, None]).sum(1, keepdim=True)
        own_logit = logits.gather(1, start[index, None])
        w = gradients - own_grad  # (A, n, C, H, W)
        f = logits.detach().gather(1, candidates[index]) - own_logit.detach()  # (A, n)
        norms = w.flatten(2).norm(dim=2) + 1e-8
        distance = f.abs() / norms
        distance[own.bool()] = float("inf")
        nearest = distance.argmin(1)
        rows = torch.arange(len(index), device=images.device)
        w_l, f_l, norm_l = w[rows, nearest], f[rows, nearest], norms[rows, nearest]
        step = ((f_l.abs() + 1e-4) / norm_l**2).view(-1, *([1] * (images.dim() - 1))) * w_l
        total[index[still]] = total[index[still]] + step[still].detach()
        active[index[~still]] = False
    adversarial = (images + (1 + overshoot) * total).clamp(0, 1)
    return _result(model, adversarial, labels, None, queries=used)


def smallest_pgd_eps(
    model: nn.Module, image: torch.Tensor, label: torch.Tensor, steps: int = 10, high: float = 0.5, rounds: int = 8, seed: int = 0
) -> tuple[float | None, torch.Tensor | None]:
    """The smallest L-infinity budget at which PGD-`steps` fools the model on one image (1, C, H, W) in whole grey
    levels (the image is on the 1/255 grid and so is every budget tried), by bisection between 0 and `high` for at
    most `rounds` rounds (each halves the interval). A budget counts only if the adversarial image, rounded to the
    nearest grey level (which keeps it inside the budget), still fools the model: a real 8-bit picture.

    Returns (that eps, the rounded adversarial image), or (None, None) when even `high` does not fool it."""

    def fools(levels: int) -> torch.Tensor | None:
        eps = levels / 255
        adversarial = pgd(model, image, label, eps, steps=steps, seed=seed).adversarial
        on_grid = (image + torch.round((adversarial - image) * 255) / 255).clamp(0, 1)
        return on_grid if bool(predict(model, on_grid)[0] != label[0]) else None

    low, best = 0, int(high * 255)
    found = fools(best)
    if found is None:
        return None, None
    for _ in range(rounds):
        if best - low <= 1:
            break
        middle = (low + best) // 2
        candidate = fools(middle)
        if candidate is not None:
            best, found = middle, candidate
        else:
            low = middle
    return best / 255, found


# --- Defences people try first, and the adaptive attack that breaks them (Athalye, Carlini and Wagner 2018,
# "Obfuscated gradients give a false sense of security") -----------------------------------------------------


def jpeg_resave(images: torch.Tensor, quality: int = 75) -> torch.Tensor:
    """(B, C, H, W) in [0, 1] -> the same pictures saved as JPEG at `quality` and read back (Pillow; not differentiable)."""
    import io

    import numpy as np
    from PIL import Image

    out = []
    for picture in images.detach().float().cpu():
        array = (picture.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
        im = Image.fromarray(array[..., 0] if array.shape[2] == 1 else array)
        buffer = io.BytesIO()
        im.save(buffer, "JPEG", quality=int(quality))
        back = np.asarray(Image.open(buffer), dtype=np.float32) / 255
        out.append(torch.from_numpy(back.reshape(array.shape)).permute(2, 0, 1))
    return torch.stack(out).to(images.device, images.dtype)


def reduce_bit_depth(images: torch.Tensor, bits: int = 3) -> torch.Tensor:
    """Feature squeezing (Xu et al. 2018): keep `bits` bits per value, 2^bits levels in [0, 1]."""
    levels = 2**bits - 1
    return (images * levels).round() / levels


def median_filter(images: torch.Tensor, size: int = 3) -> torch.Tensor:
    """Spatial smoothing: each value becomes the median of its size x size neighbourhood (reflect padding).
    Differentiable where it matters: the gradient flows to whichever neighbour is the median."""
    pad = size // 2
    padded = F.pad(images, (pad, pad, pad, pad), mode="reflect")
    patches = padded.unfold(2, size, 1).unfold(3, size, 1)  # (B, C, H, W, size, size)
    return patches.reshape(*patches.shape[:4], -1).median(dim=-1).values


DEFENCES: dict[str, Callable[..., torch.Tensor]] = {"jpeg": jpeg_resave, "bitdepth": reduce_bit_depth, "median": median_filter}
DEFENCE_DEFAULTS = {"jpeg": {"quality": 75}, "bitdepth": {"bits": 3}, "median": {"size": 3}}  # the settings measured by default
# Which defences hide their gradient (none at all for a JPEG file; zero almost everywhere for rounding), so the
# adaptive attack uses BPDA through them; the median filter has a usable gradient of its own.
NO_USEFUL_GRADIENT = {"jpeg", "bitdepth"}


class Defended(nn.Module):
    """A classifier behind a defence: model(defence(x)). Its answers are the defended model's answers either way.

    The naive attacker does not know the defence: the attack is made on the bare model, then shown to this module
    ("does saving it as a JPEG undo the attack?"). adaptive=True is the attack an informed attacker runs on this
    module itself. For a defence without a useful gradient (JPEG has none, rounding is flat almost everywhere), BPDA
    (backward-pass differentiable approximation): the forward pass is the real defence, the backward pass treats it as
    the identity. For a random defence (`eot` draws > 1), EOT: the answer is averaged over that many draws, so the
    gradient is the expected one. Without adaptive, a defence with no gradient passes none back."""

    def __init__(self, model: nn.Module, defence: str, adaptive: bool = False, eot: int = 1, **settings):
        super().__init__()
        if defence not in DEFENCES:
            raise ValueError(f"unknown defence {defence!r}; one of {', '.join(DEFENCES)}")
        self.model, self.defence, self.adaptive, self.eot, self.settings = model, defence, adaptive, max(1, eot), settings

    @property
    def config(self):
        """The defended model's config (labels, image size): the defence changes pictures, not what the answers mean."""
        return self.model.config

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        squeeze = DEFENCES[self.defence]
        outputs = []
        for _ in range(self.eot):
            defended = squeeze(images, **self.settings)
            if self.adaptive and self.defence in NO_USEFUL_GRADIENT:
                defended = images + (defended - images).detach()  # BPDA: forward the defence, backward the identity
            outputs.append(self.model(defended))
        return torch.stack(outputs).mean(0)

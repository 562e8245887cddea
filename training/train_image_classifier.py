"""Fine-tune the ImageNet EfficientNet-Lite0 on your own image folder (transfer learning).

    python -m training.train_image_classifier --data path/to/folder --name my-classifier
    python -m training.train_image_classifier --data path/to/folder --unfreeze-blocks 3 --epochs 10
    python -m training.train_image_classifier --data beans --name bean-classifier      # a Hub dataset (online)

The folder holds one sub-folder per class (`<folder>/<class name>/*.jpg`). A seeded 20% of each
class is held out and never trained on; the checkpoint's card reports accuracy on it. With
`--unfreeze-blocks 0` (default) the network is frozen and only a new last layer learns, which takes
about a second per epoch for a few dozen images on a CPU; larger values also retrain the last blocks.
The result is an `EfficientNetLite` checkpoint like `imagenet-classifier`, with your labels.
"""

import copy
import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from data.photos import held_out_split, image_folder, to_model_input
from models import hub
from models.efficientnet_lite import EfficientNetLite
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


@dataclass
class TrainConfig(RunOptions):
    """Fine-tune EfficientNet-Lite0 on an image folder or a Hub image dataset."""

    data: str = opt("", "image folder (<folder>/<class>/*.jpg) or Hub dataset id with 'image' and 'label' columns")
    name: str = opt("custom-image-classifier", "checkpoint name: the folder under checkpoints/ and the Hub repo name")
    unfreeze_blocks: int = opt(0, "how many of the last MBConv blocks (plus the head conv) to retrain; 0 = only the new last layer")
    epochs: int = opt(30, "passes over the training images")
    batch_size: int = opt(32, "images per step")
    lr: float = opt(3e-3, "AdamW learning rate for the new layer (retrained blocks get a tenth)")
    weight_decay: float = opt(1e-3, "AdamW weight decay")
    held_out_fraction: float = opt(0.2, "share of each class held out for the reported accuracy")


def load_images(cfg: TrainConfig) -> tuple[list[np.ndarray], np.ndarray, list[str], str]:
    """(RGB uint8 images, labels, class names, a description of the source)."""
    source = cfg.data or cfg.dataset
    if not source:
        raise SystemExit("Pass --data <image folder or Hub dataset id>.")
    try:
        paths, labels, classes = image_folder(source)
        images = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
        return images, labels, classes, f"image folder `{source}`"
    except (FileNotFoundError, NotADirectoryError):
        import datasets

        ds = datasets.load_dataset(source, split="train")
        classes = ds.features["label"].names
        images = [np.asarray(im.convert("RGB")) for im in ds["image"]]
        return images, np.asarray(ds["label"], dtype=np.int64), classes, f"Hub dataset `{source}` (train split)"


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random mirror and a random 80-100% crop resized back, for a batch (B, 3, H, W)."""
    b, _, h, w = x.shape
    flip = torch.rand(b, generator=generator) < 0.5
    x = torch.where(flip.view(b, 1, 1, 1), x.flip(-1), x)
    scale = 0.8 + 0.2 * torch.rand(1, generator=generator).item()
    ch, cw = int(h * scale), int(w * scale)
    top = int(torch.randint(0, h - ch + 1, (1,), generator=generator))
    left = int(torch.randint(0, w - cw + 1, (1,), generator=generator))
    return F.interpolate(x[:, :, top : top + ch, left : left + cw], size=(h, w), mode="bilinear", align_corners=False)


@torch.inference_mode()
def accuracy(model: EfficientNetLite, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    device = next(model.parameters()).device
    preds = torch.cat([model(x[i : i + 32].to(device)).argmax(-1).cpu() for i in range(0, len(x), 32)])
    return float((preds == y).float().mean())


def card(*, cfg, classes, reopened, source, images, held_idx, metrics, timer, accelerator, out_dir) -> CardInfo:
    """The model card: what the checkpoint is, its data and split, its held-out metrics and how to use it."""
    return CardInfo(
        name=cfg.name,
        title=f"{cfg.name}: EfficientNet-Lite0 fine-tuned on {len(classes)} classes",
        summary=f"EfficientNet-Lite0 with ImageNet weights, {'frozen' if not reopened else f'last {cfg.unfreeze_blocks} blocks retrained'}, and a new last layer for: {', '.join(classes)}.",
        data=f"{source}; {len(images)} images. Backbone weights: `imagenet-classifier` (Apache-2.0).",
        split=f"A seeded {cfg.held_out_fraction:.0%} of each class held out ({len(held_idx)} images) and never trained on; the epoch with the best held-out accuracy is kept, so that number is optimistic.",
        metrics=metrics,
        metric_notes={
            "held_out_accuracy": "share of held-out images classified correctly",
            "n_train": "training images",
            "n_held_out": "held-out images",
        },
        command=command("training.train_image_classifier"),
        wall_time_s=timer.seconds,
        hardware=hardware(accelerator),
        limits="Only as good as the folder it learned from: a few images per class teach a few looks of each class.",
        usage=f'from models.efficientnet_lite import EfficientNetLite\nmodel = EfficientNetLite.from_pretrained("{out_dir}", strict=True)',
        license="apache-2.0",
        tags=["image-classification", "transfer-learning"],
    )


def main(cfg: TrainConfig) -> None:
    timer = Timer()
    accelerator, out_dir = setup(cfg, cfg.name)
    images, labels, classes, source = load_images(cfg)
    epochs = 2 if cfg.dry_run else cfg.epochs
    base = hub.load(EfficientNetLite, "imagenet-classifier")
    model = EfficientNetLite(dataclasses.replace(base.config, labels=list(classes)))
    state = {k: v for k, v in base.state_dict().items() if not k.startswith("classifier.")}
    model.load_state_dict(state, strict=False)  # everything but the new last layer comes from ImageNet

    # 1. Freeze all, then reopen the last `unfreeze_blocks` blocks and the head conv if asked.
    for p in model.parameters():
        p.requires_grad = False
    trainable_blocks = list(model.blocks)[len(model.blocks) - cfg.unfreeze_blocks :] if cfg.unfreeze_blocks > 0 else []
    reopened = [*trainable_blocks, model.head] if trainable_blocks else []
    for module in [*reopened, model.classifier]:
        for p in module.parameters():
            p.requires_grad = True

    train_idx, held_idx = held_out_split(labels, fraction=cfg.held_out_fraction, seed=cfg.seed)
    x = torch.stack([to_model_input(im, model.config.image_size) for im in images])  # (N, 3, 224, 224)
    y = torch.from_numpy(labels)
    groups = [{"params": list(model.classifier.parameters()), "lr": cfg.lr}]
    if reopened:
        groups.append({"params": [p for m in reopened for p in m.parameters()], "lr": cfg.lr / 10})
    optimizer = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    model, optimizer = accelerator.prepare(model, optimizer)
    generator = torch.Generator().manual_seed(cfg.seed)
    history, best_acc, best_state = [], -1.0, None
    for epoch in progress(range(1, epochs + 1), accelerator, desc=cfg.name):
        model.train()
        for module in model.modules():  # frozen batch norms keep their ImageNet statistics
            if isinstance(module, torch.nn.BatchNorm2d) and not any(p.requires_grad for p in module.parameters()):
                module.eval()
        order = train_idx[torch.randperm(len(train_idx), generator=generator).numpy()]
        running = 0.0
        for start in range(0, len(order), cfg.batch_size):
            batch = order[start : start + cfg.batch_size]
            xb = augment(x[batch], generator).to(accelerator.device)
            with accelerator.autocast():
                loss = F.cross_entropy(model(xb).float(), y[batch].to(accelerator.device))
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            optimizer.step()
            running += loss.item() * len(batch)
        unwrapped = accelerator.unwrap_model(model)
        held_acc = accuracy(unwrapped, x[held_idx], y[held_idx]) if len(held_idx) else float("nan")
        history.append({"epoch": epoch, "train_loss": running / len(order), "held_out_accuracy": held_acc})
        accelerator.print(f"epoch {epoch}: train loss {running / len(order):.4f}, held-out accuracy {held_acc:.3f}")
        if held_acc >= best_acc or best_state is None:
            best_acc, best_state = held_acc, copy.deepcopy(unwrapped.state_dict())

    if not accelerator.is_main_process:
        return
    model = accelerator.unwrap_model(model)
    model.load_state_dict(best_state)
    model = model.float().cpu().eval()
    metrics = {"held_out_accuracy": round(best_acc, 4), "n_train": int(len(train_idx)), "n_held_out": int(len(held_idx))}
    model_card = card(
        cfg=cfg,
        classes=classes,
        reopened=reopened,
        source=source,
        images=images,
        held_idx=held_idx,
        metrics=metrics,
        timer=timer,
        accelerator=accelerator,
        out_dir=out_dir,
    )
    save_checkpoint(model, out_dir, model_card, history)
    print(f"saved {out_dir} in {timer.seconds:.0f} s")
    if cfg.push_to_hub:
        print(f"pushed to {push_checkpoint(out_dir, cfg.push_to_hub)}")


if __name__ == "__main__":
    main(parse_config(TrainConfig))

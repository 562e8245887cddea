"""Build the `fabric-features` checkpoint: a memory bank of flawless-fabric patches, no training.

    python -m training.train_fabric_features                 # ~3 min on 2 CPU cores
    python -m training.train_fabric_features --dry-run
    python -m training.train_fabric_features --dataset path/to/mvtec/carpet

EfficientNet-Lite0 (`checkpoints/imagenet-classifier`, frozen) describes every 8 x 8 px patch of
flawless training swatches; a greedy coreset keeps the patches that cover all the others best.
The distances of flawless validation patches to the bank fix the map's scale and the thresholds,
exactly as for the autoencoder (`training.train_fabric_autoencoder.calibrate`), and the test
split is scored with the same `evaluate_detector`.
"""

import shutil
from dataclasses import dataclass

import torch

from data import fabric
from models import hub
from models.efficientnet_lite import EfficientNetLite
from models.fabric_scoring import METRIC_NOTES, calibrate_products, evaluate_detector
from models.patch_memory import PatchMemory, PatchMemoryConfig, build_bank, patch_features
from training.common import CardInfo, RunOptions, Timer, command, hardware, opt, parse_config, push_checkpoint, save_checkpoint, setup

NAME = "fabric-features"


@dataclass
class BuildConfig(RunOptions):
    """Build a nearest-neighbour memory bank of flawless patches on pretrained EfficientNet-Lite0 features."""

    swatches: int = opt(
        96,
        "flawless training swatches per product to take patches from (1,024 patches each at 256 px; fewer lose AUROC on denim first)",
    )
    bank_size: int = opt(16384, "patches per product kept by the greedy coreset")


def card(*, bank_size, memory, cfg, normal, count, metrics, timer, accelerator) -> CardInfo:
    """The model card: what the checkpoint is, its data and split, its held-out metrics and how to use it."""
    return CardInfo(
        name=NAME,
        title="Fabric features: a memory of flawless patches (PatchCore-style defect detector)",
        summary=(
            f"{bank_size:,} patch descriptions per product ({memory.config.feature_dim} numbers each: EfficientNet-Lite0 block outputs at stride 8 and 16, "
            "joined and averaged over 3 x 3 neighbours) chosen by a greedy coreset from flawless swatches. A new patch's anomaly "
            "score is its distance to the nearest remembered patch, on a scale fixed by flawless validation swatches. No training: "
            "the backbone is the shipped `imagenet-classifier`, frozen."
        ),
        data=(
            fabric.PROCEDURAL_DATA + " The backbone learned from ImageNet."
            if not cfg.dataset
            else f"{normal.source} (see its own licence)."
        ),
        split=(
            f"Per product: {count} flawless training swatches fill the bank, {fabric.VAL_COUNT} flawless validation swatches "
            f"calibrate that product's scale and thresholds, and the test split ({fabric.TEST_NORMAL} flawless, "
            f"{fabric.TEST_PER_DEFECT} of each of {len(fabric.DEFECTS)} defect types) is scored once."
        ),
        metrics=metrics,
        metric_notes=METRIC_NOTES,
        command=command("training.train_fabric_features"),
        wall_time_s=timer.seconds,
        hardware=hardware(accelerator),
        limits=(
            "Remembers only the procedural weaves; another cloth needs its own bank (the app's 'Fit to your own fabric' builds one "
            "from 5-50 photos in seconds). Patches are 8 px, so flaws much smaller than that blur into their neighbours."
        ),
        usage=(
            "from models import hub\n"
            "from models.efficientnet_lite import EfficientNetLite\n"
            "from models.patch_memory import PatchMemory\n"
            f'memory = PatchMemory.from_pretrained("checkpoints/{NAME}", strict=True)\n'
            'backbone = hub.load(EfficientNetLite, "imagenet-classifier")\n'
            "product = memory.config.products.index('denim (twill)')\n"
            "heat = memory.anomaly_map(backbone, images, product)  # images: (B, 3, 256, 256) in [0, 1]\n"
            "defective = heat.flatten(1).amax(1) > memory.config.image_threshold[product]"
        ),
        license="apache-2.0",
        tags=["anomaly-detection", "patchcore"],
    )


@torch.inference_mode()
def main(cfg: BuildConfig) -> None:
    timer = Timer()
    accelerator, out_dir = setup(cfg, NAME)
    count, bank_size = (2, 256) if cfg.dry_run else (cfg.swatches, cfg.bank_size)
    normal = fabric.normal_images(cfg.dataset, count, cfg.seed, val_count=3 if cfg.dry_run else fabric.VAL_COUNT)
    backbone = hub.load(EfficientNetLite, "imagenet-classifier").cpu()
    memory = PatchMemory(PatchMemoryConfig(products=normal.products, bank_size=bank_size))
    for product, swatches in enumerate(normal.train):  # one bank per product
        features = []
        for start in range(0, len(swatches), 8):
            x = torch.from_numpy(swatches[start : start + 8]).permute(0, 3, 1, 2).contiguous()
            f = patch_features(backbone, x)
            features.append(f.permute(0, 2, 3, 1).reshape(-1, f.shape[1]))
        features = torch.cat(features)
        accelerator.print(f"{normal.products[product]}: {len(features):,} patches from {len(swatches)} swatches; coreset to {bank_size:,}")
        memory.bank[product].copy_(build_bank(features, bank_size, seed=cfg.seed).half())

    calibration = calibrate_products(lambda x, product: memory.raw_map(backbone, x, product), normal.val)
    for key, value in calibration.items():
        setattr(memory.config, key, value)
    accelerator.print(f"calibration: {calibration}")
    metrics = {}
    if not cfg.dataset:
        counts = (4, 1) if cfg.dry_run else (fabric.TEST_NORMAL, fabric.TEST_PER_DEFECT)
        results = evaluate_detector(
            lambda x, product: memory.anomaly_map(backbone, x, product), memory.config.image_threshold, fabric.SIZE, *counts
        )
        metrics = {k: round(v, 4) for k, v in results.items()}
        accelerator.print(f"test: {metrics}")

    model_card = card(
        bank_size=bank_size, memory=memory, cfg=cfg, normal=normal, count=count, metrics=metrics, timer=timer, accelerator=accelerator
    )
    save_checkpoint(memory, out_dir, model_card, [])
    shutil.rmtree(out_dir / "in-progress", ignore_errors=True)
    accelerator.print(f"saved {out_dir} in {timer.seconds:.0f} s")
    if cfg.push_to_hub:
        accelerator.print(f"pushed to {push_checkpoint(out_dir, cfg.push_to_hub)}")


if __name__ == "__main__":
    main(parse_config(BuildConfig))

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
from models.patch_memory import PatchMemory, PatchMemoryConfig, build_bank, patch_features
from training.common import CardInfo, RunOptions, Timer, command, hardware, opt, parse_config, push_checkpoint, save_checkpoint, setup
from training.train_fabric_autoencoder import TrainConfig as AutoencoderOptions
from training.train_fabric_autoencoder import calibrate, evaluate_detector, maps_for, normal_images

NAME = "fabric-features"


@dataclass
class BuildConfig(RunOptions):
    """Build a nearest-neighbour memory bank of flawless patches on pretrained EfficientNet-Lite0 features."""

    swatches: int = opt(64, "flawless training swatches to take patches from (1,024 patches each at 256 px)")
    bank_size: int = opt(16384, "patches kept by the greedy coreset")


@torch.inference_mode()
def main(cfg: BuildConfig) -> None:
    timer = Timer()
    accelerator, out_dir = setup(cfg, NAME)
    count, bank_size = (4, 256) if cfg.dry_run else (cfg.swatches, cfg.bank_size)
    train_np, val_np, source = normal_images(AutoencoderOptions(dataset=cfg.dataset, seed=cfg.seed), count)
    train_np = train_np[:count]
    if cfg.dry_run:
        val_np = val_np[:6]
    backbone = hub.load(EfficientNetLite, "imagenet-classifier").cpu()
    features = []
    for start in range(0, len(train_np), 8):
        x = torch.from_numpy(train_np[start : start + 8]).permute(0, 3, 1, 2).contiguous()
        f = patch_features(backbone, x)
        features.append(f.permute(0, 2, 3, 1).reshape(-1, f.shape[1]))
    features = torch.cat(features)
    accelerator.print(f"{len(features):,} patches from {len(train_np)} swatches; coreset to {bank_size:,}")
    memory = PatchMemory(PatchMemoryConfig(feature_dim=features.shape[1], bank_size=bank_size))
    memory.bank.copy_(build_bank(features, bank_size, seed=cfg.seed).half())

    calibration = calibrate(maps_for(lambda x: memory.raw_map(backbone, x), val_np))
    for key, value in calibration.items():
        setattr(memory.config, key, value)
    accelerator.print(f"calibration: {calibration}")
    metrics = {}
    if not cfg.dataset:
        counts = (4, 1) if cfg.dry_run else (fabric.TEST_NORMAL, fabric.TEST_PER_DEFECT)
        results = evaluate_detector(lambda x: memory.anomaly_map(backbone, x), memory.config.image_threshold, fabric.SIZE, *counts)
        metrics = {k: round(v, 4) for k, v in results.items()}
        accelerator.print(f"test: {metrics}")

    card = CardInfo(
        name=NAME,
        title="Fabric features: a memory of flawless patches (PatchCore-style defect detector)",
        summary=(
            f"{bank_size:,} patch descriptions ({features.shape[1]} numbers each: EfficientNet-Lite0 block outputs at stride 8 and 16, "
            "joined and averaged over 3 x 3 neighbours) chosen by a greedy coreset from flawless swatches. A new patch's anomaly "
            "score is its distance to the nearest remembered patch, on a scale fixed by flawless validation swatches. No training: "
            "the backbone is the shipped `imagenet-classifier`, frozen."
        ),
        data=(
            "Procedural woven fabric (ours, `data/fabric.py`), flawless only; the backbone learned from ImageNet. Defects exist only "
            "in the test split. Synthetic cloth, cleaner than real photographs."
            if not cfg.dataset
            else f"{source} (see its own licence)."
        ),
        split=(
            f"{len(train_np)} flawless training swatches fill the bank, {len(val_np)} flawless validation swatches calibrate it, "
            f"the test split ({fabric.TEST_NORMAL} flawless, {fabric.TEST_PER_DEFECT} of each of {len(fabric.DEFECTS)} defect types) "
            "is scored once."
        ),
        metrics=metrics,
        metric_notes={
            "image_auroc": "area under the ROC curve of the image score (max of the map), defective vs flawless test swatches",
            "pixel_auroc": "area under the ROC curve of per-pixel scores against the true defect masks (every 4th pixel)",
            "false_positive_rate": "share of flawless test swatches called defective at the calibrated threshold",
            "detection_rate": "share of defective test swatches called defective at the calibrated threshold",
            **{f"image_auroc_{k}": f"image AUROC, {k.replace('_', ' ')} swatches vs flawless ones" for k in fabric.DEFECTS},
        },
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
            "heat = memory.anomaly_map(backbone, images)  # images: (B, 3, 256, 256) in [0, 1]"
        ),
        license="apache-2.0",
        tags=["anomaly-detection", "patchcore"],
    )
    save_checkpoint(memory, out_dir, card, [])
    shutil.rmtree(out_dir / "in-progress", ignore_errors=True)
    accelerator.print(f"saved {out_dir} in {timer.seconds:.0f} s")
    if cfg.push_to_hub:
        accelerator.print(f"pushed to {push_checkpoint(out_dir, cfg.push_to_hub)}")


if __name__ == "__main__":
    main(parse_config(BuildConfig))

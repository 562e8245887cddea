"""Recalibrate the `fabric-autoencoder` without training it: the same weights, a fresh scoring and calibration.

    python -m training.recalibrate_fabric_autoencoder                                      # the shipped checkpoint, in place
    python -m training.recalibrate_fabric_autoencoder --init-from runs/fabric-ae-repair    # another run's weights
    python -m training.recalibrate_fabric_autoencoder --dry-run                            # tiny splits, a temp folder

After a change to the scoring (the map's border, blur or colour error) the weights need not be trained again: this
tunes the map's blur and colour weight on the tuning split, recalibrates each product's scale and thresholds on
flawless validation swatches, scores the test split once, and rewrites the folder and its card, exactly as the end
of a training run does (`training.train_fabric_autoencoder.finish`). The weights keep the training curve they came
with, and the card keeps describing the run that made them.
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from data import fabric
from models.autoencoder import FabricAutoencoder
from models.hub import CHECKPOINTS
from training.common import Timer, opt, parse_config, setup
from training.train_fabric_autoencoder import NAME, ScoringOptions, TrainingRun, finish, validation_loss


@dataclass
class RecalibrateConfig(ScoringOptions):
    """Tune and recalibrate the fabric autoencoder's map without training its weights."""

    init_from: str = opt(str(CHECKPOINTS / NAME), "the checkpoint folder whose weights are kept (the output goes to --out-dir)")
    ssim_weight: float = opt(1.0, "weight of (1 - SSIM) next to L1 in the validation loss reported (as it was trained)")


def training_run(folder: Path, history: list[dict], val_loss: float) -> TrainingRun:
    """The facts about the run that made the weights, from the folder's card (as its training script wrote them)."""
    card = (folder / "README.md").read_text() if (folder / "README.md").is_file() else ""
    pool = re.search(r"Per product: (\d+) flawless training swatches", card)
    steps = re.search(r"best validation loss at step (\d+) of (\d+)", card)
    repair = re.search(r"(\d+)% of its training crops carried", card)
    best = min(history, key=lambda row: row["val_loss"]) if history else {"step": 0}
    return TrainingRun(
        trained_on=int(pool.group(1)) if pool else 0,
        best_loss=val_loss,
        best_step=int(steps.group(1)) if steps else best["step"],
        steps=int(steps.group(2)) if steps else (history[-1]["step"] if history else 0),
        repair_p=int(repair.group(1)) / 100 if repair else 0.0,
    )


def main(cfg: RecalibrateConfig) -> None:
    timer = Timer()
    accelerator, out_dir = setup(cfg, NAME)
    folder = Path(cfg.init_from)
    model = FabricAutoencoder.from_pretrained(folder, strict=True).float().cpu().eval()
    log = folder / "training_log.json"
    history = json.loads(log.read_text()) if log.is_file() else []
    # Calibration needs only the validation swatches: one training swatch per product is read, and never used.
    normal = fabric.normal_images(cfg.dataset, 1, cfg.seed, val_count=3 if cfg.dry_run else fabric.VAL_COUNT)
    val = torch.from_numpy(np.concatenate(normal.val)).permute(0, 3, 1, 2).contiguous()
    run = training_run(folder, history, validation_loss(model, val, cfg.ssim_weight, "cpu"))
    finish(model, cfg, normal, history, run, timer, accelerator, out_dir, module="training.recalibrate_fabric_autoencoder")


if __name__ == "__main__":
    main(parse_config(RecalibrateConfig))

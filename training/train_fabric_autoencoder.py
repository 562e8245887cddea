"""Train the `fabric-autoencoder` checkpoint on flawless fabric only, then calibrate its thresholds.

    python -m training.train_fabric_autoencoder                     # full run, ~25 min on 2 CPU cores
    python -m training.train_fabric_autoencoder --dry-run           # a few steps, into a temp folder
    python -m training.train_fabric_autoencoder --dataset path/to/mvtec/carpet   # MVTec AD layout
    python -m training.train_fabric_autoencoder --init-from checkpoints/fabric-autoencoder --steps 1000 --lr 1e-3 --repair-p 0.5
                  # repair training on top of a trained checkpoint (how the shipped weights were made; see its card)
    python -m training.recalibrate_fabric_autoencoder               # same weights: tune the map and recalibrate again

The network only ever sees flawless swatches (data/fabric.py; defects exist only in the test
split). Loss: L1 plus (1 - SSIM), so it must get both the colours and the weave's structure right.
After training, the error on flawless validation swatches fixes the map's scale (mean and standard
deviation) and the thresholds: the image threshold sits just above the highest score of any
flawless validation swatch, the pixel threshold where flawless pixels exceed it 1 time in 10,000.
Before that, the map's blur and colour weight are chosen on a tuning split of defective swatches
(`tune_scoring`, seeds the test split never uses); the network never trains on it.
The test split (half flawless, half with one of nine defect types) is scored once, at the end.

With --repair-p, a share of the crops carry generic synthetic flaws (`synthetic_flaws`) and the network
learns to paint clean cloth over them; the checkpoint's card says what that bought.

Scoring (`calibrate`, `evaluate_detector`) lives in `models/fabric_scoring.py`, shared with
`training/train_fabric_features.py`, the benchmark and the Fabric tab, so both detectors are judged the same way.
"""

import copy
import shutil
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from data import fabric
from models.autoencoder import AutoencoderConfig, FabricAutoencoder, blur, ssim_map
from models.fabric_scoring import METRIC_NOTES, auroc, calibrate_products, evaluate_detector, image_scores
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

NAME = "fabric-autoencoder"


@dataclass
class ScoringOptions(RunOptions):
    """How the error map is scored; training and recalibration (training.recalibrate_fabric_autoencoder) both take these."""

    border: int = opt(
        12,
        "px along each edge whose own error is left out of calibration and replaced in the map by the nearest inside value (zero padding)",
    )
    smooth_sigma: float = opt(3.0, "px blur of the error map when it is not tuned; the colour weight's unit is measured at it")
    tune_scoring: bool = opt(
        True,
        "choose the map's blur and colour weight on the procedural tuning split (seeds from 30,000,000, never the test split); "
        "off, or with --dataset: --smooth-sigma and the spread ratio",
    )


@dataclass
class TrainConfig(ScoringOptions):
    """Train a convolutional autoencoder on flawless fabric; defects are found where it fails to redraw."""

    steps: int = opt(3000, "optimiser steps")
    batch_size: int = opt(16, "crops per step")
    crop: int = opt(128, "train on random crops of this side (the network is fully convolutional)")
    pool: int = opt(200, "flawless training swatches per product generated up front (crops, flips and quarter turns multiply them)")
    lr: float = opt(2e-3, "peak learning rate of the one-cycle schedule (AdamW)")
    weight_decay: float = opt(1e-4, "AdamW decoupled weight decay")
    ssim_weight: float = opt(1.0, "weight of (1 - SSIM) next to L1")
    channels: list[int] = opt([24, 48, 96, 128], "channels per stride-2 encoder stage")
    latent: int = opt(32, "bottleneck channels (at 1/16 of the side): the squeeze that keeps defects out")
    eval_every: int = opt(250, "steps between validation checks (the lowest validation loss is kept)")
    init_from: str = opt(
        "", "start from this checkpoint folder's weights (recalibrating them without training: training.recalibrate_fabric_autoencoder)"
    )
    repair_p: float = opt(
        0.0,
        "share of training crops given a synthetic flaw (a blob of another crop's texture, a colour field or smeared pixels) that "
        "the network must paint over with clean cloth (0 = plain autoencoder)",
    )


# --- Training --------------------------------------------------------------------------------------


def random_crops(pool: torch.Tensor, batch_size: int, crop: int, generator: torch.Generator) -> torch.Tensor:
    """(N, 3, S, S) uint8 -> (B, 3, crop, crop) float in [0, 1], with random flips and quarter turns."""
    index = torch.randint(len(pool), (batch_size,), generator=generator)
    top, left = torch.randint(0, pool.shape[-1] - crop + 1, (2, batch_size), generator=generator)
    crops = torch.stack([pool[i, :, t : t + crop, s : s + crop] for i, t, s in zip(index, top, left, strict=True)]).float() / 255
    turns = int(torch.randint(4, (1,), generator=generator))
    crops = torch.rot90(crops, turns, dims=(2, 3))
    if bool(torch.rand(1, generator=generator) < 0.5):
        crops = crops.flip(-1)
    return crops


def smooth_blobs(batch_size: int, side: int, generator: torch.Generator) -> torch.Tensor:
    """(B, 1, side, side) masks in [0, 1]: thresholded smooth noise, 2 to ~22% of the crop, soft-edged."""
    cells = int(torch.randint(3, 9, (1,), generator=generator))
    field = F.interpolate(
        torch.randn(batch_size, 1, cells, cells, generator=generator), size=(side, side), mode="bicubic", align_corners=False
    )
    cut = torch.quantile(field.flatten(1), 1 - (0.02 + 0.2 * torch.rand(batch_size, generator=generator)), dim=1, keepdim=False)
    cut = cut.diagonal()[:, None, None, None]  # quantile with per-row q returns (B, B); row i's own q is the diagonal
    return ((field - cut) * 8).clamp(0, 1)


def synthetic_flaws(clean: torch.Tensor, pool: torch.Tensor, share: float, generator: torch.Generator) -> torch.Tensor:
    """Damage a share of the crops (B, 3, S, S) in [0, 1] for repair training (as in DRAEM's reconstructive network).

    The flaws are generic, written here without the test defects' code (data/fabric.py add_defect): inside a
    smooth random blob, either another random crop of the pool (any product, any turn) shows through, or a
    smooth random colour field is blended in, or the pixels are smeared (heavily blurred). The network learns
    to redraw flawless cloth in their place, so a real flaw it has never seen is also painted over, and the
    reconstruction error marks it more clearly."""
    b, _, side, _ = clean.shape
    damaged = clean.clone()
    chosen = torch.rand(b, generator=generator) < share
    if not chosen.any():
        return damaged
    n = int(chosen.sum())
    mask = smooth_blobs(n, side, generator) * (0.5 + 0.5 * torch.rand(n, 1, 1, 1, generator=generator))
    kind = torch.randint(3, (n,), generator=generator)
    foreign = random_crops(pool, n, side, generator)
    colour = torch.rand(n, 3, 1, 1, generator=generator) + 0.25 * F.interpolate(
        torch.randn(n, 3, 4, 4, generator=generator), size=(side, side), mode="bilinear", align_corners=False
    )
    smear = blur(clean[chosen].reshape(n * 3, 1, side, side), 4.0).reshape(n, 3, side, side)
    fill = torch.where((kind == 0)[:, None, None, None], foreign, torch.where((kind == 1)[:, None, None, None], colour.clamp(0, 1), smear))
    damaged[chosen] = clean[chosen] * (1 - mask) + fill * mask
    return damaged


@torch.inference_mode()
def colour_weight_for(model: FabricAutoencoder, val: list[np.ndarray]) -> float:
    """The ratio of the structural error's spread to the colour error's on every flawless validation swatch:
    the weight that lets both count alike in the map."""
    structural, colour = [], []
    for images in val:
        for start in range(0, len(images), 8):
            x = torch.from_numpy(images[start : start + 8]).permute(0, 3, 1, 2).contiguous()
            s, c = model.error_parts(x, model(x))
            structural.append(model.interior(s).flatten())
            colour.append(model.interior(c).flatten())
    return float(torch.cat(structural).std() / torch.cat(colour).std())


TUNE_SIGMAS = (3.0, 4.0, 5.0, 6.0, 7.0)  # px
TUNE_COLOUR_SHARES = (0.25, 0.5, 0.75, 1.0)  # of the spread ratio (colour_weight_for)


@torch.inference_mode()
def tune_scoring(
    model: FabricAutoencoder, spread_ratio: float, normal: int, per_defect: int, size: int = fabric.SIZE
) -> tuple[dict, list[dict]]:
    """(best row, table): every (smooth_sigma, colour_weight) pair with its mean pixel and image AUROC on the tuning
    split; the best has the highest sum of the two.

    A wider blur lets the map cover a flaw's whole area (pixel AUROC up) but also lifts flawless weave's noisiest
    spots (image AUROC down); the colour error finds stains but is noisy on satin. The trade-off is measured on
    swatches the test split never shares. The colour weights tried are shares of `spread_ratio` (colour_weight_for);
    AUROC needs no standardisation (it is the same within a product)."""
    ratio = spread_ratio
    sets = []
    for product in range(len(fabric.PRODUCTS)):
        images, masks, kinds = fabric.tuning_set(product, size, normal, per_defect)
        x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
        sets.append(
            (x, torch.cat([model(x[i : i + 8]) for i in range(0, len(x), 8)]), torch.from_numpy(masks), np.asarray(kinds) != "normal")
        )
    table = []
    for sigma in TUNE_SIGMAS:
        parts = [model.error_parts(x, reconstruction, sigma) for x, reconstruction, _, _ in sets]
        for share in TUNE_COLOUR_SHARES:
            pixel, image = [], []
            for (structural, colour), (_, _, masks, defective) in zip(parts, sets, strict=True):
                maps = model.fill_border(structural + share * ratio * colour)[:, 0]
                pixel.append(auroc(maps[:, ::2, ::2], masks[:, ::2, ::2]))
                image.append(auroc(image_scores(maps), torch.from_numpy(defective)))
            table.append(
                {
                    "smooth_sigma": sigma,
                    "colour_weight": share * ratio,
                    "pixel_auroc": float(np.mean(pixel)),
                    "image_auroc": float(np.mean(image)),
                }
            )
    return max(table, key=lambda row: row["pixel_auroc"] + row["image_auroc"]), table


def loss_of(net: FabricAutoencoder, x: torch.Tensor, ssim_weight: float, seen_input: torch.Tensor | None = None) -> torch.Tensor:
    """Reconstruction loss against the clean x; the network sees seen_input (x with synthetic flaws) when given."""
    reconstruction = net(x if seen_input is None else seen_input).float()
    return (reconstruction - x).abs().mean() + ssim_weight * (1 - ssim_map(x, reconstruction)).mean()


@torch.inference_mode()
def validation_loss(net: FabricAutoencoder, val: torch.Tensor, ssim_weight: float, device) -> float:
    """The training loss on whole flawless validation swatches (N, 3, H, W), 8 at a time: it chooses the checkpoint."""
    return float(np.mean([loss_of(net, val[i : i + 8].to(device), ssim_weight).item() for i in range(0, len(val), 8)]))


def main(cfg: TrainConfig) -> None:
    timer = Timer()
    accelerator, out_dir = setup(cfg, NAME)
    if cfg.steps < 1:
        raise SystemExit(
            "--steps must be at least 1; to recalibrate without training, run python -m training.recalibrate_fabric_autoencoder"
        )
    steps, pool_size = (min(cfg.steps, 6), 4) if cfg.dry_run else (cfg.steps, cfg.pool)
    if cfg.dry_run:
        cfg.eval_every, cfg.batch_size = 3, 4
    normal = fabric.normal_images(cfg.dataset, pool_size, cfg.seed, val_count=3 if cfg.dry_run else fabric.VAL_COUNT)
    train_np, val_np = np.concatenate(normal.train), np.concatenate(normal.val)  # every product in one pool
    pool = torch.from_numpy((train_np * 255).round().astype(np.uint8)).permute(0, 3, 1, 2).contiguous()
    val = torch.from_numpy(val_np).permute(0, 3, 1, 2).contiguous()

    if cfg.init_from:
        model = FabricAutoencoder.from_pretrained(cfg.init_from, strict=True)
    else:
        model = FabricAutoencoder(AutoencoderConfig(channels=list(cfg.channels), latent=cfg.latent))
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=max(1, steps), pct_start=0.1)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    generator = torch.Generator().manual_seed(cfg.seed)

    history, best_loss, best_step, best_state, running, seen = [], float("inf"), 0, None, 0.0, 0
    for step in progress(range(1, steps + 1), accelerator, desc=NAME):
        model.train()
        clean = random_crops(pool, cfg.batch_size, cfg.crop, generator)
        damaged = synthetic_flaws(clean, pool, cfg.repair_p, generator) if cfg.repair_p > 0 else clean
        x, shown = (t.to(accelerator.device).contiguous(memory_format=torch.channels_last) for t in (clean, damaged))
        with accelerator.autocast():
            loss = loss_of(model, x, cfg.ssim_weight, shown)
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        optimizer.step()
        scheduler.step()
        running, seen = running + loss.item(), seen + 1
        if step % cfg.eval_every == 0 or step == steps:
            unwrapped = accelerator.unwrap_model(model).eval()
            val_loss = validation_loss(unwrapped, val, cfg.ssim_weight, accelerator.device)
            history.append({"step": step, "train_loss": running / seen, "val_loss": val_loss, "lr": scheduler.get_last_lr()[0]})
            accelerator.print(f"step {step}: train loss {running / seen:.4f}, val loss (flawless, whole swatches) {val_loss:.4f}")
            running, seen = 0.0, 0
            if val_loss <= best_loss:
                best_loss, best_step, best_state = val_loss, step, copy.deepcopy(unwrapped.state_dict())
                if not cfg.dry_run and accelerator.is_main_process:
                    unwrapped.save_pretrained(out_dir / "in-progress")

    if not accelerator.is_main_process:
        return
    model = accelerator.unwrap_model(model)
    model.load_state_dict(best_state)
    model = model.float().cpu().eval().to(memory_format=torch.contiguous_format)
    run = TrainingRun(trained_on=pool_size, best_loss=best_loss, best_step=best_step, steps=steps, repair_p=cfg.repair_p)
    finish(model, cfg, normal, history, run, timer, accelerator, out_dir, module="training.train_fabric_autoencoder")


@dataclass
class TrainingRun:
    """What the card says about the run that made the weights (recalibration keeps it as it was)."""

    trained_on: int  # flawless training swatches per product
    best_loss: float  # flawless validation loss of the kept weights
    best_step: int
    steps: int
    repair_p: float  # share of training crops that carried a synthetic flaw


def finish(
    model: FabricAutoencoder,
    cfg: ScoringOptions,
    normal: fabric.NormalImages,
    history: list[dict],
    run: TrainingRun,
    timer,
    accelerator,
    out_dir,
    module: str,
) -> None:
    """Everything after the weights are fixed, shared by training and recalibration: the map's scoring settings
    (tuned on the tuning split), the per-product calibration on flawless validation swatches, one score on the test
    split, and the checkpoint folder with its card."""
    model.config.border, model.config.smooth_sigma = cfg.border, cfg.smooth_sigma
    spread_ratio = colour_weight_for(model, normal.val)
    model.config.colour_weight = spread_ratio  # used as it is when the scoring is not tuned
    tuned = None
    if cfg.tune_scoring and not cfg.dataset:
        counts = (3, 1, 128) if cfg.dry_run else (fabric.TUNE_NORMAL, fabric.TUNE_PER_DEFECT)
        tuned, table = tune_scoring(model, spread_ratio, *counts)
        for row in table:
            accelerator.print("tuning split: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()))
        model.config.smooth_sigma, model.config.colour_weight = tuned["smooth_sigma"], tuned["colour_weight"]
    calibration = calibrate_products(lambda x, product: model.calibration_error(x), normal.val)
    model.config.products = normal.products
    for key, value in calibration.items():
        setattr(model.config, key, value)
    accelerator.print(
        f"calibration on {sum(len(v) for v in normal.val)} flawless validation swatches: colour weight "
        f"{model.config.colour_weight:.3f}, {calibration}"
    )
    metrics = {}
    if not cfg.dataset:
        counts = (4, 1) if cfg.dry_run else (fabric.TEST_NORMAL, fabric.TEST_PER_DEFECT)
        results = evaluate_detector(lambda x, p: model.anomaly_map(x, p)[1], model.config.image_threshold, fabric.SIZE, *counts)
        metrics = {k: round(v, 4) for k, v in results.items()}
        accelerator.print(f"test: {metrics}")
    metrics["val_loss"] = round(run.best_loss, 4)
    if tuned:
        metrics |= {"tuning_pixel_auroc": round(tuned["pixel_auroc"], 4), "tuning_image_auroc": round(tuned["image_auroc"], 4)}
    model_card = card(
        model=model, cfg=cfg, normal=normal, run=run, tuned=tuned, metrics=metrics, timer=timer, accelerator=accelerator, module=module
    )
    save_checkpoint(model, out_dir, model_card, history)
    shutil.rmtree(out_dir / "in-progress", ignore_errors=True)
    accelerator.print(f"saved {out_dir} in {timer.seconds:.0f} s")
    if cfg.push_to_hub:
        accelerator.print(f"pushed to {push_checkpoint(out_dir, cfg.push_to_hub)}")


def card(*, model, cfg, normal, run, tuned, metrics, timer, accelerator, module) -> CardInfo:
    """The model card: what the checkpoint is, its data and split, its held-out metrics and how to use it."""
    n_params = sum(p.numel() for p in model.parameters())
    return CardInfo(
        name=NAME,
        title="Fabric autoencoder: finds defects it was never shown",
        summary=(
            f"A convolutional autoencoder ({n_params / 1e3:.0f}k parameters; encoder {model.config.channels} channels at stride 2, a "
            f"{model.config.latent}-channel bottleneck at 1/16 of the side, an upsample-then-convolve decoder). Trained only on flawless "
            "fabric with L1 + (1 - SSIM); the error between a swatch and its reconstruction (structural: L1 and SSIM; plus "
            "colour: the blurred RGB difference, weighted to the same spread), on a scale fixed by flawless validation swatches, "
            f"is the defect map; in a {cfg.border} px band along the edges it repeats the nearest inside value (zero padding there "
            "makes even flawless cloth look wrong). Thresholds are calibrated and stored in config.json."
            + (
                f" The map's blur ({model.config.smooth_sigma:g} px) and colour weight ({model.config.colour_weight:.3f}) were chosen "
                f"from {len(TUNE_SIGMAS) * len(TUNE_COLOUR_SHARES)} pairs on a tuning split of defective swatches (seeds from "
                "30,000,000; the test split was not looked at) for the best mean of pixel and image AUROC."
                if tuned
                else ""
            )
            + (
                f" {run.repair_p:.0%} of its training crops carried a generic synthetic flaw (another crop's texture, a colour field or "
                "smeared pixels inside a smooth blob; not the test defects' code) that it had to paint over with clean cloth."
                if run.repair_p > 0
                else ""
            )
        ),
        data=fabric.PROCEDURAL_DATA if not cfg.dataset else f"{normal.source} (see its own licence).",
        split=(
            f"Per product: {run.trained_on} flawless training swatches (seeds from 0), {fabric.VAL_COUNT} flawless validation swatches "
            "(seeds from 10,000,000) that pick the checkpoint and calibrate that product's scale and thresholds, and a test split "
            f"(seeds from 20,000,000) of {fabric.TEST_NORMAL} flawless swatches and {fabric.TEST_PER_DEFECT} of each of the "
            f"{len(fabric.DEFECTS)} defect types, scored once at the end (best validation loss at step {run.best_step} of "
            f"{run.steps})."
        ),
        metrics=metrics,
        metric_notes={
            **METRIC_NOTES,
            "val_loss": "L1 + (1 - SSIM) on flawless validation swatches, used to choose the checkpoint",
            "tuning_pixel_auroc": "pixel AUROC on the tuning split with the chosen blur and colour weight (it chose them: not a test result)",
            "tuning_image_auroc": "image AUROC on the tuning split, likewise",
        },
        command=command(module),
        wall_time_s=timer.seconds,
        hardware=hardware(accelerator),
        limits=(
            "Knows only the procedural weaves it was trained on: a real photo of a different cloth (or anything that is not cloth) "
            "looks defective everywhere. Fit it to your own fabric first (the app's 'Fit to your own fabric', or retrain with "
            "--dataset). A plain autoencoder is a weak detector on real textures (pixel AUROC about 0.7-0.8 on MVTec AD); "
            "the feature-memory detector is the strong baseline."
        ),
        usage=(
            "import torch\n"
            "from models.autoencoder import FabricAutoencoder\n"
            f'model = FabricAutoencoder.from_pretrained("checkpoints/{NAME}", strict=True)\n'
            "product = model.config.products.index('denim (twill)')\n"
            "reconstruction, heat = model.anomaly_map(images, product)  # images: (B, 3, 256, 256) in [0, 1]\n"
            "defective = heat.flatten(1).amax(1) > model.config.image_threshold[product]"
        ),
        tags=["anomaly-detection", "autoencoder"],
    )


if __name__ == "__main__":
    main(parse_config(TrainConfig))

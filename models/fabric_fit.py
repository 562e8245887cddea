"""Fit both fabric detectors to one visitor's own cloth, in a few seconds, from a few flawless photos.

The features detector needs no training: its memory is refilled with the visitor's patches (a greedy coreset, as
PatchCore does; Roth et al. 2022). The autoencoder starts from the shipped weights and fine-tunes on random crops of
the photos for a fixed time budget. Both are then calibrated (models.fabric_scoring.calibrate) on photos held back
from fitting, so their scale and thresholds describe this cloth and not the procedural fabric they shipped with.
"""

import copy
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from models.autoencoder import FabricAutoencoder, ssim_map
from models.efficientnet_lite import EfficientNetLite
from models.fabric_scoring import calibrate
from models.patch_memory import PatchMemory, build_bank, patch_features

OWN_CLOTH = "your own fabric"


@dataclass
class FitSettings:
    seconds: float = 35.0  # fine-tuning budget; the autoencoder stops at this or max_steps, whichever comes first
    max_steps: int = 400  # a cap for fast machines: more steps on a few photos would start to memorise them
    bank_size: int = 4096  # patches the fitted memory keeps: a quarter of the shipped bank, enough for one cloth, quick to search
    lr: float = 5e-4  # a quarter of the training run's peak: nudge the shipped weights, do not retrain them
    batch_size: int = 8  # crops per step: half the training batch, so a step stays short on a CPU
    crop: int = 128  # the side of the crops the autoencoder was trained on
    ssim_weight: float = 1.0  # the training loss: L1 + (1 - SSIM), as train_fabric_autoencoder
    held_share: float = 0.2  # photos held back to calibrate (at least 2), never fitted on
    seed: int = 0


@dataclass
class FittedDetectors:
    autoencoder: FabricAutoencoder
    memory: PatchMemory
    n_train: int
    n_held: int
    steps: int  # autoencoder fine-tuning steps taken


def describe_own_cloth(config, calibration: dict[str, float]) -> None:
    """Make a fitted detector's config describe one product, the visitor's cloth, with this calibration."""
    config.products = [OWN_CLOTH]
    for key, value in calibration.items():
        setattr(config, key, [value])


def fit_memory(base: PatchMemory, backbone: EfficientNetLite, train: torch.Tensor, held: torch.Tensor, bank_size: int) -> PatchMemory:
    """A new one-product memory of `train`'s patches ((N, 3, H, W) in [0, 1]), calibrated on `held`. `base` is not changed."""
    with torch.inference_mode():
        feats = patch_features(backbone, train)  # (N, D, h, w)
    feats = feats.permute(0, 2, 3, 1).reshape(-1, feats.shape[1])
    size = min(bank_size, len(feats))
    memory = PatchMemory(dataclasses.replace(base.config, products=[OWN_CLOTH], bank_size=size))
    memory.bank[0].copy_(build_bank(feats, size).half())
    with torch.inference_mode():
        raw = memory.raw_map(backbone, held)[:, 0]
    describe_own_cloth(memory.config, calibrate(raw))
    return memory


def finetune_autoencoder(
    base: FabricAutoencoder,
    train: torch.Tensor,
    held: torch.Tensor,
    settings: FitSettings,
    generator: torch.Generator,
    started: float,
    on_step: Callable[[int], None] | None = None,
) -> tuple[FabricAutoencoder, int]:
    """A CPU copy of `base` fine-tuned on random crops of `train` until settings.seconds after `started`
    (time.perf_counter) or settings.max_steps, then calibrated on `held`; returns (model, steps). `base` is not changed."""
    net = copy.deepcopy(base).cpu().train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=settings.lr)
    side = train.shape[-1]
    steps = 0
    while time.perf_counter() < started + settings.seconds and steps < settings.max_steps:
        index = torch.randint(len(train), (settings.batch_size,), generator=generator)
        top, left = (int(v) for v in torch.randint(0, side - settings.crop + 1, (2,), generator=generator))
        crops = train[index, :, top : top + settings.crop, left : left + settings.crop]
        reconstruction = net(crops)
        loss = (reconstruction - crops).abs().mean() + settings.ssim_weight * (1 - ssim_map(crops, reconstruction)).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        steps += 1
        if on_step is not None:
            on_step(steps)
    net.eval()
    with torch.inference_mode():
        raw = net.calibration_error(held)[:, 0]
    describe_own_cloth(net.config, calibrate(raw))
    return net, steps


def fit_detectors(
    autoencoder: FabricAutoencoder,
    memory: PatchMemory,
    backbone: EfficientNetLite,
    swatches: torch.Tensor,
    settings: FitSettings,
    progress: Callable[..., None] = lambda fraction, desc: None,
) -> FittedDetectors:
    """Both detectors fitted to `swatches` ((N, 3, H, W) flawless photos in [0, 1]); the shipped ones are not changed.
    A seeded shuffle holds settings.held_share of the photos back (at least 2) to calibrate; the rest are fitted on.
    progress(fraction, desc) hears how far it has come."""
    started = time.perf_counter()
    generator = torch.Generator().manual_seed(settings.seed)  # one stream: the shuffle, then every crop
    n_hold = max(2, int(len(swatches) * settings.held_share))
    order = torch.randperm(len(swatches), generator=generator)
    held, train = swatches[order[:n_hold]], swatches[order[n_hold:]]
    progress(0.1, desc="Remembering flawless patches")
    fitted_memory = fit_memory(memory, backbone, train, held, settings.bank_size)
    progress(0.3, desc="Fine-tuning the autoencoder")

    def on_step(step: int) -> None:
        done = min(1.0, (time.perf_counter() - started) / settings.seconds)
        progress(0.3 + 0.6 * done, desc=f"Fine-tuning the autoencoder (step {step})")

    net, steps = finetune_autoencoder(autoencoder, train, held, settings, generator, started, on_step)
    return FittedDetectors(net, fitted_memory, len(train), len(held), steps)

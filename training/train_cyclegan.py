"""Train the `horse2zebra` checkpoint: a CycleGAN between procedural horses and zebras.

    python -m training.train_cyclegan --mixed-precision bf16        # about an hour on 2 CPU cores
    python -m training.train_cyclegan --dry-run                     # a few steps, into a temp folder
    accelerate launch -m training.train_cyclegan --dataset <folder with trainA/trainB, or a Hub id> --image-size 256

Four networks train together, one horse and one zebra per step, never a matching pair:
G (horse -> zebra) and F (zebra -> horse) against D_zebra and D_horse. Each step:

1. Generators: fool both discriminators (least-squares GAN loss), come back to the start after a
   round trip (cycle loss: F(G(horse)) = horse, G(F(zebra)) = zebra), and leave a picture that is
   already in the target domain alone (identity loss: G(zebra) = zebra; it keeps colours honest).
2. Discriminators: score real pictures 1 and generated ones 0. The fakes come from a pool of the
   last 50 generated pictures half of the time, so the discriminators do not chase the generators'
   latest trick only (Shrivastava et al. 2017).

The learning rate stays flat for the first half and falls linearly to zero over the second, as in
the original recipe. Every `report_every` steps a fixed set of held-out animals is translated (the
training history the tab shows; `<out>/in-progress/samples_step_*.png` to watch while it runs) and
the networks are saved to `<out>/in-progress`, so a run that dies can go on with `--resume`.
"""

import json
import math
import random
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from data.horses import animals, hub_pair, image_folder_pair
from models import hub
from models.cyclegan import CycleGANConfig, CycleGenerators, PatchDiscriminator, evaluate, judge_reference, translate
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

NAME = "horse2zebra"


@dataclass
class TrainConfig(RunOptions):
    """Train a CycleGAN between two unpaired picture domains (procedural horses and zebras by default)."""

    steps: int = opt(7000, "training steps of one horse and one zebra each (about 0.45 s each on 2 cores with bf16)")
    image_size: int = opt(128, "training crop size; pictures are made (or resized) 1/8 larger and cropped at random")
    train_images: int = opt(1000, "procedural pictures per domain to train on")
    base_channels: int = opt(32, "generator width (the reference uses 64; 32 keeps 256 px under 150 ms on 2 cores)")
    residual_blocks: int = opt(6, "residual blocks in each generator (the reference uses 6 at 128 px, 9 at 256 px)")
    lr: float = opt(2e-4, "Adam learning rate, flat for the first half, then linearly to zero")
    lambda_cycle: float = opt(10.0, "weight of the round-trip (cycle) L1 loss against the GAN loss")
    lambda_identity: float = opt(0.5, "weight of the identity loss, as a share of lambda_cycle")
    pool_size: int = opt(50, "generated pictures each discriminator may be shown again")
    report_every: int = opt(500, "translate the fixed held-out animals and save the networks every this many steps")
    eval_images: int = opt(300, "held-out animals per domain the final evaluation translates and judges")
    resume: bool = opt(False, "continue from <out>/in-progress (weights and step; the Adam moments start fresh)")
    evaluate_only: bool = opt(False, "train nothing: judge the finished checkpoint in --out-dir again and rewrite its card")


@dataclass
class TrainingRun:
    """What the card says about the run that made the weights (kept when --evaluate-only judges them again)."""

    seconds: float
    command: str
    hardware: str


class ImagePool:
    """The last `size` generated pictures; half the time the discriminator sees an old one instead."""

    def __init__(self, size: int, rng: random.Random):
        self.size, self.rng, self.images = size, rng, []

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        image = image.detach()
        if self.size == 0:
            return image
        if len(self.images) < self.size:
            self.images.append(image)
            return image
        if self.rng.random() < 0.5:
            k = self.rng.randrange(self.size)
            old, self.images[k] = self.images[k], image
            return old
        return image


def load_domains(cfg: TrainConfig, split: str, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(horses, zebras), each (N, 3, S, S) uint8 with S = image_size * 9 / 8 for training crops."""
    size = cfg.image_size + cfg.image_size // 8 if split == "train" else cfg.image_size
    if not cfg.dataset:
        horses, zebras = animals("horse", split, count, size), animals("zebra", split, count, size)
    elif Path(cfg.dataset).is_dir():
        horses, zebras = image_folder_pair(cfg.dataset, split, size)
    else:
        horses, zebras = hub_pair(cfg.dataset, split, size)
    return (torch.from_numpy(x).permute(0, 3, 1, 2).contiguous() for x in (horses, zebras))


def random_crop_flip(images: torch.Tensor, size: int, rng: torch.Generator) -> torch.Tensor:
    """One random size x size crop of one random picture, mirrored half the time -> (1, 3, size, size) in [-1, 1]."""
    n, _, s, _ = images.shape
    k, top, left = (int(torch.randint(0, m, (1,), generator=rng)) for m in (n, s - size + 1, s - size + 1))
    crop = images[k : k + 1, :, top : top + size, left : left + size].float() / 127.5 - 1
    return crop.flip(-1) if torch.rand(1, generator=rng) < 0.5 else crop


def triptychs(generators: CycleGenerators, horses: np.ndarray) -> np.ndarray:
    """(N, H, 3W, 3) uint8: input | translated | reconstructed, per horse."""
    zebras = translate(generators, horses, "horse_to_zebra")
    back = translate(generators, zebras, "zebra_to_horse")
    return np.concatenate([horses, zebras, back], axis=2)


def main(cfg: TrainConfig) -> None:
    timer = Timer()
    accelerator, out_dir = setup(cfg, NAME)
    if cfg.evaluate_only:
        old_card = (out_dir / "README.md").read_text()
        run = TrainingRun(
            seconds=float(re.search(r"Wall time: (\d+) s", old_card).group(1)),
            command=re.search(r"## Training\n\n```bash\n(.*?)\n```", old_card).group(1),
            hardware=re.search(r"- Hardware: (.*)", old_card).group(1),
        )
        history = json.loads((out_dir / "training_log.json").read_text())
        finish(CycleGenerators.from_pretrained(str(out_dir), strict=True).eval(), cfg, out_dir, run, history)
        return
    steps, train_count = cfg.steps, cfg.train_images
    if cfg.dry_run:
        steps, train_count = 6, 8
        cfg.report_every = 3
    accelerator.print(f"making {train_count} training pictures per domain ...")
    train_horses, train_zebras = load_domains(cfg, "train", train_count)
    sample_horses = animals("horse", "val", 4, cfg.image_size) if not cfg.dataset else None  # the fixed history row

    config = CycleGANConfig(
        base_channels=cfg.base_channels,
        residual_blocks=cfg.residual_blocks,
        image_size=cfg.image_size,
        training_data=cfg.dataset or "procedural",
    )
    generators = CycleGenerators(config)
    d_horse, d_zebra = PatchDiscriminator(cfg.base_channels), PatchDiscriminator(cfg.base_channels)
    start_step = 0
    if cfg.resume and (out_dir / "in-progress" / "state.json").is_file():
        saved = out_dir / "in-progress"
        generators.load_state_dict(load_file(str(saved / "model.safetensors")))
        d_horse.load_state_dict(load_file(str(saved / "d_horse.safetensors")))
        d_zebra.load_state_dict(load_file(str(saved / "d_zebra.safetensors")))
        start_step = json.loads((saved / "state.json").read_text())["step"]
        accelerator.print(f"resuming at step {start_step}")
    opt_g = torch.optim.Adam(generators.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam([*d_horse.parameters(), *d_zebra.parameters()], lr=cfg.lr, betas=(0.5, 0.999))

    def lr_factor(step: int) -> float:
        return min(1.0, 2 * (1 - step / steps))  # flat, then linearly to 0 over the second half

    # Each generator is prepared on its own: under `accelerate launch` every forward must go through
    # the wrapped (synchronised) module, and each uses all of its weights in every step.
    to_zebra, to_horse, d_horse, d_zebra, opt_g, opt_d = accelerator.prepare(
        generators.horse_to_zebra, generators.zebra_to_horse, d_horse, d_zebra, opt_g, opt_d
    )
    device = accelerator.device
    rng = torch.Generator().manual_seed(cfg.seed)
    pool_horse, pool_zebra = ImagePool(cfg.pool_size, random.Random(cfg.seed)), ImagePool(cfg.pool_size, random.Random(cfg.seed + 1))
    lambda_id = cfg.lambda_identity * cfg.lambda_cycle

    history, frames, frame_steps = [], [], []
    sums: dict[str, float] = {}
    for step in progress(range(start_step, steps), accelerator, desc=NAME, initial=start_step, total=steps):
        for group in (*opt_g.param_groups, *opt_d.param_groups):
            group["lr"] = cfg.lr * lr_factor(step)
        horse = random_crop_flip(train_horses, cfg.image_size, rng).to(device)  # (1, 3, S, S) in [-1, 1]
        zebra = random_crop_flip(train_zebras, cfg.image_size, rng).to(device)

        # 1. Generators: fool the discriminators, survive the round trip, leave the target domain alone.
        with accelerator.autocast():
            fake_zebra = to_zebra(horse)
            fake_horse = to_horse(zebra)
            loss_gan = ((d_zebra(fake_zebra) - 1) ** 2).mean() + ((d_horse(fake_horse) - 1) ** 2).mean()
            loss_cycle = (to_horse(fake_zebra) - horse).abs().mean() + (to_zebra(fake_horse) - zebra).abs().mean()
            loss_identity = (to_zebra(zebra) - zebra).abs().mean() + (to_horse(horse) - horse).abs().mean()
            loss_g = loss_gan + cfg.lambda_cycle * loss_cycle + lambda_id * loss_identity
        opt_g.zero_grad(set_to_none=True)
        accelerator.backward(loss_g)
        opt_g.step()

        # 2. Discriminators: real -> 1, generated (fresh or from the pool) -> 0; halved, as in the paper,
        #    so they learn a little slower than the generators.
        with accelerator.autocast():
            old_zebra, old_horse = pool_zebra(fake_zebra), pool_horse(fake_horse)
            loss_d_zebra = 0.5 * (((d_zebra(zebra) - 1) ** 2).mean() + (d_zebra(old_zebra) ** 2).mean())
            loss_d_horse = 0.5 * (((d_horse(horse) - 1) ** 2).mean() + (d_horse(old_horse) ** 2).mean())
            loss_d = loss_d_zebra + loss_d_horse
        opt_d.zero_grad(set_to_none=True)
        accelerator.backward(loss_d)
        opt_d.step()

        for key, value in (("loss_gan", loss_gan), ("loss_cycle", loss_cycle), ("loss_identity", loss_identity), ("loss_d", loss_d)):
            sums[key] = sums.get(key, 0.0) + float(value)
        done = step + 1
        if done % cfg.report_every == 0 or done == steps:
            n = done - (history[-1]["step"] if history else start_step)
            history.append({"step": done, "lr": cfg.lr * lr_factor(step), **{k: round(v / n, 5) for k, v in sums.items()}})
            sums = {}
            accelerator.print(
                f"step {done}: GAN {history[-1]['loss_gan']:.3f}, cycle {history[-1]['loss_cycle']:.3f}, D {history[-1]['loss_d']:.3f}"
            )
            if accelerator.is_main_process:
                saved = out_dir / "in-progress"
                saved.mkdir(parents=True, exist_ok=True)
                generators.eval()
                if sample_horses is not None:
                    frames.append(translate(generators, sample_horses, "horse_to_zebra"))
                    frame_steps.append(done)
                    # A grid to watch while it trains: the four validation horses above what they have become.
                    grid = np.concatenate([np.concatenate(list(sample_horses), axis=1), np.concatenate(list(frames[-1]), axis=1)])
                    Image.fromarray(grid).save(saved / f"samples_step_{done:06d}.png")
                generators.train()
                save_file(generators.state_dict(), str(saved / "model.safetensors"))
                save_file(accelerator.unwrap_model(d_horse).state_dict(), str(saved / "d_horse.safetensors"))
                save_file(accelerator.unwrap_model(d_zebra).state_dict(), str(saved / "d_zebra.safetensors"))
                (saved / "state.json").write_text(json.dumps({"step": done, "config": asdict(config)}))

    if not accelerator.is_main_process:
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    if frames:
        # The training history: the same 4 validation horses translated at each report step, (frames, 4, S, S, 3) uint8.
        save_file(
            {"frames": torch.from_numpy(np.stack(frames)), "inputs": torch.from_numpy(sample_horses)},
            str(out_dir / "training_frames.safetensors"),
            metadata={"steps": ",".join(str(s) for s in frame_steps)},
        )
    finish(
        generators.cpu().eval(),
        cfg,
        out_dir,
        TrainingRun(timer.seconds, command("training.train_cyclegan"), hardware(accelerator)),
        history,
    )
    shutil.rmtree(out_dir / "in-progress", ignore_errors=True)
    print(f"saved {out_dir} in {timer.seconds:.0f} s ({math.ceil(timer.seconds / 60)} min)")
    if cfg.push_to_hub:
        print(f"pushed to {push_checkpoint(out_dir, cfg.push_to_hub)}")


def card(*, params, cfg, data_line, train_count, eval_count, metrics, run) -> CardInfo:
    """The model card: what the checkpoint is, its data and split, its held-out metrics and how to use it."""
    return CardInfo(
        name=NAME,
        title="Horse to zebra: a CycleGAN trained on unpaired pictures",
        summary=(
            f"Two generators ({params / 1e6:.2f}M parameters each: a ResNet generator with {cfg.base_channels} base channels, "
            f"{cfg.residual_blocks} residual blocks, instance norm, upsample-then-convolve) translate horses into zebras and back. "
            "They learned from unpaired pictures against two PatchGAN discriminators (least-squares loss), held together by a cycle loss "
            "(horse -> zebra -> horse must give the same horse) and an identity loss. Only the generators ship."
        ),
        data=data_line,
        split=(
            f"Training: {train_count} pictures per domain (seeds from 0; zebras from 500,000, so no horse has a zebra twin). "
            f"Test: {eval_count} held-out pictures per domain (seeds from 2,000,000). The judge is our ImageNet classifier "
            "(EfficientNet-Lite0, trained on real photos), which never took part in training."
        ),
        metrics=metrics,
        metric_notes={
            "zebra_rate_real": "held-out procedural zebras with ImageNet class 340 'zebra' in the judge's top-5",
            "horse_rate_real": "held-out procedural horses with class 339 'sorrel' in the judge's top-5",
            "zebra_rate_before": "held-out horses with 'zebra' in the top-5, before translation",
            "zebra_rate_after": "the same horses after horse -> zebra",
            "horse_rate_after": "held-out zebras after zebra -> horse, with 'sorrel' in the top-5",
            "zebra_rate_of_zebras_to_horses": "held-out zebras after zebra -> horse that still have 'zebra' in the top-5",
            "fid_effnet": "Fréchet distance on the judge's pooled features: translated horses vs held-out zebras",
            "fid_effnet_baseline": "the same distance for untranslated horses vs zebras",
            "cycle_l1": "mean |round trip - input| in [0, 1] pixel units, averaged over both directions",
            "cycle_l1_horse": "horse -> zebra -> horse",
            "cycle_l1_zebra": "zebra -> horse -> zebra",
        },
        command=run.command,
        wall_time_s=run.seconds,
        hardware=run.hardware,
        limits=(
            "It learned from procedural pictures with one body shape, side views and simple backgrounds, so on real photos it changes little "
            "or paints stripes in odd places: the classic 'it changed nothing' complaint, for the same reason (inputs unlike the training data). "
            f"It was trained at {cfg.image_size} px; it runs on any size whose sides are multiples of 4, and works best when the animal fills "
            "a similar share of the picture. Train it on the real horse2zebra with `--dataset` for photos."
        ),
        usage=(
            "import torch\nfrom models.cyclegan import CycleGenerators\n"
            f'generators = CycleGenerators.from_pretrained("checkpoints/{NAME}", strict=True)\n'
            f"horses = torch.rand(1, 3, {cfg.image_size}, {cfg.image_size})  # (B, 3, H, W) in [0, 1], H and W multiples of 4\n"
            'zebras = generators(horses, "horse_to_zebra")\nback = generators(zebras, "zebra_to_horse")'
        ),
        tags=["cyclegan", "image-to-image", "gan"],
        datasets=[cfg.dataset] if cfg.dataset and not Path(cfg.dataset).is_dir() else [],  # never claim a dataset it did not see
        extra=(
            "\n## Samples\n\n`triptychs.png`: held-out horses (left), translated (middle), translated back (right).\n\n"
            "![triptychs](triptychs.png)\n\n## Training history\n\n`training_frames.safetensors` holds four validation horses "
            "translated at every report step (steps in its metadata); `training_log.json` has the losses.\n"
        ),
    )


def finish(generators: CycleGenerators, cfg: TrainConfig, out_dir: Path, run: TrainingRun, history: list[dict]) -> None:
    """Judge the generators on the test split and write the checkpoint folder: weights, card, metrics, samples."""
    eval_count = 8 if cfg.dry_run else cfg.eval_images
    judge = hub.load(EfficientNetLite, "imagenet-classifier").cpu()
    if cfg.dataset:
        test_horses, test_zebras = (x.permute(0, 2, 3, 1).numpy() for x in load_domains(cfg, "test", eval_count))
        ref_horses, ref_zebras = (x[:200].permute(0, 2, 3, 1).numpy() for x in load_domains(cfg, "train", 200))
    else:
        test_horses, test_zebras = (animals(d, "test", eval_count, cfg.image_size) for d in ("horse", "zebra"))
        ref_horses, ref_zebras = (animals(d, "val", min(eval_count, 100), cfg.image_size) for d in ("horse", "zebra"))
    metrics = {k: round(v, 4) for k, v in evaluate(generators, judge, test_horses, test_zebras).items()}
    print(f"metrics: {metrics}")
    save_file(judge_reference(judge, ref_horses, ref_zebras), str(out_dir / "judge_reference.safetensors"))
    Image.fromarray(np.concatenate(list(triptychs(generators, test_horses[:4])), axis=0)).save(out_dir / "triptychs.png")
    train_count = 8 if cfg.dry_run else cfg.train_images
    params = sum(p.numel() for p in generators.horse_to_zebra.parameters())
    data_line = (
        f"`{cfg.dataset}` (domain A = horses, domain B = zebras)."
        if cfg.dataset
        else "**Procedural pictures, not photos** (`data/horses.py`): no horse or zebra photos exist offline, so both domains are painted "
        "from the horse silhouette bundled with scikit-image (public domain), posed, warped, shaded and placed on grass, savanna, gravel or dirt "
        "under a sky. Horses wear bay, chestnut, grey, black, palomino or white coats; zebras wear body-following stripes."
    )
    model_card = card(params=params, cfg=cfg, data_line=data_line, train_count=train_count, eval_count=eval_count, metrics=metrics, run=run)
    save_checkpoint(generators, out_dir, model_card, history)


if __name__ == "__main__":
    main(parse_config(TrainConfig))

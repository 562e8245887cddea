"""Digit GAN tab: a generator draws the digit you ask for; morph one digit into another; replay its training.

Trace: digit, seed, count -> `models.dcgan.DigitGenerator` (noise from the seed) -> a grid of digits;
the critic is `discriminator.safetensors` beside it (`models.dcgan.critic_p_real`), asked about the grid, about real
test digits and about your drawing; the training history is `training_frames.safetensors` + `training_log.json`.
"""

import functools
import io
import json

import gradio as gr
import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageDraw, ImageFont
from safetensors import safe_open

from apps.common import (
    LIGHT_LANE,
    cache_file,
    check_number,
    drawing_file,
    drawing_pad,
    image_file,
    link_choice,
    link_number,
    load_model,
    on_gpu,
    on_link,
    open_image,
    read_link,
    share_link,
    to_gray,
    upscale,
)
from data.mnist import load_splits, sketch_to_mnist
from models import hub
from models.dcgan import DISCRIMINATOR_FILE, DigitGenerator, critic_p_real, load_discriminator

TITLE = "Digit GAN"
CHECKPOINT = "digit-gan"
MAX_SAMPLES = 256
DIGIT_CHOICES = ["any"] + [str(d) for d in range(10)]
INTRO = """
### Two networks play a game, and one learns to draw
A **generative adversarial network (GAN)** is two networks trained against each other. The **generator** turns random
numbers (and the digit you ask for) into a picture. The **discriminator** sees real handwritten digits and the generator's
pictures and tries to tell them apart. Each training step, the discriminator gets better at spotting fakes, and the generator
changes its weights to fool the improved discriminator. Starting from noise, after some epochs the generator draws digits
nobody wrote. Ask for one below, see what the **critic** (the discriminator, which ships too) thinks of each drawing, of
real digits and of yours, morph one digit into another, or scrub through its training.
"""


def model() -> DigitGenerator:
    return load_model(hub.load, DigitGenerator, CHECKPOINT)


def parse_digit(digit) -> int | None:
    """ "any" -> None (a random digit per sample), "7" or 7 -> 7, anything else -> gr.Error."""
    if digit is None or str(digit).strip().lower() in {"", "any"}:
        return None
    value = check_number(digit, "Digit", 0, 9, integer=True)
    return int(value)


def grid_image(images: torch.Tensor, columns: int, scale: int = 3, gap: int = 2) -> np.ndarray:
    """(N, 1, 28, 28) in [0, 1] -> one uint8 picture, `columns` wide, each digit `scale` times larger."""
    pics = (images[:, 0].clamp(0, 1) * 255).round().byte().cpu().numpy()
    n, h, w = pics.shape
    rows = -(-n // columns)
    grid = np.full((rows * (h + gap) - gap, columns * (w + gap) - gap), 40, np.uint8)
    for i in range(n):
        r, c = divmod(i, columns)
        grid[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = pics[i]
    return np.kron(grid, np.ones((scale, scale), np.uint8))


@on_gpu
@torch.inference_mode()
def generate_digits(digit="any", seed=0, count=64) -> np.ndarray:
    """Draw handwritten-looking digits with a GAN's generator; the same digit, seed and count give the same picture.

    Args:
        digit: "any" or "0" to "9".
        seed: random seed, 0 to 2147483647.
        count: how many digits, 1 to 256.
    Returns:
        A grid of the generated digits."""
    images, _ = generated(digit, seed, count)
    return grid_image(images, columns=min(len(images), 16))


@torch.inference_mode()
def generated(digit, seed, count) -> tuple[torch.Tensor, torch.Tensor]:
    """(images (count, 1, 28, 28) in [0, 1], labels (count,)) for the settings, checked."""
    label = parse_digit(digit)
    seed = int(check_number(seed, "Seed", 0, 2**31 - 1, integer=True))
    count = int(check_number(count, "Number of digits", 1, MAX_SAMPLES, integer=True))
    net = model()
    device = next(net.parameters()).device
    z = net.noise(count, seed).to(device)
    if label is None:  # "any": labels drawn from the same seed, so the grid is repeatable too
        labels = torch.randint(0, 10, (count,), generator=torch.Generator().manual_seed(seed + 1)).to(device)
    else:
        labels = torch.full((count,), label, device=device)
    return net(z, labels), labels


# --- The critic: the discriminator the generator was trained against -------------------------------


def critic():
    return load_model(hub.load_companion, load_discriminator, CHECKPOINT, DISCRIMINATOR_FILE)


def verdicts(images: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """(N,) the critic's P(real) for pictures (N, 1, 28, 28) in [0, 1] and the digits they claim to be."""
    net = critic()
    device = net.real_variety.device
    with torch.inference_mode():
        return critic_p_real(net, images.to(device), labels.to(device)).float().cpu().numpy()


@functools.cache
def real_test_digits() -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """The 1,000 test digits the GAN never saw: (images (N, 1, 28, 28), labels (N,), the critic's P(real) of each)."""
    splits = load_splits()
    images = torch.from_numpy(splits.test_x).float().div(255).unsqueeze(1)
    labels = torch.from_numpy(splits.test_y).long()
    return images, labels, verdicts(images, labels)


def share_of_real_below(p_real: float, digit: int) -> float:
    """The share of real test digits of class `digit` that the critic finds less real than p_real."""
    _, labels, p = real_test_digits()
    return float((p[labels.numpy() == digit] < p_real).mean())


_FONT = ImageFont.load_default(13)


def verdict_grid(images: torch.Tensor, p_real: np.ndarray, columns: int, scale: int = 3) -> np.ndarray:
    """(H, W, 3) uint8: each digit with the critic's P(real) written under it, on a bar from red (0, "generated") to
    green (1, "real")."""
    side, gap, text = 28 * scale, 4, 16
    n = len(images)
    rows = -(-n // columns)
    pics = (images[:, 0].clamp(0, 1) * 255).round().byte().cpu().numpy()
    canvas = Image.new("RGB", (columns * (side + gap) + gap, rows * (side + text + gap) + gap), (250, 250, 250))
    draw = ImageDraw.Draw(canvas)
    for i in range(n):
        r, c = divmod(i, columns)
        x, y = gap + c * (side + gap), gap + r * (side + text + gap)
        canvas.paste(Image.fromarray(pics[i]).resize((side, side), Image.Resampling.NEAREST), (x, y))
        p = float(p_real[i])
        bar = (int(220 * (1 - p) + 22 * p), int(38 * (1 - p) + 163 * p), int(38 * (1 - p) + 74 * p))  # red -> green
        draw.rectangle((x, y + side, x + side - 1, y + side + text - 1), fill=bar)
        draw.text((x + side / 2, y + side + text / 2), f"{p:.2f}", fill="white", font=_FONT, anchor="mm")
    return np.asarray(canvas)


@on_gpu
@torch.inference_mode()
def critic_on_grid(digit="any", seed=0, count=64) -> tuple[np.ndarray, np.ndarray, str]:
    """Ask the GAN's critic (its discriminator) how real the generated digits and real test digits look.

    Args:
        digit: "any" or "0" to "9".
        seed: random seed of the generated grid, 0 to 2147483647.
        count: how many digits, 1 to 256.
    Returns:
        P(real) under each generated digit, the same for as many real test digits, and a sentence with both means."""
    images, labels = generated(digit, seed, count)
    fake_p = verdicts(images, labels)
    real_images, real_labels, real_p = real_test_digits()
    label = parse_digit(digit)
    picks = torch.arange(len(real_labels)) if label is None else torch.nonzero(real_labels == label).flatten()
    picks = picks[: len(images)]
    columns = min(len(images), 16)
    what = "test digits" if label is None else f"test {label}s"
    note = (
        f"**The critic's verdict**, P(real) = sigmoid(its score): generated, mean **{fake_p.mean():.2f}**; "
        f"{len(picks)} real {what} it never saw, mean **{real_p[picks.numpy()].mean():.2f}**. "
        "At the end of a balanced GAN game the critic can barely tell them apart, which is what the generator played for; "
        "read the numbers as a ranking (a hinge-loss critic is not calibrated)."
    )
    return verdict_grid(images, fake_p, columns), verdict_grid(real_images[picks], real_p[picks.numpy()], columns), note


@on_gpu
@torch.inference_mode()
def judge_drawing(image, digit=7) -> tuple[dict[str, float], np.ndarray, str]:
    """Does the GAN's critic believe your digit is a real handwritten one?

    Args:
        image: a picture of one digit (a drawing, photo or file).
        digit: the digit it is meant to be, 0 to 9.
    Returns:
        {"real": P(real), "generated": 1 - P(real)}, the 28x28 picture the critic saw, and how it ranks among real test digits."""
    label = parse_digit(digit)
    if label is None:
        raise gr.Error("Say which digit your picture is meant to be (0-9): the critic judges 'a real 7', not just 'a real digit'.")
    gray = to_gray(open_image(image, "a picture of a digit"))
    try:
        picture = sketch_to_mnist(gray)
    except ValueError:
        raise gr.Error("No digit found in the picture: it looks blank. Draw a digit first.", title="No digit found") from None
    p = float(verdicts(torch.from_numpy(picture)[None, None], torch.tensor([label]))[0])
    below = share_of_real_below(p, label)
    sentence = (
        f"The critic gives your {label} **P(real) = {p:.2f}**: more real-looking than **{below:.0%}** of the real test {label}s "
        "(handwritten by people, never seen in training)."
    )
    return {"real": p, "generated": 1 - p}, upscale(picture, 6), sentence


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between noise vectors (B, D): stays where Gaussian noise lives, unlike a straight line."""
    a_n, b_n = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    omega = torch.acos((a_n * b_n).sum(-1, keepdim=True).clamp(-1 + 1e-6, 1 - 1e-6))
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


@on_gpu
@torch.inference_mode()
def interpolate_digits(from_digit=3, from_seed=0, to_digit=8, to_seed=1, steps=10) -> tuple[np.ndarray, str]:
    """Morph one generated digit into another by walking the GAN's latent space.

    Args:
        from_digit: the starting digit, 0 to 9.
        from_seed: the starting seed, 0 to 2147483647.
        to_digit: the final digit, 0 to 9.
        to_seed: the final seed, 0 to 2147483647.
        steps: pictures along the way, 2 to 64.
    Returns:
        A strip of the pictures, and an animated GIF of the morph."""
    a_digit, b_digit = parse_digit(from_digit), parse_digit(to_digit)
    if a_digit is None or b_digit is None:
        raise gr.Error("Pick a digit (0-9) at both ends of the morph.")
    a_seed = int(check_number(from_seed, "Start seed", 0, 2**31 - 1, integer=True))
    b_seed = int(check_number(to_seed, "End seed", 0, 2**31 - 1, integer=True))
    steps = int(check_number(steps, "Steps", 2, 64, integer=True))
    net = model()
    device = next(net.parameters()).device
    t = torch.linspace(0, 1, steps).view(-1, 1).to(device)  # (steps, 1)
    z = slerp(net.noise(1, a_seed).to(device).expand(steps, -1), net.noise(1, b_seed).to(device).expand(steps, -1), t)
    vec = net.label_embedding(torch.tensor([a_digit, b_digit], device=device))  # (2, latent)
    class_vectors = (1 - t) * vec[0] + t * vec[1]  # the label slides from one digit's vector to the other's
    images = net.from_class_vectors(z, class_vectors)
    frames = [Image.fromarray(grid_image(images[i : i + 1], 1, scale=6)) for i in range(steps)]
    frames += frames[::-1][1:-1]  # there and back again, so the GIF loops smoothly
    gif = image_file(frames[0], f"morph_{a_digit}_{b_digit}.gif", save_all=True, append_images=frames[1:], duration=120, loop=0)
    return grid_image(images, columns=steps), gif


# --- Training history ---------------------------------------------------------------------------


@functools.cache
def history() -> tuple[np.ndarray, list[int], list[float]] | None:
    """(frames (F, 100, 28, 28) uint8, steps, epochs) from the checkpoint, or None."""
    path = hub.checkpoint_file(CHECKPOINT, "training_frames.safetensors")
    if path is None:
        return None
    with safe_open(str(path), framework="np") as f:
        frames = f.get_tensor("frames")
        meta = f.metadata()
    return frames, [int(s) for s in meta["steps"].split(",")], [float(e) for e in meta["epochs"].split(",")]


@functools.cache
def history_verdicts() -> dict[str, list[float]] | None:
    """The critic's mean P(real) at each snapshot, on 100 fixed real training digits and on the snapshot's grid
    ({"real": [...], "generated": [...]}), or None for a checkpoint trained before they were recorded."""
    path = hub.checkpoint_file(CHECKPOINT, "training_frames.safetensors")
    if path is None:
        return None
    with safe_open(str(path), framework="np") as f:
        meta = f.metadata()
    if "p_real_real" not in meta:
        return None
    return {
        "real": [float(v) for v in meta["p_real_real"].split(",")],
        "generated": [float(v) for v in meta["p_real_generated"].split(",")],
    }


def critic_curves() -> pd.DataFrame | None:
    h, v = history(), history_verdicts()
    if h is None or v is None:
        return None
    rows = [{"epoch": e, "P(real)": v[kind][i], "pictures": f"{kind} digits"} for kind in v for i, e in enumerate(h[2])]
    return pd.DataFrame(rows)


def history_frame(index=0) -> tuple[np.ndarray | None, str]:
    """The fixed 10 x 10 grid (rows: digits 0-9) as it looked at snapshot `index`."""
    h = history()
    if h is None:
        return None, "No training history in this checkpoint."
    frames, steps, epochs = h
    index = int(check_number(index, "Snapshot", 0, len(frames) - 1, integer=True))
    images = torch.from_numpy(frames[index]).float().div(255).unsqueeze(1)
    caption = (
        f"Snapshot {index + 1} of {len(frames)}: training step {steps[index]:,} (epoch {epochs[index]:.2f}). Row k asks for the digit k."
    )
    if (v := history_verdicts()) is not None:
        caption += (
            f" The critic at that moment: P(real) **{v['generated'][index]:.2f}** for this grid, "
            f"**{v['real'][index]:.2f}** for 100 real training digits."
        )
    return grid_image(images, columns=10, scale=2), caption


def history_gif() -> str | None:
    """Every snapshot as one animated GIF in Gradio's cache (its bytes are made once per process; the file is written
    again whenever delete_cache has removed it)."""
    data = history_gif_bytes()
    return None if data is None else cache_file(data, "digit_gan_training.gif")


@functools.cache
def history_gif_bytes() -> bytes | None:
    h = history()
    if h is None:
        return None
    frames = [Image.fromarray(history_frame(i)[0]) for i in range(len(h[0]))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:] + [frames[-1]] * 4, duration=250, loop=0)
    return buffer.getvalue()


def loss_curves() -> pd.DataFrame | None:
    path = hub.checkpoint_file(CHECKPOINT, "training_log.json")
    if path is None:
        return None
    rows = []
    for e in json.loads(path.read_text()):
        rows.append({"epoch": e["epoch"], "value": e["loss_d"], "curve": "discriminator loss"})
        rows.append({"epoch": e["epoch"], "value": e["loss_g"], "curve": "generator loss"})
    return pd.DataFrame(rows)


def metrics_markdown() -> str:
    path = hub.checkpoint_file(CHECKPOINT, "metrics.json")
    if path is None:
        return ""
    m = json.loads(path.read_text())
    critic_line = (
        f" The critic's mean P(real): **{m['critic_p_real_on_real']:.2f}** on 1,000 real test digits, "
        f"**{m['critic_p_real_on_generated']:.2f}** on 1,000 generated ones."
        if "critic_p_real_on_real" in m
        else ""
    )
    return (
        f"**How good are the drawings?** Our digit classifier reads **{m['class_accuracy']:.1%}** of 10,000 generated digits as the digit "
        f"that was asked for. Fréchet distance to real test digits, on the classifier's features: **{m['fid_digits']:.2f}** "
        f"(real training digits vs. test digits: {m['fid_real_baseline']:.2f}). Variety: **{m['diversity']:.2f}** x that of real digits."
        + critic_line
    )


LINK = __name__.rsplit(".", 1)[-1]
LINK_READERS = {
    "digit": link_choice(DIGIT_CHOICES),
    "seed": link_number("Seed", 0, 2**31 - 1, integer=True),
    "count": link_number("How many", 1, MAX_SAMPLES, integer=True),
}


def open_link(digit, seed, count, request: gr.Request):
    """A page opened on a link to this tab: its settings, and the grid and the critic's verdicts drawn at once (cheap)."""
    link = read_link(request, LINK, LINK_READERS, {"digit": digit, "seed": seed, "count": count})
    if link is None:
        return (gr.skip(),) * 7
    settings = (link["digit"], link["seed"], link["count"])
    return (*settings, generate_digits(*settings), *critic_on_grid(*settings))


def build() -> None:
    """The Digit GAN tab's components and events, inside the current gr.Tab."""
    gr.Markdown(INTRO)
    gr.Markdown(metrics_markdown())
    with gr.Row():
        with gr.Column(scale=1, min_width=240):
            digit = gr.Dropdown(DIGIT_CHOICES, value="any", label="Digit")
            seed = gr.Number(value=0, precision=0, minimum=0, label="Seed (same seed, same drawings)")
            count = gr.Slider(1, MAX_SAMPLES, value=64, step=1, label="How many")
            draw = gr.Button("Draw", variant="primary", elem_id="gan-draw")
            share_link(LINK, {"digit": digit, "seed": seed, "count": count})
        grid = gr.Image(label="Generated digits", type="numpy", buttons=["download"], elem_id="gan-grid", scale=2, format="png")
    with gr.Accordion("The critic: what does the discriminator think?", open=True):
        gr.Markdown(
            "The discriminator learned to score real digits high and generated ones low. Press **Draw** and it judges each digit "
            "above, beside as many real test digits. Or draw your own and ask: does the critic believe your 7?"
        )
        critic_note = gr.Markdown(elem_id="gan-critic-note")
        with gr.Row():
            fake_verdicts = gr.Image(
                label="Generated: P(real) under each", type="numpy", buttons=[], format="png", elem_id="gan-critic-fake"
            )
            real_verdicts = gr.Image(
                label="Real test digits: P(real) under each", type="numpy", buttons=[], format="png", elem_id="gan-critic-real"
            )
        with gr.Row():
            with gr.Column():
                sketch = drawing_pad("Draw a digit", 280, 280, 18, elem_id="gan-sketch")
                claimed = gr.Dropdown(DIGIT_CHOICES[1:], value="7", label="It is meant to be")
                ask = gr.Button("Ask the critic", elem_id="gan-ask-critic")
            with gr.Column():
                verdict = gr.Label(label="The critic's verdict", elem_id="gan-critic-verdict")
                verdict_note = gr.Markdown(elem_id="gan-critic-sentence")
                seen = gr.Image(label="What the critic saw (28 x 28)", type="numpy", buttons=[], format="png", height=180)
    with gr.Accordion("Morph one digit into another", open=False):
        with gr.Row():
            from_digit = gr.Dropdown(DIGIT_CHOICES[1:], value="3", label="From digit")
            from_seed = gr.Number(value=0, precision=0, minimum=0, label="From seed")
            to_digit = gr.Dropdown(DIGIT_CHOICES[1:], value="8", label="To digit")
            to_seed = gr.Number(value=1, precision=0, minimum=0, label="To seed")
            steps = gr.Slider(2, 24, value=10, step=1, label="Steps")
        morph = gr.Button("Morph")
        strip = gr.Image(label="The path through the generator's noise space", type="numpy", buttons=["download"], format="png")
        gif = gr.File(label="Animated GIF")
    with gr.Accordion("Training history: from noise to digits", open=True):
        h = history()
        n_frames = len(h[0]) if h else 1
        with gr.Row():
            with gr.Column():
                snapshot = gr.Slider(0, n_frames - 1, value=n_frames - 1, step=1, label="Snapshot", elem_id="gan-snapshot")
                first_frame, first_caption = history_frame(n_frames - 1) if h else (None, "")
                frame = gr.Image(
                    first_frame,
                    label="The same noise, drawn as training went on",
                    type="numpy",
                    buttons=[],
                    format="png",
                    elem_id="gan-frame",
                )
                caption = gr.Markdown(first_caption)
            with gr.Column():
                curves = loss_curves()
                if curves is not None:
                    gr.LinePlot(
                        curves,
                        x="epoch",
                        y="value",
                        color="curve",
                        title="Losses (hinge): the two networks push against each other",
                        height=300,
                    )
                critic_history = critic_curves()
                if critic_history is not None:
                    gr.LinePlot(
                        critic_history,
                        x="epoch",
                        y="P(real)",
                        color="pictures",
                        title="The critic's mean P(real) at each snapshot",
                        height=260,
                        elem_id="gan-critic-history",
                    )
                history_button = gr.Button("Make a GIF of the whole history")
                history_file = gr.File(label="Training history GIF")

    drawn = draw.click(generate_digits, [digit, seed, count], grid, api_name="generate_digits", preprocess=False, **LIGHT_LANE)
    drawn.success(
        critic_on_grid,
        [digit, seed, count],
        [fake_verdicts, real_verdicts, critic_note],
        api_name="critic_on_grid",
        preprocess=False,
        **LIGHT_LANE,
    )
    on_link(open_link, [digit, seed, count], [digit, seed, count, grid, fake_verdicts, real_verdicts, critic_note])
    # The drawing goes to the critic as a plain picture, so /judge_drawing takes any image file from a client too.
    drawing = gr.Image(type="filepath", visible=False)
    asked = ask.click(drawing_file, sketch, drawing, api_visibility="private", **LIGHT_LANE)
    asked.success(
        judge_drawing, [drawing, claimed], [verdict, seen, verdict_note], api_name="judge_drawing", preprocess=False, **LIGHT_LANE
    )
    morph.click(
        interpolate_digits,
        [from_digit, from_seed, to_digit, to_seed, steps],
        [strip, gif],
        api_name="interpolate_digits",
        preprocess=False,
        **LIGHT_LANE,
    )
    snapshot.change(history_frame, snapshot, [frame, caption], api_visibility="private", show_progress="hidden", trigger_mode="always_last")
    history_button.click(history_gif, None, history_file, api_visibility="private")

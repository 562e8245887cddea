"""Digits tab: draw or upload a digit; a small CNN says which one it is, and shows what it saw.

Trace: upload -> `apps.common.open_image` -> `data.mnist.sketch_to_mnist` -> `models.digit_classifier`
-> top-3 probabilities, the 28x28 input and the first layer's activations.
"""

import json
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
import torch

from apps.common import LIGHT_LANE, drawing_pad, load_model, on_gpu, open_image, to_gray, upscale
from data.mnist import sketch_to_mnist
from models import hub
from models.digit_classifier import DigitClassifier

TITLE = "Digits"
CHECKPOINT = "digit-classifier"
EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples" / "digits"
INTRO = """
### A convolutional network reads your handwriting
A **convolutional neural network (CNN)** slides small 3x3 filters over the picture to find strokes, corners and loops,
shrinks the picture with max-pooling, and finally votes for one of the ten digits.
It learned by looking at 3,500 real handwritten MNIST digits, each one randomly bent, tilted and re-inked every pass,
and nudging its filters after every mistake (gradient descent). Draw a digit below, or upload a photo of one.
"""


def model() -> DigitClassifier:
    return load_model(hub.load, DigitClassifier, CHECKPOINT)


def prepare_digit(gray: np.ndarray) -> np.ndarray:
    """A greyscale picture of one digit (H, W) in [0, 1] -> the (28, 28) float image the network reads."""
    c = model().config
    try:
        return sketch_to_mnist(gray, c.image_size, c.box_size, c.ink_threshold, c.min_stroke_fraction)
    except ValueError:
        raise gr.Error(
            "No digit found in the picture: it looks blank. Draw a digit with dark ink on a light background, or the other way round.",
            title="No digit found",
        ) from None


def activation_grid(maps: torch.Tensor, columns: int = 8, gap: int = 1) -> np.ndarray:
    """(C, H, W) feature maps -> one (rows*(H+gap), columns*(W+gap)) float image in [0, 1].

    Scaled by the largest value in the whole layer, not map by map, so a quiet filter looks quiet."""
    maps = maps.float().clamp(min=0).cpu().numpy()
    maps = maps / max(float(maps.max()), 1e-6)
    c, h, w = maps.shape
    rows = -(-c // columns)
    grid = np.full((rows * (h + gap) - gap, columns * (w + gap) - gap), 0.15, dtype=np.float32)
    for i in range(c):
        r, col = divmod(i, columns)
        grid[r * (h + gap) : r * (h + gap) + h, col * (w + gap) : col * (w + gap) + w] = maps[i]
    return grid


@on_gpu
def classify_digit(image) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """Picture of a digit -> ({"0": p0, ..., "9": p9}, the 28x28 input shown 8x larger, first-layer activations)."""
    return classify_gray(to_gray(open_image(image, "a picture of a digit")))


def classify_gray(gray: np.ndarray) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """classify_digit for an already decoded greyscale picture (H, W) in [0, 1]."""
    digit = prepare_digit(gray)
    net = model()
    device = next(net.parameters()).device
    with torch.inference_mode():
        x = torch.from_numpy(digit)[None, None].to(device)  # (1, 1, 28, 28)
        logits, activations = net.forward_with_activations(x)
        probs = torch.softmax(logits.float(), dim=-1)[0].cpu().numpy()
    confidences = {label: float(p) for label, p in zip(net.config.labels, probs, strict=True)}
    return confidences, upscale(digit, 8), upscale(activation_grid(activations[0][0]), 4)


def classify_upload_live(image) -> tuple[dict[str, float] | None, np.ndarray | None, np.ndarray | None]:
    """Runs when the upload box changes (upload, example click, clear): clearing clears the outputs."""
    if image is None:
        return None, None, None
    return classify_digit(image)


def classify_sketch(sketch) -> tuple[dict[str, float] | None, np.ndarray | None, np.ndarray | None]:
    """Live version for the drawing pad: an empty canvas clears the outputs instead of raising."""
    if sketch is None or sketch.get("composite") is None:
        return None, None, None
    gray = to_gray(open_image(sketch))
    if gray.max() - gray.min() < 0.1:  # nothing drawn yet, or everything erased
        return None, None, None
    return classify_gray(gray)


def training_curves() -> pd.DataFrame | None:
    """The checkpoint's training_log.json as long-form rows for a line plot."""
    path = hub.checkpoint_file(CHECKPOINT, "training_log.json")
    if path is None:
        return None
    rows = []
    for entry in json.loads(path.read_text()):
        rows.append({"epoch": entry["epoch"], "value": entry["train_loss"], "curve": "train loss (augmented, label-smoothed)"})
        rows.append({"epoch": entry["epoch"], "value": entry["val_loss"], "curve": "validation loss"})
        rows.append({"epoch": entry["epoch"], "value": 1.0 - entry["val_accuracy"], "curve": "validation error rate"})
    return pd.DataFrame(rows)


def metrics_markdown() -> str:
    path = hub.checkpoint_file(CHECKPOINT, "metrics.json")
    if path is None:
        return f"*No metrics found: train the model with `{hub.training_command(CHECKPOINT)}`.*"
    m = json.loads(path.read_text())
    return (
        f"**Held-out results.** Test accuracy on 1,000 MNIST digits it never saw: **{m['test_accuracy']:.1%}**. "
        f"On digits typed in the fonts of our machine (rotated, thickened, moved, a stand-in for drawing): **{m['font_digit_accuracy']:.1%}**."
    )


def example_files() -> list[str]:
    return [str(p) for p in sorted(EXAMPLES_DIR.glob("*.png"))]


def build() -> None:
    """The Digits tab's components and events, inside the current gr.Tab."""
    gr.Markdown(INTRO)
    with gr.Row():
        with gr.Column():
            with gr.Tab("Draw"):
                sketch = drawing_pad("Draw one digit", 400, 400, 20, "digit-sketchpad")
            with gr.Tab("Upload"):
                upload = gr.Image(
                    label="Photo or scan of one digit", type="filepath", sources=["upload", "clipboard"], elem_id="digit-upload"
                )
                classify_button = gr.Button("Classify", variant="primary")
                gr.Examples(example_files(), inputs=upload, label="Examples (click one)")
        with gr.Column():
            label = gr.Label(num_top_classes=3, label="Top 3 guesses", elem_id="digit-label")
            with gr.Row():
                seen = gr.Image(label="What the network sees: 28 x 28", height=240, buttons=[], elem_id="digit-seen")
                activations = gr.Image(label="First layer: 32 feature maps (bright = strong response)", height=240, buttons=[])
    with gr.Accordion("How it was trained", open=False):
        gr.Markdown(metrics_markdown())
        curves = training_curves()
        if curves is not None:
            gr.LinePlot(curves, x="epoch", y="value", color="curve", title="Training progress", height=260)

    outputs = [label, seen, activations]
    # The pad sends its strokes through the component server and Gradio reassembles them, so this event
    # preprocesses. `input` (not `change`): Gradio 6 swallows the pad's first `change`, i.e. the first stroke.
    sketch.input(
        classify_sketch, sketch, outputs, api_visibility="private", trigger_mode="always_last", show_progress="hidden", **LIGHT_LANE
    )
    sketch.clear(lambda: (None, None, None), None, outputs, api_visibility="private")
    upload.change(classify_upload_live, upload, outputs, api_visibility="private", preprocess=False, **LIGHT_LANE)
    classify_button.click(classify_digit, upload, outputs, api_name="classify_digit", preprocess=False, **LIGHT_LANE)

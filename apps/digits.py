"""Digits tab: draw or upload a digit; a small CNN says which one it is, and shows what it saw.

Trace: upload -> `apps.common.open_image` -> `data.mnist.sketch_to_mnist` -> `models.digit_classifier`
-> top-3 probabilities, the 28x28 input and the first layer's activations; then (`digit_layers`) the learned
filters and every block's activations, and (`explain_pixel`) the 3x3 arithmetic behind one first-layer pixel.
"""

import json
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
import torch

from apps.common import (
    LIGHT_LANE,
    check_number,
    drawing_pad,
    link_choice,
    load_model,
    on_gpu,
    on_link,
    open_image,
    read_link,
    share_link,
    to_gray,
    upscale,
)
from data.mnist import sketch_to_mnist
from models import hub
from models.digit_classifier import DigitClassifier, PixelArithmetic, first_layer_maps, pixel_arithmetic

TITLE = "Digits"
CHECKPOINT = "digit-classifier"
EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples" / "digits"
INTRO = """
### A convolutional network reads your handwriting
A **convolutional neural network (CNN)** slides small 3x3 filters over the picture to find strokes, corners and loops,
shrinks the picture with max-pooling, and finally votes for one of the ten digits.
It learned by looking at 3,500 real handwritten MNIST digits, each one randomly bent, tilted and re-inked every pass,
and nudging its filters after every mistake (gradient descent). Draw a digit below, or upload a photo of one.
Under **Inside the network** you see the 32 filters it learned, what every layer makes of your digit, and, when you
click a pixel of a feature map, the multiply-and-add that produced it.
"""
MAP_COLUMNS = 8  # feature maps per row in the first-layer picture
MAP_GAP = 1  # px between maps, before upscaling
FIRST_LAYER_SCALE = 3  # the first-layer picture is drawn 3x: 32 maps of 28 x 28 -> 693 x 345 px
FILTER_PX = 24  # each 3x3 filter weight is drawn as a 24 px square


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


def signed_colours(values: np.ndarray) -> np.ndarray:
    """(...) in [-1, 1] -> (..., 3) uint8: red for positive, blue for negative, white for 0."""
    v = np.clip(values, -1, 1)[..., None]
    red, blue, white = np.array([0.84, 0.15, 0.16]), np.array([0.13, 0.4, 0.75]), np.ones(3)
    rgb = np.where(v >= 0, white + v * (red - white), white - v * (blue - white))
    return np.round(rgb * 255).astype(np.uint8)


def filter_picture(net: DigitClassifier) -> np.ndarray:
    """The first layer's 32 learned 3x3 filters as one RGB picture, on one colour scale (red +, blue -)."""
    weights = net.first_layer()[0].weight.detach().float().cpu()[:, 0].numpy()  # (32, 3, 3)
    cells = signed_colours(weights / max(float(np.abs(weights).max()), 1e-6))
    side = 3 * FILTER_PX
    rows = -(-len(cells) // MAP_COLUMNS)
    gap = FILTER_PX // 3
    picture = np.full((rows * (side + gap) - gap, MAP_COLUMNS * (side + gap) - gap, 3), 255, np.uint8)
    for i, cell in enumerate(cells):
        r, c = divmod(i, MAP_COLUMNS)
        big = np.kron(cell, np.ones((FILTER_PX, FILTER_PX, 1), np.uint8))
        picture[r * (side + gap) : r * (side + gap) + side, c * (side + gap) : c * (side + gap) + side] = big
    return picture


def map_at(x: int, y: int, channels: int = 32, side: int = 28) -> tuple[int, int, int] | None:
    """A click at (x, y) px on the first-layer picture -> (map, row, column), or None between maps."""
    px, py = int(x) // FIRST_LAYER_SCALE, int(y) // FIRST_LAYER_SCALE
    step = side + MAP_GAP
    (grid_row, row), (grid_col, column) = divmod(py, step), divmod(px, step)
    channel = grid_row * MAP_COLUMNS + grid_col
    if row >= side or column >= side or grid_col >= MAP_COLUMNS or not 0 <= channel < channels or px < 0 or py < 0:
        return None
    return channel, row, column


def look_inside(digit: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, str]]]:
    """The (28, 28) digit in [0, 1] -> (the 32 learned filters, the first convolution's 32 maps, every block's output)."""
    net = model()
    device = next(net.parameters()).device
    with torch.inference_mode():
        x = torch.from_numpy(digit)[None, None].to(device)  # (1, 1, 28, 28)
        first = first_layer_maps(net, x)[0]  # (32, 28, 28)
        _, blocks = net.forward_with_activations(x)
    first_picture = upscale(activation_grid(first, MAP_COLUMNS, MAP_GAP), FIRST_LAYER_SCALE)
    gallery = []
    for i, block in enumerate(blocks, 1):
        c, h, w = block.shape[1:]
        columns = MAP_COLUMNS if c <= 64 else 2 * MAP_COLUMNS
        scale = max(1, 360 // (columns * (w + 1)))  # every block drawn about 360 px wide
        caption = f"Block {i}: {c} maps of {h} x {w} (two 3x3 convolutions, then max-pooling halves the picture)"
        gallery.append((upscale(activation_grid(block[0], columns), scale), caption))
    return filter_picture(net), first_picture, gallery


def window_picture(digit: np.ndarray, row: int, column: int, scale: int = 8) -> np.ndarray:
    """The 28x28 input drawn `scale` times larger, with the 3x3 window around (row, column) outlined in red."""
    rgb = np.repeat(upscale(digit, scale)[..., None], 3, axis=-1)
    top, left = (row - 1) * scale, (column - 1) * scale
    bottom, right = top + 3 * scale - 1, left + 3 * scale - 1
    lo, hi = 0, digit.shape[0] * scale - 1
    for thickness in range(2):
        t, b = max(lo, top + thickness), min(hi, bottom - thickness)
        lft, rgt = max(lo, left + thickness), min(hi, right - thickness)
        rgb[t, lft : rgt + 1] = rgb[b, lft : rgt + 1] = (230, 30, 30)
        rgb[t : b + 1, lft] = rgb[t : b + 1, rgt] = (230, 30, 30)
    return rgb


def _tables(window: np.ndarray, weights: np.ndarray, products: np.ndarray) -> str:
    """The three 3x3 grids side by side in a fixed-width block: window × weights = products."""

    def row(values: np.ndarray) -> str:
        return " ".join(f"{v:+.3f}" for v in values)

    lines = [f"{'input window':<20}   {'filter weights':<20}   products"]
    for i in range(3):
        times, equals = ("×", "=") if i == 1 else (" ", " ")
        lines.append(f"{row(window[i])} {times} {row(weights[i])} {equals} {row(products[i])}")
    return "```\n" + "\n".join(lines) + "\n```"


def arithmetic_markdown(a: PixelArithmetic, channel: int, row: int, column: int) -> str:
    """The multiply-and-add behind one first-layer pixel, step by step."""
    return (
        f"**Map {channel + 1}, row {row + 1}, column {column + 1}.** The filter lies on the 3x3 window of the input "
        "around this pixel (outlined in red). Each input value is the pixel standardised with the training digits' "
        "mean and spread (paper is about −0.42, ink up to +2.8); outside the picture it is 0 (padding).\n\n"
        f"{_tables(a.window, a.weights, a.products)}\n\n"
        f"1. Sum of the 9 products: **{a.total:+.4f}**\n"
        f"2. Batch norm, with the running mean μ = {a.mean:+.4f} and spread σ = {a.std:.4f} it measured in training, and its "
        f"learned scale γ = {a.gamma:+.4f} and shift β = {a.beta:+.4f}: (sum − μ) / σ × γ + β = **{a.pre_activation:+.4f}**\n"
        f"3. ReLU keeps positives and turns negatives into 0: max(0, {a.pre_activation:+.4f}) = **{a.value:.4f}**, "
        "the value of this pixel of the feature map."
    )


def explain(digit: np.ndarray, channel: int, row: int, column: int) -> tuple[str, np.ndarray]:
    a = pixel_arithmetic(model(), digit, channel, row, column)
    return arithmetic_markdown(a, channel, row, column), window_picture(digit, row, column)


@on_gpu
def digit_layers(image) -> tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, str]]]:
    """Look inside the digit CNN: its learned first-layer filters and what every layer makes of a digit.

    Args:
        image: a picture of one digit (any size, either polarity).
    Returns:
        The 32 learned 3x3 filters (red positive, blue negative), the first convolution's 32 feature maps at 28 x 28, [(each conv block's maps, caption)]."""
    return look_inside(prepare_digit(to_gray(open_image(image, "a picture of a digit"))))


@on_gpu
def explain_pixel(image, channel=1, row=14, column=14) -> tuple[str, np.ndarray]:
    """Show the multiply-and-add behind one pixel of a first-layer feature map of the digit CNN.

    Args:
        image: a picture of one digit (any size, either polarity).
        channel: which feature map, 1 to 32.
        row: the pixel's row in the 28 x 28 map, 1 (top) to 28.
        column: the pixel's column, 1 (left) to 28.
    Returns:
        The arithmetic as Markdown (3x3 window, weights, products, sum, batch norm, ReLU), and the 28x28 input with the window outlined."""
    channel = check_number(channel, "Map", 1, 32, integer=True)
    row = check_number(row, "Row", 1, 28, integer=True)
    column = check_number(column, "Column", 1, 28, integer=True)
    digit = prepare_digit(to_gray(open_image(image, "a picture of a digit")))
    return explain(digit, channel - 1, row - 1, column - 1)


@on_gpu
def classify_digit(image) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """Read a handwritten digit with a small CNN trained on MNIST.

    Args:
        image: a picture of one digit (any size; dark ink on light paper or the other way round).
    Returns:
        {"0": p0, ..., "9": p9} probabilities, the 28x28 picture the network saw (8x larger), the first layer's activations."""
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


def layers_for(gray: np.ndarray | None):
    """(filters, first-layer maps, blocks, the 28x28 digit for pixel clicks) for the page; Nones for nothing drawn."""
    if gray is None:
        return None, None, None, None
    digit = prepare_digit(gray)
    return (*look_inside(digit), digit)


def layers_of_upload(image):
    return layers_for(None if image is None else to_gray(open_image(image, "a picture of a digit")))


def layers_of_sketch(sketch):
    if sketch is None or sketch.get("composite") is None:
        return layers_for(None)
    gray = to_gray(open_image(sketch))
    return layers_for(gray if gray.max() - gray.min() >= 0.1 else None)


def explain_click(digit: np.ndarray | None, evt: gr.SelectData):
    if digit is None or evt is None or not isinstance(evt.index, list | tuple) or len(evt.index) != 2:
        return "*Draw or upload a digit first, then click a pixel of a feature map.*", None
    where = map_at(*evt.index)
    if where is None:
        return "*That is between two maps: click inside one.*", None
    return explain(digit, *where)


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


LINK = __name__.rsplit(".", 1)[-1]


def open_link(picture, request: gr.Request):
    """A page opened on a link to this tab: the example picture it names goes in the upload box, which reads it."""
    examples = {Path(p).name: p for p in example_files()}
    link = read_link(request, LINK, {"picture": link_choice(examples)}, {"picture": None})
    if link is None or link["picture"] is None:
        return gr.skip(), gr.skip()
    return examples[link["picture"]], gr.Tabs(selected="digits-upload")


def build() -> None:
    """The Digits tab's components and events, inside the current gr.Tab."""
    gr.Markdown(INTRO)
    with gr.Row():
        with gr.Column():
            with gr.Tabs() as sources:
                with gr.Tab("Draw", id="digits-draw"):
                    sketch = drawing_pad("Draw one digit", 400, 400, 20, "digit-sketchpad")
                with gr.Tab("Upload", id="digits-upload"):
                    upload = gr.Image(
                        label="Photo or scan of one digit", type="filepath", sources=["upload", "clipboard"], elem_id="digit-upload"
                    )
                    classify_button = gr.Button("Classify", variant="primary")
                    gr.Examples(example_files(), inputs=upload, label="Examples (click one)")
            share_link(LINK, {"picture": upload})
        with gr.Column():
            label = gr.Label(num_top_classes=3, label="Top 3 guesses", elem_id="digit-label")
            with gr.Row():
                seen = gr.Image(label="What the network sees: 28 x 28", height=240, buttons=[], elem_id="digit-seen")
                activations = gr.Image(label="First layer: 32 feature maps (bright = strong response)", height=240, buttons=[])
    with gr.Accordion("Inside the network: its filters, every layer, and the arithmetic of one pixel", open=True):
        gr.Markdown(
            "The first layer slides each of its **32 learned 3x3 filters** over the picture (red weights add ink, blue "
            "subtract it). Each filter gives one **feature map**: bright where the filter's pattern is. Later blocks "
            "combine maps into loops and corners, at ever coarser grids. **Click a pixel** of a first-layer map to see "
            "how it was computed."
        )
        with gr.Row():
            filters = gr.Image(label="First layer: the 32 learned 3x3 filters", height=260, buttons=[], elem_id="digit-filters")
            first_maps = gr.Image(
                label="First convolution: 32 feature maps of 28 x 28 (click a pixel)",
                height=260,
                buttons=[],
                interactive=False,
                elem_id="digit-first-maps",
            )
        with gr.Row():
            window = gr.Image(label="The 3x3 window it read", height=260, buttons=[], elem_id="digit-window")
            arithmetic = gr.Markdown("*Draw or upload a digit, then click a pixel of a feature map.*", elem_id="digit-arithmetic")
        blocks = gr.Gallery(label="Every conv block's output", columns=3, height=300, object_fit="contain", elem_id="digit-blocks")
    digit_state = gr.State(None)
    with gr.Accordion("How it was trained", open=False):
        gr.Markdown(metrics_markdown())
        curves = training_curves()
        if curves is not None:
            gr.LinePlot(curves, x="epoch", y="value", color="curve", title="Training progress", height=260)

    outputs = [label, seen, activations]
    inside = [filters, first_maps, blocks, digit_state]
    private = {"api_visibility": "private", "show_progress": "hidden", **LIGHT_LANE}
    # The pad sends its strokes through the component server and Gradio reassembles them, so this event
    # preprocesses. `input` (not `change`): Gradio 6 swallows the pad's first `change`, i.e. the first stroke.
    sketch.input(classify_sketch, sketch, outputs, trigger_mode="always_last", **private).success(
        layers_of_sketch, sketch, inside, **private
    )
    sketch.clear(lambda: (None, None, None, None, None, None, None), None, outputs + inside, api_visibility="private")
    upload.change(classify_upload_live, upload, outputs, preprocess=False, **private).success(
        layers_of_upload, upload, inside, preprocess=False, **private
    )
    classify_button.click(classify_digit, upload, outputs, api_name="classify_digit", preprocess=False, **LIGHT_LANE)
    first_maps.select(explain_click, digit_state, [arithmetic, window], **private)
    on_link(open_link, [upload], [upload, sources])

    # API-only twins of what the page does after each drawing and click (the page keeps the digit in a gr.State).
    api_image = gr.Image(type="filepath", visible=False)
    api_numbers = [gr.Number(visible=False, precision=0) for _ in range(3)]
    api_layers, api_pixel = gr.Button(visible=False), gr.Button(visible=False)
    api_layers.click(digit_layers, api_image, [filters, first_maps, blocks], api_name="digit_layers", preprocess=False, **LIGHT_LANE)
    api_pixel.click(
        explain_pixel, [api_image, *api_numbers], [arithmetic, window], api_name="explain_pixel", preprocess=False, **LIGHT_LANE
    )

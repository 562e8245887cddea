"""Segment tab: a U-Net gives every pixel of a picture of handwritten digits a class.

Trace: drawing or upload -> `apps.common.open_image` -> `models.segmentation.read_drawing` (grey, 128 px short side,
padded to a multiple of 16, also read shrunk when the marks are bigger than the digits it learned) -> per-pixel
probabilities -> coloured mask, probability map.
"""

import json
import re

import gradio as gr
import numpy as np
import pandas as pd
from PIL import Image

from apps.common import (
    LIGHT_LANE,
    check_number,
    drawing_pad,
    heat_colours,
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
)
from data.digit_scenes import fixed_scenes
from models import hub
from models.segmentation import digits_found, read_drawing, read_labels
from models.unet import UNet

TITLE = "Segment"
CHECKPOINT = "digit-segmenter"
ANY_DIGIT = "any digit"
UNSURE = "unsure (below the confidence threshold, or no clear digit)"
INTRO = """
### Label every pixel, not the whole picture
A **U-Net** squeezes the picture through an **encoder** (ever smaller, ever deeper feature maps: *what* is there) and blows it back up
with a **decoder** (*where* it is); **skip connections** hand the decoder the encoder's sharp early maps so thin pen strokes keep their
outline. It learned from scenes of 1 to 5 **real handwritten MNIST digits** (and some we drew with a pen, as a mouse does) that we
scattered on paper-like canvases (no real street or medical masks exist offline), with a loss that rewards the **overlap** of predicted
and true shapes (Dice) as well as per-pixel correctness (cross-entropy), plus a loss that counts every digit once, named right or not.
To read the digits, each stroke gets one name by a vote of the ink around it, as a person reads it, not pixel by pixel. Draw a few
digits, upload a photo of written digits, or take a random test scene it never saw.
"""


def model() -> UNet:
    return load_model(hub.load, UNet, CHECKPOINT)


def class_choices() -> list[str]:
    return [ANY_DIGIT] + [str(d) for d in range(10)]


def probability_map(probs: np.ndarray, class_name: str) -> np.ndarray:
    """The chosen class's probability at every pixel, on a fixed 0-1 colour scale (never stretched per picture)."""
    names = model().config.class_names
    if class_name in (None, "", ANY_DIGIT):
        values = 1.0 - probs[0]
    elif class_name in names:
        values = probs[names.index(class_name)]
    else:
        raise gr.Error(f"Unknown class {class_name!r}. Choose '{ANY_DIGIT}' or one of 0-9.")
    return (heat_colours(values) * 255).round().astype(np.uint8)


def annotations(
    picture: np.ndarray, probs: np.ndarray, labels: np.ndarray, confidence: float
) -> tuple[np.ndarray, list[tuple[np.ndarray, str]], dict]:
    """(base image RGB uint8, [(mask, class name)] for every class found, {class: pixels}).

    Pixels whose top probability is under `confidence`, and ink the reading reports as no digit, go to the 'unsure' layer."""
    names = model().config.class_names
    sure = ~unsure_pixels(probs, labels, confidence)
    layers, found = [], {}
    for index in range(1, len(names)):
        mask = labels == index
        if mask.sum() >= 4:  # a few stray pixels are not a finding
            layers.append((mask.astype(np.float32), names[index]))
            found[names[index]] = int(mask.sum())
    unsure = ~sure
    if unsure.any():
        layers.append((unsure.astype(np.float32), UNSURE))
    base = (np.stack([picture] * 3, -1) * 255).round().astype(np.uint8)
    return base, layers, found


def unsure_pixels(probs: np.ndarray, labels: np.ndarray, confidence: float) -> np.ndarray:
    """(H, W) bool: the top probability is under `confidence`, or the network saw ink that the reading reports as no
    digit (a speck, or a digit it is too unsure of: models.segmentation.read_labels)."""
    return (probs.max(0) < confidence) | ((labels == 0) & (probs.argmax(0) > 0))


def summary(found: dict, probs: np.ndarray, labels: np.ndarray, digits: list[dict], confidence: float) -> str:
    unsure = float(unsure_pixels(probs, labels, confidence).mean())
    if not found:
        text = "**No digit found** with that confidence: every pixel looks like background to it."
    else:
        names = model().config.class_names
        reads = " ".join(names[d["class"]] for d in digits)
        each = ", ".join(f"{names[d['class']]} ({d['confidence']:.0%})" for d in digits)
        parts = ", ".join(f"**{name}** ({pixels:,} px)" for name, pixels in sorted(found.items(), key=lambda kv: -kv[1]))
        text = f"**It reads: {reads}** (left to right, line by line; each digit's mean confidence: {each}). Found {parts}."
    return text + f" {unsure:.1%} of pixels are below the {confidence:.0%} confidence threshold or too unsure to be a digit (shown grey)."


@on_gpu
def segment_digits(image, confidence: float = 0.5, class_name: str = ANY_DIGIT):
    """Find and name every handwritten digit in a picture, pixel by pixel, with a U-Net.

    Args:
        image: a picture of handwritten digits (any size, either polarity).
        confidence: 0 to 1; pixels whose top probability is below it are marked unsure.
        class_name: whose probability map to return: "any digit" or "0" to "9".
    Returns:
        The picture with each digit's pixels coloured by class (base image and masks), that class's probability map, a summary that reads the digits in order, and each digit's box with its name and confidence."""
    confidence = check_number(confidence, "Confidence threshold", 0.0, 1.0)
    gray = to_gray(open_image(image, "a picture of handwritten digits"))
    if gray.max() - gray.min() < 0.05:
        raise gr.Error("The picture is blank: draw or upload some digits first.", title="Nothing to segment")
    picture, probs = read_drawing(model(), gray)
    labels = read_labels(probs, confidence)  # read once: the colouring, the summary and the boxes all show it
    digits = digits_found(probs, labels)
    base, layers, found = annotations(picture, probs, labels, confidence)
    return (base, layers), probability_map(probs, class_name), summary(found, probs, labels, digits, confidence), digit_boxes(base, digits)


def digit_boxes(base: np.ndarray, digits: list[dict]) -> tuple[np.ndarray, list]:
    """The instance view: (picture, [((x0, y0, x1, y1), "7 (94%)")]) for each digit found, in reading order."""
    names = model().config.class_names
    boxes = []
    for order, digit in enumerate(digits, 1):
        boxes.append((digit["box"], f"#{order}: {names[digit['class']]} ({digit['confidence']:.0%})"))
    return base, boxes


def segment_sketch(sketch, confidence, class_name):
    """Live version for the drawing pad: an empty canvas clears the outputs instead of raising."""
    if sketch is None or sketch.get("composite") is None:
        return None, None, "", None
    gray = to_gray(open_image(sketch))
    if gray.max() - gray.min() < 0.1:
        return None, None, "", None
    return segment_digits(gray, confidence, class_name)


def random_test_scene():
    """One of the fixed test scenes (digits the model never saw) that holds a digit, and its true mask."""
    _, masks = fixed_scenes("test")
    with_digits = np.flatnonzero((masks > 0).flatten(1).any(1).numpy())  # a digit can land almost wholly off the canvas
    return test_scene(int(np.random.default_rng().choice(with_digits)))


def test_scene(index: int):
    """Test scene `index`: (picture file, (picture, [(mask, class name)]) for the true mask, note)."""
    images, masks = fixed_scenes("test")
    picture = images[index, 0].numpy()
    path = image_file(Image.fromarray((picture * 255).round().astype(np.uint8)), f"test_scene_{index}.png")
    names = model().config.class_names
    truth = masks[index].numpy()
    layers = [((truth == i).astype(np.float32), names[i]) for i in range(1, len(names)) if (truth == i).any()]
    base = (np.stack([picture] * 3, -1) * 255).round().astype(np.uint8)
    return path, (base, layers), f"Test scene #{index} of {len(images)}: built from held-out test digits only."


def colour_map() -> dict[str, str] | None:
    """Class name -> colour, read from the checkpoint's config.json without loading the weights (fast start-up)."""
    path = hub.checkpoint_file(CHECKPOINT, "config.json")
    if path is None:
        return None
    config = json.loads(path.read_text())
    return dict(zip(config["class_names"][1:], config["class_colours"][1:], strict=True)) | {UNSURE: "#9e9e9e"}


def resegment(source: str, sketch, upload, confidence, class_name):
    """A setting changed: run again on whichever input was used last."""
    if source == "sketch":
        return segment_sketch(sketch, confidence, class_name)
    if upload is None:  # nothing to segment again; None, not gr.skip(): see apps/digit_diffusion.py on skip() and files
        return None, None, None, None
    return segment_digits(upload, confidence, class_name)


def training_curves() -> pd.DataFrame | None:
    path = hub.checkpoint_file(CHECKPOINT, "training_log.json")
    if path is None:
        return None
    rows = []
    for entry in json.loads(path.read_text()):
        rows.append({"step": entry["step"], "value": entry["val_miou"], "curve": "validation mIoU (shipped: cross-entropy + Dice)"})
        if "val_miou_ce" in entry:
            rows.append({"step": entry["step"], "value": entry["val_miou_ce"], "curve": "validation mIoU (cross-entropy only)"})
        if "val_digit_f1" in entry:  # a continued run (--init-from) chose its checkpoint by this
            rows.append({"step": entry["step"], "value": entry["val_digit_f1"], "curve": "validation digit F1 (found and named)"})
    return pd.DataFrame(rows)


def metrics_markdown() -> str:
    path = hub.checkpoint_file(CHECKPOINT, "metrics.json")
    if path is None:
        return f"*No metrics found: train the model with `{hub.training_command(CHECKPOINT)}`.*"
    m = json.loads(path.read_text())
    text = (
        f"**Held-out results** on 500 test scenes built only from test digits: mean IoU **{m['miou']:.3f}**, Dice **{m['dice']:.3f}**; "
        f"on scenes of font-rendered digits (a stand-in for drawings): mean IoU **{m.get('font_scene_miou', float('nan')):.3f}**. "
        "Expect the odd stroke in the wrong colour."
    )
    if "naming_accuracy" in m:
        text += (
            f" Where the score goes: ink against background, whichever digit, overlaps the truth at IoU **{m['foreground_iou']:.2f}**; "
            f"of the ink it finds, it gives **{m['naming_accuracy']:.0%}** the right digit. Naming every found pixel right would "
            f"lift mean IoU only to **{m['miou_if_named_right']:.3f}**: the rest is lost on the outline of each stroke."
        )
    if "digit_f1" in m:
        text += (
            f" **As a person scores it:** with outlines allowed 1 px of slack, mean IoU is **{m['miou_tol1']:.3f}**; of the digits in "
            f"the test scenes it finds and names **{m['digit_recall']:.0%}**, and **{m['digit_precision']:.0%}** of the digits it reports "
            f"are right (digit F1 **{m['digit_f1']:.2f}**, panoptic quality {m['pq']:.2f}); on the font scenes digit F1 is "
            f"**{m['font_digit_f1']:.2f}**."
        )
    if "ce_miou" in m:
        text += f" The same network trained with cross-entropy alone reached mean IoU **{m['ce_miou']:.3f}** on the same scenes."
    if "miou_true_masks_1px_thicker" in m:
        text += (
            " For scale, mean IoU is harsh on strokes a few pixels wide: the true masks themselves, with every digit drawn just "
            f"1 px thicker, score **{m['miou_true_masks_1px_thicker']:.3f}**."
        )
    return text


LINK = __name__.rsplit(".", 1)[-1]


def test_scene_name(name: str) -> int:
    """A link's picture: "test_scene_<n>.png", one of the fixed test scenes -> n."""
    match = re.fullmatch(r"test_scene_(\d{1,4})\.png", name)
    if match is None or int(match.group(1)) >= len(fixed_scenes("test")[0]):
        raise ValueError("must name a test scene, test_scene_0.png to test_scene_499.png")
    return int(match.group(1))


def open_link(confidence, class_name, request: gr.Request):
    """A page opened on a link to this tab: the test scene it names, segmented at once with the linked settings."""
    readers = {"picture": test_scene_name, "confidence": link_number("Confidence", 0, 0.99), "class_name": link_choice(class_choices())}
    link = read_link(request, LINK, readers, {"picture": None, "confidence": confidence, "class_name": class_name})
    if link is None:
        return (gr.skip(),) * 11
    if link["picture"] is None:
        return (gr.skip(),) * 3 + (link["confidence"], link["class_name"]) + (gr.skip(),) * 6
    path, truth, note = test_scene(link["picture"])
    segmented = segment_digits(path, link["confidence"], link["class_name"])
    return path, truth, note, link["confidence"], link["class_name"], *segmented, "upload", gr.Tabs(selected="segment-upload")


def build() -> None:
    """The Segment tab's components and events, inside the current gr.Tab."""
    gr.Markdown(INTRO)
    gr.Markdown(metrics_markdown())
    with gr.Row():
        with gr.Column():
            with gr.Tabs() as sources:
                with gr.Tab("Draw", id="segment-draw"):
                    sketch = drawing_pad("Draw a few digits", 512, 384, 14, "segment-sketchpad")
                with gr.Tab("Upload or test scene", id="segment-upload"):
                    upload = gr.Image(
                        label="Photo or scan of written digits",
                        type="filepath",
                        sources=["upload", "clipboard", "webcam"],
                        elem_id="segment-upload",
                    )
                    with gr.Row():
                        segment_button = gr.Button("Segment", variant="primary")
                        random_button = gr.Button("Random test scene")
                    scene_note = gr.Markdown()
            confidence = gr.Slider(0.0, 0.99, value=0.5, step=0.01, label="Confidence threshold: pixels below it are shown grey (unsure)")
            class_name = gr.Dropdown(class_choices(), value=ANY_DIGIT, label="Probability map for class")
            share_link(LINK, {"picture": upload, "confidence": confidence, "class_name": class_name})
        with gr.Column():
            overlay = gr.AnnotatedImage(label="Every pixel's class", color_map=colour_map(), height=360, elem_id="segment-overlay")
            found = gr.Markdown(elem_id="segment-summary")
            boxes = gr.AnnotatedImage(
                label="Each digit found: its box, its name and the model's confidence, in reading order",
                height=300,
                elem_id="segment-digits",
            )
            with gr.Row():
                prob_map = gr.Image(
                    label="Raw probability of the chosen class (blue 0 → red 1, same scale for every picture)",
                    type="numpy",
                    buttons=[],
                    height=240,
                )
                truth = gr.AnnotatedImage(label="True mask (test scenes only)", color_map=colour_map(), height=240)
    with gr.Accordion("How it was trained", open=False):
        curves = training_curves()
        if curves is not None:
            gr.LinePlot(curves, x="step", y="value", color="curve", y_lim=[0, 1], title="Validation scores while training", height=260)

    outputs = [overlay, prob_map, found, boxes]
    settings = [confidence, class_name]
    source = gr.State("sketch")  # which input the settings re-run on
    sketch.input(
        segment_sketch,
        [sketch, *settings],
        outputs,
        api_visibility="private",
        trigger_mode="always_last",
        show_progress="hidden",
        **LIGHT_LANE,
    ).then(lambda: "sketch", None, source, api_visibility="private")
    segment_button.click(segment_digits, [upload, *settings], outputs, api_name="segment_digits", preprocess=False, **LIGHT_LANE).then(
        lambda: "upload", None, source, api_visibility="private"
    )
    random_button.click(random_test_scene, None, [upload, truth, scene_note], api_visibility="private").then(
        segment_digits, [upload, *settings], outputs, api_visibility="private", preprocess=False, **LIGHT_LANE
    ).then(lambda: "upload", None, source, api_visibility="private")
    on_link(open_link, [confidence, class_name], [upload, truth, scene_note, confidence, class_name, *outputs, source, sources])
    for setting in (confidence, class_name):
        setting.change(
            resegment, [source, sketch, upload, *settings], outputs, api_visibility="private", trigger_mode="always_last", **LIGHT_LANE
        )

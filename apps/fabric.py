"""Fabric defects tab: an autoencoder trained only on flawless cloth (or a memory of flawless patches)
points at holes, stains and broken threads it has never seen.

Trace: upload -> `apps.common.open_image` -> `prepare_swatch` (centre square, 256 px) ->
`models.autoencoder` (reconstruction, error map) or `models.patch_memory` (nearest-patch distance)
-> a map on the scale fixed by flawless validation swatches -> outlines, score, verdict.
"""

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from apps.common import (
    LIGHT_LANE,
    check_number,
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
    to_rgb,
)
from data import fabric
from models import hub
from models.autoencoder import FabricAutoencoder
from models.efficientnet_lite import EfficientNetLite
from models.fabric_fit import FitSettings, fit_detectors
from models.fabric_scoring import image_scores
from models.patch_memory import PatchMemory

TITLE = "Fabric defects"
AUTOENCODER, FEATURES = "autoencoder", "features"
CHECKPOINTS = {AUTOENCODER: "fabric-autoencoder", FEATURES: "fabric-features"}
EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples" / "fabric"
SIZE = fabric.SIZE
MIN_FIT, MAX_FIT = 5, 50  # photos for "fit to your own fabric"
# How "fit to your own fabric" fits (models.fabric_fit). MODEL_SHOW_FIT_SECONDS sets its time budget: a faster Space can
# afford more, the test server less.
FIT = FitSettings(seconds=float(os.environ.get("MODEL_SHOW_FIT_SECONDS", FitSettings.seconds)))
MAP_TOP = 3.0  # the colour scale ends at this multiple of the image threshold, the same for every picture
INTRO = """
### Find flaws it has never seen
An **autoencoder** squeezes a picture of cloth into a few numbers and paints it back. It was trained **only on flawless fabric**, so it can
redraw weave but not a hole, a stain or a broken thread: where its painting differs from the photo, in texture or in colour, something
is wrong. The **features** detector needs no training at all: it remembers what flawless patches look like to an ImageNet network and
flags patches unlike any it remembers. As on a factory line, each detector knows **three products** (linen, denim, satin) and has a calibrated scale and threshold for
each; pick the product you are inspecting, or fit the detectors to your own cloth below. The cloth is **procedural** (we wove it in code:
no real defect photos exist offline), and so are the nine kinds of defect, which the detectors never saw. Heat maps share **one fixed
scale** per product, from flawless cloth, so a flawless swatch stays cool.
"""


@dataclass
class Fitted:
    """A visitor's own detectors, fitted in their session only."""

    autoencoder: FabricAutoencoder
    memory: PatchMemory
    n_photos: int
    report: str


def autoencoder() -> FabricAutoencoder:
    return _load(FabricAutoencoder, AUTOENCODER)


def memory() -> PatchMemory:
    return _load(PatchMemory, FEATURES)


def backbone() -> EfficientNetLite:
    return _load(EfficientNetLite, "imagenet-classifier")


def _load(cls, kind: str):
    return load_model(hub.load, cls, CHECKPOINTS.get(kind, kind))


def prepare_swatch(image) -> torch.Tensor:
    """Any picture -> (1, 3, 256, 256) in [0, 1]: the central square, resized (cloth has no 'whole object' to keep)."""
    rgb = to_rgb(open_image(image, "a photo of fabric"))
    h, w = rgb.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = Image.fromarray(rgb[top : top + side, left : left + side]).resize((SIZE, SIZE), Image.Resampling.BILINEAR)
    return torch.from_numpy(np.asarray(square, np.float32) / 255).permute(2, 0, 1)[None].contiguous()


def detectors(detector: str, fitted: Fitted | None) -> FabricAutoencoder | PatchMemory:
    if detector not in CHECKPOINTS:
        raise gr.Error(f"Unknown detector {str(detector)[:40]!r}. Choose 'autoencoder' or 'features'.")
    if fitted is not None:
        return fitted.autoencoder if detector == AUTOENCODER else fitted.memory
    return autoencoder() if detector == AUTOENCODER else memory()


def product_index(product: str | None, fitted: Fitted | None) -> int:
    """The calibration entry to use: the visitor's own cloth once fitted, else the chosen product (default: the first)."""
    if fitted is not None:
        return 0
    if product in (None, ""):
        return 0
    if product not in fabric.PRODUCT_NAMES:
        raise gr.Error(f"Unknown product {str(product)[:40]!r}. Choose one of: {', '.join(fabric.PRODUCT_NAMES)}.")
    return fabric.PRODUCT_NAMES.index(product)


@torch.inference_mode()
def score_swatch(
    x: torch.Tensor, detector: str, product: int, fitted: Fitted | None = None
) -> tuple[np.ndarray | None, np.ndarray, object]:
    """(1, 3, 256, 256) -> (reconstruction (H, W, 3) or None, standardised map (H, W) on product's scale, the detector's config)."""
    net = detectors(detector, fitted)
    if detector == AUTOENCODER:
        reconstruction, heat = net.anomaly_map(x.to(next(net.parameters()).device), product)
        return reconstruction[0].permute(1, 2, 0).float().cpu().numpy(), heat[0, 0].float().cpu().numpy(), net.config
    features = backbone()
    heat = net.anomaly_map(features, x.to(next(features.parameters()).device), product)
    return None, heat[0, 0].float().cpu().numpy(), net.config


def outline(mask: np.ndarray) -> np.ndarray:
    """The 1-2 px border of a boolean mask."""
    m = torch.from_numpy(mask.astype(np.float32))[None, None]
    grown = F.max_pool2d(m, 5, stride=1, padding=2)
    return (grown[0, 0].numpy() > 0) & ~mask


def render(
    x: torch.Tensor, reconstruction, heat: np.ndarray, config, product: int, threshold: float
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray, str]:
    """Pictures and verdict for one scored swatch at an image threshold (pixel threshold scales with it)."""
    photo = (x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    calibrated = config.image_threshold[product]
    scale = threshold / calibrated if calibrated > 0 else 1.0
    pixel_threshold = config.pixel_threshold[product] * scale
    heat_view = (heat_colours(np.clip(heat / (MAP_TOP * threshold), 0, 1)) * 255).round().astype(np.uint8)
    regions = heat > max(pixel_threshold, 0)
    marked = photo.copy()
    marked[outline(regions)] = (255, 0, 255)
    score = float(image_scores(torch.from_numpy(heat)[None])[0])
    defective = score > threshold
    verdict = (
        f"### {'Defect found' if defective else 'Looks flawless'}\n\n"
        f"Image score **{score:.1f}** (the hottest point, in standard deviations of flawless cloth's error) against the threshold "
        f"**{threshold:.1f}**{' (calibrated' if abs(scale - 1) < 1e-6 else f' (calibrated: {calibrated:.1f}'} for "
        f"{config.products[product]}). {regions.mean():.1%} of the pixels are above the pixel threshold {pixel_threshold:.1f} "
        "(outlined in magenta)."
    )
    recon_view = None if reconstruction is None else (np.clip(reconstruction, 0, 1) * 255).round().astype(np.uint8)
    return recon_view, heat_view, marked, verdict


@on_gpu
def detect_defects(
    image, detector: str = AUTOENCODER, threshold: float | None = None, product: str | None = None, fitted: Fitted | None = None
):
    """Inspect a photo of cloth for defects (holes, stains, cuts), with an autoencoder or a feature memory.

    Args:
        image: a photo of cloth; its central square is read at 256 px.
        detector: "autoencoder" (reconstruction error) or "features" (distance to a memory of flawless patches).
        threshold: the image threshold in standard deviations of flawless cloth's scores, 0.1 to 100; 0 = the calibrated one.
        product: "linen (plain weave)", "denim (twill)" or "rose satin": sets the calibrated scale.
    Returns:
        The reconstruction (autoencoder only), the anomaly map on a fixed scale, the photo with defects outlined, and the verdict."""
    x = prepare_swatch(image)
    index = product_index(product, fitted)
    reconstruction, heat, config = score_swatch(x, detector, index, fitted)
    if threshold in (None, "", 0):
        threshold = config.image_threshold[index]
    threshold = check_number(threshold, "Threshold", 0.1, 100.0)
    return render(x, reconstruction, heat, config, index, threshold)


def detect_calibrated(image, detector, product, fitted):
    """UI version for a new picture, detector or product: the calibrated threshold, also moved onto the slider."""
    if image is None:
        return None, None, None, "", gr.skip()
    x = prepare_swatch(image)
    index = product_index(product, fitted)
    reconstruction, heat, config = score_swatch(x, detector, index, fitted)
    calibrated = config.image_threshold[index]
    return (*render(x, reconstruction, heat, config, index, calibrated), gr.update(value=round(calibrated, 1)))


def random_defective_swatch(product: str | None = None):
    """A brand-new swatch of the product (seeds outside every split) with a random defect, as a PNG, and its true mask outlined."""
    index = product_index(product, None)
    rng = np.random.default_rng()
    kind = str(rng.choice(fabric.DEFECTS))
    image, mask = fabric.defective_swatch(int(rng.integers(30_000_000, 2**31 - 1)), kind, index)
    path = image_file(Image.fromarray((image * 255).round().astype(np.uint8)), f"swatch_{kind}.png")
    truth = (image * 255).round().astype(np.uint8)
    truth[outline(mask)] = (0, 255, 0)
    return (
        path,
        truth,
        f"A new swatch of **{fabric.PRODUCT_NAMES[index]}** with a **{kind.replace('_', ' ')}** (true region outlined in green).",
    )


# --- Fit to your own fabric ---------------------------------------------------------------------


@on_gpu(duration=int(FIT.seconds + 30))  # the fine-tuning budget, plus features, the memory bank and calibration
def fit_fabric(files, progress=gr.Progress()) -> tuple[Fitted, str]:  # noqa: B008 (Gradio injects it)
    """Fit both defect detectors to your own flawless cloth, for this session only.

    A fifth of the photos (at least 2) calibrate the threshold; the rest build the feature memory and fine-tune the autoencoder.

    Args:
        files: 5 to 50 photos of flawless cloth of one kind.
    Returns:
        A report; later detect_defects calls in this session use the fitted detectors."""
    files = [f for f in (files or []) if f]
    if not MIN_FIT <= len(files) <= MAX_FIT:
        raise gr.Error(f"Upload {MIN_FIT} to {MAX_FIT} photos of flawless fabric (got {len(files)}).")
    started = time.perf_counter()
    progress(0.02, desc="Reading your photos")
    swatches = torch.cat([prepare_swatch(f) for f in files])
    fit = fit_detectors(autoencoder(), memory(), backbone(), swatches, FIT, progress)
    report = (
        f"Fitted to **{len(files)} photos** in {time.perf_counter() - started:.0f} s: the features detector remembers "
        f"{fit.memory.config.bank_size:,} patches from {fit.n_train} of them; the autoencoder fine-tuned for {fit.steps} steps. "
        f"{fit.n_held} photos were held back to set the scale and the thresholds. Detection in this session now uses your "
        "detectors; it lasts until you reload the page."
    )
    return Fitted(fit.autoencoder, fit.memory, len(files), report), report


def forget_fit():
    return None, "Back to the detectors trained on procedural fabric."


def example_rows() -> list[list[str]]:
    """[photo, product] for each example; the file name starts with the product's key (e.g. denim_stain_40000011.png)."""
    names = {p.key: p.name for p in fabric.PRODUCTS}
    return [[str(path), names[path.name.split("_")[0]]] for path in sorted(EXAMPLES_DIR.glob("*.png"))]


METRIC_ROWS = [
    ("image_auroc", "Image AUROC: flawed swatches ranked above flawless ones (1 = always)"),
    ("pixel_auroc", "Pixel AUROC: defect pixels ranked above the rest"),
    ("false_positive_rate", "Flawless swatches called defective at the calibrated threshold"),
    ("detection_rate", "Flawed swatches caught at the calibrated threshold"),
    *[(f"image_auroc_{p.key}", f"Image AUROC, {p.name} only") for p in fabric.PRODUCTS],
    *[(f"image_auroc_{kind}", f"Image AUROC, {kind.replace('_', ' ')} vs flawless") for kind in fabric.DEFECTS],
]


def metrics_markdown() -> str:
    """Both detectors' results on the held-out test swatches, side by side, from their checkpoints' metrics.json."""
    found = {}
    for detector, name in CHECKPOINTS.items():
        path = hub.checkpoint_file(name, "metrics.json")
        found[detector] = json.loads(path.read_text()) if path else {}
    if not any(found.values()):
        return f"*No metrics found: train the detectors with `{hub.training_command(CHECKPOINTS[AUTOENCODER])}`.*"

    def cell(metrics: dict, key: str) -> str:
        if key not in metrics:
            return "-"
        return f"{metrics[key]:.1%}" if key.endswith("_rate") else f"{metrics[key]:.3f}"

    lines = [
        f"Scored once on {fabric.TEST_NORMAL} flawless and {fabric.TEST_PER_DEFECT * len(fabric.DEFECTS)} flawed test swatches per product, none seen in "
        "training or calibration. An AUROC of 0.5 is guessing.",
        "",
        "| held-out test swatches | autoencoder | features |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {label} | {cell(found[AUTOENCODER], key)} | {cell(found[FEATURES], key)} |" for key, label in METRIC_ROWS]
    return "\n".join(lines)


LINK = __name__.rsplit(".", 1)[-1]


def open_link(product, detector, threshold, request: gr.Request):
    """A page opened on a link to this tab: the example swatch it names, inspected at once with the linked settings."""
    swatches = {path.name: str(path) for path in sorted(EXAMPLES_DIR.glob("*.png"))}
    readers = {
        "picture": link_choice(swatches),
        "product": link_choice(fabric.PRODUCT_NAMES),
        "detector": link_choice([AUTOENCODER, FEATURES]),
        "threshold": link_number("Image threshold", 0.5, 60),
    }
    link = read_link(request, LINK, readers, {"picture": None, "product": product, "detector": detector, "threshold": threshold})
    if link is None:
        return (gr.skip(),) * 8
    settings = (link["product"], link["detector"], link["threshold"])
    if link["picture"] is None:
        return gr.skip(), *settings, *(gr.skip(),) * 4
    path = swatches[link["picture"]]
    return path, *settings, *detect_defects(path, link["detector"], link["threshold"], link["product"])


def build() -> None:
    """The Fabric defects tab's components and events, inside the current gr.Tab."""
    gr.Markdown(INTRO)
    fitted = gr.State(None)
    with gr.Row():
        with gr.Column():
            photo = gr.Image(
                label="Photo of fabric", type="filepath", sources=["upload", "webcam", "clipboard"], height=300, elem_id="fabric-photo"
            )
            with gr.Row():
                product = gr.Dropdown(
                    list(fabric.PRODUCT_NAMES),
                    value=fabric.PRODUCT_NAMES[0],
                    label="Product on the line (sets the calibrated scale and threshold)",
                    elem_id="fabric-product",
                )
                detector = gr.Radio(
                    [("Autoencoder (trained on flawless cloth)", AUTOENCODER), ("Features (memory of flawless patches)", FEATURES)],
                    value=AUTOENCODER,
                    label="Detector",
                    elem_id="fabric-detector",
                )
            with gr.Row():
                detect_button = gr.Button("Find defects", variant="primary", elem_id="fabric-detect")
                random_button = gr.Button("Random swatch with a defect", elem_id="fabric-random")
            threshold = gr.Slider(
                0.5,
                60,
                value=8,
                step=0.1,
                label="Image threshold (standard deviations of flawless cloth's error); moves live",
                elem_id="fabric-threshold",
            )
            truth_note = gr.Markdown()
            gr.Examples(example_rows(), inputs=[photo, product], label="Example swatches (procedural; never used for training)")
            share_link(LINK, {"picture": photo, "product": product, "detector": detector, "threshold": threshold})
        with gr.Column():
            verdict = gr.Markdown(elem_id="fabric-verdict")
            with gr.Row():
                marked = gr.Image(label="Defect regions outlined", type="numpy", buttons=[], height=256)
                heat = gr.Image(
                    label="Anomaly map (fixed scale: blue = like flawless cloth, red = 3x the threshold)",
                    type="numpy",
                    buttons=[],
                    height=256,
                )
            with gr.Row():
                reconstruction = gr.Image(label="The autoencoder's reconstruction", type="numpy", buttons=[], height=256)
                truth = gr.Image(label="True defect (random swatches only)", type="numpy", buttons=[], height=256)
    with gr.Accordion("How good are the detectors? (held-out test swatches)", open=False):
        gr.Markdown(metrics_markdown())
    with gr.Accordion("Fit to your own fabric", open=False):
        gr.Markdown(
            f"Upload {MIN_FIT} to {MAX_FIT} photos of **flawless** product. The features detector memorises their patches; the autoencoder "
            f"fine-tunes on them for up to {FIT.seconds:.0f} seconds. A fifth are held back to calibrate. Stays in your session only."
        )
        fit_files = gr.File(file_count="multiple", file_types=["image"], label="Flawless photos", elem_id="fabric-fit-files")
        with gr.Row():
            fit_button = gr.Button("Fit", variant="primary")
            forget_button = gr.Button("Forget my fit")
        fit_report = gr.Markdown()

    outputs = [reconstruction, heat, marked, verdict]
    new_picture = [photo, detector, product, fitted]
    detect_inputs = [photo, detector, threshold, product, fitted]
    detect_button.click(detect_defects, detect_inputs, outputs, api_name="detect_defects", preprocess=False, **LIGHT_LANE)
    photo.upload(detect_calibrated, new_picture, [*outputs, threshold], api_visibility="private", preprocess=False, **LIGHT_LANE)
    detector.input(detect_calibrated, new_picture, [*outputs, threshold], api_visibility="private", preprocess=False, **LIGHT_LANE)
    product.input(detect_calibrated, new_picture, [*outputs, threshold], api_visibility="private", preprocess=False, **LIGHT_LANE)
    threshold.release(detect_defects, detect_inputs, outputs, api_visibility="private", preprocess=False, **LIGHT_LANE)
    random_button.click(random_defective_swatch, product, [photo, truth, truth_note], api_visibility="private").then(
        detect_calibrated, new_picture, [*outputs, threshold], api_visibility="private", preprocess=False, **LIGHT_LANE
    )
    on_link(open_link, [product, detector, threshold], [photo, product, detector, threshold, *outputs])
    fit_button.click(fit_fabric, fit_files, [fitted, fit_report], api_name="fit_fabric", concurrency_id="fit_fabric", concurrency_limit=1)
    forget_button.click(forget_fit, None, [fitted, fit_report], api_visibility="private")

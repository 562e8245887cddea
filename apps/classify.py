"""Classify tab: name what is in a photo, show where the network looked, and teach it your own classes.

Trace: upload -> `apps.common.open_image` -> `data.photos.to_model_input` -> `models.efficientnet_lite`
-> top-5 labels; Grad-CAM on the last feature maps; a linear head on pooled features for your classes.
"""

from pathlib import Path

import gradio as gr
import numpy as np
import torch
from PIL import Image

from apps.common import (
    FILE_LANE,
    HEAVY_LANE,
    LIGHT_LANE,
    cache_file,
    check_number,
    class_from_text,
    heat_colours,
    link_choice,
    load_model,
    on_gpu,
    on_link,
    open_image,
    read_link,
    share_link,
    to_rgb,
    uploaded_file,
)
from data.photos import EXAMPLES_DIR, to_model_input
from models import hub, taught_head
from models.efficientnet_lite import EfficientNetLite
from models.grad_cam import grad_cam, grad_cam_and_probs
from models.taught_head import TaughtHead

TITLE = "Classify"
CHECKPOINT = "imagenet-classifier"
MAX_CLASSES, MIN_IMAGES_PER_CLASS, MAX_IMAGES_PER_CLASS = 5, 3, 60
RECORD_EVERY_S, RECORD_LIMIT_S = 0.2, 60  # the webcam adds up to 5 frames a second to a class; a recording stops after a minute
LIVE_EVERY_S, LIVE_LIMIT_S = 0.1, 180  # live classification asks for a frame every 0.1 s (it waits while one is in flight)
INTRO = """
### What is in your photo?
**EfficientNet-Lite0** is a convolutional network of 4.7 million weights that learned from 1.3 million labelled ImageNet photos
to tell 1,000 kinds of things apart (we imported Google's published weights and checked them against the reference code).
Upload a photo to see its top-5 guesses, a **Grad-CAM** heat map of where it looked, and what its first layer detects.
Then **teach it your own classes**: it reuses what it already sees and learns only a new last layer, in seconds.
"""


def model() -> EfficientNetLite:
    return load_model(hub.load, EfficientNetLite, CHECKPOINT)


def prepare_photo(image) -> tuple[np.ndarray, torch.Tensor]:
    """Any upload -> ((H, W, 3) uint8 RGB as uploaded, (1, 3, 224, 224) network input on the model's device)."""
    rgb = to_rgb(open_image(image, "a photo"))
    net = model()
    x = to_model_input(rgb, net.config.image_size)[None].to(next(net.parameters()).device)
    return rgb, x


@on_gpu
def classify_image(image) -> dict[str, float]:
    """Name what a photo shows: the five likeliest of the 1,000 ImageNet classes, from EfficientNet-Lite0.

    Args:
        image: a photo (any size; the centre square is read at 224 px).
    Returns:
        {class name: probability} for the five likeliest classes."""
    _, x = prepare_photo(image)
    with torch.inference_mode():
        return top5(model()(x).float().softmax(-1)[0].cpu())


def top5(probs: torch.Tensor) -> dict[str, float]:
    """(1000,) probabilities -> {label: probability} for the five largest."""
    top = probs.topk(5)
    return {model().config.labels[i]: float(p) for p, i in zip(top.values, top.indices, strict=True)}


# --- Grad-CAM (models/grad_cam.py) ----------------------------------------------------------------


def cam_on_photo(rgb: np.ndarray, cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Upsample the (7, 7) map to the photo: (full-size heat (H, W) in [0, 1], overlay (H, W, 3) uint8)."""
    h, w = rgb.shape[:2]
    heat = np.asarray(Image.fromarray(cam.astype(np.float32)).resize((w, h), Image.Resampling.BICUBIC)).clip(0, 1)
    alpha = (0.25 + 0.5 * heat)[..., None]
    overlay = rgb / 255.0 * (1 - alpha) + heat_colours(heat) * alpha
    return heat, (overlay * 255).round().astype(np.uint8)


TOP_CLASS = "its top class"
TAUGHT_PREFIX = "yours: "


def explain_choices(head: TaughtHead | None = None) -> list[str]:
    """What Grad-CAM can explain: the top class, the session's taught classes, then every ImageNet class by number."""
    taught = [TAUGHT_PREFIX + label for label in head.labels] if head is not None else []
    return [TOP_CLASS, *taught, *(f"{i}: {label}" for i, label in enumerate(model().config.labels))]


def explain_choices_update(head: TaughtHead | None):
    """The explain dropdown's choices after the session's head changed (taught or loaded)."""
    return gr.update(choices=explain_choices(head))


@on_gpu
def explain_image(image, explain_class=TOP_CLASS, head: TaughtHead | None = None) -> tuple[np.ndarray, str]:
    """Grad-CAM: where in the photo the network looked for one class ("why not cat?").

    Args:
        image: a photo.
        explain_class: "its top class" (or empty), an ImageNet class as "281", "281: tabby" or "tabby", or one of this session's taught classes as "yours: <name>".
    Returns:
        The photo with a heat map over the regions that raised that class, and a sentence naming the class and its probability."""
    rgb, x = prepare_photo(image)
    net = model()
    choice = "" if explain_class is None else str(explain_class).strip()
    if choice.startswith(TAUGHT_PREFIX):
        name = choice[len(TAUGHT_PREFIX) :]
        if head is None or name not in head.labels:
            raise gr.Error(f"There is no taught class {name[:40]!r} in this session. Teach it first, or pick an ImageNet class.")
        cam, index, prob = grad_cam(net, x, head.labels.index(name), classifier=head.logits)
        _, overlay = cam_on_photo(rgb, cam)
        return overlay, f"Where the network looked for your class **{name}** ({prob:.0%} among your classes): red is strongest."
    index = None if choice in ("", TOP_CLASS) else class_from_text(choice, model().config.labels)
    cam, index, prob = grad_cam(net, x, index)
    _, overlay = cam_on_photo(rgb, cam)
    return overlay, cam_caption(index, prob)


def cam_caption(index: int, prob: float) -> str:
    return f"Where the network looked to say **{model().config.labels[index]}** ({prob:.0%}): red is strongest."


# --- Inside the network ---------------------------------------------------------------------------


def tile(maps: np.ndarray, columns: int, gap: int = 2, fill: float = 1.0) -> np.ndarray:
    """(N, H, W[, 3]) in [0, 1] -> one grid image, `columns` wide."""
    n, h, w = maps.shape[:3]
    rows = -(-n // columns)
    grid = np.full((rows * (h + gap) - gap, columns * (w + gap) - gap, *maps.shape[3:]), fill, dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, columns)
        grid[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = maps[i]
    return grid


def first_layer_filters() -> np.ndarray:
    """The stem's 32 learned 3x3 RGB filters, each enlarged to 30 x 30 px, as one uint8 image."""
    weights = model().stem.conv.weight.detach().float().cpu().numpy()  # (32, 3, 3, 3)
    weights = weights.transpose(0, 2, 3, 1)  # (32, 3, 3, RGB)
    scaled = 0.5 + weights / (2 * np.abs(weights).max())  # grey = 0, colour shows the sign and channel
    big = np.kron(scaled, np.ones((1, 10, 10, 1), dtype=np.float32))
    return (tile(big, 8) * 255).round().astype(np.uint8)


def feature_maps(x: torch.Tensor) -> np.ndarray:
    """The first 16 of the stem's 32 feature maps (112 x 112 each) for a network input (1, 3, 224, 224), as one uint8 image."""
    net = model()
    with torch.inference_mode():
        maps = net.stem(net.normalize(x))[0, :16].float().cpu().numpy()  # (16, 112, 112), ReLU6 output
    maps = maps / 6.0  # ReLU6: 0..6
    return (tile(maps, 4, fill=0.3) * 255).round().astype(np.uint8)


def inspect_image(image) -> tuple[np.ndarray, np.ndarray]:
    _, x = prepare_photo(image)
    return first_layer_filters(), feature_maps(x)


def describe_photo(image):
    """Everything the tab shows for a new photo, from one decode and one pass through the network:
    (top-5, Grad-CAM overlay, caption, first-layer filters, feature maps); all empty when the photo is cleared."""
    if image is None:
        return None, None, "", None, None
    rgb, x = prepare_photo(image)
    cam, index, probs = grad_cam_and_probs(model(), x)
    _, overlay = cam_on_photo(rgb, cam)
    return top5(probs), overlay, cam_caption(index, float(probs[index])), first_layer_filters(), feature_maps(x)


# --- Teach it your own classes --------------------------------------------------------------------


# A session's examples: for each class slot, the frames recorded from the webcam and the images added to it, each
# cropped and resized once (data.photos.square_crop) and looked at once by the network (taught_head.Example). They
# live in that session's gr.State only, so nobody sees another session's classes, and go when the session ends.
Examples = list[list[taught_head.Example]]


def no_examples() -> Examples:
    return [[] for _ in range(MAX_CLASSES)]


def class_slot(class_number) -> int:
    """A class number 1..MAX_CLASSES (as a learner counts) -> its slot 0..MAX_CLASSES - 1."""
    return int(check_number(class_number, "Class number", 1, MAX_CLASSES, integer=True)) - 1


def example_count(examples: Examples | None, slot: int) -> str:
    n = len((examples or no_examples())[slot])
    full = " (full: clear it to record again)" if n >= MAX_IMAGES_PER_CLASS else ""
    return f"**{n}** of {MAX_IMAGES_PER_CLASS} examples{full}"


def example_counts(examples: Examples | None) -> tuple[str, ...]:
    return tuple(example_count(examples, k) for k in range(MAX_CLASSES))


def as_file_list(images) -> list:
    """Whatever an API caller sent as a list of images -> the non-empty entries (a single file counts as a list of one)."""
    if images is None:
        return []
    if isinstance(images, (str, dict)) or not isinstance(images, (list, tuple)):
        images = [images]
    return [f for f in images if f is not None and not (isinstance(f, (str, dict)) and not f)]


@on_gpu
def add_examples(class_number, images, examples: Examples | None = None):
    """Add pictures to one of the classes this session is teaching (what the webcam's Record button does).

    Each picture is cropped to its centre square and resized to 224 x 224 once. A class holds up to 60; a refused request adds nothing.

    Args:
        class_number: which class, 1 to 5.
        images: a list of pictures to add.
    Returns:
        Each class's count of examples, in words."""
    slot = class_slot(class_number)
    files = as_file_list(images)
    if not files:
        raise gr.Error("No images were sent. Add one or more images (or record from the webcam).", title="Please check the input")
    examples = examples or no_examples()
    have = len(examples[slot])
    if have + len(files) > MAX_IMAGES_PER_CLASS:
        raise gr.Error(
            f"Class {slot + 1} has {have} examples and holds up to {MAX_IMAGES_PER_CLASS}: {len(files)} more is too many. "
            "Send fewer, or clear the class first. Your classes are unchanged.",
            title="Too many examples",
        )
    added = taught_head.make_examples(model(), [to_rgb(open_image(f, f"an image for class {slot + 1}")) for f in files])
    examples[slot].extend(added)  # in place: see the examples State in build()
    return examples, *example_counts(examples)


@on_gpu
def record_frame(class_number, frame, examples: Examples | None = None):
    """One webcam frame while a class records -> (the session's examples with the frame added, that class's count).
    A full class keeps its examples and says so; an empty frame changes nothing."""
    slot = class_slot(class_number)
    examples = examples or no_examples()
    if frame is None or len(examples[slot]) >= MAX_IMAGES_PER_CLASS:
        return examples, example_count(examples, slot)
    added = taught_head.make_examples(model(), [to_rgb(open_image(frame, "a webcam frame"))])
    examples[slot].extend(added)  # in place: see the examples State in build()
    return examples, example_count(examples, slot)


def clear_examples(class_number, examples: Examples | None = None):
    """Forget the examples recorded or added for one of this session's classes.

    Args:
        class_number: which class, 1 to 5.
    Returns:
        Each class's count of examples, in words."""
    slot = class_slot(class_number)
    examples = examples or no_examples()
    examples[slot].clear()
    return examples, *example_counts(examples)


def check_classes(names: list[str | None], files: list[list | None], examples: Examples | None = None) -> tuple[list[str], list[list]]:
    """The filled-in class slots as (names, [their examples: recorded crops first, then uploaded files]), or a gr.Error
    saying what is missing."""
    examples = examples or no_examples()
    labels, groups = [], []
    for k, (name, group) in enumerate(zip(names, files, strict=True), start=1):
        name = "" if name is None else str(name).strip()  # an API caller may send a number
        group = list(examples[k - 1]) + as_file_list(group)
        if not name and not group:
            continue
        if not name:
            raise gr.Error(f"Class {k} has images but no name. Give every class a name.")
        if len(name) > 40:
            raise gr.Error(f"Class name {name[:40]!r}... is too long: keep names under 40 characters.")
        if len(group) < MIN_IMAGES_PER_CLASS:
            raise gr.Error(f"Class {name!r} has {len(group)} image(s); add at least {MIN_IMAGES_PER_CLASS} (record or upload).")
        if len(group) > MAX_IMAGES_PER_CLASS:
            raise gr.Error(f"Class {name!r} has {len(group)} images; {MAX_IMAGES_PER_CLASS} per class is the limit.")
        if name in labels:
            raise gr.Error(f"Two classes are both called {name!r}. Give each class its own name.")
        labels.append(name)
        groups.append(group)
    if len(labels) < 2:
        raise gr.Error(f"Fill in at least 2 classes (up to {MAX_CLASSES}), each with a name and {MIN_IMAGES_PER_CLASS} or more images.")
    return labels, groups


MAX_EPOCHS, MAX_BATCH = 1000, 256
DEFAULT_TRAINING = taught_head.HeadTraining()


def train_head(labels: list[str], images: list[np.ndarray], targets: np.ndarray, progress=None, seed: int = 0, settings=None) -> TaughtHead:
    """models.taught_head.train_head on the shipped photo classifier (its default settings unless given)."""
    return taught_head.train_head(model(), labels, images, targets, settings=settings, progress=progress, seed=seed)


def training_settings(epochs, learning_rate, batch_size) -> taught_head.HeadTraining:
    """The learner's training options, checked; None takes the default."""
    d = DEFAULT_TRAINING
    epochs = int(check_number(d.epochs if epochs is None else epochs, "Epochs", 1, MAX_EPOCHS, integer=True))
    lr = float(check_number(d.lr if learning_rate is None else learning_rate, "Learning rate", 1e-5, 1.0))
    batch = int(check_number(d.batch_size if batch_size is None else batch_size, "Batch size", 0, MAX_BATCH, integer=True))
    return taught_head.HeadTraining(epochs=epochs, lr=lr, batch_size=batch)


@on_gpu
def teach_classes(
    name_1=None,
    images_1=None,
    name_2=None,
    images_2=None,
    name_3=None,
    images_3=None,
    name_4=None,
    images_4=None,
    name_5=None,
    images_5=None,
    epochs=DEFAULT_TRAINING.epochs,
    learning_rate=DEFAULT_TRAINING.lr,
    batch_size=DEFAULT_TRAINING.batch_size,
    examples: Examples | None = None,
    progress=gr.Progress(),  # noqa: B008 (Gradio injects it)
) -> tuple[TaughtHead, str]:
    """Teach the photo classifier 2 to 5 classes of your own: a new last layer trained on its frozen features.

    Args:
        name_1: the first class's name (up to 40 characters).
        images_1: pictures of the first class; with what add_examples added to class 1, it needs 3 to 60.
        name_2: the second class's name.
        images_2: pictures of the second class (3 to 60 with its added examples).
        name_3: the third class's name (optional; empty classes are skipped).
        images_3: pictures of the third class.
        name_4: the fourth class's name (optional).
        images_4: pictures of the fourth class.
        name_5: the fifth class's name (optional).
        images_5: pictures of the fifth class.
        epochs: passes over the training pictures, 1 to 1000.
        learning_rate: Adam's step size, 0.00001 to 1.
        batch_size: pictures per update, 0 (all at once) to 256.
    Returns:
        A report with the accuracy on your held-out pictures; the taught head stays in this session for classify_taught."""
    settings = training_settings(epochs, learning_rate, batch_size)
    names = [name_1, name_2, name_3, name_4, name_5]
    files = [images_1, images_2, images_3, images_4, images_5]
    labels, groups = check_classes(names, files, examples)
    progress(0.05, desc="Looking at your images with the ImageNet network")
    ready, targets = [], []  # recorded and added examples are ready; images sent with this call are prepared now
    for k, group in enumerate(groups):
        files = [item for item in group if not isinstance(item, taught_head.Example)]
        rgbs = [to_rgb(open_image(f, f"an image for class {labels[k]!r}")) for f in files]
        ready += [item for item in group if isinstance(item, taught_head.Example)] + taught_head.make_examples(model(), rgbs)
        targets += [k] * len(group)
    head = taught_head.fit_examples(labels, ready, np.asarray(targets, dtype=np.int64), settings, progress)
    report = (
        f"Learned **{len(labels)} classes** ({', '.join(labels)}) from {head.n_train} images (and their mirror images). "
        f"On the **{head.n_held_out} images it did not learn from**, it is right **{head.held_out_accuracy:.0%}** of the time. "
        "Now start the live camera, try a new image below, or open *Under the hood*."
    )
    return head, report


def confusion_picture(head: TaughtHead | None) -> np.ndarray | None:
    """The held-out confusion matrix as a picture: rows are the true class, columns the guess, each cell's count in it,
    shaded by the share of its row (dark blue = all of that class's held-out images went there)."""
    if head is None or head.confusion is None:
        return None
    from PIL import ImageDraw, ImageFont

    classes, cell, left, top = len(head.labels), 72, 170, 70
    font, small = ImageFont.load_default(18), ImageFont.load_default(14)
    picture = Image.new("RGB", (left + classes * cell + 20, top + classes * cell + 20), "white")
    draw = ImageDraw.Draw(picture)
    draw.text((left + classes * cell / 2, 8), "what it guessed", fill="black", font=small, anchor="mt")
    draw.text((8, top - 22), "true class", fill="black", font=small)
    for k, label in enumerate(head.labels):
        name = label if len(label) <= 16 else label[:15] + "..."
        draw.text((left + k * cell + cell / 2, top - 10), name[:8], fill="black", font=small, anchor="ms")
        draw.text((left - 8, top + k * cell + cell / 2), name, fill="black", font=small, anchor="rm")
    for true, row in enumerate(head.confusion):
        total = max(1, sum(row))
        for guess, count in enumerate(row):
            share = count / total
            colour = tuple(int(255 - share * (255 - c)) for c in (31, 84, 160))
            x, y = left + guess * cell, top + true * cell
            draw.rectangle([x, y, x + cell - 2, y + cell - 2], fill=colour, outline=(200, 200, 200))
            draw.text((x + cell / 2, y + cell / 2), str(count), fill="white" if share > 0.5 else "black", font=font, anchor="mm")
    return np.asarray(picture)


def training_curve(head: TaughtHead | None):
    """Loss and accuracy per epoch, on the training images and the held-out ones, as long-form rows for a plot."""
    import pandas as pd

    if head is None or not head.history:
        return None
    names = {
        "train_loss": "training loss",
        "held_out_loss": "held-out loss",
        "train_accuracy": "training accuracy",
        "held_out_accuracy": "held-out accuracy",
    }
    rows = [{"epoch": e["epoch"], "value": e[key], "curve": name} for e in head.history for key, name in names.items() if key in e]
    return pd.DataFrame(rows)


def under_the_hood(head: TaughtHead | None) -> tuple[np.ndarray | None, object, str]:
    """(confusion-matrix picture, training curve, what was learned and which images were held out) for the session's head."""
    if head is None:
        return None, None, "*Teach some classes (or load a head) to see inside it.*"
    frozen = sum(p.numel() for p in model().parameters())
    lines = [
        f"**{head.weights_learned:,} weights learned**: the last layer only ({len(head.labels)} classes x 1,280 features + "
        f"{len(head.labels)} biases). The network's {frozen / 1e6:.1f} million other weights stayed frozen.",
    ]
    if head.confusion is None:
        lines.append("This head was loaded from a file: its training history and held-out images are not in it.")
    else:
        accuracy = head.per_class_accuracy()
        lines.append("\n| class | held-out images | right |\n| --- | --- | --- |")
        for label, row, acc in zip(head.labels, head.confusion, accuracy, strict=True):
            lines.append(f"| {label} | {sum(row)} | {'-' if np.isnan(acc) else f'{acc:.0%}'} |")
        lines.append(
            f"\n{head.n_held_out} images were held out, about 30% of each class, and never trained on "
            f"(numbers {', '.join(str(i + 1) for i in head.held_out_index)} of the {head.n_train + head.n_held_out} you gave, in order)."
        )
    return confusion_picture(head), training_curve(head), "\n".join(lines)


def require_head(head: TaughtHead | None) -> TaughtHead:
    if head is None:
        raise gr.Error("Teach it some classes first (name 2 or more, record or add 3+ images to each, press 'Teach'), or load a head.")
    return head


def taught_probabilities(head: TaughtHead, rgb: np.ndarray) -> dict[str, float]:
    """(H, W, 3) uint8 -> {your label: probability}, framed the way the head's examples were (centre square)."""
    probs = head.probabilities(taught_head.pooled_features(model(), [rgb]))[0]
    return {label: float(p) for label, p in zip(head.labels, probs, strict=True)}


@on_gpu
def classify_taught(head: TaughtHead | None, image) -> dict[str, float]:
    """Classify a photo (or one webcam frame) into the classes this session taught.

    Args:
        image: a photo.
    Returns:
        {your class name: probability}."""
    return taught_probabilities(require_head(head), to_rgb(open_image(image, "a photo")))


LIVE_RESTART_S = 2.0  # a gap this long between frames starts a new count (the camera was stopped and started again)


@on_gpu
def classify_live(frame, head: TaughtHead | None = None, live: dict | None = None):
    """One webcam frame -> ({your label: probability}, a caption with the frames classified and the rate, the live
    count). The stream sends the next frame when this answer is back, so the rate is what the server keeps up with."""
    import time

    require_head(head)
    if frame is None:
        return gr.skip(), gr.skip(), live
    probs = taught_probabilities(head, to_rgb(open_image(frame, "a webcam frame")))
    now = time.monotonic()
    if not live or now - live["last"] > LIVE_RESTART_S:
        live = {"first": now, "last": now, "frames": 0}
    live = {"first": live["first"], "last": now, "frames": live["frames"] + 1}
    elapsed = now - live["first"]
    rate = f", {(live['frames'] - 1) / elapsed:.1f} a second" if elapsed > 0.5 else ""
    return probs, f"Live: **{live['frames']}** frames classified{rate}.", live


def download_head(head: TaughtHead | None) -> str:
    """Download this session's taught head, to load it again later with load_head.

    Returns:
        A .safetensors file: weight (classes, 1280) and bias in float32, with the labels and preprocessing in its metadata."""
    if head is None:
        raise gr.Error("There is no taught head yet: teach it some classes first.")
    return cache_file(taught_head.head_bytes(head, CHECKPOINT, model().config.image_size), "taught_head.safetensors")


def load_head(file, head: TaughtHead | None = None) -> tuple[TaughtHead, str]:
    """Load a head file this tab made back into this session; it then classifies exactly as before it was saved.

    Anything else (damaged, foreign, other shapes, dtypes or backbone) is refused with the reason, and the session keeps its head.

    Args:
        file: a .safetensors head file downloaded from this tab.
    Returns:
        A report naming the loaded classes."""
    if isinstance(file, dict):
        file = file.get("path")
    if not file:
        raise gr.Error("Nothing was uploaded. Please add a head file (.safetensors) that this tab made.", title="Please check the input")
    path = uploaded_file(file, "a head file (.safetensors)")
    if path.stat().st_size > taught_head.MAX_HEAD_BYTES:
        raise gr.Error("That file is far larger than a taught head. Upload the .safetensors file this tab made.", title="Not a head")
    try:
        loaded = taught_head.load_head_bytes(path.read_bytes(), CHECKPOINT, MAX_CLASSES)
    except taught_head.HeadFileError as err:
        raise gr.Error(f"{err} Your session keeps the head it had.", title="Not a head this tab can use") from None
    accuracy = (
        ""
        if np.isnan(loaded.held_out_accuracy)
        else f" When it was taught, it was right {loaded.held_out_accuracy:.0%} of the time on held-out images."
    )
    report = f"Loaded a head with **{len(loaded.labels)} classes** ({', '.join(loaded.labels)}).{accuracy} Try a new image below."
    return loaded, report


def example_files() -> list[str]:
    return [str(p) for p in sorted(EXAMPLES_DIR.glob("*.jpg"))]


LINK = __name__.rsplit(".", 1)[-1]


def open_link(photo, explain_class, request: gr.Request):
    """A page opened on a link to this tab: the sample photo it names and the class to explain (the photo's change
    event then classifies and explains it)."""
    photos = {Path(p).name: p for p in example_files()}
    readers = {"picture": link_choice(photos), "explain": link_choice(explain_choices())}
    link = read_link(request, LINK, readers, {"picture": None, "explain": explain_class})
    if link is None:
        return gr.skip(), gr.skip()
    return (photos[link["picture"]] if link["picture"] else gr.skip()), link["explain"]


def explain_if_chosen(image, explain_class, head):
    """After a new photo: Grad-CAM for the class picked in the dropdown, when it is not the top class (already shown)."""
    if image is None or not explain_class or explain_class == TOP_CLASS:
        return gr.skip(), gr.skip()
    return explain_image(image, explain_class, head)


def build() -> None:
    """The Classify tab's components and events, inside the current gr.Tab."""
    gr.Markdown(INTRO)
    with gr.Row():
        with gr.Column():
            photo = gr.Image(
                label="Your photo", type="filepath", sources=["upload", "webcam", "clipboard"], elem_id="classify-photo", height=320
            )
            with gr.Row():
                classify_button = gr.Button("Classify", variant="primary")
                explain_button = gr.Button("Where did it look?")
            explain_class = gr.Dropdown(
                explain_choices(),
                value=TOP_CLASS,
                filterable=True,
                label="Explain which class? (type to search: 'why not cat?')",
                elem_id="classify-explain-class",
            )
            gr.Examples(example_files(), inputs=photo, label="Sample photos (scikit-image, scikit-learn)")
            share_link(LINK, {"picture": photo, "explain": explain_class})
        with gr.Column():
            top5_label = gr.Label(num_top_classes=5, label="Top 5 ImageNet classes", elem_id="classify-top5")
            heat = gr.Image(label="Grad-CAM: where it looked", type="numpy", buttons=[], height=320, elem_id="classify-cam")
            heat_caption = gr.Markdown()
    with gr.Accordion("Inside the network: first-layer filters and feature maps", open=False):
        gr.Markdown(
            "The first layer has 32 filters of 3 x 3 pixels x 3 colours (grey = 0; colour shows which channel a filter likes). "
            "Each slides over the photo and lights up where its pattern appears: edges, colour contrasts, textures. "
            "These are 16 of the 32 resulting **feature maps** for your photo (bright = strong response)."
        )
        with gr.Row():
            filters = gr.Image(label="32 first-layer filters", type="numpy", buttons=[], height=260)
            maps = gr.Image(label="16 feature maps for this photo", type="numpy", buttons=[], height=260)
    with gr.Accordion("Teach it your own classes", open=False, elem_id="teach"):
        gr.Markdown(
            f"Name 2 to {MAX_CLASSES} classes and give each at least {MIN_IMAGES_PER_CLASS} examples: press **Record** on a class's webcam "
            f"(it adds {1 / RECORD_EVERY_S:.0f} frames a second, up to {MAX_IMAGES_PER_CLASS}), or add images. The network stays frozen; only a new "
            "last layer learns, from the 1,280 numbers it already computes for each image. About 30% of your examples are held back "
            "to measure how well it learned. Your classes stay in your browser session only."
        )
        names, uploads, cameras, counts, clears, numbers = [], [], [], [], [], []
        with gr.Row():
            for k in range(MAX_CLASSES):
                with gr.Column(min_width=160):
                    names.append(gr.Textbox(label=f"Class {k + 1} name", max_length=40, elem_id=f"teach-name-{k}"))
                    cameras.append(
                        gr.Image(
                            label=f"Class {k + 1}: record from the webcam",
                            sources=["webcam"],
                            streaming=True,
                            type="numpy",
                            webcam_options=gr.WebcamOptions(mirror=True),
                            height=180,
                            elem_id=f"teach-cam-{k}",
                        )
                    )
                    counts.append(gr.Markdown(example_count(None, k), elem_id=f"teach-count-{k}"))
                    uploads.append(
                        gr.File(
                            label=f"Class {k + 1}: add images", file_count="multiple", file_types=["image"], elem_id=f"teach-images-{k}"
                        )
                    )
                    clears.append(gr.Button(f"Clear class {k + 1}", size="sm"))
                    numbers.append(gr.Number(k + 1, visible=False))
        slots = [component for pair in zip(names, uploads, strict=True) for component in pair]
        with gr.Row():
            epochs = gr.Slider(1, 300, value=DEFAULT_TRAINING.epochs, step=1, label="Epochs (passes over your images)")
            learning_rate = gr.Number(value=DEFAULT_TRAINING.lr, minimum=1e-5, maximum=1.0, label="Learning rate (Adam)")
            batch_size = gr.Slider(0, 64, value=DEFAULT_TRAINING.batch_size, step=1, label="Batch size (0 = all images at once)")
        teach_button = gr.Button("Teach", variant="primary")
        report = gr.Markdown(elem_id="teach-report")
        with gr.Accordion("Under the hood: how well it learned", open=False, elem_id="under-the-hood"):
            with gr.Row():
                confusion = gr.Image(
                    label="Held-out confusion matrix", type="numpy", format="png", buttons=[], height=300, elem_id="teach-confusion"
                )
                curve = gr.LinePlot(x="epoch", y="value", color="curve", height=300, label="Loss and accuracy per epoch")
            hood = gr.Markdown(elem_id="teach-hood")
        with gr.Row():
            with gr.Column():
                live_camera = gr.Image(
                    label="Live: your webcam, classified as it moves (press Record)",
                    sources=["webcam"],
                    streaming=True,
                    type="numpy",
                    webcam_options=gr.WebcamOptions(mirror=True),
                    height=240,
                    elem_id="live-cam",
                )
                new_photo = gr.Image(
                    label="Or try an image", type="filepath", sources=["upload", "clipboard"], height=200, elem_id="taught-photo"
                )
            with gr.Column():
                taught_label = gr.Label(label="Your classes", elem_id="taught-label")
                live_caption = gr.Markdown(elem_id="live-caption")
        with gr.Row():
            try_button = gr.Button("Classify with my classes")
            download_button = gr.Button("Download my head (.safetensors)")
            download = gr.File(label="Your head", interactive=False)
        with gr.Row():
            head_upload = gr.File(label="A head you downloaded before (.safetensors)", file_types=[".safetensors"], elem_id="head-upload")
            load_button = gr.Button("Load this head")
    head_state = gr.State(None)
    # Examples: this session's recorded and added examples, per class. Each session gets its own copy of this value,
    # and the events change it in place (add_in_place): two uploads at once (class 1 and class 2) run side by side in
    # the light lane, and each would otherwise write back its own copy, losing the other's images.
    examples = gr.State(no_examples())
    live = gr.State(None)  # the live stream's frame count and start, for its rate

    classify_button.click(classify_image, photo, top5_label, api_name="classify_image", preprocess=False, **LIGHT_LANE)
    explain_button.click(
        explain_image, [photo, explain_class, head_state], [heat, heat_caption], api_name="explain_image", preprocess=False, **LIGHT_LANE
    )
    photo.change(
        describe_photo, photo, [top5_label, heat, heat_caption, filters, maps], api_visibility="private", preprocess=False, **LIGHT_LANE
    ).success(
        explain_if_chosen,
        [photo, explain_class, head_state],
        [heat, heat_caption],
        api_visibility="private",
        preprocess=False,
        **LIGHT_LANE,
    )
    on_link(open_link, [photo, explain_class], [photo, explain_class])
    for k in range(MAX_CLASSES):
        # One endpoint per action: the first class's events are /add_examples and /clear_examples (they take the class
        # number); the other classes' are the same calls, wired to their own components.
        public = {"api_name": "add_examples"} if k == 0 else {"api_visibility": "private"}
        added = uploads[k].upload(
            add_examples, [numbers[k], uploads[k], examples], [examples, *counts], **public, preprocess=False, **LIGHT_LANE
        )
        added.then(lambda: None, None, uploads[k], api_visibility="private", queue=False)  # the images are in the class now
        cameras[k].stream(
            record_frame,
            [numbers[k], cameras[k], examples],
            [examples, counts[k]],
            stream_every=RECORD_EVERY_S,
            time_limit=RECORD_LIMIT_S,
            api_visibility="private",
            show_progress="hidden",
            preprocess=False,  # the frame as sent (a JPEG data URL), decoded by apps.common.open_image with its size checks
            **LIGHT_LANE,
        )
        public = {"api_name": "clear_examples"} if k == 0 else {"api_visibility": "private"}
        clears[k].click(clear_examples, [numbers[k], examples], [examples, *counts], **public, **FILE_LANE)
    teach = teach_button.click(
        teach_classes,
        [*slots, epochs, learning_rate, batch_size, examples],
        [head_state, report],
        api_name="teach_classes",
        preprocess=False,
        **HEAVY_LANE,
    )
    teach.success(explain_choices_update, head_state, explain_class, api_visibility="private", queue=False)
    teach.success(under_the_hood, head_state, [confusion, curve, hood], api_visibility="private", **LIGHT_LANE)
    live_camera.stream(
        classify_live,
        [live_camera, head_state, live],
        [taught_label, live_caption, live],
        stream_every=LIVE_EVERY_S,
        time_limit=LIVE_LIMIT_S,
        # gradio_client cannot follow a streaming event; a program sends its frames to /classify_taught, the same model call.
        api_visibility="private",
        show_progress="hidden",
        preprocess=False,
        **LIGHT_LANE,
    )
    try_button.click(classify_taught, [head_state, new_photo], taught_label, api_name="classify_taught", preprocess=False, **LIGHT_LANE)
    # Registered after the button, so the endpoint keeps its name (a private event would take it first).
    new_photo.upload(classify_taught, [head_state, new_photo], taught_label, api_visibility="private", preprocess=False, **LIGHT_LANE)
    # Heads go in and out as files, with no network: they wait in the file lane, not a model lane.
    download_button.click(download_head, head_state, download, api_name="download_head", **FILE_LANE)
    load = load_button.click(
        load_head, [head_upload, head_state], [head_state, report], api_name="load_head", preprocess=False, **FILE_LANE
    )
    load.success(explain_choices_update, head_state, explain_class, api_visibility="private", queue=False)
    load.success(under_the_hood, head_state, [confusion, curve, hood], api_visibility="private", **LIGHT_LANE)

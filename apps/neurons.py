"""Neurons tab: a perceptron and an MLP learn rabbits from unicorns, live, in the browser.

Trace: settings -> `data.animals.make_animals` -> `models.mlp` (Perceptron or MLP) trained here,
epoch by epoch -> decision boundary, loss curves, a weight diagram and every neuron's own map, drawn with PIL.

The playground's model is trained on the spot for each visitor, so there is no checkpoint:
every run is seeded, and the same settings give the same numbers, live or through the API.
"""

import copy
import dataclasses
import functools
import inspect
import math
import threading
import time
from dataclasses import dataclass, field

import gradio as gr
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from apps.common import HEAVY_LANE, RecentAnswers, check_number, link_flag, link_js, warn_ignored
from data.animals import CLASSES, HIGH, LAYOUTS, LOW, make_animals
from models import mlp
from models.mlp import ACTIVATIONS, MLP, TALK_WEIGHTS, MLPConfig, Perceptron, input_names

TITLE = "Neurons"
INTRO = """
### One neuron, then many: rabbits or unicorns?
An **artificial neuron** multiplies its inputs (an animal's speed and size, plus a constant 10) by **weights**, adds them up,
and says "unicorn" when the sum is above zero: a straight line through the picture. The **perceptron rule** learns the
weights by nudging them after every mistake. Stack neurons in **hidden layers** with a smooth activation and the network
can bend that line; it learns every weight at once by **gradient descent**. Pick a preset, press **Play**, and watch it learn:
the **neuron maps** below show what each hidden neuron computes, so you can see the first layer's straight lines combine into
the next layer's curves. **Engineered inputs** such as speed² hand the model a curve for free.
*The animals are invented for teaching: each is just two numbers drawn at random around a pattern (see `data/animals.py`).*
"""

MODELS = ["perceptron", "mlp"]
LEARNING_RATES = [0.00001, 0.0001, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0]
MAX_EPOCHS = 5000
MLP_EPOCHS_PER_FRAME = 10  # full-batch gradient steps between two pictures
PERCEPTRON_EPOCHS_PER_FRAME = 1  # one pass of the perceptron rule over every training animal

RABBIT_RGB = np.array([245, 158, 11], np.float32)  # amber
UNICORN_RGB = np.array([99, 102, 241], np.float32)  # indigo


@dataclass
class PlaygroundSettings:
    """Everything that defines a run; the same settings always give the same run."""

    layout: str = "curved"
    n_samples: int = 200
    noise: float = 0.3
    train_fraction: float = 0.5
    seed: int = 0
    model: str = "mlp"  # "perceptron" (one step neuron, perceptron rule) or "mlp" (gradient descent)
    hidden_layers: int = 2
    neurons: int = 8
    activation: str = "tanh"
    learning_rate: float = 0.1
    dropout: float = 0.0
    l2: float = 0.0
    talk_weights: bool = False  # perceptron only: start from the talk's weights 1, 1, -1 instead of 0, 0, 0
    epochs: int = 500  # where Play stops, and what the API trains for
    # Added after the first release, at the end, so positional API calls keep their meaning.
    batch_size: int = 0  # MLP: animals per gradient step; 0 = all of them (full batch)
    l1: float = 0.0  # MLP: L1 strength, which pushes unneeded weights to exactly zero
    speed_squared: bool = False  # engineered inputs (see models.mlp.engineered_columns), for both models
    size_squared: bool = False
    speed_times_size: bool = False
    sin_speed: bool = False
    sin_size: bool = False

    @property
    def extras(self) -> tuple[str, ...]:
        """The engineered inputs switched on, in the order models.mlp.ENGINEERED names them."""
        return tuple(name for name, on in zip(mlp.ENGINEERED, [getattr(self, flag) for flag in EXTRA_FLAGS], strict=True) if on)


SETTING_NAMES = [f.name for f in dataclasses.fields(PlaygroundSettings)]
EXTRA_FLAGS = ("speed_squared", "size_squared", "speed_times_size", "sin_speed", "sin_size")  # one per mlp.ENGINEERED

PRESETS: dict[str, tuple[PlaygroundSettings, str]] = {
    "Perceptron: separable": (
        PlaygroundSettings(layout="separable", model="perceptron", learning_rate=0.01, epochs=20),
        "One neuron, straight line, clean clusters: the perceptron rule finds a separating line within a few passes.",
    ),
    "Perceptron: curved (underfits)": (
        PlaygroundSettings(layout="curved", model="perceptron", learning_rate=0.01, epochs=40),
        "Rabbits in the middle, unicorns around them: no straight line can do it, so a single neuron keeps flipping and stays near chance. That is underfitting.",
    ),
    "MLP: curved": (
        PlaygroundSettings(layout="curved", model="mlp", hidden_layers=2, neurons=8, activation="tanh", learning_rate=0.1, epochs=500),
        "Two hidden layers of eight tanh neurons bend the boundary into a closed curve around the rabbits.",
    ),
    "Overfitting: huge MLP, few samples": (
        PlaygroundSettings(
            layout="few samples",
            n_samples=300,
            noise=0.9,
            train_fraction=0.1,
            seed=1,
            model="mlp",
            hidden_layers=4,
            neurons=32,
            activation="relu",
            learning_rate=0.1,
            epochs=1500,
        ),
        "4 x 32 ReLU neurons and only 30 noisy training animals: it memorises every one (train accuracy 100%), drawing islands around stray points, and does worse on the 270 animals it never saw.",
    ),
    "Rescued by dropout": (
        PlaygroundSettings(
            layout="few samples",
            n_samples=300,
            noise=0.9,
            train_fraction=0.1,
            seed=1,
            model="mlp",
            hidden_layers=4,
            neurons=32,
            activation="relu",
            learning_rate=0.1,
            dropout=0.3,
            epochs=1500,
        ),
        "The same network and data, but each training step switches off a random 30% of the hidden neurons, so no neuron can rely on memorised details: a smoother boundary and better test accuracy.",
    ),
    "Perceptron + speed², size²: curved": (
        PlaygroundSettings(layout="curved", model="perceptron", learning_rate=0.01, epochs=40, speed_squared=True, size_squared=True),
        "The same single neuron, given speed² and size² (measured from the middle) as extra inputs: a circle is a straight line in those, so now it separates the rabbits from the unicorns. More features can stand in for more layers.",
    ),
    "XOR: two neurons or speed·size": (
        PlaygroundSettings(layout="xor", model="mlp", hidden_layers=1, neurons=4, activation="tanh", learning_rate=0.1, epochs=300),
        "Unicorns are fast or big, but not both. No single line can do that; watch the neuron maps: each hidden neuron draws one line, and the output combines them. (A perceptron with the speed·size input solves it alone.)",
    ),
    "Rings: mini-batches": (
        PlaygroundSettings(
            layout="rings",
            n_samples=500,
            model="mlp",
            hidden_layers=2,
            neurons=8,
            activation="tanh",
            learning_rate=0.1,
            epochs=300,
            batch_size=25,
        ),
        "Rabbits in the middle and on an outer ring, unicorns on the ring between: two curves are needed. Mini-batches of 25 take ten noisy steps per pass over the data instead of one exact step, so the network gets there in far fewer passes. Set the mini-batch size to 0 to compare.",
    ),
}


def validate(settings: PlaygroundSettings) -> PlaygroundSettings:
    """Clean, typed settings or a gr.Error naming the setting and its allowed range."""
    if settings.layout not in LAYOUTS:
        raise gr.Error(f"Data layout must be one of {', '.join(LAYOUTS)} (got {settings.layout!r}).")
    if settings.model not in MODELS:
        raise gr.Error(f"Model must be 'perceptron' or 'mlp' (got {settings.model!r}).")
    if settings.activation not in ACTIVATIONS:
        raise gr.Error(f"Activation must be one of {', '.join(ACTIVATIONS)} (got {settings.activation!r}).")
    return dataclasses.replace(
        settings,
        n_samples=int(check_number(settings.n_samples, "Number of animals", 10, 2000, integer=True)),
        noise=check_number(settings.noise, "Noise", 0, 1),
        train_fraction=check_number(settings.train_fraction, "Training share", 0.05, 0.95),
        seed=int(check_number(settings.seed, "Seed", 0, 2**31 - 1, integer=True)),
        hidden_layers=int(check_number(settings.hidden_layers, "Hidden layers", 0, 4, integer=True)),
        neurons=int(check_number(settings.neurons, "Neurons per layer", 1, 32, integer=True)),
        learning_rate=check_number(settings.learning_rate, "Learning rate", 1e-5, 10),
        dropout=check_number(settings.dropout, "Dropout", 0, 0.9),
        l2=check_number(settings.l2, "L2 strength", 0, 1),
        talk_weights=bool(settings.talk_weights),
        epochs=int(check_number(settings.epochs, "Epochs", 1, MAX_EPOCHS, integer=True)),
        batch_size=int(check_number(settings.batch_size, "Mini-batch size", 0, 2000, integer=True)),
        l1=check_number(settings.l1, "L1 strength", 0, 1),
        **{flag: _flag(getattr(settings, flag), flag) for flag in EXTRA_FLAGS},
    )


def _flag(value, name: str) -> bool:
    """A checkbox value: a real boolean (or 0 / 1), never a string that merely looks true."""
    if isinstance(value, bool | int | np.bool_) and value in (0, 1):
        return bool(value)
    raise gr.Error(f"{name} must be true or false (got {value!r}).")


# --- A run: data, model, optimiser and history, trained a few epochs at a time ------------------


@dataclass
class Run:
    settings: PlaygroundSettings
    train_x: torch.Tensor  # (N, 2) speed, size
    train_y: torch.Tensor  # (N,) 0 rabbit, 1 unicorn
    test_x: torch.Tensor
    test_y: torch.Tensor
    model: torch.nn.Module
    generator: torch.Generator  # the run's own randomness (perceptron order, dropout), untouched by other visitors
    optimizer: torch.optim.Optimizer | None
    epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    # One visitor can start a second stream on the same run (a preset's Play while Play still streams; two Play
    # clicks). The lock keeps two of them from stepping the model at once (autograd refuses weights changed under
    # it); the newest stream owns the run and older ones end at their next frame.
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    stream: int = 0
    animals_layer: Image.Image | None = field(default=None, repr=False)  # the boundary plot's fixed parts, drawn once


def new_run(settings: PlaygroundSettings) -> Run:
    s = validate(settings)
    data = make_animals(s.layout, s.n_samples, s.noise, s.train_fraction, s.seed)
    generator = torch.Generator().manual_seed(s.seed)
    if s.model == "perceptron":
        model: torch.nn.Module = Perceptron(TALK_WEIGHTS if s.talk_weights else None, extras=s.extras)
        optimizer = None
    else:
        model = MLP(MLPConfig(s.hidden_layers, s.neurons, s.activation, s.dropout, s.extras))
        model.reset_parameters(generator)
        model.generator = generator
        # Plain full-batch gradient descent with momentum: every step sees every training animal.
        # foreach: one fused update for all weights instead of a loop over them, a third off every live step.
        optimizer = torch.optim.SGD(model.parameters(), lr=s.learning_rate, momentum=0.9, foreach=True)
    run = Run(s, *(torch.from_numpy(a) for a in (data.train_x, data.train_y, data.test_x, data.test_y)), model, generator, optimizer)
    record(run)
    return run


def epochs_per_frame(s: PlaygroundSettings, n_train: int) -> int:
    """Epochs between two pictures: about MLP_EPOCHS_PER_FRAME gradient steps' worth (mini-batches make an epoch many
    steps), at least one."""
    if s.model == "perceptron":
        return PERCEPTRON_EPOCHS_PER_FRAME
    if 0 < s.batch_size < n_train:
        return max(1, round(MLP_EPOCHS_PER_FRAME * s.batch_size / n_train))
    return MLP_EPOCHS_PER_FRAME


def train_epochs(run: Run, n: int) -> None:
    """Advance `run` by up to n epochs (never past its settings' epochs) and record where it stands."""
    n = min(n, run.settings.epochs - run.epoch)
    if n <= 0:
        return
    s = run.settings
    mlp.train_epochs(
        run.model,
        run.train_x,
        run.train_y,
        n,
        learning_rate=s.learning_rate,
        l2=s.l2,
        l1=s.l1,
        batch_size=s.batch_size,
        generator=run.generator,
        optimizer=run.optimizer,
    )
    run.epoch += n
    record(run)


def record(run: Run) -> None:
    train_loss, train_acc = mlp.loss_and_accuracy(run.model, run.train_x, run.train_y)
    test_loss, test_acc = mlp.loss_and_accuracy(run.model, run.test_x, run.test_y)
    run.history.append(
        {"epoch": run.epoch, "train_loss": train_loss, "test_loss": test_loss, "train_accuracy": train_acc, "test_accuracy": test_acc}
    )


# --- Pictures ---------------------------------------------------------------------------------

_FONT = ImageFont.load_default(12)
PLOT, MARGIN = 340, 40  # boundary plot: PLOT x PLOT px of feature space inside a MARGIN for the axes


def _to_px(v: np.ndarray) -> np.ndarray:
    return MARGIN + (v - LOW) / (HIGH - LOW) * PLOT


@functools.lru_cache(maxsize=1024)
def _text_mask(text: str, anchor: str) -> tuple[Image.Image, int, int]:
    """`text` rendered once as an 'L' mask, and where its corner sits from the anchor point. Fonts render slowly,
    and a live frame writes the same labels ten times a second."""
    left, top, right, bottom = _FONT.getbbox(text, anchor=anchor)
    mask = Image.new("L", (max(1, right - left), max(1, bottom - top)))
    ImageDraw.Draw(mask).text((-left, -top), text, fill=255, font=_FONT, anchor=anchor)
    return mask, left, top


def _write(img: Image.Image, xy: tuple[float, float], text: str, fill, anchor: str = "la") -> None:
    """ImageDraw.text, from the cache of rendered labels; anchors as in PIL ("la" left-ascender, "mm" middle...)."""
    mask, left, top = _text_mask(text, anchor)
    img.paste(fill, (round(xy[0]) + left, round(xy[1]) + top), mask)


def _animals_layer(run: Run) -> Image.Image:
    """RGBA, transparent but for what never changes during a run: the animals, the frame, the axes and the legend."""
    layer = Image.new("RGBA", (PLOT + 2 * MARGIN, PLOT + 2 * MARGIN), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for x, y, filled in ((run.train_x, run.train_y, True), (run.test_x, run.test_y, False)):
        px, py = _to_px(x[:, 0].numpy()), MARGIN + PLOT - (_to_px(x[:, 1].numpy()) - MARGIN)
        for cx, cy, label in zip(px, py, y.tolist(), strict=True):
            rgb = tuple(int(c) for c in (UNICORN_RGB if label else RABBIT_RGB))
            if filled:
                draw.ellipse((cx - 5, cy - 5, cx + 5, cy + 5), fill=rgb, outline=(40, 40, 40))
            else:
                draw.ellipse((cx - 3.5, cy - 3.5, cx + 3.5, cy + 3.5), outline=rgb, width=2)
    draw.rectangle((MARGIN, MARGIN, MARGIN + PLOT, MARGIN + PLOT), outline=(120, 120, 120))
    for v in range(0, 11, 2):
        tx, ty = _to_px(np.array(v)), MARGIN + PLOT - (_to_px(np.array(v)) - MARGIN)
        draw.text((tx, MARGIN + PLOT + 4), str(v), fill="black", font=_FONT, anchor="mt")
        draw.text((MARGIN - 5, ty), str(v), fill="black", font=_FONT, anchor="rm")
    draw.text((MARGIN + PLOT / 2, MARGIN + PLOT + 20), "speed", fill="black", font=_FONT, anchor="mt")
    draw.text((8, MARGIN + PLOT / 2), "size", fill="black", font=_FONT, anchor="lm")
    draw.text((MARGIN, 8), "Decision boundary: background = P(unicorn)", fill="black", font=_FONT)
    draw.text((MARGIN, 22), "dot = training animal, ring = test animal", fill=(90, 90, 90), font=_FONT)
    draw.text((MARGIN + PLOT, 8), CLASSES[0], fill=tuple(int(c) for c in RABBIT_RGB), font=_FONT, anchor="ra")
    draw.text((MARGIN + PLOT, 22), CLASSES[1], fill=tuple(int(c) for c in UNICORN_RGB), font=_FONT, anchor="ra")
    return layer


@torch.no_grad()
def render_boundary(run: Run, grid: int = 85) -> np.ndarray:
    """(H, W, 3) uint8: the model's P(unicorn) over the whole speed x size square, with the animals on top.

    Filled dots are training animals, rings are test animals the model never trains on."""
    run.model.eval()
    ticks = (np.arange(grid) + 0.5) / grid * (HIGH - LOW) + LOW
    speed, size = np.meshgrid(ticks, ticks[::-1])  # image rows run top to bottom = size high to low
    points = torch.from_numpy(np.stack([speed.ravel(), size.ravel()], 1).astype(np.float32))
    p = torch.nan_to_num(run.model.predict_proba(points), nan=0.5).numpy().reshape(grid, grid, 1)
    colour = (1 - p) * RABBIT_RGB + p * UNICORN_RGB
    colour = 255 - (255 - colour) * 0.45  # pale, so the dots stand out
    background = Image.fromarray(colour.astype(np.uint8)).resize((PLOT, PLOT), Image.Resampling.BILINEAR)
    canvas = Image.new("RGB", (PLOT + 2 * MARGIN, PLOT + 2 * MARGIN), "white")
    canvas.paste(background, (MARGIN, MARGIN))
    if run.animals_layer is None:
        run.animals_layer = _animals_layer(run)
    canvas.paste(run.animals_layer, (0, 0), run.animals_layer)
    return np.asarray(canvas)


def render_curves(run: Run, width: int = 412, height: int = 200) -> np.ndarray:
    """(H, W, 3) uint8: train and test loss (error rate for the step neuron) against epochs."""
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    left, right, top, bottom = 44, width - 10, 22, height - 26
    is_step = run.settings.model == "perceptron"
    name = "error rate" if is_step else "loss (cross-entropy)"
    hist = [h for h in run.history if math.isfinite(h["train_loss"]) and math.isfinite(h["test_loss"])]
    top_value = max([0.1] + [max(h["train_loss"], h["test_loss"]) for h in hist])
    top_value = min(top_value, 3.0) if not is_step else max(top_value, 0.5)
    last_epoch = max(run.settings.epochs, 1)
    draw.rectangle((left, top, right, bottom), outline=(160, 160, 160))
    for frac in (0.0, 0.5, 1.0):
        y = bottom - frac * (bottom - top)
        _write(img, (left - 4, y), f"{frac * top_value:.2f}", "black", "rm")
    _write(img, (left, bottom + 4), "0", "black", "lt")
    _write(img, (right, bottom + 4), f"epoch {last_epoch}", "black", "rt")
    _write(img, (left, 4), f"Training progress: {name}", "black")
    for key, colour, label_x in (("train_loss", (37, 99, 235), right - 90), ("test_loss", (220, 38, 38), right - 40)):
        _write(img, (label_x, 4), key.split("_")[0], colour)
        pts = [
            (left + h["epoch"] / last_epoch * (right - left), bottom - min(h[key], top_value) / top_value * (bottom - top)) for h in hist
        ]
        if len(pts) > 1:
            draw.line(pts, fill=colour, width=2)
        elif pts:
            draw.ellipse((pts[0][0] - 2, pts[0][1] - 2, pts[0][0] + 2, pts[0][1] + 2), fill=colour)
    return np.asarray(img)


@functools.lru_cache(maxsize=64)
def _neuron_layer(sizes: tuple[int, ...], names: tuple[str, ...], width: int, height: int) -> Image.Image:
    """RGBA, transparent but for what one architecture always shows: the neurons, the input names, the title."""
    layer = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    xs = _layer_xs(len(sizes), width)
    for k, n in enumerate(sizes):
        for y in _neuron_ys(n, height):
            r = 6 if n <= 16 else 3
            draw.ellipse((xs[k] - r, y - r, xs[k] + r, y + r), fill=(55, 65, 81))
    for name, y in zip(names, _neuron_ys(sizes[0], height), strict=True):
        draw.text((xs[0] - 10, y), name, fill="black", font=_FONT, anchor="rm")
    draw.text((xs[-1] + 10, height / 2), "unicorn?", fill="black", font=_FONT, anchor="lm")
    draw.text((6, 4), "Weights: blue +, orange -, thicker = larger", fill="black", font=_FONT)
    return layer


def _layer_xs(n_layers: int, width: int) -> np.ndarray:
    return np.linspace(60, width - 70, n_layers)


def _neuron_ys(n: int, height: int) -> np.ndarray:
    return np.linspace(24, height - 8, n + 2)[1:-1] if n > 1 else np.array([height / 2 + 8])


def render_network(run: Run, width: int = 412, height: int = 260) -> np.ndarray:
    """(H, W, 3) uint8: every neuron as a dot, every weight as a line; blue positive, orange negative,
    thicker means larger. The perceptron's three weights are written out."""
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    if isinstance(run.model, Perceptron):
        weights = [run.model.weight.detach().numpy()[:, None]]  # (3 + extras inputs, 1 output)
        names = (*input_names(run.settings.extras), "10")
    else:
        weights = [layer.weight.detach().numpy().T for layer in run.model.layers]  # (in, out) per layer
        names = input_names(run.settings.extras)
    sizes = (weights[0].shape[0], *(w.shape[1] for w in weights))
    xs = _layer_xs(len(sizes), width)
    biggest = max(float(np.nan_to_num(np.abs(w), posinf=0.0).max()) for w in weights) or 1.0
    # A frame draws thousands of lines ten times a second: colours and widths are worked out for all of them at
    # once, and each line goes straight to PIL's line drawer with its colour already packed as PIL packs it.
    inks: dict[tuple[int, int, int], int] = {}
    for k, w in enumerate(weights):
        y_in, y_out = _neuron_ys(w.shape[0], height).tolist(), _neuron_ys(w.shape[1], height).tolist()
        with np.errstate(invalid="ignore"):
            strength = np.clip(np.abs(w) / biggest, 0, 1)  # (in, out); NaN where a weight blew up
        finite = np.isfinite(strength)
        strength = np.nan_to_num(strength)
        colour = np.where((w > 0)[..., None], np.array([37, 99, 235]), np.array([234, 88, 12]))  # (in, out, 3)
        fade = (255 - (255 - colour) * (0.25 + 0.75 * strength[..., None])).astype(int).tolist()
        line_width = np.maximum(1, np.round(1 + 4 * strength)).astype(int).tolist()
        x0, x1 = float(xs[k]), float(xs[k + 1])
        for i, j in zip(*np.nonzero(finite), strict=True):
            rgb = tuple(fade[i][j])
            if (ink := inks.get(rgb)) is None:
                ink = inks[rgb] = draw.draw.draw_ink(rgb)
            draw.draw.draw_lines((x0, y_in[i], x1, y_out[j]), ink, line_width[i][j])
    neurons = _neuron_layer(sizes, names, width, height)
    img.paste(neurons, (0, 0), neurons)
    if isinstance(run.model, Perceptron):
        for i, y in enumerate(_neuron_ys(len(names), height)):
            _write(img, ((xs[0] + xs[1]) / 2, (y + height / 2) / 2 - 8), f"{weights[0][i, 0]:+.2f}", "black", "mm")
    return np.asarray(img)


# --- Neuron maps: what every neuron computes over the whole speed x size plane ----------------------

MAPS_WIDTH = 860  # px of the whole picture; each map is square, one model evaluation per pixel
MAPS_LABEL = 96  # px left of the maps for the row names
MAPS_GAP = 4
LOW_RGB, HIGH_RGB = RABBIT_RGB, UNICORN_RGB  # a map runs amber (low) through white to indigo (high)


@dataclass(frozen=True)
class MapsLayout:
    """Where each neuron's map sits: row r (inputs, hidden layers..., output), column j, from its top-left corner."""

    sizes: tuple[int, ...]  # neurons per row
    cell: int  # side of one map, px

    @property
    def row_height(self) -> int:
        return self.cell + 2 * MAPS_GAP + 12  # the map, its number under it, and room

    @property
    def height(self) -> int:
        return 22 + len(self.sizes) * self.row_height

    def corner(self, row: int, column: int) -> tuple[int, int]:
        return MAPS_LABEL + column * (self.cell + MAPS_GAP), 22 + row * self.row_height

    def neuron_at(self, x: float, y: float) -> tuple[int, int] | None:
        """(row, column) of the map under pixel (x, y), or None between maps."""
        row, in_row = divmod(int(y) - 22, self.row_height)
        column, in_column = divmod(int(x) - MAPS_LABEL, self.cell + MAPS_GAP)
        if not (0 <= row < len(self.sizes) and 0 <= column < self.sizes[row] and in_column < self.cell and in_row < self.cell):
            return None
        return row, column


def maps_layout(run: Run) -> MapsLayout:
    s = run.settings
    n_inputs = 2 + len(s.extras)
    hidden = [] if s.model == "perceptron" else [s.neurons] * s.hidden_layers
    sizes = (n_inputs, *hidden, 1)
    cell = int(np.clip((MAPS_WIDTH - MAPS_LABEL) // max(sizes) - MAPS_GAP, 16, 48))
    return MapsLayout(sizes, cell)


def map_points(cell: int) -> torch.Tensor:
    """(cell * cell, 2) speed, size at the centre of each pixel of a cell x cell map, row by row from the top (high size)."""
    ticks = (np.arange(cell) + 0.5) / cell * (HIGH - LOW) + LOW
    speed, size = np.meshgrid(ticks, ticks[::-1])
    return torch.from_numpy(np.stack([speed.ravel(), size.ravel()], 1).astype(np.float32))


def value_ranges(run: Run, maps: list[torch.Tensor]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per row, the (low, high) of each neuron's colour scale: the range its values can take (the inputs' own range,
    tanh -1..1, sigmoid and step 0..1, the output 0..1); ReLU has no top, so each ReLU map is scaled to its largest value."""
    s = run.settings
    ranges = []
    n_inputs = maps[0].shape[1]
    scale = mlp.BIAS_INPUT if s.model == "perceptron" else 1.0
    low = np.array([0.0 if s.model == "perceptron" and i < 2 else -scale for i in range(n_inputs)])
    ranges.append((low, np.full(n_inputs, scale)))
    for hidden in maps[1:-1]:
        n = hidden.shape[1]
        if s.activation == "relu":
            top = np.maximum(np.nan_to_num(hidden.amax(0).numpy(), nan=1.0, posinf=1.0), 1e-6)
            ranges.append((np.zeros(n), top))
        else:
            ranges.append((np.full(n, -1.0 if s.activation == "tanh" else 0.0), np.ones(n)))
    ranges.append((np.zeros(1), np.ones(1)))
    return ranges


def map_colours(values: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """(P, n) values and (n,) scale ends -> (P, n, 3) float colours: amber at low, white in the middle, indigo at high."""
    t = np.clip((np.nan_to_num(values, nan=0.0) - low) / np.maximum(high - low, 1e-12), 0, 1)[..., None]
    white = np.float32(255)
    below = white + (LOW_RGB - white) * (1 - 2 * t)  # t in [0, 0.5]: amber -> white
    above = white + (HIGH_RGB - white) * (2 * t - 1)  # t in [0.5, 1]: white -> indigo
    return np.where(t < 0.5, below, above)


def row_names(run: Run) -> list[str]:
    s = run.settings
    hidden = [] if s.model == "perceptron" else [f"layer {k + 1} ({s.activation})" for k in range(s.hidden_layers)]
    return ["inputs", *hidden, "P(unicorn)" if s.model == "mlp" else "output (step)"]


@torch.no_grad()
def render_neuron_maps(run: Run) -> np.ndarray:
    """(H, W, 3) uint8: every neuron as a small map over speed x size (x right, size up), row by row from the inputs
    to the output, each coloured from the low to the high end of what it can output (see value_ranges)."""
    layout = maps_layout(run)
    cell = layout.cell
    maps = mlp.neuron_maps(run.model, map_points(cell))  # per row (cell * cell, n)
    canvas = np.full((layout.height, MAPS_WIDTH, 3), 255, np.uint8)
    for row, (values, (low, high)) in enumerate(zip(maps, value_ranges(run, maps), strict=True)):
        colours = map_colours(values.numpy(), low, high).astype(np.uint8).reshape(cell, cell, -1, 3)  # (cell, cell, n, 3)
        for column in range(values.shape[1]):
            x, y = layout.corner(row, column)
            canvas[y : y + cell, x : x + cell] = colours[:, :, column]
    img = Image.fromarray(canvas)
    draw = ImageDraw.Draw(img)
    names = input_names(run.settings.extras)
    for row, name in enumerate(row_names(run)):
        x, y = layout.corner(row, 0)
        _write(img, (6, y + cell / 2), name, "black", "lm")
        for column in range(layout.sizes[row]):
            x, y = layout.corner(row, column)
            draw.rectangle((x - 1, y - 1, x + cell, y + cell), outline=(150, 150, 150))
            label = names[column] if row == 0 and cell >= 40 else str(column + 1)
            _write(img, (x + cell / 2, y + cell + 2), label, (90, 90, 90), "mt")
    _write(img, (6, 4), "Every neuron over speed (right) x size (up): amber = low, white = middle, indigo = high. Click one.", "black")
    return np.asarray(img)


def neuron_details(run: Run, row: int, column: int) -> str:
    """Markdown: what neuron (row, column) of the maps reads and how it combines it."""
    s = run.settings
    names = input_names(s.extras)
    if row == 0:
        what = {"speed": "speed", "size": "size"}.get(names[column], f"{names[column]}, computed from speed and size")
        scale = (
            "as it is (0 to 10)"
            if s.model == "perceptron" and column < 2
            else ("times 10, to the range of speed and size" if s.model == "perceptron" else "centred and scaled to -1..1")
        )
        return f"**Input {column + 1}: {names[column]}.** The model reads {what}, {scale}. Inputs have no incoming weights."
    if isinstance(run.model, Perceptron):
        weights = run.model.weight.tolist()
        terms = [(w, f"{name}") for w, name in zip(weights[:-1], names, strict=True)] + [(weights[-1], "10")]
        formula = " ".join(f"{w:+.3f}·{name}" for w, name in terms)
        return f"**The neuron.** It fires (unicorn) when {formula} > 0 (engineered inputs x 10)."
    layer = run.model.layers[row - 1]
    weights = layer.weight.detach()[column].tolist()
    bias = float(layer.bias.detach()[column])
    sources = list(names) if row == 1 else [f"n{i + 1}" for i in range(len(weights))]
    order = sorted(range(len(weights)), key=lambda i: -abs(weights[i]))
    shown = order[:12]
    formula = " ".join(f"{weights[i]:+.3f}·{sources[i]}" for i in shown) + (f" … ({len(order) - 12} smaller)" if len(order) > 12 else "")
    squash = "sigmoid" if row == len(run.model.layers) else s.activation
    source_row = "the inputs" if row == 1 else f"layer {row - 1} (n1, n2, … are its neurons)"
    name = "The output neuron, P(unicorn)," if row == len(run.model.layers) else f"Layer {row}, neuron {column + 1},"
    table = "\n".join(f"| {sources[i]} | {weights[i]:+.4f} |" for i in shown)
    return (
        f"**{name}** reads {source_row}: {squash}({formula} {bias:+.3f}).\n\n"
        f"| incoming from | weight |\n| --- | --- |\n{table}\n| bias | {bias:+.4f} |"
    )


def stats_markdown(run: Run) -> str:
    h = run.history[-1]
    s = run.settings
    inputs = "speed and size" + "".join(f", {name}" for name in s.extras)
    if isinstance(run.model, Perceptron):
        w = run.model.weight.tolist()
        terms = " ".join(f"{wk:+.2f}·{name}" for wk, name in zip(w, (*input_names(s.extras), "10"), strict=True))
        rule = f"unicorn when {terms} > 0"
        what = f"Single neuron on {inputs}, step activation, perceptron rule (learning rate {s.learning_rate:g}). {rule}."
        if s.layout in ("curved", "few samples", "rings") and not {"speed²", "size²"} <= set(s.extras):
            what += " *No straight line can do this layout: tick the engineered inputs speed² and size², and the neuron can draw a circle.*"
        elif s.layout == "xor" and "speed·size" not in s.extras:
            what += " *No straight line can do quadrants: tick the engineered input speed·size, and one neuron can.*"
    else:
        shape = " x ".join([str(s.neurons)] * s.hidden_layers) or "no hidden layers"
        regularisers = [f"dropout {s.dropout:g}" if s.dropout else "", f"L2 {s.l2:g}" if s.l2 else "", f"L1 {s.l1:g}" if s.l1 else ""]
        extras = ", ".join(x for x in regularisers if x) or "no regularisation"
        batch = f"mini-batches of {s.batch_size}" if 0 < s.batch_size < len(run.train_y) else "full batch"
        what = (
            f"MLP on {inputs}: {shape} {s.activation} neurons, gradient descent ({batch}, learning rate {s.learning_rate:g}, "
            f"momentum 0.9), {extras}."
        )
    diverged = "" if math.isfinite(h["train_loss"]) else " **The loss blew up: try a smaller learning rate.**"
    return (
        f"**Epoch {run.epoch} / {s.epochs}** · train accuracy **{h['train_accuracy']:.1%}** ({len(run.train_y)} animals) · "
        f"test accuracy **{h['test_accuracy']:.1%}** ({len(run.test_y)} animals it never trained on){diverged}\n\n{what}"
    )


def frame(run: Run) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """The pictures of one moment of a run: boundary, curves, weights, neuron maps, and the stats line."""
    return render_boundary(run), render_curves(run), render_network(run), render_neuron_maps(run), stats_markdown(run)


# --- Pure functions behind the events and the API -----------------------------------------------


def settings_from(*values, **named) -> PlaygroundSettings:
    """UI values in SETTING_NAMES order (and/or by name) -> settings."""
    if len(values) > len(SETTING_NAMES):
        raise gr.Error(f"The playground takes {len(SETTING_NAMES)} settings: {', '.join(SETTING_NAMES)}.")
    return PlaygroundSettings(**dict(zip(SETTING_NAMES, values, strict=False)), **named)


def train_playground(*values, **named) -> tuple[dict, np.ndarray]:
    """Train a perceptron or an MLP from scratch to tell rabbits from unicorns by speed and size, and report how it did.

    Args: (see SETTINGS_HELP; the docstring is completed below)
    Returns:
        {train_accuracy, test_accuracy, epochs, history}, and the decision-boundary picture.
    """
    settings = settings_from(*values, **named)
    key = dataclasses.astuple(settings)  # the same settings and seed train the same network, point for point
    if (answer := RECENT_RUNS.get(key)) is not None:
        return copy.deepcopy(answer[0]), answer[1]
    run = new_run(settings)
    per_frame = epochs_per_frame(run.settings, len(run.train_y))
    while run.epoch < run.settings.epochs:  # the same chunks as Play, so the history matches the live view
        train_epochs(run, per_frame)
    last = run.history[-1]
    history = {key: [round(h[key], 6) for h in run.history] for key in run.history[0]}
    result = {"train_accuracy": last["train_accuracy"], "test_accuracy": last["test_accuracy"], "epochs": run.epoch, "history": history}
    answer = (result, render_boundary(run))
    RECENT_RUNS.put(key, (copy.deepcopy(result), answer[1]))
    return answer


# Finished API runs by their settings: a class that runs the same experiment trains it once.
RECENT_RUNS = RecentAnswers()
RECENT_MAPS = RecentAnswers()


def neuron_maps(*values, **named) -> tuple[np.ndarray, dict]:
    """Train as train_playground does (the same settings give the same weights), then show every neuron as a map.

    Args: (see SETTINGS_HELP; the docstring is completed below)
    Returns:
        The neuron maps picture (each neuron over speed x size), and {"rows": [{"name", "neurons": [its incoming weights and bias, as Markdown]}]}.
    """
    settings = settings_from(*values, **named)
    key = dataclasses.astuple(settings)
    if (answer := RECENT_MAPS.get(key)) is not None:
        return answer[0], copy.deepcopy(answer[1])
    run = new_run(settings)
    per_frame = epochs_per_frame(run.settings, len(run.train_y))
    while run.epoch < run.settings.epochs:
        train_epochs(run, per_frame)
    sizes = maps_layout(run).sizes
    about = {
        "rows": [
            {"name": name, "neurons": [neuron_details(run, row, column) for column in range(sizes[row])]}
            for row, name in enumerate(row_names(run))
        ]
    }
    answer = (render_neuron_maps(run), about)
    RECENT_MAPS.put(key, (answer[0], copy.deepcopy(about)))
    return answer


# The API and gradio_client read the endpoint's parameters, names and defaults from the signature: the settings' own.
SETTINGS_PARAMETERS = [
    inspect.Parameter(f.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=f.default, annotation=f.type)
    for f in dataclasses.fields(PlaygroundSettings)
]
train_playground.__signature__ = inspect.Signature(SETTINGS_PARAMETERS, return_annotation=tuple[dict, np.ndarray])
neuron_maps.__signature__ = inspect.Signature(SETTINGS_PARAMETERS, return_annotation=tuple[np.ndarray, dict])
# What each setting means, one line each: the Args section of both endpoints' docstrings (MCP tool descriptions).
SETTINGS_HELP = {
    "layout": f"how rabbits and unicorns lie on the speed x size plane: one of {', '.join(LAYOUTS)}.",
    "n_samples": "how many animals to draw, 10 to 2000.",
    "noise": "how far animals scatter from their pattern, 0 (none) to 1.",
    "train_fraction": "share of the animals trained on, 0.05 to 0.95; the rest are the held-out test set.",
    "seed": "random seed for the animals and the starting weights, 0 to 2147483647; the same seed gives the same run.",
    "model": "'perceptron' (one step neuron, perceptron rule) or 'mlp' (hidden layers, gradient descent).",
    "hidden_layers": "MLP only: number of hidden layers, 0 to 4.",
    "neurons": "MLP only: neurons per hidden layer, 1 to 32.",
    "activation": f"MLP only: the hidden neurons' activation, one of {', '.join(ACTIVATIONS)}.",
    "learning_rate": "step size of each update, 0.00001 to 10.",
    "dropout": "MLP only: share of hidden neurons switched off at each training step, 0 to 0.9.",
    "l2": "MLP only: L2 (weight decay) strength, 0 to 1.",
    "talk_weights": "perceptron only: start from the talk's weights 1, 1, -1 instead of zeros (true or false).",
    "epochs": f"passes over the training animals, 1 to {MAX_EPOCHS}.",
    "batch_size": "MLP only: animals per gradient step, 0 to 2000; 0 = all of them at once.",
    "l1": "MLP only: L1 strength, which pushes unneeded weights to exactly zero, 0 to 1.",
    "speed_squared": "add speed² as an input, measured from the middle of the plane (true or false).",
    "size_squared": "add size² as an input (true or false).",
    "speed_times_size": "add speed·size as an input (true or false).",
    "sin_speed": "add sin(speed) as an input (true or false).",
    "sin_size": "add sin(size) as an input (true or false).",
}
for _endpoint in (train_playground, neuron_maps):
    _endpoint.__doc__ = _endpoint.__doc__.replace(
        "Args: (see SETTINGS_HELP; the docstring is completed below)",
        "Args:\n" + "\n".join(f"        {name}: {text}" for name, text in SETTINGS_HELP.items()),
    )


def settings_from_query(params: dict[str, str], ignored: list[str] | None = None) -> PlaygroundSettings | None:
    """A link's query parameters -> settings, or None when it is not a link to this tab. Each value is checked as
    validate() checks it; one it refuses keeps its default and is named in `ignored`."""
    if params.get("tab") != "neurons":
        return None
    ignored = [] if ignored is None else ignored
    settings = PlaygroundSettings()
    for name, text in params.items():
        if name == "tab":
            continue
        if name not in SETTING_NAMES:
            ignored.append(f"{name} (not a setting of this tab)")
            continue
        default = getattr(settings, name)
        try:
            value = link_flag(text) if isinstance(default, bool) else type(default)(text)
            settings = validate(dataclasses.replace(settings, **{name: value}))
        except (ValueError, gr.Error) as err:
            ignored.append(f"{name} ({getattr(err, 'message', None) or err})")
    return settings


# --- UI ---------------------------------------------------------------------------------------


def _ui_values(s: PlaygroundSettings) -> list:
    return [getattr(s, name) for name in SETTING_NAMES]


def _same(run: Run | None, s: PlaygroundSettings) -> bool:
    return run is not None and run.settings == s


def play_frames(run: Run | None, *values):
    """Stream frames of `run` (a new one when the settings changed or it has finished) until its epochs are done."""
    s = validate(settings_from(*values))
    if not _same(run, s) or run.epoch >= s.epochs:
        run = new_run(s)
    per_frame = epochs_per_frame(s, len(run.train_y))
    with run.lock:
        run.stream += 1
        mine = run.stream
        picture = frame(run)
    yield (*picture, run)
    while run.epoch < s.epochs:
        started = time.perf_counter()
        with run.lock:
            if run.stream != mine:  # a newer stream took this run over
                return
            train_epochs(run, per_frame)
            picture = frame(run)
        yield (*picture, run)
        time.sleep(max(0.0, 0.05 - (time.perf_counter() - started)))  # at most ~20 frames a second


def step_once(run: Run | None, *values):
    """One frame's worth of epochs."""
    s = validate(settings_from(*values))
    if not _same(run, s):
        run = new_run(s)
    with run.lock:
        run.stream += 1  # a Step ends any stream still playing this run
        train_epochs(run, epochs_per_frame(s, len(run.train_y)))
        return (*frame(run), run)


def build() -> None:
    """The Neurons tab's components and events, inside the current gr.Tab."""
    gr.Markdown(INTRO)
    d = PlaygroundSettings()
    widgets: dict[str, gr.components.Component] = {}  # setting name -> its control
    gr.Markdown("**Presets**: one click loads the settings and plays them.")
    with gr.Row():
        preset_buttons = [gr.Button(name, size="sm", elem_id=f"neurons-preset-{k}") for k, name in enumerate(PRESETS)]
    preset_note = gr.Markdown()
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            with gr.Group():
                widgets["layout"] = gr.Dropdown(LAYOUTS, value=d.layout, label="Data layout")
                widgets["n_samples"] = gr.Slider(10, 2000, value=d.n_samples, step=10, label="Number of animals")
                widgets["noise"] = gr.Slider(0, 1, value=d.noise, step=0.05, label="Noise")
                widgets["train_fraction"] = gr.Slider(
                    0.05, 0.95, value=d.train_fraction, step=0.05, label="Training share (the rest is the test set)"
                )
                widgets["seed"] = gr.Number(value=d.seed, precision=0, minimum=0, label="Seed")
            with gr.Group():
                widgets["model"] = gr.Radio(MODELS, value=d.model, label="Model")
                widgets["talk_weights"] = gr.Checkbox(value=d.talk_weights, label="Perceptron: start from the talk's weights 1, 1, -1")
                widgets["hidden_layers"] = gr.Slider(0, 4, value=d.hidden_layers, step=1, label="MLP: hidden layers")
                widgets["neurons"] = gr.Slider(1, 32, value=d.neurons, step=1, label="MLP: neurons per layer")
                widgets["activation"] = gr.Dropdown(ACTIVATIONS, value=d.activation, label="MLP: activation")
                widgets["learning_rate"] = gr.Dropdown(
                    LEARNING_RATES, value=d.learning_rate, label="Learning rate", allow_custom_value=True
                )
                widgets["dropout"] = gr.Slider(0, 0.9, value=d.dropout, step=0.05, label="MLP: dropout")
                widgets["l2"] = gr.Slider(0, 0.1, value=d.l2, step=0.001, label="MLP: L2 strength")
                widgets["l1"] = gr.Slider(0, 0.1, value=d.l1, step=0.001, label="MLP: L1 strength (zeroes unneeded weights)")
                widgets["batch_size"] = gr.Slider(
                    0, 500, value=d.batch_size, step=1, label="MLP: mini-batch size (0 = every training animal at once)"
                )
            with gr.Group():
                gr.Markdown("Engineered inputs, measured from the middle of the plane:")
                for flag, name in zip(EXTRA_FLAGS, mlp.ENGINEERED, strict=True):
                    widgets[flag] = gr.Checkbox(
                        value=getattr(d, flag), label=name, elem_id=f"neurons-{flag.replace('_', '-')}", min_width=80
                    )
                widgets["epochs"] = gr.Slider(1, MAX_EPOCHS, value=d.epochs, step=1, label="Epochs to train")
        with gr.Column(scale=2):
            with gr.Row():
                play = gr.Button("▶ Play", variant="primary", elem_id="neurons-play")
                pause = gr.Button("Pause", elem_id="neurons-pause")
                step = gr.Button("Step", elem_id="neurons-step")
                reset = gr.Button("Reset", elem_id="neurons-reset")
                copy_link = gr.Button("Copy link to these settings", size="sm", elem_id="neurons-copy-link")
            stats = gr.Markdown(elem_id="neurons-stats")
            with gr.Row():
                boundary = gr.Image(
                    label="Decision boundary",
                    show_label=False,
                    type="numpy",
                    buttons=[],
                    elem_id="neurons-boundary",
                    height=420,
                    format="png",
                )
                with gr.Column():
                    curves = gr.Image(
                        label="Training progress",
                        show_label=False,
                        type="numpy",
                        buttons=[],
                        height=200,
                        elem_id="neurons-curves",
                        format="png",
                    )
                    network = gr.Image(
                        label="Weights", show_label=False, type="numpy", buttons=[], height=260, elem_id="neurons-network", format="png"
                    )
            maps_image = gr.Image(
                label="Neuron maps",
                show_label=False,
                type="numpy",
                buttons=[],
                elem_id="neurons-maps",
                format="png",
                interactive=False,
                height=300,  # fixed: the picture's height changes with the architecture, and the page must not jump
            )
            neuron_note = gr.Markdown("*Click a neuron's map to see its incoming weights.*", elem_id="neurons-neuron")
    controls = [widgets[name] for name in SETTING_NAMES]  # the order settings_from reads them in
    run_state = gr.State(None)
    outputs = [boundary, curves, network, maps_image, stats, run_state]

    def start(*values):
        run = new_run(settings_from(*values))
        return (*frame(run), run)

    def load_preset(name):
        s, note = PRESETS[name]
        return (*_ui_values(s), f"**{name}.** {note}")

    def restore_from_url(request: gr.Request):
        """The first frame on page load: of the linked experiment on a link to this tab, else of the default one (the
        settings are then left alone, so that no change event rewrites another tab's link in the address)."""
        ignored: list[str] = []
        s = settings_from_query(dict(request.query_params), ignored) if request else None
        warn_ignored(ignored)
        run = new_run(s or PlaygroundSettings())
        return (*(_ui_values(s) if s else [gr.skip()] * len(SETTING_NAMES)), *frame(run), run)

    def show_neuron(run: Run | None, evt: gr.SelectData):
        if run is None or evt is None or not isinstance(evt.index, list | tuple) or len(evt.index) != 2:
            return "*Press Reset or Play first, then click a neuron's map.*"
        where = maps_layout(run).neuron_at(*evt.index)
        if where is None:
            return "*That is between two maps: click inside one.*"
        with run.lock:
            return neuron_details(run, *where)

    # Shareable state: changing a setting, playing or stepping rewrites the page address; opening it restores them.
    url_js = link_js("neurons", SETTING_NAMES)
    copy_link.click(None, controls, None, js=link_js("neurons", SETTING_NAMES, copy=True), api_visibility="private", queue=False)

    # Play streams frames; Pause cancels that stream (the run keeps its place); Step and Reset are one frame.
    # Streams of a few hundred weights each run in a lane of their own, up to 8 at once: a stream sleeps between frames.
    stream = {"api_visibility": "private", "concurrency_id": "playground_streams", "concurrency_limit": 8, "show_progress": "hidden"}
    playing = [play.click(play_frames, [run_state, *controls], outputs, **stream)]
    for button, name in zip(preset_buttons, PRESETS, strict=True):
        loaded = button.click(
            lambda name=name: load_preset(name), None, [*controls, preset_note], api_visibility="private", cancels=list(playing)
        )
        loaded.then(None, controls, None, js=url_js, api_visibility="private", queue=False)
        playing.append(loaded.then(play_frames, [run_state, *controls], outputs, **stream))
    pause.click(None, None, None, cancels=playing, api_visibility="private")
    step.click(step_once, [run_state, *controls], outputs, api_visibility="private", show_progress="hidden", cancels=playing)
    reset.click(start, controls, outputs, api_visibility="private", cancels=playing)
    gr.on([c.change for c in controls] + [play.click, step.click], None, controls, None, js=url_js, api_visibility="private", queue=False)
    gr.on(None, restore_from_url, None, [*controls, *outputs], api_visibility="private")
    maps_image.select(show_neuron, run_state, neuron_note, api_visibility="private", queue=False)

    # The API: the same training, start to finish, deterministic for a given seed.
    api_result = gr.JSON(visible=False)
    api_image = gr.Image(visible=False, type="numpy")
    api_button = gr.Button(visible=False)
    # preprocess=False: raw values reach validate(), whose messages name the setting and its range.
    api_button.click(train_playground, controls, [api_result, api_image], api_name="train_playground", preprocess=False, **HEAVY_LANE)
    api_maps_button = gr.Button(visible=False)
    api_maps_button.click(neuron_maps, controls, [api_image, api_result], api_name="neuron_maps", preprocess=False, **HEAVY_LANE)

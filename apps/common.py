"""Input checks every tab shares: turn whatever arrived into a sane image, or say clearly why not.

Events that take uploads run with `preprocess=False`, so the raw upload reaches `open_image`
before anything decodes it: size caps are checked on the file and on the image header first,
and a corrupt or unreadable file becomes a `gr.Error` a person can act on, not a stack trace.

With `preprocess=False` the payload is the client's word, not a trusted path: Gradio checks that a
file was uploaded only for FileData that carries its `meta`, so a bare {"path": "/etc/..."} would
reach us unchecked. `uploaded_file` therefore opens a path only if it resolves (symlinks followed)
inside Gradio's upload folder or our own examples/, and refuses everything else (other paths, `..`,
`file://` and web URLs) with the same message a missing upload gets, so a refusal never tells a
client whether some path exists on the server.
"""

import base64
import binascii
import hashlib
import io
import os
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

import gradio as gr
import numpy as np
from gradio.utils import get_upload_folder
from PIL import Image, ImageOps, UnidentifiedImageError

from models import hub

try:  # On a Hugging Face ZeroGPU Space, GPU work must run inside @spaces.GPU; elsewhere this is a no-op.
    import spaces

    on_gpu = spaces.GPU
except ImportError:

    def on_gpu(fn=None, **_settings):
        """Stand-in for spaces.GPU where the `spaces` package is absent: returns the function unchanged."""
        return fn if fn is not None else (lambda f: f)


# Every event that runs a network waits in one of two lanes (gradio concurrency groups), declared where it is wired:
#   **LIGHT_LANE: answers whose model work takes well under 0.1 s (classify, explain, next words, the GAN grid, the
#     morph, segment, defects, and the live events of drawing, uploads and sliders);
#   **HEAVY_LANE: seconds of work (diffusion, attacks, text generation, CycleGAN, playground training, teaching).
# Gradio serves each group from its own line, so a classification never waits behind a diffusion run. The heavy lane
# takes at most half the workers (one on two cores), so one lane always stays free for the light calls, however many
# heavy requests are queued; the light lane has as many workers as cores (at most 4; MODEL_SHOW_WORKERS overrides).
# More groups than that made everything slower: a dozen kinds of model call at once fought over the two cores
# (benchmarks/load.py measures it). Long jobs with a fixed budget (fitting, the live robustness curve) keep a lane of
# their own, so they never hold a shared worker for half a minute. Events that run no network but must not wait
# behind one (a head going in or out as a file, clearing a class's examples) share **FILE_LANE.
MODEL_WORKERS = int(os.environ.get("MODEL_SHOW_WORKERS", 0)) or max(1, min(4, os.cpu_count() or 1))
HEAVY_WORKERS = int(os.environ.get("MODEL_SHOW_HEAVY_WORKERS", 0)) or max(1, MODEL_WORKERS // 2)
LIGHT_LANE = {"concurrency_id": "light", "concurrency_limit": MODEL_WORKERS}
HEAVY_LANE = {"concurrency_id": "heavy", "concurrency_limit": HEAVY_WORKERS}
FILE_LANE = {"concurrency_id": "files", "concurrency_limit": MODEL_WORKERS}


class RecentAnswers:
    """The last `size` answers of a deterministic model call, by the settings that made them.

    A classroom asks the same thing again and again (an example click, the default seed): the same settings give the
    same pixels, so the second asker gets the first answer instead of seconds of the same work. Keys are the checked
    settings (a picture's pixel hash, never a file name); answers that name files are kept only while those files are
    still in Gradio's cache. MODEL_SHOW_ANSWER_CACHE=0 turns it off (benchmarks.load measures both)."""

    def __init__(self, size: int = 16):
        self.size = size
        self._answers: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def switched_off() -> bool:
        return os.environ.get("MODEL_SHOW_ANSWER_CACHE", "1") == "0"

    def get(self, key):
        """The answer stored for key, or None (never stored, pushed out, or a file it names was swept)."""
        if self.switched_off():
            return None
        with self._lock:
            answer = self._answers.get(key)
            if answer is None:
                return None
            if any(isinstance(part, str) and os.path.isabs(part) and not os.path.exists(part) for part in answer):
                del self._answers[key]
                return None
            self._answers.move_to_end(key)
            return answer

    def put(self, key, answer: tuple) -> None:
        if self.size == 0 or self.switched_off():
            return
        with self._lock:
            self._answers[key] = answer
            self._answers.move_to_end(key)
            while len(self._answers) > self.size:
                self._answers.popitem(last=False)


def load_model(loader, *args, title: str = "Model not available"):
    """loader(*args) (hub.load and friends), with a missing or broken checkpoint turned into a gr.Error that says
    how to get it, instead of a stack trace."""
    try:
        return loader(*args)
    except hub.CheckpointError as err:
        raise gr.Error(str(err), title=title) from None


MAX_FILE_MB = 20  # bigger uploads are refused before they are read
MAX_SIDE = 6000  # px, either side
MAX_PIXELS = 24_000_000  # px in total (6000 x 4000), checked from the header before decoding
MIN_SIDE = 8  # px; smaller than this holds no picture worth classifying
EXAMPLES_ROOT = Path(__file__).resolve().parent.parent / "examples"  # clicked examples may point here


def _error(message: str) -> gr.Error:
    return gr.Error(message, title="Please check the input")


def open_image(value, what: str = "an image") -> Image.Image:
    """Whatever an event hands us -> a decoded PIL image, upright (EXIF rotation applied).

    Accepts None, a file path, a Gradio FileData dict ({"path": ...} or a base64 data URL), an
    ImageEditor value ({"composite": ...}), a PIL image or a numpy array.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        raise _error(f"Nothing was uploaded. Please add {what} (PNG or JPEG) and try again.")
    if isinstance(value, dict):
        if "composite" in value:  # an ImageEditor / Sketchpad value
            return open_image(value.get("composite"), what)
        if str(value.get("url") or "").startswith("data:") and not value.get("path"):
            return _open_data_url(value["url"], what)
        if not value.get("path") and not value.get("url"):
            raise _error(f"Nothing was uploaded. Please add {what} (PNG or JPEG) and try again.")
        value = value.get("path") or value.get("url")
    if isinstance(value, np.ndarray):
        return _from_array(value)
    if isinstance(value, Image.Image):
        _check_size(value.size)
        return value
    if isinstance(value, str) and value.startswith("data:"):
        return _open_data_url(value, what)
    if isinstance(value, (str, Path)):
        path = uploaded_file(value, what)
        if path.stat().st_size > MAX_FILE_MB * 1024 * 1024:
            raise _error(
                f"That file is {path.stat().st_size / 2**20:.0f} MB; the limit is {MAX_FILE_MB} MB. Please upload a smaller image."
            )
        return _decode(path, what)
    raise _error(f"Expected {what}, but got a {type(value).__name__}. Please upload a PNG or JPEG file.")


def allowed_roots() -> tuple[Path, ...]:
    """Where a client's file reference may point: Gradio's upload folder (read now, as Gradio reads
    GRADIO_TEMP_DIR) and our examples/."""
    return Path(get_upload_folder()).resolve(), EXAMPLES_ROOT


def uploaded_file(value: str | Path, what: str = "an image") -> Path:
    """A client's file reference -> the real path of a file it uploaded, or one refusal for everything else.

    The path is resolved first (`..` and symlinks followed to their target), then must lie inside an allowed root
    and be a regular file. URLs are never fetched. Missing, outside, a folder, a URL: the same message, so the
    answer leaks nothing about what exists on the server."""
    refusal = _error(f"The upload could not be found on the server. Please upload {what} again.")
    text = str(value)
    if "://" in text or "\0" in text:
        raise refusal
    try:
        path = Path(text).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):  # missing, a symlink loop, a name the OS refuses
        raise refusal from None
    if not any(path.is_relative_to(root) for root in allowed_roots()) or not path.is_file():
        raise refusal
    return path


def cache_file(data: bytes, name: str, cache_dir: str | None = None) -> str:
    """Bytes the app hands back as a file -> a path inside Gradio's cache, where `delete_cache` removes it by age.

    Gradio registers a returned path that already lies in its cache as it is (it copies any other path in and
    leaves the original behind, which is how temp folders once piled up). The file is named by its content,
    `<cache>/<sha256>/<name>`, and staged under a temporary name then renamed into place, so two users who get the
    same bytes at once share one complete file; handing out the same bytes again refreshes its age."""
    folder = Path(cache_dir or get_upload_folder()) / hashlib.sha256(data).hexdigest()
    folder.mkdir(parents=True, exist_ok=True)
    path = (folder / Path(name).name).resolve()
    try:
        os.utime(path)  # the same bytes are there already: delete_cache ages files by their ctime, which this refreshes
        return str(path)
    except FileNotFoundError:  # not there yet, or the sweep just took it: write it
        pass
    fd, staging = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    return str(path)


def image_file(picture: Image.Image, name: str, **save_options) -> str:
    """A PIL image (or the first frame of an animation: save_all=True, append_images=[...]) saved losslessly in the
    format its name says (.png, .gif), into Gradio's cache (cache_file)."""
    buffer = io.BytesIO()
    picture.save(buffer, format=Path(name).suffix.lstrip(".").upper(), **save_options)
    return cache_file(buffer.getvalue(), name)


def _open_data_url(url: str, what: str) -> Image.Image:
    try:
        raw = base64.b64decode(url.split(",", 1)[1], validate=False)
    except (IndexError, binascii.Error, ValueError):
        raise _error(f"The image data could not be read. Please upload {what} as a PNG or JPEG file.") from None
    if len(raw) > MAX_FILE_MB * 1024 * 1024:
        raise _error(f"That image is larger than {MAX_FILE_MB} MB. Please upload a smaller one.")
    return _decode(io.BytesIO(raw), what)


def _decode(source, what: str) -> Image.Image:
    try:
        im = Image.open(source)  # reads the header only
    except Image.DecompressionBombError:
        raise _error(f"That image is far too large to process. Please upload one under {MAX_SIDE} x {MAX_SIDE} px.") from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise _error(
            f"That file is not an image we can read (it may be corrupt or in an unsupported format). Please upload {what} as PNG or JPEG."
        ) from None
    _check_size(im.size)
    try:
        im.load()  # the full decode, now that the size is known to be safe
        im = ImageOps.exif_transpose(im)
    except Image.DecompressionBombError:
        raise _error(f"That image is far too large to process. Please upload one under {MAX_SIDE} x {MAX_SIDE} px.") from None
    except (OSError, ValueError, SyntaxError):
        raise _error(
            "The image file is damaged or cut short and could not be decoded. Please upload it again or try another file."
        ) from None
    return im


def _check_size(size: tuple[int, int]) -> None:
    w, h = size
    if w > MAX_SIDE or h > MAX_SIDE or w * h > MAX_PIXELS:
        raise _error(
            f"That image is {w} x {h} px; the limit is {MAX_SIDE} px a side and {MAX_PIXELS / 1e6:.0f} megapixels. Please resize it and try again."
        )
    if w < MIN_SIDE or h < MIN_SIDE:
        raise _error(f"That image is only {w} x {h} px. Please upload one at least {MIN_SIDE} px on each side.")


def _from_array(arr: np.ndarray) -> Image.Image:
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
        raise _error(f"Expected an image array of shape (H, W) or (H, W, 3/4), got {arr.shape}.")
    _check_size((arr.shape[1], arr.shape[0]))
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.dtype != np.uint8:
        arr = np.asarray(arr, dtype=np.float64)
        if not np.isfinite(arr).all():
            raise _error("The image contains invalid values (NaN or infinity).")
        top = 1.0 if arr.max() <= 1.0 else (255.0 if arr.max() <= 255 else 65535.0)
        arr = np.clip(arr / top * 255.0, 0, 255).astype(np.uint8)
    return Image.fromarray(arr)


def _eight_bit(im: Image.Image) -> Image.Image:
    """16-bit and 32-bit greyscale ('I;16', 'I', 'F') -> 8-bit 'L', scaled by the image's own range."""
    arr = np.asarray(im, dtype=np.float64)
    lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
    if im.mode.startswith("I;16") or (im.mode == "I" and hi > 255):
        lo, hi = 0.0, 65535.0 if hi > 255 else 255.0
    elif im.mode == "F" and 0.0 <= lo and hi <= 1.0:
        lo, hi = 0.0, 1.0
    scaled = (np.nan_to_num(arr, nan=lo) - lo) / max(hi - lo, 1e-9) * 255.0
    return Image.fromarray(np.clip(scaled, 0, 255).astype(np.uint8))


def to_rgb(im: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """Any PIL mode -> (H, W, 3) uint8 RGB; transparency is laid over `background`."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        im = _eight_bit(im)
    if im.mode == "P":
        im = im.convert("RGBA")  # keeps palette transparency
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*background, 255))
        im = Image.alpha_composite(canvas, rgba)
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


def to_gray(im: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """Any PIL mode -> (H, W) float32 greyscale in [0, 1]."""
    rgb = to_rgb(im, background)
    return np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.float32) / 255.0


def drawing_file(sketch) -> str:
    """A drawing pad's picture -> a greyscale PNG in Gradio's cache, for a picture input; an empty pad gets a gr.Error."""
    if sketch is None or sketch.get("composite") is None:
        raise gr.Error("The drawing pad is empty: draw a digit first.")
    gray = to_gray(open_image(sketch, "a drawing"))
    if gray.max() - gray.min() < 0.1:
        raise gr.Error("The drawing pad is empty: draw a digit first.")
    return image_file(Image.fromarray((gray * 255).astype(np.uint8)), "drawing.png")


def class_from_text(text, labels: list[str], what: str = "Class") -> int:
    """ "9", "9: ostrich" or "ostrich" (any case) -> 9 among `labels`; anything else -> a gr.Error naming the range."""
    text = str(text).strip()
    head = text.split(":", 1)[0].strip()
    if head.isdigit():
        index = int(head)
        if 0 <= index < len(labels):
            return index
        raise _error(f"{what} {index} does not exist: this model has classes 0 to {len(labels) - 1}.")
    matches = [i for i, name in enumerate(labels) if name.lower() == text.lower()]
    if not matches:
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise _error(f"{shown!r} is not one of this model's classes. Pick one from the list.")
    return matches[0]


def check_number(value, name: str, low: float, high: float, integer: bool = False) -> float:
    """A number from the UI or API, or a gr.Error that names the allowed range."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _error(f"{name} must be a number between {low:g} and {high:g}.") from None
    if not np.isfinite(number) or number < low or number > high:
        raise _error(f"{name} must be between {low:g} and {high:g} (got {value}).")
    if integer and number != int(number):
        raise _error(f"{name} must be a whole number (got {value}).")
    return int(number) if integer else number


def lease_number(value, default: float, low: float, high: float) -> float:
    """A request's setting, read only to size a ZeroGPU lease (spaces.GPU calls the duration function with the raw
    arguments, before the tab checks them): unreadable -> the default, then clipped to [low, high]."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = default
    return float(np.clip(number if np.isfinite(number) else default, low, high))


def upscale(img01: np.ndarray, factor: int) -> np.ndarray:
    """(H, W) float in [0, 1] -> (H*f, W*f) uint8, nearest neighbour so pixels stay visible as pixels."""
    img = np.clip(np.round(img01 * 255), 0, 255).astype(np.uint8)
    return np.kron(img, np.ones((factor, factor), dtype=np.uint8))


def heat_colours(values: np.ndarray) -> np.ndarray:
    """(H, W) in [0, 1] -> (H, W, 3) float RGB in [0, 1]: dark blue, cyan, yellow, red."""
    stops = np.array([[0.0, 0.0, 0.5], [0.0, 0.8, 1.0], [1.0, 0.9, 0.0], [0.9, 0.0, 0.0]])
    pos = np.clip(values, 0, 1) * (len(stops) - 1)
    low = np.floor(pos).astype(int).clip(0, len(stops) - 2)
    frac = (pos - low)[..., None]
    return stops[low] * (1 - frac) + stops[low + 1] * frac


def drawing_pad(label: str, width: int, height: int, brush_size: int, elem_id: str | None = None) -> gr.Sketchpad:
    """A black pen on a white canvas. The white background value makes the brush active at once
    (no extra click); `type="numpy"` hands events the composite for `open_image`."""
    return gr.Sketchpad(
        label=label,
        value={"background": np.full((height, width, 3), 255, np.uint8), "layers": [], "composite": None},
        type="numpy",
        canvas_size=(width, height),
        brush=gr.Brush(default_size=brush_size, colors=["#000000"], color_mode="fixed"),
        layers=False,
        transforms=(),
        elem_id=elem_id,
    )


# --- Links: a tab's settings in the page address ------------------------------------------------
# ?tab=<tab id>&<setting>=<value>...: every tab writes its settings there as they change (and on "Copy link"), and reads
# them back when a page opens on such a link. Pictures go in by file name and only examples (or test pictures) a tab
# knows can come back, so a link never names a file on the server.


def link_number(name: str, low: float, high: float, integer: bool = False):
    """A reader for a link's number setting: the text -> the number, or gr.Error naming the range."""
    return lambda text: check_number(text, name, low, high, integer)


def link_choice(options):
    """A reader for a link's setting that takes one of `options`."""
    options = list(options)

    def read(text: str):
        if text not in options:
            raise ValueError(f"must be one of {', '.join(str(o) for o in options[:12])}")
        return text

    return read


def link_flag(text: str) -> bool:
    if text.lower() not in ("true", "false", "1", "0"):
        raise ValueError("must be true or false")
    return text.lower() in ("true", "1")


def link_text(limit: int):
    def read(text: str) -> str:
        if len(text) > limit:
            raise ValueError(f"is over {limit:,} characters")
        return text

    return read


def read_link(request: gr.Request | None, tab: str, readers: dict, current: dict) -> dict | None:
    """The settings a link for `tab` holds, over `current` (the tab's values as the page opened), or None when the page
    was not opened on a link for this tab. A value a reader refuses (ValueError, gr.Error) keeps its current one, and
    a toast says which were ignored, so a bad link still opens a usable tab."""
    params = dict(request.query_params) if request is not None else {}
    if params.get("tab") != tab:
        return None
    values, ignored = dict(current), []
    for name, text in params.items():
        if name == "tab":
            continue
        if name not in readers:
            ignored.append(f"{name} (not a setting of this tab)")
            continue
        try:
            values[name] = readers[name](text)
        except (ValueError, TypeError, gr.Error) as err:
            ignored.append(f"{name} ({getattr(err, 'message', None) or err})")
    warn_ignored(ignored)
    return values


def warn_ignored(ignored: list[str]) -> None:
    """A toast naming the link's values that could not be used (escaped: a link is anyone's text)."""
    if ignored:
        import html

        gr.Warning(
            html.escape(
                "This link's values for " + "; ".join(i[:160] for i in ignored[:8]) + " could not be used, so they were left as they were."
            ),
            title="Part of the link was ignored",
        )


def link_js(tab: str, names: list[str], copy: bool = False) -> str:
    """JavaScript for an event whose inputs are the settings `names`: writes them into the page address (pictures by
    file name; drawings and empty values are left out) and, with copy, puts that address on the clipboard."""
    return f"""(...values) => {{
        const names = {names!r};
        const params = new URLSearchParams({{tab: {tab!r}}});
        names.forEach((name, i) => {{
            let v = values[i];
            if (v && typeof v === "object") v = v.orig_name || (typeof v.path === "string" ? v.path.split("/").pop() : null);
            if (v !== null && v !== undefined && v !== "" && typeof v !== "object") params.set(name, String(v));
        }});
        window.history.replaceState(null, "", window.location.pathname + "?" + params.toString());
        if ({str(copy).lower()}) {{
            if (navigator.clipboard) navigator.clipboard.writeText(window.location.href).catch(() => {{}});
            const button = document.querySelector("#{tab}-copy-link");
            if (button) {{ button.dataset.copied = window.location.href; button.innerText = "Link copied: " + window.location.search.length + " characters of settings"; setTimeout(() => {{ button.innerText = "Copy link to these settings"; }}, 2500); }}
        }}
        return [];
    }}"""


def share_link(tab: str, settings: dict) -> gr.Button:
    """A "Copy link" button for `tab`, and the page address kept up to date with its `settings` ({link name: component})."""
    button = gr.Button("Copy link to these settings", size="sm", elem_id=f"{tab}-copy-link")
    components = list(settings.values())
    names = list(settings)
    button.click(None, components, None, js=link_js(tab, names, copy=True), api_visibility="private", queue=False)
    gr.on([c.change for c in components], None, components, None, js=link_js(tab, names), api_visibility="private", queue=False)
    return button


def on_link(open_link, settings: list, outputs: list):
    """Run open_link(*the settings' values as the page opens, request) once, on page load. (gr.on with no triggers and
    with inputs would also run it again whenever those inputs change, and open_link changes them.)"""
    initial = [component.value for component in settings]

    def opened(request: gr.Request):
        return open_link(*initial, request)

    return gr.on(None, opened, None, outputs, api_visibility="private")

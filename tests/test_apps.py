import struct
import zlib

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from apps import common, digits
from data.pen_digits import draw_digit

# gradio's own cache sweep, taken at import, before any test's build_demo() replaces it with app.delete_old_cache_files.
GRADIO_SWEEP = gr.route_utils.delete_files_created_by_app


def png_bytes(im: Image.Image) -> bytes:
    import io

    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def fake_png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height: a decompression bomb's calling card."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("value", [None, "", {"path": None}, {"composite": None}])
def test_nothing_uploaded_is_a_clear_error(value):
    with pytest.raises(gr.Error, match="Nothing was uploaded"):
        common.open_image(value)


def test_corrupt_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"this is not a png at all")
    with pytest.raises(gr.Error, match="not an image we can read"):
        common.open_image(str(bad))


def test_truncated_png_is_a_clear_error(tmp_path):
    data = png_bytes(Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200), dtype=np.uint8)))
    cut = tmp_path / "cut.png"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(gr.Error, match="damaged or cut short"):
        common.open_image(str(cut))


def test_huge_image_is_refused_from_its_header_before_decoding(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(fake_png_header(20000, 20000))
    with pytest.raises(gr.Error, match="far too large|the limit is"):
        common.open_image(str(bomb))


def test_oversized_file_is_refused_by_its_byte_size(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "MAX_FILE_MB", 0.001)
    path = tmp_path / "big.png"
    Image.new("L", (100, 100)).save(path)
    path.write_bytes(path.read_bytes() + b"\0" * 4000)
    with pytest.raises(gr.Error, match="the limit is"):
        common.open_image(str(path))


def test_tiny_image_is_refused():
    with pytest.raises(gr.Error, match="at least"):
        common.open_image(Image.new("L", (1, 1)))


def test_data_url_payload_is_decoded():
    import base64

    url = "data:image/png;base64," + base64.b64encode(png_bytes(draw_digit(7))).decode()
    assert common.open_image({"url": url}).size == (300, 300)


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F"])
def test_every_image_mode_becomes_rgb_and_gray(mode):
    base = draw_digit(4).convert("RGB")
    if mode == "I;16":
        im = Image.fromarray(np.asarray(base.convert("L"), dtype=np.uint16) * 257)
        assert im.mode.startswith("I;16")
    elif mode == "LA":
        im = base.convert("LA")
    else:
        im = base.convert(mode)
    rgb, gray = common.to_rgb(im), common.to_gray(im)
    assert rgb.shape == (300, 300, 3) and rgb.dtype == np.uint8
    assert gray.shape == (300, 300) and 0 <= gray.min() < 0.2 and gray.max() > 0.8


def test_transparent_sketch_is_laid_on_white():
    rgba = np.zeros((100, 100, 4), np.uint8)
    rgba[20:80, 45:55] = (0, 0, 0, 255)  # black stroke, fully transparent elsewhere
    gray = common.to_gray(Image.fromarray(rgba, "RGBA"))
    assert gray[0, 0] == 1.0 and gray[50, 50] == 0.0


@pytest.mark.parametrize(
    "value, ok", [(5, True), ("3", True), (0, True), (-1, False), (1e9, False), (float("nan"), False), ("abc", False), (None, False)]
)
def test_check_number(value, ok):
    if ok:
        assert common.check_number(value, "Epochs", 0, 10) == float(value)
    else:
        with pytest.raises(gr.Error, match="Epochs"):
            common.check_number(value, "Epochs", 0, 10)


@pytest.mark.parametrize("digit", [1, 4, 7, 0])
def test_classify_a_pen_drawn_digit(digit, tmp_path):
    path = tmp_path / f"{digit}.png"
    draw_digit(digit).save(path)
    confidences, seen, activations = digits.classify_digit(str(path))
    assert max(confidences, key=confidences.get) == str(digit)
    assert sum(confidences.values()) == pytest.approx(1.0, abs=1e-4)
    assert seen.shape == (224, 224) and seen.dtype == np.uint8
    assert activations.ndim == 2 and activations.max() > 0


def test_white_on_black_digit_is_read_too():
    confidences, _, _ = digits.classify_digit(draw_digit(7, dark_on_light=False))
    assert max(confidences, key=confidences.get) == "7"


def test_blank_picture_says_no_digit_found():
    with pytest.raises(gr.Error, match="No digit found"):
        digits.classify_digit(Image.new("RGB", (200, 200), "white"))


def test_empty_sketchpad_clears_outputs_instead_of_raising():
    blank = np.zeros((400, 400, 4), np.uint8)  # a fresh, transparent canvas
    assert digits.classify_sketch({"background": None, "layers": [], "composite": blank}) == (None, None, None)
    assert digits.classify_sketch(None) == (None, None, None)


def test_sketchpad_drawing_is_classified():
    rgba = np.zeros((300, 300, 4), np.uint8)
    stroke = np.asarray(draw_digit(7)) < 128
    rgba[stroke] = (0, 0, 0, 255)
    confidences, _, _ = digits.classify_sketch({"composite": rgba})
    assert max(confidences, key=confidences.get) == "7"


def test_training_curves_and_metrics_come_from_the_checkpoint():
    curves = digits.training_curves()
    assert curves is not None and {"epoch", "value", "curve"} <= set(curves.columns)
    assert "Test accuracy" in digits.metrics_markdown()


def test_demo_builds_without_launching():
    import app

    demo = app.build_demo()
    names = {dep.get("api_name") for dep in demo.config["dependencies"] if dep.get("api_visibility", "public") == "public"}
    assert "classify_digit" in names


def test_pictures_are_encoded_fast_and_decode_to_what_was_drawn():
    """app.encode_picture: PNG stays lossless, WebP keeps gradio's quality (only the encoder's effort drops), and any
    other format goes through gradio's own encoder."""
    import io

    import app

    rng = np.random.default_rng(0)
    smooth = np.repeat(np.repeat(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8), 16, 0), 16, 1)  # 256 x 256 blocks
    picture = Image.fromarray(smooth)
    png = Image.open(io.BytesIO(app.encode_picture(picture, "png")))
    assert png.format == "PNG" and np.array_equal(np.asarray(png.convert("RGB")), smooth)
    webp = Image.open(io.BytesIO(app.encode_picture(picture, "webp")))
    assert webp.format == "WEBP" and webp.size == picture.size
    assert np.abs(np.asarray(webp.convert("RGB")).astype(int) - smooth).mean() < 8
    assert Image.open(io.BytesIO(app.encode_picture(picture, "jpeg"))).format == "JPEG"


def test_the_queue_does_not_rebuild_its_monitoring_table_after_every_request():
    """gradio recomputes a pandas summary of up to 10,000 past events after each one unless told otherwise."""
    import app

    queue = app.build_demo()._queue
    assert queue.ANAYLTICS_CACHE_FREQUENCY >= 100 and queue.ANALYTICS_MAX_EVENTS <= 1000  # gradio's own spelling


def test_the_server_forgets_the_longest_idle_sessions_past_its_capacity(monkeypatch):
    """Every new session (a page view, an API call without a session) holds a copy of the app's whole config in
    gradio: app.main launches with a capacity, and past it gradio drops the longest-idle session."""
    from gradio.state_holder import StateHolder

    import app

    launched = {}
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kwargs: launched.update(kwargs, demo=self))
    monkeypatch.setenv("MODEL_SHOW_SESSIONS", "4")
    app.main()
    assert launched["state_session_capacity"] == 4 and launched["share"] is False
    demo = launched["demo"]
    demo.state_session_capacity = launched["state_session_capacity"]  # what launch does with it
    holder = StateHolder()
    holder.set_blocks(demo)
    for visitor in range(7):
        holder[f"visitor-{visitor}"]
        holder["teacher"]  # one visitor stays busy throughout
    assert len(holder.session_data) == 4 and "teacher" in holder and "visitor-0" not in holder and "visitor-6" in holder
    monkeypatch.setenv("MODEL_SHOW_SESSIONS", "lots")
    assert app.session_capacity() == app.SESSIONS


def test_every_endpoint_names_its_concurrency_group_where_it_is_wired():
    """No hand-kept list: every public endpoint of the built app declares a named group (gradio's default is a queue
    of the function's own). Model calls wait in two lanes, light and heavy, the heavy one never wider than half the
    workers so a light call always finds a free one; long jobs keep lanes of their own."""
    import app
    from apps.common import HEAVY_WORKERS, MODEL_WORKERS

    demo = app.build_demo()
    public = [fn for fn in demo.fns.values() if fn.api_visibility == "public" and fn.api_name]
    assert len(public) >= 15
    unnamed = [fn.api_name for fn in public if fn.concurrency_id == str(id(fn.fn))]
    assert unnamed == [], f"wire these with **LIGHT_LANE or **HEAVY_LANE (or a lane of their own): {unnamed}"
    light = [fn for fn in demo.fns.values() if fn.concurrency_id == "light"]
    heavy = [fn for fn in demo.fns.values() if fn.concurrency_id == "heavy"]
    assert all(fn.concurrency_limit == MODEL_WORKERS for fn in light)
    assert all(fn.concurrency_limit == HEAVY_WORKERS for fn in heavy) and HEAVY_WORKERS <= max(1, MODEL_WORKERS // 2)
    light_names, heavy_names = {fn.api_name or fn.name for fn in light}, {fn.api_name or fn.name for fn in heavy}
    # What a classroom clicks most answers from the light lane, whatever is queued in the heavy one.
    assert {"classify_digit", "classify_image", "explain_image", "next_words", "generate_digits", "interpolate_digits"} <= light_names
    assert {"segment_digits", "detect_defects"} <= light_names
    assert {"generate_digits_diffusion", "attack", "generate_text", "horse_to_zebra", "train_playground"} <= heavy_names
    # Live events that run a network (drawing, uploads, sliders) are light too.
    assert {"classify_sketch", "segment_sketch", "resegment", "detect_calibrated", "describe_photo"} <= {fn.name for fn in light}
    # Long jobs keep their own lanes, so a 35 s fit cannot take a shared worker.
    lanes = {fn.api_name: (fn.concurrency_id, fn.concurrency_limit) for fn in public}
    assert lanes["fit_fabric"] == ("fit_fabric", 1) and lanes["robustness_curve"] == ("robustness_curve", 1)


def test_a_picture_two_users_get_at_once_is_never_read_half_written(tmp_path):
    import threading
    import time

    import app

    picture = Image.fromarray(np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8))
    path = app.save_pil_to_cache_atomically(picture, str(tmp_path))
    with open(path, "rb") as file:
        full = len(file.read())
    stop, short = time.perf_counter() + 0.5, []

    def second_user():
        while time.perf_counter() < stop:
            app.save_pil_to_cache_atomically(picture, str(tmp_path))

    writer = threading.Thread(target=second_user)
    writer.start()
    while time.perf_counter() < stop:  # gradio's own save_pil_to_cache gave ~700 short reads a second here
        with open(path, "rb") as file:
            if len(file.read()) < full:
                short.append(1)
    writer.join()
    assert not short
    app.build_demo()
    assert gr.processing_utils.save_pil_to_cache is app.save_pil_to_cache_atomically  # what every image output uses


def test_the_cache_sweep_survives_a_request_that_lands_mid_sweep(tmp_path, monkeypatch):
    """A request adds a file to a component's set while the sweep walks it (here, deterministically, on the sweep's
    first look at a file). gradio's own sweep raises and its cleaning task ends for good; ours deletes the old files,
    keeps the example gradio holds for the UI and the new one, and keeps going."""
    import os
    import time
    from pathlib import Path
    from types import SimpleNamespace

    import app

    old, kept = tmp_path / "old.webp", tmp_path / "example.png"
    for path in (old, kept):
        path.write_bytes(b"x")
    files = {str(old), str(kept)}
    blocks = SimpleNamespace(blocks={1: SimpleNamespace(keep_in_cache={str(kept)})}, temp_file_sets=[files])
    real_stat = os.stat

    def stat_while_a_request_lands(name, *args, **kwargs):
        if str(name) in files:  # the sweep looks at one of its files: a request adds a new one right then
            fresh = tmp_path / f"new_{len(files)}.webp"
            fresh.write_bytes(b"y")
            files.add(str(fresh))
        result = real_stat(name, *args, **kwargs)
        return os.stat_result((*result[:9], time.time() - 100)) if str(name) == str(old) else result  # old: 100 s old

    monkeypatch.setattr(os, "stat", stat_while_a_request_lands)  # Path.lstat() calls os.stat
    monkeypatch.setattr(os, "lstat", lambda name: stat_while_a_request_lands(name, follow_symlinks=False))
    with pytest.raises(RuntimeError, match="changed size"):
        GRADIO_SWEEP(blocks, 10)  # gradio's own: what ended the cleaning under load
    app.delete_old_cache_files(blocks, 10)
    monkeypatch.undo()
    assert not old.exists() and kept.exists() and str(kept) in files
    assert all(Path(name).exists() for name in files) and len(files) >= 3  # the files that landed stay, younger than the age
    app.build_demo()
    assert gr.route_utils.delete_files_created_by_app is app.delete_old_cache_files  # what delete_cache runs on its schedule


def test_recent_answers_keep_a_bounded_few_and_forget_answers_whose_files_were_swept(tmp_path, monkeypatch):
    from apps.common import RecentAnswers

    recent = RecentAnswers(size=2)
    kept = tmp_path / "kept.gif"
    kept.write_bytes(b"GIF89a")
    recent.put("a", (1, str(kept)))
    recent.put("b", (2,))
    assert recent.get("a") == (1, str(kept))  # "a" is now the most recent
    recent.put("c", (3,))
    assert recent.get("b") is None and recent.get("c") == (3,)  # the oldest went when a third arrived
    kept.unlink()  # Gradio's cache sweep took the file the answer names: the answer goes too
    assert recent.get("a") is None
    monkeypatch.setenv("MODEL_SHOW_ANSWER_CACHE", "0")
    off = RecentAnswers()
    off.put("a", (1,))
    assert off.get("a") is None


def test_a_repeated_diffusion_request_gets_the_same_digits_and_says_they_were_remembered():
    from apps import digit_diffusion

    first_updates = list(digit_diffusion.generate_digits_diffusion("three", 2, 5, 3.0, 123, "DDIM"))
    again_updates = list(digit_diffusion.generate_digits_diffusion("three", 2, 5, 3.0, 123, "DDIM"))
    first, again = first_updates[-1], again_updates[-1]
    other_seed = list(digit_diffusion.generate_digits_diffusion("three", 2, 5, 3.0, 124, "DDIM"))[-1]
    assert len(again_updates) == len(first_updates) == 6  # a remembered answer replays its five steps too
    for live, replayed in zip(first_updates[:-1], again_updates[:-1], strict=True):
        assert np.array_equal(live[0], replayed[0]) and np.array_equal(live[2], replayed[2])
    assert np.array_equal(np.asarray(first[0]), np.asarray(again[0])) and first[1] == again[1]
    assert "memory of recent answers" not in first[3] and "memory of recent answers" in again[3]
    assert "memory of recent answers" not in other_seed[3] and not np.array_equal(np.asarray(first[0]), np.asarray(other_seed[0]))

"""The Classify tab through its pure functions."""

import time
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch
from gradio.utils import get_upload_folder
from PIL import Image
from safetensors import safe_open

from apps import classify
from data.photos import sample_photos

CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    return sample_photos()


def test_chelsea_is_a_cat_and_coffee_is_espresso(photos):
    labels = classify.model().config.labels
    cat = classify.classify_image(photos["chelsea"])
    top_label, top_p = next(iter(cat.items()))
    assert labels.index(top_label) in CAT_CLASSES and top_p >= 0.5
    coffee = classify.classify_image(photos["coffee"])
    assert next(iter(coffee)) == "espresso"
    assert len(cat) == 5 and sum(cat.values()) <= 1.0


def test_grad_cam_looks_at_the_cat(photos):
    rgb = photos["chelsea"]  # 451 x 300, a tabby's face filling the middle
    _, x = classify.prepare_photo(rgb)
    cam, index, prob = classify.grad_cam(classify.model(), x)
    assert index in CAT_CLASSES and cam.shape == (7, 7) and cam.max() == pytest.approx(1.0)
    heat, overlay = classify.cam_on_photo(rgb, cam)
    assert overlay.shape == rgb.shape and overlay.dtype == np.uint8
    left, top, right, bottom = 60, 0, 370, 290  # hand-drawn box around the cat's head and chest
    inside = heat[top:bottom, left:right].sum() / heat.sum()
    area = (right - left) * (bottom - top) / (rgb.shape[0] * rgb.shape[1])
    assert inside > 0.60 and inside > area + 0.1  # more heat than the box's share of the picture


def test_inside_views_have_the_expected_shapes(photos):
    filters, maps = classify.inspect_image(photos["coffee"])
    assert filters.ndim == 3 and filters.shape[2] == 3 and filters.dtype == np.uint8
    assert maps.shape == (4 * 112 + 3 * 2, 4 * 112 + 3 * 2)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16", "CMYK"])
def test_odd_image_modes_get_an_answer(photos, mode):
    im = Image.fromarray(photos["coffee"])
    im = Image.fromarray(np.asarray(im.convert("L"), dtype=np.uint16) * 257) if mode == "I;16" else im.convert(mode)
    assert len(classify.classify_image(im)) == 5


def test_panorama_gets_an_answer_and_a_giant_is_refused(tmp_path):
    wide = np.tile(np.asarray(Image.open(classify.EXAMPLES_DIR / "china.jpg")), (1, 8, 1))  # 5120 x 427
    assert len(classify.classify_image(wide)) == 5
    giant = tmp_path / "giant.png"
    Image.new("RGB", (9000, 200)).save(giant)
    with pytest.raises(gr.Error, match="limit"):
        classify.classify_image(str(giant))


@pytest.mark.parametrize("content, message", [(b"%PDF-1.4 not an image", "not an image we can read"), (None, "Nothing was uploaded")])
def test_non_images_get_clear_errors(tmp_path, content, message):
    value = None
    if content is not None:
        value = tmp_path / "file.png"
        value.write_bytes(content)
    with pytest.raises(gr.Error, match=message):
        classify.classify_image(None if value is None else str(value))


def test_one_pixel_image_is_refused():
    with pytest.raises(gr.Error, match="at least"):
        classify.classify_image(Image.new("RGB", (1, 1)))


def random_crops(rgb: np.ndarray, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    h, w = rgb.shape[:2]
    out = []
    for _ in range(n):
        side = int(rng.integers(min(h, w) // 2, min(h, w)))
        top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        out.append(rgb[top : top + side, left : left + side])
    return out


def test_teach_three_classes_from_photo_crops(photos, tmp_path):
    rng = np.random.default_rng(0)
    slots = []
    for name, photo in (("coffee", "coffee"), ("cat", "chelsea"), ("rocket", "rocket")):
        files = []
        for k, crop in enumerate(random_crops(photos[photo], 7, rng)):
            path = tmp_path / f"{name}-{k}.jpg"
            Image.fromarray(crop).save(path)
            files.append({"path": str(path)})  # what the event hands us with preprocess=False
        slots += [name, files]
    slots += [None, None, "", []]  # two empty slots
    classify.model()  # load first: the time limit is for teaching, not for loading the network
    start = time.perf_counter()
    head, report = classify.teach_classes(*slots, progress=lambda *a, **k: None)
    elapsed = time.perf_counter() - start
    assert elapsed < 10, f"teaching took {elapsed:.1f} s"
    assert head.labels == ["coffee", "cat", "rocket"] and head.n_held_out == 6
    assert head.held_out_accuracy >= 0.9, report
    fresh = random_crops(photos["chelsea"], 1, np.random.default_rng(99))[0]
    assert next(iter(sorted(classify.classify_taught(head, fresh).items(), key=lambda kv: -kv[1])))[0] == "cat"
    path = classify.download_head(head)
    with safe_open(path, framework="pt") as f:
        assert f.metadata()["labels"].split("\n") == ["coffee", "cat", "rocket"]
        assert f.get_tensor("weight").shape == (3, 1280)
        assert torch.equal(f.get_tensor("bias"), head.bias)
        assert f.metadata()["backbone"] == "imagenet-classifier" and "224" in f.metadata()["preprocessing"]
    # Under the hood: the held-out confusion matrix, the curve of every epoch, what was learned.
    picture, curve, notes = classify.under_the_hood(head)
    assert picture.ndim == 3 and sum(map(sum, head.confusion)) == head.n_held_out == 6
    assert len(curve) == 4 * classify.DEFAULT_TRAINING.epochs and set(curve["curve"]) >= {"held-out accuracy", "training loss"}
    assert f"{3 * 1280 + 3:,} weights learned" in notes and "| cat | 2 |" in notes
    # Uploaded back (from Gradio's upload folder, as a client's file is), it classifies exactly as before.
    upload = Path(get_upload_folder()) / "reloaded" / "taught_head.safetensors"
    upload.parent.mkdir(parents=True, exist_ok=True)
    upload.write_bytes(Path(path).read_bytes())
    reloaded, note = classify.load_head({"path": str(upload)})
    assert reloaded.labels == head.labels and "3 classes" in note
    before, after = classify.classify_taught(head, fresh), classify.classify_taught(reloaded, fresh)
    assert max(abs(before[k] - after[k]) for k in before) <= 1e-6
    # "Why cat?" for a taught class, and "why not espresso?" for an ImageNet one.
    overlay, caption = classify.explain_image(fresh, "yours: cat", head)
    assert overlay.shape == fresh.shape and "your class **cat**" in caption
    _, caption = classify.explain_image(fresh, "967: espresso", head)
    assert "**espresso**" in caption
    with pytest.raises(gr.Error, match="no taught class"):
        classify.explain_image(fresh, "yours: dog", head)


@pytest.mark.parametrize(
    "names, counts, message",
    [
        (["a", "", "", "", ""], [3, 0, 0, 0, 0], "at least 2 classes"),
        (["a", "b", "", "", ""], [3, 2, 0, 0, 0], "add at least 3"),
        (["a", "", "", "", ""], [3, 3, 0, 0, 0], "no name"),
        (["a", "a", "", "", ""], [3, 3, 0, 0, 0], "its own name"),
    ],
)
def test_teach_explains_what_is_missing(names, counts, message):
    files = [[{"path": "x.jpg"}] * n for n in counts]
    with pytest.raises(gr.Error, match=message):
        classify.check_classes(names, files)


def test_classify_taught_without_teaching_says_what_to_do(photos):
    with pytest.raises(gr.Error, match="Teach it some classes first"):
        classify.classify_taught(None, photos["coffee"])


def test_a_file_that_is_not_our_head_is_refused_and_says_why(tmp_path):
    from safetensors.torch import save

    folder = Path(get_upload_folder()) / "not-heads"
    folder.mkdir(parents=True, exist_ok=True)
    cases = {
        "corrupt.safetensors": (b"\x89PNG not a head", "not a safetensors file"),
        "foreign.safetensors": (save({"weight": torch.zeros(2, 1280), "bias": torch.zeros(2)}), "names no classes"),
        "shape.safetensors": (
            save({"weight": torch.zeros(2, 640), "bias": torch.zeros(2)}, {"labels": "a\nb", "backbone": "imagenet-classifier"}),
            "weight \\(classes, 1280\\)",
        ),
    }
    for name, (data, message) in cases.items():
        (folder / name).write_bytes(data)
        with pytest.raises(gr.Error, match=message):
            classify.load_head({"path": str(folder / name)})
    with pytest.raises(gr.Error, match="Nothing was uploaded"):
        classify.load_head(None)
    with pytest.raises(gr.Error, match="could not be found"):
        classify.load_head({"path": "/etc/passwd"})


def test_explain_any_imagenet_class_by_number_or_name(photos):
    _, top = classify.explain_image(photos["chelsea"])
    _, espresso = classify.explain_image(photos["chelsea"], "espresso")
    assert "**espresso**" in espresso and espresso != top and classify.TOP_CLASS in classify.explain_choices()
    assert len(classify.explain_choices()) == 1 + 1000
    with pytest.raises(gr.Error, match="does not exist"):
        classify.explain_image(photos["chelsea"], "1000")
    with pytest.raises(gr.Error, match="not one of this model's classes"):
        classify.explain_image(photos["chelsea"], "unicorn")


def test_training_options_reach_the_head_and_bad_ones_are_refused(photos, tmp_path):
    rng = np.random.default_rng(5)
    slots = []
    for name, photo in (("coffee", "coffee"), ("cat", "chelsea")):
        files = []
        for k, crop in enumerate(random_crops(photos[photo], 4, rng)):
            path = tmp_path / f"{name}-{k}.jpg"
            Image.fromarray(crop).save(path)
            files.append({"path": str(path)})
        slots += [name, files]
    head, _ = classify.teach_classes(*slots, epochs=12, learning_rate=0.02, batch_size=3, progress=lambda *a, **k: None)
    assert len(head.history) == 12
    for option, message in (({"epochs": 0}, "Epochs"), ({"learning_rate": 5}, "Learning rate"), ({"batch_size": -1}, "Batch size")):
        with pytest.raises(gr.Error, match=message):
            classify.teach_classes(*slots, **option, progress=lambda *a, **k: None)
    picture, curve, notes = classify.under_the_hood(None)
    assert picture is None and curve is None and "Teach some classes" in notes


def webcam_frames(rgb: np.ndarray, n: int, seed: int) -> list[np.ndarray]:
    """n frames (480, 640, 3) of a photo moving a little in front of a webcam, as a streaming gr.Image delivers them."""
    rng = np.random.default_rng(seed)
    big = np.asarray(Image.fromarray(rgb).resize((720, 540)))
    frames = []
    for _ in range(n):
        top, left = int(rng.integers(0, 60)), int(rng.integers(0, 80))
        frames.append(big[top : top + 480, left : left + 640])
    return frames


def test_webcam_frames_are_cropped_once_and_teach_a_head_that_classifies_the_live_stream(photos):
    examples = None
    for number, photo in ((1, "chelsea"), (2, "coffee")):
        for frame in webcam_frames(photos[photo], 20, seed=number):
            examples, count = classify.record_frame(number, frame, examples)
        assert count.startswith("**20** of 60")
    # Cropped and resized once, as the head's preprocessing says: the features are those of the frame's centre square.
    frame = webcam_frames(photos["chelsea"], 1, seed=1)[0]
    crop = np.asarray(Image.fromarray(frame[:, 80:560]).resize((224, 224), Image.Resampling.BILINEAR))
    expected = classify.taught_head.pooled_features(classify.model(), [crop])[0]
    assert torch.allclose(examples[0][0].features, expected, atol=1e-5) and examples[2] == []
    classify.teach_classes(name_1="warm", name_2="up", examples=examples, epochs=1, progress=lambda *a, **k: None)
    start = time.perf_counter()
    head, report = classify.teach_classes(name_1="cat", name_2="coffee", examples=examples, progress=lambda *a, **k: None)
    elapsed = time.perf_counter() - start
    assert elapsed < 5, f"teaching 2 x 20 prepared frames took {elapsed:.1f} s"  # benchmarks/ holds it to 2 s
    assert head.n_train + head.n_held_out == 40 and head.held_out_accuracy == 1.0, report
    live = None
    for k, frame in enumerate(webcam_frames(photos["chelsea"], 3, seed=7), start=1):
        probs, caption, live = classify.classify_live(frame, head, live)
        assert max(probs, key=probs.get) == "cat" and f"**{k}** frames classified" in caption
    with pytest.raises(gr.Error, match="Teach it some classes first"):
        classify.classify_live(frame, None, None)


def test_adding_examples_checks_everything_first_and_a_refusal_changes_nothing(photos, tmp_path):
    folder = Path(get_upload_folder()) / "examples-test"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, crop in enumerate(random_crops(photos["rocket"], 3, np.random.default_rng(3))):
        paths.append(str(folder / f"rocket-{k}.png"))
        Image.fromarray(crop).save(paths[-1])
    examples, *counts = classify.add_examples(3, paths)
    assert len(examples[2]) == 3 and counts[2].startswith("**3** of 60") and counts[0].startswith("**0**")
    (folder / "broken.png").write_bytes(b"\x89PNG broken")
    refusals = [
        ((3, [paths[0]] * 1000), "holds up to 60"),
        ((3, [paths[0], str(folder / "broken.png")]), "not an image we can read"),
        ((3, []), "No images were sent"),
        ((3, None), "No images were sent"),
        ((0, paths), "Class number"),
        ((6, paths), "Class number"),
        (("two", paths), "Class number"),
    ]
    for args, message in refusals:
        with pytest.raises(gr.Error, match=message):
            classify.add_examples(*args, examples)
        assert [len(group) for group in examples] == [0, 0, 3, 0, 0]
    # A full class keeps its examples and says so; the webcam cannot push it past the cap.
    full, _ = classify.add_examples(1, [paths[0]] * 60, examples)[:2]
    still, count = classify.record_frame(1, webcam_frames(photos["coffee"], 1, seed=0)[0], full)
    assert len(still[0]) == 60 and "full" in count
    cleared, *counts = classify.clear_examples(1, still)
    # The session's examples change in place (two uploads at once must not undo each other), so clearing empties them.
    assert cleared is still and len(cleared[0]) == 0 and len(cleared[2]) == 3


@pytest.mark.parametrize(
    "names, message",
    [(["cat", "coffee", "", "", ""], "'coffee' has 0 image"), (["cat", "", "", "", ""], "at least 2 classes")],
)
def test_an_empty_class_or_one_class_is_refused_and_the_examples_stay(photos, names, message):
    examples, *_ = classify.add_examples(1, [photos["chelsea"]] * 3)
    with pytest.raises(gr.Error, match=message):
        classify.teach_classes(names[0], None, names[1], None, examples=examples, progress=lambda *a, **k: None)
    assert len(examples[0]) == 3


def test_two_uploads_at_once_to_two_classes_keep_both(tmp_path):
    """The browser sends class 1's and class 2's uploads as two events that run side by side on the same session's
    examples: neither may undo the other."""
    import threading

    from PIL import Image

    paths = []
    for k in range(3):
        path = tmp_path / f"p{k}.png"
        Image.new("RGB", (64, 64), (40 * k, 90, 200)).save(path)
        paths.append(str(path))
    examples = classify.no_examples()
    threads = [threading.Thread(target=classify.add_examples, args=(k, paths, examples)) for k in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [len(group) for group in examples] == [3, 3, 0, 0, 0]

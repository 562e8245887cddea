"""The Segment tab with the shipped U-Net: drawings get coloured regions, thresholds behave, bad input is refused."""

import json
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch
from PIL import Image

from apps import segment as tab
from data import digit_scenes
from data.pen_digits import draw_digit
from models.segmentation import LARGEST_DIGIT_PX, confusion, digit_height, read_drawing, scores
from models.unet import UNet
from tests.conftest import needs_checkpoint

CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "digit-segmenter"
pytestmark = needs_checkpoint("digit-segmenter")


def two_digit_canvas(a: int = 7, b: int = 4) -> np.ndarray:
    canvas = Image.new("L", (600, 300), 255)
    canvas.paste(draw_digit(a), (0, 0))
    canvas.paste(draw_digit(b), (300, 0))
    return np.asarray(canvas, dtype=np.float32) / 255


def test_shipped_segmenter_holds_its_test_miou():
    net = UNet.from_pretrained(CHECKPOINT, strict=True)
    images, masks = digit_scenes.fixed_scenes("test")
    measured = scores(confusion(net, images[:100], masks[:100], 11))["miou"]
    claimed = json.loads((CHECKPOINT / "metrics.json").read_text())["miou"]
    # The card's claim holds (the bar, 0.90 on all 500 scenes, is the benchmark's to judge).
    assert measured >= 0.5 and measured == pytest.approx(claimed, abs=0.03)


def test_shipped_segmenter_holds_its_digit_f1_as_a_person_scores_it():
    from models.segmentation import person_scores

    net = UNet.from_pretrained(CHECKPOINT, strict=True)
    images, masks, owners = digit_scenes.fixed_scenes_with_instances("test")
    measured = person_scores(net, images[:150], masks[:150], 11, owners[:150])
    claimed = json.loads((CHECKPOINT / "metrics.json").read_text())
    for key in ("digit_f1", "miou_tol1"):  # 150 of the 500 scenes: the claim holds within a few points
        assert measured[key] == pytest.approx(claimed[key], abs=0.04), key


def test_two_drawn_digits_get_two_coloured_regions():
    (base, layers), prob_map, text, _ = tab.segment_digits(two_digit_canvas(7, 4), 0.5, "7")
    classes = {name for _, name in layers if name != tab.UNSURE}
    assert {"7", "4"} <= classes and len(classes) <= 3
    assert base.shape[:2] == prob_map.shape[:2] == (128, 256)
    assert "**7**" in text and "**4**" in text
    seven, four = (next(mask for mask, name in layers if name == d) for d in ("7", "4"))
    assert seven[:, :128].sum() > 5 * seven[:, 128:].sum()  # the 7 was drawn on the left
    assert four[:, 128:].sum() > 5 * four[:, :128].sum()


def test_confidence_threshold_moves_pixels_to_unsure():
    low = tab.segment_digits(two_digit_canvas(), 0.0, tab.ANY_DIGIT)[0][1]
    high = tab.segment_digits(two_digit_canvas(), 0.99, tab.ANY_DIGIT)[0][1]
    unsure = lambda layers: sum(m.sum() for m, n in layers if n == tab.UNSURE)  # noqa: E731
    assert unsure(low) == 0 and unsure(high) > 0


def test_probability_map_is_on_a_fixed_scale():
    gray = two_digit_canvas()
    _, probs = read_drawing(tab.model(), gray)
    # "0" was not drawn: its map must stay cold (dark blue), not be stretched to look like a detection.
    zero_map = tab.probability_map(probs, "0")
    assert zero_map[..., 2].mean() > 100 and zero_map[..., 0].mean() < 60


@pytest.mark.parametrize(
    "value, settings, message",
    [
        (None, (0.5, tab.ANY_DIGIT), "Nothing was uploaded"),
        ("blank", (0.5, tab.ANY_DIGIT), "blank"),
        ("ok", (1.5, tab.ANY_DIGIT), "Confidence"),
        ("ok", (0.5, "11"), "Unknown class"),
    ],
)
def test_bad_input_gets_a_clear_message(tmp_path, value, settings, message):
    if value == "blank":
        value = np.ones((100, 100), np.float32)
    elif value == "ok":
        value = two_digit_canvas()
    with pytest.raises(gr.Error, match=message):
        tab.segment_digits(value, *settings)


def test_random_test_scene_comes_with_its_true_mask():
    for _ in range(20):  # scene 412's only digit landed off the canvas: it must never be picked
        path, (base, layers), note = tab.random_test_scene()
        assert Image.open(path).size == (128, 128) and "test digits" in note
        assert layers and all(mask.shape == (128, 128) and mask.any() for mask, _ in layers)
    _, (_, layers), note = tab.test_scene(412)
    assert layers == [] and "#412 of 500" in note


@pytest.mark.parametrize("pair", [(1, 0), (0, 7), (4, 1)])
def test_big_drawings_are_read_at_the_size_the_network_learned(pair):
    """Digits filling a 300 px canvas are ~90 px tall at the working size (training: 30-64 px); the tab also
    reads them shrunk, so neither a lone stroke (a 1) nor a big loop (a 0) is lost as clutter."""
    gray = two_digit_canvas(*pair)
    assert digit_height(gray[::2, ::2]) > LARGEST_DIGIT_PX  # 150 px rows: the marks are over 64 px tall
    (_, layers), _, text, _ = tab.segment_digits(gray, 0.5, tab.ANY_DIGIT)
    assert {str(d) for d in pair} <= {name for _, name in layers}, text


def test_scenes_at_the_learned_size_are_read_as_they_are():
    images, _ = digit_scenes.fixed_scenes("test")
    index = next(i for i in range(len(images)) if digit_height(images[i, 0].numpy()) <= LARGEST_DIGIT_PX)
    _, probs = read_drawing(tab.model(), images[index, 0].numpy())
    with torch.inference_mode():
        direct = tab.model()(images[index : index + 1]).softmax(1)[0].numpy()
    np.testing.assert_allclose(probs, direct, atol=1e-5)


def pad_drawing(strokes: list[list[tuple[float, float]]], brush: int = 20) -> np.ndarray:
    """Strokes (canvas fractions) drawn as on the tab's 512 x 384 sketchpad: a round black pen on white."""
    from PIL import ImageDraw

    canvas = Image.new("L", (512, 384), 255)
    pen = ImageDraw.Draw(canvas)
    for stroke in strokes:
        points = [(x * 512, y * 384) for x, y in stroke]
        pen.line(points, fill=0, width=brush, joint="curve")
        for x, y in (points[0], points[-1]):
            pen.ellipse((x - brush / 2, y - brush / 2, x + brush / 2, y + brush / 2), fill=0)
    return np.asarray(canvas, dtype=np.float32) / 255


@pytest.mark.parametrize("drawn", [1.0, 0.7, 0.4])
def test_a_big_seven_is_found_beside_a_one_still_being_drawn(drawn):
    """The browser test's drawing (a 7 about 240 px tall, then a 1) at three moments of the 1's stroke: the live
    reading must never lose the finished 7 (it did when the size guess was the median of the marks' heights)."""
    seven = [(0.06, 0.26), (0.44, 0.26), (0.19, 0.86)]
    one = [(0.88, 0.12), (0.88, 0.12 + 0.78 * drawn)]
    (_, layers), _, text, _ = tab.segment_digits(pad_drawing([seven, one]), 0.5, tab.ANY_DIGIT)
    found = {name for _, name in layers}
    assert "7" in found, text
    if drawn == 1.0:
        assert "1" in found, text


def test_metrics_text_quotes_the_card_and_the_one_pixel_yardstick():
    metrics = json.loads((CHECKPOINT / "metrics.json").read_text())
    text = tab.metrics_markdown()
    assert f"{metrics['miou']:.3f}" in text and f"{metrics['font_scene_miou']:.3f}" in text
    assert f"{metrics['miou_true_masks_1px_thicker']:.3f}" in text


@pytest.mark.parametrize("pair", [(1, 0), (0, 7), (4, 1)])
def test_the_summary_reads_the_digits_left_to_right(pair):
    (_, _), _, text, _ = tab.segment_digits(two_digit_canvas(*pair), 0.5, tab.ANY_DIGIT)
    assert f"It reads: {pair[0]} {pair[1]}**" in text


def test_two_lines_of_digits_are_read_line_by_line():
    canvas = Image.new("L", (600, 600), 255)
    for digit, x, y in [(7, 0, 0), (4, 300, 0), (1, 0, 300), (0, 300, 300)]:
        canvas.paste(draw_digit(digit), (x, y))
    (_, _), _, text, _ = tab.segment_digits(np.asarray(canvas, dtype=np.float32) / 255, 0.5, tab.ANY_DIGIT)
    assert "It reads: 7 4 1 0**" in text


def test_reading_order_goes_line_by_line_then_left_to_right():
    from models.segmentation import reading_order

    def digit(name, x0, y0, x1, y1):
        return {"class": name, "box": (x0, y0, x1, y1)}

    # A slightly lower digit on the first line stays on it; the second line starts below.
    digits = [
        digit(3, 50, 62, 70, 92),
        digit(1, 10, 60, 30, 90),
        digit(9, 40, 5, 60, 35),
        digit(2, 10, 0, 30, 30),
        digit(8, 80, 8, 100, 38),
    ]
    assert [d["class"] for d in reading_order(digits)] == [2, 9, 8, 1, 3]
    assert reading_order([]) == []


def test_the_instance_view_boxes_each_digit_with_its_name_and_confidence():
    (_, _), _, _, (base, boxes) = tab.segment_digits(two_digit_canvas(0, 7), 0.5, tab.ANY_DIGIT)
    assert [label.split(" (")[0] for _, label in boxes] == ["#1: 0", "#2: 7"]
    (x0, y0, x1, y1), (u0, _, _, _) = boxes[0][0], boxes[1][0]
    assert 0 <= x0 < x1 <= base.shape[1] and 0 <= y0 < y1 <= base.shape[0] and x1 <= u0  # the 0 lies left of the 7
    assert all(label.endswith("%)") for _, label in boxes)

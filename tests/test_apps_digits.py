"""Digits tab, inside the network: the learned filters, every block's maps, and the arithmetic of one pixel."""

import re

import gradio as gr
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from apps import digits as tab
from data.pen_digits import draw_digit
from models.digit_classifier import first_layer_maps, pixel_arithmetic


@pytest.fixture(scope="module")
def seven(tmp_path_factory) -> tuple[str, np.ndarray]:
    path = tmp_path_factory.mktemp("digits") / "seven.png"
    draw_digit(7).save(path)
    return str(path), tab.prepare_digit(tab.to_gray(tab.open_image(str(path))))


def test_the_first_layer_maps_are_what_the_network_computes_next_from(seven):
    """first_layer_maps is the network's own first layer: its second conv, norm, ReLU and pooling turn it into block 1."""
    net = tab.model()
    x = torch.from_numpy(seven[1])[None, None]
    first = first_layer_maps(net, x)
    with torch.inference_mode():
        _, blocks = net.forward_with_activations(x)
        assert torch.allclose(net.features[0][3:](first), blocks[0], atol=1e-6)


@pytest.mark.parametrize("where", [(0, 0, 0), (4, 13, 14), (31, 27, 27), (17, 0, 27), (9, 27, 3)])
def test_the_clicked_pixel_arithmetic_reproduces_the_feature_map(seven, where):
    net, digit = tab.model(), seven[1]
    channel, row, column = where
    maps = first_layer_maps(net, torch.from_numpy(digit)[None, None])[0]
    a = pixel_arithmetic(net, digit, channel, row, column)
    assert abs(a.value - float(maps[channel, row, column])) < 1e-5
    # By hand: the window is the standardised input, zero-padded; the sum is the convolution's own output there.
    padded = np.pad((digit - net.config.mean) / net.config.std, 1)
    assert np.allclose(a.window, padded[row : row + 3, column : column + 3], atol=1e-6)
    with torch.inference_mode():
        conv = F.conv2d(net.normalize(torch.from_numpy(digit))[None, None], net.first_layer()[0].weight, padding=1)
    assert a.total == pytest.approx(float(conv[0, channel, row, column]), abs=1e-5)
    assert a.total == pytest.approx(float(a.products.sum()), abs=1e-9)
    assert a.value == max(0.0, a.pre_activation)


def test_explain_pixel_prints_the_numbers_it_computed(seven):
    path, digit = seven
    text, window = tab.explain_pixel(path, 5, 12, 15)  # map 5, row 12, column 15, counted from 1
    a = pixel_arithmetic(tab.model(), digit, 4, 11, 14)
    assert "Map 5, row 12, column 15" in text
    assert f"**{a.total:+.4f}**" in text and f"**{a.pre_activation:+.4f}**" in text and f"**{a.value:.4f}**" in text
    shown = [float(v) for v in re.findall(r"[+-]\d\.\d{3}", text.split("\n\n")[1])]  # the table: window, weights, products
    assert len(shown) == 27
    grids = np.array(shown).reshape(3, 3, 3).transpose(1, 0, 2)  # (window | weights | products, row, column)
    assert np.allclose(grids, [a.window, a.weights, a.products], atol=5e-4)
    # The window picture outlines rows 11-13 and columns 14-16 (0-based 10..12, 13..15) of the 28x28 input in red.
    assert window.shape == (224, 224, 3)
    red = (window[..., 0] == 230) & (window[..., 1] == 30)
    ys, xs = np.nonzero(red)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (10 * 8, 13 * 8 - 1, 13 * 8, 16 * 8 - 1)


@pytest.mark.parametrize(
    "args, message",
    [((0, 14, 14), "Map"), ((33, 14, 14), "Map"), ((1, 29, 1), "Row"), ((1, 1, 0), "Column"), (("x", 1, 1), "Map"), ((1.5, 1, 1), "whole")],
)
def test_explain_pixel_refuses_pixels_that_do_not_exist(seven, args, message):
    with pytest.raises(gr.Error, match=message):
        tab.explain_pixel(seven[0], *args)


def test_a_click_maps_back_to_the_pixel_it_landed_on():
    step = (28 + tab.MAP_GAP) * tab.FIRST_LAYER_SCALE
    for channel, row, column in [(0, 0, 0), (9, 27, 5), (31, 27, 27), (8, 14, 0)]:
        grid_row, grid_col = divmod(channel, tab.MAP_COLUMNS)
        x = grid_col * step + column * tab.FIRST_LAYER_SCALE + 1
        y = grid_row * step + row * tab.FIRST_LAYER_SCALE + 1
        assert tab.map_at(x, y) == (channel, row, column)
    assert tab.map_at(28 * tab.FIRST_LAYER_SCALE + 1, 5) is None  # the gap after the first map
    assert tab.map_at(5, 4 * step + 5) is None  # below the last row of maps


def test_clicking_explains_the_pixel_or_says_what_to_do(seven):
    click = gr.SelectData(None, {"index": [2 * (28 + tab.MAP_GAP) * tab.FIRST_LAYER_SCALE + 40, 31], "value": None})
    text, window = tab.explain_click(seven[1], click)
    assert "Map 3, row 11, column 14" in text and window is not None
    assert "first" in tab.explain_click(None, click)[0]
    gap = gr.SelectData(None, {"index": [28 * tab.FIRST_LAYER_SCALE + 1, 5], "value": None})
    assert "between two maps" in tab.explain_click(seven[1], gap)[0]


def test_digit_layers_shows_the_filters_and_every_block(seven):
    filters, first, blocks = tab.digit_layers(seven[0])
    assert first.shape == (4 * 29 * 3 - 3, 8 * 29 * 3 - 3)
    assert [caption.split(":")[0] for _, caption in blocks] == ["Block 1", "Block 2", "Block 3"]
    assert ["32 maps of 14 x 14" in blocks[0][1], "64 maps of 7 x 7" in blocks[1][1], "128 maps of 3 x 3" in blocks[2][1]] == [True] * 3
    assert all(picture.max() > 0 for picture, _ in blocks)  # the digit lights up something at every depth
    # The filters share one colour scale: the largest weight in the layer is the deepest colour.
    weights = tab.model().first_layer()[0].weight.detach()[:, 0]
    channel, row, column = np.unravel_index(int(weights.abs().argmax()), weights.shape)
    gap = tab.FILTER_PX // 3
    r, c = divmod(int(channel), tab.MAP_COLUMNS)
    y = r * (3 * tab.FILTER_PX + gap) + int(row) * tab.FILTER_PX + 2
    x = c * (3 * tab.FILTER_PX + gap) + int(column) * tab.FILTER_PX + 2
    deepest = tab.signed_colours(np.sign(float(weights.flatten()[weights.abs().argmax()])))
    assert (filters[y, x] == deepest).all()


def test_signed_colours_are_white_at_zero_red_positive_blue_negative():
    colours = tab.signed_colours(np.array([0.0, 1.0, -1.0, 0.5]))
    assert (colours[0] == 255).all()
    assert colours[1, 0] > colours[1, 2] and colours[2, 2] > colours[2, 0]
    assert 255 > colours[3, 1] > colours[1, 1]


def test_the_page_views_clear_when_nothing_is_drawn():
    blank = np.zeros((400, 400, 4), np.uint8)
    assert tab.layers_of_sketch({"background": None, "layers": [], "composite": blank}) == (None, None, None, None)
    assert tab.layers_of_upload(None) == (None, None, None, None)

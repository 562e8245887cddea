"""The Digit GAN tab through its pure functions, with the shipped generator."""

import gradio as gr
import numpy as np
import pytest
import torch
from PIL import Image

from apps import digit_gan
from models import hub
from models.digit_classifier import DigitClassifier


def test_same_seed_same_digits_and_another_seed_differs():
    a = digit_gan.generate_digits("7", 3, 16)
    b = digit_gan.generate_digits(7, "3", 16.0)
    c = digit_gan.generate_digits("7", 4, 16)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.dtype == np.uint8 and a.shape == (3 * (28 + 2) - 6, 16 * 3 * (28 + 2) - 6)


def test_asked_for_digits_are_read_back_by_the_classifier():
    net = digit_gan.model()
    judge = hub.load(DigitClassifier, "digit-classifier")
    labels = torch.arange(10).repeat_interleave(20)
    with torch.inference_mode():
        images = net(net.noise(len(labels), 0), labels)
        accuracy = float((judge(images).argmax(-1) == labels).float().mean())
    assert accuracy >= 0.9


@pytest.mark.parametrize(
    "digit, seed, count, message",
    [
        ("any", 0, -1, "Number of digits"),
        ("any", 0, 257, "Number of digits"),
        ("12", 0, 8, "Digit"),
        ("seven", 0, 8, "Digit"),
        ("3", -5, 8, "Seed"),
        ("3", 0, float("nan"), "Number of digits"),
    ],
)
def test_invalid_requests_get_clear_messages(digit, seed, count, message):
    with pytest.raises(gr.Error, match=message):
        digit_gan.generate_digits(digit, seed, count)


def test_interpolation_strip_and_gif():
    strip, gif_path = digit_gan.interpolate_digits("3", 0, "8", 1, 6)
    assert strip.shape[1] > strip.shape[0] * 4  # a horizontal strip of 6
    with Image.open(gif_path) as gif:
        assert gif.format == "GIF" and gif.n_frames == 6 + 4  # there and back again
    with pytest.raises(gr.Error, match="Pick a digit"):
        digit_gan.interpolate_digits("any", 0, "8", 1, 6)


def test_history_starts_as_noise_and_ends_as_digits():
    frames, steps, _ = digit_gan.history()
    assert len(frames) >= 25 and steps[0] == 0 and steps == sorted(steps)
    judge = hub.load(DigitClassifier, "digit-classifier")
    labels = torch.arange(10).repeat_interleave(10)  # rows of the fixed grid
    with torch.inference_mode():
        first = (judge(torch.from_numpy(frames[0]).float().div(255).unsqueeze(1)).argmax(-1) == labels).float().mean()
        last = (judge(torch.from_numpy(frames[-1]).float().div(255).unsqueeze(1)).argmax(-1) == labels).float().mean()
    assert first <= 0.3 and last >= 0.9
    image, caption = digit_gan.history_frame(0)
    assert image.ndim == 2 and "Snapshot 1 of" in caption
    with Image.open(digit_gan.history_gif()) as gif:
        assert gif.n_frames >= len(frames)

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


def test_the_critic_ships_loads_strictly_and_refuses_a_broken_file(tmp_path, monkeypatch):
    from safetensors.torch import load_file, save_file

    from models.dcgan import DISCRIMINATOR_FILE, load_discriminator

    path = hub.checkpoint_file("digit-gan", DISCRIMINATOR_FILE)
    assert path is not None
    critic = load_discriminator(str(path))
    assert float(critic.real_variety) > 0
    weights = load_file(str(path))
    weights.pop(next(iter(weights)))  # one tensor missing: a strict load must refuse it
    save_file(weights, str(tmp_path / "short.safetensors"))
    with pytest.raises(RuntimeError):
        load_discriminator(str(tmp_path / "short.safetensors"))
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / DISCRIMINATOR_FILE).write_bytes(b"not safetensors")
    monkeypatch.setattr(hub, "CHECKPOINTS", tmp_path)
    monkeypatch.setattr(hub, "_cache", {})
    with pytest.raises(hub.CheckpointError, match="could not be loaded"):
        hub.load_companion(load_discriminator, "folder", DISCRIMINATOR_FILE)


def test_the_critic_prefers_real_digits_to_noise_and_the_right_label_to_a_wrong_one():
    images, labels, p_real = digit_gan.real_test_digits()
    assert p_real.shape == (1000,) and ((0 <= p_real) & (p_real <= 1)).all()
    noise = torch.rand(100, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    assert digit_gan.verdicts(noise, labels[:100]).mean() < p_real.mean() - 0.3
    wrong = digit_gan.verdicts(images, (labels + 5) % 10)
    # Mostly, a real 3 called an 8 looks less like "a real 8" than like "a real 3" (a near-balanced critic, not a classifier).
    assert (p_real > wrong).mean() >= 0.6 and p_real.mean() > wrong.mean()
    # Each picture is judged alone: its verdict does not change with the company it is judged in.
    assert digit_gan.verdicts(images[:1], labels[:1])[0] == pytest.approx(p_real[0], abs=1e-5)


def test_critic_on_the_grid_writes_a_verdict_under_every_digit():
    fake, real, note = digit_gan.critic_on_grid("3", 0, 20)
    side = 28 * 3
    assert fake.shape == real.shape == (2 * (side + 16 + 4) + 4, 16 * (side + 4) + 4, 3)
    assert "generated, mean" in note and "20 real test 3s" in note


def test_judge_drawing_ranks_a_real_digit_among_real_ones_and_refuses_what_it_cannot_judge(tmp_path):
    images, labels, p_real = digit_gan.real_test_digits()
    index = int(torch.nonzero(labels == 7)[0])
    path = tmp_path / "seven.png"
    Image.fromarray((255 - images[index, 0].numpy() * 255).astype(np.uint8)).resize((140, 140)).save(path)  # dark ink on white
    verdict, seen, sentence = digit_gan.judge_drawing(str(path), "7")
    assert set(verdict) == {"real", "generated"} and verdict["real"] + verdict["generated"] == pytest.approx(1)
    assert seen.shape == (28 * 6, 28 * 6) and "real test 7s" in sentence
    below = digit_gan.share_of_real_below(verdict["real"], 7)
    assert f"{below:.0%}" in sentence and 0 <= below <= 1
    blank = tmp_path / "blank.png"
    Image.new("L", (100, 100), 255).save(blank)
    with pytest.raises(gr.Error, match="No digit found"):
        digit_gan.judge_drawing(str(blank), 7)
    with pytest.raises(gr.Error, match="which digit"):
        digit_gan.judge_drawing(str(path), "any")


def test_the_history_carries_the_critics_verdict_at_every_snapshot():
    frames, steps, epochs = digit_gan.history()
    verdicts = digit_gan.history_verdicts()
    assert len(verdicts["real"]) == len(verdicts["generated"]) == len(frames)
    # Early on the critic quickly learns to tell noise from digits; by the end the generator has caught up.
    assert max(r - g for r, g in zip(verdicts["real"][:15], verdicts["generated"][:15], strict=True)) > 0.4
    assert "The critic at that moment" in digit_gan.history_frame(len(frames) - 1)[1]
    assert len(digit_gan.critic_curves()) == 2 * len(frames)

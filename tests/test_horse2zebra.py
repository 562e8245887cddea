"""Horse to zebra: the procedural domains, the CycleGAN parts, a training dry run, the tab and its API."""

import json
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file
from PIL import Image
from scipy import ndimage

from data import horses
from models.cyclegan import CycleGANConfig, CycleGenerators, PatchDiscriminator, ResnetGenerator, in_top5, judge_pictures
from tests.conftest import REPO_ROOT, needs_checkpoint
from tests.test_training import run_dry
from training.train_cyclegan import ImagePool

CHECKPOINT = REPO_ROOT / "checkpoints" / "horse2zebra"
MODULE = "training.train_cyclegan"


def luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114]) / 255


def test_same_seed_same_picture_and_the_splits_do_not_share_animals():
    a, b = horses.animal("horse", 5, 96), horses.animal("horse", 5, 96)
    assert a.shape == (96, 96, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
    train = horses.animals("horse", "train", 3, 64)
    test = horses.animals("horse", "test", 3, 64)
    zebras = horses.animals("zebra", "train", 3, 64)
    assert not any(np.array_equal(x, y) for x in train for y in [*test, *zebras])


def test_domains_differ_in_coat_not_in_shape():
    # The same seed gives the same outline, pose and field in both domains: only the coat comes from another stream.
    for seed in range(6):
        horse, horse_mask = horses.animal_and_mask("horse", seed, 128)
        zebra, zebra_mask = horses.animal_and_mask("zebra", seed, 128)
        np.testing.assert_array_equal(horse_mask, zebra_mask)
        body = horse_mask > 0.95
        outside = ~ndimage.binary_dilation(horse_mask > 0, iterations=3)  # clear of the outline's blur
        np.testing.assert_array_equal(horse[outside], zebra[outside])
        # Stripes: zebra coats are half near-black, half near-white; horse coats are one colour, shaded.
        zebra_lum, horse_lum = luminance(zebra[body]), luminance(horse[body])
        assert ((zebra_lum < 0.25).mean() > 0.2) and ((zebra_lum > 0.5).mean() > 0.2)
        assert np.percentile(horse_lum, 90) - np.percentile(horse_lum, 10) < np.percentile(zebra_lum, 90) - np.percentile(zebra_lum, 10)
    # Across the training split (different seeds per domain), the shapes have the same distribution.
    areas = {
        d: [
            horses.animal_and_mask(d, horses.SPLIT_SEEDS["train"] + (d == "zebra") * horses.ZEBRA_SEED_OFFSET + i, 64)[1].mean()
            for i in range(40)
        ]
        for d in horses.DOMAINS
    }
    assert abs(np.mean(areas["horse"]) - np.mean(areas["zebra"])) < 0.2 * np.mean(areas["horse"])


def test_the_judge_sees_zebras_in_zebras_and_not_in_horses():
    from models import hub
    from models.efficientnet_lite import EfficientNetLite

    judge = hub.load(EfficientNetLite, "imagenet-classifier")
    zebra_probs, _ = judge_pictures(judge, horses.animals("zebra", "val", 10, 128))
    horse_probs, _ = judge_pictures(judge, horses.animals("horse", "val", 10, 128))
    assert in_top5(zebra_probs, 340) >= 0.9 and in_top5(horse_probs, 340) <= 0.1


def test_generator_keeps_the_size_and_range_and_has_no_transposed_convolutions():
    g = ResnetGenerator(base_channels=8, residual_blocks=2).eval()
    for h, w in [(64, 64), (100, 132)]:
        out = g(torch.rand(2, 3, h, w) * 2 - 1)
        assert out.shape == (2, 3, h, w) and out.min() >= -1 and out.max() <= 1
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in g.modules())
    assert PatchDiscriminator(8)(torch.rand(1, 3, 128, 128)).shape == (1, 1, 14, 14)
    both = CycleGenerators(CycleGANConfig(base_channels=8, residual_blocks=1)).requires_grad_(False)
    x = torch.rand(1, 3, 32, 32)
    assert both(x, "zebra_to_horse").shape == x.shape and 0 <= float(both(x).min())
    with pytest.raises(ValueError, match="direction"):
        both(x, "cat_to_dog")


def test_image_pool_returns_fresh_images_until_full_then_mixes_in_old_ones():
    import random

    pool = ImagePool(3, random.Random(0))
    images = [torch.full((1,), float(i)) for i in range(50)]
    first = [float(pool(x)) for x in images[:3]]
    assert first == [0.0, 1.0, 2.0]
    later = [float(pool(x)) for x in images[3:]]
    assert any(v != i + 3 for i, v in enumerate(later)) and any(v == i + 3 for i, v in enumerate(later))
    assert all(v in range(50) for v in later)


def test_dry_run_saves_both_generators_a_judged_card_and_the_history(tmp_path):
    out = tmp_path / "h2z"
    run_dry(MODULE, out)
    loaded = CycleGenerators.from_pretrained(out, strict=True)
    assert {k.split(".")[0] for k in loaded.state_dict()} == {"horse_to_zebra", "zebra_to_horse"}  # no discriminators
    metrics = json.loads((out / "metrics.json").read_text())
    for key in [
        "zebra_rate_real",
        "horse_rate_real",
        "zebra_rate_before",
        "zebra_rate_after",
        "fid_effnet",
        "fid_effnet_baseline",
        "cycle_l1",
    ]:
        assert key in metrics
    card = (out / "README.md").read_text()
    assert "Procedural pictures, not photos" in card and "triptychs.png" in card and (out / "triptychs.png").is_file()
    assert (out / "training_frames.safetensors").is_file() and (out / "judge_reference.safetensors").is_file()
    assert not (out / "in-progress").exists()
    wall_time = card.split("Wall time: ")[1].split(" s")[0]
    run_dry(MODULE, out, "--evaluate-only")  # re-judging keeps the training run's wall time
    assert (out / "README.md").read_text().split("Wall time: ")[1].split(" s")[0] == wall_time


def test_trains_on_the_real_horse2zebra_folder_layout(tmp_path):
    data = tmp_path / "horse2zebra"
    for part, domain in [("trainA", "horse"), ("trainB", "zebra"), ("testA", "horse"), ("testB", "zebra")]:
        (data / part).mkdir(parents=True)
        for i, picture in enumerate(horses.animals(domain, "val", 8, 80, start=10 * len(part))):
            Image.fromarray(picture).save(data / part / f"{i}.jpg")
    out = tmp_path / "real"
    run_dry(MODULE, out, "--dataset", str(data), "--image-size", "64")
    assert json.loads((out / "config.json").read_text())["training_data"] == str(data)
    assert "(domain A = horses, domain B = zebras)" in (out / "README.md").read_text()


# The tab, with the shipped checkpoint.


@needs_checkpoint("horse2zebra")
def test_held_out_horses_become_zebras_to_the_judge_and_come_back():
    from apps import horse2zebra as tab

    hits = 0
    for index in range(4):
        picture = horses.animal("horse", horses.SPLIT_SEEDS["test"] + index, 256)
        (shown, result), round_trip, error_map, before, after, summary = tab.horse_to_zebra(picture, "horse → zebra", 256)
        assert shown.shape == result.shape == round_trip.shape == error_map.shape == (256, 256, 3)
        assert len(before) == len(after) == 5 and "The judge" in summary and "Round trip" in summary
        assert "gentle note" not in summary  # a picture like its training pictures
        hits += "zebra" in after
        assert np.abs(round_trip.astype(float) - shown.astype(float)).mean() / 255 < 0.15
    assert hits >= 3


@needs_checkpoint("horse2zebra")
def test_a_cat_gets_the_gentle_note():
    from apps import horse2zebra as tab

    cat = np.asarray(Image.open(REPO_ROOT / "examples" / "photos" / "chelsea.jpg").convert("RGB"))
    *_, summary = tab.horse_to_zebra(cat, "horse → zebra", 256)
    assert "gentle note" in summary and "neither a horse nor a zebra" in summary


@needs_checkpoint("horse2zebra")
@pytest.mark.parametrize(
    "value, direction, size, message",
    [
        (None, "horse → zebra", 256, "Nothing was uploaded"),
        ("corrupt", "horse → zebra", 256, "not an image we can read"),
        ("ok", "cat → dog", 256, "Direction"),
        ("ok", "horse → zebra", 4096, "Working size"),
        ("ok", "horse → zebra", "big", "Working size"),
    ],
)
def test_bad_input_gets_a_clear_message(tmp_path, value, direction, size, message):
    from apps import horse2zebra as tab

    if value == "corrupt":
        value = tmp_path / "corrupt.png"
        value.write_bytes(b"\x89PNG\r\n\x1a\n and then nothing")
        value = str(value)
    elif value == "ok":
        value = horses.animal("horse", 1, 64)
    with pytest.raises(gr.Error, match=message):
        tab.horse_to_zebra(value, direction, size)


@needs_checkpoint("horse2zebra")
def test_odd_sizes_and_modes_work(tmp_path):
    from apps import horse2zebra as tab

    grey = Image.fromarray(horses.animal("zebra", 3, 150)).convert("LA").resize((150, 97))
    grey.save(tmp_path / "grey.png")
    (shown, result), *_ = tab.horse_to_zebra(str(tmp_path / "grey.png"), "zebra → horse", 130)
    assert shown.shape == result.shape and shown.shape[1] == 128 and shown.shape[0] % 4 == 0  # 130 px, to the nearest multiple of 4


@needs_checkpoint("horse2zebra")
def test_round_trip_through_gradio_client(running_app, tmp_path):
    path = tmp_path / "horse.png"
    Image.fromarray(horses.animal("horse", horses.SPLIT_SEEDS["test"] + 7, 256)).save(path)
    client = Client(running_app.url, verbose=False)
    slider, round_trip, error_map, before, after, summary = client.predict(
        handle_file(str(path)), "horse → zebra", 256, api_name="/horse_to_zebra"
    )
    assert len(slider) == 2 and all(Path(p).is_file() for p in slider)
    assert Image.open(round_trip).size == (256, 256) and Path(error_map).is_file()
    assert len(before["confidences"]) == 5 and "The judge" in summary
    with pytest.raises(Exception, match="Nothing was uploaded"):
        client.predict(None, "horse → zebra", 256, api_name="/horse_to_zebra")


def test_shipped_assets_are_scikit_images_own_arrays():
    """The app paints animals from data/assets/ (scikit-image is not in requirements.txt); those PNGs must hold exactly
    what skimage.data returns, so the app and the training scripts draw the same animals."""
    import skimage.data

    from data.horses import asset

    for name in ("horse", "grass", "gravel"):
        expected = getattr(skimage.data, name)()
        shipped = asset(name)
        assert shipped.dtype == expected.dtype and shipped.shape == expected.shape, name
        assert np.array_equal(shipped, expected), name

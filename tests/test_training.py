import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from models.digit_classifier import DigitClassifier
from training import common
from training.train_digit_classifier import TrainConfig, augment

REPO_ROOT = Path(__file__).resolve().parent.parent
CHECKPOINTS = REPO_ROOT / "checkpoints"


def test_dry_run_trains_saves_and_loads_in_under_a_minute(tmp_path):
    out = tmp_path / "ckpt"
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "training.train_digit_classifier", "--dry-run", "--out-dir", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stderr[-3000:]
    assert elapsed < 60, f"dry run took {elapsed:.0f} s"
    assert {"config.json", "model.safetensors", "README.md", "metrics.json", "training_log.json"} <= {p.name for p in out.iterdir()}
    model = DigitClassifier.from_pretrained(out, strict=True)
    assert model(torch.rand(1, 1, 28, 28)).shape == (1, 10)
    card = (out / "README.md").read_text()
    for section in (
        "## Metrics",
        "## Data",
        "**Split.**",
        "## Training",
        "Wall time",
        "Hardware",
        "## Limits",
        "## Licence",
        "license: mit",
    ):
        assert section in card, section
    assert "python -m training.train_digit_classifier --dry-run" in card
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) >= {"test_accuracy", "font_digit_accuracy"}
    assert len(json.loads((out / "training_log.json").read_text())) == 2


def test_two_process_dry_run_under_accelerate_launch(tmp_path):
    """The same script, data-parallel over 2 CPU processes (gloo): `accelerate launch --multi_gpu` starts them
    with torchrun, and ACCELERATE_USE_CPU makes accelerate join them on the CPU (on GPUs, drop it)."""
    out = tmp_path / "ddp"
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
    ]
    command += [
        "--main_process_port",
        "0",
        "--dynamo_backend",
        "no",
        "-m",
        "training.train_digit_classifier",
        "--dry-run",
        "--out-dir",
        str(out),
    ]
    env = {**os.environ, "ACCELERATE_USE_CPU": "1"}
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 processes" in (out / "README.md").read_text()  # the card records that both processes trained
    assert result.stdout.count("saved ") == 1  # only the main process writes the checkpoint
    DigitClassifier.from_pretrained(out, strict=True)


def test_cli_flags_come_from_the_config_dataclass():
    cfg = common.parse_config(TrainConfig, ["--epochs", "3", "--lr", "0.01", "--channels", "8", "16", "--dry-run", "--push-to-hub", "me/x"])
    assert cfg.epochs == 3 and cfg.lr == 0.01 and cfg.channels == [8, 16] and cfg.dry_run is True and cfg.push_to_hub == "me/x"
    assert common.parse_config(TrainConfig, []).dry_run is False
    assert common.parse_config(TrainConfig, ["--no-dry-run"]).dry_run is False


def test_list_defaults_are_not_shared_between_configs():
    @dataclass
    class Cfg:
        sizes: list[int] = common.opt([1, 2], "sizes")

    a, b = Cfg(), Cfg()
    a.sizes.append(3)
    assert b.sizes == [1, 2]


def test_push_uploads_exactly_the_checkpoint_folder(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(common.HfApi, "create_repo", lambda self, repo_id, **kw: calls.append(("create", repo_id, kw)))
    monkeypatch.setattr(common.HfApi, "upload_folder", lambda self, **kw: calls.append(("upload", kw)))
    url = common.push_checkpoint(tmp_path, "someone/digit-classifier")
    assert url == "https://huggingface.co/someone/digit-classifier"
    assert calls[0][:2] == ("create", "someone/digit-classifier")
    assert calls[1][1]["folder_path"] == str(tmp_path) and calls[1][1]["repo_id"] == "someone/digit-classifier"


def test_augmentation_keeps_shape_and_range_and_changes_pixels():
    torch.manual_seed(0)
    x = torch.zeros(8, 1, 28, 28)
    x[:, :, 6:22, 12:16] = 1.0
    y = augment(x, TrainConfig())
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    assert (y - x).abs().mean() > 0.01
    assert y.sum() > 0.3 * x.sum()  # the digit is bent, not lost


def test_import_script_checks_against_the_reference(tmp_path):
    out = tmp_path / "imagenet"
    result = subprocess.run(
        [sys.executable, "-m", "training.import_imagenet_classifier", "--dry-run", "--out-dir", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "espresso" in result.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["reference_max_abs_logit_diff"] <= 1e-4 and metrics["reference_top1_agreement"] == 1.0


def test_fine_tune_on_a_tiny_generated_folder(tmp_path):
    from PIL import Image, ImageDraw

    from models.efficientnet_lite import EfficientNetLite

    rng = np.random.default_rng(0)
    for name in ("circles", "squares", "stripes"):
        (tmp_path / "data" / name).mkdir(parents=True)
        for k in range(5):
            im = Image.new("RGB", (96, 96), tuple(int(v) for v in rng.integers(180, 255, 3)))
            draw = ImageDraw.Draw(im)
            x, y = (int(v) for v in rng.integers(5, 40, 2))
            if name == "circles":
                draw.ellipse((x, y, x + 45, y + 45), fill=(200, 30, 30))
            elif name == "squares":
                draw.rectangle((x, y, x + 45, y + 45), fill=(30, 50, 200))
            else:
                for i in range(0, 96, 16):
                    draw.rectangle((i, 0, i + 7, 96), fill=(30, 160, 60))
            im.save(tmp_path / "data" / name / f"{k}.png")
    out = tmp_path / "ckpt"
    cmd = [
        sys.executable,
        "-m",
        "training.train_image_classifier",
        "--data",
        str(tmp_path / "data"),
        "--dry-run",
        "--unfreeze-blocks",
        "1",
        "--out-dir",
        str(out),
    ]
    result = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    model = EfficientNetLite.from_pretrained(out, strict=True)
    assert model.config.labels == ["circles", "squares", "stripes"]
    assert "held_out_accuracy" in json.loads((out / "metrics.json").read_text())


def test_gan_dry_run_saves_generator_history_and_metrics(tmp_path):
    from safetensors import safe_open

    from models.dcgan import DigitGenerator

    out = tmp_path / "gan"
    result = subprocess.run(
        [sys.executable, "-m", "training.train_digit_gan", "--dry-run", "--frames", "5", "--out-dir", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    generator = DigitGenerator.from_pretrained(out, strict=True)
    images = generator(generator.noise(4, 0), torch.tensor([0, 1, 2, 3]))
    assert images.shape == (4, 1, 28, 28) and 0 <= images.min() and images.max() <= 1
    with safe_open(str(out / "training_frames.safetensors"), framework="pt") as f:
        assert f.get_tensor("frames").shape[1:] == (100, 28, 28)
        meta = f.metadata()
        assert meta["steps"].startswith("0,")
        verdicts = [[float(v) for v in meta[key].split(",")] for key in ("p_real_real", "p_real_generated")]
        assert all(len(v) == len(meta["steps"].split(",")) and all(0 <= p <= 1 for p in v) for v in verdicts)
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {
        "class_accuracy",
        "fid_digits",
        "fid_real_baseline",
        "diversity",
        "critic_p_real_on_real",
        "critic_p_real_on_generated",
    }
    # The critic ships beside the generator and loads strictly; it has learned from its two epochs to prefer real digits.
    from models.dcgan import DISCRIMINATOR_FILE, load_discriminator

    critic = load_discriminator(str(out / DISCRIMINATOR_FILE))
    assert float(critic.real_variety) > 0
    assert metrics["critic_p_real_on_real"] > metrics["critic_p_real_on_generated"]


def test_frechet_distance_is_zero_for_identical_sets_and_grows_with_shift():
    from models.digit_judge import frechet_distance

    rng = np.random.default_rng(0)
    a = rng.normal(size=(2000, 8))
    assert abs(frechet_distance(a, a)) < 1e-6
    assert frechet_distance(a, a + 1.0) == pytest.approx(8.0, rel=0.05)  # mean shift of 1 in 8 dims


def test_diffaugment_shift_moves_pictures_without_changing_shape():
    from training.train_digit_gan import frame_steps, shift

    x = torch.zeros(4, 1, 28, 28)
    x[:, :, 10:18, 10:18] = 1.0
    y = shift(x, 2, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.sum() == x.sum()  # an 8x8 square shifted by <= 2 px stays inside
    assert frame_steps(1000, 30)[0] == 0 and frame_steps(1000, 30)[-1] == 1000 and len(frame_steps(1000, 30)) <= 30


def run_dry(module: str, out: Path, *flags: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", module, "--dry-run", "--out-dir", str(out), *flags],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_robust_dry_run_saves_a_loadable_model_with_attack_metrics(tmp_path):
    out = tmp_path / "robust"
    run_dry("training.train_digit_classifier_robust", out)
    model = DigitClassifier.from_pretrained(out, strict=True)
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"test_accuracy", "test_pgd5_accuracy_eps0.3", "test_fgsm_accuracy_eps0.3"} <= set(metrics)
    # The field's ladder of budgets, under PGD and under the worst of APGD-CE and APGD-T.
    assert {f"test_{attack}_accuracy_eps{eps}" for attack in ("pgd5", "apgd") for eps in (0.1, 0.2, 0.3)} <= set(metrics)
    log = json.loads((out / "training_log.json").read_text())
    assert {"eps", "val_pgd_accuracy"} <= set(log[0])


def test_rescoring_keeps_the_weights_and_the_run_and_adds_the_ladder_to_the_card(tmp_path):
    """training.rescore_digit_classifier_robust on the shipped model: same weights, the card still names the command
    and the epoch of the run that made them, and the metrics gain the ladder."""
    out = tmp_path / "rescored"
    run_dry("training.rescore_digit_classifier_robust", out)
    shipped = CHECKPOINTS / "digit-classifier-robust"
    assert (out / "model.safetensors").read_bytes() == (shipped / "model.safetensors").read_bytes()
    card, old_card = (out / "README.md").read_text(), (shipped / "README.md").read_text()
    assert "python -m training.train_digit_classifier_robust --loss trades" in card and "(epoch 25 of 30)" in old_card
    assert "(epoch 25 of 30)" in card and (out / "attack_metrics.json").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert {f"test_apgd_accuracy_eps{eps}" for eps in (0.1, 0.2, 0.3)} <= set(metrics)


@pytest.fixture(scope="module")
def segmenter_dry_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("segmenter")
    run_dry("training.train_digit_segmenter", out)
    return out


def test_segmenter_dry_run_compares_both_losses_in_the_card(segmenter_dry_run):
    from models.unet import UNet

    out = segmenter_dry_run
    model = UNet.from_pretrained(out, strict=True)
    assert model(torch.rand(1, 1, 64, 64)).shape == (1, 11, 64, 64)
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"miou", "dice", "font_scene_miou", "ce_miou"} <= set(metrics)
    card = (out / "README.md").read_text()
    assert "Loss comparison" in card and "| ce |" in card and "| ce+dice |" in card


def test_a_continued_segmenter_run_keeps_the_earlier_runs_story(segmenter_dry_run, tmp_path):
    first, second = segmenter_dry_run, tmp_path / "second"
    run_dry("training.train_digit_segmenter", second, "--no-compare-losses", "--init-from", str(first), "--digit-weight", "0.5")
    earlier = json.loads((first / "training_log.json").read_text())
    log = json.loads((second / "training_log.json").read_text())
    assert log[: len(earlier)] == [entry | {"run": "earlier"} for entry in earlier]
    assert [e["step"] for e in log[len(earlier) :]] == [earlier[-1]["step"] + s for s in (3, 6)]  # the new steps count on
    assert all("val_digit_f1" in e for e in log[len(earlier) :])
    summary = (second / "README.md").read_text()
    assert "after 4 steps in which the encoder learned" in summary  # the first run's pretraining, from its own card
    assert "Then it was trained further (`--init-from`)" in summary and "per-digit naming loss (weight 0.5)" in summary
    assert "val_digit_f1" in json.loads((second / "metrics.json").read_text())


def test_encoder_pretraining_names_the_digit_it_shows():
    from training.train_digit_segmenter import naming_batch

    digits = torch.zeros(10, 28, 28)
    digits[:, 8:20, 12:16] = 1.0  # a bar each; only the labels tell them apart
    images, masks, names = naming_batch(digits, torch.arange(10), 64, torch.Generator().manual_seed(0))
    assert images.shape == (64, 1, 64, 64)
    for mask, name in zip(masks, names, strict=True):
        assert set(mask.unique().tolist()) == {0, int(name) + 1}  # background and the digit it is named after


def test_segmenter_trains_on_a_mask_folder(tmp_path):
    from models.unet import UNet

    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        from PIL import Image

        mask = np.zeros((64, 64), np.uint8)
        top, left = rng.integers(0, 32, 2)
        mask[top : top + 24, left : left + 24] = 1
        Image.fromarray((255 - mask * 200).astype(np.uint8)).save(data / "images" / f"{i}.png")
        Image.fromarray(mask).save(data / "masks" / f"{i}.png")
    out = tmp_path / "folder-model"
    run_dry("training.train_digit_segmenter", out, "--dataset", str(data), "--image-size", "64", "--crop", "48", "--no-compare-losses")
    model = UNet.from_pretrained(out, strict=True)
    assert model.config.class_names == ["class 0", "class 1"]


def test_fabric_autoencoder_dry_run_calibrates_and_scores(tmp_path):
    from models.autoencoder import FabricAutoencoder
    from training.train_fabric_autoencoder import TUNE_SIGMAS

    out = tmp_path / "fabric-ae"
    run_dry("training.train_fabric_autoencoder", out, "--repair-p", "0.5")  # every step's crops may carry synthetic flaws
    model = FabricAutoencoder.from_pretrained(out, strict=True)
    assert model.config.products == ["linen (plain weave)", "denim (twill)", "rose satin"]
    assert all(s > 0 for s in model.config.error_std) and len(model.config.image_threshold) == 3
    assert model.config.colour_weight > 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"image_auroc", "pixel_auroc", "false_positive_rate", "image_auroc_hole", "image_auroc_fold", "image_auroc_satin"} <= set(
        metrics
    )
    # The map's blur and colour weight came from the tuning grid, and the card says what they scored there.
    assert model.config.smooth_sigma in TUNE_SIGMAS and {"tuning_pixel_auroc", "tuning_image_auroc"} <= set(metrics)
    # Recalibration has its own entry point: same weights, the same training curve, a fresh calibration, and a card
    # that still describes the run that made the weights.
    again = tmp_path / "fabric-ae-recalibrated"
    run_dry("training.recalibrate_fabric_autoencoder", again, "--init-from", str(out))
    recalibrated = FabricAutoencoder.from_pretrained(again, strict=True)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), recalibrated.state_dict().values(), strict=True))
    assert (again / "training_log.json").read_text() == (out / "training_log.json").read_text()
    assert recalibrated.config.colour_weight == pytest.approx(model.config.colour_weight)
    assert recalibrated.config.image_threshold == pytest.approx(model.config.image_threshold)
    first, second = ((folder / "README.md").read_text() for folder in (out, again))
    for fact in ("Per product: 4 flawless training swatches", "of 6).", "50% of its training crops carried"):
        assert fact in first and fact in second, fact
    assert "python -m training.recalibrate_fabric_autoencoder" in second
    # Training no longer doubles as recalibration.
    refused = subprocess.run(
        [sys.executable, "-m", "training.train_fabric_autoencoder", "--steps", "0"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode != 0 and "recalibrate_fabric_autoencoder" in refused.stderr


def test_fabric_features_dry_run_builds_a_calibrated_bank(tmp_path):
    from models.patch_memory import PatchMemory

    out = tmp_path / "fabric-features"
    run_dry("training.train_fabric_features", out)
    memory = PatchMemory.from_pretrained(out, strict=True)
    assert memory.bank.shape == (3, 256, 152) and (memory.bank.abs().sum((1, 2)) > 0).all() and len(memory.config.error_std) == 3
    assert "image_auroc" in json.loads((out / "metrics.json").read_text())

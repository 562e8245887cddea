"""Quality and speed of every shipped model and endpoint, as one markdown table.

    python -m benchmarks.run                              # everything
    python -m benchmarks.run --only digit-classifier      # one entry
    python -m benchmarks.run --json out.json              # also write {"name": {"metric": value}}

Quality metrics come from held-out data only. `latency_ms_*` times the model alone at batch 1
(after warm-up, single request); `api_ms_p50` times a whole request through gradio_client
against the app launched on a local port, preprocessing and network included.
"""

import argparse
import json
import platform
import socket
import statistics
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import torch

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def percentile_ms(fn: Callable[[], object], repeats: int = 50, warmup: int = 5) -> tuple[float, float]:
    """(p50, p95) wall time of fn() in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
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


def bench_digit_classifier(app: LaunchedApp) -> dict[str, float]:
    from gradio_client import handle_file

    from data.mnist import load_splits
    from models import hub
    from models.digit_classifier import DigitClassifier
    from training.train_digit_classifier import evaluate, font_digit_accuracy, to_tensor

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
    api = api_p50_ms(app, "/classify_digit", [handle_file(str(EXAMPLES / "digits" / "mnist_test_7.png"))])
    return {
        "test_accuracy": round(test_acc, 4),
        "font_digit_accuracy": round(font_acc, 4),
        "font_digits": n_font,
        "latency_ms_p50": round(p50, 3),
        "latency_ms_p95": round(p95, 3),
        "api_ms_p50": round(api, 1),
    }


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

    # Live training speed: one frame = 10 gradient steps + boundary, curves and weight pictures,
    # encoded to PNG the way the app's image outputs send them.
    import gradio as gr

    run = neurons.new_run(
        neurons.PlaygroundSettings(layout="curved", n_samples=500, hidden_layers=4, neurons=32, activation="relu", epochs=5000)
    )
    encoder = gr.Image(format="png")

    def one_frame():
        neurons.train_epochs(run, neurons.MLP_EPOCHS_PER_FRAME)
        for picture in neurons.frame(run)[:3]:
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
    start = time.perf_counter()
    head = classify.train_head(["coffee", "cat", "rocket"], images, np.asarray(targets))
    teach_s = time.perf_counter() - start

    api = api_p50_ms(app, "/classify_image", [handle_file(str(EXAMPLES / "photos" / "coffee.jpg"))], repeats=10)
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
    }


def bench_digit_gan(app: LaunchedApp) -> dict[str, float]:
    from models import hub
    from models.dcgan import DigitGenerator
    from models.digit_classifier import DigitClassifier
    from training.train_digit_gan import evaluate_generator

    generator = hub.load(DigitGenerator, "digit-gan")
    judge = hub.load(DigitClassifier, "digit-classifier")
    quality = evaluate_generator(generator.cpu(), judge.cpu(), per_class=1000, seed=0)
    device = next(generator.parameters()).device
    z, labels = generator.noise(64, 0).to(device), torch.arange(64, device=device) % 10

    def grid():
        with torch.inference_mode():
            generator(z, labels)

    p50, p95 = percentile_ms(grid, repeats=50, warmup=5)
    api = api_p50_ms(app, "/generate_digits", ["any", 0, 64], repeats=10)
    return {
        **{k: round(v, 4) for k, v in quality.items()},
        "latency_ms_p50": round(p50, 2),
        "latency_ms_p95": round(p95, 2),
        "api_ms_p50": round(api, 1),
    }


BENCHMARKS: dict[str, Callable[[LaunchedApp], dict[str, float]]] = {
    "playground": bench_playground,
    "digit-classifier": bench_digit_classifier,
    "imagenet-classifier": bench_imagenet_classifier,
    "digit-gan": bench_digit_gan,
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
    torch.set_num_threads(max(1, torch.get_num_threads()))
    results = {}
    for name in args.only or BENCHMARKS:
        # A fresh app per entry, launched only when its API timing starts: a running server's threads
        # would otherwise slow the model-only timings that come first.
        app = LaunchedApp()
        try:
            results[name] = BENCHMARKS[name](app)
        finally:
            app.close()
    device = "cuda: " + torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)"
    print(f"Measured {date.today().isoformat()} on {platform.machine()} {device}, torch {torch.__version__}\n")
    print(markdown_table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()

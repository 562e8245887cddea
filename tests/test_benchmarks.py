"""The benchmark scripts themselves (their numbers are checked by the checkpoint tests and the README)."""

import os

import pytest
import torch

from benchmarks import gpu, run
from tests.conftest import REPO_ROOT, needs_checkpoint


def test_gpu_table_refuses_to_run_without_a_gpu(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same on a machine that has one
    monkeypatch.delenv("MODEL_SHOW_DEVICE", raising=False)
    assert gpu.main(["--only", "digit-classifier"]) == 2
    assert "No CUDA GPU here" in capsys.readouterr().err
    assert "MODEL_SHOW_DEVICE" not in os.environ  # a refused run must not send later model loads to a missing GPU


def test_latency_is_timed_per_call_and_reported_as_p50_and_p95():
    calls = []
    p50, p95 = run.percentile_ms(lambda: calls.append(1), repeats=20, warmup=3)
    assert len(calls) == 23 and 0 <= p50 <= p95 < 50


def test_markdown_table_lists_every_metric():
    table = run.markdown_table({"digit-gan": {"fid_digits": 0.59, "latency_ms_p50": 13.4}})
    assert table.splitlines()[2:] == ["| digit-gan | `fid_digits` | 0.59 |", "| digit-gan | `latency_ms_p50` | 13.4 |"]


def test_every_bench_function_is_an_entry_in_the_order_written():
    names = [name.removeprefix("bench_").replace("_", "-") for name in vars(run) if name.startswith("bench_")]
    assert list(run.BENCHMARKS) == names and {"playground", "digit-classifier", "attack", "fabric", "text"} <= set(names)


def test_an_entry_whose_checkpoint_is_missing_is_skipped_with_a_note(capsys, monkeypatch):
    from models import hub

    def needs_an_untrained_model(app):
        raise hub.CheckpointError("The 'digit-thing' model is missing: checkpoints/digit-thing/model.safetensors does not exist.")

    monkeypatch.setitem(run.BENCHMARKS, "digit-thing", needs_an_untrained_model)
    monkeypatch.setattr(
        run.argparse.ArgumentParser, "parse_args", lambda self, argv=None: run.argparse.Namespace(only=["digit-thing"], json=None)
    )
    assert run.main([]) == {}
    assert "skipping digit-thing: The 'digit-thing' model is missing" in capsys.readouterr().out


def test_the_load_tests_http_users_get_answers_files_and_errors_from_a_real_server():
    """benchmarks.load's users speak Gradio's HTTP API themselves: against the floor server, an answer comes back
    with both images downloaded, a gr.Error arrives as an error, and a short run counts requests and server CPU."""
    from benchmarks import load
    from benchmarks.http_user import AppError, HttpUser, file_urls

    server = load.AppProcess(("-m", "benchmarks.floor_server"))
    try:
        user = HttpUser(server.url)
        name, args = load.floor_mix()[0]
        first, second = user.predict(name, args), user.predict(name, args)
        assert len(file_urls(first)) == 2 and file_urls(first) != file_urls(second)  # two images, new ones each time
        assert all(user.download(url) > 100 for url in file_urls(first))
        with pytest.raises(AppError, match="Upload an image"):
            user.predict("/echo", [None])
        user.close()
        result = load.run_clients(server.url, server.process.pid, 2, 3.0, load.floor_mix()).summary()
        assert result["errors"] == 0, result["error_samples"]
        assert result["requests"] >= 4 and result["server_cpu_ms_per_request"] > 0
    finally:
        server.close()


@needs_checkpoint("digit-diffusion", weights="diffusion_pytorch_model.safetensors")
def test_the_diffusion_passes_sweep_writes_its_rows_and_its_choice(tmp_path):
    """A tiny sweep (2 digits a class, two rows): every row is judged against both references, and the choice is one of
    the rows; the shipped table covers every sampler at 4 to 50 steps, with and without guidance."""
    import json
    import subprocess
    import sys

    out = tmp_path / "passes.json"
    args = ["--per-class", "2", "--samplers", "UniPC", "--steps", "4", "6", "--guidance", "1.5", "--json", str(out)]
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.diffusion_passes", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert [(r["sampler"], r["steps"], r["passes"]) for r in report["rows"]] == [("UniPC", 4, 8), ("UniPC", 6, 12)]
    assert {"val_class_accuracy", "val_fid_digits", "test_fid_digits", "test_diversity", "ms_per_digit"} <= set(report["rows"][0])
    assert report["chosen"] in report["rows"] and "| UniPC | 6 | 1.5 | 12 |" in result.stdout
    shipped = json.loads((REPO_ROOT / "benchmarks" / "diffusion_passes.json").read_text())
    grid = {(r["sampler"], r["steps"], r["guidance"]) for r in shipped["rows"]}
    assert {(s, n, g) for s in ("DDIM", "DPM-Solver++", "UniPC") for n in (4, 6, 8, 10, 15, 25, 50) for g in (1.0, 1.5)} <= grid
    assert shipped["chosen"] == json.loads((REPO_ROOT / "checkpoints" / "digit-diffusion" / "sampler_sweep.json").read_text())["chosen"]

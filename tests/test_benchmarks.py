"""The benchmark scripts themselves (their numbers are checked by the checkpoint tests and the README)."""

import os

import pytest
import torch

from benchmarks import gpu, run


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

"""Load test: many users at once, on a mix of every endpoint, against `python app.py` on loopback.

    python -m benchmarks.load                                       # 1, 4 and 16 clients, 30 s each
    python -m benchmarks.load --clients 16 --seconds 60 --json out.json
    python -m benchmarks.load --clients 16 --seconds 60 --think 5   # users who look at each answer for ~5 s
    python -m benchmarks.load --gradio-client                       # the users are gradio_client sessions

Each client is a user of the HTTP API in its own thread (benchmarks/http_user.py: the browser's calls, with the
standard library, a few ms of CPU a request; gradio_client, with --gradio-client, costs about 100 times that, on
the same cores as the server it measures); it walks the endpoint mix in a
loop (starting at a different place than its neighbours) until time is up, and waits for each
answer before sending the next request (with --think, it then waits a random time, exponential with
that mean, as a person looking at the result would). Reported per client count: requests per second, p50 and
p95 latency per endpoint with the lane (concurrency group) it ran in, errors, the server's resident memory before
and after, and the server's CPU time per request served.

After the app, the same number of clients as the largest run hammer the floor server (benchmarks/floor_server.py:
one image in, two out, no model) for as long: its CPU per request is what Gradio alone costs, and the app's over it
is a ratio that does not depend on the machine's speed.

The JSON gets the largest run's totals at the top level: `errors`, `requests`, `requests_per_s`, `p95_ms`,
`light_p95_ms` (the largest p95 of the light endpoints in LIGHT_ENDPOINTS), `rss_growth_mb`,
`server_cpu_ms_per_request`, `floor_server_cpu_ms_per_request` and their ratio, `single_client_p50_ms` (one client
alone, for scale), and every run in full under `runs`.
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmarks.http_user import HttpUser
from benchmarks.run import EXAMPLES, free_port

REPO_ROOT = Path(__file__).resolve().parent.parent


def endpoint_mix() -> list[tuple[str, list]]:
    """(api_name, args) for every endpoint, sized like an ordinary user's request."""
    from gradio_client import handle_file

    digit = str(EXAMPLES / "digits" / "mnist_test_7.png")
    photo = str(EXAMPLES / "photos" / "coffee.jpg")
    return [
        ("/classify_digit", [handle_file(digit)]),
        ("/classify_image", [handle_file(photo)]),
        ("/explain_image", [handle_file(photo)]),
        ("/segment_digits", [handle_file(digit), 0.5, "any digit"]),
        ("/generate_digits", ["any", 0, 64]),
        ("/interpolate_digits", ["3", 0, "8", 1, 10]),
        ("/generate_digits_diffusion", ["seven", 8, 20, 3.0, 0, "DDIM"]),
        ("/attack", [handle_file(digit), "digit", "fgsm", 76.5, 10, 1, "none", 100, 60, 0]),
        ("/generate_text", ["LSTM (recurrent network)", "It is a truth universally acknowledged", 0.8, 40, 0.95, 30, 0]),
        ("/next_words", ["GPT (small transformer)", "Mr. Darcy"]),
        ("/horse_to_zebra", [handle_file(str(EXAMPLES / "horses" / "horse_3000001.png")), "horse → zebra", 256]),
        ("/detect_defects", [handle_file(str(EXAMPLES / "fabric" / "denim_stain_40000011.png")), "features", 0, "denim (twill)"]),
        (
            "/train_playground",
            ["curved", 200, 0.3, 0.5, 0, "mlp", 2, 8, "tanh", 0.1, 0.0, 0.0, False, 200],
        ),
    ]


# The calls a classroom makes most, whose wait the issue bounds (p95 under a second at 16 clients).
LIGHT_ENDPOINTS = ("/classify_digit", "/classify_image", "/next_words", "/generate_digits")


def floor_mix() -> list[tuple[str, list]]:
    """The floor server's requests: the mix's two kinds of upload, a digit and a photo, in turn."""
    from gradio_client import handle_file

    return [
        ("/echo", [handle_file(str(EXAMPLES / "digits" / "mnist_test_7.png"))]),
        ("/echo", [handle_file(str(EXAMPLES / "photos" / "coffee.jpg"))]),
    ]


def endpoint_lanes() -> dict[str, str]:
    """api name -> the concurrency group its event runs in, read from the app as app.py builds it."""
    import app

    demo = app.build_demo()
    return {f"/{fn.api_name}": str(fn.concurrency_id) for fn in demo.fns.values() if fn.api_name}


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process and its children so far (Linux /proc), in seconds."""
    ticks = 0
    for p in [pid, *child_pids(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat(5)
        except (OSError, IndexError, ValueError):
            pass
    return ticks / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MB (Linux /proc)."""
    total = 0
    for p in [pid, *child_pids(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def child_pids(pid: int) -> list[int]:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(c) for c in children]


@dataclass
class RunResult:
    clients: int
    seconds: float
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    rss_before_mb: float = 0.0
    rss_after_mb: float = 0.0
    cpu_s: float = 0.0  # the server's CPU time during the run
    lanes: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict:
        all_ms = [ms for values in self.latencies.values() for ms in values]
        requests = len(all_ms) + sum(len(e) for e in self.errors.values())
        return {
            "clients": self.clients,
            "requests": requests,
            "errors": sum(len(e) for e in self.errors.values()),
            "requests_per_s": round(requests / self.seconds, 2),
            "p50_ms": round(float(np.percentile(all_ms, 50)), 1) if all_ms else None,
            "p95_ms": round(float(np.percentile(all_ms, 95)), 1) if all_ms else None,
            "rss_before_mb": round(self.rss_before_mb, 1),
            "rss_after_mb": round(self.rss_after_mb, 1),
            "rss_growth_mb": round(self.rss_after_mb - self.rss_before_mb, 1),
            "server_cpu_ms_per_request": round(1000 * self.cpu_s / len(all_ms), 1) if all_ms else None,
            "per_endpoint": {
                name: {
                    "lane": self.lanes.get(name, "?"),
                    "requests": len(values),
                    "p50_ms": round(float(np.percentile(values, 50)), 1),
                    "p95_ms": round(float(np.percentile(values, 95)), 1),
                    "errors": len(self.errors.get(name, [])),
                }
                for name, values in sorted(self.latencies.items())
            },
            "error_samples": {name: sorted(set(e))[:3] for name, e in self.errors.items()},
        }


class GradioClientUser:
    """A gradio_client session behind HttpUser's predict(api_name, args), for --gradio-client."""

    def __init__(self, url: str):
        from gradio_client import Client

        self.client = Client(url, verbose=False)

    def predict(self, api_name: str, args: list):
        return self.client.predict(*args, api_name=api_name)

    def close(self) -> None:
        self.client.close()


def new_user(url: str, gradio_client: bool = False) -> HttpUser | GradioClientUser:
    return GradioClientUser(url) if gradio_client else HttpUser(url)


def run_clients(
    url: str,
    server_pid: int,
    clients: int,
    seconds: float,
    mix: list[tuple[str, list]],
    think: float = 0.0,
    lanes: dict | None = None,
    gradio_client: bool = False,
) -> RunResult:
    result = RunResult(clients=clients, seconds=seconds, lanes=lanes or {})
    lock = threading.Lock()
    result.rss_before_mb = rss_mb(server_pid)
    cpu_before = cpu_seconds(server_pid)
    deadline = time.perf_counter() + seconds

    def user(index: int) -> None:
        client = new_user(url, gradio_client)
        position = index * 3  # neighbours start on different endpoints
        pauses = np.random.default_rng(index)
        while time.perf_counter() < deadline:
            name, args = mix[position % len(mix)]
            position += 1
            start = time.perf_counter()
            try:
                client.predict(name, args)
                with lock:
                    result.latencies[name].append((time.perf_counter() - start) * 1000)
            except Exception as err:  # noqa: BLE001 - every failure is counted and reported, none may stop the run
                with lock:
                    result.errors[name].append(f"{type(err).__name__}: {str(err)[:200]}")
            if think > 0:
                time.sleep(max(0.0, min(pauses.exponential(think), deadline - time.perf_counter())))
        client.close()

    threads = [threading.Thread(target=user, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 300)
    result.cpu_s = cpu_seconds(server_pid) - cpu_before
    result.rss_after_mb = rss_mb(server_pid)
    return result


class AppProcess:
    """`python app.py` (or another server's command) in its own process, so its memory and CPU are measured apart
    from the clients', on a free loopback port."""

    def __init__(self, command: tuple[str, ...] = ("app.py",)):
        port = free_port()
        self.url = f"http://127.0.0.1:{port}/"
        env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False"}
        self.process = subprocess.Popen(
            [sys.executable, *command], cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        deadline = time.perf_counter() + 60
        while time.perf_counter() < deadline:
            try:
                with urllib.request.urlopen(self.url + "gradio_api/info", timeout=2):
                    return
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{' '.join(command)} exited with {self.process.returncode}") from None
                time.sleep(0.2)
        self.close()
        raise RuntimeError(f"{' '.join(command)} did not answer within 60 s")

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16], help="concurrent clients per run (1 is always run first)")
    parser.add_argument("--seconds", type=float, default=30, help="length of each run")
    parser.add_argument("--json", type=Path, help="write the totals and every run to this JSON file")
    parser.add_argument("--think", type=float, default=0.0, help="mean seconds each client waits after an answer (0: none, the worst case)")
    parser.add_argument("--gradio-client", action="store_true", help="users are gradio_client sessions, not plain HTTP (costlier)")
    args = parser.parse_args(argv)
    counts = sorted({1, *args.clients})
    mix = endpoint_mix()
    lanes = endpoint_lanes()
    app = AppProcess()
    try:
        warm = new_user(app.url, args.gradio_client)
        for name, call_args in mix:  # warm-up: every model loaded once before anything is timed
            warm.predict(name, call_args)
        warm.close()
        runs = [
            run_clients(app.url, app.process.pid, n, args.seconds, mix, args.think, lanes, args.gradio_client).summary() for n in counts
        ]
    finally:
        app.close()
    floor_server = AppProcess(("-m", "benchmarks.floor_server"))
    try:
        floor = run_clients(
            floor_server.url, floor_server.process.pid, counts[-1], args.seconds, floor_mix(), args.think, gradio_client=args.gradio_client
        ).summary()
    finally:
        floor_server.close()
    single = runs[0]
    largest = runs[-1]
    light = [largest["per_endpoint"][name]["p95_ms"] for name in LIGHT_ENDPOINTS if name in largest["per_endpoint"]]
    cpu, floor_cpu = largest["server_cpu_ms_per_request"], floor["server_cpu_ms_per_request"]
    totals = {
        "clients": largest["clients"],
        "seconds": args.seconds,
        "think_s": args.think,
        "users": "gradio_client" if args.gradio_client else "http",
        "requests": largest["requests"],
        "requests_per_s": largest["requests_per_s"],
        "errors": largest["errors"],
        "floor_errors": floor["errors"],
        "p95_ms": largest["p95_ms"],
        "light_p95_ms": max(light) if light else None,
        "single_client_p50_ms": single["p50_ms"],
        "p95_over_single_p50": round(largest["p95_ms"] / single["p50_ms"], 2) if single["p50_ms"] else None,
        "rss_growth_mb": largest["rss_growth_mb"],
        "server_cpu_ms_per_request": cpu,
        "floor_server_cpu_ms_per_request": floor_cpu,
        "cpu_over_floor": round(cpu / floor_cpu, 2) if cpu and floor_cpu else None,
        "runs": runs,
        "floor_run": floor,
    }
    print("| server | clients | requests | errors | req/s | p50 ms | p95 ms | server CPU ms / request | server RSS before -> after (MB) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, r in [*(("app.py", r) for r in runs), ("floor", floor)]:
        print(
            f"| {label} | {r['clients']} | {r['requests']} | {r['errors']} | {r['requests_per_s']} | {r['p50_ms']} | {r['p95_ms']} | "
            f"{r['server_cpu_ms_per_request']} | {r['rss_before_mb']} -> {r['rss_after_mb']} |"
        )
    print(
        f"\nlight p95 {totals['light_p95_ms']} ms; server CPU per request {cpu} ms = {totals['cpu_over_floor']} x the floor's {floor_cpu} ms"
    )
    print("\n| endpoint | lane | " + " | ".join(f"p50 / p95 ms, {r['clients']} clients" for r in runs) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in runs) + " |")
    for name in sorted({n for r in runs for n in r["per_endpoint"]}):
        cells = []
        for r in runs:
            e = r["per_endpoint"].get(name)
            cells.append(f"{e['p50_ms']} / {e['p95_ms']}" + (f" ({e['errors']} errors)" if e["errors"] else "") if e else "-")
        print(f"| `{name}` | {lanes.get(name, '?')} | " + " | ".join(cells) + " |")
    for r in runs:
        for name, samples in r["error_samples"].items():
            print(f"errors at {r['clients']} clients, {name}: {samples}")
    if args.json:
        args.json.write_text(json.dumps(totals, indent=2) + "\n")
    return totals


if __name__ == "__main__":
    main()

"""The disk stays bounded: every file the app hands out lives in Gradio's cache, and the cache is cleaned by age.

A server of its own, with a short cache age (MODEL_SHOW_DELETE_CACHE="1,15": sweep every second, files older than 15 s
go), gets 50 different requests to every endpoint whose answer holds a file (found in its API description). Then:
nothing new lies outside the cache (not in the server's TMPDIR, not in the repository), and once the age has passed
the cache holds nothing but what it held at start-up (the copies of the examples Gradio keeps for the UI).
"""

import queue
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from PIL import Image

from data.pen_digits import draw_digit
from tests.conftest import REPO_ROOT, launch_app, needs_checkpoint
from tests.test_bad_input import endpoint_table, put

REQUESTS = 50
PEOPLE = 4  # at once: as busy as the server's workers allow
FREQUENCY_S, AGE_S = 1, 15  # an age well above a request's wait in the queue on a slow machine


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file() or p.is_symlink()}


def repo_leftovers() -> set[str]:
    """Untracked and ignored files in the repository, bytecode aside."""
    out = subprocess.run(["git", "status", "--porcelain", "--ignored", "-uall"], cwd=REPO_ROOT, capture_output=True, text=True).stdout
    return {line[3:] for line in out.splitlines() if line[:2] in ("??", "!!") and "__pycache__" not in line and not line.endswith(".pyc")}


def pictures(folder: Path, count: int) -> list[str]:
    """`count` different pictures of a 7 (one pixel moves), so every request uploads and gets back new files."""
    paths = []
    for i in range(count):
        picture = draw_digit(7).convert("RGB")
        picture.putpixel((5 + i, 5), (0, 0, 0))
        path = folder / f"seven_{i}.png"
        picture.save(path)
        paths.append(str(path))
    return paths


def file_endpoints(client: Client) -> list[str]:
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    return [name for name, spec in api.items() if any("filepath" in r["python_type"]["type"] for r in spec["returns"])]


@pytest.fixture(scope="module")
def short_lived_app(tmp_path_factory):
    app = launch_app(tmp_path_factory.mktemp("disk"), MODEL_SHOW_DELETE_CACHE=f"{FREQUENCY_S},{AGE_S}")
    yield app
    app.stop()


@needs_checkpoint("digit-classifier")
def test_files_live_only_in_the_cache_and_leave_it_by_age(short_lived_app, tmp_path):
    app = short_lived_app
    at_start = files_under(app.cache_dir)
    repo_before = repo_leftovers()
    client = Client(app.url, verbose=False)
    endpoints = file_endpoints(client)
    assert {"/classify_digit", "/generate_digits_diffusion", "/download_head", "/attack", "/horse_to_zebra"} <= set(endpoints)
    table = endpoint_table(client)
    # Every request draws something new (its own seed), so each one hands back files of its own.
    seeds = {
        api: [i for i, p in enumerate(spec["parameters"]) if "seed" in p["parameter_name"]]
        for api, spec in client.view_api(print_info=False, return_format="dict")["named_endpoints"].items()
    }

    photos = pictures(tmp_path, REQUESTS)

    def taught_client() -> Client:
        """One client (one session, as one person), taught its classes so /download_head has a head. Taught before
        the burst: under it, a teach request can queue past the short cache age and find its uploads swept."""
        person = Client(app.url, verbose=False)
        teach = ["cats", [handle_file(p) for p in photos[:3]], "sevens", [handle_file(p) for p in photos[3:6]], "", [], "", [], "", []]
        person.predict(*teach, api_name="/teach_classes")
        return person

    people, local = queue.SimpleQueue(), threading.local()
    for _ in range(PEOPLE):
        people.put(taught_client())

    def sit_down() -> None:  # each worker thread is one of the people, for the whole burst
        local.client = people.get()

    def arguments(api: str, i: int) -> list:
        args = [put(a, handle_file(photos[i])) for a in table[api][0]]
        for index in seeds[api]:
            args[index] = i
        return args

    jobs = [(api, arguments(api, i)) for api in endpoints for i in range(REQUESTS)]
    seen, burst_over = set(), threading.Event()

    def watch_the_cache():  # the sweep already deletes during the burst: count every file that ever appeared
        while not burst_over.is_set():
            seen.update(files_under(app.cache_dir) - at_start)
            time.sleep(0.3)

    watcher = threading.Thread(target=watch_the_cache)
    watcher.start()
    started = time.perf_counter()
    with ThreadPoolExecutor(PEOPLE, initializer=sit_down) as pool:
        futures = [pool.submit(lambda api, args: local.client.predict(*args, api_name=api), api, args) for api, args in jobs]
        errors = [f"{api}: {f.exception()!r}" for (api, _), f in zip(jobs, futures, strict=True) if f.exception() is not None]
    took = time.perf_counter() - started
    burst_over.set()
    watcher.join()
    assert not errors, errors[:5]

    written = seen | (files_under(app.cache_dir) - at_start)
    assert len(written) >= REQUESTS * len(endpoints) // 2, f"only {len(written)} files for {len(jobs)} requests"
    assert not files_under(app.temp_dir), f"written outside Gradio's cache: {sorted(files_under(app.temp_dir))[:10]}"
    assert repo_leftovers() == repo_before, f"written into the repository: {sorted(repo_leftovers() - repo_before)}"

    deadline = time.time() + AGE_S + 3 * FREQUENCY_S + 30
    while time.time() < deadline and files_under(app.cache_dir) - at_start:
        time.sleep(1)
    left = files_under(app.cache_dir) - at_start
    assert not left, f"{len(left)} of {len(written)} files outlived the cache age, e.g. {sorted(left)[:5]}"
    print(f"{len(jobs)} requests to {len(endpoints)} endpoints in {took:.0f} s wrote {len(written)} files; all gone after the age")
    Image.open(photos[0]).close()  # the client's own inputs are untouched


@needs_checkpoint("digit-classifier")
def test_pictures_an_mcp_client_sends_leave_the_cache_by_age_too(short_lived_app, tmp_path):
    """gradio's MCP server writes each base64 picture to the cache before it uploads a copy to the app: that first
    copy is swept by age as well (app.save_base64_to_cache_tracked)."""
    pytest.importorskip("mcp")
    from tests.test_mcp import data_url, on_mcp

    before = files_under(short_lived_app.cache_dir)
    sevens = [Path(p) for p in pictures(tmp_path, 3)]

    async def work(session):
        return [await session.call_tool("classify_digit", {"image": data_url(path)}) for path in sevens]

    answers = on_mcp(short_lived_app, work)
    assert all(not a.isError and "'label': '7'" in a.content[0].text for a in answers)
    assert len(files_under(short_lived_app.cache_dir) - before) >= 3  # each picture's base64 copy, its upload, the answers
    deadline = time.monotonic() + AGE_S + 10 * FREQUENCY_S + 20
    while files_under(short_lived_app.cache_dir) - before and time.monotonic() < deadline:
        time.sleep(1)
    assert not files_under(short_lived_app.cache_dir) - before, sorted(map(str, files_under(short_lived_app.cache_dir) - before))[:5]

"""Model Show: every model from a beginner's tour of deep learning, one tab each.

    python app.py        # serves on http://127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT override)

Nothing heavy happens at import: models load on first use and stay cached (models/hub.py).
"""

import ctypes
import os
import sys
import time

import gradio as gr
from gradio import processing_utils, route_utils

import apps
from apps.common import cache_file

TITLE = "Model Show"
DESCRIPTION = """
# Model Show
Try every model from a beginner's tour of deep learning, right in the browser. Each tab says in plain words what the
model is and how it learned, and shows what is inside it. Every model was trained by this project's own scripts in
`training/`; every number shown was measured on data the model never saw.
"""
CSS = """
#digit-seen img, #digit-seen canvas { image-rendering: pixelated; }
"""

# Every event that runs a network, by API name. They share one pool of workers, as many as the machine has cores
# (at most 4). Measured with 16 load-test clients on 2 cores: with a queue per event, 13 kinds of model call ran at
# once and fought for the cores (p95 18.9 s; diffusion starved at 23 s); one shared pool of 2 served the same
# 4.7 requests/s with p95 5.9 s, and every endpoint waited its fair turn (benchmarks/load.py).
MODEL_EVENTS = {
    "classify_digit",
    "classify_image",
    "explain_image",
    "teach_classes",
    "classify_taught",
    "segment_digits",
    "generate_digits",
    "interpolate_digits",
    "generate_digits_diffusion",
    "gan_for_comparison",
    "attack",
    "generate_text",
    "next_words",
    "horse_to_zebra",
    "detect_defects",
    "train_playground",
}
MODEL_WORKERS = int(os.environ.get("MODEL_SHOW_WORKERS", 0)) or max(1, min(4, os.cpu_count() or 1))
DELETE_CACHE = (600, 3600)  # s: sweep Gradio's cache every 10 minutes for files older than an hour


def tab_id(module) -> str:
    return module.__name__.split(".")[-1]


def select_tab_from_url(request: gr.Request):
    wanted = (request.query_params.get("tab") if request else None) or ""
    ids = [tab_id(m) for m in apps.TABS]
    return gr.Tabs(selected=wanted) if wanted in ids else gr.Tabs()


def build_demo() -> gr.Blocks:
    """All tabs, built without launching (tests and benchmarks build it too)."""
    with gr.Blocks(title=TITLE, delete_cache=delete_cache_setting()) as demo:
        gr.Markdown(DESCRIPTION)
        with gr.Tabs() as tabs:
            for module in apps.TABS:
                with gr.Tab(module.TITLE, id=tab_id(module)):
                    module.build()
        # A shared link such as ?tab=neurons&... opens on that tab.
        demo.load(select_tab_from_url, None, tabs, api_visibility="private", queue=False)
    # One queue for everyone: at most 4 requests run at once per event; the rest wait in line.
    demo.queue(default_concurrency_limit=4, max_size=64)
    share_model_workers(demo)
    processing_utils.save_pil_to_cache = save_pil_to_cache_atomically  # see its docstring
    route_utils.delete_files_created_by_app = delete_old_cache_files  # see its docstring
    return demo


def share_model_workers(demo: gr.Blocks) -> None:
    """Put every event that runs a network (MODEL_EVENTS, and the other triggers of the same functions) in one
    concurrency group of MODEL_WORKERS. Long jobs with their own limit (fitting, the robustness curve) keep it."""
    runs_model = {fn.fn for fn in demo.fns.values() if fn.api_name in MODEL_EVENTS}
    for fn in demo.fns.values():
        if fn.fn in runs_model:
            fn.concurrency_id, fn.concurrency_limit = "models", MODEL_WORKERS


def save_pil_to_cache_atomically(img, cache_dir: str, name: str = "image", format: str = "webp") -> str:
    """gradio's save_pil_to_cache, written to a temporary name and renamed into place, once per content.

    gradio names a cached output by the hash of its bytes and rewrites it in place on every request, so two users
    who get the same picture at once (the same example, the same seed) race: one download found the file truncated
    mid-rewrite and the connection closed with 0 bytes sent (seen once in 281 requests of the 16-client load test).
    gradio's own save_file_to_cache already stages and renames; apps.common.cache_file does the same for the
    images tabs return, and for the files they hand back."""
    return cache_file(processing_utils.encode_pil_to_bytes(img, format), f"{name}.{format}", cache_dir)


def delete_old_cache_files(blocks: gr.Blocks, age: float | None) -> None:
    """gradio's delete_files_created_by_app (what delete_cache runs on its schedule), over copies of the file sets.

    gradio walks each component's live set of cached files while request threads add to it. The first sweep that a
    request lands in raises "Set changed size during iteration", which silently ends gradio's cleaning task for good,
    and the cache then grows for as long as the server runs (tests/test_disk.py: with a sweep every second under load,
    all 293 files outlived their 8 s age). Same rule otherwise: files older than `age` (by ctime) go, except the ones
    gradio keeps for the UI (examples, default values); age None deletes all."""
    keep = set()
    for component in list(blocks.blocks.values()):
        keep.update(list(getattr(component, "keep_in_cache", ())))
    now = time.time()
    for files in list(blocks.temp_file_sets):
        for name in list(files):
            if name in keep:
                continue
            try:
                if age is None or now - os.lstat(name).st_ctime > age:
                    os.remove(name)
                    files.discard(name)
            except FileNotFoundError:
                files.discard(name)
            except OSError:  # not ours to delete after all (permissions): leave it, keep sweeping
                continue


def delete_cache_setting() -> tuple[int, int]:
    """(how often, how old) in seconds for gr.Blocks(delete_cache=...): every file the app hands out, and every upload,
    lives in Gradio's cache and is deleted once older than the age. MODEL_SHOW_DELETE_CACHE="frequency,age" overrides
    the default of a sweep every 10 minutes for files older than an hour (long enough to download a GIF you made)."""
    text = os.environ.get("MODEL_SHOW_DELETE_CACHE", "")
    try:
        frequency, age = (int(part) for part in text.split(","))
    except ValueError:
        return DELETE_CACHE
    return max(1, frequency), max(1, age)


def limit_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives each busy thread its own heap ("arena") and seldom returns their memory. Measured with 16 load-test
    clients: server memory grew 686 MB in 30 s with the default (8 per core), 262 MB with 2. Other platforms: no-op."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").mallopt(-8, arenas)  # -8 = M_ARENA_MAX
        except (OSError, AttributeError):  # not glibc (musl has no mallopt)
            pass


def main() -> None:
    limit_malloc_arenas()  # before any worker thread exists
    demo = build_demo()
    demo.launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        max_file_size="20mb",
        css=CSS,
        theme=gr.themes.Soft(),
        share=False,
        # Errors the app did not foresee reach the caller with their message instead of a generic "error":
        # an API client that sends a number where a file belongs learns what was wrong.
        show_error=True,
    )


if __name__ == "__main__":
    main()

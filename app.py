"""Model Show: every model from a beginner's tour of deep learning, one tab each.

    python app.py        # serves on http://127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT override)
                         # and, with gradio[mcp] installed, an MCP server at /gradio_api/mcp/ (MODEL_SHOW_MCP=0: off)

Nothing heavy happens at import: models load on first use and stay cached (models/hub.py).
"""

import ctypes
import importlib.util
import io
import os
import sys
import time

# After every event gradio's queue rebuilds a pandas table of its last 10,000 events for a monitoring summary this
# app never shows: 8 to 23 ms of CPU per request. Once every 1,000 events, over the last 1,000, bounds it. Read when
# the queue is made, so set before gradio is used; the environment still wins.
os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "1000")
os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", "1000")

import gradio as gr  # noqa: E402
from gradio import processing_utils, route_utils  # noqa: E402

import apps  # noqa: E402
from apps.common import cache_file  # noqa: E402

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

DELETE_CACHE = (600, 3600)  # s: sweep Gradio's cache every 10 minutes for files older than an hour
SESSIONS = 300  # visitors' sessions kept in memory: see session_capacity


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
    # Events that run a network wait in one of two lanes, light or heavy (apps.common.LIGHT_LANE and HEAVY_LANE,
    # declared where each event is wired); any other event runs at most 4 at once; the rest wait in line.
    demo.queue(default_concurrency_limit=4, max_size=64)
    processing_utils.save_pil_to_cache = save_pil_to_cache_atomically  # see its docstring
    processing_utils.save_base64_to_cache = save_base64_to_cache_tracked  # see its docstring
    demo.temp_file_sets.append(BASE64_FILES)
    route_utils.delete_files_created_by_app = delete_old_cache_files  # see its docstring
    return demo


def save_pil_to_cache_atomically(img, cache_dir: str, name: str = "image", format: str = "webp") -> str:
    """gradio's save_pil_to_cache, written to a temporary name and renamed into place, once per content.

    gradio names a cached output by the hash of its bytes and rewrites it in place on every request, so two users
    who get the same picture at once (the same example, the same seed) race: a download can find the file truncated
    mid-rewrite and the connection closes with 0 bytes sent (the 16-client load test, benchmarks/load.py, hit it).
    gradio's own save_file_to_cache already stages and renames; apps.common.cache_file does the same for the
    images tabs return, and for the files they hand back."""
    return cache_file(encode_picture(img, format), f"{name}.{format}", cache_dir)


BASE64_FILES: set[str] = set()  # files gradio wrote from base64 data (an MCP tool call's picture), swept by age like the rest
_save_base64_to_cache = processing_utils.save_base64_to_cache


def save_base64_to_cache_tracked(base64_encoding: str, cache_dir: str, file_name: str | None = None) -> str:
    """gradio's save_base64_to_cache, with the file it writes remembered for the cache sweep (delete_old_cache_files).

    An MCP client sends pictures as base64 data; gradio's MCP server writes each to the cache and then uploads that copy
    to the app. The upload is swept by age like every other, but gradio tracks no set for the first copy, so without
    this every picture an assistant sent would stay on disk for as long as the server runs."""
    path = _save_base64_to_cache(base64_encoding, cache_dir, file_name)
    BASE64_FILES.add(path)
    return path


def encode_picture(img, format: str) -> bytes:
    """gradio's encode_pil_to_bytes with faster settings for the two formats the tabs return, the same pixels kept:
    PNG at zlib level 1 (the playground streams three PNGs a frame: half the time, files a few percent larger) and
    WebP at method 0 (same quality 80: a quarter of the time, files about a fifth larger; at 16 clients the encoder
    took as long as the digit model itself)."""
    kind = format.lower()
    if kind not in ("png", "webp"):
        return processing_utils.encode_pil_to_bytes(img, format)
    with io.BytesIO() as out:
        if kind == "png":
            img.save(out, format="png", pnginfo=processing_utils.get_pil_metadata(img), compress_level=1)
        else:
            exif = processing_utils.get_pil_exif_bytes(img)
            img.save(out, format="webp", method=0, **({"exif": exif} if exif else {}))
        return out.getvalue()


def delete_old_cache_files(blocks: gr.Blocks, age: float | None) -> None:
    """gradio's delete_files_created_by_app (what delete_cache runs on its schedule), over copies of the file sets.

    gradio walks each component's live set of cached files while request threads add to it. The first sweep that a
    request lands in raises "Set changed size during iteration", which silently ends gradio's cleaning task for good,
    and the cache then grows for as long as the server runs (tests/test_disk.py sweeps every second under load and
    checks that every file leaves by its age). Same rule otherwise: files older than `age` (by ctime) go, except the ones
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


def session_capacity() -> int:
    """How many visitors' sessions the server remembers (gr.State values such as a taught head or a playground run);
    past it the longest-idle session is forgotten. gradio keeps, for every session, its own copy of every
    component's config: about 650 KB for this app's 350 components, and a caller of the HTTP API who sends no
    session starts a new one with every request. gradio's default of 10,000 would let that reach 6.5 GB;
    MODEL_SHOW_SESSIONS overrides the default of 300 (about 200 MB)."""
    try:
        return max(1, int(os.environ.get("MODEL_SHOW_SESSIONS", SESSIONS)))
    except ValueError:
        return SESSIONS


def limit_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives each busy thread its own heap ("arena") and seldom returns their memory: under the 16-client load
    test (benchmarks/load.py) the default of 8 per core let server memory grow several times faster than 2 do.
    Other platforms: no-op."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").mallopt(-8, arenas)  # -8 = M_ARENA_MAX
        except (OSError, AttributeError):  # not glibc (musl has no mallopt)
            pass


def mcp_enabled() -> bool:
    """Serve every public endpoint as an MCP tool too (at /gradio_api/mcp/): on when the `mcp` package that gradio[mcp]
    brings is installed, unless MODEL_SHOW_MCP is 0 / false / off. Private events are not endpoints, so never tools."""
    if os.environ.get("MODEL_SHOW_MCP", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    return importlib.util.find_spec("mcp") is not None


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
        state_session_capacity=session_capacity(),
        mcp_server=mcp_enabled(),
    )


if __name__ == "__main__":
    main()

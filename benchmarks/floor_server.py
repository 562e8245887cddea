"""The floor the load test divides by: a Gradio app that does no model work, served like app.py.

    python -m benchmarks.floor_server      # GRADIO_SERVER_PORT picks the port, as for app.py

One endpoint, `/echo`: one image in, two images out. Every answer differs from the last (a corner block carries a
counter), because two identical outputs would share one cache file, and app.py's answers differ too. What a
request costs this server (receive the upload, decode it, encode two images, send them) is Gradio's own share of
any image request, so `benchmarks.load` reports the app's CPU per request as a multiple of it: a ratio that does
not depend on how fast the machine is.
"""

import itertools
import os

os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "1000")  # served like app.py, which sets these (see there)
os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", "1000")

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402

_counter = itertools.count()


def echo(image: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The upload back, and its mirror image, with an 8 x 8 corner block shaded from a counter so no two answers
    match. A single pixel is not enough: lossy WebP can round a one-pixel change away, two answers then share one
    cache file, and gradio rewriting it under a download sends 0 bytes."""
    if image is None:
        raise gr.Error("Upload an image.")
    first = np.ascontiguousarray(image.copy())
    first[:8, :8] = (next(_counter) * 37) % 256
    return first, np.ascontiguousarray(first[:, ::-1])


def build_demo() -> gr.Blocks:
    with gr.Blocks(title="floor") as demo:
        picture = gr.Image(type="numpy", label="in")
        out_a, out_b = gr.Image(label="out"), gr.Image(label="mirrored")
        gr.Button("echo").click(echo, picture, [out_a, out_b], api_name="echo")
    demo.queue(default_concurrency_limit=4, max_size=64)
    return demo


if __name__ == "__main__":
    build_demo().launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        max_file_size="20mb",
        share=False,
    )

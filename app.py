"""Model Show: every model from a beginner's tour of deep learning, one tab each.

    python app.py        # serves on http://127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT override)

Nothing heavy happens at import: models load on first use and stay cached (models/hub.py).
"""

import os

import gradio as gr

import apps

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


def tab_id(module) -> str:
    return module.__name__.split(".")[-1]


def select_tab_from_url(request: gr.Request):
    wanted = (request.query_params.get("tab") if request else None) or ""
    ids = [tab_id(m) for m in apps.TABS]
    return gr.Tabs(selected=wanted) if wanted in ids else gr.Tabs()


def build_demo() -> gr.Blocks:
    """All tabs, built without launching (tests and benchmarks build it too)."""
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(DESCRIPTION)
        with gr.Tabs() as tabs:
            for module in apps.TABS:
                with gr.Tab(module.TITLE, id=tab_id(module)):
                    module.build()
        # A shared link such as ?tab=neurons&... opens on that tab.
        demo.load(select_tab_from_url, None, tabs, api_visibility="private", queue=False)
    # One queue for everyone: at most 4 requests run at once per event; the rest wait in line.
    demo.queue(default_concurrency_limit=4, max_size=64)
    return demo


def main() -> None:
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

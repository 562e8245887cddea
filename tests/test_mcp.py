"""The app as an MCP server: every public endpoint is a tool with a described schema, and the tools answer.

Connects the official `mcp` Python client over streamable HTTP to the running app (tests/conftest.py launches
`python app.py` the way a user does; with gradio[mcp] installed it serves MCP at /gradio_api/mcp/)."""

import asyncio
import base64
import json
from pathlib import Path

import pytest
from gradio import utils

import app
from tests.conftest import needs_checkpoint

pytest.importorskip("mcp")
from mcp import ClientSession  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
# Events the page runs for itself (drawing, sliders, clicks on a map): never tools.
PRIVATE = {"classify_sketch", "layers_of_sketch", "explain_click", "writing", "attention_click", "show_neuron", "restore_from_url"}


def data_url(path: Path) -> str:
    kind = "jpeg" if path.suffix == ".jpg" else "png"
    return f"data:image/{kind};base64," + base64.b64encode(path.read_bytes()).decode()


async def _session(url: str, work):
    async with streamable_http_client(f"{url}gradio_api/mcp/") as (read, write, *_):
        async with ClientSession(read, write) as session:
            await session.initialize()
            return await work(session)


def on_mcp(running_app, work):
    return asyncio.run(asyncio.wait_for(_session(running_app.url, work), timeout=120))


def text_of(result) -> str:
    assert not result.isError, result.content
    return "\n".join(c.text for c in result.content if c.type == "text")


def test_every_public_endpoint_is_a_tool_with_a_described_schema_and_no_private_event_is(running_app):
    from gradio_client import Client

    endpoints = {
        name.lstrip("/")
        for name in Client(running_app.url, verbose=False).view_api(print_info=False, return_format="dict")["named_endpoints"]
    }
    tools = on_mcp(running_app, lambda s: s.list_tools()).tools
    by_name = {tool.name: tool for tool in tools}
    # The tool names are the endpoint names: the functions are named after their endpoints.
    assert set(by_name) == endpoints
    assert {"classify_image", "generate_text", "detect_defects", "attack", "segment_digits", "train_playground"} <= set(by_name)
    assert not PRIVATE & set(by_name)
    for tool in tools:
        assert len(tool.description) > 30, tool.name
        for parameter, schema in tool.inputSchema.get("properties", {}).items():
            assert schema.get("description"), f"{tool.name}: {parameter} has no description"
    generate = by_name["generate_text"].inputSchema["properties"]
    assert "0 to 2" in generate["temperature"]["description"] and generate["choice"]["enum"] == [
        "LSTM (recurrent network)",
        "GPT (small transformer)",
    ]
    assert "url" in by_name["classify_image"].inputSchema["properties"]["image"]["format"]


def test_the_tools_classify_a_photo_write_on_from_a_prompt_and_find_a_hole_in_cloth(running_app):
    async def work(session):
        photo = await session.call_tool("classify_image", {"image": data_url(REPO_ROOT / "examples" / "photos" / "chelsea.jpg")})
        text = await session.call_tool("generate_text", {"prompt": "Mr. Darcy", "words": 12, "seed": 3})
        again = await session.call_tool("generate_text", {"prompt": "Mr. Darcy", "words": 12, "seed": 3})
        hole = await session.call_tool(
            "detect_defects",
            {
                "image": data_url(REPO_ROOT / "examples" / "fabric" / "linen_hole_40000010.png"),
                "detector": "features",
                "product": "linen (plain weave)",
            },
        )
        flawless = await session.call_tool(
            "detect_defects",
            {
                "image": data_url(REPO_ROOT / "examples" / "fabric" / "denim_flawless_40000002.png"),
                "detector": "features",
                "product": "denim (twill)",
            },
        )
        refused = await session.call_tool("classify_image", {"image": "not a picture"})
        return photo, text, again, hole, flawless, refused

    photo, text, again, hole, flawless, refused = on_mcp(running_app, work)
    assert any(cat in text_of(photo) for cat in ("Egyptian Mau", "tabby", "tiger cat"))
    written = text_of(text)
    assert "Mr. Darcy" in written and written == text_of(again)  # the same seed writes the same text
    assert "bits" in written  # every word comes with its surprise
    assert "Defect found" in text_of(hole) and "Looks flawless" in text_of(flawless)
    assert refused.isError


@needs_checkpoint("digit-classifier")
def test_a_tool_that_returns_pictures_hands_back_urls_the_client_can_fetch(running_app):
    import urllib.request

    async def work(session):
        return await session.call_tool("classify_digit", {"image": data_url(REPO_ROOT / "examples" / "digits" / "mnist_test_7.png")})

    answer = text_of(on_mcp(running_app, work))
    assert "'label': '7'" in answer
    url = next(part.split("'")[0] for part in answer.split("'url': '")[1:])
    with urllib.request.urlopen(url, timeout=20) as response:
        assert response.status == 200 and len(response.read()) > 100


def test_mcp_is_on_by_default_when_installed_and_off_with_model_show_mcp_0(monkeypatch):
    monkeypatch.delenv("MODEL_SHOW_MCP", raising=False)
    assert app.mcp_enabled()
    for off in ("0", "false", "OFF"):
        monkeypatch.setenv("MODEL_SHOW_MCP", off)
        assert not app.mcp_enabled()


def test_every_endpoint_docstring_has_a_summary_and_names_each_parameter():
    """What the MCP tool descriptions are made of (gradio.utils.get_function_description): checked without a server."""
    demo = app.build_demo()
    for name, spec in demo.get_api_info()["named_endpoints"].items():
        fn = next(f.fn for f in demo.fns.values() if f.api_name == name.lstrip("/"))
        summary, described, _ = utils.get_function_description(fn)
        assert summary.strip() and fn.__name__ == name.lstrip("/"), name
        for parameter in spec["parameters"]:
            assert described.get(parameter["parameter_name"]), f"{name}: {parameter['parameter_name']} has no Args line"
    json.dumps(demo.get_api_info())  # the API description (what MCP lists) is plain JSON

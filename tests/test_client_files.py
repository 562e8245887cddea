"""No endpoint opens a file the client did not upload, and no refusal tells whether a path exists.

Table-driven over every endpoint that takes a file (found in the launched app's own API description, so a new one is
covered by itself). Requests go over raw HTTP, as a hostile client sends them: gradio_client would upload a local file
first, which is exactly what an attacker skips. Each hostile payload is sent twice, naming a secret file that exists
and one that does not: both must fail, with the same message once the client's own path is taken out of it, and
nothing of the secret may come back.
"""

import base64
import io
import json
import os
import urllib.request
import uuid
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from PIL import Image, ImageDraw

from data.pen_digits import draw_digit
from tests.conftest import needs_checkpoint
from tests.test_bad_input import endpoint_table, put

FILE_COMPONENTS = {"Image", "File", "Gallery", "ImageEditor", "Sketchpad", "Video", "Audio"}
SECRET_TEXT = "SECRET-7f3a"


def call(url: str, api: str, data: list) -> tuple[str, str]:
    """POST /gradio_api/call<api>, then read its event stream: ("complete" or "error", the payload text)."""
    request = urllib.request.Request(
        f"{url}gradio_api/call{api}", data=json.dumps({"data": data}).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        event_id = json.load(response)["event_id"]
    with urllib.request.urlopen(f"{url}gradio_api/call{api}/{event_id}", timeout=300) as response:
        stream = response.read().decode(errors="replace")
    events = [line.split(":", 1)[1].strip() for line in stream.splitlines() if line.startswith("event:")]
    payloads = [line.split(":", 1)[1].strip() for line in stream.splitlines() if line.startswith("data:")]
    final = next((e for e in reversed(events) if e in ("complete", "error")), "none")
    return final, (payloads[-1] if payloads else "")


def error_message(payload: str) -> str:
    try:
        return str(json.loads(payload).get("error") or payload)
    except (ValueError, AttributeError):
        return payload


@pytest.fixture(scope="module")
def secret(running_app) -> Path:
    """A readable PNG with text in it, next to (not inside) the server's upload folder, and a lookalike that is missing."""
    folder = running_app.cache_dir.parent / "server-secrets"
    folder.mkdir(exist_ok=True)
    picture = Image.new("RGB", (240, 120), "white")
    ImageDraw.Draw(picture).text((20, 50), SECRET_TEXT, fill="black")
    picture.save(folder / "secret.png")
    return folder / "secret.png"


def hostile_payloads(secret: Path, upload_folder: Path) -> dict[str, object]:
    """Case -> a function of the path to name (the existing secret or its missing twin) -> the payload."""
    link_dir = upload_folder / f"attack-{uuid.uuid4().hex}"
    link_dir.mkdir(parents=True)

    def symlink(target: Path) -> dict:
        link = link_dir / f"{target.stem}.png"  # inside the upload folder, pointing out of it
        link.unlink(missing_ok=True)
        os.symlink(target, link)
        return {"path": str(link)}

    dotdot = lambda p: {"path": str(upload_folder / ".." / p.parent.name / p.name)}  # noqa: E731
    return {
        "bare path": lambda p: {"path": str(p)},
        "FileData outside the upload folder": lambda p: {"path": str(p), "meta": {"_type": "gradio.FileData"}},
        "'..' out of the upload folder": dotdot,
        "'..' as FileData": lambda p: {**dotdot(p), "meta": {"_type": "gradio.FileData"}},
        "symlink inside the upload folder": symlink,
        "file:// URL as the path": lambda p: {"path": f"file://{p}"},
        "file:// URL as the url": lambda p: {"path": None, "url": f"file://{p}"},
        "http URL to the server itself": lambda p: {"path": None, "url": f"http://127.0.0.1:9/{p.name}"},
        "https URL": lambda p: {"path": f"https://127.0.0.1:9/{p.name}"},
        "plain string": lambda p: str(p),
    }


def file_endpoints(client: Client) -> dict[str, list[int]]:
    """Endpoint -> indexes of its parameters that take a file or a list of files."""
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    return {
        name: [i for i, p in enumerate(spec["parameters"]) if p["component"] in FILE_COMPONENTS]
        for name, spec in api.items()
        if any(p["component"] in FILE_COMPONENTS for p in spec["parameters"])
    }


def arguments(table: dict, api: str, index: int, value, folder: Path) -> list:
    """The endpoint's valid arguments (tests/test_bad_input.endpoint_table) with `value` where file argument `index` goes."""
    args, _, _ = table[api]
    good = [put(a, None) for a in args]
    if api == "/teach_classes":  # names at even indexes, lists of photos at odd ones
        good = ["cats", [], "dogs", [], "", [], "", [], "", []]
    is_list = isinstance(args[index], list) or api == "/teach_classes"
    good[index] = [value] * (5 if api == "/fit_fabric" else 3) if is_list else value
    return good


@pytest.fixture(scope="module")
def client(running_app):
    return Client(running_app.url, verbose=False)


def test_every_file_endpoint_is_in_the_table(client):
    found = file_endpoints(client)
    assert {
        "/classify_digit",
        "/classify_image",
        "/explain_image",
        "/segment_digits",
        "/detect_defects",
        "/horse_to_zebra",
        "/attack",
    } <= set(found)
    assert set(found) <= set(endpoint_table(client))


@needs_checkpoint("digit-classifier")
def test_no_endpoint_opens_a_server_file_and_refusals_leak_nothing(client, running_app, secret):
    missing = secret.with_name("absent.png")  # as long as secret.png: Gradio's own messages echo a shortened input
    cases = hostile_payloads(secret, running_app.cache_dir)
    leaks, unequal, answered = [], [], []
    table = endpoint_table(client)
    for api, indexes in file_endpoints(client).items():
        for index in indexes:
            for case, payload_for in cases.items():
                outcomes = {}
                for which, path in (("exists", secret), ("missing", missing)):
                    status, payload = call(running_app.url, api, arguments(table, api, index, payload_for(path), secret.parent))
                    if status != "error":
                        answered.append(f"{api} arg {index} {case} ({which}): {status}")
                    if SECRET_TEXT in payload or base64.b64encode(secret.read_bytes()[:48]).decode()[:40] in payload:
                        leaks.append(f"{api} {case}")
                    outcomes[which] = error_message(payload).replace(str(secret), "<path>").replace(str(missing), "<path>")
                    outcomes[which] = outcomes[which].replace(secret.name, "<name>").replace(missing.name, "<name>")
                if outcomes["exists"] != outcomes["missing"]:
                    unequal.append(f"{api} arg {index} {case}: {[m[:300] for m in outcomes.values()]}")
    assert not answered, f"served a file the client never uploaded: {answered}"
    assert not leaks, f"the secret came back: {leaks}"
    assert not unequal, f"a refusal tells whether the path exists: {unequal}"


@needs_checkpoint("digit-classifier")
def test_data_urls_and_real_uploads_still_work(client, running_app, tmp_path):
    seven = draw_digit(7).convert("RGB")
    buffer = io.BytesIO()
    seven.save(buffer, "PNG")
    data_url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    status, payload = call(running_app.url, "/classify_digit", [{"path": None, "url": data_url}])
    assert status == "complete", payload
    assert json.loads(payload)[0]["label"] == "7"
    seven.save(tmp_path / "seven.png")
    label, _, _ = client.predict(handle_file(str(tmp_path / "seven.png")), api_name="/classify_digit")
    assert label["label"] == "7"

"""Bad input against the launched app, table-driven over every endpoint: each case must end in a clear
error or a correct answer, never a server error, and the server must stay healthy and not grow.

A "clear error" is the app's own gr.Error message, or Gradio's own check of the payload (a choice that is
not in a dropdown, a number where a file belongs). The server log tells the two apart from exceptions the
app did not foresee: a traceback that ends in anything else fails the test.
"""

import io
import struct
import time
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from data.pen_digits import draw_digit
from tests.conftest import needs_checkpoint

GENERIC = "has raised an exception"  # Gradio's text for an unforeseen exception when show_error is off
IMAGE = object()  # where an endpoint's picture goes


def png_bytes(im: Image.Image) -> bytes:
    buffer = io.BytesIO()
    im.save(buffer, "PNG")
    return buffer.getvalue()


def bomb_png(side: int = 20_000) -> bytes:
    """A valid PNG header that claims side x side pixels, followed by a few bytes of data: a decoder that
    trusts the header would need 1.2 GB; the app must refuse it from the header alone."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))  # noqa: E731
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b"")


def image_cases(folder: Path) -> dict[str, object]:
    """Case name -> what to send as the picture (a file handle, None, or a value of the wrong type)."""
    digit = draw_digit(7).convert("RGB")
    jpeg = io.BytesIO()
    digit.save(jpeg, "JPEG")
    files = {
        "corrupt_png": b"\x89PNG\r\n\x1a\n and then nothing an image would hold",
        "corrupt_jpeg": jpeg.getvalue()[: len(jpeg.getvalue()) // 3],  # cut short in the middle of the scan
        "one_pixel": png_bytes(Image.new("RGB", (1, 1), (255, 255, 255))),
        "bomb_20000px": bomb_png(),
        "sixteen_bit": png_bytes(Image.fromarray(np.asarray(digit.convert("L"), np.uint16) * 257)),
        "palette": png_bytes(digit.convert("P", palette=Image.Palette.ADAPTIVE, colors=8)),
        "rgba": png_bytes(Image.merge("RGBA", (*digit.split(), Image.new("L", digit.size, 128)))),
        "text_file": b"this is not a picture\n",
    }
    cmyk = io.BytesIO()
    digit.convert("CMYK").save(cmyk, "JPEG")
    files["cmyk_jpeg"] = cmyk.getvalue()
    cases: dict[str, object] = {"nothing": None, "wrong_type": 12345}
    for name, data in files.items():
        suffix = ".txt" if name == "text_file" else (".jpg" if "jpeg" in name else ".png")
        path = folder / f"{name}{suffix}"
        path.write_bytes(data)
        cases[name] = handle_file(str(path))
    return cases


# A few endpoints' defaults are slow (a 500-epoch fit, a 256 px CycleGAN, a PGD attack on a photo); these cheaper valid
# values keep the hundreds of requests quick. Optional: an endpoint not named here is called with its own defaults.
CHEAPER = {
    "/attack": {"model_choice": "digit", "attack_choice": "fgsm", "epsilon": 64},
    "/horse_to_zebra": {"size": 128},
    "/train_playground": {"epochs": 20},
    "/neuron_maps": {"epochs": 20},
    "/generate_digits_diffusion": {"count": 2, "steps": 5},
    "/generate_text": {"words": 5},
}
FILE_LISTS = 5  # pictures in a list of files (fitting needs five)
TEXT_COMPONENTS = {"Textbox", "Dropdown", "Radio"}


def endpoint_table(client: Client) -> dict[str, tuple[list, list[int], list[int]]]:
    """endpoint -> (valid arguments with IMAGE where a picture goes, indexes of numeric arguments, indexes of text arguments),
    read from the app's own API description (view_api): each input's default, or its example when it has none;
    a picture for an image or file, FILE_LISTS of them for a list of files. No hand-kept list: a new endpoint is in it."""
    table = {}
    for api, spec in client.view_api(print_info=False, return_format="dict")["named_endpoints"].items():
        args, numbers, texts = [], [], []
        for index, p in enumerate(spec["parameters"]):
            kind = p["python_type"]["type"]
            if kind == "list[filepath]":
                args.append([IMAGE] * FILE_LISTS)
            elif kind == "filepath" or p["component"] in ("Image", "File"):
                args.append(IMAGE)
            else:
                default = p["parameter_default"] if p["parameter_has_default"] else p["example_input"]
                args.append(CHEAPER.get(api, {}).get(p["parameter_name"], default))
                if kind in ("float", "int"):
                    numbers.append(index)
                elif p["component"] in TEXT_COMPONENTS:
                    texts.append(index)
        table[api] = (args, numbers, texts)
    return table


NUMBER_CASES = {"nan": float("nan"), "negative": -5, "huge": 1e12, "wrong_type": "abc", "nothing": None}
TEXT_CASES = {"empty": "", "100k_characters": "Emma " * 20_000, "wrong_type": 3.5}


def put(arg, picture):
    """The argument with the picture where IMAGE stands (on its own or inside a list of files)."""
    if arg is IMAGE:
        return picture
    return [picture if a is IMAGE else a for a in arg] if isinstance(arg, list) else arg


def requests(folder: Path, table: dict, endpoints: list[str]) -> list[tuple[str, str, list]]:
    """(endpoint, case, arguments) for every endpoint x every case that applies to its inputs."""
    pictures = image_cases(folder)
    draw_digit(7).convert("RGB").save(folder / "good.png")
    good = handle_file(str(folder / "good.png"))
    out = []
    for api in endpoints:
        args, numbers, texts = table[api]
        base = [put(a, good) for a in args]
        out.append((api, "good input", base))
        if any(a is IMAGE or (isinstance(a, list) and IMAGE in a) for a in args):
            for case, value in pictures.items():
                out.append((api, f"image {case}", [put(a, value) for a in args]))
        for index in numbers:
            for case, value in NUMBER_CASES.items():
                out.append((api, f"argument {index} {case}", base[:index] + [value] + base[index + 1 :]))
        for index in texts:
            for case, value in TEXT_CASES.items():
                out.append((api, f"argument {index} {case}", base[:index] + [value] + base[index + 1 :]))
    return out


def outcome(client: Client, api: str, args: list) -> str:
    """ "ok", or the error's message ("UNCLEAR: ..." when it is not one a person can act on)."""
    try:
        client.predict(*args, api_name=api)
        return "ok"
    except Exception as err:  # gradio_client raises AppError for errors the app reports
        message = str(err)
        return message if message.strip() and GENERIC not in message else f"UNCLEAR: {message!r}"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@pytest.fixture(scope="module")
def client(running_app):
    return Client(running_app.url, verbose=False)


@pytest.fixture(scope="module")
def table(client):
    return endpoint_table(client)


def test_the_table_is_the_apps_own_api(table):
    """Every listed endpoint is in the table, with a value for every input; the defaults are the UI's own."""
    assert {"/classify_digit", "/attack", "/generate_text", "/fit_fabric", "/train_playground"} <= set(table)
    args, numbers, texts = table["/attack"]
    assert args[0] is IMAGE and args[1:3] == ["digit", "fgsm"] and numbers[:6] == [3, 4, 5, 7, 8, 9] and 2 in texts
    assert table["/fit_fabric"][0] == [[IMAGE] * FILE_LISTS]
    assert table["/segment_digits"] == ([IMAGE, 0.5, "any digit"], [1], [2])


@needs_checkpoint("digit-classifier")
def test_every_endpoint_every_case_ends_in_a_clear_error_or_an_answer(client, table, running_app, tmp_path):
    log_start = running_app.log_path.stat().st_size
    results = {}
    for api, case, args in requests(tmp_path, table, list(table)):
        results[(api, case)] = outcome(client, api, args)
    unclear = {key: message for key, message in results.items() if message.startswith("UNCLEAR")}
    assert not unclear, f"{len(unclear)} of {len(results)} requests got no clear message: {sorted(unclear)}"
    # Server errors: every traceback the server logged must end in a gr.Error, or in Gradio's own check that
    # a file input got a file (a wrong payload type; ListFiles for a list of files); anything else is an exception the app
    # did not foresee.
    log = running_app.log_path.read_text(errors="replace")[log_start:]
    blocks = log.split("Traceback (most recent call last):")[1:]
    # A traceback's frames are indented; its first unindented line names the exception.
    endings = [next((line for line in block.splitlines() if line and not line[0].isspace()), "?") for block in blocks]
    foreseen = ("gradio.exceptions.Error", "validation error for ImageData", "validation error for FileData", "errors for ListFiles")
    unforeseen = [line for line in endings if not any(mark in line for mark in foreseen)]
    assert not unforeseen, f"the server raised {len(unforeseen)} unforeseen exceptions: {unforeseen[:5]}"
    # Spot checks that the message says what to do, not merely that something failed.
    for api in ("/classify_digit", "/horse_to_zebra", "/attack", "/detect_defects"):
        if (api, "image nothing") in results:
            assert "Nothing was uploaded" in results[(api, "image nothing")]
            assert "6000 x 6000" in results[(api, "image bomb_20000px")]
            assert "at least 8 px" in results[(api, "image one_pixel")]
            assert "not an image we can read" in results[(api, "image corrupt_png")]
    for api in ("/classify_digit", "/segment_digits"):
        for case in ("image sixteen_bit", "image palette", "image rgba", "image cmyk_jpeg"):
            assert results[(api, case)] == "ok", (api, case, results[(api, case)])
    assert results[("/classify_digit", "good input")] == "ok"
    if ("/fit_fabric", "image corrupt_png") in results:  # a list of files: a None is refused by Gradio's own payload check
        assert "not an image we can read" in results[("/fit_fabric", "image corrupt_png")]
        assert "6000 x 6000" in results[("/fit_fabric", "image bomb_20000px")]
    assert running_app.process.poll() is None, "the server died"
    with urllib.request.urlopen(running_app.url + "gradio_api/info", timeout=10) as response:
        assert response.status == 200


@needs_checkpoint("digit-classifier")
def test_memory_does_not_grow_across_200_bad_requests(client, table, running_app, tmp_path):
    cases = [
        (api, args)
        for api, case, args in requests(tmp_path, table, ["/classify_digit", "/segment_digits", "/generate_digits"])
        if case != "good input"
    ]
    for api, args in cases:  # warm-up: first use loads models and fills caches
        outcome(client, api, args)
    before = rss_mb(running_app.process.pid)
    start = time.perf_counter()
    for k in range(200):
        assert not outcome(client, *cases[k % len(cases)]).startswith("UNCLEAR")
    after = rss_mb(running_app.process.pid)
    assert after - before < 50, f"RSS grew from {before:.0f} to {after:.0f} MB over 200 bad requests ({time.perf_counter() - start:.0f} s)"
    assert running_app.process.poll() is None


@needs_checkpoint("digit-classifier")
def test_every_named_endpoint_answers_a_valid_request(client, table, running_app, tmp_path):
    """Each endpoint the API lists, called once with a valid request, answers (in CI from the Space's own install,
    tests/conftest.APP_PYTHON). The taught-head endpoints come after teaching, in the same session, as a person uses them
    (loading gets the head this session downloads); fitting gets five flawless swatches of cloth."""
    from PIL import Image as PILImage

    from data import fabric

    listed = list(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    photos = [handle_file(str(Path(__file__).resolve().parent.parent / "examples" / "photos" / f"{n}.jpg")) for n in ("chelsea", "coffee")]
    draw_digit(7).convert("RGB").save(tmp_path / "seven.png")
    swatches = []
    for seed in range(5):
        PILImage.fromarray((fabric.normal_swatch(40_000_200 + seed) * 255).round().astype(np.uint8)).save(tmp_path / f"cloth_{seed}.png")
        swatches.append(handle_file(str(tmp_path / f"cloth_{seed}.png")))
    special = {
        "/teach_classes": ["cats", [photos[0]] * 3, "coffee", [photos[1]] * 3, "", [], "", [], "", []],
        "/fit_fabric": [swatches],
    }
    order = ["/teach_classes"] + [api for api in listed if api != "/teach_classes"]
    answers = {}
    for api in order:
        args = special.get(api) or [put(a, handle_file(str(tmp_path / "seven.png"))) for a in table[api][0]]
        if api == "/load_head":  # a head file: the one this session was just taught, downloaded
            args = [handle_file(client.predict(api_name="/download_head"))]
        answers[api] = outcome(client, api, args)
    failed = {api: message for api, message in answers.items() if message != "ok"}
    assert not failed, failed
    assert set(answers) == set(listed)

"""A person's visit, in headless Chromium: every tab opens, a drawn digit gets its prediction.

Uses Debian's chromium through Playwright's `executable_path`; no browser is ever downloaded.
"""

import os
import re
import shutil
import time
from pathlib import Path

import pytest

from data.pen_digits import draw_digit
from tests.conftest import needs_checkpoint

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")
PAGE_ERRORS: list[str] = []  # uncaught errors of the page's JavaScript, for the whole module
SCREENSHOTS = Path(os.environ.get("MODEL_SHOW_SCREENSHOTS", "")) if os.environ.get("MODEL_SHOW_SCREENSHOTS") else None


@pytest.fixture(scope="module")
def page(running_app):
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "Debian chromium is missing: apt-get install chromium (.ci/run does this)"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                # A fake camera (Chromium's moving test picture), allowed without asking: the webcam tests record from it.
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
            ],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        page.on("pageerror", lambda error: PAGE_ERRORS.append(str(error)[:300]))
        # Not "networkidle": Gradio keeps a heartbeat stream open for session state.
        page.goto(running_app.url, wait_until="load")
        page.get_by_role("tab", name="Digits").wait_for()
        yield page
        browser.close()


def type_into(textarea, text: str) -> None:
    """Fill a Gradio textbox so that the next click sends the new text.

    A tab's components mount when the tab is first opened; text typed before the textbox holds its initial
    value can be overwritten by it (CI once drew the default '7' for the prompt 'a 2'). So wait for the mount,
    type, leave the box, and check the browser kept the text.
    """
    from playwright.sync_api import expect

    expect(textarea).not_to_have_value("", timeout=10000)
    textarea.fill(text)
    textarea.blur()
    expect(textarea).to_have_value(text)


def no_error_toast(page) -> None:
    errors = page.locator(".toast-body.error, [data-testid='toast-body'].error")
    assert errors.count() == 0, errors.first.inner_text()


def test_every_tab_opens(page):
    import apps

    for module in apps.TABS:
        page.get_by_role("tab", name=module.TITLE).click()
        page.wait_for_timeout(300)
        if SCREENSHOTS:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / f"tab-{module.__name__.split('.')[-1]}.png"), full_page=True)
    no_error_toast(page)
    # Opened after the others, the last tab still shows its controls (a page-load event that blanked a Label once
    # broke the whole Text tab this way), and the page's scripts raised nothing.
    page.locator("#text-prompt textarea").wait_for(timeout=10000)
    assert PAGE_ERRORS == []


def test_drawing_a_seven_shows_seven(page):
    page.get_by_role("tab", name="Digits").click()
    canvas = page.locator("#digit-sketchpad canvas").first
    canvas.wait_for(state="visible")
    box = canvas.bounding_box()
    x0, y0, w, h = box["x"], box["y"], box["width"], box["height"]
    # A 7: a bar across the top, then a long stroke down to the lower left.
    points = [(0.3, 0.25), (0.7, 0.25), (0.45, 0.8)]
    page.mouse.move(x0 + points[0][0] * w, y0 + points[0][1] * h)
    page.mouse.down()
    for (ax, ay), (bx, by) in zip(points, points[1:], strict=False):
        for t in [i / 12 for i in range(1, 13)]:
            page.mouse.move(x0 + (ax + (bx - ax) * t) * w, y0 + (ay + (by - ay) * t) * h)
    page.mouse.up()
    label = page.locator("#digit-label")
    label.get_by_text("7", exact=True).first.wait_for(timeout=20000)
    assert label.locator("h2, .output-class").first.inner_text().strip() == "7"
    # Inside the network: the filters, the first layer's maps and all three blocks; a click on map 2's middle
    # shows the 3x3 arithmetic behind that pixel.
    from apps import digits

    page.locator("#digit-filters img").wait_for(timeout=20000)
    page.locator("#digit-blocks img").nth(2).wait_for(timeout=20000)
    maps = page.locator("#digit-first-maps img")
    maps.wait_for(timeout=20000)
    maps.scroll_into_view_if_needed()
    scale = maps.bounding_box()["width"] / page.evaluate("() => document.querySelector('#digit-first-maps img').naturalWidth")
    step = (28 + digits.MAP_GAP) * digits.FIRST_LAYER_SCALE
    x, y = step + 14 * digits.FIRST_LAYER_SCALE + 1, 14 * digits.FIRST_LAYER_SCALE + 1
    maps.click(position={"x": x * scale, "y": y * scale})
    arithmetic = page.locator("#digit-arithmetic")
    arithmetic.get_by_text("Map 2, row 15, column 15").wait_for(timeout=20000)
    assert "Batch norm" in arithmetic.inner_text() and "ReLU" in arithmetic.inner_text()
    page.locator("#digit-window img").wait_for(timeout=20000)
    no_error_toast(page)
    if SCREENSHOTS:
        page.screenshot(path=str(SCREENSHOTS / "digits-inside.png"), full_page=True)


def test_uploading_a_digit_shows_its_prediction(page, tmp_path):
    page.get_by_role("tab", name="Digits").click()
    page.locator("#digit-sketchpad").locator("..").page.get_by_role("tab", name="Upload").click()
    path = tmp_path / "four.png"
    draw_digit(4).save(path)
    page.locator("#digit-upload input[type=file]").set_input_files(str(path))
    page.locator("#digit-label").get_by_text("4", exact=True).first.wait_for(timeout=20000)
    no_error_toast(page)
    if SCREENSHOTS:
        page.screenshot(path=str(SCREENSHOTS / "digits-upload.png"), full_page=True)


def test_playing_a_preset_updates_the_plot_and_shows_accuracy(page):
    page.get_by_role("tab", name="Neurons").click()
    stats = page.locator("#neurons-stats")
    stats.get_by_text("Epoch 0 /").wait_for(timeout=20000)  # the first frame, drawn on page load
    first_picture = page.locator("#neurons-boundary img").get_attribute("src")
    page.locator("#neurons-preset-2").click()  # "MLP: curved"
    page.wait_for_function("() => /Epoch ([1-9][0-9]*) \\/ 500/.test(document.querySelector('#neurons-stats').innerText)", timeout=20000)
    assert page.locator("#neurons-boundary img").get_attribute("src") != first_picture
    page.wait_for_function("() => /Epoch 500 \\/ 500/.test(document.querySelector('#neurons-stats').innerText)", timeout=60000)
    text = stats.inner_text()
    assert "test accuracy" in text and "train accuracy" in text
    assert "layout=curved" in page.url and "hidden_layers=2" in page.url  # the settings live in the address
    # Every neuron's map is on the page; clicking the first hidden layer's first map names it and its weights.
    maps = page.locator("#neurons-maps img")
    maps.wait_for(timeout=20000)
    box = maps.bounding_box()
    natural = page.evaluate("() => { const i = document.querySelector('#neurons-maps img'); return [i.naturalWidth, i.naturalHeight]; }")
    scale = box["width"] / natural[0]
    from apps import neurons

    layout = neurons.maps_layout(neurons.new_run(neurons.PRESETS["MLP: curved"][0]))
    x, y = layout.corner(1, 0)
    maps.click(position={"x": (x + layout.cell / 2) * scale, "y": (y + layout.cell / 2) * scale})
    page.locator("#neurons-neuron").get_by_text("Layer 1, neuron 1").wait_for(timeout=20000)
    details = page.locator("#neurons-neuron").inner_text()
    assert "speed" in details and "bias" in details  # its incoming weights, named by input
    no_error_toast(page)
    if SCREENSHOTS:
        page.screenshot(path=str(SCREENSHOTS / "neurons-mlp-curved.png"), full_page=True)


def test_a_shared_address_restores_the_settings(running_app, page):
    page.goto(
        running_app.url + "?tab=neurons&layout=separable&model=perceptron&talk_weights=true&epochs=20&learning_rate=0.01", wait_until="load"
    )
    stats = page.locator("#neurons-stats")
    stats.get_by_text("Single neuron").wait_for(timeout=20000)
    assert "+1.00·speed +1.00·size -1.00·10" in stats.inner_text()
    assert "Epoch 0 / 20" in stats.inner_text()
    no_error_toast(page)


def test_classify_a_sample_photo_and_see_where_it_looked(page):
    page.get_by_role("tab", name="Classify").click()
    page.locator("#classify-photo input[type=file]").set_input_files(
        str(Path(__file__).resolve().parent.parent / "examples" / "photos" / "coffee.jpg")
    )
    page.locator("#classify-top5").get_by_text("espresso").first.wait_for(timeout=30000)
    page.locator("#classify-cam img").wait_for(timeout=30000)
    no_error_toast(page)
    if SCREENSHOTS:
        page.screenshot(path=str(SCREENSHOTS / "classify-coffee.png"), full_page=True)


def start_webcam(page, selector: str) -> None:
    """Open a streaming gr.Image's webcam (the fake camera) and press its Record button."""
    camera = page.locator(selector)
    camera.scroll_into_view_if_needed()
    camera.get_by_text("Click to Access Webcam").click()
    camera.locator("button", has_text="Record").click(timeout=30000)


def stop_webcam(page, selector: str) -> None:
    page.locator(selector).locator("button", has_text="Stop").click()


def shown_count(page, selector: str) -> int:
    text = page.locator(selector).inner_text()
    found = re.search(r"(\d+) of 60", text)
    return int(found.group(1)) if found else 0


def test_teach_two_classes_from_the_webcam_watch_it_live_and_reload_the_head_in_a_new_session(running_app, page, tmp_path):
    """Teachable Machine's loop with Chromium's fake camera: record two classes, teach, watch the live prediction update,
    open the confusion matrix, download the head, load it in a new session, and get the same answer there."""
    # Its own browser context, closed at the end: an open camera keeps Chromium drawing its video, which would slow the
    # tests after this one on the same two cores.
    first = page.context.browser.new_context(viewport={"width": 1280, "height": 1100})
    try:
        webcam_round_trip(running_app, first.new_page(), page.context.browser, tmp_path)
    finally:
        first.close()


def webcam_round_trip(running_app, page, browser, tmp_path) -> None:
    import urllib.request

    page.goto(running_app.url, wait_until="load")
    page.get_by_role("tab", name="Classify").click()
    page.locator("#teach button.label-wrap").first.click()
    for k, name in enumerate(("still", "moving")):
        type_name = page.locator(f"#teach-name-{k} textarea, #teach-name-{k} input").first
        type_name.fill(name)
        start_webcam(page, f"#teach-cam-{k}")
        page.wait_for_function(
            f"() => /(\\d+) of 60/.test(document.querySelector('#teach-count-{k}').innerText) && "
            f"+document.querySelector('#teach-count-{k}').innerText.match(/(\\d+) of 60/)[1] >= 8",
            timeout=60000,
        )
        stop_webcam(page, f"#teach-cam-{k}")
        wait_idle(page)
        assert shown_count(page, f"#teach-count-{k}") >= 8
    page.get_by_role("button", name="Teach", exact=True).click()
    page.locator("#teach-report").get_by_text("Learned").wait_for(timeout=60000)
    # Live: the fake camera's picture moves, and every frame that comes back is counted in the caption.
    start_webcam(page, "#live-cam")
    captions = set()
    deadline = time.monotonic() + 60
    while len(captions) < 4 and time.monotonic() < deadline:
        text = page.locator("#live-caption").inner_text()
        if "frames classified" in text:
            captions.add(text)
        page.wait_for_timeout(250)
    assert len(captions) >= 4, f"the live prediction did not keep updating: {captions}"
    label = page.locator("#taught-label").inner_text()
    assert "still" in label or "moving" in label
    stop_webcam(page, "#live-cam")
    if SCREENSHOTS:
        page.screenshot(path=str(SCREENSHOTS / "classify-webcam.png"), full_page=True)
    # Under the hood: the held-out confusion matrix.
    page.locator("#under-the-hood button.label-wrap").first.click()
    page.locator("#teach-confusion img").wait_for(timeout=30000)
    assert "weights learned" in page.locator("#teach-hood").inner_text()
    # One answer in this session, the head downloaded ...
    photo = str(EXAMPLES / "photos" / "coffee.jpg")
    page.locator("#taught-photo input[type=file]").set_input_files(photo)
    wait_idle(page)
    page.wait_for_timeout(500)
    answer = page.locator("#taught-label").inner_text()
    page.get_by_role("button", name="Download my head (.safetensors)").click()
    link = page.locator("a[href*='taught_head']").first
    link.wait_for(state="attached", timeout=30000)
    href = link.get_attribute("href")
    head = tmp_path / "downloaded_head.safetensors"
    with urllib.request.urlopen(href if href.startswith("http") else running_app.url.rstrip("/") + href, timeout=30) as r:
        head.write_bytes(r.read())
    # ... and loaded in a new session (a new browser context: nothing of the first session's state), same answer.
    other = browser.new_context(viewport={"width": 1280, "height": 1100}).new_page()
    other.goto(running_app.url, wait_until="load")
    other.get_by_role("tab", name="Classify").click()
    other.locator("#teach button.label-wrap").first.click()
    other.locator("#head-upload input[type=file]").set_input_files(str(head))
    wait_idle(other)
    other.get_by_role("button", name="Load this head").click()
    other.locator("#teach-report").get_by_text("Loaded a head").wait_for(timeout=30000)
    other.locator("#taught-photo input[type=file]").set_input_files(photo)
    wait_idle(other)
    other.wait_for_timeout(500)
    assert other.locator("#taught-label").inner_text() == answer
    no_error_toast(page)
    no_error_toast(other)
    other.context.close()


def test_digit_gan_draws_and_replays_its_training(page):
    page.get_by_role("tab", name="Digit GAN").click()
    page.locator("#gan-frame img").wait_for(timeout=20000)  # the training history's last snapshot
    page.locator("#gan-draw").click()
    page.locator("#gan-grid img").wait_for(timeout=20000)
    # The critic judges the grid and real test digits beside it, then a drawn 7.
    page.locator("#gan-critic-fake img").wait_for(timeout=20000)
    page.locator("#gan-critic-real img").wait_for(timeout=20000)
    assert "generated, mean" in page.locator("#gan-critic-note").inner_text()
    draw(page, "#gan-sketch", [(0.3, 0.25), (0.7, 0.25), (0.45, 0.8)])
    page.locator("#gan-ask-critic").click()
    page.locator("#gan-critic-sentence").get_by_text("P(real) =").wait_for(timeout=20000)
    assert "real test 7s" in page.locator("#gan-critic-sentence").inner_text()
    no_error_toast(page)
    if SCREENSHOTS:
        page.screenshot(path=str(SCREENSHOTS / "digit-gan.png"), full_page=True)


def set_slider(page, selector: str, value) -> None:
    """Type a value into a Gradio slider's number box and leave it, as a person does."""
    box = page.locator(f"{selector} input[type=number]").first
    box.fill(str(value))
    box.press("Enter")
    box.blur()


def test_digit_diffusion_unfolds_step_by_step_beside_the_gan(page):
    """The grid and its caption change while the U-Net works (one update per step), then the finished drawing stays."""
    page.get_by_role("tab", name="Digit diffusion").click()
    page.get_by_role("tab", name="Draw from noise").click()
    type_into(page.locator("#diffusion-prompt textarea"), "a 2")
    set_slider(page, "#diffusion-steps", 40)  # enough steps to watch: a few seconds of work
    page.locator("#diffusion-draw").click()
    seen_steps = set()
    deadline = time.time() + 90
    while time.time() < deadline:
        text = page.locator("#diffusion-info").inner_text()
        seen_steps |= {int(n) for n in re.findall(r"step (\d+) of 40", text)}
        if "of model time" in text:
            break
        page.wait_for_timeout(50)
    assert len(seen_steps) >= 3, f"the page showed steps {sorted(seen_steps)} of 40 while drawing"
    page.locator("#diffusion-gif img").wait_for(timeout=30000)
    page.get_by_text("one pass through its generator").wait_for(timeout=30000)
    info = page.locator("#diffusion-info").inner_text()
    assert "'2'" in info and "40" in info
    no_error_toast(page)
    if SCREENSHOTS:
        page.screenshot(path=str(SCREENSHOTS / "digit-diffusion.png"), full_page=True)
    set_slider(page, "#diffusion-steps", 8)  # leave the tab's default cost for the tests after this one


def test_the_forward_process_view_noises_a_digit_and_shows_the_models_guess(page):
    page.get_by_role("tab", name="Digit diffusion").click()
    page.get_by_role("tab", name="Noise a digit (forward process)").click()
    # The slider's number box takes the value on Enter or blur; once in a while (full suite, busy machine) the click
    # went out with the old t. The run then says "t = 500": set it and run again, at most three times.
    for _ in range(3):
        set_slider(page, "#forward-t", 0)
        page.wait_for_timeout(300)
        page.locator("#forward-run").click()
        try:
            page.locator("#forward-info").get_by_text("no noise at all").wait_for(timeout=20000)
            break
        except Exception:
            continue
    page.locator("#forward-info").get_by_text("no noise at all").wait_for(timeout=10000)
    set_slider(page, "#forward-t", 650)
    page.locator("#forward-run").click()
    page.locator("#forward-info").get_by_text("t = 650").wait_for(timeout=30000)
    assert "signal-to-noise ratio" in page.locator("#forward-info").inner_text()
    page.locator("#forward-guess img").wait_for(timeout=10000)
    no_error_toast(page)
    if SCREENSHOTS:
        page.screenshot(path=str(SCREENSHOTS / "diffusion-forward.png"), full_page=True)


def test_sdedit_redraws_a_rough_three_towards_the_prompt(page):
    page.get_by_role("tab", name="Digit diffusion").click()
    page.get_by_role("tab", name="Start from your drawing (SDEdit)").click()
    type_into(page.locator("#sdedit-prompt textarea"), "three")
    page.locator("#sdedit-run").click()
    page.locator("#sdedit-info").get_by_text("reads the results as").wait_for(timeout=60000)
    assert "denoised it towards '3'" in page.locator("#sdedit-info").inner_text()
    page.locator("#sdedit-result img").wait_for(timeout=10000)
    no_error_toast(page)
    if SCREENSHOTS:
        page.screenshot(path=str(SCREENSHOTS / "diffusion-sdedit.png"), full_page=True)


def test_an_fgsm_attack_changes_the_digit_models_answer(page):
    page.get_by_role("tab", name="Attack").click()
    page.locator("#attack-model").get_by_text("Digit classifier (standard training)").click()
    page.locator("#attack-kind").get_by_text("FGSM", exact=False).click()
    page.locator("#attack-picture input[type=file]").set_input_files(
        str(Path(__file__).resolve().parent.parent / "examples" / "digits" / "mnist_test_7.png")
    )
    page.wait_for_timeout(500)
    page.locator("#attack-run").click()
    page.locator("#attack-report").get_by_text("Fooled").first.wait_for(timeout=30000)
    before = page.locator("#attack-before h2, #attack-before .output-class").first.inner_text().strip()
    after = page.locator("#attack-after h2, #attack-after .output-class").first.inner_text().strip()
    assert before == "7" and after != "7"
    no_error_toast(page)
    if SCREENSHOTS:
        page.screenshot(path=str(SCREENSHOTS / "attack-fgsm.png"), full_page=True)


def test_a_defence_in_front_of_the_model_falls_to_the_adaptive_attack(page):
    """JPEG in front of the digit model, the attack made through it (BPDA): the report says so, and it is fooled."""
    page.get_by_role("tab", name="Attack").click()
    page.locator("#attack-model").get_by_text("Digit classifier (standard training)").click()
    page.locator("#attack-kind").get_by_text("PGD", exact=False).first.click()
    page.locator("#attack-picture input[type=file]").set_input_files(
        str(Path(__file__).resolve().parent.parent / "examples" / "digits" / "mnist_test_7.png")
    )
    page.get_by_text("Defence: does saving it as a JPEG undo the attack?").click()
    page.locator("#attack-defence").get_by_text("JPEG re-save", exact=False).click()
    page.locator("#attack-adaptive input[type=checkbox]").check()
    page.wait_for_timeout(500)
    page.locator("#attack-run").click()
    page.locator("#attack-report").get_by_text("BPDA", exact=False).first.wait_for(timeout=60000)
    report = page.locator("#attack-report").inner_text()
    assert "Fooled" in report and "JPEG re-save" in report and "made through the defence" in report
    no_error_toast(page)
    if SCREENSHOTS:
        page.screenshot(path=str(SCREENSHOTS / "attack-defence.png"), full_page=True)


@needs_checkpoint("digit-segmenter")
def test_drawing_two_digits_gives_two_coloured_regions(page):
    page.get_by_role("tab", name="Segment").click()
    canvas = page.locator("#segment-sketchpad canvas").first
    canvas.wait_for(state="visible")
    box = canvas.bounding_box()
    x0, y0, w, h = box["x"], box["y"], box["width"], box["height"]

    def stroke(points):
        page.mouse.move(x0 + points[0][0] * w, y0 + points[0][1] * h)
        page.mouse.down()
        for (ax, ay), (bx, by) in zip(points, points[1:], strict=False):
            for t in [i / 12 for i in range(1, 13)]:
                page.mouse.move(x0 + (ax + (bx - ax) * t) * w, y0 + (ay + (by - ay) * t) * h)
        page.mouse.up()

    # A 7 on the left (not at the very edge: the editor's tool strip sits there and swallows the stroke), then a 1.
    stroke([(0.22, 0.3), (0.46, 0.3), (0.3, 0.8)])
    page.wait_for_timeout(500)
    stroke([(0.75, 0.2), (0.75, 0.82)])
    summary = page.locator("#segment-summary")
    summary.get_by_text("Found").wait_for(timeout=30000)
    # The second stroke's run replaces the first one's; on a busy machine that can take several seconds.
    both = "() => { const t = document.querySelector('#segment-summary').innerText; return /[ ,]7 \\(/.test(t) && /[ ,]1 \\(/.test(t); }"
    try:
        page.wait_for_function(both, timeout=30000)
    except Exception:
        pass  # the assertion below says what was found instead
    text = summary.inner_text()
    found = re.findall(r"(?:Found |, )(\d) \(", text)  # "Found 7 (1,234 px), 1 (567 px)."
    assert {"7", "1"} <= set(found), text
    assert "It reads: 7 1" in text  # in reading order, left to right
    page.locator("#segment-digits img").first.wait_for(timeout=20000)  # the instance view: a box per digit
    assert "#1: 7" in page.locator("#segment-digits").inner_text()
    no_error_toast(page)
    if SCREENSHOTS:
        page.screenshot(path=str(SCREENSHOTS / "segment-drawing.png"), full_page=True)


@needs_checkpoint("word-lstm")
def test_text_tab_writes_on_from_the_prompt(page):
    page.get_by_role("tab", name="Text").click()
    prompt = page.locator("#text-prompt textarea")
    type_into(prompt, "Emma could not")
    page.locator("#text-write").click()
    output = page.locator("#text-output textarea")
    page.wait_for_function(
        "() => { const t = document.querySelector('#text-output textarea'); return t && t.value.split(/\\s+/).length > 30; }", timeout=30000
    )
    assert output.input_value().startswith("Emma could not")
    page.locator("#text-next").get_by_text("%").first.wait_for(timeout=30000)  # the next-word chart is drawn (slow machines: 24 s)
    page.locator("#text-drawn").get_by_text("%").first.wait_for(timeout=30000)  # beside it, what a draw picks from
    # Every word is coloured by surprise, with a legend in bits.
    words = page.locator("#text-surprise .token")
    assert words.count() > 30 and "bits" in page.locator("#text-surprise").inner_text()
    assert "Mean surprise of what it wrote" in page.locator("#text-note").inner_text()
    # Moving top-k to 3 redraws the drawn-from chart: three words, no writing needed.
    set_slider(page, "#text-top-k", 3)
    page.locator("#text-note").get_by_text("picks from 3 of").wait_for(timeout=30000)
    assert page.locator("#text-drawn").inner_text().count("%") == 3  # the other words have no chance at all
    # Clicking the third word ("not") shows where each of the GPT's heads looked while reading it.
    words.nth(2).click()
    attention = page.locator("#text-attention")
    attention.get_by_text("layer 4, head 4").wait_for(timeout=30000)
    assert "While reading not" in attention.inner_text()
    no_error_toast(page)
    if SCREENSHOTS:
        page.screenshot(path=str(SCREENSHOTS / "text.png"), full_page=True)


@needs_checkpoint("horse2zebra")
def test_a_held_out_horse_is_translated_and_judged(page):
    page.get_by_role("tab", name="Horse to zebra").click()
    page.locator("#h2z-random").click()
    summary = page.locator("#h2z-summary")
    summary.get_by_text("The judge").wait_for(timeout=60000)
    assert "Round trip" in summary.inner_text() and "gentle note" not in summary.inner_text()
    page.locator("#h2z-slider img").first.wait_for(timeout=10000)
    no_error_toast(page)
    if SCREENSHOTS:
        page.screenshot(path=str(SCREENSHOTS / "horse2zebra.png"), full_page=True)


@needs_checkpoint("fabric-autoencoder")
@needs_checkpoint("fabric-features")
def test_a_random_fabric_swatch_is_inspected(page):
    page.get_by_role("tab", name="Fabric defects").click()
    page.locator("#fabric-random").click()
    verdict = page.locator("#fabric-verdict")
    verdict.get_by_text("Image score").wait_for(timeout=60000)
    assert "linen (plain weave)" in verdict.inner_text()
    no_error_toast(page)
    if SCREENSHOTS:
        page.screenshot(path=str(SCREENSHOTS / "fabric.png"), full_page=True)


# --- Every button of every tab ------------------------------------------------------------------------------------

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PHOTOS = [str(EXAMPLES / "photos" / f"{name}.jpg") for name in ("chelsea", "astronaut", "rocket", "coffee", "china", "flower")]


# Each tab's link: (query, the selector to read, what it must show once the page has opened on it).
LINKS = [
    ("tab=neurons&layout=xor&hidden_layers=1&neurons=3", "#neurons-stats", "3 tanh neurons"),
    ("tab=digits&picture=mnist_test_7.png", "#digit-label", "97%"),
    ("tab=classify&picture=chelsea.jpg&explain=281%3A%20tabby%20cat", "#classify-top5", "Egyptian Mau"),
    ("tab=segment&picture=test_scene_12.png&confidence=0.7", "#segment-summary", "70% confidence"),
    ("tab=fabric&picture=linen_hole_40000010.png&detector=features&threshold=9.5", "#fabric-verdict", "threshold 9.5"),
    ("tab=digit_gan&digit=3&seed=5&count=16", "#gan-critic-note", "16 real test 3s"),
    ("tab=digit_diffusion&prompt=three&count=4&steps=10&seed=3&sampler=DDIM", "#diffusion-prompt textarea", "three"),
    ("tab=horse2zebra&picture=horse_3000001.png&direction=horse%20%E2%86%92%20zebra&size=128", "#h2z-input img", None),
    ("tab=attack&picture=mnist_test_7.png&model=digit&attack=fgsm&epsilon=60&target=3", "#attack-eps input[type=number]", "60"),
    ("tab=text&model=GPT%20(small%20transformer)&prompt=Emma%20smiled&seed=4&words=12&top_k=7", "#text-note", "top-k 7"),
]


def shown(page, selector: str) -> str:
    element = page.locator(selector).first
    return element.input_value() if selector.endswith(("textarea", "input[type=number]")) else element.inner_text()


def test_a_link_to_each_tab_opens_it_with_its_settings_and_a_bad_link_leaves_a_usable_tab_and_a_note(running_app, page):
    try:
        for query, selector, expected in LINKS:
            page.goto(f"{running_app.url}?{query}", wait_until="load")
            page.locator(selector).first.wait_for(timeout=30000)
            if expected is not None:
                page.wait_for_function(
                    "([selector, expected]) => { const e = document.querySelector(selector);"
                    " return e && ((e.value !== undefined ? e.value : e.innerText) || '').includes(expected); }",
                    arg=[selector, expected],
                    timeout=30000,
                )
            assert (
                page.locator("button[role=tab][aria-selected=true]").first.inner_text().strip() != ""
                and f"tab={query.split('&')[0][4:]}" in page.url
            )
            no_error_toast(page)
        # A bad link: the bad values are named in a note, the good ones are used, and the tab works.
        page.goto(f"{running_app.url}?tab=text&temperature=banana&prompt=Emma&bogus=1", wait_until="load")
        page.locator(".toast-body").get_by_text("could not be used").first.wait_for(timeout=30000)
        note = page.locator(".toast-body").first.inner_text()
        assert "temperature" in note and "bogus" in note
        page.wait_for_function("() => (document.querySelector('#text-output textarea') || {}).value?.startsWith('Emma ')", timeout=30000)
        page.locator("#text-write").click()
        page.locator("#text-attention").wait_for(timeout=30000)
        no_error_toast(page)
        # "Copy link" writes the tab's current settings into the address.
        page.goto(running_app.url, wait_until="load")
        page.get_by_role("tab", name="Digit GAN").click()
        page.locator("#digit_gan-copy-link").click()
        page.wait_for_function("() => window.location.search.includes('tab=digit_gan')", timeout=10000)
        assert "seed=0" in page.url and "count=64" in page.url
    finally:
        page.goto(running_app.url, wait_until="load")
        page.get_by_role("tab", name="Digits").wait_for()


def app_buttons(url: str) -> list[tuple[tuple[str, ...], str]]:
    """Every visible button of the launched app, as (tab path, label), read from its own /config."""
    import json
    import urllib.request

    with urllib.request.urlopen(url + "config", timeout=30) as response:
        config = json.load(response)
    components = {c["id"]: c for c in config["components"]}
    found = []

    def walk(node, tabs):
        component = components.get(node["id"], {})
        if component.get("type") == "tabitem":
            tabs = (*tabs, component["props"]["label"])
        if component.get("type") == "button" and component["props"].get("visible", True) is not False:
            found.append((tabs, component["props"]["value"]))
        for child in node.get("children", []):
            walk(child, tabs)

    walk(config["layout"], ())
    return found


def wait_idle(page, timeout: int = 90000) -> None:
    """Until every event the click set off has finished: each visible output's status tracker is hidden again (Gradio
    shows one over every output while its event waits or runs) or shows an error (the caller checks for those)."""
    page.wait_for_timeout(500)
    page.wait_for_function(
        "() => ![...document.querySelectorAll('[data-testid=status-tracker]')]"
        ".some(e => !e.classList.contains('hide') && e.offsetParent && !/Error/.test(e.innerText))",
        timeout=timeout,
        polling=200,
    )


def open_accordions(page) -> None:
    """Open every closed accordion of the visible tab (Gradio renders an accordion's contents only once opened)."""
    closed = page.locator(".tabitem:visible button.label-wrap:not(.open)").filter(visible=True)
    for _ in range(20):  # the locator is live: each opened one drops out of it
        if closed.count() == 0:
            return
        closed.first.click()
        page.wait_for_timeout(300)


def draw(page, canvas_selector: str, points: list[tuple[float, float]]) -> None:
    canvas = page.locator(f"{canvas_selector} canvas").first
    canvas.wait_for(state="visible")
    canvas.scroll_into_view_if_needed()  # the mouse only draws on what is on screen
    page.wait_for_timeout(300)
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + points[0][0] * box["width"], box["y"] + points[0][1] * box["height"])
    page.mouse.down()
    for (ax, ay), (bx, by) in zip(points, points[1:], strict=False):
        for t in [i / 10 for i in range(1, 11)]:
            page.mouse.move(box["x"] + (ax + (bx - ax) * t) * box["width"], box["y"] + (ay + (by - ay) * t) * box["height"])
    page.mouse.up()


def flawless_fabric(folder: Path, count: int = 5) -> list[str]:
    from PIL import Image

    from data import fabric

    paths = []
    for seed in range(count):
        path = folder / f"flawless_{seed}.png"
        Image.fromarray((fabric.normal_swatch(40_000_100 + seed) * 255).round().astype("uint8")).save(path)
        paths.append(str(path))
    return paths


def taught_head_file() -> bytes:
    import torch

    from models.taught_head import FEATURES, TaughtHead, head_bytes

    head = TaughtHead(["mugs", "plants"], torch.randn(2, FEATURES), torch.zeros(2), 0.9, 6, 2)
    return head_bytes(head, "imagenet-classifier", 224)


def recipes(folder: Path) -> dict[tuple[str, str], object]:
    """(top tab, button label) -> what a person does just before pressing it (None: nothing), in the order pressed.
    A label ending in * stands for every label that starts with the rest (the curve's button names its digit count)."""
    seven = str(EXAMPLES / "digits" / "mnist_test_7.png")
    head = folder / "a_head.safetensors"  # a head file of the kind the Classify tab saves, to load back
    head.write_bytes(taught_head_file())
    return {
        ("Neurons", "Perceptron: separable"): None,
        ("Neurons", "Perceptron: curved (underfits)"): None,
        ("Neurons", "MLP: curved"): None,
        ("Neurons", "Overfitting: huge MLP, few samples"): None,
        ("Neurons", "Rescued by dropout"): None,
        ("Neurons", "Perceptron + speed², size²: curved"): None,
        ("Neurons", "XOR: two neurons or speed·size"): None,
        ("Neurons", "Rings: mini-batches"): None,
        ("Neurons", "▶ Play"): None,
        ("Neurons", "Pause"): None,
        ("Neurons", "Step"): None,
        ("Neurons", "Reset"): None,
        ("Digits", "Classify"): lambda p: p.locator("#digit-upload input[type=file]").set_input_files(seven),
        ("Classify", "Classify"): lambda p: p.locator("#classify-photo input[type=file]").set_input_files(PHOTOS[3]),
        ("Classify", "Where did it look?"): None,
        ("Classify", "Teach"): lambda p: [
            p.locator("#teach-name-0 textarea, #teach-name-0 input").first.fill("animals and spaceflight"),
            p.locator("#teach-images-0 input[type=file]").set_input_files(PHOTOS[:3]),
            p.locator("#teach-name-1 textarea, #teach-name-1 input").first.fill("cups and scenery"),
            p.locator("#teach-images-1 input[type=file]").set_input_files(PHOTOS[3:]),
            p.wait_for_timeout(1500),
        ],
        ("Classify", "Classify with my classes"): lambda p: p.locator("#taught-photo input[type=file]").set_input_files(PHOTOS[0]),
        ("Classify", "Download my head (.safetensors)"): None,
        ("Classify", "Load this head"): lambda p: [
            p.locator("#head-upload input[type=file]").set_input_files(str(head)),
            p.wait_for_timeout(1000),
        ],
        ("Segment", "Random test scene"): None,
        ("Segment", "Segment"): None,
        ("Fabric defects", "Random swatch with a defect"): None,
        ("Fabric defects", "Find defects"): None,
        ("Fabric defects", "Fit"): lambda p: [
            p.locator("#fabric-fit-files input[type=file]").set_input_files(flawless_fabric(folder)),
            p.wait_for_timeout(1500),
        ],
        ("Fabric defects", "Forget my fit"): None,
        ("Digit GAN", "Draw"): None,
        ("Digit GAN", "Ask the critic"): lambda p: draw(p, "#gan-sketch", [(0.3, 0.25), (0.7, 0.25), (0.45, 0.8)]),
        ("Digit GAN", "Morph"): None,
        ("Digit GAN", "Make a GIF of the whole history"): None,
        ("Digit diffusion", "Draw"): None,
        ("Digit diffusion", "Use this test digit"): None,
        ("Digit diffusion", "Use this drawing"): lambda p: draw(
            p,
            "#forward-sketchpad" if p.locator("#forward-sketchpad").is_visible() else "#sdedit-sketchpad",
            [(0.3, 0.25), (0.7, 0.25), (0.45, 0.8)],
        ),
        ("Digit diffusion", "Add noise"): None,
        ("Digit diffusion", "Redraw it"): None,
        ("Horse to zebra", "Random held-out animal"): None,
        ("Horse to zebra", "Translate"): None,
        ("Attack", "Random test digit"): None,
        ("Attack", "Attack"): None,
        ("Attack", "Use this drawing"): lambda p: draw(p, "#attack-sketchpad", [(0.3, 0.25), (0.7, 0.25), (0.45, 0.8)]),
        ("Attack", "Recompute live*"): None,
        ("Text", "Write"): None,
        ("Text", "What comes next?"): None,
        ("Text", "Show it on the text above"): None,
    }


# Buttons that start a stream of frames (a preset plays its training from the first epoch): the test moves on after a
# moment instead of watching hundreds of epochs, so the next press lands while the stream still runs, as a person's does.
PLAYING = ("Perceptron: separable", "Perceptron: curved (underfits)", "MLP: curved", "Overfitting: huge MLP, few samples")
NEW_PRESETS = ("Perceptron + speed², size²: curved", "XOR: two neurons or speed·size", "Rings: mini-batches")
STREAMS = {("Neurons", name) for name in (*PLAYING, "Rescued by dropout", *NEW_PRESETS, "▶ Play")}


def recipe_key(tabs: tuple[str, ...], label: str, known) -> tuple[str, str] | None:
    for tab, name in known:
        if tab == tabs[0] and (label == name or (name.endswith("*") and label.startswith(name[:-1]))):
            return tab, name
    return None


def test_every_button_of_every_tab_works(page, running_app, tmp_path):
    """Press every visible button the app has (read from its /config, so a new tab's buttons are pressed too), after
    doing what a person would do first (tests/test_browser.recipes, for the buttons that need something first, in the
    order a person presses them; any other button is pressed as it stands, after those); no error toast may appear and
    the server may log no exception."""
    # A fresh visit: earlier tests leave a tab, a shared address (?tab=neurons&...) and half-played streams behind.
    page.goto(running_app.url, wait_until="load")
    page.get_by_role("tab", name="Digits").wait_for()
    page.wait_for_timeout(1000)
    log_start = running_app.log_path.stat().st_size
    steps = recipes(tmp_path)
    buttons = app_buttons(running_app.url)
    for tabs, label in buttons:
        if recipe_key(tabs, label, steps) is None:
            steps[(tabs[0], label)] = None
    pressed = []
    for tab, start in steps:
        matches = [(tabs, label) for tabs, label in buttons if recipe_key(tabs, label, [(tab, start)])]
        assert matches, f"the recipe names a button the app no longer has: {tab}: {start}"
        for tabs, label in matches:
            began = time.perf_counter()
            for name in tabs:  # open the tab (and the inner tab) unless it is open already
                tab_button = page.get_by_role("tab", name=name, exact=True).filter(visible=True).first
                if tab_button.get_attribute("aria-selected") != "true":
                    tab_button.click(no_wait_after=True)
                    page.wait_for_timeout(300)
            open_accordions(page)
            try:
                if steps[(tab, start)] is not None:
                    steps[(tab, start)](page)
                    wait_idle(page)
                # no_wait_after: a press starts events, not a navigation; wait_idle below waits for the events.
                page.locator(".tabitem:visible").get_by_role("button", name=label, exact=True).filter(visible=True).first.click(
                    no_wait_after=True
                )
                if (tab, start) in STREAMS:
                    page.wait_for_timeout(1500)
                else:
                    wait_idle(page)
                errors = page.locator(".toast-body.error, [data-testid='toast-body'].error")
                if errors.count():
                    raise AssertionError(f"an error toast: {errors.first.inner_text()}")
            except Exception as err:
                page.screenshot(path=str(tmp_path / "failed.png"), full_page=True)
                busy = page.evaluate(
                    "() => [...document.querySelectorAll('[data-testid=status-tracker]')]"
                    ".filter(e => !e.classList.contains('hide') && e.offsetParent).map(e => (e.closest('[id]') || {}).id)"
                )
                raise AssertionError(f"{' / '.join(tabs)}: {label}: {err} (still busy: {busy}; {tmp_path / 'failed.png'})") from None
            pressed.append(f"{' / '.join(tabs)}: {label} ({time.perf_counter() - began:.1f} s)")
    assert len(pressed) == len(buttons)
    print("\n".join(pressed))  # what each press cost, shown with pytest -s
    log = running_app.log_path.read_text(errors="replace")[log_start:]
    assert "Traceback" not in log, log[log.index("Traceback") :][:3000]

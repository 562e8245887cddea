"""The launched app, called the way programs call it: through gradio_client."""

import threading
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from data.pen_digits import draw_digit
from tests.conftest import needs_checkpoint


@pytest.fixture(scope="module")
def client(running_app):
    return Client(running_app.url, verbose=False)


def test_app_is_ready_in_under_15_seconds(running_app):
    assert running_app.startup_s < 15, f"python app.py took {running_app.startup_s:.1f} s to answer"


def test_classify_digit_endpoint_is_listed(client):
    assert "/classify_digit" in client.view_api(print_info=False, return_format="dict")["named_endpoints"]


def test_classify_a_drawn_seven(client, tmp_path):
    path = tmp_path / "seven.png"
    draw_digit(7).save(path)
    label, seen, activations = client.predict(handle_file(str(path)), api_name="/classify_digit")
    assert label["label"] == "7"
    top = label["confidences"][0]
    assert top["label"] == "7" and top["confidence"] > 0.5
    assert seen and activations  # image outputs come back as file paths


def test_bad_requests_get_clear_messages_and_the_app_keeps_serving(client, tmp_path):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n but then garbage")
    with pytest.raises(Exception, match="not an image we can read"):
        client.predict(handle_file(str(corrupt)), api_name="/classify_digit")
    with pytest.raises(Exception, match="Nothing was uploaded"):
        client.predict(None, api_name="/classify_digit")
    good = tmp_path / "four.png"
    draw_digit(4).save(good)
    label, _, _ = client.predict(handle_file(str(good)), api_name="/classify_digit")
    assert label["label"] == "4"


PLAYGROUND = dict(
    layout="curved", n_samples=200, noise=0.3, train_fraction=0.5, seed=3, model="mlp", hidden_layers=2, neurons=8,
    activation="tanh", learning_rate=0.1, dropout=0.1, l2=0.0, talk_weights=False, epochs=100,
)  # fmt: skip


def test_neuron_maps_show_every_neuron_of_the_trained_network(client):
    maps, about = client.predict(layout="xor", hidden_layers=1, neurons=2, epochs=300, api_name="/neuron_maps")
    assert Image.open(maps).size[0] > 400
    assert [len(row["neurons"]) for row in about["rows"]] == [2, 2, 1] and "bias" in about["rows"][2]["neurons"][0]


def test_train_playground_is_deterministic_for_a_seed(client):
    first, image_a = client.predict(**PLAYGROUND, api_name="/train_playground")
    second, image_b = client.predict(**PLAYGROUND, api_name="/train_playground")
    assert first == second
    assert open(image_a, "rb").read() == open(image_b, "rb").read()
    assert first["epochs"] == 100 and 0.6 < first["test_accuracy"] <= 1.0  # learning, not finished
    assert len(first["history"]["test_loss"]) == len(first["history"]["epoch"]) == 11


@pytest.mark.parametrize(
    "change, message",
    [({"n_samples": 0}, "Number of animals"), ({"hidden_layers": 100}, "Hidden layers"), ({"learning_rate": 1e9}, "Learning rate")],
)
def test_train_playground_out_of_range_settings_get_a_clear_message(client, change, message):
    with pytest.raises(Exception, match=message):
        client.predict(**{**PLAYGROUND, **change}, api_name="/train_playground")


EXAMPLE_PHOTOS = Path(__file__).resolve().parent.parent / "examples" / "photos"


def test_classify_and_explain_a_photo(client):
    label = client.predict(handle_file(str(EXAMPLE_PHOTOS / "coffee.jpg")), api_name="/classify_image")
    assert label["label"] == "espresso" and len(label["confidences"]) == 5
    overlay, caption = client.predict(handle_file(str(EXAMPLE_PHOTOS / "chelsea.jpg")), api_name="/explain_image")
    assert Path(overlay).is_file() and "Where the network looked" in caption


def crops_of(photo: str, n: int, folder: Path, seed: int) -> list:
    rng = np.random.default_rng(seed)
    rgb = np.asarray(Image.open(EXAMPLE_PHOTOS / photo).convert("RGB"))
    h, w = rgb.shape[:2]
    files = []
    for k in range(n):
        side = int(rng.integers(min(h, w) // 2, min(h, w)))
        top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        path = folder / f"{Path(photo).stem}-{seed}-{k}.jpg"
        Image.fromarray(rgb[top : top + side, left : left + side]).save(path)
        files.append(handle_file(str(path)))
    return files


def test_two_sessions_each_keep_their_own_classes(running_app, tmp_path):
    """Two visitors teach at the same time; each gets back only the labels they taught."""
    plans = {
        "alice": [("espresso", "coffee.jpg"), ("launch", "rocket.jpg")],
        "bob": [("kitty", "chelsea.jpg"), ("blossom", "flower.jpg"), ("temple", "china.jpg")],
    }
    results: dict[str, tuple] = {}

    def visit(who: str) -> None:
        session = Client(running_app.url, verbose=False)  # a new client is a new session
        slots: list = []
        for k, (name, photo) in enumerate(plans[who]):
            slots += [name, crops_of(photo, 4, tmp_path, seed=k + 10 * len(who))]
        slots += [None, None] * (5 - len(plans[who]))
        report = session.predict(*slots, api_name="/teach_classes")
        answer = session.predict(handle_file(str(EXAMPLE_PHOTOS / plans[who][0][1])), api_name="/classify_taught")
        results[who] = (report, answer)

    threads = [threading.Thread(target=visit, args=(who,)) for who in plans]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for who, plan in plans.items():
        report, answer = results[who]
        own = {name for name, _ in plan}
        assert {c["label"] for c in answer["confidences"]} == own, who
        assert answer["label"] == plan[0][0], who
        assert all(name in report for name in own)


def test_a_downloaded_head_loads_into_a_new_session_and_answers_the_same(running_app, tmp_path):
    teacher = Client(running_app.url, verbose=False)
    slots = ["espresso", crops_of("coffee.jpg", 4, tmp_path, seed=1), "kitty", crops_of("chelsea.jpg", 4, tmp_path, seed=2)]
    teacher.predict(*slots, *[None] * 6, api_name="/teach_classes")
    photo = handle_file(str(EXAMPLE_PHOTOS / "chelsea.jpg"))
    before = teacher.predict(photo, api_name="/classify_taught")
    head = teacher.predict(api_name="/download_head")
    later = Client(running_app.url, verbose=False)  # a new session, which never taught anything
    report = later.predict(handle_file(head), api_name="/load_head")
    after = later.predict(photo, api_name="/classify_taught")
    assert "2 classes" in report and after["label"] == before["label"] == "kitty"
    assert {c["label"]: c["confidence"] for c in after["confidences"]} == pytest.approx(
        {c["label"]: c["confidence"] for c in before["confidences"]}, abs=1e-6
    )
    _, caption = later.predict(photo, "yours: espresso", api_name="/explain_image")
    assert "your class **espresso**" in caption
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a head at all")
    with pytest.raises(Exception, match="keeps the head it had"):
        later.predict(handle_file(str(junk)), api_name="/load_head")
    assert later.predict(photo, api_name="/classify_taught")["label"] == "kitty"  # the refused file changed nothing


def test_classify_taught_in_a_fresh_session_asks_to_teach_first(running_app):
    with pytest.raises(Exception, match="Teach it some classes first"):
        Client(running_app.url, verbose=False).predict(handle_file(str(EXAMPLE_PHOTOS / "coffee.jpg")), api_name="/classify_taught")


def test_generate_digits_is_repeatable_through_the_api(client):
    first = client.predict("5", 11, 32, api_name="/generate_digits")
    second = client.predict("5", 11, 32, api_name="/generate_digits")
    assert open(first, "rb").read() == open(second, "rb").read()
    strip, gif = client.predict("1", 0, "7", 3, 8, api_name="/interpolate_digits")
    assert Path(strip).is_file() and Path(gif).suffix == ".gif"


@pytest.mark.parametrize("digit, count, message", [("any", -3, "Number of digits"), ("any", 1000, "Number of digits"), ("10", 8, "Digit")])
def test_generate_digits_rejects_bad_requests_clearly(client, digit, count, message):
    with pytest.raises(Exception, match=message):
        client.predict(digit, 0, count, api_name="/generate_digits")


def test_attack_fools_the_digit_model_and_reports_transfer(client):
    digit = str(EXAMPLE_PHOTOS.parent / "digits" / "mnist_test_7.png")
    original, adversarial, change, before, after, report, transfer, png = client.predict(
        handle_file(digit), "digit", "fgsm", 76.5, 10, 1, "none", 100, 60, 0, api_name="/attack"
    )
    assert before["label"] == "7" and after["label"] != "7"
    assert report.startswith("### Fooled") and "robust model" in transfer
    assert Path(png).suffix == ".png" and Path(adversarial).is_file()


def test_attack_rejects_bad_requests_clearly_and_keeps_serving(client):
    with pytest.raises(Exception, match="Nothing was uploaded"):
        client.predict(None, "digit", "fgsm", 76.5, 10, 1, "none", 100, 60, 0, api_name="/attack")
    with pytest.raises(Exception, match="not one of this model's classes"):
        client.predict(
            handle_file(str(EXAMPLE_PHOTOS / "coffee.jpg")), "photo", "pgd", 4, 10, 1, "toothbrush", 40, 20, 0, api_name="/attack"
        )
    *_, after, report, transfer, png = client.predict(
        handle_file(str(EXAMPLE_PHOTOS / "coffee.jpg")), "photo", "pgd", 4, 10, 1, "9: ostrich", 40, 20, 0, api_name="/attack"
    )
    assert after["label"] == "ostrich"


@needs_checkpoint("digit-segmenter")
def test_segment_two_drawn_digits_through_the_api(client, tmp_path):
    canvas = Image.new("L", (600, 300), 255)
    canvas.paste(draw_digit(7), (0, 0))
    canvas.paste(draw_digit(4), (300, 0))
    path = tmp_path / "two.png"
    canvas.save(path)
    overlay, prob_map, text, boxes = client.predict(handle_file(str(path)), 0.5, "any digit", api_name="/segment_digits")
    assert "It reads:" in text and len(boxes["annotations"]) >= 2
    labels = {a["label"] for a in overlay["annotations"]}
    assert {"7", "4"} <= labels
    assert Path(prob_map).is_file() and "**7**" in text and "**4**" in text
    with pytest.raises(Exception, match="Confidence threshold"):
        client.predict(handle_file(str(path)), 5, "any digit", api_name="/segment_digits")


@needs_checkpoint("fabric-autoencoder")
@needs_checkpoint("fabric-features")
def test_fabric_detect_and_fit_through_the_api(client, tmp_path):
    from data import fabric

    fabric_examples = EXAMPLE_PHOTOS.parent / "fabric"
    reconstruction, heat, outlined, verdict = client.predict(
        handle_file(str(fabric_examples / "linen_hole_40000010.png")), "autoencoder", 0, "linen (plain weave)", api_name="/detect_defects"
    )
    assert verdict.startswith("### Defect found") and "linen" in verdict
    assert all(Path(x).is_file() for x in (reconstruction, heat, outlined))
    *_, verdict = client.predict(
        handle_file(str(fabric_examples / "satin_flawless_40000003.png")), "features", 0, "rose satin", api_name="/detect_defects"
    )
    assert verdict.startswith("### Looks flawless")
    with pytest.raises(Exception, match="Unknown product"):
        client.predict(
            handle_file(str(fabric_examples / "satin_flawless_40000003.png")), "features", 0, "tweed", api_name="/detect_defects"
        )
    # Fitting to your own cloth through the API: a report comes back (the fitted detectors stay in the server-side session).
    paths = []
    for k in range(5):
        path = tmp_path / f"own_{k}.png"
        Image.fromarray((fabric.normal_swatch(50_000_000 + k, 2) * 255).round().astype(np.uint8)).save(path)
        paths.append(handle_file(str(path)))
    report = client.predict(paths, api_name="/fit_fabric")
    assert "Fitted to **5 photos**" in str(report)


@needs_checkpoint("word-lstm")
@needs_checkpoint("word-gpt")
def test_generate_text_streams_word_by_word_and_repeats_for_a_seed(client):
    args = ["GPT (small transformer)", "Mr. Darcy", 0.9, 40, 0.95, 20, 7]
    job = client.submit(*args, api_name="/generate_text")
    updates = [text for text, *_ in job]  # every streamed update, the prompt first
    assert len(updates) >= 5 and updates[0] == "Mr. Darcy"
    assert all(b.startswith(a) for a, b in zip(updates, updates[1:], strict=False))
    final, surprise, chart, drawn, note = client.predict(*args, api_name="/generate_text")
    assert final == updates[-1] and len(chart["confidences"]) == 10
    assert "".join(span["token"] for span in surprise).lstrip() == final  # every word read or written, coloured
    raw_top = {c["label"]: c["confidence"] for c in chart["confidences"]}
    drawn_top = {c["label"]: c["confidence"] for c in drawn["confidences"]}
    assert all(drawn_top[w] > raw_top[w] for w in drawn_top if w in raw_top)  # temperature 0.9 and the cut sharpen it
    *_, note = client.predict("LSTM (recurrent network)", "", 0.9, 40, 0.95, 10_000, 7, api_name="/generate_text")
    assert "paragraph boundary" in note and "the limit is" in note
    chart, drawn, note = client.predict("LSTM (recurrent network)", "She was", 1.0, 3, 1.0, api_name="/next_words")
    assert len(chart["confidences"]) == 10 and len(drawn["confidences"]) == 3 and "picks from **3**" in note
    assert abs(sum(c["confidence"] for c in drawn["confidences"]) - 1) < 1e-4  # top-k 3: all of it, renormalised
    table, numbers = client.predict("It is a truth universally acknowledged", 4, api_name="/attention")
    assert numbers["word"] == "truth" and "layer 4, head 4" in table
    with pytest.raises(Exception, match="Temperature"):
        client.predict("LSTM (recurrent network)", "Emma", 7, 40, 0.95, 10, 0, api_name="/generate_text")


@needs_checkpoint("digit-diffusion", weights="diffusion_pytorch_model.safetensors")
def test_diffusion_streams_at_least_one_update_per_step(client):
    job = client.submit("eight", 2, 7, 1.5, 77, "UniPC", api_name="/generate_digits_diffusion")
    final = job.result(timeout=120)
    updates = job.outputs()
    assert len(updates) >= 7 + 1, f"{len(updates)} updates for 7 steps"
    assert all("step" in update[3] for update in updates[:7]) and "7 UniPC steps" in final[3]
    assert Path(final[1]).suffix == ".gif" and updates[-1][0] == final[0]


@needs_checkpoint("digit-diffusion", weights="diffusion_pytorch_model.safetensors")
def test_noise_a_digit_and_redraw_a_drawing_through_the_api(client):
    seven = handle_file(str(EXAMPLE_PHOTOS.parent / "digits" / "mnist_test_7.png"))
    noisy, predicted, guess, true_noise, summary = client.predict(seven, 0, 0, api_name="/noise_digit")
    assert np.array_equal(np.asarray(Image.open(noisy)), np.asarray(Image.open(guess))) and "no noise at all" in summary
    *_, summary = client.predict(seven, 600, 0, api_name="/noise_digit")
    assert "t = 600" in summary and "signal-to-noise ratio" in summary
    drawing = handle_file(str(EXAMPLE_PHOTOS.parent / "digits" / "drawn_3_rough.png"))
    redrawn, seen, summary = client.predict(drawing, "three", 0, 2, api_name="/denoise_drawing")
    tile = np.asarray(Image.open(seen))
    assert np.array_equal(np.asarray(Image.open(redrawn))[:, : tile.shape[1]], tile) and "unchanged" in summary
    with pytest.raises(Exception, match="Strength"):
        client.predict(drawing, "three", 3, 2, api_name="/denoise_drawing")


@needs_checkpoint("digit-diffusion", weights="diffusion_pytorch_model.safetensors")
def test_generate_digits_diffusion_round_trip_repeats_for_a_seed(client):
    grid, gif, path, timing = client.predict("a 3", 4, 10, 3.0, 5, "DDIM", api_name="/generate_digits_diffusion")
    again = client.predict("three", 4, 10, 3.0, 5, "DDIM", api_name="/generate_digits_diffusion")[0]
    assert np.array_equal(np.asarray(Image.open(grid)), np.asarray(Image.open(again)))
    assert Path(gif).suffix == ".gif" and Image.open(gif).n_frames >= 11  # pure noise + one frame per step
    assert "10 DDIM steps" in timing and "'3'" in timing
    with pytest.raises(Exception, match="only knows the digits"):
        client.predict("a unicorn", 4, 10, 3.0, 5, "DDIM", api_name="/generate_digits_diffusion")
    with pytest.raises(Exception, match="Denoising steps"):
        client.predict("3", 4, 1000, 3.0, 5, "DDIM", api_name="/generate_digits_diffusion")


def test_teach_classes_parameters_have_real_names(client):
    spec = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/teach_classes"]
    names = [p["parameter_name"] for p in spec["parameters"]]
    assert names == [f"{kind}_{k}" for k in range(1, 6) for kind in ("name", "images")] + ["epochs", "learning_rate", "batch_size"]


def test_examples_added_through_the_api_teach_and_the_live_stream_classifies_frames(running_app, tmp_path):
    """/add_examples fills a class (a refusal leaves it as it was), /teach_classes learns from what was added, and the
    live webcam stream, driven as a browser drives it, answers every frame in the taught classes."""
    from benchmarks.http_user import stream_event, stream_frames
    from benchmarks.run import webcam_frames
    from data.photos import sample_photos

    session = Client(running_app.url, verbose=False)
    counts = session.predict(1, crops_of("chelsea.jpg", 4, tmp_path, seed=3), api_name="/add_examples")
    assert counts[0].startswith("**4** of 60") and counts[1].startswith("**0**")
    with pytest.raises(Exception, match="holds up to 60"):
        session.predict(1, [handle_file(str(EXAMPLE_PHOTOS / "chelsea.jpg"))] * 57, api_name="/add_examples")
    counts = session.predict(2, crops_of("coffee.jpg", 4, tmp_path, seed=4), api_name="/add_examples")
    assert counts[0].startswith("**4** of 60") and counts[1].startswith("**4** of 60")
    report = session.predict(name_1="kitty", name_2="espresso", api_name="/teach_classes")
    assert "from 6 images" in report  # 8 examples, 2 held out
    frames = webcam_frames(sample_photos()["chelsea"], 6, seed=1)
    live = stream_frames(running_app.url, session.session_hash, stream_event(running_app.url, "live-cam"), frames, after=[None, None])
    assert len(live) == 6 and all(out["data"][0]["label"] == "kitty" for out in live)
    assert "**6** frames classified" in live[-1]["data"][1]
    cleared = session.predict(1, api_name="/clear_examples")
    assert cleared[0].startswith("**0**") and cleared[1].startswith("**4**")

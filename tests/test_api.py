"""The launched app, called the way programs call it: through gradio_client."""

import pytest
from gradio_client import Client, handle_file

from tests.conftest import draw_digit


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

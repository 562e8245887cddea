"""The Neurons playground through its pure functions: the presets do what their names promise."""

import dataclasses

import gradio as gr
import numpy as np
import pytest

from apps import neurons
from apps.neurons import PRESETS, PlaygroundSettings, new_run, settings_from_query, train_epochs, train_playground


def run_preset(name: str) -> dict:
    s, _ = PRESETS[name]
    result, image = train_playground(**dataclasses.asdict(s))
    assert image.ndim == 3 and image.shape[2] == 3
    return result


@pytest.fixture(scope="module")
def preset_results() -> dict[str, dict]:
    return {name: run_preset(name) for name in PRESETS}


def test_perceptron_solves_the_separable_case(preset_results):
    assert preset_results["Perceptron: separable"]["test_accuracy"] >= 0.97


def test_perceptron_underfits_the_curved_case(preset_results):
    assert preset_results["Perceptron: curved (underfits)"]["test_accuracy"] <= 0.80


def test_mlp_solves_the_curved_case(preset_results):
    assert preset_results["MLP: curved"]["test_accuracy"] >= 0.95


def test_huge_mlp_overfits_few_samples(preset_results):
    r = preset_results["Overfitting: huge MLP, few samples"]
    assert r["train_accuracy"] == 1.0
    assert r["test_accuracy"] <= r["train_accuracy"] - 0.10
    # The picture of overfitting: test loss ends far above its lowest point while train loss keeps falling.
    test_loss = r["history"]["test_loss"]
    assert test_loss[-1] > 1.5 * min(test_loss) and r["history"]["train_loss"][-1] < 0.05


def test_dropout_rescues_the_overfitting_mlp(preset_results):
    over = preset_results["Overfitting: huge MLP, few samples"]["test_accuracy"]
    assert preset_results["Rescued by dropout"]["test_accuracy"] >= over + 0.05


def test_same_seed_same_result_and_different_seed_different_data():
    s = dataclasses.asdict(PlaygroundSettings(layout="curved", hidden_layers=2, neurons=8, dropout=0.2, epochs=60, seed=3))
    a, img_a = train_playground(**s)
    b, img_b = train_playground(**s)
    assert a == b and np.array_equal(img_a, img_b)
    c, _ = train_playground(**{**s, "seed": 4})
    assert c["history"] != a["history"]


def test_live_frames_and_api_agree():
    """Play trains in the same chunks as the API, so the last frame shows the API's numbers."""
    s = PlaygroundSettings(layout="overlapping", epochs=40, seed=2)
    run = new_run(s)
    while run.epoch < s.epochs:
        train_epochs(run, neurons.MLP_EPOCHS_PER_FRAME)
    api, _ = train_playground(**dataclasses.asdict(s))
    assert run.history[-1]["test_accuracy"] == api["test_accuracy"] and run.epoch == api["epochs"] == 40


def test_training_never_runs_past_the_epoch_budget():
    run = new_run(PlaygroundSettings(epochs=15))
    for _ in range(5):
        train_epochs(run, 10)
    assert run.epoch == 15


@pytest.mark.parametrize(
    "change, message",
    [
        ({"n_samples": 0}, "Number of animals"),
        ({"hidden_layers": 100}, "Hidden layers"),
        ({"learning_rate": 1e9}, "Learning rate"),
        ({"neurons": 0}, "Neurons per layer"),
        ({"noise": float("nan")}, "Noise"),
        ({"epochs": -5}, "Epochs"),
        ({"dropout": 1.0}, "Dropout"),
        ({"layout": "spiral"}, "Data layout"),
        ({"activation": "softmax"}, "Activation"),
        ({"seed": 1.5}, "Seed"),
        ({"batch_size": -1}, "Mini-batch size"),
        ({"l1": 2.0}, "L1 strength"),
        ({"speed_squared": "yes"}, "speed_squared"),
    ],
)
def test_out_of_range_settings_get_a_clear_message(change, message):
    with pytest.raises(gr.Error, match=message):
        train_playground(**{**dataclasses.asdict(PlaygroundSettings()), **change})


def test_diverging_learning_rate_is_reported_not_crashed():
    run = new_run(PlaygroundSettings(layout="curved", hidden_layers=3, neurons=16, activation="relu", learning_rate=10.0, epochs=50))
    train_epochs(run, 50)
    boundary, curves, network, maps, stats = neurons.frame(run)
    assert boundary.shape[2] == curves.shape[2] == network.shape[2] == maps.shape[2] == 3
    assert "Epoch 50" in stats


def test_talk_weights_start_with_the_talks_rule():
    run = new_run(PlaygroundSettings(layout="separable", model="perceptron", talk_weights=True, epochs=1))
    assert run.model.weight.tolist() == [1.0, 1.0, -1.0]
    assert run.history[0]["test_accuracy"] >= 0.97  # speed + size > 10 already separates the clusters
    assert "+1.00·speed +1.00·size -1.00·10" in neurons.stats_markdown(run)


def test_url_query_restores_settings():
    wanted = PlaygroundSettings(
        layout="few samples",
        n_samples=300,
        noise=0.9,
        model="mlp",
        hidden_layers=4,
        neurons=32,
        activation="relu",
        dropout=0.3,
        talk_weights=True,
        epochs=1500,
        batch_size=25,
        l1=0.002,
        speed_squared=True,
        sin_size=True,
    )
    # what the page's JavaScript writes: String(value) for each setting
    query = {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in dataclasses.asdict(wanted).items()}
    assert settings_from_query({"tab": "neurons", **query}) == wanted
    assert settings_from_query({"tab": "digits"}) is None
    assert settings_from_query({"hidden_layers": "100"}) is None  # out of range: ignore the link, keep defaults


def test_frame_pictures_have_stable_sizes():
    for model in ("perceptron", "mlp"):
        run = new_run(PlaygroundSettings(model=model, epochs=5))
        boundary, curves, network, maps, stats = neurons.frame(run)
        assert boundary.shape == (420, 420, 3) and curves.shape == (200, 412, 3) and network.shape == (260, 412, 3)
        assert maps.shape == (neurons.maps_layout(run).height, neurons.MAPS_WIDTH, 3)
        assert "Epoch 0 / 5" in stats


def python_loop_seconds() -> float:
    """Seconds for a fixed 3M-step pure-Python loop: how fast this machine is right now."""
    import time

    start, total = time.perf_counter(), 0
    for i in range(3_000_000):
        total += i
    return time.perf_counter() - start


REFERENCE_LOOP_S = 0.55  # the loop on the 2-core machines the project is measured on, at their usual speed


def test_live_training_keeps_at_least_ten_frames_a_second():
    """A 4 x 32 MLP on 500 animals: 10 gradient steps, four pictures (the 130 neuron maps included), PNG-encoded as the app encodes them, in under
    100 ms on a machine of the reference speed. The shared machines this runs on slow down by up to 2.5x for minutes
    at a time, so the bar stretches by how much slower than the reference a Python loop runs right beside the frames
    (never tightens); the median of 15 frames is taken up to three times and the best counts."""
    import time

    from gradio import processing_utils

    import app

    encoder = gr.Image(format="png")
    run = new_run(PlaygroundSettings(layout="curved", n_samples=500, hidden_layers=4, neurons=32, activation="relu", epochs=5000))
    neurons.frame(run)
    tries = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(processing_utils, "save_pil_to_cache", app.save_pil_to_cache_atomically)  # as app.build_demo sets it
        for _ in range(3):
            slowdown = max(1.0, python_loop_seconds() / REFERENCE_LOOP_S)
            times = []
            for _ in range(15):
                start = time.perf_counter()
                train_epochs(run, neurons.MLP_EPOCHS_PER_FRAME)
                for picture in neurons.frame(run)[:4]:
                    encoder.postprocess(picture)
                times.append(time.perf_counter() - start)
            slowdown = max(slowdown, python_loop_seconds() / REFERENCE_LOOP_S)
            tries.append((float(np.median(times)), slowdown))
            if tries[-1][0] <= 0.1 * slowdown:
                break
    assert any(frame <= 0.1 * slowdown for frame, slowdown in tries), f"(median seconds a frame, machine slowdown) per try: {tries}"


def test_two_streams_on_one_run_never_train_at_once_and_the_newest_owns_it():
    """A preset's Play starting while Play still streams the same run (the browser test found autograd refusing
    weights changed under it): both streams run in threads, nothing raises, and the older one ends."""
    import threading

    s = PlaygroundSettings(layout="curved", hidden_layers=3, neurons=32, epochs=400, seed=1)
    values = list(dataclasses.asdict(s).values())
    run = new_run(s)
    frames, errors = {"old": 0, "new": 0}, []

    def consume(name, stream):
        try:
            for *_, state in stream:
                frames[name] += 1
                assert state is run
        except Exception as err:  # noqa: BLE001 (reported below)
            errors.append(repr(err))

    old = neurons.play_frames(run, *values)
    next(old)  # the old stream has started and owns the run
    first = threading.Thread(target=consume, args=("old", old))
    first.start()
    second = threading.Thread(target=consume, args=("new", neurons.play_frames(run, *values)))
    second.start()
    first.join(60)
    second.join(60)
    assert not errors, errors
    assert run.epoch == s.epochs and frames["new"] > frames["old"] >= 0


def test_neuron_maps_of_a_hand_set_network_match_hand_computation():
    """One hidden layer of two tanh neurons on speed, size and speed·size, weights set by hand: every map value is
    the hand-computed activation, and the picture colours each pixel from it."""
    import math

    import torch

    s = PlaygroundSettings(model="mlp", hidden_layers=1, neurons=2, activation="tanh", speed_times_size=True, epochs=1)
    run = new_run(s)
    first, out = run.model.layers
    with torch.no_grad():
        first.weight.copy_(torch.tensor([[1.0, -2.0, 0.5], [0.3, 0.2, -1.0]]))
        first.bias.copy_(torch.tensor([0.1, -0.2]))
        out.weight.copy_(torch.tensor([[2.0, -1.0]]))
        out.bias.copy_(torch.tensor([0.5]))

    def by_hand(speed, size):
        u, v = (speed - 5) / 5, (size - 5) / 5
        inputs = [u, v, u * v]
        h1 = math.tanh(1.0 * u - 2.0 * v + 0.5 * u * v + 0.1)
        h2 = math.tanh(0.3 * u + 0.2 * v - 1.0 * u * v - 0.2)
        return inputs, [h1, h2], 1 / (1 + math.exp(-(2.0 * h1 - 1.0 * h2 + 0.5)))

    layout = neurons.maps_layout(run)
    points = neurons.map_points(layout.cell)
    maps = neurons.mlp.neuron_maps(run.model, points)
    assert [m.shape for m in maps] == [(layout.cell**2, 3), (layout.cell**2, 2), (layout.cell**2, 1)]
    picture = neurons.render_neuron_maps(run)
    for index in (0, 7, layout.cell**2 // 2 + 3, layout.cell**2 - 1):
        speed, size = points[index].tolist()
        inputs, hidden, p = by_hand(speed, size)
        assert maps[0][index].tolist() == pytest.approx(inputs, abs=1e-6)
        assert maps[1][index].tolist() == pytest.approx(hidden, abs=1e-6)
        assert float(maps[2][index, 0]) == pytest.approx(p, abs=1e-6)
        # The pixel of hidden neuron 2's map at this point has the colour of its hand-computed value on tanh's -1..1.
        x, y = layout.corner(1, 1)
        row, column = divmod(index, layout.cell)
        expected = neurons.map_colours(np.array([[hidden[1]]]), np.array([-1.0]), np.array([1.0])).astype(np.uint8)[0, 0]
        assert np.abs(picture[y + row, x + column].astype(int) - expected.astype(int)).max() <= 1


def test_clicking_a_neuron_map_names_it_and_its_incoming_weights():
    run = new_run(PlaygroundSettings(model="mlp", hidden_layers=2, neurons=5, epochs=1))
    layout = neurons.maps_layout(run)
    assert layout.sizes == (2, 5, 5, 1)
    for row, column in [(0, 1), (1, 4), (2, 0), (3, 0)]:
        x, y = layout.corner(row, column)
        assert layout.neuron_at(x + layout.cell - 1, y + 1) == (row, column)
    x, y = layout.corner(1, 0)
    assert layout.neuron_at(x + layout.cell + 1, y) is None  # the gap between two maps
    weight = float(run.model.layers[1].weight[2, 4])
    details = neurons.neuron_details(run, 2, 2)
    assert details.startswith("**Layer 2, neuron 3,**") and f"| n5 | {weight:+.4f} |" in details
    assert "Inputs have no incoming weights" in neurons.neuron_details(run, 0, 0)
    assert "sigmoid(" in neurons.neuron_details(run, 3, 0)


def test_the_right_engineered_input_lets_one_neuron_solve_a_curved_layout(preset_results):
    assert preset_results["Perceptron + speed², size²: curved"]["test_accuracy"] >= 0.95
    assert preset_results["Perceptron: curved (underfits)"]["test_accuracy"] <= 0.80
    xor = PlaygroundSettings(layout="xor", model="perceptron", learning_rate=0.01, epochs=40)
    alone = train_playground(**dataclasses.asdict(xor))[0]["test_accuracy"]
    with_product = train_playground(**dataclasses.asdict(dataclasses.replace(xor, speed_times_size=True)))[0]["test_accuracy"]
    assert alone <= 0.75 and with_product >= 0.95
    run = new_run(dataclasses.replace(xor, speed_times_size=True))
    assert "speed·size" in neurons.stats_markdown(run) and "No straight line" not in neurons.stats_markdown(run)
    assert "tick the engineered input speed·size" in neurons.stats_markdown(new_run(xor))


def test_xor_and_rings_presets_are_learned(preset_results):
    assert preset_results["XOR: two neurons or speed·size"]["test_accuracy"] >= 0.9
    assert preset_results["Rings: mini-batches"]["test_accuracy"] >= 0.9


def test_a_mini_batch_epoch_takes_one_step_per_batch_and_full_batch_one():
    steps = {}
    for batch in (0, 25, 100):
        run = new_run(PlaygroundSettings(n_samples=500, train_fraction=0.5, batch_size=batch, epochs=10))
        calls = []
        step = run.optimizer.step
        run.optimizer.step = lambda *a, calls=calls, step=step, **k: (calls.append(1), step(*a, **k))[1]
        train_epochs(run, 2)
        steps[batch] = len(calls)
    assert steps == {0: 2, 25: 2 * 10, 100: 2 * 3}  # 250 training animals: 10 batches of 25, 3 of up to 100
    assert neurons.epochs_per_frame(PlaygroundSettings(batch_size=25), 250) == 1


def test_l1_drives_unneeded_weights_to_zero_and_l2_only_shrinks_them():
    def small_share(**change):
        run = new_run(PlaygroundSettings(layout="separable", hidden_layers=2, neurons=16, epochs=400, **change))
        train_epochs(run, 400)
        weights = np.concatenate([layer.weight.detach().numpy().ravel() for layer in run.model.layers])
        return float((np.abs(weights) < 0.01).mean())

    plain, with_l1, with_l2 = small_share(), small_share(l1=0.003), small_share(l2=0.003)
    assert with_l1 >= plain + 0.3 and with_l1 >= with_l2 + 0.3, (plain, with_l1, with_l2)


def test_the_neuron_maps_endpoint_shows_what_a_click_on_each_map_shows():
    img, about = neurons.neuron_maps(layout="xor", model="mlp", hidden_layers=1, neurons=2, epochs=300, seed=3)
    run = neurons.new_run(neurons.settings_from(layout="xor", model="mlp", hidden_layers=1, neurons=2, epochs=300, seed=3))
    while run.epoch < run.settings.epochs:
        neurons.train_epochs(run, neurons.epochs_per_frame(run.settings, len(run.train_y)))
    assert [row["name"] for row in about["rows"]] == ["inputs", "layer 1 (tanh)", "P(unicorn)"]
    assert [len(row["neurons"]) for row in about["rows"]] == [2, 2, 1]
    assert about["rows"][1]["neurons"][1] == neurons.neuron_details(run, 1, 1)  # the same training, the same weights
    assert (img == neurons.render_neuron_maps(run)).all()
    with pytest.raises(gr.Error, match="Neurons"):
        neurons.neuron_maps(neurons=0)

import numpy as np
import pytest
from PIL import Image

from data.font_digits import font_digit_set
from data.mnist import load_splits, sketch_to_mnist, stratified_split, stroke_width
from data.pen_digits import draw_digit


def test_bundled_split_sizes_are_fixed_and_stratified():
    s = load_splits()
    assert s.train_x.shape == (3500, 28, 28) and s.val_x.shape == (500, 28, 28) and s.test_x.shape == (1000, 28, 28)
    assert s.train_x.dtype == np.uint8
    assert np.bincount(s.test_y).tolist() == [100] * 10
    assert np.bincount(s.val_y).tolist() == [50] * 10
    assert np.bincount(s.train_y).tolist() == [350] * 10


def test_split_indices_are_disjoint_and_repeatable():
    labels = np.repeat(np.arange(10), 500)
    test, val, train = stratified_split(labels, [100, 50])
    assert len(set(test) | set(val) | set(train)) == 5000
    assert not (set(test) & set(train)) and not (set(val) & set(train)) and not (set(test) & set(val))
    again = stratified_split(labels, [100, 50])
    assert all(np.array_equal(a, b) for a, b in zip((test, val, train), again, strict=True))


def test_no_test_digit_appears_in_training_data():
    s = load_splits()
    train = {x.tobytes() for x in s.train_x} | {x.tobytes() for x in s.val_x}
    assert sum(x.tobytes() in train for x in s.test_x) == 0


def test_image_folder_source_offline(tmp_path):
    s = load_splits()
    for label in range(10):
        (tmp_path / str(label)).mkdir()
        for k, idx in enumerate(np.flatnonzero(s.test_y == label)[:20]):
            # dark ink on white, 56 px: the loader must bring it back to MNIST format
            Image.fromarray(255 - s.test_x[idx]).resize((56, 56)).save(tmp_path / str(label) / f"{k}.png")
    folder = load_splits(str(tmp_path))
    assert len(folder.train_x) + len(folder.val_x) + len(folder.test_x) == 200
    assert np.bincount(folder.test_y).tolist() == [4] * 10
    assert folder.train_x.shape[1:] == (28, 28)
    assert folder.train_x.mean() < 80  # white ink on black again, mostly black


def test_image_folder_with_its_own_test_split(tmp_path):
    s = load_splits()
    for part, start in (("train", 0), ("test", 50)):
        for label in range(10):
            (tmp_path / part / str(label)).mkdir(parents=True)
            for k, idx in enumerate(np.flatnonzero(s.test_y == label)[start : start + 10]):
                Image.fromarray(s.test_x[idx]).save(tmp_path / part / str(label) / f"{k}.png")
    folder = load_splits(str(tmp_path))
    assert len(folder.test_x) == 100
    assert len(folder.train_x) + len(folder.val_x) == 100


def test_sketch_to_mnist_handles_both_polarities_the_same_way():
    dark_on_light = np.asarray(draw_digit(7, dark_on_light=True), dtype=np.float32) / 255
    light_on_dark = np.asarray(draw_digit(7, dark_on_light=False), dtype=np.float32) / 255
    a, b = sketch_to_mnist(dark_on_light), sketch_to_mnist(light_on_dark)
    assert a.shape == (28, 28) and a.dtype == np.float32
    assert np.abs(a - b).max() < 1e-4


def test_sketch_to_mnist_fits_20px_box_and_centres_by_mass():
    gray = np.ones((400, 300), np.float32)
    gray[50:350, 200:230] = 0.0  # a tall bar off to the right, dark on white
    out = sketch_to_mnist(gray)
    rows, cols = np.flatnonzero(out.max(1) > 0.05), np.flatnonzero(out.max(0) > 0.05)
    assert rows[-1] - rows[0] + 1 <= 20 and cols[-1] - cols[0] + 1 <= 20
    ys, xs = np.indices(out.shape)
    cy, cx = (ys * out).sum() / out.sum(), (xs * out).sum() / out.sum()
    assert abs(cy - 13.5) <= 1.0 and abs(cx - 13.5) <= 1.0
    assert out.max() == pytest.approx(1.0, abs=1e-3)


def test_thin_pen_strokes_are_thickened_to_mnist_width():
    thin = np.asarray(draw_digit(1, size=600, stroke=3), dtype=np.float32) / 255
    out = sketch_to_mnist(thin)
    assert stroke_width(out > 0.5) >= 1.5  # a 3 px line on 600 px would be 0.1 px at 28 px without it


def test_blank_picture_is_rejected():
    with pytest.raises(ValueError):
        sketch_to_mnist(np.ones((100, 100), np.float32))
    with pytest.raises(ValueError):
        sketch_to_mnist(np.zeros((100, 100), np.float32))


def test_font_digits_cover_every_class():
    images, labels, names = font_digit_set(variants_per_font=1)
    assert len(images) == len(labels) == len(names) >= 10
    assert set(labels.tolist()) == set(range(10))
    assert images[0].min() < 0.2 and images[0].max() > 0.8  # dark ink on a light canvas


def test_hub_dataset_path_keeps_its_own_test_split(monkeypatch):
    """`--dataset <hub id>` goes through datasets.load_dataset; offline we hand it an in-memory DatasetDict."""
    import datasets

    s = load_splits()

    def fake_load_dataset(dataset_id):
        assert dataset_id == "someone/mnist-like"
        train_idx = np.concatenate([np.flatnonzero(s.train_y == d)[:60] for d in range(10)])
        test_idx = np.concatenate([np.flatnonzero(s.test_y == d)[:5] for d in range(10)])
        make = lambda x, y: datasets.Dataset.from_dict({"image": [Image.fromarray(im) for im in x], "label": y.tolist()})  # noqa: E731
        return datasets.DatasetDict(
            train=make(s.train_x[train_idx], s.train_y[train_idx]), test=make(s.test_x[test_idx], s.test_y[test_idx])
        )

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    load_splits.cache_clear()
    hub = load_splits("someone/mnist-like")
    load_splits.cache_clear()
    assert len(hub.test_y) == 50 and np.array_equal(hub.test_x[0], s.test_x[np.flatnonzero(s.test_y == 0)[0]])
    assert len(hub.train_y) + len(hub.val_y) == 600
    assert hub.train_x.dtype == np.uint8 and hub.train_x.shape[1:] == (28, 28)


@pytest.mark.parametrize("layout", ["separable", "overlapping", "curved", "few samples"])
def test_animals_are_seeded_split_and_in_range(layout):
    from data.animals import make_animals

    a = make_animals(layout, n_samples=101, noise=0.5, train_fraction=0.3, seed=7)
    b = make_animals(layout, n_samples=101, noise=0.5, train_fraction=0.3, seed=7)
    assert np.array_equal(a.train_x, b.train_x) and np.array_equal(a.test_y, b.test_y)
    assert len(a.train_x) == 30 and len(a.test_x) == 71
    both = np.concatenate([a.train_x, a.test_x])
    assert both.min() >= 0 and both.max() <= 10 and both.dtype == np.float32
    assert set(np.concatenate([a.train_y, a.test_y]).tolist()) == {0, 1}


def test_animal_layouts_have_the_shape_their_names_promise():
    from data.animals import make_animals

    sep = make_animals("separable", 400, noise=0.3)
    x, y = np.concatenate([sep.train_x, sep.test_x]), np.concatenate([sep.train_y, sep.test_y])
    assert (((x.sum(1) > 10).astype(int)) == y).mean() >= 0.98  # the talk's line speed + size = 10 separates them
    curved = make_animals("curved", 400, noise=0.3)
    x, y = np.concatenate([curved.train_x, curved.test_x]), np.concatenate([curved.train_y, curved.test_y])
    radius = np.linalg.norm(x - 5, axis=1)
    assert radius[y == 0].mean() < 1.5 < 3.0 < radius[y == 1].mean()  # rabbits inside, unicorns around


def test_unknown_layout_is_refused():
    from data.animals import make_animals

    with pytest.raises(ValueError, match="unknown layout"):
        make_animals("spiral")

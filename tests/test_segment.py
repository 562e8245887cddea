"""Digit scenes, the U-Net and the Segment tab: masks are true to the digits, splits stay apart, the
shipped segmenter labels drawings, bad input gets a clear message."""

import numpy as np
import pytest
import torch
from PIL import Image

from data import digit_scenes
from data.digit_scenes import SceneConfig, make_scenes, sample_scenes
from data.mnist import load_splits
from models.segmentation import error_split, pixel_counts, scores, thicker_truth_miou
from models.unet import UNet, UNetConfig
from training.train_digit_segmenter import digit_naming_loss, soft_dice_loss

CLEAN = SceneConfig(min_digits=1, max_digits=1, stray_strokes=(0, 0), invert_p=0.0, noise=0.0, blur_p=0.0, thickness_p=0.0)


def test_a_scene_mask_is_exactly_the_digits_ink():
    splits = load_splits()
    generator = torch.Generator().manual_seed(0)
    digits = torch.from_numpy(splits.test_x[:8]).float().div(255)[:, None]  # one digit per scene
    labels = torch.from_numpy(splits.test_y[:8])[:, None]
    images, masks = make_scenes(digits, labels, torch.ones(8, dtype=torch.long), CLEAN, generator)
    for image, mask, label in zip(images[:, 0], masks, labels[:, 0], strict=True):
        assert set(mask.unique().tolist()) == {0, int(label) + 1}  # background and exactly this digit's class
        ink = mask > 0
        assert ink.sum() > 30
        # Dark ink on light paper: every masked pixel is darker than the paper around it.
        assert image[ink].mean() < image[~ink].mean() - 0.3


def test_top_most_digit_owns_overlapping_pixels():
    square = torch.zeros(28, 28)
    square[4:24, 4:24] = 1.0
    digits = square.expand(1, 2, 28, 28).clone()
    labels = torch.tensor([[3, 8]])
    cfg = SceneConfig(**{**CLEAN.__dict__, "max_digits": 2, "digit_px": (100.0, 100.0), "rotate_deg": 0.0})
    # The same seed places the layers exactly as make_scenes does; big squares on a 128 px canvas must overlap.
    layers = digit_scenes._digit_layers(digits, torch.tensor([2]), cfg, torch.Generator().manual_seed(5))[0]
    _, masks = make_scenes(digits, labels, torch.tensor([2]), cfg, torch.Generator().manual_seed(5))
    lower, upper = layers[0] >= 0.5, layers[1] >= 0.5
    assert (lower & upper).sum() > 100
    assert (masks[0][upper] == 9).all()  # the later digit (8) lies on top
    assert (masks[0][lower & ~upper] == 4).all()
    assert (masks[0][~lower & ~upper] == 0).all()


def test_scenes_from_one_class_only_contain_that_class():
    splits = load_splits()
    threes = splits.test_x[splits.test_y == 3]
    _, masks = sample_scenes(threes, np.full(len(threes), 3), 16, SceneConfig(), torch.Generator().manual_seed(0))
    assert set(masks.unique().tolist()) <= {0, 4}


def test_fixed_test_scenes_are_repeatable_and_use_only_test_digits(monkeypatch):
    images, masks = digit_scenes.fixed_scenes("test")
    assert images.shape == (500, 1, 128, 128) and masks.shape == (500, 128, 128)
    assert images.min() >= 0 and images.max() <= 1
    splits = load_splits()
    again = sample_scenes(splits.test_x, splits.test_y, 500, SceneConfig(), torch.Generator().manual_seed(digit_scenes.TEST_SEED))
    assert torch.equal(again[1], masks)
    # Built from a pool with training digits replaced by blanks, the test scenes come out the same: they never touch training digits.
    blank = splits.__class__(**{**splits.__dict__, "train_x": np.zeros_like(splits.train_x), "val_x": np.zeros_like(splits.val_x)})
    monkeypatch.setattr(digit_scenes, "load_splits", lambda dataset=None: blank)
    digit_scenes.fixed_scenes.cache_clear()
    try:
        assert torch.equal(digit_scenes.fixed_scenes("test")[1], masks)
    finally:
        digit_scenes.fixed_scenes.cache_clear()


def test_every_class_appears_in_the_test_scenes():
    _, masks = digit_scenes.fixed_scenes("test")
    counts = torch.bincount(masks.flatten(), minlength=11)
    assert (counts > 1000).all()


def test_unet_keeps_the_picture_size_for_any_multiple_of_16():
    net = UNet(UNetConfig(channels=[4, 8, 8, 8, 8])).eval()
    for h, w in [(128, 128), (96, 160), (16, 48)]:
        assert net(torch.rand(2, 1, h, w)).shape == (2, 11, h, w)


def test_scores_and_dice_loss_behave():
    counts = torch.tensor([[90, 10], [0, 100]])
    s = scores(counts)
    assert s["iou_0"] == pytest.approx(0.9) and s["iou_1"] == pytest.approx(100 / 110)
    assert s["miou"] == pytest.approx((0.9 + 100 / 110) / 2)
    masks = torch.randint(0, 3, (2, 8, 8))
    perfect = torch.nn.functional.one_hot(masks, 3).permute(0, 3, 1, 2).float() * 50
    assert soft_dice_loss(perfect, masks) < 0.01 < soft_dice_loss(torch.zeros(2, 3, 8, 8), masks)


def test_digit_naming_loss_counts_each_digit_once_and_rewards_naming_most_of_it():
    # One scene, 3 classes (background, "a", "b"): a big digit of class 1 (40 px) and a small one of class 2 (4 px).
    masks = torch.zeros(1, 10, 10, dtype=torch.long)
    owner = torch.zeros(1, 10, 10, dtype=torch.long)
    masks[0, :4, :], owner[0, :4, :] = 1, 1
    masks[0, 8:, 8:], owner[0, 8:, 8:] = 2, 2

    def sure_of(labels: torch.Tensor) -> torch.Tensor:  # logits that say each pixel's class with probability ~1
        return torch.nn.functional.one_hot(labels, 3).permute(0, 3, 1, 2).float() * 50

    assert digit_naming_loss(sure_of(masks), masks, owner) < 1e-6
    # Half the big digit named "b": its mean probability of "a" is 1/2, so it costs -log(1/2); the small one costs 0.
    half = masks.clone()
    half[0, :2, :] = 2
    assert digit_naming_loss(sure_of(half), masks, owner) == pytest.approx(np.log(2) / 2, rel=1e-4)
    # Every pixel of the small digit wrong weighs as much as every pixel of the big one wrong, though it is 10x smaller.
    small_wrong, big_wrong = masks.clone(), masks.clone()
    small_wrong[0, 8:, 8:] = 1
    big_wrong[0, :4, :] = 2
    assert digit_naming_loss(sure_of(small_wrong), masks, owner) == pytest.approx(
        float(digit_naming_loss(sure_of(big_wrong), masks, owner))
    )
    # A scene without digits costs nothing (and still backpropagates).
    empty = torch.zeros(1, 3, 10, 10, requires_grad=True)
    loss = digit_naming_loss(empty, torch.zeros(1, 10, 10, dtype=torch.long), torch.zeros(1, 10, 10, dtype=torch.long))
    loss.backward()
    assert float(loss.detach()) == 0.0


def test_mask_folder_dataset_reads_pairs(tmp_path):
    for split in ("train", "test"):
        (tmp_path / split / "images").mkdir(parents=True)
        (tmp_path / split / "masks").mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((40, 60), 200, np.uint8)).save(tmp_path / split / "images" / f"{i}.jpg")
            mask = np.zeros((40, 60), np.uint8)
            mask[10:30, 20:40] = 2
            Image.fromarray(mask).save(tmp_path / split / "masks" / f"{i}.png")
    (tmp_path / "classes.txt").write_text("background\nroad\nperson\n")
    data = digit_scenes.load_mask_dataset(str(tmp_path), size=32)
    assert data.train[0].shape == (3, 1, 32, 32) and data.test[1].shape == (3, 32, 32)
    assert set(data.train[1].unique().tolist()) == {0, 2}  # nearest-neighbour resizing keeps class indices intact
    assert data.class_names == ["background", "road", "person"]


def test_pen_digits_come_in_mnist_format_for_every_way_of_writing_them():
    from data.pen_digits import TEMPLATES, pen_digit_set, render_pen_digit

    rng = np.random.default_rng(0)
    for digit, ways in TEMPLATES.items():
        for _ in range(3 * len(ways)):
            ink = render_pen_digit(digit, rng)
            assert ink.shape == (28, 28) and ink.min() >= 0 and ink.max() > 0.9
            rows = np.flatnonzero(ink.max(1) > 0.3)
            assert 17 <= rows[-1] - rows[0] + 1 <= 25  # MNIST's 20 px box, give or take pen width and jitter
            assert ink[0].max() < 0.3 and ink[-1].max() < 0.3 and ink[:, 0].max() < 0.3  # never cut off by the frame
    images, labels = pen_digit_set(20, seed=1)
    assert images.shape == (20, 28, 28) and labels.tolist() == list(range(10)) * 2


def test_segmenter_training_pool_mixes_in_pen_digits_but_no_test_digits():
    from training.train_digit_segmenter import digit_pool

    splits = load_splits()
    x, y = digit_pool(splits, 0.3, seed=0)
    n_mnist = len(splits.train_y)
    assert len(y) - n_mnist == round(n_mnist * 0.3 / 0.7)
    assert torch.equal(x[:n_mnist], torch.from_numpy(splits.train_x).float() / 255)  # the MNIST part is the training split
    assert torch.bincount(y[n_mnist:], minlength=10).min() >= (len(y) - n_mnist) // 10
    plain_x, _ = digit_pool(splits, 0.0, seed=0)
    assert len(plain_x) == n_mnist


def test_thicker_truth_miou_counts_a_one_pixel_edge_error():
    masks = torch.zeros(1, 11, 11, dtype=torch.long)
    masks[0, 1:10, 5] = 1  # a 1 px wide stroke of 9 pixels; grown 1 px it covers rows 0-10, columns 4-6 (33 pixels)
    background_iou, stroke_iou = 88 / 112, 9 / 33
    assert thicker_truth_miou(masks, 2) == pytest.approx((background_iou + stroke_iou) / 2)


def test_error_split_tells_finding_the_ink_from_naming_it():
    truth = torch.zeros(1, 4, 4, dtype=torch.long)
    truth[0, 0, :] = 3  # a '2' (class 3), 4 pixels
    truth[0, 2, :] = 8  # a '7' (class 8), 4 pixels
    predicted = truth.clone()
    predicted[0, 2, :2] = 2  # half of the 7 called a 1
    predicted[0, 3, 0] = 3  # one background pixel called a 2
    counts = pixel_counts(truth, predicted, 11)
    split = error_split(counts)
    assert split["foreground_iou"] == pytest.approx(8 / 9)  # every digit pixel found, one extra
    assert split["naming_accuracy"] == pytest.approx(6 / 8)
    # Named right, the only error left is the extra pixel: background 7/8, the 2 4/5, the 7 4/4; the 8 other classes
    # (the 1 included, now never predicted) have no pixels and count 0, as in `scores`.
    assert split["miou_if_named_right"] == pytest.approx((7 / 8 + 4 / 5 + 1.0) / 11)
    assert split["miou_if_named_right"] > scores(counts)["miou"]


# --- The person's view: tolerant IoU, per-digit F1 and panoptic quality, on hand-counted scenes ----------------


def two_digit_scene(first: int = 3, second: int = 7) -> np.ndarray:
    """A 20 x 20 label map with two 4 x 3 px strokes: class `first` on the left, `second` on the right."""
    labels = np.zeros((20, 20), np.int64)
    labels[4:8, 3:6] = first
    labels[10:14, 12:15] = second
    return labels


def test_a_one_pixel_shift_is_perfect_with_a_1px_tolerance_and_not_strictly():
    from models.segmentation import tolerant_counts, tolerant_miou

    truth = two_digit_scene()
    shifted = np.roll(truth, 1, axis=1)  # every outline 1 px to the right
    t, p = torch.from_numpy(truth)[None], torch.from_numpy(shifted)[None]
    assert tolerant_miou(tolerant_counts(t, p, 11, tolerance=1)) == pytest.approx(1.0)
    strict = scores(pixel_counts(t, p, 11))
    assert strict["iou_3"] == pytest.approx(0.5) and strict["iou_7"] == pytest.approx(0.5)  # 8 of 16 px in common
    counts = tolerant_counts(t, p, 11, tolerance=1)
    matched, fp, fn = counts.unbind(1)
    assert float(fp.sum()) == 0 and float(fn.sum()) == 0
    two_px = np.roll(truth, 2, axis=1)
    counts = tolerant_counts(t, torch.from_numpy(two_px)[None], 11, tolerance=1)
    assert float(counts[3, 1]) == 4 and float(counts[3, 2]) == 4  # one column of 4 px beyond the band on each side


def test_a_wrongly_named_digit_halves_precision_recall_and_f1():
    from models.segmentation import digit_counts, digit_scores

    truth = two_digit_scene(3, 7)
    right = digit_scores([digit_counts(truth, truth, 11)])
    assert right == {"digit_precision": 1.0, "digit_recall": 1.0, "digit_f1": 1.0, "pq": 1.0}
    wrong = truth.copy()
    wrong[wrong == 7] = 1  # the 7 named a 1
    scored = digit_scores([digit_counts(truth, wrong, 11)])
    assert scored["digit_precision"] == 0.5 and scored["digit_recall"] == 0.5 and scored["digit_f1"] == 0.5
    # PQ per class present: class 3 matched (1), class 7 missed (0 / 0.5), class 1 a false positive (0 / 0.5): mean 1/3.
    assert scored["pq"] == pytest.approx(1 / 3)


def test_a_half_found_digit_counts_and_a_speck_does_not():
    from models.segmentation import MIN_INSTANCE_PX, digit_counts, digit_scores

    truth = two_digit_scene(3, 7)
    predicted = truth.copy()
    predicted[12:14, 12:15] = 0  # only the top half of the 7's ink is predicted 7: still found (half is enough)
    predicted[0, 0] = 5  # a 1-px speck of 5: not a digit found
    counts = digit_counts(truth, predicted, 11)
    assert counts["found"] == 2 and counts["predicted"] == 2 and MIN_INSTANCE_PX > 1
    predicted[11, 12:15] = 0  # now a quarter: missed
    assert digit_counts(truth, predicted, 11)["found"] == 1
    assert digit_scores([counts])["digit_f1"] == 1.0


def test_the_scene_generator_says_which_digit_each_pixel_belongs_to():
    images, masks, owners = digit_scenes.fixed_scenes_with_instances("val")
    plain_images, plain_masks = digit_scenes.fixed_scenes("val")
    assert torch.equal(images, plain_images) and torch.equal(masks, plain_masks)  # the same scenes, same draws
    assert torch.equal(owners > 0, masks > 0)
    for scene in range(20):
        for k in owners[scene].unique()[1:]:
            assert len(masks[scene][owners[scene] == k].unique()) == 1  # one digit, one class


def test_person_scores_of_the_truth_itself_are_perfect():
    from models.segmentation import digit_counts, digit_scores, tolerant_counts, tolerant_miou

    _, masks, owners = digit_scenes.fixed_scenes_with_instances("val")
    per_scene = [digit_counts(m.numpy(), m.numpy(), 11, o.numpy()) for m, o in zip(masks[:30], owners[:30], strict=True)]
    perfect = digit_scores(per_scene)
    assert perfect["digit_precision"] == perfect["digit_recall"] == 1.0
    # PQ of the truth itself is below 1: a digit cut in two by another, or a broken MNIST stroke, is two regions, and PQ
    # counts the smaller one as a false positive. The benchmark reports this yardstick (pq_truth_itself).
    assert 0.8 < perfect["pq"] < 1.0
    assert tolerant_miou(tolerant_counts(masks[:30], masks[:30], 11)) == 1.0


def test_the_reading_names_a_stroke_once_and_drops_specks():
    from models.segmentation import MIN_DIGIT_CONFIDENCE, MIN_DIGIT_PX, read_labels

    def sure(labels: np.ndarray, p: float = 0.9) -> np.ndarray:  # (H, W) labels -> (11, H, W) probabilities, p on the label
        probs = np.full((11, *labels.shape), (1 - p) / 10, np.float32)
        np.put_along_axis(probs, labels[None], p, 0)
        return probs

    labels = np.zeros((40, 60), np.int64)
    labels[5:35, 10:13] = 8  # a stroke of 90 px called 7 ...
    labels[28:35, 10:13] = 2  # ... except its last 21 px, called 1
    labels[5:35, 40:43] = 4  # a separate stroke called 3: a second digit
    labels[2, 55] = 6  # an isolated 1-px speck called 5
    read = read_labels(sure(labels))
    assert set(np.unique(read[5:35, 10:13])) == {8}  # the stroke is read as one 7
    assert set(np.unique(read[5:35, 40:43])) == {4}  # the other digit keeps its name
    assert read[2, 55] == 0 and (read > 0).sum() == 180  # the speck is clutter; no ink appears or disappears
    # A piece big enough to be a digit of its own keeps its name; an unsure piece is not ink.
    alone = np.zeros((40, 60), np.int64)
    alone[5 : 5 + MIN_DIGIT_PX // 3 + 1, 20:23] = 9
    assert (read_labels(sure(alone)) == 9).sum() == alone.astype(bool).sum()
    assert (read_labels(sure(labels, p=0.5), confidence=0.6) == 0).all()
    # A digit the network names with little conviction (its top class, but at 0.55 < MIN_DIGIT_CONFIDENCE) is not reported.
    assert MIN_DIGIT_CONFIDENCE > 0.55 and (read_labels(sure(alone, p=0.55)) == 0).all()
    # Batches and tensors read the same as one picture.
    batch = torch.from_numpy(np.stack([sure(labels), sure(alone)]))
    assert torch.equal(read_labels(batch)[0], torch.from_numpy(read))


def test_a_bold_pen_thickens_training_digits_and_leaves_other_scenes_as_they_were():
    splits = load_splits()
    digits = torch.from_numpy(splits.test_x[:6]).float().div(255)[:, None]
    labels = torch.from_numpy(splits.test_y[:6])[:, None]

    def scenes(cfg: SceneConfig):
        return make_scenes(digits, labels, torch.ones(6, dtype=torch.long), cfg, torch.Generator().manual_seed(3))

    plain, off, bold = (
        scenes(CLEAN),
        scenes(SceneConfig(**{**CLEAN.__dict__, "bold_p": 0.0})),
        scenes(SceneConfig(**{**CLEAN.__dict__, "bold_p": 1.0})),
    )
    assert torch.equal(plain[0], off[0]) and torch.equal(plain[1], off[1])  # no bold pen: the very same scenes
    for thin_mask, bold_mask, label in zip(plain[1], bold[1], labels[:, 0], strict=True):
        assert (bold_mask > 0).sum() > 1.5 * (thin_mask > 0).sum()  # the marker's ink is much wider ...
        assert set(bold_mask.unique().tolist()) == {0, int(label) + 1}  # ... and still this digit's

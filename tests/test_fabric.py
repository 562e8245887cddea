"""Procedural fabric and the two defect detectors' machinery: training data is flawless by construction,
defect masks cover what changed, maps sit on a fixed scale, AUROC is right."""

import numpy as np
import pytest
import torch

from data import fabric
from models.autoencoder import AutoencoderConfig, FabricAutoencoder
from models.fabric_scoring import auroc, calibrate
from models.patch_memory import PatchMemory, PatchMemoryConfig, build_bank


def test_swatches_are_repeatable_and_in_range():
    a, b = fabric.normal_swatch(5), fabric.normal_swatch(5)
    assert a.shape == (256, 256, 3) and a.dtype == np.float32
    assert np.array_equal(a, b) and 0 <= a.min() and a.max() <= 1
    assert not np.array_equal(a, fabric.normal_swatch(6))


def test_swatches_of_a_product_vary_like_bolts_of_one_cloth_and_products_differ():
    linen = [fabric.normal_swatch(s, product=0) for s in range(3)]
    denim = fabric.normal_swatch(0, product=1)
    mean_colour = lambda image: image.reshape(-1, 3).mean(0)  # noqa: E731
    # Same product: the same colour to within the dye-lot shade (3%) and the lighting; another product is far away.
    assert all(np.abs(mean_colour(x) - mean_colour(linen[0])).max() < 0.06 for x in linen[1:])
    assert np.abs(mean_colour(denim) - mean_colour(linen[0])).max() > 0.15
    assert not np.array_equal(linen[0], linen[1])
    assert len(set(fabric.PRODUCT_NAMES)) == len(fabric.PRODUCTS) == 3 and {p.kind for p in fabric.PRODUCTS} == set(fabric.WEAVES)


def test_defects_never_appear_in_training_or_validation_images(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("a defect was drawn into a training or validation image")

    monkeypatch.setattr(fabric, "add_defect", forbidden)
    monkeypatch.setattr(fabric, "defective_swatch", forbidden)
    normal = fabric.normal_images("", 2, val_count=2)
    assert normal.products == list(fabric.PRODUCT_NAMES)
    assert [x.shape for x in normal.train] == [(2, 256, 256, 3)] * 3 and [x.shape for x in normal.val] == [(2, 256, 256, 3)] * 3
    # The seed ranges of the splits never meet, for any product.
    last = len(fabric.PRODUCTS) - 1
    assert fabric._seed(fabric.TRAIN_SEED, last, fabric.PRODUCT_SEEDS - 1) < fabric._seed(fabric.VAL_SEED, 0, 0)
    assert fabric._seed(fabric.VAL_SEED, last, fabric.PRODUCT_SEEDS - 1) < fabric._seed(fabric.TEST_SEED, 0, 0)


@pytest.mark.parametrize("product", range(3))
@pytest.mark.parametrize("kind", fabric.DEFECTS)
def test_each_defect_changes_the_pixels_its_mask_marks(kind, product):
    seed = 123
    rng = np.random.default_rng(seed)
    clean = fabric.render(fabric.product_weave(product, rng))[0]
    damaged, mask = fabric.defective_swatch(seed, kind, product)
    assert mask.dtype == bool and 20 < mask.sum() < 0.2 * mask.size
    change = np.abs(damaged - clean).mean(-1)
    assert change[mask].mean() > 4 * max(change[~mask].mean(), 1e-3), f"{kind}: the mask must mark where the cloth changed"


def test_test_set_is_half_normal_with_every_defect_type():
    assert fabric.TEST_NORMAL == fabric.TEST_PER_DEFECT * len(fabric.DEFECTS)  # the full set is half normal
    images, masks, kinds = fabric.test_set(2, normal=9, per_defect=1)
    assert len(images) == 18 and kinds.count("normal") == 9 and set(kinds) - {"normal"} == set(fabric.DEFECTS)
    assert not masks[:9].any() and all(m.any() for m in masks[9:])
    # Each product's test swatches are its own cloth.
    assert np.abs(images[:9].reshape(-1, 3).mean(0) - np.array(fabric.PRODUCTS[2].warp_rgb)).max() < 0.25


def test_auroc_matches_hand_counts():
    assert auroc(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1])) == pytest.approx(0.75)
    assert auroc(torch.tensor([1.0, 1.0, 1.0]), torch.tensor([0, 1, 1])) == pytest.approx(0.5)  # ties count half
    assert auroc(torch.tensor([0.0, 1.0]), torch.tensor([0, 1])) == 1.0


def test_maps_are_standardised_with_fixed_statistics_not_per_image():
    torch.manual_seed(0)
    model = FabricAutoencoder(AutoencoderConfig(products=["a", "b"], error_mean=[0.3, 0.2], error_std=[0.05, 0.1])).eval()
    quiet = torch.from_numpy(fabric.normal_swatch(1)).permute(2, 0, 1)[None]
    noisy = (quiet + 0.3 * torch.randn_like(quiet)).clamp(0, 1)
    with torch.inference_mode():
        _, alone = model.anomaly_map(quiet)
        _, together = model.anomaly_map(torch.cat([quiet, noisy]))
        _, as_b = model.anomaly_map(quiet, product=1)
        raw = model.raw_error(quiet, model(quiet))
    assert torch.allclose(alone[0], together[0], atol=1e-5)  # scoring another image beside it changes nothing
    assert torch.allclose(alone, (raw - 0.3) / 0.05, atol=1e-5)  # the stored scale, not the image's own
    assert torch.allclose(as_b, (raw - 0.2) / 0.1, atol=1e-5)  # each product has its own stored scale
    assert together[1].mean() > together[0].mean()  # a worse image gets a hotter map: no per-image stretching


def test_colour_error_sees_a_stain_that_keeps_the_weave():
    model = FabricAutoencoder(AutoencoderConfig())
    cloth = torch.from_numpy(fabric.normal_swatch(1)).permute(2, 0, 1)[None]
    stained = cloth.clone()
    stained[:, :, 100:140, 100:140] *= torch.tensor([1.0, 0.7, 0.5]).view(1, 3, 1, 1)  # a brownish tint, weave intact
    with torch.inference_mode():
        structural, colour = model.error_parts(stained, cloth)  # cloth plays the perfect reconstruction
    assert colour[0, 0, 110:130, 110:130].min() > 10 * colour[0, 0, :60, :60].max()  # nothing outside, a lot inside
    assert colour[0, 0, 110:130, 110:130].mean() > 2 * structural[0, 0, 110:130, 110:130].mean()


def test_calibration_puts_every_validation_image_below_the_threshold():
    maps = torch.rand(10, 32, 32) + torch.arange(10).view(10, 1, 1) * 0.1
    c = calibrate(maps)
    standard = (maps - c["error_mean"]) / c["error_std"]
    assert (standard.flatten(1).amax(1) < c["image_threshold"]).all()
    assert (standard > c["pixel_threshold"]).float().mean() <= 0.001


def test_coreset_keeps_far_apart_patches():
    features = torch.cat([torch.zeros(500, 4), torch.ones(3, 4) * 10])  # three outliers among many copies
    bank = build_bank(features, 4)
    assert (bank == 10).all(1).sum() >= 1 and len(bank) == 4
    memory = PatchMemory(PatchMemoryConfig(feature_dim=4, bank_size=4))
    memory.bank.copy_(bank.half())
    d = memory.distances(torch.zeros(1, 4, 2, 2))
    assert d.shape == (1, 1, 2, 2) and float(d.max()) == pytest.approx(0.0, abs=1e-3)


def test_ssim_stays_finite_under_bf16_autocast():
    """E[x^2] - E[x]^2 in bf16 can go negative: the SSIM map must be computed in float32 even inside autocast."""
    from models.autoencoder import ssim_map

    x = torch.from_numpy(fabric.normal_swatch(3)).permute(2, 0, 1)[None]
    y = (x + 0.01 * torch.randn_like(x)).clamp(0, 1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        s = ssim_map(x, y)
    assert s.dtype == torch.float32 and torch.isfinite(s).all() and 0.5 < float(s.mean()) <= 1.0


def test_repair_training_damages_only_a_blob_and_never_draws_a_test_defect(monkeypatch):
    from training.train_fabric_autoencoder import random_crops, synthetic_flaws

    def forbidden(*args, **kwargs):
        raise AssertionError("repair training must not use the test defects' code")

    monkeypatch.setattr(fabric, "add_defect", forbidden)
    monkeypatch.setattr(fabric, "defective_swatch", forbidden)
    pool = torch.from_numpy((fabric.training_swatches(2, 1) * 255).round().astype(np.uint8)).permute(0, 3, 1, 2).contiguous()
    generator = torch.Generator().manual_seed(0)
    clean = random_crops(pool, 16, 64, generator)
    assert torch.equal(synthetic_flaws(clean, pool, 0.0, generator), clean)
    damaged = synthetic_flaws(clean, pool, 1.0, generator)
    changed = ((damaged - clean).abs().amax(1) > 0.02).float().mean((1, 2))  # share of each crop's pixels changed
    assert (changed > 0.003).all() and (changed < 0.5).all()
    assert damaged.min() >= 0 and damaged.max() <= 1


def test_autoencoder_map_fills_its_edge_band_from_inside():
    from models.autoencoder import AutoencoderConfig, FabricAutoencoder

    torch.manual_seed(0)
    net = FabricAutoencoder(AutoencoderConfig(channels=[4, 8, 8, 8], latent=4, border=12, error_mean=[0.1], error_std=[0.05])).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.inference_mode():
        reconstruction, heat = net.anomaly_map(x)
        standard = (net.raw_error(x, reconstruction) - 0.1) / 0.05
    inside = net.interior(heat)
    assert torch.equal(heat[..., :12, 12:-12], inside[..., :1, :].expand(-1, -1, 12, -1))  # the band repeats the nearest inside row
    assert torch.equal(heat[..., 12:-12, -12:], inside[..., :, -1:].expand(-1, -1, -1, 12))  # ... and column
    assert torch.equal(heat[..., :12, :12], inside[..., :1, :1].expand(-1, -1, 12, 12))  # the corners its nearest corner
    torch.testing.assert_close(net.interior(heat), net.interior(standard))  # inside, the calibrated map itself
    assert net.interior(heat).shape[-2:] == (40, 40)


def test_tuning_split_shares_no_swatch_with_the_test_split():
    tuning, tuning_masks, tuning_kinds = fabric.tuning_set(0, size=128, normal=2, per_defect=1)
    test, _, test_kinds = fabric.test_set(0, size=128, normal=2, per_defect=1)
    assert tuning_kinds == test_kinds and tuning_masks[2:].any((1, 2)).all()  # built alike, every defect marked
    assert all(not np.allclose(a, b) for a in tuning for b in test)

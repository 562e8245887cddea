"""How a fabric detector's anomaly maps are scored: calibration on flawless validation swatches, image scores,
AUROC, and the held-out evaluation both detectors (the autoencoder and the feature memory) share.

It lives beside the models because the app, the training scripts and the benchmark all score maps this way:
a tab calibrates the detectors fitted to your own cloth with `calibrate`, exactly as training calibrates the shipped ones.
"""

from collections.abc import Callable

import numpy as np
import torch

from data import fabric

METRIC_NOTES = {
    "image_auroc": "area under the ROC curve of the image score (max of the map), defective vs flawless test swatches; each product "
    "on its own, then the mean over products (as MVTec AD averages over categories)",
    "pixel_auroc": "area under the ROC curve of per-pixel scores against the true defect masks (every 4th pixel), mean over products",
    "false_positive_rate": "share of flawless test swatches called defective at their product's calibrated threshold",
    "detection_rate": "share of defective test swatches called defective at their product's calibrated threshold",
    **{f"image_auroc_{k}": f"image AUROC, {k.replace('_', ' ')} swatches vs flawless ones, mean over products" for k in fabric.DEFECTS},
    **{f"image_auroc_{p.key}": f"image AUROC on {p.name} alone" for p in fabric.PRODUCTS},
    **{f"pixel_auroc_{p.key}": f"pixel AUROC on {p.name} alone" for p in fabric.PRODUCTS},
}


def auroc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Area under the ROC curve from ranks (Mann-Whitney U), ties averaged. scores, labels (N,)."""
    scores, labels = scores.double().flatten(), labels.bool().flatten()
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = scores.argsort()
    ranks = torch.empty_like(scores)
    ranks[order] = torch.arange(1, len(scores) + 1, dtype=torch.float64)
    sorted_scores = scores[order]
    # Average the ranks of tied scores.
    unique, inverse, counts = torch.unique_consecutive(sorted_scores, return_inverse=True, return_counts=True)
    if len(unique) < len(scores):
        ends = counts.cumsum(0).double()
        mean_rank = ends - (counts.double() - 1) / 2
        ranks[order] = mean_rank[inverse]
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


MapFn = Callable[[torch.Tensor], torch.Tensor]  # (B, 3, H, W) in [0, 1] -> (B, 1, H, W) map, higher = more defective
ProductMapFn = Callable[[torch.Tensor, int], torch.Tensor]  # the same for one product (its index in fabric.PRODUCTS)


@torch.inference_mode()
def maps_for(map_fn: MapFn, images: np.ndarray, batch_size: int = 8) -> torch.Tensor:
    """(N, H, W, 3) float images -> (N, H, W) maps."""
    out = []
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(images[start : start + batch_size]).permute(0, 3, 1, 2).contiguous()
        out.append(map_fn(x).float().cpu()[:, 0])
    return torch.cat(out)


def calibrate(raw_val_maps: torch.Tensor) -> dict[str, float]:
    """Scale and thresholds from flawless validation maps (N, H, W) of raw errors.

    The map becomes (raw - mean) / std; the image score is its maximum. Image threshold: 5% above
    the highest flawless validation score (zero false alarms there). Pixel threshold: the value
    flawless pixels exceed 1 time in 10,000."""
    mean, std = float(raw_val_maps.mean()), float(raw_val_maps.std())
    standard = (raw_val_maps - mean) / std
    scores = image_scores(standard)
    sample = standard.flatten()[:: max(1, standard.numel() // 2_000_000)]
    return {
        "error_mean": mean,
        "error_std": std,
        "image_threshold": float(scores.max()) * 1.05,
        "pixel_threshold": float(torch.quantile(sample, 0.9999)),
    }


def image_scores(maps: torch.Tensor) -> torch.Tensor:
    """(N, H, W) standardised maps -> (N,) image scores: the hottest point of each map."""
    return maps.flatten(1).amax(1)


def evaluate_detector(
    map_fn: ProductMapFn,
    image_thresholds: list[float],
    size: int = fabric.SIZE,
    normal: int = fabric.TEST_NORMAL,
    per_defect: int = fabric.TEST_PER_DEFECT,
) -> dict[str, float]:
    """Image and pixel AUROC on every product's test split, per defect type and per product, and the error rates at
    each product's calibrated threshold.

    map_fn(images, product) must return the standardised map. As in MVTec AD, where every category is its own
    inspection line, each product is scored on its own and `image_auroc`, `pixel_auroc` and the per-defect AUROCs are
    means over the products; the per-product values are reported too."""
    result: dict[str, float] = {}
    per_product, false_alarms, detections = [], [], []
    for product, spec in enumerate(fabric.PRODUCTS):
        images, masks, kinds = fabric.test_set(product, size, normal, per_defect)
        maps = maps_for(lambda x, p=product: map_fn(x, p), images)
        scores = image_scores(maps)
        kinds_arr = np.asarray(kinds)
        defective = torch.from_numpy(kinds_arr != "normal")
        normal_mask = ~defective
        row = {
            "image_auroc": auroc(scores, defective),
            "pixel_auroc": auroc(maps[:, ::2, ::2], torch.from_numpy(masks[:, ::2, ::2])),  # every 4th pixel
        }
        for kind in fabric.DEFECTS:
            pick = torch.from_numpy(kinds_arr == kind)
            subset = pick | normal_mask
            row[f"image_auroc_{kind}"] = auroc(scores[subset], pick[subset])
        per_product.append(row)
        false_alarms.append((scores[normal_mask] > image_thresholds[product]).float())
        detections.append((scores[defective] > image_thresholds[product]).float())
        result[f"image_auroc_{spec.key}"] = row["image_auroc"]
        result[f"pixel_auroc_{spec.key}"] = row["pixel_auroc"]
    for key in per_product[0]:
        result[key] = float(np.mean([row[key] for row in per_product]))
    result["false_positive_rate"] = float(torch.cat(false_alarms).mean())
    result["detection_rate"] = float(torch.cat(detections).mean())
    return result


def calibrate_products(raw_map_fn: ProductMapFn, val: list[np.ndarray]) -> dict[str, list[float]]:
    """calibrate() for each product's validation swatches -> config fields, one list entry per product."""
    per_product = [calibrate(maps_for(lambda x, p=p: raw_map_fn(x, p), images)) for p, images in enumerate(val)]
    return {key: [c[key] for c in per_product] for key in per_product[0]}

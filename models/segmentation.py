"""What the digit-segmenter's output means: how a drawing is read at a scale the U-Net knows, and how a labelling
is scored against the truth (the tab, the training script and the benchmark all use these)."""

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from models.unet import UNet

WORK_SIDE = 128  # the short side the network reads; its training scenes were 128 px
MAX_SIDE = 512  # the long side is capped here, so a panorama stays fast
LARGEST_DIGIT_PX = 48  # the tallest digit ink in the training scenes (a 64 px MNIST box holds about 46 px of ink)
DIGIT_PX = (28, 38)  # taller pen marks are also read shrunk to each of these heights
SHRUNK_MUST_SEE = 2.0  # times the digit evidence of the reading at the original size, to replace it


def prepare_scene(gray: np.ndarray, multiple: int, scale: float | None = None) -> tuple[torch.Tensor, tuple[int, int]]:
    """(H, W) in [0, 1] -> ((1, 1, H', W') network input, (h, w) of the picture inside the padding).

    Scaled so the short side is 128 px (long side at most 512), or by `scale`, then padded to a multiple
    of the U-Net's downsampling with the paper colour (the median of the border), so padding is background."""
    h, w = gray.shape
    if scale is None:
        scale = min(WORK_SIDE / min(h, w), MAX_SIDE / max(h, w))
    new_h, new_w = max(multiple, round(h * scale)), max(multiple, round(w * scale))
    x = torch.from_numpy(np.ascontiguousarray(gray, dtype=np.float32))[None, None]
    x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
    border = torch.cat([x[0, 0, 0], x[0, 0, -1], x[0, 0, :, 0], x[0, 0, :, -1]])
    pad_h, pad_w = -new_h % multiple, -new_w % multiple
    x = F.pad(x, (0, pad_w, 0, pad_h), value=float(border.median()))
    return x, (new_h, new_w)


def digit_height(picture: np.ndarray) -> float | None:
    """Height in px of the tallest pen mark in (h, w) [0, 1]: the ink's connected blobs (strokes joined by a
    2 px dilation; specks under 0.2% of the picture ignored), or None. The tallest, not the median: a digit
    still being drawn beside a finished one must not pull the guess below the finished one's height."""
    paper = np.median(np.concatenate([picture[0], picture[-1], picture[:, 0], picture[:, -1]]))
    ink = np.abs(picture - paper) > 0.25  # either polarity: dark ink on paper or light chalk on a board
    blobs, count = ndimage.label(ndimage.binary_dilation(ink, iterations=2))
    if count == 0:
        return None
    areas = ndimage.sum(ink, blobs, range(1, count + 1))
    heights = [box[0].stop - box[0].start for box, area in zip(ndimage.find_objects(blobs), areas, strict=True) if area >= 0.002 * ink.size]
    return float(max(heights)) if heights else None


def digit_evidence(probs: torch.Tensor) -> float:
    """How much digit the network sees in (1, classes, h, w): the top digit probability summed over the
    pixels it calls a digit (a reading that misses a digit scores low, however sure it is of the rest)."""
    digit = probs[0, 1:].max(0).values
    return float(digit[probs[0].argmax(0) > 0].sum())


def read_drawing(net: UNet, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Greyscale picture (H, W) in [0, 1] -> (the picture as the network read it (h, w), class probabilities (classes, h, w)).

    The network learned digits whose ink is about 21 to 46 px tall. Drawings are often bigger (a digit filling a
    300 px canvas is 90 px tall at the working size, and is then read as clutter or not at all). So when the pen
    marks look taller than LARGEST_DIGIT_PX, the network also reads the picture shrunk until they are each of
    DIGIT_PX tall, and the reading that sees most digit wins (`digit_evidence`) if it sees SHRUNK_MUST_SEE times
    more than the original reading; a shrunk reading is scaled back up to the working size. Why a margin and not
    any gain: in cluttered scenes the height guess is fooled, and a shrunk reading that sees a little more digit is
    more often wrong than right. Why 2 and not more: the retrained segmenter finds pieces of big drawn digits at the
    original size (a 2 x 2 grid of drawn digits: 2.3 times less evidence than shrunk), and a margin of 3 kept that
    broken reading; on the 422 test scenes whose tallest mark is over LARGEST_DIGIT_PX, the margin of 2 costs digit F1
    0.82 -> 0.80 in this path (the scores in metrics.json read the scenes directly). tests/test_apps_segment.py checks both sides: big drawings are found, and test scenes at
    the learned size are read exactly as they are."""
    device = next(net.parameters()).device
    x, (h, w) = prepare_scene(gray, net.multiple)
    picture = x[0, 0, :h, :w]
    height = digit_height(picture.numpy())
    with torch.inference_mode():
        probs = net(x.to(device)).float().softmax(1)[:, :, :h, :w]
        if height is not None and height > LARGEST_DIGIT_PX:
            best, best_evidence = probs, SHRUNK_MUST_SEE * digit_evidence(probs)
            for target in DIGIT_PX:
                small, (sh, sw) = prepare_scene(picture.numpy(), net.multiple, scale=target / height)
                shrunk = net(small.to(device)).float().softmax(1)[:, :, :sh, :sw]
                shrunk = F.interpolate(shrunk, size=(h, w), mode="bilinear", align_corners=False)
                evidence = digit_evidence(shrunk)
                if evidence > best_evidence:
                    best, best_evidence = shrunk, evidence
            probs = best
    return picture.numpy(), probs[0].cpu().numpy()


@torch.inference_mode()
def confusion(model: UNet, images: torch.Tensor, masks: torch.Tensor, n_classes: int, batch_size: int = 25) -> torch.Tensor:
    """(n_classes, n_classes) pixel counts of the reading (read_labels), rows = truth, columns = prediction."""
    model.eval()
    counts = torch.zeros(n_classes, n_classes, dtype=torch.long)
    for start in range(0, len(images), batch_size):
        counts += pixel_counts(masks[start : start + batch_size], read_batch(model, images[start : start + batch_size]), n_classes)
    return counts


def read_batch(model: UNet, images: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) scenes -> (B, H, W) label maps on the CPU: the network's probabilities, read by read_labels."""
    device = next(model.parameters()).device
    return read_labels(model(images.to(device)).float().softmax(1).cpu())


def pixel_counts(truth: torch.Tensor, predicted: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Label maps of the same shape -> (n_classes, n_classes) pixel counts, rows = truth, columns = prediction."""
    return torch.bincount(truth.flatten() * n_classes + predicted.flatten(), minlength=n_classes**2).view(n_classes, n_classes)


def scores(counts: torch.Tensor) -> dict[str, float]:
    """Dataset-level mIoU and Dice over every class (background included), pixel accuracy, per-class IoU."""
    counts = counts.double()
    tp = counts.diag()
    fp, fn = counts.sum(0) - tp, counts.sum(1) - tp
    iou = tp / (tp + fp + fn).clamp(min=1)
    dice = 2 * tp / (2 * tp + fp + fn).clamp(min=1)
    out = {"miou": float(iou.mean()), "dice": float(dice.mean()), "pixel_accuracy": float(tp.sum() / counts.sum())}
    out.update({f"iou_{i}": float(v) for i, v in enumerate(iou)})
    return out


def error_split(counts: torch.Tensor) -> dict[str, float]:
    """Where the mIoU goes, from (n_classes, n_classes) pixel counts (rows truth, columns prediction; class 0 the background).

    foreground_iou: IoU of "some digit" against background, whichever digit each side names (finding the ink).
    naming_accuracy: of the pixels that are a digit in both truth and prediction, the share given the right digit.
    miou_if_named_right: the mIoU of the same prediction with every such pixel given the right digit: what perfect naming
    alone would reach, so what is left below 1 is the ink's outline."""
    counts = counts.double()
    digit_as_digit = counts[1:, 1:]  # true digit pixels predicted as some digit: (truth digit, predicted digit)
    found = digit_as_digit.sum()
    named_right = counts.clone()
    named_right[1:, 1:] = torch.diag(digit_as_digit.sum(1))  # each true digit's found pixels, all given its own class
    return {
        "foreground_iou": float(found / (counts[1:].sum() + counts[:, 1:].sum() - found).clamp(min=1)),
        "naming_accuracy": float(digit_as_digit.diag().sum() / found.clamp(min=1)),
        "miou_if_named_right": scores(named_right)["miou"],
    }


def thicker_truth_miou(masks: torch.Tensor, n_classes: int) -> float:
    """mIoU that the true masks (N, H, W) themselves score when every digit is drawn 1 px thicker (3 x 3 growth, each
    digit keeps its class; where two grow into each other the higher class id wins).

    A yardstick, not a result: a model that names every digit right but puts each edge 1 px out scores about this. On
    strokes 2-5 px wide, IoU punishes that hard (the checkpoint's metrics.json holds the number)."""
    # One class at a time (a one-hot stack of the 500 test scenes would hold 0.7 GB); later, higher ids overwrite.
    grown = torch.zeros_like(masks)
    for c in range(1, n_classes):
        grown[F.max_pool2d((masks == c).float()[:, None], 3, stride=1, padding=1)[:, 0] > 0] = c
    return scores(pixel_counts(masks, grown, n_classes))["miou"]


# --- Scoring the way a person looks: outlines to within a pixel, and each digit found and named -------------------
# Boundary-tolerant IoU in the spirit of the boundary F-score (Martin et al. 2004; Csurka et al. 2013), and panoptic
# quality (Kirillov et al. 2019, "Panoptic Segmentation"). A true digit is its own ink (the scene generator says which
# pixel belongs to which digit); a predicted digit is a connected region of one class, where pieces of a stroke 1-2 px
# apart count as one region.

MIN_INSTANCE_PX = 4  # smaller predicted specks are not a digit found (the tab's summary ignores them too)
JOIN_PX = 2  # predicted pieces of one class closer than 2 * JOIN_PX + 1 px are one digit (broken strokes)
NAME_WINDOW = 17  # px at the working size: each ink pixel is named by the vote of the ink in this square around it
MIN_DIGIT_PX = 24  # a piece of one name smaller than this is part of the digit it touches (or clutter): read_labels
MIN_DIGIT_CONFIDENCE = 0.6  # a digit whose pixels give its name less probability than this, on average, is not reported


def _grow(mask: torch.Tensor, tolerance: int) -> torch.Tensor:
    """(N, H, W) bool -> the same grown by `tolerance` px in every direction (a (2t+1) square)."""
    if tolerance <= 0:
        return mask
    return F.max_pool2d(mask[:, None].float(), 2 * tolerance + 1, stride=1, padding=tolerance)[:, 0] > 0


def tolerant_counts(truth: torch.Tensor, predicted: torch.Tensor, n_classes: int, tolerance: int = 1) -> torch.Tensor:
    """(n_classes, 3) counts [matched, false positive, false negative] for label maps (N, H, W).

    A predicted pixel of class c is matched when a true pixel of class c lies within `tolerance` px, and a true pixel
    when a predicted one does; matched = the mean of the two matched counts."""
    out = torch.zeros(n_classes, 3, dtype=torch.float64)
    for c in range(n_classes):
        p, t = predicted == c, truth == c
        p_hit = (p & _grow(t, tolerance)).sum().double()
        t_hit = (t & _grow(p, tolerance)).sum().double()
        out[c] = torch.stack([(p_hit + t_hit) / 2, p.sum() - p_hit, t.sum() - t_hit])
    return out


def tolerant_miou(counts: torch.Tensor) -> float:
    """Mean over classes (background included, as `scores`) of matched / (matched + FP + FN); a class that neither the
    truth nor the prediction holds is left out (on the test scenes every class is there)."""
    matched, fp, fn = counts.unbind(1)
    total = matched + fp + fn
    present = total > 0
    return float((matched[present] / total[present]).mean())


def instances(labels: np.ndarray, n_classes: int, min_px: int = 1, join_px: int = 0) -> list[tuple[int, np.ndarray]]:
    """(H, W) label map -> [(class, bool mask)] for each 8-connected region of each digit class (not the background);
    with join_px, regions whose pixels lie within 2 * join_px + 1 of each other are one."""
    found = []
    for c in range(1, n_classes):
        mask = labels == c
        grown = ndimage.binary_dilation(mask, iterations=join_px) if join_px else mask
        regions, count = ndimage.label(grown, structure=np.ones((3, 3)))
        for k in range(1, count + 1):
            region = (regions == k) & mask
            if region.sum() >= min_px:
                found.append((c, region))
    return found


def true_digits(truth: np.ndarray, owner: np.ndarray | None, n_classes: int) -> list[tuple[int, np.ndarray]]:
    """The true digits of a scene: [(class, mask)] from the generator's owner map (which digit each pixel is), or,
    without one (a dataset of masks only), the connected regions of each class."""
    if owner is None:
        return instances(truth, n_classes, MIN_INSTANCE_PX)
    digits = []
    for k in np.unique(owner[owner > 0]):
        mask = owner == k
        if mask.sum() >= MIN_INSTANCE_PX:  # a digit almost wholly off the canvas or under another is not one a person sees
            digits.append((int(np.bincount(truth[mask]).argmax()), mask))
    return digits


def digit_counts(truth: np.ndarray, predicted: np.ndarray, n_classes: int, owner: np.ndarray | None = None) -> dict:
    """Per-digit recognition on one scene: counts of true digits, true digits found and named, predicted digits, and
    predicted digits that are right; plus the panoptic-quality sums per class.

    A true digit is found when, of its ink, the right class covers at least half in the prediction. A predicted digit
    (a region of one class, at least MIN_INSTANCE_PX) is right when at least half of it lies on true ink of its class.
    PQ matches a predicted and a true digit of the same class when their IoU is over 0.5 (unique by construction)."""
    truths = true_digits(truth, owner, n_classes)
    predicted_digits = instances(predicted, n_classes, MIN_INSTANCE_PX, JOIN_PX)
    found = sum(int((predicted[mask] == c).mean() >= 0.5) for c, mask in truths)
    right = sum(int((truth[mask] == c).mean() >= 0.5) for c, mask in predicted_digits)
    pq = np.zeros((n_classes, 4))  # per class: sum of matched IoUs, TP, FP, FN
    matched_true = set()
    for c, p_mask in predicted_digits:
        match = next(
            (k for k, (tc, t_mask) in enumerate(truths) if tc == c and (p_mask & t_mask).sum() * 2 > (p_mask | t_mask).sum()), None
        )
        if match is None or match in matched_true:
            pq[c, 2] += 1
            continue
        matched_true.add(match)
        t_mask = truths[match][1]
        pq[c, 0] += (p_mask & t_mask).sum() / (p_mask | t_mask).sum()
        pq[c, 1] += 1
    for k, (c, _) in enumerate(truths):
        if k not in matched_true:
            pq[c, 3] += 1
    return {"true": len(truths), "found": found, "predicted": len(predicted_digits), "right": right, "pq": pq}


def digit_scores(per_scene: list[dict]) -> dict[str, float]:
    """Dataset-level digit precision, recall, F1 and panoptic quality from digit_counts of every scene."""
    true = sum(s["true"] for s in per_scene)
    found = sum(s["found"] for s in per_scene)
    predicted = sum(s["predicted"] for s in per_scene)
    right = sum(s["right"] for s in per_scene)
    precision = right / max(predicted, 1)
    recall = found / max(true, 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-12)
    pq = sum(s["pq"] for s in per_scene)
    present = pq[:, 1:].sum(1) > 0
    per_class = pq[:, 0] / np.maximum(pq[:, 1] + 0.5 * pq[:, 2] + 0.5 * pq[:, 3], 1e-12)
    return {
        "digit_precision": precision,
        "digit_recall": recall,
        "digit_f1": f1,
        "pq": float(per_class[present].mean()) if present.any() else 0.0,
    }


@torch.inference_mode()
def person_scores(
    model: UNet, images: torch.Tensor, masks: torch.Tensor, n_classes: int, owners: torch.Tensor | None = None, batch_size: int = 25
) -> dict[str, float]:
    """The person's view of a test set (N, 1, H, W) with true label maps (N, H, W) and, where known, which digit each
    pixel is (N, H, W): miou_tol1, digit precision, recall, F1 and PQ."""
    model.eval()
    tolerant = torch.zeros(n_classes, 3, dtype=torch.float64)
    per_scene = []
    for start in range(0, len(images), batch_size):
        predicted = read_batch(model, images[start : start + batch_size])
        truth = masks[start : start + batch_size]
        tolerant += tolerant_counts(truth, predicted, n_classes, tolerance=1)
        for i, (t, p) in enumerate(zip(truth, predicted, strict=True)):
            owner = None if owners is None else owners[start + i].numpy()
            per_scene.append(digit_counts(t.numpy(), p.numpy(), n_classes, owner))
    return {"miou_tol1": tolerant_miou(tolerant), **digit_scores(per_scene)}


def digits_found(probs: np.ndarray, labels: np.ndarray) -> list[dict]:
    """(classes, H, W) probabilities and their reading (read_labels) -> every digit found: {"class", "box": (x0, y0, x1, y1)
    in px, "confidence": the mean probability of its name over its pixels, "pixels"}, in reading order."""
    found = []
    for c, mask in instances(labels, len(probs), MIN_INSTANCE_PX, JOIN_PX):
        ys, xs = np.nonzero(mask)
        box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        found.append({"class": c, "box": box, "confidence": float(probs[c][mask].mean()), "pixels": int(mask.sum())})
    return reading_order(found)


def reading_order(digits: list[dict]) -> list[dict]:
    """Digits with boxes -> the order a person reads them: lines from the top, each left to right. A digit joins a line
    when it overlaps the line's height by at least half of the shorter of the two."""
    lines: list[list[dict]] = []
    for digit in sorted(digits, key=lambda d: (d["box"][1] + d["box"][3]) / 2):
        _, top, _, bottom = digit["box"]
        for line in lines:
            line_top, line_bottom = min(d["box"][1] for d in line), max(d["box"][3] for d in line)
            overlap = min(bottom, line_bottom) - max(top, line_top)
            if overlap * 2 >= min(bottom - top, line_bottom - line_top):
                line.append(digit)
                break
        else:
            lines.append([digit])
    return [digit for line in lines for digit in sorted(line, key=lambda d: d["box"][0])]


def read_labels(probs: torch.Tensor | np.ndarray, confidence: float = 0.0, window: int | None = None, min_px: int | None = None):
    """Class probabilities (B, C, H, W) or (C, H, W) -> label maps (B, H, W) or (H, W) of the same kind: what the
    segmenter reads, and what every score, the tab's colouring and its list of digits are made of.

    Pixel by pixel, the top class often changes halfway along a stroke (the bar of a 7 called 7, its stem 1), and a
    person would still read one digit. So, as a person does, the reading keeps the network's answer to *where* the
    ink is (top class a digit, with at least `confidence`), and names each ink pixel by a vote: the digit
    probabilities summed over the ink within a NAME_WINDOW square around it. Then a piece of one name smaller than
    MIN_DIGIT_PX is no digit on its own: it takes the name of the ink it touches, or is clutter if it touches none.
    Last, a digit whose pixels give its name under MIN_DIGIT_CONFIDENCE on average is one the network is unsure of, and is
    not reported (the tab shows it as unsure). The sizes were chosen on the validation scenes (the test scenes are scored once)."""
    window = NAME_WINDOW if window is None else window
    min_px = MIN_DIGIT_PX if min_px is None else min_px
    as_numpy = isinstance(probs, np.ndarray)
    p = torch.as_tensor(probs, dtype=torch.float32)
    single = p.ndim == 3
    p = p[None] if single else p
    top, labels = p.max(1)
    ink = (labels > 0) & (top >= confidence)  # (B, H, W)
    votes = F.avg_pool2d(p[:, 1:] * ink[:, None], window, stride=1, padding=window // 2, count_include_pad=False)
    named = torch.where(ink, votes.argmax(1) + 1, 0).numpy()
    out = np.stack(
        [drop_unsure_digits(fold_small_pieces(one, p.shape[1], min_px), p_one) for one, p_one in zip(named, p.numpy(), strict=True)]
    )
    out = out[0] if single else out
    return out if as_numpy else torch.from_numpy(out)


def fold_small_pieces(labels: np.ndarray, n_classes: int, min_px: int) -> np.ndarray:
    """(H, W) labels -> the same with every piece of one digit class under `min_px` given the digit class most common in
    the ring of pixels around it (JOIN_PX + 1 wide), or the background where no other digit touches it."""
    out = labels.copy()
    for c, mask in instances(labels, n_classes, 1, JOIN_PX):
        if mask.sum() >= min_px:
            continue
        ring = ndimage.binary_dilation(mask, iterations=JOIN_PX + 1) & ~mask
        around = out[ring]
        around = around[(around > 0) & (around != c)]
        out[mask] = np.bincount(around).argmax() if around.size else 0
    return out


def drop_unsure_digits(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """(H, W) labels, (C, H, W) probabilities -> the labels without the digits (regions of one class, as `instances`)
    whose mean probability of their class is under MIN_DIGIT_CONFIDENCE."""
    out = labels.copy()
    for c, mask in instances(labels, len(probs), 1, JOIN_PX):
        if probs[c][mask].mean() < MIN_DIGIT_CONFIDENCE:
            out[mask] = 0
    return out


def pq_of_truth(masks: torch.Tensor, owners: torch.Tensor) -> float:
    """PQ that the true masks score as a prediction of themselves: a yardstick, not a result. Below 1 because a digit
    cut in two by another (or a broken stroke further apart than JOIN_PX allows) is two predicted regions."""
    n_classes = int(masks.max()) + 1
    return digit_scores([digit_counts(m.numpy(), m.numpy(), n_classes, o.numpy()) for m, o in zip(masks, owners, strict=True)])["pq"]

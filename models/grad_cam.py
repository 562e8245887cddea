"""Grad-CAM (Selvaraju et al. 2017, "Grad-CAM: visual explanations from deep networks via gradient-based
localization"): where in a photo the EfficientNet found the evidence for a class."""

import numpy as np
import torch
import torch.nn.functional as F

from models.efficientnet_lite import EfficientNetLite


def grad_cam(net: EfficientNetLite, x: torch.Tensor, class_index: int | None = None, classifier=None) -> tuple[np.ndarray, int, float]:
    """(7, 7) heat map in [0, 1] of the regions that raise the class score, the class, and its probability."""
    cam, index, probs = grad_cam_and_probs(net, x, class_index, classifier)
    return cam, index, float(probs[index])


def grad_cam_and_probs(
    net: EfficientNetLite, x: torch.Tensor, class_index: int | None = None, classifier=None
) -> tuple[np.ndarray, int, torch.Tensor]:
    """Grad-CAM map, the explained class, and all class probabilities (one forward pass for both).

    Each of the 1,280 last feature maps is weighted by how much the class logit grows when that map
    grows (its gradient, averaged over the map); the weighted sum, clipped at zero, is the map.
    classifier: pooled features (1, 1280) -> logits; the network's own 1,000-class layer unless a taught head's is given."""
    classifier = net.classifier if classifier is None else classifier
    with torch.enable_grad():
        features = net.features(x)  # (1, 1280, 7, 7)
        logits = classifier(features.mean(dim=(2, 3)))  # (1, classes)
        index = int(logits.argmax()) if class_index is None else class_index
        (grads,) = torch.autograd.grad(logits[0, index], features)  # (1, 1280, 7, 7)
    weights = grads.mean(dim=(2, 3), keepdim=True)  # (1, 1280, 1, 1)
    cam = F.relu((weights * features).sum(dim=1))[0].detach().float().cpu().numpy()  # (7, 7)
    probs = logits.detach().float().softmax(-1)[0].cpu()
    return cam / max(float(cam.max()), 1e-8), index, probs

"""The judge every digit generator faces (the GAN, the diffusion model and their tabs share it).

Our own digit classifier stands in for the Inception network of FID (Heusel et al. 2017, "GANs trained by a two
time-scale update rule converge to a local Nash equilibrium"): generated digits are compared with real held-out
digits on the classifier's last hidden layer, which knows what digits look like and nothing else.
"""

import numpy as np
import torch

from data.mnist import load_splits
from models.digit_classifier import DigitClassifier


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N, D), as in FID."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # Tr(sqrt(A B)) from the eigenvalues of A^1/2 B A^1/2, which is symmetric PSD (stable, no scipy needed).
    vals, vecs = np.linalg.eigh(cov_a)
    sqrt_a = (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T
    middle = np.linalg.eigvalsh(sqrt_a @ cov_b @ sqrt_a)
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.sqrt(np.clip(middle, 0, None)).sum())


def mean_pairwise_distance(features: np.ndarray, n: int = 2000, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    f = features[rng.permutation(len(features))[:n]].astype(np.float64)
    sq = (f**2).sum(1)
    d2 = np.clip(sq[:, None] + sq[None, :] - 2 * f @ f.T, 0, None)
    return float(np.sqrt(d2)[np.triu_indices(len(f), 1)].mean())


@torch.no_grad()
def judge_digits(
    fakes: torch.Tensor, labels: torch.Tensor, judge: DigitClassifier, seed: int = 0, reference: str = "test"
) -> dict[str, float]:
    """The judge every digit generator faces: generated digits (N, 1, 28, 28) in [0, 1] drawn for `labels`.

    Fréchet distance and diversity use (up to) 5,000 of them against the 1,000 real test digits, or,
    with reference="val", the 500 validation digits (for choosing sampling settings without the test split)."""
    judge.eval()
    splits = load_splits()

    def feats(x: torch.Tensor) -> np.ndarray:
        return torch.cat([judge.embed(x[i : i + 1000]) for i in range(0, len(x), 1000)]).numpy()

    preds = torch.cat([judge(fakes[i : i + 1000]).argmax(-1) for i in range(0, len(fakes), 1000)])
    test = torch.from_numpy(splits.test_x if reference == "test" else splits.val_x).float().div(255).unsqueeze(1)
    train = torch.from_numpy(splits.train_x).float().div(255).unsqueeze(1)
    fake_feats = feats(fakes[torch.randperm(len(fakes), generator=torch.Generator().manual_seed(seed))[:5000]])
    test_feats, train_feats = feats(test), feats(train)
    return {
        "class_accuracy": float((preds == labels).float().mean()),
        "fid_digits": frechet_distance(fake_feats, test_feats),
        "fid_real_baseline": frechet_distance(train_feats, test_feats),
        "diversity": mean_pairwise_distance(fake_feats) / mean_pairwise_distance(test_feats),
    }

"""Measures of what a generative model produces: mode coverage, sample quality, novelty.

2-D mixtures (``ring8``, ``grid25``), following Srivastava et al. (2017), "VEEGAN", and Lin et
al. (2018), "PacGAN": from 2,500 samples, a mode is *captured* when at least one sample lies
within 3 sigma of it, and a sample is *high quality* when it lies within 3 sigma of its nearest mode.

Digits: a Frechet distance between Gaussians fitted to features of real and generated images
(Heusel et al., 2017, "GANs trained by a two time-scale update rule converge to a local Nash
equilibrium"). The features come from a small classifier this project trains on the digits
training split (the penultimate layer of a seeded :class:`~deepatlas.models.mlp.MLPClassifier`),
not from Inception-v3, so the number is a *classifier-feature FID*, comparable only with itself.
The same classifier gives the share of conditional samples classified as their conditioning
label. The nearest-training-sample distance checks that samples are not copies of the training
set (compare it with the same distance for held-out real data).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


# ---- 2-D mixtures -------------------------------------------------------------------------------
def mode_coverage(samples: np.ndarray, modes: np.ndarray, sigma: float) -> dict[str, float]:
    """``modes_captured`` (modes with a sample within 3 sigma), ``high_quality_share`` (samples
    within 3 sigma of their nearest mode), ``n_modes``, and ``mode_balance``: the smallest captured
    mode's share of high-quality samples times the number of modes (1.0 = perfectly even)."""
    samples = np.asarray(samples, dtype=np.float64).reshape(len(samples), -1)  # (N, 2)
    modes = np.asarray(modes, dtype=np.float64)  # (K, 2)
    dist = np.linalg.norm(samples[:, None, :] - modes[None, :, :], axis=2)  # (N, K)
    nearest = dist.argmin(axis=1)
    close = dist[np.arange(len(samples)), nearest] <= 3 * sigma  # (N,)
    counts = np.bincount(nearest[close], minlength=len(modes))
    captured = int((counts > 0).sum())
    balance = float(counts.min() * len(modes) / max(close.sum(), 1))
    return {
        "modes_captured": captured,
        "n_modes": len(modes),
        "high_quality_share": float(close.mean()),
        "mode_balance": balance,
    }


# ---- distances --------------------------------------------------------------------------------
def nearest_distances(samples: np.ndarray, reference: np.ndarray, batch: int = 1024) -> np.ndarray:
    """Euclidean distance from each (flattened) sample to its nearest row of ``reference``; (N,)."""
    A = np.asarray(samples, dtype=np.float64).reshape(len(samples), -1)
    B = np.asarray(reference, dtype=np.float64).reshape(len(reference), -1)
    b2 = (B**2).sum(axis=1)
    out = np.empty(len(A))
    for i in range(0, len(A), batch):
        a = A[i : i + batch]
        d2 = (a**2).sum(axis=1)[:, None] - 2 * a @ B.T + b2[None, :]
        out[i : i + batch] = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
    return out


def novelty(samples: np.ndarray, X_train: np.ndarray, X_heldout: np.ndarray) -> dict[str, float]:
    """Median nearest-training-sample distance of samples, of held-out real data, and their ratio
    (about 1: as novel as fresh real data; near 0: copies of the training set)."""
    gen = float(np.median(nearest_distances(samples, X_train)))
    real = float(np.median(nearest_distances(X_heldout, X_train)))
    return {"nearest_train_distance": gen, "real_nearest_train_distance": real, "novelty_ratio": gen / max(real, 1e-12)}


def frechet_distance(f1: np.ndarray, f2: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (rows are samples)."""
    from scipy import linalg

    mu1, mu2 = f1.mean(axis=0), f2.mean(axis=0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():  # near-singular product: regularise as Heusel et al. do
        eps = 1e-6 * np.eye(len(s1))
        covmean = linalg.sqrtm((s1 + eps) @ (s2 + eps))
    covmean = np.real(covmean)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def cluster_accuracy(pred: np.ndarray, true: np.ndarray) -> float:
    """Accuracy of cluster ids against labels under the best one-to-one matching (Hungarian)."""
    from scipy.optimize import linear_sum_assignment

    pred = np.asarray(pred)
    true = np.asarray(true)
    p_ids, p = np.unique(pred, return_inverse=True)
    t_ids, t = np.unique(true, return_inverse=True)
    table = np.zeros((len(p_ids), len(t_ids)), dtype=np.int64)
    np.add.at(table, (p, t), 1)
    rows, cols = linear_sum_assignment(-table)
    return float(table[rows, cols].sum() / len(true))


# ---- the digits classifier ----------------------------------------------------------------------
@lru_cache(maxsize=4)
def digits_classifier(seed: int = 0):
    """An MLP classifier trained (seeded, CPU) on the digits training split; its 64-unit last
    hidden layer gives the features of the classifier-feature FID."""
    from deepatlas.data import load_dataset
    from deepatlas.models.mlp import MLPClassifier

    ds = load_dataset("digits")
    clf = MLPClassifier(hidden_sizes=(256, 64), dropout=0.2, epochs=200, patience=20, seed=seed, device="cpu")
    return clf.fit(ds.X_train, ds.y_train, validation_data=(ds.X_val, ds.y_val))


def classifier_features(clf, X: np.ndarray) -> np.ndarray:
    """Penultimate-layer activations of ``clf`` (an MLPClassifier) for images ``X``; (N, 64)."""
    import torch

    X = clf._standardized(clf._check_input(X))
    body = clf.module_[:-1]  # everything but the output layer
    with torch.no_grad():
        return body(torch.as_tensor(X, dtype=torch.float32, device=clf.device_)).cpu().numpy().astype(np.float64)


def digits_quality(samples: np.ndarray, ds, labels: np.ndarray | None = None, seed: int = 0) -> dict[str, float]:
    """Classifier-feature FID of ``samples`` against the digits training split (with the FID of
    the held-out real images as the floor), and, given conditioning ``labels``, the share of
    samples the classifier assigns to them."""
    clf = digits_classifier(seed)
    samples = np.clip(np.asarray(samples, dtype=np.float32), 0.0, 1.0).reshape(len(samples), *ds.sample_shape)
    real = classifier_features(clf, ds.X_train)
    heldout = np.concatenate([ds.X_val, ds.X_test])
    out = {
        "classifier_fid": frechet_distance(classifier_features(clf, samples), real),
        "real_classifier_fid": frechet_distance(classifier_features(clf, heldout), real),
        "classifier_test_accuracy": float(clf.score(ds.X_test, ds.y_test)),
    }
    if labels is not None:
        out["label_agreement"] = float(np.mean(clf.predict(samples) == np.asarray(labels)))
    return out


# ---- pictures -----------------------------------------------------------------------------------
def image_mosaic(images: np.ndarray, ncols: int | None = None, pad: int = 1) -> np.ndarray:
    """Tile images ``(n, C, H, W)`` into one ``(rows*(H+pad), cols*(W+pad)[, C])`` array."""
    n, c, h, w = images.shape
    ncols = ncols or int(np.ceil(np.sqrt(n)))
    nrows = int(np.ceil(n / ncols))
    canvas = np.ones((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), dtype=np.float32)
    for i, img in enumerate(images):
        r, col = divmod(i, ncols)
        y0, x0 = pad + r * (h + pad), pad + col * (w + pad)
        canvas[y0 : y0 + h, x0 : x0 + w] = img.transpose(1, 2, 0)
    return canvas[..., 0] if c == 1 else canvas


def plot_samples(estimator, samples: np.ndarray, path, *, labels=None, title: str | None = None):
    """Images as a grid; 2-D points as a scatter over the true modes (with 3-sigma circles) when
    the model was trained on a known mixture; other vectors as a scatter of their first two features."""
    from deepatlas.plotting import new_figure, save_figure

    name = type(estimator).__name__
    if samples.ndim == 4:
        lo, hi = estimator.center_[0] - estimator.scale_[0], estimator.center_[0] + estimator.scale_[0]
        ncols = None
        if labels is not None:  # one row per class when the classes come in equal blocks
            _, counts = np.unique(labels, return_counts=True)
            ncols = int(counts[0]) if (counts == counts[0]).all() and counts[0] <= 16 else None
        mosaic = np.clip((image_mosaic(samples, ncols) - lo) / max(hi - lo, 1e-8), 0, 1)
        fig, ax = new_figure(figsize=(5, 5))
        ax.imshow(mosaic, cmap="gray_r" if mosaic.ndim == 2 else None, interpolation="nearest")
        ax.axis("off")
        suffix = "" if labels is None else " (rows of labels " + " ".join(str(v) for v in np.unique(labels)[:10]) + ")"
        ax.set_title(title or f"{name}: {len(samples)} samples{suffix}", fontsize=9)
        return save_figure(fig, path)
    flat = samples.reshape(len(samples), -1)
    fig, ax = new_figure(figsize=(5, 5))
    ax.scatter(flat[:, 0], flat[:, 1 if flat.shape[1] > 1 else 0], s=4, alpha=0.5, label="samples")
    modes = getattr(estimator, "modes_", None)
    if modes is not None:
        ax.scatter(modes[:, 0], modes[:, 1], marker="x", c="red", s=30, label="true modes")
        for m in modes:
            ax.add_patch(_circle(m, 3 * estimator.sigma_))
        stats = mode_coverage(flat, modes, estimator.sigma_)
        title = title or (
            f"{name}: {stats['modes_captured']}/{stats['n_modes']} modes, "
            f"{100 * stats['high_quality_share']:.1f}% high quality ({len(flat)} samples)"
        )
    ax.set_title(title or f"{name}: {len(flat)} samples", fontsize=9)
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(loc="upper right", fontsize=7)
    return save_figure(fig, path)


def _circle(center, radius):
    from matplotlib.patches import Circle

    return Circle(tuple(center), radius, fill=False, color="red", lw=0.6)


def plot_traversal(images: np.ndarray, n_rows: int, path, title: str):
    """A code traversal: ``images`` ``(n_rows * n_cols, C, H, W)``, one row per category."""
    from deepatlas.plotting import new_figure, save_figure

    mosaic = np.clip(image_mosaic(images, ncols=len(images) // n_rows), 0, 1)
    fig, ax = new_figure(figsize=(6, 6 * n_rows / (len(images) // n_rows)))
    ax.imshow(mosaic, cmap="gray_r" if mosaic.ndim == 2 else None, interpolation="nearest")
    ax.axis("off")
    ax.set_title(title, fontsize=9)
    return save_figure(fig, path)

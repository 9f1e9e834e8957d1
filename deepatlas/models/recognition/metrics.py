"""Measures of recognition and pose estimation.

Open-set recognition (the face-recognition protocol, e.g. LFW's verification and the
identification of Labeled Faces in the Wild and MegaFace): embeddings of images whose identities
were never seen in training are compared by cosine similarity.

- **Verification** ("same identity?"): every pair of test images is scored; the ROC curve over
  those scores comes from scikit-learn (``roc_curve``, ``auc``). The equal error rate is where
  the false-accept rate equals the false-reject rate (read off the ROC curve, interpolated
  between its two points around the crossing); TAR@FAR=1e-2 is the best true-accept rate at a
  false-accept rate of at most 1 %.
- **Identification, rank-1** ("who?"): a gallery holds one image per identity; each other image
  (probe) is given the identity of its most similar gallery image. Averaged over 10 seeded
  draws of the gallery.
- **PCK** (percentage of correct keypoints; Yang & Ramanan, 2013; Andriluka et al., 2014): a
  predicted joint is correct within ``alpha`` times the figure's size (the longer side of its
  true keypoints' box).
"""

from __future__ import annotations

import numpy as np

from deepatlas.data.figures import figure_size
from deepatlas.errors import InputError

MAX_PAIR_IMAGES = 2000
"""Verification scores every pair of at most this many test images (about 2 million pairs),
drawn seeded and balanced across identities when there are more."""
GALLERY_DRAWS = 10


def l2_normalize(E: np.ndarray) -> np.ndarray:
    E = np.asarray(E, np.float64)
    return E / np.maximum(np.linalg.norm(E, axis=1, keepdims=True), 1e-12)


def _subset(ids: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """Indices of at most ``limit`` samples, as balanced across identities as their counts allow."""
    if len(ids) <= limit:
        return np.arange(len(ids))
    rng = np.random.default_rng(seed)
    groups = [rng.permutation(np.flatnonzero(ids == c)) for c in np.unique(ids)]
    picked: list[int] = []
    depth = 0
    while len(picked) < limit:
        for g in groups:
            if depth < len(g) and len(picked) < limit:
                picked.append(int(g[depth]))
        depth += 1
    return np.sort(np.asarray(picked))


def pair_scores(E: np.ndarray, ids: np.ndarray, *, limit: int = MAX_PAIR_IMAGES, seed: int = 0):
    """``(scores, same)``: cosine similarity and same-identity flag of every pair ``i < j``."""
    keep = _subset(np.asarray(ids), limit, seed)
    E, ids = l2_normalize(E)[keep], np.asarray(ids)[keep]
    i, j = np.triu_indices(len(E), k=1)
    sims = E @ E.T
    return sims[i, j], ids[i] == ids[j]


def check_identities(ids: np.ndarray, what: str = "the test data") -> None:
    """Verification needs two identities and two images of each."""
    labels, counts = np.unique(np.asarray(ids), return_counts=True)
    if len(labels) < 2:
        raise InputError(f"Verification on {what} needs at least 2 identities. Got {len(labels)} instead.")
    if counts.min() < 2:
        lonely = labels[counts.argmin()]
        lonely = lonely.item() if hasattr(lonely, "item") else lonely  # 3, not np.int64(3)
        raise InputError(
            f"Verification on {what}: identity {lonely!r} has 1 image; at least 2 images of every identity are needed."
        )


def verification(scores: np.ndarray, same: np.ndarray) -> dict:
    """``auc``, ``eer``, ``tar_at_far_1e-2`` and the ROC curve (``fpr``, ``tpr``) of pair scores."""
    from sklearn.metrics import auc, roc_curve

    same = np.asarray(same, bool)
    if same.all() or not same.any():
        raise InputError("Verification needs pairs of the same identity and pairs of different identities.")
    fpr, tpr, _ = roc_curve(same, scores)
    return {
        "auc": float(auc(fpr, tpr)),
        "eer": equal_error_rate(fpr, tpr),
        "tar_at_far_1e-2": tar_at_far(fpr, tpr),
        "fpr": fpr,
        "tpr": tpr,
    }


def equal_error_rate(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """The rate where false accepts (``fpr``) equal false rejects (``1 - tpr``) on a ROC curve,
    linearly interpolated between the two curve points around the crossing."""
    fnr = 1 - np.asarray(tpr, np.float64)
    fpr = np.asarray(fpr, np.float64)
    diff = fnr - fpr  # falls from 1 (threshold above every score) to -1
    k = int(np.argmax(diff <= 0))
    if k == 0:
        return float(fpr[0])
    d0, d1 = diff[k - 1], diff[k]
    t = d0 / (d0 - d1) if d0 != d1 else 0.0
    return float(fpr[k - 1] + t * (fpr[k] - fpr[k - 1]))


def tar_at_far(fpr: np.ndarray, tpr: np.ndarray, far: float = 1e-2) -> float:
    """The best true-accept rate at a false-accept rate of at most ``far``."""
    ok = np.asarray(fpr) <= far
    return float(np.asarray(tpr)[ok].max()) if ok.any() else 0.0


def rank1(E: np.ndarray, ids: np.ndarray, *, draws: int = GALLERY_DRAWS, seed: int = 0) -> float:
    """Identification accuracy with a gallery of one image per identity, over ``draws`` seeded
    galleries (the other images are the probes)."""
    E, ids = l2_normalize(E), np.asarray(ids)
    labels = np.unique(ids)
    rng = np.random.default_rng(seed)
    hits = []
    for _ in range(draws):
        gallery = np.array([rng.choice(np.flatnonzero(ids == c)) for c in labels])
        probes = np.setdiff1d(np.arange(len(ids)), gallery)
        guess = labels[(E[probes] @ E[gallery].T).argmax(axis=1)]
        hits.append(np.mean(guess == ids[probes]))
    return float(np.mean(hits))


def open_set_scores(E: np.ndarray, ids: np.ndarray, seed: int = 0, what: str = "the test data") -> dict:
    """Every open-set measure of embeddings ``E`` of images of identities ``ids``."""
    check_identities(ids, what)
    v = verification(*pair_scores(E, ids, seed=seed))
    v["rank1"] = rank1(E, ids, seed=seed)
    return v


def plot_roc(curves: dict[str, tuple[np.ndarray, np.ndarray, float]], path, title: str = "") -> None:
    """ROC curves ``{label: (fpr, tpr, auc)}`` on a log false-accept axis, the chance line dashed."""
    from deepatlas.plotting import new_figure, save_figure

    fig, ax = new_figure(figsize=(5, 4.2))
    for label, (fpr, tpr, area) in curves.items():
        ax.plot(np.maximum(fpr, 1e-5), tpr, label=f"{label} (AUC {area:.3f})")
    grid = np.logspace(-5, 0, 100)
    ax.plot(grid, grid, "k--", lw=0.8, label="chance")
    ax.set_xscale("log")
    ax.set_xlim(1e-4, 1)
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate")
    ax.set_title(title or "verification ROC (identities unseen in training)")
    ax.legend(loc="lower right", fontsize=8)
    save_figure(fig, path)


def pck(pred: np.ndarray, truth: np.ndarray, alpha: float = 0.1) -> np.ndarray:
    """``(n, J)`` booleans: joint j of sample i lies within ``alpha`` times the figure's size."""
    pred, truth = np.asarray(pred, np.float64), np.asarray(truth, np.float64)
    size = figure_size(truth)  # (n,)
    return np.linalg.norm(pred - truth, axis=2) <= alpha * size[:, None]

"""Helpers the families share: images for pictures, image grids, and the linear probe.

One of each, so that "as images", "a grid of samples" and "probe accuracy" mean the same in the
RBM, autoencoder, VAE and sparse-coding reports.
"""

from __future__ import annotations

import math

import numpy as np


def as_images(X: np.ndarray) -> np.ndarray | None:
    """(n, H, W) grey images from (n, C, H, W) (the first channel), (n, H, W) or square rows
    (n, D) with D = side² and side ≥ 3; ``None`` when the samples are not images."""
    if X.ndim == 4:
        return X[:, 0]
    if X.ndim == 3:
        return X
    if X.ndim == 2:
        side = int(round(math.sqrt(X.shape[1])))
        if side * side == X.shape[1] and side >= 3:
            return X.reshape(len(X), side, side)
    return None


def image_grid(images: np.ndarray, path, *, rows: int, title: str = "", value_range=None) -> None:
    """Images (n, H, W) tiled into one picture of ``rows`` rows (one axes: fast to draw);
    grey levels span ``value_range`` (default: the images' own range; values beyond it clip)."""
    from deepatlas.plotting import new_figure, save_figure

    n, h, w = images.shape
    cols = int(np.ceil(n / rows))
    lo, hi = value_range or (float(np.min(images)), float(np.max(images)))
    canvas = np.full((rows * (h + 1) + 1, cols * (w + 1) + 1), lo, dtype=np.float32)  # 1-pixel gaps
    for i in range(n):
        r, c = divmod(i, cols)
        canvas[1 + r * (h + 1) : (r + 1) * (h + 1), 1 + c * (w + 1) : (c + 1) * (w + 1)] = images[i]
    fig, ax = new_figure(figsize=(min(0.7 * cols, 12) + 0.2, min(0.7 * rows, 12) * h / w + 0.5))
    ax.imshow(canvas, cmap="gray_r", vmin=lo, vmax=hi, interpolation="nearest")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    save_figure(fig, path)


def tile_figure(images: np.ndarray, title: str = ""):
    """A square-ish grid of images, one axes each, no ticks; signed images (filters) in a
    diverging colour map. Returns the figure."""
    from deepatlas.plotting import new_figure

    n = len(images)
    cols = int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / cols))
    fig, axes = new_figure(rows, cols, figsize=(cols * 0.7 + 0.4, rows * 0.7 + 0.6), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i], cmap="gray_r" if images[i].min() >= 0 else "RdBu_r", interpolation="nearest")
    fig.suptitle(title, fontsize=8)
    return fig


def linear_probe(Z_train, y_train, Z_test, y_test, *, standardize: bool = True, C: float = 1.0, max_iter: int = 2000):
    """Test accuracy of a logistic regression trained on features ``Z`` (codes, hidden units):
    how linearly the classes separate in them. ``standardize`` scales each feature first."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = LogisticRegression(C=C, max_iter=max_iter)
    clf = make_pipeline(StandardScaler(), clf) if standardize else clf
    return float(clf.fit(Z_train, y_train).score(Z_test, y_test))

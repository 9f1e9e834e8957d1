"""The evaluation's figures, drawn with matplotlib from numbers scikit-learn computed.

Each function takes the result dictionaries of :mod:`deepatlas.evaluation.metrics` (or of
cross-validation) and writes one PNG atomically through :func:`deepatlas.plotting.save_figure`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from deepatlas.plotting import new_figure, save_figure

_MAX_CLASS_CURVES = 10  # beyond this, per-class curves are drawn thin and unlabelled


def confusion_matrices(result: dict, path: str | os.PathLike, title: str = "") -> Path:
    """Counts and row-normalised matrices side by side."""
    from sklearn.metrics import ConfusionMatrixDisplay

    labels = [str(c) for c in result["classes"]]
    k = len(labels)
    size = min(5.5, 2.4 + 0.3 * k)
    fig, axes = new_figure(1, 2, figsize=(2 * size + 0.8, size))
    cm = result["confusion_matrix"]
    for ax, matrix, fmt, name in (
        (axes[0], np.asarray(cm["counts"]), "d", "counts"),
        (axes[1], np.asarray(cm["normalized"]), ".2f", "row-normalised (recall on the diagonal)"),
    ):
        disp = ConfusionMatrixDisplay(matrix, display_labels=labels)
        disp.plot(ax=ax, values_format=fmt, colorbar=False, cmap="Blues", include_values=k <= 15)
        ax.set_title(name, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def _class_lines(ax, per_class: dict, x: str, y: str, score: str, label_fmt: str) -> None:
    many = len(per_class) > _MAX_CLASS_CURVES
    for name, c in per_class.items():
        ax.plot(
            c[x],
            c[y],
            lw=0.6 if many else 1.0,
            alpha=0.5 if many else 0.8,
            label=None if many else label_fmt.format(name=name, v=c[score]),
        )


def roc_plot(roc: dict, path: str | os.PathLike, title: str = "", macro_auc: float | None = None) -> Path:
    fig, ax = new_figure(figsize=(5.4, 4.8))
    _class_lines(ax, roc["per_class"], "fpr", "tpr", "auc", "class {name} (AUC {v:.3f})")
    ax.plot(
        roc["micro"]["fpr"], roc["micro"]["tpr"], "k--", lw=2, label=f"micro-average (AUC {roc['micro']['auc']:.3f})"
    )
    macro = roc["macro"]["auc"] if macro_auc is None else macro_auc
    ax.plot(roc["macro"]["fpr"], roc["macro"]["tpr"], "k:", lw=2, label=f"macro-average (AUC {macro:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, alpha=0.6)
    ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), xlabel="false-positive rate", ylabel="true-positive rate")
    ax.set_title(title or "ROC (one-vs-rest)", fontsize=10)
    ax.legend(loc="lower right", fontsize=7)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def pr_plot(pr: dict, path: str | os.PathLike, title: str = "") -> Path:
    fig, ax = new_figure(figsize=(5.4, 4.8))
    _class_lines(ax, pr["per_class"], "recall", "precision", "ap", "class {name} (AP {v:.3f})")
    ax.plot(
        pr["micro"]["recall"],
        pr["micro"]["precision"],
        "k--",
        lw=2,
        label=f"micro-average (AP {pr['micro']['ap']:.3f})",
    )
    ax.plot(
        pr["macro"]["recall"], pr["macro"]["precision"], "k:", lw=2, label=f"macro-average (AP {pr['macro']['ap']:.3f})"
    )
    ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.02), xlabel="recall", ylabel="precision")
    ax.set_title(title or "precision-recall (one-vs-rest)", fontsize=10)
    ax.legend(loc="lower left", fontsize=7)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def reliability_plot(cal: dict, path: str | os.PathLike, title: str = "") -> Path:
    """Accuracy against confidence per bin (bars), the diagonal of perfect calibration, and the
    share of samples per bin underneath."""
    edges = np.asarray(cal["bin_edges"], dtype=float)
    acc = np.asarray(cal["accuracy"], dtype=float)
    conf = np.asarray(cal["confidence"], dtype=float)
    counts = np.asarray(cal["count"], dtype=float)
    width = edges[1] - edges[0]
    fig, (ax, axc) = new_figure(2, 1, figsize=(5.2, 5.4), gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    filled = counts > 0
    ax.bar(edges[:-1][filled], acc[filled], width=width, align="edge", edgecolor="k", alpha=0.75, label="accuracy")
    centers = (edges[:-1] + width / 2)[filled]
    ax.vlines(centers, acc[filled], conf[filled], color="tab:red", lw=2, label="gap")
    ax.plot(centers, conf[filled], "o", color="tab:red", ms=4, label="mean confidence")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.set(ylim=(0, 1.02), ylabel="accuracy of the predicted class")
    ax.set_title(title or f"reliability (ECE {cal['ece']:.3f})", fontsize=10)
    ax.legend(loc="upper left", fontsize=7)
    axc.bar(edges[:-1], counts / max(counts.sum(), 1), width=width, align="edge", color="grey", edgecolor="k")
    axc.set(xlim=(0, 1), xlabel="confidence (top-class probability)", ylabel="share")
    return save_figure(fig, path)


def residual_plots(result: dict, path_residuals: str | os.PathLike, path_pred: str | os.PathLike, title: str = ""):
    y = np.asarray(result["y_true"], dtype=float).ravel()
    pred = np.asarray(result["y_pred"], dtype=float).ravel()
    fig, ax = new_figure(figsize=(5.4, 4.2))
    ax.scatter(pred, y - pred, s=8, alpha=0.5)
    ax.axhline(0.0, color="k", lw=1)
    ax.set(xlabel="predicted", ylabel="residual (true - predicted)")
    ax.set_title(f"{title}: residuals" if title else "residuals", fontsize=10)
    ax.grid(alpha=0.3)
    save_figure(fig, path_residuals)
    fig, ax = new_figure(figsize=(5.0, 4.8))
    ax.scatter(y, pred, s=8, alpha=0.5)
    lo, hi = float(min(y.min(), pred.min())), float(max(y.max(), pred.max()))
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="predicted = true")
    ax.set(xlabel="true", ylabel="predicted")
    r2 = f"predicted vs true (R² {result['metrics']['r2']:.3f})"
    ax.set_title(f"{title}: {r2}" if title else r2, fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(fig, path_pred)


def fold_box_plot(per_model: dict[str, list[float]], metric: str, path: str | os.PathLike, title: str = "") -> Path:
    """One box of per-fold scores per model, with the folds as points."""
    names = list(per_model)
    fig, ax = new_figure(figsize=(max(4.0, 1.3 * len(names) + 2), 4.2))
    data = [np.asarray(per_model[n], dtype=float) for n in names]
    ax.boxplot(data, tick_labels=names, showmeans=True)
    rng = np.random.default_rng(0)  # jitter only, for legibility
    for i, d in enumerate(data, start=1):
        ax.scatter(i + rng.uniform(-0.08, 0.08, len(d)), d, s=10, alpha=0.6, color="tab:blue", zorder=3)
    ax.set_ylabel(metric)
    ax.set_title(title or f"{metric} per fold", fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    return save_figure(fig, path)


def curve_plot(x, train, val, xlabel: str, metric: str, path: str | os.PathLike, title: str = "") -> Path:
    """Training and validation score (mean ± std band over folds when 2-D) against ``x``."""
    fig, ax = new_figure(figsize=(5.8, 4.2))
    x = np.asarray(x, dtype=float)
    for values, name, color in ((train, "training", "tab:blue"), (val, "validation", "tab:orange")):
        v = np.asarray(values, dtype=float)
        if v.ndim == 2:
            mean, std = np.nanmean(v, axis=1), np.nanstd(v, axis=1)
            ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.2)
        else:
            mean = v
        ax.plot(x, mean, "o-" if len(x) <= 20 else "-", color=color, label=name, ms=4)
    ax.set(xlabel=xlabel, ylabel=metric)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)

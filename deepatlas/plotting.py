"""Small matplotlib helpers shared by the run directory, evaluation and the atlas (Agg backend,
written atomically so that a reader never finds half a PNG)."""

from __future__ import annotations

import os
from pathlib import Path

from deepatlas._io import atomic_path


def new_figure(*args, **kwargs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    import matplotlib.pyplot as plt

    path = Path(path)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    return path


def plot_history(history: list[dict], path: str | os.PathLike, title: str = "") -> Path:
    """Loss curves (every key with 'loss') and, on a second axis, any accuracy per epoch."""
    epochs = [h.get("epoch", i + 1) for i, h in enumerate(history)]
    keys = sorted({k for h in history for k in h if k != "epoch"})
    losses = [k for k in keys if "loss" in k or k == "mistakes"]
    scores = [k for k in keys if "accuracy" in k]
    if not losses and not scores:  # a family that logs other measures (errors, RMSE, likelihoods)
        losses = [k for k in keys if all(isinstance(h.get(k), (int, float)) for h in history)]
    fig, ax = new_figure(figsize=(6, 3.6))
    for k in losses:
        ax.plot(epochs, [h.get(k) for h in history], label=k)
    ax.set_xlabel("epoch")
    ax.set_ylabel("mistakes per pass" if losses == ["mistakes"] else "loss" if any("loss" in k for k in losses) else "")
    if scores:
        ax2 = ax.twinx()
        for k in scores:
            ax2.plot(epochs, [h.get(k) for h in history], linestyle="--", color="tab:green", label=k)
        ax2.set_ylabel("accuracy")
        ax2.legend(loc="center right", fontsize=8)
    if losses:
        ax.legend(loc="upper right", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)

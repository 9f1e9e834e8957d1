"""Pictures of the sequence-to-sequence and memory-network family: attention heat maps (source
tokens across, written tokens down) and memory-network hop attention over story sentences."""

from __future__ import annotations

import numpy as np

from deepatlas.plotting import new_figure, save_figure


def attention_heatmaps(est, sources: list[str], found: dict, path):
    """One panel per source: the decoder's attention weights, one row per written token."""
    from deepatlas.models.seq2seq.seq2seq import tokenize

    n = len(sources)
    fig, axes = new_figure(1, n, figsize=(4.2 * n, 3.8), squeeze=False)
    for ax, src, out, w in zip(axes[0], sources, found["translations"], found["attention"]):
        src_toks = tokenize(src, est.level)[: w.shape[1]]
        out_toks = tokenize(out, est.level) + ["</s>"]
        w = w[: len(out_toks)]
        ax.imshow(w, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_xticks(range(len(src_toks)), [repr(t)[1:-1] or " " for t in src_toks], fontsize=7, rotation=90)
        ax.set_yticks(range(len(w)), out_toks[: len(w)], fontsize=7)
        ax.set_title(f"{src[:40]!r}", fontsize=8)
    fig.suptitle(f"{type(est).__name__} ({est.attention} attention): weight of each source token", fontsize=9)
    return save_figure(fig, path)


def hop_attention(stories: list[list[str]], questions: list[str], weights: np.ndarray, supports, path, title=""):
    """Per example: the attention of each hop (columns) over the story sentences (rows); the
    supporting facts the generator named are marked with '*'."""
    n = len(stories)
    fig, axes = new_figure(1, n, figsize=(5.2 * n, 4.2), squeeze=False)
    for ax, story, q, w, sup in zip(axes[0], stories, questions, weights, supports):
        m = len(story)
        ax.imshow(w[:, :m].T, cmap="magma", vmin=0.0, vmax=1.0, aspect="auto")
        labels = [("* " if i + 1 in sup else "  ") + s[:38] for i, s in enumerate(story)]
        ax.set_yticks(range(m), labels, fontsize=7)
        ax.set_xticks(range(w.shape[0]), [f"hop {k + 1}" for k in range(w.shape[0])], fontsize=7)
        ax.set_title(q[:50], fontsize=8)
    fig.suptitle(title or "memory attention per hop (* = supporting fact)", fontsize=9)
    return save_figure(fig, path)

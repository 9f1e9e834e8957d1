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


def length_buckets_plot(buckets_by_model: dict[str, list[dict]], path, unit: str = "characters"):
    """Exact match per source-length bucket (:func:`~deepatlas.models.seq2seq.seq2seq.exact_match_by_length`),
    one group of bars per bucket and one bar per model, the count of each bucket under its label."""
    fig, ax = new_figure(figsize=(6.4, 3.8))
    models = list(buckets_by_model)
    width = 0.8 / max(1, len(models))
    first = buckets_by_model[models[0]]
    for k, name in enumerate(models):
        values = [b["exact_match"] for b in buckets_by_model[name]]
        xs = np.arange(len(values)) + (k - (len(models) - 1) / 2) * width
        bars = ax.bar(xs, values, width, label=name)
        ax.bar_label(bars, [f"{v:.3f}" for v in values], fontsize=7, padding=2)
    ax.set_xticks(range(len(first)), [f"{b['min_length']}-{b['max_length']}\n(n={b['n']})" for b in first], fontsize=8)
    ax.set_xlabel(f"source length ({unit}), quarters of the test set")
    ax.set_ylabel("exact match")
    ax.set_ylim(0, 1.08)
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title("exact match by source length", fontsize=9)
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

"""``report.html``: one self-contained page per run directory.

The page gathers what the directory holds — the configuration (``config.json``), the training
metrics (``metrics.json``), the evaluation, cross-validation, comparison and learning-curve
results (``evaluation.json``, ``cv.json``, ``compare.json``, ``learning_curve.json``,
``epochs_curve.json``) and every PNG under ``plots/`` — with the images embedded as data URIs and
the style inline, so the file opens from disk, alone, with no network and no script.
"""

from __future__ import annotations

import base64
import html
import json
import os
import time
from pathlib import Path
from typing import Any

from deepatlas._io import atomic_write_text, read_json

_CAPTIONS = {
    "loss.png": "Training curves recorded during fit.",
    "confusion_matrix.png": "Confusion matrix: counts, and normalised by row (each true class sums to 1).",
    "roc.png": "ROC curves, one-vs-rest per class, with the micro and macro averages.",
    "pr.png": "Precision-recall curves, one-vs-rest per class, with the micro and macro averages.",
    "reliability.png": "Reliability diagram of the top-class probability; ECE is the weighted mean gap.",
    "residuals.png": "Residuals against the prediction: structure here is what the model missed.",
    "predicted_vs_true.png": "Predicted against true values; the dashed line is a perfect fit.",
    "cv_box.png": "Score per cross-validation fold.",
    "compare_box.png": "Score per fold for each model, on identical folds.",
    "learning_curve.png": "Training and validation score against the training-set size (mean ± std over folds).",
    "epochs_curve.png": "Training and validation score after each epoch (early stopping off).",
    "attention.png": "Attention of the decoder over the source tokens, one row per written token.",
    "hop_attention.png": "Memory-network attention of each hop over the story sentences (* = supporting fact).",
    "runtimes.png": "Median latency per call of each runtime, float and int8, at batch 1 and 64 (log scale).",
}
_ORDER = list(_CAPTIONS)

_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;color:#222}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}
.meta{color:#666;font-size:.85rem}table{border-collapse:collapse;margin:.6rem 0;font-size:.85rem}
th,td{border:1px solid #ddd;padding:.25rem .55rem;text-align:right;white-space:nowrap}th{background:#f4f4f4}
td:first-child,th:first-child{text-align:left}.yes{color:#0a6b2d;font-weight:600}.no{color:#777}
figure{display:inline-block;margin:.6rem 1rem .6rem 0;vertical-align:top;max-width:100%}
figure img{max-width:100%;height:auto;border:1px solid #eee}figcaption{font-size:.8rem;color:#555;max-width:36rem}
.note{background:#fff8e5;border-left:3px solid #e0a800;padding:.4rem .7rem;font-size:.85rem}
code{background:#f4f4f4;padding:0 .2rem}.row{display:flex;flex-wrap:wrap;gap:1.5rem;align-items:flex-start}
"""


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.4e}"
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(_fmt(v) for v in value) + (",)" if len(value) == 1 else ")")
    return str(value)


def _pm(summary: dict | None) -> str:
    if not summary or summary.get("mean") is None:
        return "—"
    return f"{summary['mean']:.4f} ± {summary['std']:.4f}"


def _table(header: list[str], rows: list[list[Any]], raw_cols: tuple[int, ...] = ()) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = [(str(v) if i in raw_cols else _esc(_fmt(v))) for i, v in enumerate(row)]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _read(directory: Path, name: str) -> Any:
    path = directory / name
    if not path.exists():
        return None
    try:
        return read_json(path)
    except (json.JSONDecodeError, OSError):
        return None


# ---- sections -------------------------------------------------------------------------------------
def _config_section(config: dict) -> str:
    keys = ("model", "class", "task", "data", "seed", "version")
    rows = [[k, config.get(k)] for k in keys if config.get(k) is not None]
    parts = ["<h2>Configuration</h2><div class='row'>", _table(["setting", "value"], rows)]
    params = config.get("params") or {}
    if params:
        parts.append(_table(["parameter", "value"], [[k, v] for k, v in params.items()]))
    return "".join(parts) + "</div>"


def _metrics_section(metrics: dict) -> str:
    rows = [[k, v] for k, v in metrics.items() if not isinstance(v, (dict, list))]
    return "<h2>Training run</h2>" + _table(["measure", "value"], rows)


def _evaluation_section(ev: dict) -> str:
    where = f"{_esc(ev.get('data', ''))} ({_esc(ev.get('split', ''))} split, {ev.get('n_samples')} samples)"
    parts = [f"<h2>Evaluation</h2><p class='meta'>on {where}</p>"]
    parts.append(_table(["measure", "value"], [[k, v] for k, v in ev.get("metrics", {}).items()]))
    for note in ev.get("notes") or []:
        parts.append(f"<p class='note'>{_esc(note)}</p>")
    per_class = ev.get("per_class") or {}
    if per_class:
        auc = {k: v.get("auc") for k, v in (ev.get("roc_auc_per_class") or {}).items()}
        rows = [[c, v["precision"], v["recall"], v["f1"], auc.get(c), v["support"]] for c, v in per_class.items()]
        parts.append(_table(["class", "precision", "recall", "F1", "ROC AUC", "support"], rows))
    return "".join(parts)


def _cv_section(cv: dict) -> str:
    parts = [
        f"<h2>Cross-validation</h2><p class='meta'>{cv.get('folds')}-fold × {cv.get('repeats')} on "
        f"{cv.get('n_samples')} samples ({_esc(cv.get('data', ''))}), every fold trained from scratch</p>"
    ]
    summary, train = cv.get("summary", {}), cv.get("train_summary", {})
    rows = [[m, _pm(summary.get(m)), _pm(train.get(m))] for m in cv.get("scores", {})]
    rows.append(["fit time (s)", _pm(summary.get("fit_time")), ""])
    parts.append(_table(["measure", "validation mean ± std", "training mean ± std"], rows))
    metrics = list(cv.get("scores", {}))
    fold_rows = [
        [i + 1] + [cv["scores"][m][i] for m in metrics] + [cv["fit_time"][i]]
        for i in range(len(cv.get("fit_time", [])))
    ]
    parts.append(_table(["fold"] + metrics + ["fit s"], fold_rows))
    return "".join(parts)


def _compare_section(cmp: dict) -> str:
    parts = [
        f"<h2>Comparison</h2><p class='meta'>{cmp.get('folds')}-fold × {cmp.get('repeats')}, identical folds for "
        f"every model; {_esc(cmp.get('test', ''))} on {_esc(cmp.get('metric'))}, alpha {cmp.get('alpha')}</p>"
    ]
    models = cmp.get("models", {})
    metrics = list(next(iter(models.values()))["scores"]) if models else []
    rows = [
        [label] + [_pm(m["summary"].get(k)) for k in metrics] + [_pm(m["summary"].get("fit_time"))]
        for label, m in models.items()
    ]
    parts.append(_table(["model"] + metrics + ["fit time (s)"], rows))
    pair_rows = []
    for p in cmp.get("pairs", []):
        cls = "yes" if p["significant"] else "no"
        pair_rows.append(
            [
                f"{_esc(p['a'])} − {_esc(p['b'])}",
                _esc(_fmt(p["mean_difference"])),
                _esc(_fmt(p["t"])),
                _esc(_fmt(p["p"])),
                _esc(_fmt(p["p_holm"])),
                f"<span class='{cls}'>{_esc(p['verdict'])}</span>",
            ]
        )
    parts.append(
        _table(["pair", "mean difference", "t", "p", "p (Holm)", "verdict"], pair_rows, raw_cols=(0, 1, 2, 3, 4, 5))
    )
    return "".join(parts)


def _curve_section(lc: dict | None, ec: dict | None) -> str:
    parts = ["<h2>Learning curves</h2>"]
    if lc:
        rows = [[n, t, v, s] for n, t, v, s in zip(lc["train_sizes"], lc["train_mean"], lc["val_mean"], lc["val_std"])]
        parts.append(f"<p class='meta'>{_esc(lc['metric'])} against the training-set size, {lc['folds']} folds</p>")
        parts.append(_table(["training samples", "training", "validation", "validation std"], rows))
    if ec:
        step = max(1, len(ec["epochs"]) // 12)
        idx = list(range(0, len(ec["epochs"]), step))
        if idx and idx[-1] != len(ec["epochs"]) - 1:
            idx.append(len(ec["epochs"]) - 1)
        rows = [[ec["epochs"][i], ec["train_scores"][i], ec["val_scores"][i]] for i in idx]
        parts.append(f"<p class='meta'>{_esc(ec['metric'])} against epochs ({_esc(ec['method'])})</p>")
        parts.append(_table(["epoch", "training", "validation"], rows))
    return "".join(parts)


def _figures(directory: Path) -> str:
    plots = directory / "plots"
    files = sorted(plots.glob("*.png")) if plots.is_dir() else []
    files.sort(key=lambda p: (_ORDER.index(p.name) if p.name in _ORDER else len(_ORDER), p.name))
    figs = []
    for path in files:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        caption = _CAPTIONS.get(path.name, path.stem.replace("_", " "))
        figs.append(
            f"<figure><img src='data:image/png;base64,{data}' alt='{_esc(path.name)}'>"
            f"<figcaption><code>plots/{_esc(path.name)}</code> — {_esc(caption)}</figcaption></figure>"
        )
    return ("<h2>Plots</h2>" + "".join(figs)) if figs else ""


def _runtimes_section(rt: dict) -> str:
    """``deepatlas benchmark-runtimes``: one row per (runtime, precision)."""
    rows = [
        [
            r["runtime"],
            r["precision"],
            r["batch_1_ms"],
            r["batch_64_ms"],
            r["rows_per_s"],
            r["accuracy"],
            r["bytes"],
            r["note"],
        ]
        for r in rt.get("rows", [])
    ]
    head = [
        "runtime",
        "precision",
        "batch 1 (ms)",
        "batch 64 (ms)",
        "rows/s at 64",
        rt.get("metric", "score"),
        "bytes",
        "note",
    ]
    return f"<h2>Runtimes</h2><p class='meta'>{_esc(rt.get('title', ''))}</p>" + _table(head, rows)


def write_report(directory: str | os.PathLike, title: str | None = None) -> Path:
    """Write ``directory/report.html`` from whatever results the directory holds; returns its path."""
    from deepatlas import __version__

    directory = Path(directory)
    config = _read(directory, "config.json") or {}
    metrics = _read(directory, "metrics.json")
    ev = _read(directory, "evaluation.json")
    cv = _read(directory, "cv.json")
    cmp = _read(directory, "compare.json")
    lc = _read(directory, "learning_curve.json")
    ec = _read(directory, "epochs_curve.json")
    rt = _read(directory, "runtimes.json")
    if title is None:
        source = config or ev or cv or lc or ec or {}
        model = source.get("model") or (" vs ".join(cmp["models"]) if cmp else "")
        data = source.get("data") or (cmp or {}).get("data") or ""
        title = f"{model} on {data}" if model and data else (model or directory.name)
    sections = [
        f"<h1>{_esc(title)}</h1><p class='meta'>{_esc(directory.name)} · deepatlas {_esc(__version__)} · "
        f"written {_esc(time.strftime('%Y-%m-%d %H:%M:%S'))}</p>"
    ]
    if config:
        sections.append(_config_section(config))
    if metrics:
        sections.append(_metrics_section(metrics))
    if ev:
        sections.append(_evaluation_section(ev))
    if cv:
        sections.append(_cv_section(cv))
    if cmp:
        sections.append(_compare_section(cmp))
    if lc or ec:
        sections.append(_curve_section(lc, ec))
    if rt:
        sections.append(_runtimes_section(rt))
    sections.append(_figures(directory))
    page = (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<link rel='icon' href='data:,'><title>{_esc(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{''.join(sections)}</body></html>\n"
    )
    path = directory / "report.html"
    atomic_write_text(path, page)
    return path

"""``evaluate`` and the writers that put each result into a directory (JSON, PNGs, report.html)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from deepatlas._io import write_json
from deepatlas.evaluation import plots
from deepatlas.evaluation.metrics import check_against_model, evaluate_classifier, evaluate_regressor, model_kind


def evaluate(
    estimator, X, y, *, out: str | os.PathLike | None = None, n_bins: int = 10, title: str = "", **info
) -> dict:
    """Score a fitted classifier or regressor on ``(X, y)``.

    Classifiers: accuracy, balanced accuracy, macro precision / recall / F1 and per class, log
    loss, ROC AUC (one-vs-rest, macro), average precision, expected calibration error; the
    confusion matrix (counts and row-normalised), ROC and precision-recall curves (per class,
    micro and macro averages) and the reliability diagram. Regressors: MSE, RMSE, MAE, R².

    With ``out``, writes ``out/evaluation.json``, the PNGs under ``out/plots/`` and
    ``out/report.html``. Extra keyword arguments (``data=``, ``split=``) are recorded in the JSON.

    >>> from deepatlas import Perceptron, load_dataset
    >>> ds = load_dataset("blobs")
    >>> model = Perceptron().fit(ds.X_train, ds.y_train)
    >>> evaluate(model, ds.X_test, ds.y_test)["metrics"]["accuracy"]
    1.0
    """
    X, y = check_against_model(estimator, X, y)
    if model_kind(estimator) == "classification":
        result = evaluate_classifier(estimator, X, y, n_bins=n_bins)
    else:
        result = evaluate_regressor(estimator, X, y)
    result.update(info)
    if out is not None:
        result["plots"] = save_evaluation(result, out, title=title)
    return result


def save_evaluation(result: dict, out: str | os.PathLike, title: str = "") -> list[str]:
    """``evaluation.json`` (without the curve points) and the plots; returns the plot paths."""
    from deepatlas.evaluation.report import write_report

    out = Path(out)
    pdir = out / "plots"
    written: list[Path] = []
    prefix = f"{title}: " if title else ""
    if result["task"] == "classification":
        written.append(plots.confusion_matrices(result, pdir / "confusion_matrix.png", title=title))
        written.append(
            plots.roc_plot(result["roc"], pdir / "roc.png", f"{prefix}ROC (one-vs-rest)", result["metrics"]["roc_auc"])
        )
        written.append(plots.pr_plot(result["pr"], pdir / "pr.png", f"{prefix}precision-recall (one-vs-rest)"))
        if result["calibration"] is not None:
            cal = result["calibration"]
            written.append(
                plots.reliability_plot(cal, pdir / "reliability.png", f"{prefix}reliability (ECE {cal['ece']:.3f})")
            )
        else:
            (pdir / "reliability.png").unlink(missing_ok=True)  # left from an earlier model in this directory
    else:
        written.append(plots.residual_plots(result, pdir / "residuals.png", pdir / "predicted_vs_true.png", title))
        written.insert(0, pdir / "residuals.png")
    record = {k: v for k, v in result.items() if k not in ("roc", "pr", "y_true", "y_pred", "plots")}
    if result["task"] == "classification":
        record["roc_auc_per_class"] = {c: {"auc": v["auc"]} for c, v in result["roc"]["per_class"].items()}
        record["roc_auc_micro"] = result["roc"]["micro"]["auc"]
        record["average_precision_per_class"] = {c: v["ap"] for c, v in result["pr"]["per_class"].items()}
        record["average_precision_micro"] = result["pr"]["micro"]["ap"]
    record["plots"] = [str(p.relative_to(out)) for p in written]
    write_json(out / "evaluation.json", record)
    write_report(out)
    return [str(p) for p in written]


def save_cv(result: dict, out: str | os.PathLike, **info) -> Path:
    from deepatlas.evaluation.report import write_report

    out = Path(out)
    record = {k: v for k, v in result.items() if k != "estimators"} | info
    metric = "accuracy" if result["task"] == "classification" else "r2"
    plots.fold_box_plot({result["model"]: result["scores"][metric]}, metric, out / "plots" / "cv_box.png")
    write_json(out / "cv.json", record)
    return write_report(out)


def save_compare(result: dict, out: str | os.PathLike, **info) -> Path:
    from deepatlas.evaluation.report import write_report

    out = Path(out)
    metric = result["metric"]
    per_model = {label: m["scores"][metric] for label, m in result["models"].items()}
    plots.fold_box_plot(per_model, metric, out / "plots" / "compare_box.png", f"{metric} per fold (identical folds)")
    write_json(out / "compare.json", result | info)
    return write_report(out)


def save_curves(size_curve: dict | None, epochs_curve: dict | None, out: str | os.PathLike, **info) -> Path:
    from deepatlas.evaluation.report import write_report

    out = Path(out)
    if size_curve is not None:
        plots.curve_plot(
            size_curve["train_sizes"],
            size_curve["train_scores"],
            size_curve["val_scores"],
            "training samples",
            size_curve["metric"],
            out / "plots" / "learning_curve.png",
            f"{size_curve['model']}: learning curve",
        )
        write_json(out / "learning_curve.json", size_curve | info)
    if epochs_curve is not None:
        plots.curve_plot(
            epochs_curve["epochs"],
            epochs_curve["train_scores"],
            epochs_curve["val_scores"],
            "epoch",
            epochs_curve["metric"],
            out / "plots" / "epochs_curve.png",
            f"{epochs_curve['model']}: score against epochs",
        )
        write_json(out / "epochs_curve.json", epochs_curve | info)
    return write_report(out)


def format_table(rows: list[tuple[str, Any]], width: int = 20) -> str:
    """Two-column text table for the terminal."""
    lines = []
    for name, value in rows:
        if isinstance(value, float):
            value = f"{value:.4f}"
        elif value is None:
            value = "n/a"
        lines.append(f"  {name:<{width}} {value}")
    return "\n".join(lines)


def pm(summary: dict | None) -> str:
    if not summary or summary.get("mean") is None:
        return "n/a"
    return f"{summary['mean']:.4f} ± {summary['std']:.4f}"


def default_out(kind: str, model: str, data: str) -> Path:
    import time

    stem = Path(data.split(":")[0]).stem if ("/" in data or "." in data) else data.split(":")[0]
    return Path("runs") / f"{kind}-{model}-{stem}-{time.strftime('%Y%m%d-%H%M%S')}"

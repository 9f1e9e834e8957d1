"""Scores for a fitted classifier or regressor, all computed by scikit-learn's metric functions.

Classifiers are scored from their probabilities (``predict_proba``) where they have them, else
from ``decision_function`` (the perceptron): ranking measures (ROC AUC, average precision) need
only scores, while log loss and the reliability diagram need probabilities and are left out
(``None``) for a model that has none.

References: Fawcett (2006), "An introduction to ROC analysis"; Davis & Goadrich (2006), "The
relationship between precision-recall and ROC curves"; Guo, Pleiss, Sun & Weinberger (2017), "On
calibration of modern neural networks" (top-label reliability diagram and expected calibration
error); Naeini, Cooper & Hauskrecht (2015), "Obtaining well calibrated probabilities using
Bayesian binning" (ECE).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deepatlas.errors import InputError


# ---- what kind of model, and what it gives -------------------------------------------------------
def model_kind(estimator) -> str:
    """``"classification"`` or ``"regression"``; anything else is a one-line error."""
    from sklearn.base import is_classifier, is_regressor

    if getattr(estimator, "_task", None) in ("tagging", "sequence", "text"):
        pass  # per-step labels, transcriptions, text: their run's metrics.json holds their scores
    elif is_classifier(estimator) or hasattr(estimator, "classes_") and hasattr(estimator, "predict"):
        return "classification"
    elif is_regressor(estimator):
        return "regression"
    task = getattr(estimator, "_task", None) or "unknown"
    raise InputError(f"evaluation covers classifiers and regressors; {type(estimator).__name__} is a {task} model.")


def class_scores(estimator, X) -> tuple[np.ndarray, bool]:
    """Per-class scores ``(n, K)`` in the order of ``estimator.classes_`` and whether they are
    probabilities. A binary decision function (one column) becomes ``[-s, s]``."""
    if hasattr(estimator, "predict_proba"):
        try:
            P = np.asarray(estimator.predict_proba(X), dtype=np.float64)
            # float32 softmax rows can miss 1 by more than log_loss tolerates; renormalise in float64
            return P / P.sum(axis=1, keepdims=True), True
        except AttributeError:  # a wrapper may advertise the method and then refuse it
            pass
    if hasattr(estimator, "decision_function"):
        s = np.asarray(estimator.decision_function(X), dtype=np.float64)
        if s.ndim == 1:
            s = np.stack([-s, s], axis=1)  # (n, 2): one-vs-rest score of each class
        return s, False
    raise InputError(f"{type(estimator).__name__} has neither predict_proba nor decision_function to score classes.")


# ---- checks of the data against the fitted model --------------------------------------------------
def check_against_model(estimator, X, y, *, what: str = "X") -> tuple[np.ndarray, np.ndarray]:
    """Feature count and labels must match what the model was trained on; one-line errors."""
    flat = getattr(estimator, "_input_kind", "features") == "features"  # sequence/text models check their own X
    X = np.asarray(X) if flat or not isinstance(X, list) else X
    y = np.asarray(y)
    if flat and X.ndim < 2:
        raise InputError(f"{what} must have shape (n_samples, n_features). Got a {X.ndim}-D array instead.")
    if len(X) != len(y):
        raise InputError(f"X and y have inconsistent numbers of samples: X has {len(X)}, y has {len(y)}.")
    if len(X) == 0:
        raise InputError(f"{what} has 0 samples; at least 1 is required.")
    n_in = getattr(estimator, "n_features_in_", None) if flat else None
    n_features = int(np.prod(X.shape[1:])) if flat else 0
    if n_in is not None and n_features != int(n_in):
        raise InputError(
            f"{what} has {n_features} features per sample, but the model was trained on {int(n_in)} features."
        )
    if model_kind(estimator) == "classification":
        classes = np.asarray(estimator.classes_)
        present = np.unique(y)
        if len(present) < 2:
            raise InputError(
                f"y holds a single class ({_plain(present[0])!r}); ROC, precision-recall and balanced scores need at least 2."
            )
        unknown = [v for v in present if not np.isin(v, classes)]
        if unknown:
            raise InputError(
                f"y holds labels {_short(unknown)} that the model was not trained on; its classes are {_short(classes)}."
            )
    return X, y


def _plain(v):
    return v.item() if isinstance(v, np.generic) else v


def _short(values, limit: int = 8) -> str:
    items = [_plain(v) for v in list(values)]
    text = ", ".join(repr(v) for v in items[:limit])
    return f"[{text}{', ...' if len(items) > limit else ''}]"


# ---- classification -------------------------------------------------------------------------------
def classification_scores(y, pred, S, classes, is_proba: bool) -> dict[str, float | None]:
    """The scalar measures of a classifier (the ones cross-validation and comparison use too)."""
    from sklearn.metrics import (
        accuracy_score,
        average_precision_score,
        balanced_accuracy_score,
        f1_score,
        log_loss,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    Y = indicator(y, classes)
    present = Y.any(axis=0) & ~Y.all(axis=0)  # classes with both positives and negatives in y
    out: dict[str, float | None] = {
        "accuracy": accuracy_score(y, pred),
        "balanced_accuracy": balanced_accuracy_score(y, pred),
        "precision_macro": precision_score(y, pred, average="macro", zero_division=0),
        "recall_macro": recall_score(y, pred, average="macro", zero_division=0),
        "f1_macro": f1_score(y, pred, average="macro", zero_division=0),
        "log_loss": log_loss(y, S, labels=classes) if is_proba else None,
    }
    if len(classes) == 2:
        out["roc_auc"] = roc_auc_score(Y[:, 1], S[:, 1])
        out["average_precision"] = average_precision_score(Y[:, 1], S[:, 1])
    else:
        # One-vs-rest, macro over the classes that occur in y. On probabilities this equals
        # roc_auc_score(y, P, multi_class="ovr"); the indicator form also accepts decision scores.
        out["roc_auc"] = roc_auc_score(Y[:, present], S[:, present], average="macro")
        out["average_precision"] = average_precision_score(Y[:, present], S[:, present], average="macro")
    return {k: (None if v is None else float(v)) for k, v in out.items()}


def indicator(y, classes) -> np.ndarray:
    """``(n, K)`` 0/1 matrix, one column per class (two columns for two classes, unlike
    ``label_binarize``)."""
    return (np.asarray(y)[:, None] == np.asarray(classes)[None, :]).astype(np.int64)


def roc_curves(Y: np.ndarray, S: np.ndarray, classes) -> dict[str, Any]:
    """One-vs-rest ROC curve per class, the micro average (all decisions pooled) and the macro
    average (per-class true-positive rates averaged on a common false-positive grid)."""
    from sklearn.metrics import auc, roc_auc_score, roc_curve

    curves: dict[str, Any] = {"per_class": {}}
    fpr_grid = [np.array([0.0])]
    tprs = []
    for j, label in enumerate(classes):
        if not (Y[:, j].any() and not Y[:, j].all()):
            continue
        fpr, tpr, _ = roc_curve(Y[:, j], S[:, j])
        curves["per_class"][str(label)] = {"fpr": fpr, "tpr": tpr, "auc": float(auc(fpr, tpr))}
        fpr_grid.append(fpr)
        tprs.append((fpr, tpr))
    fpr, tpr, _ = roc_curve(Y.ravel(), S.ravel())
    curves["micro"] = {"fpr": fpr, "tpr": tpr, "auc": float(roc_auc_score(Y, S, average="micro"))}
    grid = np.unique(np.concatenate(fpr_grid + [np.array([1.0])]))
    mean_tpr = np.mean([np.interp(grid, f, t) for f, t in tprs], axis=0)
    # every per-class curve leaves (0, 0) vertically, so the average does too
    grid, mean_tpr = np.concatenate([[0.0], grid]), np.concatenate([[0.0], mean_tpr])
    curves["macro"] = {"fpr": grid, "tpr": mean_tpr, "auc": float(auc(grid, mean_tpr))}
    return curves


def pr_curves(Y: np.ndarray, S: np.ndarray, classes) -> dict[str, Any]:
    """One-vs-rest precision-recall curve per class, micro average (pooled) and macro average
    (per-class precision, interpolated as the best precision at recall >= r, averaged)."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    curves: dict[str, Any] = {"per_class": {}}
    grid = np.linspace(0.0, 1.0, 101)
    interp = []
    for j, label in enumerate(classes):
        if not Y[:, j].any():
            continue
        precision, recall, _ = precision_recall_curve(Y[:, j], S[:, j])
        ap = float(average_precision_score(Y[:, j], S[:, j]))
        curves["per_class"][str(label)] = {"precision": precision, "recall": recall, "ap": ap}
        # recall falls along the arrays; the running max from the right is the interpolated precision
        best = np.maximum.accumulate(precision)  # precision at recall >= recall[i]
        interp.append(np.interp(grid, recall[::-1], best[::-1]))
    precision, recall, _ = precision_recall_curve(Y.ravel(), S.ravel())
    curves["micro"] = {
        "precision": precision,
        "recall": recall,
        "ap": float(average_precision_score(Y, S, average="micro")),
    }
    macro_p = np.mean(interp, axis=0)
    curves["macro"] = {
        "precision": macro_p,
        "recall": grid,
        "ap": float(np.mean([c["ap"] for c in curves["per_class"].values()])),
    }
    return curves


def reliability(y, P: np.ndarray, classes, n_bins: int = 10) -> dict[str, Any]:
    """Top-label reliability: in each confidence bin, the mean confidence and the accuracy of the
    predicted class; ECE is the sample-weighted mean gap, MCE the largest gap."""
    conf = P.max(axis=1)
    correct = np.asarray(classes)[P.argmax(axis=1)] == np.asarray(y)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # bin b holds confidences in (edges[b], edges[b+1]]; a confidence of exactly 0 goes to bin 0
    which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    counts = np.bincount(which, minlength=n_bins)
    conf_sum = np.bincount(which, weights=conf, minlength=n_bins)
    acc_sum = np.bincount(which, weights=correct.astype(np.float64), minlength=n_bins)
    filled = counts > 0
    mean_conf = np.where(filled, conf_sum / np.maximum(counts, 1), np.nan)
    accuracy = np.where(filled, acc_sum / np.maximum(counts, 1), np.nan)
    gaps = np.abs(accuracy - mean_conf)[filled]
    return {
        "bin_edges": edges,
        "count": counts,
        "confidence": mean_conf,
        "accuracy": accuracy,
        "ece": float(np.sum(gaps * counts[filled]) / len(conf)),
        "mce": float(gaps.max()) if len(gaps) else 0.0,
    }


def evaluate_classifier(estimator, X, y, *, n_bins: int = 10) -> dict[str, Any]:
    """Scores, per-class table, confusion matrices, curves and calibration of a classifier."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    classes = np.asarray(estimator.classes_)
    pred = np.asarray(estimator.predict(X))
    S, is_proba = class_scores(estimator, X)
    if S.shape != (len(X), len(classes)):
        raise InputError(
            f"{type(estimator).__name__} gave scores of shape {S.shape}; expected {(len(X), len(classes))}."
        )
    scores = classification_scores(y, pred, S, classes, is_proba)
    precision, recall, f1, support = precision_recall_fscore_support(y, pred, labels=classes, zero_division=0)
    per_class = {
        str(c): {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for c, p, r, f, s in zip(classes, precision, recall, f1, support)
    }
    counts = confusion_matrix(y, pred, labels=classes)
    rows = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    Y = indicator(y, classes)
    result: dict[str, Any] = {
        "task": "classification",
        "n_samples": len(y),
        "classes": [c.item() if isinstance(c, np.generic) else c for c in classes],
        "scores_from": "predict_proba" if is_proba else "decision_function",
        "metrics": scores,
        "per_class": per_class,
        "confusion_matrix": {"counts": counts, "normalized": normalised},
        "roc": roc_curves(Y, S, classes),
        "pr": pr_curves(Y, S, classes),
        "calibration": reliability(y, S, classes, n_bins) if is_proba else None,
    }
    if is_proba:
        scores["ece"] = result["calibration"]["ece"]
    else:
        scores["ece"] = None
        result["notes"] = [
            f"{type(estimator).__name__} gives no probabilities: log loss and calibration are not defined; "
            "ROC and precision-recall use its decision scores."
        ]
    return result


# ---- regression -----------------------------------------------------------------------------------
def regression_scores(y, pred) -> dict[str, float]:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    mse = float(mean_squared_error(y, pred))
    return {
        "mse": mse,
        "rmse": float(np.sqrt(mse)),
        "mae": float(mean_absolute_error(y, pred)),
        "r2": float(r2_score(y, pred)),
    }


def evaluate_regressor(estimator, X, y) -> dict[str, Any]:
    y = np.asarray(y, dtype=np.float64)
    pred = np.asarray(estimator.predict(X), dtype=np.float64)
    if pred.shape != y.shape:
        pred = pred.reshape(y.shape)
    return {
        "task": "regression",
        "n_samples": len(y),
        "metrics": regression_scores(y, pred),
        "y_true": y,
        "y_pred": pred,
    }


# ---- the scalar scores of one fold (cross-validation, comparison, learning curves) ------------------
def fold_scores(estimator, X, y) -> dict[str, float]:
    """Scalar measures on a test fold; ``None`` (no probabilities) becomes NaN so that sklearn's
    ``cross_validate`` can stack them."""
    if model_kind(estimator) == "regression":
        return regression_scores(np.asarray(y, dtype=np.float64), estimator.predict(X))
    classes = np.asarray(estimator.classes_)
    S, is_proba = class_scores(estimator, X)
    scores = classification_scores(y, estimator.predict(X), S, classes, is_proba)
    return {k: (np.nan if v is None else v) for k, v in scores.items()}


# Which direction is better, for the primary measure and for the comparison table.
HIGHER_IS_BETTER = {
    "accuracy": True,
    "balanced_accuracy": True,
    "precision_macro": True,
    "recall_macro": True,
    "f1_macro": True,
    "roc_auc": True,
    "average_precision": True,
    "log_loss": False,
    "ece": False,
    "mse": False,
    "rmse": False,
    "mae": False,
    "r2": True,
}
PRIMARY = {"classification": "accuracy", "regression": "r2"}

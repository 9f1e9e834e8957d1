"""Cross-validation, model comparison and learning curves, on scikit-learn's splitters.

Every fold trains a fresh clone of the estimator (``sklearn.base.clone``, inside scikit-learn's
``cross_validate`` and ``learning_curve``). The estimators standardise their inputs inside
``fit``, so each fold's preprocessing is fitted on that fold's training part only: the test fold
never leaks into the statistics it is scored with.

Classification uses stratified folds (``RepeatedStratifiedKFold``), regression plain shuffled
folds (``RepeatedKFold``); the splits are drawn once from ``seed`` and reused, so every model in
a comparison sees identical folds.

References: Stone (1974), "Cross-validatory choice and assessment of statistical predictions";
Kohavi (1995), "A study of cross-validation and bootstrap for accuracy estimation and model
selection"; Perlich, Provost & Simonoff (2003), "Tree induction vs. logistic regression: a
learning-curve analysis".
"""

from __future__ import annotations

import inspect
import numbers
import time
from typing import Any

import numpy as np

from deepatlas.errors import InputError
from deepatlas.evaluation.metrics import HIGHER_IS_BETTER, PRIMARY, fold_scores, model_kind
from deepatlas.evaluation.stats import corrected_ttest, holm


# ---- checks ---------------------------------------------------------------------------------------
def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise InputError(f"{name} must be an int >= {low}. Got {value!r} instead.")
    return int(value)


def check_folds(y, task: str, folds: int, repeats: int = 1) -> None:
    """One-line errors for fold counts the data cannot support."""
    _check_int("folds", folds, 2)
    _check_int("repeats", repeats, 1)
    y = np.asarray(y)
    if task == "classification":
        labels, counts = np.unique(y, return_counts=True)
        if len(labels) < 2:
            raise InputError(
                f"y holds a single class ({labels[0].item()!r}); cross-validation needs at least 2 classes."
            )
        smallest = int(counts.argmin())
        if folds > counts[smallest]:
            raise InputError(
                f"The number of folds ({folds}) is larger than the smallest class: label "
                f"{labels[smallest].item()!r} has only {counts[smallest]} samples; use at most {counts[smallest]} folds."
            )
    elif folds > len(y):
        raise InputError(f"The number of folds ({folds}) is larger than the number of samples ({len(y)}).")


def make_splits(X, y, task: str, *, folds: int = 5, repeats: int = 1, seed: int | None = 0) -> list:
    """The (train, test) index pairs of (repeated, stratified for classes) k-fold, drawn once."""
    from sklearn.model_selection import RepeatedKFold, RepeatedStratifiedKFold

    check_folds(y, task, folds, repeats)
    cls = RepeatedStratifiedKFold if task == "classification" else RepeatedKFold
    splitter = cls(n_splits=folds, n_repeats=repeats, random_state=seed)
    return list(splitter.split(np.zeros(len(y)), y))


def development_data(ds) -> tuple[np.ndarray, np.ndarray]:
    """A dataset's training and validation parts pooled; the test split stays untouched."""
    if ds.y_train is None:
        raise InputError(f"dataset {ds.name!r} has no targets; cross-validation needs labelled data.")
    return np.concatenate([ds.X_train, ds.X_val]), np.concatenate([ds.y_train, ds.y_val])


def _summary(per_fold: dict[str, list[float]]) -> dict[str, dict[str, float | None]]:
    out = {}
    for k, v in per_fold.items():
        a = np.asarray(v, dtype=float)
        ok = a[np.isfinite(a)]
        out[k] = {
            "mean": float(ok.mean()) if len(ok) else None,
            "std": float(ok.std(ddof=1)) if len(ok) > 1 else (0.0 if len(ok) else None),
        }
    return out


def _name(estimator) -> str:
    from deepatlas.registry import name_of

    return name_of(estimator)


# ---- cross-validation -----------------------------------------------------------------------------
def cross_validate(
    estimator,
    X,
    y,
    *,
    folds: int = 5,
    repeats: int = 1,
    seed: int | None = 0,
    splits: list | None = None,
    return_estimators: bool = False,
) -> dict[str, Any]:
    """Scores of ``estimator`` on each (repeated, stratified) fold and their mean and std.

    Parameters
    ----------
    estimator : an unfitted estimator; every fold trains a clone of it from scratch.
    folds, repeats : k and the number of repetitions with reshuffled folds.
    seed : draws the folds (the estimator keeps its own ``seed`` parameter).
    splits : explicit ``(train_idx, test_idx)`` pairs (as :func:`make_splits` gives) instead.
    return_estimators : keep the fitted fold estimators under ``"estimators"``.

    Returns a dict with ``scores`` and ``train_scores`` (metric -> one value per fold),
    ``fit_time``, ``n_train`` / ``n_test`` per fold and ``summary`` (metric -> mean, std).

    >>> from deepatlas import Perceptron, load_dataset
    >>> ds = load_dataset("blobs")
    >>> cross_validate(Perceptron(), ds.X_train, ds.y_train, folds=3)["summary"]["accuracy"]["mean"]
    1.0
    """
    from sklearn.base import clone
    from sklearn.model_selection import cross_validate as sk_cross_validate

    task = model_kind(clone(estimator))
    X, y = np.asarray(X), np.asarray(y)
    if len(X) != len(y):
        raise InputError(f"X and y have inconsistent numbers of samples: X has {len(X)}, y has {len(y)}.")
    if splits is None:
        splits = make_splits(X, y, task, folds=folds, repeats=repeats, seed=seed)
    else:
        folds = max(1, len(splits) // max(repeats, 1))
    raw = sk_cross_validate(
        estimator,
        X,
        y,
        cv=splits,
        scoring=fold_scores,
        return_train_score=True,
        return_estimator=return_estimators,
        error_score="raise",
    )
    metrics = [k[5:] for k in raw if k.startswith("test_")]
    result: dict[str, Any] = {
        "model": _name(estimator),
        "class": type(estimator).__name__,
        "params": estimator.get_params(deep=False),
        "task": task,
        "folds": folds,
        "repeats": repeats,
        "seed": seed,
        "n_samples": len(y),
        "n_train": [len(tr) for tr, _ in splits],
        "n_test": [len(te) for _, te in splits],
        "scores": {m: raw[f"test_{m}"].astype(float).tolist() for m in metrics},
        "train_scores": {m: raw[f"train_{m}"].astype(float).tolist() for m in metrics},
        "fit_time": raw["fit_time"].astype(float).tolist(),
        "score_time": raw["score_time"].astype(float).tolist(),
    }
    result["summary"] = _summary(result["scores"])
    result["train_summary"] = _summary(result["train_scores"])
    result["summary"]["fit_time"] = _summary({"t": result["fit_time"]})["t"]
    if return_estimators:
        result["estimators"] = raw["estimator"]
    return result


# ---- comparison -----------------------------------------------------------------------------------
def compare(
    estimators: dict[str, Any],
    X,
    y,
    *,
    folds: int = 5,
    repeats: int = 1,
    seed: int | None = 0,
    metric: str | None = None,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Cross-validate several models on identical folds and test each pair's difference.

    ``estimators`` maps a label to an unfitted estimator. The pairs are tested with the corrected
    resampled t-test of Nadeau & Bengio (2003) on ``metric`` (default accuracy for classifiers,
    R² for regressors); Holm's method adjusts the p values for the number of pairs, and a
    difference is called significant when the adjusted p is below ``alpha``.
    """
    from sklearn.base import clone

    if not isinstance(estimators, dict) or len(estimators) < 2:
        raise InputError(
            f"compare needs at least 2 models. Got {len(estimators) if isinstance(estimators, dict) else estimators!r}."
        )
    if not (isinstance(alpha, numbers.Real) and 0 < alpha < 1):
        raise InputError(f"alpha must be a float in the range (0, 1). Got {alpha!r} instead.")
    kinds = {label: model_kind(clone(e)) for label, e in estimators.items()}
    if len(set(kinds.values())) > 1:
        raise InputError(f"compare needs models of one kind; got {', '.join(f'{k} ({v})' for k, v in kinds.items())}.")
    task = next(iter(kinds.values()))
    metric = metric or PRIMARY[task]
    X, y = np.asarray(X), np.asarray(y)
    splits = make_splits(X, y, task, folds=folds, repeats=repeats, seed=seed)
    runs = {}
    for label, est in estimators.items():
        runs[label] = cross_validate(est, X, y, splits=splits, repeats=repeats, seed=seed)
    if metric not in runs[next(iter(runs))]["scores"]:
        known = ", ".join(runs[next(iter(runs))]["scores"])
        raise InputError(f"metric must be one of {known}. Got {metric!r} instead.")
    for label, r in runs.items():
        if not np.all(np.isfinite(r["scores"][metric])):
            raise InputError(f"metric {metric!r} is not defined for {label} (no probabilities); choose another metric.")
    n_train = float(np.mean([len(tr) for tr, _ in splits]))
    n_test = float(np.mean([len(te) for _, te in splits]))
    labels = list(runs)
    pairs = []
    for i in range(len(labels)):
        for j in range(i + 1, len(labels)):
            a, b = labels[i], labels[j]
            test = corrected_ttest(runs[a]["scores"][metric], runs[b]["scores"][metric], n_train, n_test)
            pairs.append({"a": a, "b": b, **test})
    for pair, p_adj in zip(pairs, holm([p["p"] for p in pairs])):
        pair["p_holm"] = float(p_adj)
        pair["significant"] = bool(p_adj < alpha)
        higher = HIGHER_IS_BETTER.get(metric, True)
        a_better = (pair["mean_difference"] > 0) == higher
        better, worse = (pair["a"], pair["b"]) if a_better else (pair["b"], pair["a"])
        if pair["mean_difference"] == 0:
            pair["verdict"] = f"{pair['a']} and {pair['b']} score the same"
        elif pair["significant"]:
            pair["verdict"] = f"{better} is better than {worse} (significant at alpha={alpha})"
        else:
            pair["verdict"] = (
                f"no significant difference at alpha={alpha} ({better} ahead by {abs(pair['mean_difference']):.4g})"
            )
    return {
        "task": task,
        "metric": metric,
        "alpha": alpha,
        "folds": folds,
        "repeats": repeats,
        "seed": seed,
        "n_samples": len(y),
        "n_train_mean": n_train,
        "n_test_mean": n_test,
        "test": "Nadeau-Bengio corrected resampled t-test, Holm-adjusted",
        "models": {
            label: {k: r[k] for k in ("model", "class", "params", "scores", "fit_time", "summary")}
            for label, r in runs.items()
        },
        "pairs": pairs,
    }


# ---- learning curves ------------------------------------------------------------------------------
def learning_curve(
    estimator,
    X,
    y,
    *,
    train_sizes=(0.1, 0.325, 0.55, 0.775, 1.0),
    folds: int = 5,
    seed: int | None = 0,
    metric: str | None = None,
) -> dict[str, Any]:
    """Training and validation score against the training-set size (scikit-learn's
    ``learning_curve``: each size, each fold, a fresh clone)."""
    from sklearn.base import clone
    from sklearn.model_selection import KFold, StratifiedKFold
    from sklearn.model_selection import learning_curve as sk_learning_curve

    task = model_kind(clone(estimator))
    metric = metric or PRIMARY[task]
    X, y = np.asarray(X), np.asarray(y)
    check_folds(y, task, folds)
    sizes = np.asarray(train_sizes, dtype=float)
    if sizes.ndim != 1 or len(sizes) == 0 or np.any(sizes <= 0) or np.any(sizes > 1):
        raise InputError(f"train_sizes must be fractions in (0, 1]. Got {list(np.atleast_1d(train_sizes))} instead.")
    cv = (StratifiedKFold if task == "classification" else KFold)(n_splits=folds, shuffle=True, random_state=seed)
    scorer = _metric_scorer(metric)
    n_abs, train, val, fit_t, _ = sk_learning_curve(
        estimator,
        X,
        y,
        train_sizes=sizes,
        cv=cv,
        scoring=scorer,
        shuffle=True,
        random_state=seed,
        error_score="raise",
        return_times=True,
    )
    return {
        "kind": "size",
        "model": _name(estimator),
        "task": task,
        "metric": metric,
        "folds": folds,
        "seed": seed,
        "train_sizes": n_abs.tolist(),
        "train_scores": train.tolist(),
        "val_scores": val.tolist(),
        "fit_time": fit_t.tolist(),
        "train_mean": np.nanmean(train, axis=1).tolist(),
        "val_mean": np.nanmean(val, axis=1).tolist(),
        "val_std": np.nanstd(val, axis=1).tolist(),
    }


def _metric_scorer(metric: str):
    def score(est, X, y):
        values = fold_scores(est, X, y)
        if metric not in values:
            raise InputError(f"metric must be one of {', '.join(values)}. Got {metric!r} instead.")
        return values[metric]

    return score


def epochs_curve(
    estimator, X_train, y_train, X_val, y_val, *, metric: str | None = None, points: int = 12
) -> dict[str, Any]:
    """Training and validation score after each epoch, early stopping off.

    A model trained by the shared loop (its ``fit`` takes ``callbacks``) is scored after every
    epoch of one fit; another model with an ``epochs`` parameter is refitted from scratch for
    about ``points`` budgets between 1 and ``epochs``.
    """
    from sklearn.base import clone

    task = model_kind(clone(estimator))
    metric = metric or PRIMARY[task]
    scorer = _metric_scorer(metric)
    params = estimator.get_params(deep=False)
    if "epochs" not in params:
        raise InputError(f"{type(estimator).__name__} has no 'epochs' parameter, so it has no curve against epochs.")
    est = clone(estimator)
    if "early_stopping" in params:
        est.set_params(early_stopping=False)
    epochs, train, val = [], [], []
    fit_params = inspect.signature(est.fit).parameters
    start = time.perf_counter()
    if "callbacks" in fit_params:
        from deepatlas.training.callbacks import Callback

        class _Score(Callback):
            def on_epoch_end(self, loop, epoch, logs):
                epochs.append(epoch + 1)
                train.append(scorer(est, X_train, y_train))
                val.append(scorer(est, X_val, y_val))

        kwargs = {"validation_data": (X_val, y_val)} if "validation_data" in fit_params else {}
        est.fit(X_train, y_train, callbacks=[_Score()], **kwargs)
        method = "one fit, scored after every epoch"
    else:
        budget = int(params["epochs"])
        for e in np.unique(np.linspace(1, budget, min(points, budget)).round().astype(int)):
            fitted = clone(est).set_params(epochs=int(e)).fit(X_train, y_train)
            epochs.append(int(e))
            train.append(scorer(fitted, X_train, y_train))
            val.append(scorer(fitted, X_val, y_val))
        method = "refitted from scratch for each epoch budget"
    return {
        "kind": "epochs",
        "model": _name(estimator),
        "task": task,
        "metric": metric,
        "method": method,
        "epochs": epochs,
        "train_scores": [float(v) for v in train],
        "val_scores": [float(v) for v in val],
        "seconds": time.perf_counter() - start,
    }

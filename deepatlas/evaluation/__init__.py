"""Model evaluation on scikit-learn's metrics and splitters, for every estimator in the registry.

>>> from deepatlas.evaluation import evaluate, cross_validate, compare, learning_curve  # doctest: +SKIP

* :func:`evaluate` — scores, confusion matrix, ROC / precision-recall curves and calibration of a
  fitted classifier, or the errors of a regressor; with ``out=`` writes JSON, PNGs and report.html.
* :func:`cross_validate` — (repeated) stratified k-fold, a fresh clone per fold.
* :func:`compare` — several models on identical folds, paired by the Nadeau–Bengio corrected
  resampled t-test (Holm-adjusted).
* :func:`learning_curve` / :func:`epochs_curve` — score against training-set size or epochs.
* :func:`write_report` — the self-contained ``report.html`` of a run directory.
"""

from __future__ import annotations

from deepatlas.evaluation.core import evaluate, save_compare, save_curves, save_cv, save_evaluation
from deepatlas.evaluation.report import write_report
from deepatlas.evaluation.selection import (
    compare,
    cross_validate,
    development_data,
    epochs_curve,
    learning_curve,
    make_splits,
)
from deepatlas.evaluation.stats import corrected_ttest, holm

__all__ = [
    "compare",
    "corrected_ttest",
    "cross_validate",
    "development_data",
    "epochs_curve",
    "evaluate",
    "holm",
    "learning_curve",
    "make_splits",
    "save_compare",
    "save_curves",
    "save_cv",
    "save_evaluation",
    "write_report",
]

"""Paired comparison of two models scored on the same cross-validation folds.

The folds' training sets overlap, so the per-fold score differences are correlated and the plain
paired t-test is far too eager to call a difference significant. Nadeau & Bengio correct the
variance of the mean difference by the ratio of test to training size:

    t = mean(d) / sqrt((1 / J + n_test / n_train) * var(d))        df = J - 1

with ``J`` the number of folds (times repeats) and ``var`` the sample variance (ddof 1).
Bouckaert & Frank recommend it for repeated k-fold cross-validation. With several pairs, Holm's
step-down method keeps the family-wise error rate at ``alpha``.

References: Nadeau & Bengio (2003), "Inference for the generalization error", Machine Learning
52(3); Bouckaert & Frank (2004), "Evaluating the replicability of significance tests for comparing
learning algorithms"; Holm (1979), "A simple sequentially rejective multiple test procedure".
"""

from __future__ import annotations

import math

import numpy as np

from deepatlas.errors import InputError


def corrected_ttest(scores_a, scores_b, n_train: float, n_test: float) -> dict[str, float]:
    """Nadeau-Bengio corrected resampled t-test of ``scores_a - scores_b`` (paired by fold).

    ``n_train`` and ``n_test`` are the (mean) training and test sizes of a fold. Returns the mean
    difference, its corrected standard error, ``t``, the degrees of freedom and the two-sided
    ``p`` value.

    >>> r = corrected_ttest([0.9, 0.92, 0.91], [0.88, 0.9, 0.9], n_train=200, n_test=100)
    >>> round(r["p"], 3)
    0.087
    """
    from scipy import stats

    a = np.asarray(scores_a, dtype=np.float64)
    b = np.asarray(scores_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise InputError(f"scores_a and scores_b must be 1-D and paired by fold. Got shapes {a.shape} and {b.shape}.")
    if len(a) < 2:
        raise InputError(f"the corrected t-test needs at least 2 paired folds. Got {len(a)}.")
    if n_train <= 0 or n_test <= 0:
        raise InputError(f"n_train and n_test must be positive. Got {n_train} and {n_test}.")
    d = a - b
    j = len(d)
    mean = float(d.mean())
    var = float(d.var(ddof=1))
    se = math.sqrt((1.0 / j + n_test / n_train) * var)
    if se == 0.0:
        # Identical differences on every fold: no spread to test against.
        t = 0.0 if mean == 0.0 else math.copysign(math.inf, mean)
        p = 1.0 if mean == 0.0 else 0.0
    else:
        t = mean / se
        p = float(2.0 * stats.t.sf(abs(t), df=j - 1))
    return {"mean_difference": mean, "std_error": se, "t": t, "df": j - 1, "p": p}


def holm(p_values) -> np.ndarray:
    """Holm-adjusted p values (same order as given), capped at 1."""
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    order = np.argsort(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, (m - rank) * p[i])
        adjusted[i] = min(1.0, running)
    return adjusted

"""Small helpers shared by atlas experiments."""

from __future__ import annotations

import time

import numpy as np


def fit_timed(model, X, y, **kwargs):
    start = time.perf_counter()
    model.fit(X, y, **kwargs)
    return model, time.perf_counter() - start


def n_params(model) -> int:
    return int(sum(p.numel() for p in model.module_.parameters()))


def flat(X: np.ndarray) -> np.ndarray:
    return X.reshape(len(X), -1)


def r(x: float, digits: int = 4) -> float:
    return round(float(x), digits)


# Seed budgets (full report, quick report). The default of ``@experiment`` is five seeds in the
# full report and three in the quick one; experiments that cost more than about a second in quick
# mode run one quick seed (MEDIUM: still five full seeds) so that the quick report stays near a
# minute, and the heaviest (HEAVY: minutes per run in the full report) one seed in each.
MEDIUM = {"seeds": (0, 1, 2, 3, 4), "quick_seeds": (0,)}
HEAVY = {"seeds": (0,), "quick_seeds": (0,)}

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

"""Built-in datasets of the spine: scikit-learn's digits, MNIST-1D and small 2-D toy problems.

Every split is fixed and seeded, so a score on ``digits`` means the same thing in every run.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from deepatlas._io import atomic_savez
from deepatlas.data.core import Dataset, check_size, register_dataset, split
from deepatlas.errors import InputError


def _check_n(n: int, minimum: int = 20, name: str = "n") -> int:
    if not isinstance(n, int) or isinstance(n, bool) or n < minimum:
        raise InputError(f"Dataset option {name!r} must be an int >= {minimum}. Got {n!r} instead.")
    return n


def _points(name: str, n: int, features: int = 2, **options) -> int:
    """``n`` checked, and refused when ``n`` points of ``features`` numbers are too many."""
    n = _check_n(n)
    check_size(name, 64 * n * (features + 1), {"n": n, **options})
    return n


def _check_noise(noise: float) -> float:
    if not isinstance(noise, (int, float)) or isinstance(noise, bool) or noise < 0:
        raise InputError(f"Dataset option 'noise' must be a float >= 0. Got {noise!r} instead.")
    return float(noise)


def _from_arrays(name, task, X, y, description, seed=0, **meta) -> Dataset:
    parts = split(X, y, seed=seed)
    return Dataset(name, task, *parts, description=description, meta=meta)


@register_dataset(
    "digits", task="classification", description="scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes)"
)
def digits() -> Dataset:
    from sklearn.datasets import load_digits

    data = load_digits()
    # Pixel values are 0..16; scale to [0, 1] so energy-based models can read them as probabilities.
    X = (data.images / 16.0).astype(np.float32)[:, None, :, :]  # (n, 1, 8, 8)
    return _from_arrays("digits", "classification", X, data.target.astype(np.int64), digits.__doc__ or "", image=True)


def _cache_dir() -> Path:
    root = os.environ.get("DEEPATLAS_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "deepatlas")
    return Path(root)


@lru_cache(maxsize=1)
def _mnist1d_arrays() -> dict[str, np.ndarray]:
    """Generate MNIST-1D offline (never its download path) and cache the arrays as ``.npz``."""
    path = _cache_dir() / "mnist1d-default.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as f:
                return {k: f[k] for k in f.files}
        except (OSError, ValueError):
            pass  # a damaged cache is regenerated below
    from mnist1d.data import get_dataset_args, make_dataset

    raw = make_dataset(get_dataset_args())
    arrays = {k: np.asarray(raw[k]) for k in ("x", "y", "x_test", "y_test")}
    try:
        atomic_savez(path, **arrays)
    except OSError:
        pass  # caching is an optimisation only
    return arrays


@register_dataset(
    "mnist1d",
    task="classification",
    description="MNIST-1D (Greydanus, 2020): 40-sample 1-D digit signals, standard 4000/1000 split",
)
def mnist1d() -> Dataset:
    a = _mnist1d_arrays()
    X = a["x"].astype(np.float32)
    y = a["y"].astype(np.int64)
    from sklearn.model_selection import train_test_split

    tr, va = train_test_split(np.arange(len(X)), test_size=0.1, random_state=0, stratify=y)
    return Dataset(
        "mnist1d",
        "classification",
        X[tr],
        y[tr],
        X[va],
        y[va],
        a["x_test"].astype(np.float32),
        a["y_test"].astype(np.int64),
        description="MNIST-1D, standard split: 3,600 train / 400 validation (from the 4,000) / 1,000 test",
    )


@register_dataset(
    "xor",
    task="classification",
    description="2-D XOR: four Gaussian clusters, opposite corners share a label (not linearly separable)",
)
def xor(n: int = 400, noise: float = 0.25, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    n, noise = _points("xor", n), _check_noise(noise)
    corners = rng.integers(0, 2, size=(n, 2))
    X = (corners * 2 - 1) + noise * rng.standard_normal((n, 2))
    y = (corners[:, 0] ^ corners[:, 1]).astype(np.int64)
    return _from_arrays("xor", "classification", X.astype(np.float32), y, "XOR", seed)


@register_dataset("circles", task="classification", description="two concentric circles (not linearly separable)")
def circles(n: int = 400, noise: float = 0.1, factor: float = 0.5, seed: int = 0) -> Dataset:
    from sklearn.datasets import make_circles

    X, y = make_circles(_points("circles", n), noise=_check_noise(noise), factor=factor, random_state=seed)
    return _from_arrays("circles", "classification", X.astype(np.float32), y.astype(np.int64), "circles", seed)


@register_dataset("moons", task="classification", description="two interleaving half-moons")
def moons(n: int = 400, noise: float = 0.2, seed: int = 0) -> Dataset:
    from sklearn.datasets import make_moons

    X, y = make_moons(_points("moons", n), noise=_check_noise(noise), random_state=seed)
    return _from_arrays("moons", "classification", X.astype(np.float32), y.astype(np.int64), "moons", seed)


@register_dataset("blobs", task="classification", description="two well-separated Gaussian blobs (linearly separable)")
def blobs(n: int = 400, n_features: int = 2, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    n_features = _check_n(n_features, 1, "n_features")
    n = _points("blobs", n, n_features, n_features=n_features)
    y = rng.integers(0, 2, size=n).astype(np.int64)
    centers = np.zeros((2, n_features))
    centers[0, 0], centers[1, 0] = -3.0, 3.0
    X = centers[y] + 0.6 * rng.standard_normal((n, n_features))
    return _from_arrays("blobs", "classification", X.astype(np.float32), y, "blobs", seed)


@register_dataset("spirals", task="classification", description="two interleaved spirals (needs a non-linear model)")
def spirals(n: int = 600, noise: float = 0.05, turns: float = 1.5, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    n, noise = _points("spirals", n), _check_noise(noise)
    y = rng.integers(0, 2, size=n).astype(np.int64)
    t = np.sqrt(rng.uniform(0.05, 1.0, size=n)) * turns * 2 * np.pi
    r = t / (turns * 2 * np.pi)
    angle = t + np.pi * y
    X = np.stack([r * np.cos(angle), r * np.sin(angle)], axis=1) + noise * rng.standard_normal((n, 2))
    return _from_arrays("spirals", "classification", X.astype(np.float32), y, "spirals", seed)

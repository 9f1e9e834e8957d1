"""Two-dimensional Gaussian mixtures for measuring mode collapse in generative models.

``ring8``: 8 equal Gaussians with standard deviation 0.01 evenly spaced on a circle of radius 1;
``grid25``: 25 equal Gaussians with standard deviation 0.05 centred on ``{-4, -2, 0, 2, 4}^2``.
Both follow the set-ups of Srivastava et al. (2017), "VEEGAN: Reducing mode collapse in GANs
using implicit variational learning", and Lin et al. (2018), "PacGAN: The power of two samples
in generative adversarial networks". ``y`` holds the index of the component that drew each
point (conditional models may use it); ``meta["modes"]`` and ``meta["sigma"]`` let the mode
measures in :mod:`deepatlas.models.gan.metrics` count which modes a model reaches.
"""

from __future__ import annotations

import numpy as np

from deepatlas.data.core import Dataset, check_size, register_dataset, split
from deepatlas.errors import InputError


def ring_modes(k: int = 8, radius: float = 1.0) -> np.ndarray:
    """``k`` points evenly spaced on a circle; (k, 2)."""
    angles = 2 * np.pi * np.arange(k) / k
    return np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)


def grid_modes(values=(-4.0, -2.0, 0.0, 2.0, 4.0)) -> np.ndarray:
    """The Cartesian grid ``values x values``; (len(values)**2, 2)."""
    xs, ys = np.meshgrid(values, values, indexing="ij")
    return np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)


def _mixture(name: str, modes: np.ndarray, sigma: float, n, seed, description: str) -> Dataset:
    if not isinstance(n, int) or isinstance(n, bool) or n < 100:
        raise InputError(f"Dataset option 'n' must be an int >= 100. Got {n!r} instead.")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise InputError(f"Dataset option 'seed' must be an int >= 0. Got {seed!r} instead.")
    check_size(name, 100 * n, {"n": n})
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(modes), size=n).astype(np.int64)  # equal mixture weights
    X = (modes[y] + sigma * rng.standard_normal((n, 2))).astype(np.float32)  # (n, 2)
    parts = split(X, y, seed=seed)
    return Dataset(
        name,
        "generative",
        *parts,
        description=description,
        feature_names=["x1", "x2"],
        target_name="component",
        meta={"modes": modes.tolist(), "sigma": sigma},
    )


@register_dataset(
    "ring8", task="generative", description="8 Gaussians (sigma 0.01) on a circle of radius 1 (VEEGAN/PacGAN)"
)
def ring8(n: int = 10000, seed: int = 0) -> Dataset:
    """8 Gaussians, standard deviation 0.01, evenly spaced on a circle of radius 1."""
    return _mixture("ring8", ring_modes(8, 1.0), 0.01, n, seed, ring8.__doc__ or "")


@register_dataset(
    "grid25", task="generative", description="25 Gaussians (sigma 0.05) on the grid {-4,-2,0,2,4}^2 (VEEGAN/PacGAN)"
)
def grid25(n: int = 10000, seed: int = 0) -> Dataset:
    """25 Gaussians, standard deviation 0.05, centred on the grid {-4, -2, 0, 2, 4}^2."""
    return _mixture("grid25", grid_modes(), 0.05, n, seed, grid25.__doc__ or "")

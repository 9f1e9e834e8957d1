"""Bouncing balls: the video task of the temporal Boltzmann machines.

Balls of one radius (and one mass) move in a square box with elastic collisions between each
other and with the walls, rendered as frames of ``size x size`` pixels in [0, 1]. The set-up
follows Sutskever & Hinton (2007), "Learning multilevel distributed representations for
high-dimensional sequences", and Sutskever, Hinton & Taylor (2008), "The recurrent temporal
restricted Boltzmann machine" (box of side 10, balls of radius 1.2, each ball drawn as a soft disc
``exp(-(d^2 / r^2)^4)``); the simulation is our own.

Physics. Each frame is ``substeps`` Euler steps of straight flight. After each step a ball that
crossed a wall is mirrored back inside and the velocity component normal to the wall flips sign;
two balls closer than ``2 r`` and still approaching exchange the components of their velocities
along the line joining their centres (the elastic collision of equal masses), and are moved apart
symmetrically along that line until they touch. Both rules keep every speed's contribution to the
kinetic energy, so the total kinetic energy is conserved to rounding; the separation keeps the
balls from overlapping (up to a few repeated passes when three balls meet), and the walls keep them
inside the box.

``bouncing-balls:n=200,T=30,size=15,balls=3``: ``X`` is ``(n, T, size * size)`` float32 (one row
per frame, pixels row-major), ``y`` is ``None``; ``meta`` holds the frame shape and the settings.
The sequences are split 70/10/20 into train / validation / test (whole sequences, never frames of
one sequence on both sides).
"""

from __future__ import annotations

import numpy as np

from deepatlas.data.core import Dataset, check_size, register_dataset, split
from deepatlas.errors import InputError

BOX = 10.0  # side of the box, in the units of the radius and the speed


def _resolve_pairs(pos: np.ndarray, vel: np.ndarray, radius: float) -> None:
    """Elastic collisions of equal masses between overlapping, approaching balls; separate all
    overlaps. ``pos``, ``vel``: ``(n, balls, 2)``, changed in place (every sequence at once)."""
    m = pos.shape[1]
    for i in range(m):
        for j in range(i + 1, m):
            d = pos[:, j] - pos[:, i]  # (n, 2)
            dist = np.hypot(d[:, 0], d[:, 1])
            hit = dist < 2 * radius
            if not hit.any():
                continue
            n = np.where((dist > 1e-12)[:, None], d / np.maximum(dist, 1e-12)[:, None], [1.0, 0.0])
            approach = np.einsum("ij,ij->i", vel[:, i] - vel[:, j], n)
            swap = (hit & (approach > 0))[:, None] * approach[:, None] * n  # exchange the normal components
            vel[:, i] -= swap
            vel[:, j] += swap
            push = (hit * (0.5 * (2 * radius - dist) + 1e-9))[:, None] * n
            pos[:, i] -= push
            pos[:, j] += push


def _resolve_walls(pos: np.ndarray, vel: np.ndarray, radius: float) -> None:
    lo, hi = radius, BOX - radius
    below, above = pos < lo, pos > hi
    pos[below] = 2 * lo - pos[below]
    pos[above] = 2 * hi - pos[above]
    vel[below] = np.abs(vel[below])
    vel[above] = -np.abs(vel[above])
    np.clip(pos, lo, hi, out=pos)  # a ball pushed far by a pair lands on the wall


def simulate(
    T: int,
    balls: int,
    rng: np.random.Generator,
    *,
    n: int = 1,
    radius: float = 1.2,
    speed: float = 0.5,
    substeps: int = 10,
) -> tuple[np.ndarray, np.ndarray]:
    """Positions and velocities ``(n, T, balls, 2)`` of ``n`` sequences, one row per frame.

    Balls start at random non-overlapping places inside the box with random directions and speeds
    in ``[0.5, 1.5] * speed`` (distance per frame)."""
    if balls * (2 * radius) ** 2 > 0.4 * (BOX - 2 * radius) ** 2:
        raise InputError(
            f"{balls} balls of radius {radius:g} do not fit in the box; use fewer balls or a smaller radius."
        )
    pos = np.empty((n, balls, 2))
    for s in range(n):
        for i in range(balls):
            for _ in range(10000):  # rejection: a free place
                p = rng.uniform(radius, BOX - radius, size=2)
                if i == 0 or np.min(np.hypot(*(pos[s, :i] - p).T)) > 2 * radius:
                    break
            pos[s, i] = p
    angle = rng.uniform(0, 2 * np.pi, size=(n, balls))
    v = speed * rng.uniform(0.5, 1.5, size=(n, balls))
    vel = np.stack([v * np.cos(angle), v * np.sin(angle)], axis=2)
    P, V = np.empty((n, T, balls, 2)), np.empty((n, T, balls, 2))
    dt = 1.0 / substeps
    for t in range(T):
        P[:, t], V[:, t] = pos, vel
        for _ in range(substeps):
            pos += dt * vel
            for _ in range(3):  # three balls in contact may need a second pass
                _resolve_pairs(pos, vel, radius)
                _resolve_walls(pos, vel, radius)
    return P, V


def render(positions: np.ndarray, size: int, radius: float = 1.2) -> np.ndarray:
    """Frames ``(T, size * size)`` in [0, 1]: each ball a soft disc ``exp(-(d^2 / r^2)^4)``, the brightest wins."""
    centres = (np.arange(size) + 0.5) * (BOX / size)
    X, Y = np.meshgrid(centres, centres, indexing="ij")  # pixel (row, col) -> (x, y)
    d2 = (X[None, None] - positions[:, :, 0, None, None]) ** 2 + (Y[None, None] - positions[:, :, 1, None, None]) ** 2
    frames = np.exp(-((d2 / radius**2) ** 4)).max(axis=1)  # (T, size, size)
    return frames.reshape(len(positions), size * size).astype(np.float32)


def make_bouncing_balls(n: int, T: int, size: int, balls: int, rng: np.random.Generator, radius: float = 1.2):
    """``n`` sequences of ``T`` frames, ``(n, T, size * size)`` float32."""
    P = simulate(T, balls, rng, n=n, radius=radius)[0]
    return np.stack([render(p, size, radius) for p in P])


def _check(name: str, value, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InputError(f"Dataset option {name!r} must be an int >= {minimum}. Got {value!r} instead.")
    return value


@register_dataset(
    "bouncing-balls",
    task="generative",
    description="videos of balls bouncing elastically in a box (Sutskever et al., 2008): (n, T, size*size) frames",
)
def bouncing_balls(n: int = 400, T: int = 30, size: int = 15, balls: int = 3, radius: float = 1.2, seed: int = 0):
    n, T, size, balls = _check("n", n, 10), _check("T", T, 2), _check("size", size, 4), _check("balls", balls, 1)
    if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not 0.2 <= radius <= 3.0:
        raise InputError(f"Dataset option 'radius' must be a number in [0.2, 3]. Got {radius!r} instead.")
    # float32 frames (and the split's copies), the simulated paths, one sequence's float64 distances
    nbytes = 12 * n * T * size * size + 32 * n * T * balls + 24 * T * balls * size * size
    check_size("bouncing-balls", nbytes, {"n": n, "T": T, "size": size, "balls": balls})
    X = make_bouncing_balls(n, T, size, balls, np.random.default_rng(seed), float(radius))
    Xtr, _, Xva, _, Xte, _ = split(X, None, seed=seed, stratify=False)
    return Dataset(
        "bouncing-balls",
        "generative",
        Xtr,
        None,
        Xva,
        None,
        Xte,
        None,
        description=f"{balls} balls of radius {radius:g} in a box, {T} frames of {size}x{size} pixels",
        meta={"T": T, "size": size, "balls": balls, "radius": float(radius), "frame_shape": (size, size)},
    )

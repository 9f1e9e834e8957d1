"""``figures``: seeded 64x64 colour images of articulated stick figures, with their keypoints.

A fixed skeleton of 11 joints (head, neck, pelvis, both elbows, hands, knees and feet) hangs
from the pelvis: the torso leans up to 35 degrees from upright, the head nods, every upper limb
turns freely about its shoulder or hip and every lower limb bends about its elbow or knee. Each
figure has its own scale, position and line width, on a background of random line and disc
clutter and pixel noise. The left limbs are drawn red, the right ones blue and the head and
torso yellow, so left and right can be told apart (a plain stick figure is mirror-symmetric).

Strokes are drawn by Pillow at 4x the size and box-filtered down, so they are anti-aliased and
a joint's position shows to a fraction of a pixel; each stroke covers what lies below. The
targets ``y`` are ``(n, 11, 2)`` pixel coordinates ``(x, y)``, pixel centres at integers.
This is the pose-estimation task of the survey's applications on data that loads offline; the
estimator is ``keypoints`` (:mod:`deepatlas.models.recognition.keypoints`).
"""

from __future__ import annotations

import numpy as np

from deepatlas.data.core import Dataset, check_size, register_dataset, split
from deepatlas.errors import InputError

KEYPOINT_TASK = "keypoints"

JOINTS = (
    "head",
    "neck",
    "pelvis",
    "left_elbow",
    "left_hand",
    "right_elbow",
    "right_hand",
    "left_knee",
    "left_foot",
    "right_knee",
    "right_foot",
)
LIMBS = ((0, 1), (1, 2), (1, 3), (3, 4), (1, 5), (5, 6), (2, 7), (7, 8), (2, 9), (9, 10))
"""The skeleton's segments (pairs of joint indices), the order they are drawn in after the torso."""
TORSO, LEFT, RIGHT = (1.0, 0.9, 0.2), (1.0, 0.25, 0.2), (0.2, 0.5, 1.0)
LIMB_COLOURS = (TORSO, TORSO, LEFT, LEFT, RIGHT, RIGHT, LEFT, LEFT, RIGHT, RIGHT)
SIZE = 64
CLUTTER_LINES, CLUTTER_DISCS = 6, 3


def _direction(angle: np.ndarray) -> np.ndarray:
    """Unit vectors for angles in radians measured from 'up' (0, -1), clockwise on screen."""
    return np.stack([np.sin(angle), -np.cos(angle)], axis=-1)


def pose_keypoints(rng: np.random.Generator, n: int, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 11, 2)`` keypoints and ``(n,)`` torso lengths of random poses placed inside the image."""
    s = rng.uniform(8.0, 13.0, n)[:, None]  # torso length, pixels
    lean = np.radians(rng.uniform(-35, 35, n))
    pts = np.zeros((n, len(JOINTS), 2))
    pts[:, 1] = s * _direction(lean)  # neck above the pelvis (at 0)
    pts[:, 0] = pts[:, 1] + 0.4 * s * _direction(lean + np.radians(rng.uniform(-25, 25, n)))

    def chain(root: int, mid: int, end: int, first: np.ndarray, bend: np.ndarray, l1: float, l2: float) -> None:
        pts[:, mid] = pts[:, root] + l1 * s * _direction(first)
        pts[:, end] = pts[:, mid] + l2 * s * _direction(first + bend)

    for elbow in (3, 5):  # arms turn freely about the shoulder, bend up to 150 degrees
        first = lean + np.radians(rng.uniform(-180, 180, n))
        chain(1, elbow, elbow + 1, first, np.radians(rng.uniform(-150, 150, n)), 0.6, 0.55)
    for knee, side in ((7, 1), (9, -1)):  # legs point down, the left one to the figure's left
        first = lean + np.pi + np.radians(side * rng.uniform(-10, 60, n))
        chain(2, knee, knee + 1, first, np.radians(rng.uniform(-100, 100, n)), 0.7, 0.65)
    margin = 4.0
    lo, hi = pts.min(axis=1), pts.max(axis=1)  # (n, 2)
    room = (size - 1 - 2 * margin) - (hi - lo)
    shift = margin - lo + rng.uniform(0, 1, (n, 2)) * np.maximum(room, 0)
    return (pts + shift[:, None]).astype(np.float32), s[:, 0].astype(np.float32)


SUPERSAMPLE = 4  # strokes are drawn at 4x and box-filtered down: anti-aliased, sub-pixel positions


def render(
    keypoints: np.ndarray, width: np.ndarray, rng: np.random.Generator, clutter: bool = True, size: int = SIZE
) -> np.ndarray:
    """``(n, 3, size, size)`` float32 images in [0, 1] of the figures with ``keypoints`` (Pillow
    draws each stroke at 4x the size; the image is then box-filtered down)."""
    from PIL import Image, ImageDraw

    k = SUPERSAMPLE
    n = len(keypoints)
    out = np.empty((n, 3, size, size), np.float32)

    def rgb(c) -> tuple[int, int, int]:
        return tuple(int(round(255 * v)) for v in c)

    def at(p) -> tuple[float, float]:  # pixel centre (x, y) -> its place on the 4x canvas
        return (k * (float(p[0]) + 0.5) - 0.5, k * (float(p[1]) + 0.5) - 0.5)

    def disc(draw, centre, radius, colour) -> None:
        x, y = at(centre)
        draw.ellipse((x - k * radius, y - k * radius, x + k * radius, y + k * radius), fill=colour)

    for i in range(n):
        im = Image.new("RGB", (k * size, k * size), rgb(rng.uniform(0.0, 0.35, 3)))
        draw = ImageDraw.Draw(im)
        if clutter:
            for _ in range(CLUTTER_LINES):  # random strokes of any colour
                a = rng.uniform(-8, size + 8, 2)
                b = a + rng.normal(0, 14, 2)
                w, colour, shown = rng.uniform(0.8, 3.0), rgb(rng.uniform(0, 1, 3)), rng.uniform() < 0.8
                if shown:
                    draw.line([at(a), at(b)], fill=colour, width=max(1, round(k * w)))
            for _ in range(CLUTTER_DISCS):
                c, r, colour = rng.uniform(0, size, 2), rng.uniform(1, 4.5), rgb(rng.uniform(0, 1, 3))
                disc(draw, c, r, colour)
        w = max(1, round(k * float(width[i])))
        for (a, b), colour in zip(LIMBS, LIMB_COLOURS):
            draw.line([at(keypoints[i, a]), at(keypoints[i, b])], fill=rgb(colour), width=w, joint="curve")
            for end in (a, b):  # round caps
                disc(draw, keypoints[i, end], w / (2 * k), rgb(colour))
        disc(draw, keypoints[i, 0], 1.1 * float(width[i]) + 0.75, rgb(TORSO))
        out[i] = np.asarray(im.reduce(k), np.float32).transpose(2, 0, 1) / 255.0
    if clutter:
        out += rng.normal(0, 0.04, out.shape).astype(np.float32)
    return np.clip(out, 0, 1)


def make_figures(n: int, seed: int = 0, clutter: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(X (n, 3, 64, 64), keypoints (n, 11, 2), line widths (n,))``, the same for the same seed."""
    rng = np.random.default_rng(seed)
    keypoints, _ = pose_keypoints(rng, n)
    width = rng.uniform(1.0, 3.0, n).astype(np.float32)
    return render(keypoints, width, rng, clutter), keypoints, width


def figure_size(keypoints: np.ndarray) -> np.ndarray:
    """The size PCK is relative to: the longer side of each figure's keypoint box, ``(n,)``."""
    k = np.asarray(keypoints)
    return (k.max(axis=-2) - k.min(axis=-2)).max(axis=-1)


@register_dataset(
    "figures",
    task=KEYPOINT_TASK,
    description="seeded 64x64 stick figures (11 joints, random pose, scale, position, line width, clutter) "
    "with their keypoints",
)
def figures(n: int = 2000, clutter: bool = True, seed: int = 0) -> Dataset:
    """``n`` figures split 70/10/20; ``clutter=false`` draws them on a plain background."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 20:
        raise InputError(f"Dataset option 'n' of 'figures' must be an int >= 20. Got {n!r} instead.")
    if not isinstance(clutter, bool):
        raise InputError(f"Dataset option 'clutter' of 'figures' must be true or false. Got {clutter!r} instead.")
    check_size("figures", n * 3 * SIZE * SIZE * 4 * 3, {"n": n})
    X, keypoints, _ = make_figures(n, seed, clutter)
    parts = split(X, keypoints, seed=seed, stratify=False)
    return Dataset(
        "figures",
        KEYPOINT_TASK,
        *parts,
        description=f"{n} stick figures, 11 joints (seed {seed}{', clutter' if clutter else ''})",
        meta={"image": True, "joints": list(JOINTS), "limbs": [list(p) for p in LIMBS]},
    )

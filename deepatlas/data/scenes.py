"""Scenes for detection and segmentation: a seeded generator, and the user's own COCO data.

``scenes`` pastes 1 to ``max_objects`` objects, cut from scikit-learn's 8x8 digits (default) or
from Fashion-MNIST, at random positions and sizes onto an empty ``size`` x ``size`` grey canvas.
An object is the set of its resized pixels brighter than :data:`INK`; only those pixels are
pasted, so the picture is non-zero exactly where an object is. Each scene comes with

- a class mask: 0 for background, ``c + 1`` where class ``c`` is visible;
- an instance mask: 0 for background, ``i + 1`` where object ``i`` is visible;
- boxes ``[x0, y0, x1, y1]`` (pixel edges, COCO's convention: ``x1 - x0`` is the width), the tight
  bounds of each instance's visible pixels, computed from the instance mask, so boxes and masks
  agree exactly (:func:`boxes_from_masks`).

A later object covers an earlier one where they meet (``overlap`` is the largest IoU allowed
between two objects' boxes, 0 keeps them apart). The crops of each split come from disjoint
source images (the source's own test images for the test scenes of Fashion-MNIST), so a test
scene shows objects no model has seen.

The targets ``y`` are the two masks stacked, ``(n, 2, H, W)`` int64 (class mask first): boxes and
class labels follow from them exactly, so the detector and the segmenter learn from the same
arrays. The dataset's task is ``"scenes"``.

User data: a folder with ``annotations.json`` in COCO's format (Lin et al., 2014), read with
``pycocotools``: images named by paths relative to the folder (grey or RGB, any size), each
annotation a box with a polygon or RLE mask (a box alone is filled as its mask). Images are scaled
to fit a square canvas and padded at the bottom and right (``meta["resize"]`` records how), and
split by image, seeded.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from deepatlas.data.core import Dataset, check_memory, check_size, register_dataset
from deepatlas.errors import InputError

TASK = "scenes"
INK = 0.25
"""Brightness above which a resized source pixel belongs to its object."""

DIGIT_CLASSES = tuple(str(d) for d in range(10))


# ---- boxes from masks ---------------------------------------------------------------------------------
def boxes_from_masks(targets: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per scene, ``(boxes (k, 4) float32 [x0, y0, x1, y1], labels (k,) int64)`` from the stacked
    ``(n, 2, H, W)`` class and instance masks: the tight bounds of each instance's pixels and the
    class its pixels carry, instances in the order of their ids."""
    targets = np.asarray(targets)
    out = []
    for classes, instances in zip(targets[:, 0], targets[:, 1]):
        boxes, labels = [], []
        for i in np.unique(instances):
            if i == 0:
                continue
            rows, cols = np.nonzero(instances == i)
            boxes.append([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1])
            labels.append(int(classes[rows[0], cols[0]]) - 1)
        out.append((np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(labels, np.int64).reshape(-1)))
    return out


def check_targets(y, n: int, shape: tuple[int, int], owner: str) -> np.ndarray:
    """``y`` as the stacked masks ``(n, 2, H, W)`` int64, or one line saying what it is instead."""
    if y is None:
        raise InputError(f"{owner} requires y (class and instance masks, shape (n, 2, H, W)), but y is None.")
    y = np.asarray(y)
    if y.shape != (n, 2, *shape):
        raise InputError(
            f"{owner} expects y of shape {(n, 2, *shape)} (class mask and instance mask per image, as the "
            f"'scenes' data gives). Got shape {y.shape} instead."
        )
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
        raise InputError(f"{owner}: y must hold non-negative integer masks. Got dtype {y.dtype} instead.")
    return y.astype(np.int64)


# ---- the generator --------------------------------------------------------------------------------------
def _digit_pools(seed: int) -> tuple[list[tuple[np.ndarray, np.ndarray]], tuple[str, ...]]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    images = (d.images / 16.0).astype(np.float32)
    idx = np.arange(len(images))
    rest, test = train_test_split(idx, test_size=0.2, random_state=seed, stratify=d.target)
    train, val = train_test_split(rest, test_size=0.125, random_state=seed, stratify=d.target[rest])
    return [(images[i], d.target[i].astype(np.int64)) for i in (train, val, test)], DIGIT_CLASSES


def _fashion_pools(seed: int, path: str | None):
    from sklearn.model_selection import train_test_split

    from deepatlas.data.fashion import CLASSES, fashion_arrays

    a = fashion_arrays(path)
    tr, va = train_test_split(np.arange(len(a["y_train"])), test_size=0.1, random_state=seed, stratify=a["y_train"])
    X = a["X_train"].astype(np.float32) / 255.0
    pools = [(X[tr], a["y_train"][tr]), (X[va], a["y_train"][va])]
    pools.append((a["X_test"].astype(np.float32) / 255.0, a["y_test"]))
    return pools, CLASSES


def _resize(crop: np.ndarray, side: int) -> np.ndarray:
    import torch
    from torch.nn import functional as F

    t = torch.from_numpy(np.ascontiguousarray(crop))[None, None]
    return F.interpolate(t, size=(side, side), mode="bilinear", align_corners=False)[0, 0].numpy()


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def render_scenes(
    n: int,
    pool: tuple[np.ndarray, np.ndarray],
    rng: np.random.Generator,
    *,
    size: int,
    max_objects: int,
    min_scale: float,
    max_scale: float,
    overlap: float,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` scenes from the crops and labels in ``pool``: images ``(n, 1, size, size)`` float32
    and targets ``(n, 2, size, size)`` int64 (class mask, instance mask)."""
    crops, labels = pool
    X = np.zeros((n, 1, size, size), np.float32)
    Y = np.zeros((n, 2, size, size), np.int64)
    for s in range(n):
        k = int(rng.integers(1, max_objects + 1))
        placed: list[tuple[float, float, float, float]] = []
        for _ in range(k):
            for _attempt in range(50):
                side = int(round(rng.uniform(min_scale, max_scale) * size))
                side = max(4, min(side, size))
                x0, y0 = (int(v) for v in rng.integers(0, size - side + 1, size=2))
                box = (x0, y0, x0 + side, y0 + side)
                if all(_iou(box, other) <= overlap for other in placed):
                    break
            else:
                continue  # no free place for this object: the scene keeps fewer
            j = int(rng.integers(len(crops)))
            patch = _resize(crops[j], side)
            ink = patch > INK * max(float(patch.max()), 1e-6)
            if not ink.any():
                continue
            placed.append(box)
            region = (slice(y0, y0 + side), slice(x0, x0 + side))
            X[s, 0][region][ink] = np.clip(patch[ink], 0.0, 1.0)
            Y[s, 0][region][ink] = int(labels[j]) + 1
            Y[s, 1][region][ink] = len(placed)
        # Instances a later object covered completely are gone; renumber the visible ones 1..m.
        ids = np.unique(Y[s, 1])
        ids = ids[ids > 0]
        if len(ids) and ids[-1] != len(ids):
            remap = np.zeros(ids[-1] + 1, np.int64)
            remap[ids] = np.arange(1, len(ids) + 1)
            Y[s, 1] = remap[Y[s, 1]]
    return X, Y


def _number(name, value, low, high, kind=float):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    if not ok or not low <= value <= high:
        raise InputError(
            f"Dataset option {name!r} of 'scenes' must be {'an int' if kind is int else 'a number'} in "
            f"[{low}, {high}]. Got {value!r} instead."
        )
    return kind(value)


@register_dataset(
    TASK,
    task=TASK,
    description="seeded 64x64 scenes of 1-4 digits (or Fashion-MNIST items) with exact boxes, class and instance "
    "masks (detection, segmentation)",
)
def scenes(
    n: int = 3000,
    size: int = 64,
    max_objects: int = 4,
    source: str = "digits",
    min_scale: float = 0.25,
    max_scale: float = 0.45,
    overlap: float = 0.0,
    path: str | None = None,
    seed: int = 0,
) -> Dataset:
    """``n`` scenes split 70/10/20 (train/validation/test); objects are squares whose side is a
    fraction in [``min_scale``, ``max_scale``] of ``size``; ``source`` is ``digits`` or
    ``fashion`` (``path``: the Fashion-MNIST folder, see the ``fashion-mnist`` dataset)."""
    n = _number("n", n, 10, 10**7, int)
    size = _number("size", size, 16, 1024, int)
    max_objects = _number("max_objects", max_objects, 1, 64, int)
    min_scale = _number("min_scale", min_scale, 0.05, 1.0)
    max_scale = _number("max_scale", max_scale, min_scale, 1.0)
    overlap = _number("overlap", overlap, 0.0, 1.0)
    if source not in ("digits", "fashion"):
        raise InputError(f"Dataset option 'source' of 'scenes' must be 'digits' or 'fashion'. Got {source!r} instead.")
    check_size(TASK, n * size * size * 24, {"n": n, "size": size})
    pools, class_names = _digit_pools(seed) if source == "digits" else _fashion_pools(seed, path)
    counts = [int(round(0.7 * n)), int(round(0.1 * n))]
    counts.append(n - sum(counts))
    rng = np.random.default_rng(seed)
    parts = []
    for count, pool in zip(counts, pools):
        parts += render_scenes(
            count,
            pool,
            rng,
            size=size,
            max_objects=max_objects,
            min_scale=min_scale,
            max_scale=max_scale,
            overlap=overlap,
        )
    return Dataset(
        TASK,
        TASK,
        *parts,
        description=f"{n} seeded {size}x{size} scenes of 1-{max_objects} {source} objects (seed {seed})",
        meta={"image": True, "class_names": list(class_names), "source": source},
    )


# ---- COCO user data ------------------------------------------------------------------------------------
def looks_like_coco(folder: Path) -> bool:
    return (folder / "annotations.json").is_file()


def _canvas_side(sizes: list[tuple[int, int]]) -> int:
    """The square canvas every image is fitted into: the median longest side, a multiple of 16,
    between 32 and 256."""
    side = int(np.median([max(w, h) for w, h in sizes]))
    return int(min(256, max(32, 16 * round(side / 16))))


def load_coco(folder: Path, *, seed: int = 0, size: int | None = None) -> Dataset:
    """The images and annotations of ``folder/annotations.json`` (COCO format) as a scenes dataset."""
    from PIL import Image, UnidentifiedImageError

    from deepatlas.data.core import split

    ann_path = folder / "annotations.json"
    where = str(ann_path)
    try:
        doc = json.loads(ann_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{where!r} is not a readable JSON file: {exc}.") from None
    if not isinstance(doc, dict) or not all(
        isinstance(doc.get(k), list) for k in ("images", "annotations", "categories")
    ):
        raise InputError(f"{where!r} must be a COCO object with lists 'images', 'annotations' and 'categories'.")
    if not doc["images"]:
        raise InputError(f"{where!r} lists no images; a scene set needs at least 10.")
    from pycocotools.coco import COCO

    try:
        cats = sorted(int(c["id"]) for c in doc["categories"])
        images = {int(im["id"]): im for im in doc["images"]}
        for im in images.values():
            im["width"], im["height"], im["file_name"] = int(im["width"]), int(im["height"]), str(im["file_name"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(
            f"{where!r}: every image needs id, file_name, width and height, every category an id ({exc})."
        ) from None
    cat_index = {c: i for i, c in enumerate(cats)}
    names = {int(c["id"]): str(c.get("name", c["id"])) for c in doc["categories"]}
    for a in doc["annotations"]:
        try:
            aid, img_id, cat = a.get("id"), int(a["image_id"]), int(a["category_id"])
            x, y, w, h = (float(v) for v in a["bbox"])
        except (KeyError, TypeError, ValueError):
            raise InputError(
                f"{where!r}: annotation {a.get('id')!r} needs image_id, category_id and bbox [x, y, w, h]."
            ) from None
        if cat not in cat_index:
            raise InputError(
                f"{where!r}: annotation {aid!r} has category_id {cat}, which 'categories' does not list "
                f"(known: {', '.join(map(str, cats[:12]))})."
            )
        if img_id not in images:
            raise InputError(
                f"{where!r}: annotation {aid!r} refers to image_id {img_id}, which 'images' does not list."
            )
        im = images[img_id]
        if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > im["width"] + 1e-6 or y + h > im["height"] + 1e-6:
            raise InputError(
                f"{where!r}: annotation {aid!r} has bbox {[x, y, w, h]} outside its image {im['file_name']!r} "
                f"({im['width']}x{im['height']})."
            )
    if len(images) < 10:
        raise InputError(
            f"{where!r} lists {len(images)} images; at least 10 are needed to split train, validation and test."
        )
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco = COCO()
        coco.dataset = doc
        coco.createIndex()
    ids = sorted(images)
    side = size or _canvas_side([(images[i]["width"], images[i]["height"]) for i in ids])
    check_memory(f"COCO data {where!r}", len(ids) * side * side * 24, "use fewer images")
    pictures, targets, rgb = [], [], False
    for i in ids:
        im = images[i]
        p = folder / im["file_name"]
        try:
            with Image.open(p) as pic:
                pic.load()
                mode = pic.mode
                arr = np.asarray(pic.convert("RGB" if mode not in ("L", "1", "I", "I;16", "F") else "L"), np.float32)
        except (FileNotFoundError, UnidentifiedImageError, OSError) as exc:
            raise InputError(f"{where!r}: image {im['file_name']!r} cannot be read: {exc}.") from None
        if arr.shape[:2] != (im["height"], im["width"]):
            raise InputError(
                f"{where!r}: image {im['file_name']!r} is {arr.shape[1]}x{arr.shape[0]}, but the file says "
                f"{im['width']}x{im['height']}."
            )
        arr = arr / (255.0 if arr.max() > 1 else 1.0)
        rgb |= arr.ndim == 3
        classes = np.zeros((im["height"], im["width"]), np.int64)
        instances = np.zeros_like(classes)
        for k, a in enumerate(coco.loadAnns(coco.getAnnIds(imgIds=[i])), start=1):
            if a.get("segmentation"):
                m = coco.annToMask(a).astype(bool)
            else:
                x, y, w, h = (float(v) for v in a["bbox"])
                m = np.zeros_like(classes, bool)
                m[int(y) : int(np.ceil(y + h)), int(x) : int(np.ceil(x + w))] = True
            classes[m] = cat_index[int(a["category_id"])] + 1
            instances[m] = k
        pictures.append(arr)
        targets.append(np.stack([classes, instances]))
    X = np.zeros((len(ids), 3 if rgb else 1, side, side), np.float32)
    Y = np.zeros((len(ids), 2, side, side), np.int64)
    for j, (arr, t) in enumerate(zip(pictures, targets)):
        if arr.ndim == 2:
            arr = np.repeat(arr[:, :, None], 3, axis=2) if rgb else arr[:, :, None]
        h, w = arr.shape[:2]
        scale = side / max(h, w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        X[j, :, :nh, :nw] = _resize_image(arr, nh, nw)
        Y[j, :, :nh, :nw] = _resize_nearest(t, nh, nw)
    parts = split(X, Y, seed=seed, stratify=False)
    return Dataset(
        str(folder),
        TASK,
        *parts,
        description=f"COCO data from {folder} ({len(ids)} images fitted into {side}x{side})",
        meta={
            "image": True,
            "class_names": [names[c] for c in cats],
            "category_ids": cats,
            "resize": {"canvas": side, "how": "scaled to fit, padded at the bottom and right with zeros"},
        },
    )


def _resize_image(arr: np.ndarray, nh: int, nw: int) -> np.ndarray:
    import torch
    from torch.nn import functional as F

    t = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None]
    return F.interpolate(t, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)[0].numpy()


def _resize_nearest(masks: np.ndarray, nh: int, nw: int) -> np.ndarray:
    h, w = masks.shape[1:]
    rows = np.minimum((np.arange(nh) + 0.5) * h / nh, h - 1).astype(int)
    cols = np.minimum((np.arange(nw) + 0.5) * w / nw, w - 1).astype(int)
    return masks[:, rows][:, :, cols]

"""Face data and the open-set protocol of recognition.

- ``lfw-faces``: scikit-image's ``data.lfw_subset()``, 200 grey 25x25 crops from Labeled Faces in
  the Wild (Huang et al., 2007): the first 100 are faces, the last 100 non-faces (patches of the
  same photographs). A real face/non-face classification set that loads offline; it has no
  identity labels, so it cannot serve recognition itself.
- :func:`open_set`: any classification dataset whose classes play identities (``digits``,
  ``fashion-mnist``, a folder of images with one sub-folder per identity) becomes an open-set
  recognition task: ``name:open_set=7`` trains on the first 7 classes in sorted order and tests
  on every image of the others, identities never seen in training. These are identity proxies,
  not faces: no face set with identities loads offline (scikit-learn's Olivetti and LFW-people
  fetchers download, and no Debian or PyPI package ships one).
"""

from __future__ import annotations

import numpy as np

from deepatlas._optional import require
from deepatlas.data.core import Dataset, register_dataset, split
from deepatlas.errors import InputError

OPEN_SET_TASK = "open-set"
"""The task of an open-set split: ``y`` holds identities; the test identities are not in training."""


@register_dataset(
    "lfw-faces",
    task="classification",
    description="real 25x25 grey faces (100) and non-faces (100) from LFW, scikit-image's data.lfw_subset()",
)
def lfw_faces(seed: int = 0) -> Dataset:
    """Label 1 is a face, 0 a non-face; a seeded stratified 70/10/20 split."""
    data = require("recognition", "Dataset 'lfw-faces'", "skimage.data")
    X = np.asarray(data.lfw_subset(), np.float32)[:, None]  # (200, 1, 25, 25) in [0, 1]
    y = np.r_[np.ones(100, np.int64), np.zeros(100, np.int64)]  # faces first (the loader's docstring)
    parts = split(X, y, seed=seed)
    return Dataset(
        "lfw-faces",
        "classification",
        *parts,
        description="LFW face/non-face crops from scikit-image (25x25 grey)",
        meta={"image": True, "class_names": ["non-face", "face"]},
    )


def open_set(ds: Dataset, n_train: int, where: str) -> Dataset:
    """``ds`` (a classification dataset of images) split by identity: the first ``n_train``
    classes (sorted) train, their training and validation images kept as they were; every image
    of the other classes, from all three splits, is the test set. ``where`` names the data in
    messages. Refused in one line: too few identities on either side, or a test identity with
    fewer than 2 images (verification pairs two images of one identity)."""
    if ds.task != "classification" or ds.y_train is None:
        raise InputError(f"{where}: open_set needs a classification dataset whose classes are identities.")
    if not isinstance(n_train, int) or isinstance(n_train, bool) or n_train < 2:
        raise InputError(
            f"{where}: open_set must be an int >= 2 (the number of identities to train on). Got {n_train!r} instead."
        )
    X = np.concatenate([ds.X_train, ds.X_val, ds.X_test])
    y = np.concatenate([ds.y_train, ds.y_val, ds.y_test])
    identities = np.unique(y)
    seen, unseen = identities[:n_train], identities[n_train:]
    if len(unseen) < 2:
        raise InputError(
            f"{where}: open_set={n_train} leaves {len(unseen)} test identit{'y' if len(unseen) == 1 else 'ies'} of "
            f"{len(identities)}; at least 2 are needed (use open_set <= {len(identities) - 2})."
        )
    test = np.isin(y, unseen)
    counts = {c: int((y == c).sum()) for c in unseen}
    lonely = [c for c, k in counts.items() if k < 2]
    if lonely:
        raise InputError(
            f"{where}: test identity {_name(ds, lonely[0])!r} has 1 image; verification needs at least 2 images "
            "of every test identity."
        )
    keep_train, keep_val = np.isin(ds.y_train, seen), np.isin(ds.y_val, seen)
    names = ds.meta.get("class_names")
    out = Dataset(
        ds.name,
        OPEN_SET_TASK,
        ds.X_train[keep_train],
        ds.y_train[keep_train],
        ds.X_val[keep_val],
        ds.y_val[keep_val],
        X[test],
        y[test],
        description=f"{ds.description}; open set: identities {_listed(ds, seen)} train, "
        f"{_listed(ds, unseen)} (never seen in training) test",
        meta={
            **ds.meta,
            "open_set": {"train": [_name(ds, c) for c in seen], "test": [_name(ds, c) for c in unseen]},
            **({"class_names": list(names)} if names else {}),
        },
    )
    return out


def _name(ds: Dataset, label) -> str:
    names = ds.meta.get("class_names")
    if names and isinstance(label, (int, np.integer)) and 0 <= int(label) < len(names):
        return str(names[int(label)])
    return str(label)


def _listed(ds: Dataset, labels) -> str:
    return ", ".join(_name(ds, c) for c in labels)


def open_set_arrays(X: np.ndarray, y: np.ndarray, n_train: int, seed: int = 0, where: str = "data") -> Dataset:
    """:func:`open_set` over plain arrays (split 70/10/20 first, seeded)."""
    parts = split(X, y, seed=seed)
    return open_set(Dataset(where, "classification", *parts), n_train, where)

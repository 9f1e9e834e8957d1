"""Class halves of digits, MNIST-1D and Fashion-MNIST for the transfer-learning scenario (classes 0-4 -> 5-9).

Each half keeps the fixed train / validation / test splits of its parent dataset, restricted to
its classes, and the original labels (``digits-5to9`` has labels 5..9).
"""

from __future__ import annotations

import numpy as np

from deepatlas.data import Dataset, load_dataset, register_dataset


def class_subset(ds: Dataset, classes, name: str) -> Dataset:
    """``ds`` with only the samples whose label is in ``classes``, in every split."""
    keep = np.asarray(list(classes))

    def pick(X, y):
        mask = np.isin(y, keep)
        return X[mask], y[mask]

    parts = [*pick(ds.X_train, ds.y_train), *pick(ds.X_val, ds.y_val), *pick(ds.X_test, ds.y_test)]
    return Dataset(
        name,
        "classification",
        *parts,
        description=f"{ds.name} restricted to classes {keep.tolist()}",
        meta=dict(ds.meta),
    )


def _loader(parent: str, lo: int, hi: int, name: str):
    def loader() -> Dataset:
        return class_subset(load_dataset(parent), range(lo, hi + 1), name)

    return loader


def _halves(parent: str) -> None:
    for lo, hi in ((0, 4), (5, 9)):
        name = f"{parent}-{lo}to{hi}"
        describe = f"{parent}, classes {lo}-{hi} only (transfer scenario)"
        register_dataset(name, task="classification", description=describe)(_loader(parent, lo, hi, name))


_halves("digits")
_halves("mnist1d")
_halves("fashion-mnist")  # T-shirt, trouser, pullover, dress, coat -> sandal, shirt, sneaker, bag, ankle boot

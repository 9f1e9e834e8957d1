"""A tiny built-in text classification set: one-line reviews whose label is carried by one word.

It gives the text classifier (``text-rnn``) a dataset name like every other model has, for its
smoke fit (the contract tests) and for ``deepatlas train text-rnn --data reviews`` without a file.
"""

from __future__ import annotations

import numpy as np

from deepatlas.data.core import Dataset, check_size, register_dataset, split
from deepatlas.errors import InputError

_GOOD = ("great", "lovely", "fine", "superb")
_BAD = ("awful", "boring", "poor", "dull")


@register_dataset(
    "reviews",
    task="classification",
    description="synthetic one-line reviews, pos/neg by one word (for text classifiers)",
)
def reviews(n: int = 400, seed: int = 0) -> Dataset:
    if not isinstance(n, int) or isinstance(n, bool) or n < 20:
        raise InputError(f"Dataset option 'n' must be an int >= 20. Got {n!r} instead.")
    check_size("reviews", 400 * n, {"n": n})  # a Python string and a fixed-width copy per review
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    docs = [
        f"it was {rng.choice(_GOOD if k else _BAD)} and {rng.choice(['long', 'short', 'new', 'old'])}" for k in labels
    ]
    X = np.array(docs)  # 1-D array of str: one document per row
    y = np.where(labels == 1, "pos", "neg")
    parts = split(X, y, seed=seed)
    return Dataset(
        "reviews",
        "classification",
        *parts,
        description="synthetic reviews: the sentiment word decides the label (a bag of words gets 100 %)",
        feature_names=["review"],
    )

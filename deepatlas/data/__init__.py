"""Datasets: built-in ones with fixed seeded splits, and loaders for the user's own files.

``load_dataset("digits")``, ``load_dataset("adding:T=200,n=20000")`` (options after a colon) or
``load_dataset("path/to/file.csv", target="label")`` all return a :class:`Dataset` with
train / validation / test splits. Built-in datasets register themselves with
:func:`register_dataset`; any module in this package is imported on first use, so a family adds
its data by adding a file here.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deepatlas._validation import suggest
from deepatlas.errors import InputError

TASKS = ("classification", "regression", "tagging", "generative", "sequence", "text")


@dataclass
class Dataset:
    """Train / validation / test splits plus what a model needs to know about them.

    ``X_*`` keep each sample's natural shape: ``(n, features)`` for tables, ``(n, 1, 8, 8)`` for
    8x8 grey images, ``(n, T, features)`` for sequences. MLPs flatten, CNNs convolve.
    """

    name: str
    task: str
    X_train: np.ndarray
    y_train: np.ndarray | None
    X_val: np.ndarray
    y_val: np.ndarray | None
    X_test: np.ndarray
    y_test: np.ndarray | None
    description: str = ""
    feature_names: list[str] | None = None
    target_name: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.X_train.shape[1:])

    @property
    def n_features(self) -> int:
        return int(np.prod(self.sample_shape))

    @property
    def classes(self) -> np.ndarray | None:
        if self.task != "classification" or self.y_train is None:
            return None
        return np.unique(np.concatenate([self.y_train, self.y_val, self.y_test]))

    def summary(self) -> str:
        parts = [f"{self.name}: {self.task}", f"train {len(self.X_train)}", f"val {len(self.X_val)}"]
        parts += [f"test {len(self.X_test)}", f"sample shape {self.sample_shape}"]
        if self.classes is not None:
            parts.append(f"{len(self.classes)} classes")
        return ", ".join(parts)


@dataclass
class DatasetSpec:
    name: str
    loader: Callable[..., Dataset]
    task: str
    description: str


_DATASETS: dict[str, DatasetSpec] = {}
_loaded = False


def register_dataset(name: str, *, task: str, description: str):
    """Decorator for a function ``loader(**options) -> Dataset`` that builds a built-in dataset."""

    def decorate(fn: Callable[..., Dataset]) -> Callable[..., Dataset]:
        _DATASETS[name] = DatasetSpec(name, fn, task, description)
        return fn

    return decorate


def _ensure_loaded() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for info in pkgutil.iter_modules(__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{__name__}.{info.name}")


def list_datasets() -> list[DatasetSpec]:
    _ensure_loaded()
    return [_DATASETS[n] for n in sorted(_DATASETS)]


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"adding:T=200,n=20000"`` -> ``("adding", {"T": 200, "n": 20000})``."""
    name, _, rest = spec.partition(":")
    options: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, raw = item.partition("=")
        if not eq or not key.strip():
            raise InputError(f"Bad dataset option {item!r} in {spec!r}: expected key=value, e.g. 'adding:T=200'.")
        options[key.strip()] = literal(raw.strip())
    return name.strip(), options


def literal(raw: str) -> Any:
    """Read a command-line value as a Python/JSON literal; plain words stay strings."""
    aliases = {"true": True, "false": False, "null": None, "none": None}
    if raw.lower() in aliases:
        return aliases[raw.lower()]
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw


def load_dataset(
    spec: str, *, target: str | None = None, task: str | None = None, seed: int = 0, text: str | None = None
) -> Dataset:
    """Load a built-in dataset by name (with ``name:key=value`` options) or a user file.

    User files: ``.csv`` (header row; ``target`` column, default the last), ``.npz`` (arrays ``X``
    and ``y``), MNIST IDX image files (the label file beside them), or a folder with one
    sub-folder of images per class. Their split (70/10/20, stratified for classes) uses ``seed``.
    """
    from deepatlas.data import files

    if not isinstance(spec, str) or not spec.strip():
        raise InputError(f"data must be a dataset name or a file path. Got {spec!r} instead.")
    if files.looks_like_path(spec):
        return files.load_file(spec, target=target, task=task, seed=seed, text=text)
    _ensure_loaded()
    name, options = parse_spec(spec)
    if name not in _DATASETS:
        hint = suggest(name, _DATASETS) or f" Built-in datasets: {', '.join(sorted(_DATASETS))}."
        raise InputError(f"Unknown dataset {name!r}, and no file of that name exists.{hint}")
    loader = _DATASETS[name].loader
    import inspect

    accepted = [p for p in inspect.signature(loader).parameters]
    for key in options:
        if key not in accepted:
            hint = suggest(key, accepted) or f" Options: {', '.join(accepted) or 'none'}."
            raise InputError(f"Unknown option {key!r} for dataset {name!r}.{hint}")
    ds = loader(**options)
    ds.name = spec
    return ds


def split(
    X: np.ndarray, y: np.ndarray | None, *, test: float = 0.2, val: float = 0.1, seed: int = 0, stratify: bool = True
):
    """Fixed seeded train / validation / test split; ``val`` is a fraction of what remains after
    the test part. Stratified on ``y`` for classification when every class has enough members."""
    from sklearn.model_selection import train_test_split

    def _strat(labels):
        if not stratify or labels is None:
            return None
        _, counts = np.unique(labels, return_counts=True)
        return labels if counts.min() >= 2 else None

    idx = np.arange(len(X))
    rest, test_idx = train_test_split(idx, test_size=test, random_state=seed, stratify=_strat(y))
    y_rest = None if y is None else y[rest]
    train_idx, val_idx = train_test_split(rest, test_size=val, random_state=seed, stratify=_strat(y_rest))

    def pick(a, i):
        return None if a is None else a[i]

    return (X[train_idx], pick(y, train_idx), X[val_idx], pick(y, val_idx), X[test_idx], pick(y, test_idx))


__all__ = ["Dataset", "register_dataset", "load_dataset", "list_datasets", "split", "parse_spec"]

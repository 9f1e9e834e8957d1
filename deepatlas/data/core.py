"""The bottom of the data package: the :class:`Dataset` record, the registry of built-in datasets,
the seeded split, and what every loader shares (reading a spec, a number, an ``.npz``, and
inferring the task from the labels). Every other module of the package imports from here, and
this module imports none of them, so the package has no import cycle."""

from __future__ import annotations

import ast
import csv
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deepatlas.errors import InputError

TASKS = ("classification", "regression", "tagging", "generative", "sequence", "text", "ratings")

MAX_DATA_BYTES = 4 * 2**30
"""The most memory a built-in dataset's options may ask for: 4 GiB, estimated from the options
(the arrays built, their temporaries included) before anything is allocated, so that
``adding:T=100000000`` is refused in one line instead of exhausting memory. The environment
variable ``DEEPATLAS_MAX_DATA_BYTES`` (a number of bytes) overrides it."""


def max_data_bytes() -> int:
    raw = os.environ.get("DEEPATLAS_MAX_DATA_BYTES")
    if raw is None:
        return MAX_DATA_BYTES
    try:
        return int(float(raw))
    except ValueError:
        raise InputError(f"DEEPATLAS_MAX_DATA_BYTES must be a number of bytes. Got {raw!r} instead.") from None


def check_size(name: str, nbytes: int, options: dict[str, Any]) -> None:
    """Refuse a built-in dataset whose ``options`` would take about ``nbytes`` of memory, over
    :data:`MAX_DATA_BYTES`, with one line naming the options and the limit."""
    given = ",".join(f"{k}={v}" for k, v in options.items())
    check_memory(f"Dataset '{name}:{given}'", nbytes, "use smaller options")


def check_memory(what: str, nbytes: int, fix: str) -> None:
    """One line when ``what`` would take ``nbytes`` of memory, over :data:`MAX_DATA_BYTES`."""
    limit = max_data_bytes()
    if nbytes > limit:
        raise InputError(
            f"{what} would take about {_gib(nbytes)} of memory, over the limit of {_gib(limit)}; "
            f"{fix} (or raise the limit with DEEPATLAS_MAX_DATA_BYTES=<bytes>)."
        )


def csv_rows(lines, where: str, delimiter: str = ",") -> list[list[str]]:
    """The non-blank rows of CSV text (``lines``: an open file or an iterable of lines). A row
    that the reader refuses, such as one with a field over ``csv.field_size_limit()`` (128 KiB),
    is one line naming ``where`` (the file) and the row, not a traceback."""
    reader = csv.reader(lines, delimiter=delimiter)
    rows: list[list[str]] = []
    n = 0
    try:
        for row in reader:
            n += 1
            if any(c.strip() for c in row):
                rows.append(row)
    except csv.Error as exc:
        text = str(exc)
        if "field larger than field limit" in text:
            text = f"a field is longer than {csv.field_size_limit()} characters, the CSV reader's limit"
        raise InputError(f"{where}: row {n + 1} (line {reader.line_num}) cannot be read: {text}.") from None
    return rows


def _gib(nbytes: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= size:
            return f"{nbytes / size:.3g} {unit}"
    return f"{nbytes} bytes"


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


def register_dataset(name: str, *, task: str, description: str):
    """Decorator for a function ``loader(**options) -> Dataset`` that builds a built-in dataset."""

    def decorate(fn: Callable[..., Dataset]) -> Callable[..., Dataset]:
        _DATASETS[name] = DatasetSpec(name, fn, task, description)
        return fn

    return decorate


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


def split(
    X: np.ndarray, y: np.ndarray | None, *, test: float = 0.2, val: float = 0.1, seed: int = 0, stratify: bool = True
):
    """Fixed seeded train / validation / test split; ``val`` is a fraction of what remains after
    the test part. Stratified on ``y`` for classification when every class has enough members."""
    from sklearn.model_selection import train_test_split

    def _strat(labels, fraction):
        """``labels`` when a stratified cut of ``fraction`` can hold every class on both sides, else ``None``."""
        if not stratify or labels is None:
            return None
        _, counts = np.unique(labels, return_counts=True)
        part = math.ceil(fraction * len(labels))  # scikit-learn's size of the held-out side
        enough = part >= len(counts) and len(labels) - part >= len(counts)
        return labels if counts.min() >= 2 and enough else None

    idx = np.arange(len(X))
    rest, test_idx = train_test_split(idx, test_size=test, random_state=seed, stratify=_strat(y, test))
    y_rest = None if y is None else y[rest]
    train_idx, val_idx = train_test_split(rest, test_size=val, random_state=seed, stratify=_strat(y_rest, val))

    def pick(a, i):
        return None if a is None else a[i]

    return (X[train_idx], pick(y, train_idx), X[val_idx], pick(y, val_idx), X[test_idx], pick(y, test_idx))


def parse_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def infer_task(labels: np.ndarray, task: str | None = None) -> tuple[np.ndarray, str]:
    """Numbers with few distinct integer values are classes, other numbers a regression target,
    text labels classes. ``task`` overrides the guess."""
    labels = np.asarray(labels)
    if labels.dtype == object:
        numbers = [parse_number(str(v)) for v in labels]
        numeric = all(v is not None for v in numbers)
        values = np.array(numbers, dtype=np.float64) if numeric else labels.astype(str)
    else:
        numeric = np.issubdtype(labels.dtype, np.number)
        values = labels if numeric else labels.astype(str)
    if numeric:
        values = np.asarray(values, dtype=np.float64)
        if not np.all(np.isfinite(values)):
            raise InputError("The target contains NaN or infinite values.")
        integral = np.all(values == np.round(values))
        guess = "classification" if integral and len(np.unique(values)) <= 20 else "regression"
    else:
        guess = "classification"
    task = task or guess
    if task == "classification":
        return (values.astype(np.int64) if numeric and np.all(values == np.round(values)) else values), task
    if task == "regression":
        if not numeric:
            raise InputError("task 'regression' needs a numeric target, but the target column holds text.")
        return values.astype(np.float32), task
    raise InputError(f"task must be 'classification' or 'regression'. Got {task!r} instead.")


def read_npz(path: Path):
    try:
        with np.load(path, allow_pickle=False) as f:
            keys = list(f.files)
            if "X" not in keys:
                raise InputError(f"Data file {str(path)!r} has no array 'X'; it holds: {', '.join(keys) or 'nothing'}.")
            X = np.asarray(f["X"])
            y = np.asarray(f["y"]) if "y" in keys else None
    except InputError:
        raise
    except ValueError as exc:
        raise InputError(
            f"Data file {str(path)!r} is not a valid .npz file (object arrays are refused): {exc}."
        ) from None
    except Exception as exc:  # zipfile.BadZipFile, OSError, ...
        raise InputError(f"Data file {str(path)!r} is not a valid .npz file: {exc}.") from None
    if y is None:
        raise InputError(f"Data file {str(path)!r} has no array 'y' (the targets).")
    if not np.issubdtype(X.dtype, np.number):
        raise InputError(f"Data file {str(path)!r}: array 'X' must be numeric. Got dtype {X.dtype} instead.")
    if len(X) != len(y):
        raise InputError(f"Data file {str(path)!r}: 'X' has {len(X)} rows but 'y' has {len(y)}.")
    X = X.astype(np.float32)
    if not np.all(np.isfinite(X)):
        raise InputError(f"Data file {str(path)!r}: array 'X' contains NaN or infinite values.")
    return X, y

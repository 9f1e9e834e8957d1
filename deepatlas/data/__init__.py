"""Datasets: built-in ones with fixed seeded splits, and loaders for the user's own files.

``load_dataset("digits")``, ``load_dataset("adding:T=200,n=20000")`` (options after a colon) or
``load_dataset("path/to/file.csv", target="label")`` all return a :class:`Dataset` with
train / validation / test splits. Built-in datasets register themselves with
:func:`register_dataset`; any module in this package is imported on first use, so a family adds
its data by adding a file here.
"""

from __future__ import annotations

import importlib
import pkgutil

from deepatlas._validation import check_seed, suggest
from deepatlas.data import files
from deepatlas.data.core import (
    _DATASETS,
    TASKS,
    Dataset,
    DatasetSpec,
    literal,
    parse_spec,
    register_dataset,
    split,
)
from deepatlas.errors import InputError

_loaded = False


def _ensure_loaded() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for info in pkgutil.iter_modules(__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{__name__}.{info.name}")


def _builtin_with_options(spec: str) -> bool:
    """``fashion-mnist:path=/data/fm`` names a built-in dataset whose option holds a path; a file
    of that name, if one exists, still wins."""
    import os

    if os.path.exists(spec) or ":" not in spec:
        return False
    _ensure_loaded()
    return spec.partition(":")[0].strip() in _DATASETS


def _open_set_option(spec: str) -> tuple[str, object]:
    """``"digits:open_set=7"`` or ``"DIR:open_set=7"`` -> (the spec without the option, 7); any
    other spec -> (spec, None). The option applies to any classification data (a built-in
    dataset or a folder of images with one sub-folder per identity)."""
    head, colon, rest = spec.rpartition(":")
    if not colon or "open_set" not in rest:
        return spec, None
    items = [p.strip() for p in rest.split(",") if p.strip()]
    kept = [p for p in items if p.partition("=")[0].strip() != "open_set"]
    found = [p for p in items if p.partition("=")[0].strip() == "open_set"]
    if not found:
        return spec, None
    value = literal(found[-1].partition("=")[2].strip())
    return head + (":" + ",".join(kept) if kept else ""), value


def list_datasets() -> list[DatasetSpec]:
    _ensure_loaded()
    return [_DATASETS[n] for n in sorted(_DATASETS)]


def load_dataset(
    spec: str,
    *,
    target: str | None = None,
    task: str | None = None,
    seed: int = 0,
    text: str | None = None,
    preprocess: dict | None = None,
    labels: str | None = None,
) -> Dataset:
    """Load a built-in dataset by name (with ``name:key=value`` options) or a user file.

    User files: ``.csv`` (header row; ``target`` column, default the last), ``.npz`` (arrays ``X``
    and ``y``), MNIST IDX image files (the label file beside them), or a folder with one
    sub-folder of images per class. Their split (70/10/20, stratified for classes) uses ``seed``.
    A CSV's raw columns are encoded by a preprocessor fitted on its training rows (``preprocess``:
    ``drop``, ``categorical``, ``impute``; see :func:`deepatlas.data.files.load_table`); ``labels``
    names the label file of IDX images, an image folder (a CSV of file,label) or an ``.npy`` of X.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise InputError(f"data must be a dataset name or a file path. Got {spec!r} instead.")
    check_seed(seed, "The split seed")
    inner, n_train = _open_set_option(spec)
    if n_train is not None:  # identities never seen in training (deepatlas/data/faces.py)
        from deepatlas.data.faces import open_set

        ds = load_dataset(inner, target=target, task=task, seed=seed, labels=labels)
        out = open_set(ds, n_train, f"--data {spec!r}")
        out.name = spec
        return out
    if files.looks_like_path(spec) and not _builtin_with_options(spec):
        return files.load_file(
            spec, target=target, task=task, seed=seed, text=text, preprocess=preprocess, labels=labels
        )
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
    if "seed" in options:
        check_seed(options["seed"], f"Dataset option 'seed' of {name!r}")
    ds = loader(**options)
    ds.name = spec
    return ds


__all__ = [
    "TASKS",
    "Dataset",
    "DatasetSpec",
    "list_datasets",
    "literal",
    "load_dataset",
    "parse_spec",
    "register_dataset",
    "split",
]

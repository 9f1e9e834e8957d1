"""``deepatlas predict``: apply a saved run to a file and format the answer as CSV."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from deepatlas.errors import InputError


def read_features(path: str | Path, config: dict) -> np.ndarray:
    """Features from a CSV (header row; the training feature columns are picked by name when
    present, and the target column is dropped) or from the array ``X`` of an ``.npz``."""
    from deepatlas.data.files import read_csv, read_npz

    p = Path(path)
    if not p.exists():
        raise InputError(f"--input file {str(path)!r} does not exist.")
    if p.stat().st_size == 0:
        raise InputError(f"--input file {str(path)!r} is empty.")
    if p.suffix.lower() == ".npz":
        try:
            X, _ = read_npz(p)
        except InputError as exc:
            if "no array 'y'" not in str(exc):
                raise
            with np.load(p, allow_pickle=False) as f:
                X = np.asarray(f["X"], dtype=np.float32)
        return X
    names = config.get("feature_names")
    target = config.get("target_name")
    header, X, _, _ = read_csv(p, target=target, require_target=False)
    if names and all(n in header for n in names) and header != names:
        X = X[:, [header.index(n) for n in names]]
    return X


def predict_file(run: str | Path, input_path: str | Path) -> str:
    from deepatlas.runs import load

    model = load(run)
    X = read_features(input_path, model.run_config_)
    shape = model.run_config_.get("sample_shape")
    if shape and len(shape) > 1 and X.ndim == 2 and X.shape[1] == int(np.prod(shape)):
        X = X.reshape(len(X), *shape)
    pred = model.predict(X)
    columns = {"prediction": list(pred)}
    if hasattr(model, "predict_proba") and hasattr(model, "classes_"):
        proba = model.predict_proba(X)
        for j, label in enumerate(model.classes_):
            columns[f"proba_{label}"] = [f"{p:.6g}" for p in proba[:, j]]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(zip(*columns.values()))
    return buf.getvalue()

"""``deepatlas predict``: apply a saved run to a file and format the answer as CSV.

What the file holds depends on what the model reads (its class attribute ``_input_kind``):

- ``"features"`` (the default): a CSV whose header names exactly the training feature columns, in
  any order (the training target column may be there too and is ignored; any other difference is
  refused with one line naming the missing and the unexpected columns), or the array ``X`` of an
  ``.npz``. Columns are taken by position only, with a one-line note on stderr, from a CSV without
  a header row that has exactly the training width, or when the run records no column names
  (built-in or ``.npz`` data, older runs) and the file has the width the model reads.
- ``"sequences"`` (recurrent models): an ``.npz`` with ``X`` of shape ``(n, steps)`` or
  ``(n, steps, features)`` and, for sequences of different lengths, an optional integer array
  ``lengths`` (``(n,)``, each between 1 and ``steps``; the steps after each length are ignored); or
  a CSV whose rows are sequences flattened step by step (``t0f0, t0f1, ..., t1f0, ...``).
- ``"text"`` (text classifiers): a CSV with the text column the model was trained on (its name is
  saved in the run), or a ``.txt`` file with one document per line.

The answer is one row per input row: ``prediction`` and, for classifiers, ``proba_<label>``
columns. A tagger (one label per step) writes one row per step instead:
``sequence,step,prediction,proba_<label>...``, with ``sequence`` and ``step`` counted from 0 and
only the real steps of each sequence.
"""

from __future__ import annotations

import csv
import io
import sys
import warnings
from pathlib import Path

import numpy as np

from deepatlas.errors import InputError
from deepatlas.preprocessing import FarFromTrainingWarning


def _check_input_file(path: str | Path) -> Path:
    p = Path(path)
    if not p.exists():
        raise InputError(f"--input file {str(path)!r} does not exist.")
    if p.is_dir():
        raise InputError(f"--input {str(path)!r} is a folder; give a .csv or .npz file.")
    if p.stat().st_size == 0:
        raise InputError(f"--input file {str(path)!r} is empty.")
    return p


def _npz_x(p: Path) -> np.ndarray:
    from deepatlas.data.files import read_npz

    try:
        X, _ = read_npz(p)
    except InputError as exc:
        if "no array 'y'" not in str(exc):
            raise
        with np.load(p, allow_pickle=False) as f:
            X = np.asarray(f["X"])
        if not np.issubdtype(X.dtype, np.number):
            raise InputError(f"Data file {str(p)!r}: array 'X' must be numeric. Got dtype {X.dtype} instead.") from None
        X = X.astype(np.float32)
        if not np.all(np.isfinite(X)):
            raise InputError(f"Data file {str(p)!r}: array 'X' contains NaN or infinite values.") from None
    return X


def _note(message: str) -> None:
    print(f"note: {message}", file=sys.stderr)


def _check_columns(where: str, names: list, header: list, target, ignored=frozenset()) -> None:
    """Refuse, in one line, a header whose columns are not the training ``names`` (missing,
    unexpected or repeated); columns in ``ignored`` (target, id, dropped) may be present."""
    missing = [n for n in names if n not in header]
    unexpected = [h for h in header if h not in names and h not in ignored]
    repeated = sorted({h for h in header if header.count(h) > 1})
    if missing or unexpected or repeated:
        parts = [
            f"{what} {', '.join(map(repr, those))}"
            for what, those in (("missing", missing), ("unexpected", unexpected), ("repeated", repeated))
            if those
        ]
        also = f"; its target column {target!r} may be present and is ignored" if target else ""
        raise InputError(
            f"{where} does not have the training columns: {'; '.join(parts)} (columns are matched by name; "
            f"the run was trained on {_listed(names)}{also})."
        )


def _listed(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown}, ... ({len(names)} in all)"


def _read_table(p: Path, config: dict, width: int | None) -> tuple[np.ndarray, str | None]:
    """The training feature columns of a CSV, matched by header name; by position only for a file
    without a header row of exactly the training width, or when the run records no names (then
    ``width``, the number of columns the model reads, is checked when known). Returns the array and
    the note to print (on stderr, once the caller has checked the rest) when position was used."""
    from deepatlas.data.files import read_csv

    names = list(config.get("feature_names") or [])
    target = config.get("target_name")
    header, X, _, _ = read_csv(p, target=target, require_target=False, headerless=True)
    where = f"--input file {str(p)!r}"
    if names and header is not None:
        _check_columns(where, names, header, target)
        return (X[:, [header.index(n) for n in names]] if header != names else X), None
    if names:  # no header row: by position, at exactly the training width
        if X.shape[1] != len(names):
            raise InputError(
                f"{where} has no header row and {X.shape[1]} columns, but the run was trained on {len(names)} "
                f"({_listed(names)}); add a header row naming them, or give exactly those columns in that order."
            )
        return X, f"{where} has no header row; its {len(names)} columns are taken by position as {_listed(names)}."
    if width is not None and X.shape[1] != width:
        raise InputError(
            f"{where} has {X.shape[1]} columns, but the run reads {width} (it records no column names, "
            "so columns are taken by position)."
        )
    return X, f"the run records no column names; the {X.shape[1]} columns of {where} are taken by position."


def read_features(path: str | Path, config: dict) -> np.ndarray:
    """Features from a CSV (the training feature columns matched by header name; see the module
    docstring for when position is used) or from the array ``X`` of an ``.npz``."""
    p = _check_input_file(path)
    if p.suffix.lower() == ".npz":
        return _npz_x(p)
    shape = config.get("sample_shape")
    X, note = _read_table(p, config, int(np.prod(shape)) if shape else None)
    if note:
        _note(note)
    return X


def read_sequences(path: str | Path, config: dict, n_features: int):
    """Sequences for a recurrent model: an array ``(n, steps, features)``, or a list of
    ``(steps_i, features)`` arrays when an ``.npz`` gives ``lengths``."""
    p = _check_input_file(path)
    if p.suffix.lower() != ".npz":
        X, note = _read_table(p, config, None)  # (n, columns): each row one sequence, flattened step by step
        if X.shape[1] % n_features:
            raise InputError(
                f"--input file {str(path)!r} has {X.shape[1]} feature columns, which is not a whole number of "
                f"steps of {n_features} features each (the model reads {n_features} features per step)."
            )
        if note:
            _note(note)
        return X.reshape(len(X), X.shape[1] // n_features, n_features)
    X = _npz_x(p)
    with np.load(p, allow_pickle=False) as f:
        lengths = np.asarray(f["lengths"]) if "lengths" in f.files else None
    if lengths is None:
        return X
    from deepatlas.data.sequences import check_lengths

    where = f"--input file {str(path)!r}"
    if X.ndim not in (2, 3):
        raise InputError(f"{where}: with 'lengths', 'X' must be (n, steps) or (n, steps, features). Got {X.shape}.")
    lengths = check_lengths(lengths, len(X), X.shape[1], where)
    return [X[i, : int(L)] for i, L in enumerate(lengths)]


def read_documents(path: str | Path, config: dict) -> list[str]:
    """Documents for a text model: the training text column of a CSV/TSV, or the lines of a text file."""
    p = _check_input_file(path)
    if p.suffix.lower() == ".npz":
        raise InputError(
            f"--input file {str(path)!r} is an .npz, but a text model reads documents: a .csv with the text "
            "column it was trained on, or a .txt file with one document per line."
        )
    try:
        raw = p.read_text(encoding="utf-8").lstrip("\ufeff")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"--input file {str(path)!r} is not UTF-8 text (byte {exc.start} cannot be decoded)."
        ) from None
    if p.suffix.lower() not in (".csv", ".tsv"):
        return raw.splitlines()  # one document per line
    names = config.get("feature_names") or []
    column = names[0] if len(names) == 1 else None
    delimiter = "\t" if p.suffix.lower() == ".tsv" else ","
    from deepatlas.data.core import csv_rows

    rows = csv_rows(io.StringIO(raw, newline=""), f"--input file {str(path)!r}", delimiter)
    header = [h.strip() for h in rows[0]] if rows else []
    if column is None and len(header) == 1:
        column = header[0]  # a model saved without its column name: the only column
    if column not in header:
        expected = f"the text column {column!r} that the model was trained on" if column else "one text column"
        raise InputError(f"--input file {str(path)!r} needs {expected}; its columns are: {', '.join(header)}.")
    j = header.index(column)
    body = rows[1:]
    if not body:
        raise InputError(f"--input file {str(path)!r} has a header but no data rows.")
    for i, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise InputError(
                f"--input file {str(path)!r}: row {i} has {len(row)} fields, but the header has {len(header)}."
            )
    return [row[j] for row in body]


def _read_input(model, run, input_path):
    config = model.run_config_
    kind = getattr(model, "_input_kind", "features")
    if kind == "corpus":
        raise InputError(
            f"Run {str(run)!r} holds a {type(model).__name__} language model, which predicts no labels; "
            f"generate text with 'deepatlas sample {run} --prompt TEXT'."
        )
    if kind == "text":
        return read_documents(input_path, config)
    if kind == "sequences":
        return read_sequences(input_path, config, int(model.n_features_in_))
    X = read_features(input_path, config)
    shape = config.get("sample_shape")
    if shape and len(shape) > 1 and X.ndim == 2 and X.shape[1] == int(np.prod(shape)):
        X = X.reshape(len(X), *shape)
    return X


def _csv(columns: dict[str, list]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(zip(*columns.values()))
    return buf.getvalue()


def _per_step_columns(model, X) -> dict[str, list]:
    """A tagger's answer, one row per real step: sequence, step, prediction, proba_<label>..."""
    pred = model.predict(X)  # (n, T) or a list of (T_i,) arrays
    proba = model.predict_proba(X)  # (n, T, C) or a list of (T_i, C) arrays
    columns: dict[str, list] = {"sequence": [], "step": [], "prediction": []}
    for label in model.classes_:
        columns[f"proba_{label}"] = []
    for i, (labels, probs) in enumerate(zip(pred, proba)):
        for t, (label, p) in enumerate(zip(labels, probs)):
            columns["sequence"].append(i)
            columns["step"].append(t)
            columns["prediction"].append(label)
            for j, c in enumerate(model.classes_):
                columns[f"proba_{c}"].append(f"{p[j]:.6g}")
    return columns


_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}


def read_raw_table(p: Path, model, id_column: str | None):
    """A CSV's raw columns for a model fitted with a preprocessor: columns matched by name (the
    training target, the ``--id`` column and the columns dropped in training may be there too),
    encoded with the training statistics. The ``--id`` column, or the identifier the run was
    trained with (``train --id COL``) when the file has it, is returned as ``{name: values}``.
    Returns ``(X, ids, notes)``."""
    from deepatlas.data.core import csv_rows
    from deepatlas.preprocessing import TabularPreprocessor, frame_from_rows

    where = f"--input file {str(p)!r}"
    try:
        with open(p, newline="", encoding="utf-8-sig") as f:
            rows = csv_rows(f, where, "\t" if p.suffix.lower() == ".tsv" else ",")
    except UnicodeDecodeError:
        raise InputError(f"{where} is not UTF-8 text.") from None
    header = [h.strip() for h in rows[0]] if rows else []
    body = rows[1:]
    if not body:
        raise InputError(f"{where} has no data rows under its header.")
    for i, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise InputError(f"{where}: row {i} has {len(row)} fields, but the header has {len(header)}.")
    pre = model.preprocessor_
    names = list(pre.feature_names_in_)
    target = model.run_config_.get("target_name")
    if header and all(_is_number(h) for h in header) and id_column is None:  # no header row: by position
        X, note = _read_table(p, {"feature_names": names, "target_name": target}, None)
        import pandas as pd

        X, report = pre.transform(pd.DataFrame(X, columns=names), where=where)
        return X, None, [note, *TabularPreprocessor.describe(report)]
    if id_column is not None and id_column not in header:
        raise InputError(f"--id {id_column!r} is not a column of {where}; its columns are: {_listed(header)}.")
    if id_column is None and pre.id_column in header:  # the run's own identifier (train --id COL)
        id_column = pre.id_column
    ignored = {c for c in (target, id_column, *pre.dropped_) if c}
    _check_columns(where, names, header, target, ignored)
    ids = {id_column: [row[header.index(id_column)].strip() for row in body]} if id_column else None
    keep = [header.index(n) for n in names]
    frame = frame_from_rows(names, [[row[j] for j in keep] for row in body])
    X, report = pre.transform(frame, where=where)
    return X, ids, TabularPreprocessor.describe(report)


def read_images(path: Path, shape) -> tuple[np.ndarray, list[str], list[str]]:
    """Image files (one file, or every image in a folder and its sub-folders, sorted) as the
    model's input: converted to its channels, resized to its height x width (Pillow's bilinear
    filter) and scaled to 0-1, as image folders are read for training. Returns the images, their
    file names and a note on the resizing."""
    from PIL import Image, UnidentifiedImageError

    channels, height, width = (int(d) for d in shape)
    files = [path] if path.is_file() else sorted(f for f in path.rglob("*") if f.suffix.lower() in _IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"--input folder {str(path)!r} holds no images ({', '.join(sorted(_IMAGE_SUFFIXES))}).")
    images, sizes, resized = [], set(), 0
    for f in files:
        try:
            with Image.open(f) as im:
                im = im.convert("L" if channels == 1 else "RGB")
                if im.size != (width, height):
                    sizes.add(f"{im.size[0]}x{im.size[1]}")
                    resized += 1
                    im = im.resize((width, height), Image.Resampling.BILINEAR)
                arr = np.asarray(im, dtype=np.float32) / 255.0
        except (UnidentifiedImageError, OSError) as exc:
            raise InputError(f"--input image {str(f)!r} cannot be read: {exc}.") from None
        images.append(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))
    notes = []
    if sizes:
        notes.append(
            f"resized {resized} of {len(files)} image(s) (from {', '.join(sorted(sizes))}) to "
            f"{width}x{height}, the training size (bilinear), and scaled pixels to 0-1 as in training"
        )
    base = path if path.is_dir() else path.parent
    return np.stack(images), [str(f.relative_to(base)) for f in files], notes


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _is_table(p: Path) -> bool:
    return p.suffix.lower() in (".csv", ".tsv")


def _is_image_input(p: Path) -> bool:
    return p.exists() and (p.is_dir() or p.suffix.lower() in _IMAGE_SUFFIXES)


def _wav_files(p: Path) -> list[Path]:
    return sorted(p.glob("*.wav")) if p.is_dir() else [p]


def read_audio(p: Path) -> list[np.ndarray]:
    """Waveforms at 16 kHz from a ``.wav`` file or a folder of them (other rates resampled and
    stereo mixed down, each with a note on stderr)."""
    from deepatlas.data.speech import read_wav

    if p.is_dir() and not _wav_files(p):
        raise InputError(f"--input folder {str(p)!r} holds no .wav files.")
    return [read_wav(f, what="--input file") for f in _wav_files(p)]


def predict_file(run: str | Path, input_path: str | Path, id_column: str | None = None) -> str:
    from deepatlas.saving import load

    model = load(run)
    first: dict[str, list] = {}
    p = Path(input_path)
    shape = model.run_config_.get("sample_shape") or []
    kind = getattr(model, "_input_kind", "features")
    if kind == "features" and _is_image_input(p) and len(shape) == 3:
        if id_column:
            raise InputError("--id takes a column of a CSV; image files are named in the 'file' column.")
        X, files, notes = read_images(p, shape)
        first = {"file": files}
    elif kind == "features" and getattr(model, "preprocessor_", None) is not None and _is_table(p):
        X, ids, notes = read_raw_table(_check_input_file(p), model, id_column)
        if ids is not None:
            first = ids
    elif kind == "audio":  # speech models: a .wav file, or a folder of them (deepatlas/data/speech.py)
        X, files, notes = read_audio(p), [], []
        first = {"file": [f.name for f in _wav_files(p)]}
    else:
        if id_column:
            raise InputError(
                f"--id needs a CSV input to a run trained on a CSV (one that records its columns); got {str(p)!r}."
            )
        X, notes = _read_input(model, run, input_path), []
    # the estimators' own check (a FarFromTrainingWarning from predict), said once here instead
    far = model.far_from_training(X) if kind == "features" and hasattr(model, "far_from_training") else None
    for note in notes:
        _note(note)
    if far:
        print(f"warning: {far}", file=sys.stderr)
    if hasattr(model, "describe_predictions"):  # its own print-out (NER: each sentence with its entities marked)
        empty = [i for i, doc in enumerate(X, start=1) if not doc.strip()]
        if empty:
            raise InputError(
                f"--input file {str(input_path)!r}: sentence {empty[0]} is empty; {type(model).__name__} "
                "reads one sentence per line (a .txt) or per row of the text column (a .csv)."
            )
        return model.describe_predictions(X)
    if getattr(model, "_task", None) == "tagging":
        return _csv(_per_step_columns(model, X))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FarFromTrainingWarning)
        pred = model.predict(X)
        proba = model.predict_proba(X) if hasattr(model, "predict_proba") and hasattr(model, "classes_") else None
    columns = {**first, "prediction": list(pred)}
    if proba is not None:
        for j, label in enumerate(model.classes_):
            columns[f"proba_{label}"] = [f"{p:.6g}" for p in proba[:, j]]
    return _csv(columns)

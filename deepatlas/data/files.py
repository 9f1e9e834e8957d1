"""Loaders for the user's own data: CSV, ``.npz``, MNIST IDX files and folders of images.

Every problem is reported as one line that names the file and what is wrong with it.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
from pathlib import Path

import numpy as np

from deepatlas.data.core import Dataset, check_memory, csv_rows, infer_task, parse_number, read_npz, split
from deepatlas.data.ner import is_conll, load_conll
from deepatlas.data.ratings import has_ratings_header, load_ratings_csv
from deepatlas.data.scenes import load_coco, looks_like_coco
from deepatlas.data.sequences import load_sequence_npz, load_text_file
from deepatlas.data.speech import load_wav_folder, looks_like_wav_folder
from deepatlas.data.translation import load_pairs, looks_like_pairs
from deepatlas.errors import InputError

_EXTENSIONS = (".csv", ".npz", ".npy", ".gz", ".idx", "-ubyte", ".txt", ".tsv", ".conll", ".iob", ".bio", ".bioes")
_IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}


def looks_like_path(spec: str) -> bool:
    return os.path.exists(spec) or "/" in spec or os.sep in spec or spec.lower().endswith(_EXTENSIONS)


def load_file(path: str, *, target=None, task=None, seed=0, text=None, preprocess=None, labels=None) -> Dataset:
    p = Path(path)
    if not p.exists():
        raise InputError(f"Data file {path!r} does not exist.")
    if p.is_dir():
        if looks_like_coco(p):  # DIR/annotations.json: boxes and masks in COCO's format
            return load_coco(p, seed=seed)
        if looks_like_wav_folder(p):  # WAV files + transcripts.csv (deepatlas/data/speech.py)
            return load_wav_folder(p, task=task, seed=seed)
        if labels is not None:  # images named in a CSV of file,label rows
            X, y = read_labelled_images(p, Path(labels))
            y, inferred = infer_task(y, task)
            return _make(p, X, y, inferred, seed)
        X, y, classes = read_image_folder(p)
        return _make(p, X, y, "classification", seed, feature_names=None, target_name=None)
    if not os.access(p, os.R_OK):
        raise InputError(f"Data file {path!r} cannot be read (permission denied).")
    if p.stat().st_size == 0:
        raise InputError(f"Data file {path!r} is empty.")
    name = p.name.lower()
    if is_conll(p):  # tagged sentences, one token per line (deepatlas/data/ner.py)
        return load_conll(p, seed=seed)
    if text is not None:  # a text column of a CSV, or a whole text file as a corpus
        return load_text_file(p, text=text, target=target, task=task, seed=seed)
    if name.endswith(".txt"):  # plain text is a corpus (for a language model), never a table
        return load_text_file(p, text="-", seed=seed)
    if name.endswith(".csv") and (task == "ratings" or task is None and has_ratings_header(p)):
        return load_ratings_csv(p, seed=seed)  # user,item,rating: held-out ratings of known users
    if name.endswith(".tsv") and (task == "translation" or task is None and looks_like_pairs(p)):
        return load_pairs(p, seed=seed)  # source<TAB>target sentence pairs (seq2seq)
    if name.endswith(".csv") or name.endswith(".tsv"):
        return load_table(p, target=target, task=task, seed=seed, preprocess=preprocess)
    if name.endswith(".npz"):
        ds = load_sequence_npz(p, task=task, seed=seed)  # ragged sequences or one label per step
        if ds is not None:
            return ds
        X, labels = read_npz(p)
        y, inferred = infer_task(labels, task)
        return _make(p, X, y, inferred, seed)
    if name.endswith(".npy"):  # X alone: its labels in --labels
        X, y = read_npy_pair(p, labels)
        y, inferred = infer_task(y, task)
        return _make(p, X, y, inferred, seed)
    if "idx3" in name or "images" in name and ("ubyte" in name or name.endswith(".idx")):
        X, y = read_idx_pair(p, labels)
        return _make(p, X, y, "classification", seed)
    raise InputError(
        f"Data file {path!r} has an unsupported format; expected .csv, .npz, MNIST IDX files, a folder of images, "
        "or a text corpus (.txt, or any UTF-8 file with --text -)."
    )


def _make(p, X, y, task, seed, feature_names=None, target_name=None) -> Dataset:
    if len(X) < 10:
        raise InputError(
            f"Data file {str(p)!r} has {len(X)} rows; at least 10 are needed to split train, validation and test."
        )
    parts = split(X, y, seed=seed, stratify=task == "classification")
    return Dataset(
        str(p), task, *parts, description=f"user data from {p}", feature_names=feature_names, target_name=target_name
    )


def load_table(p: Path, *, target=None, task=None, seed=0, preprocess=None) -> Dataset:
    """A CSV/TSV table with raw columns: split first, then a
    :class:`~deepatlas.preprocessing.TabularPreprocessor` (``preprocess``: its ``drop``,
    ``categorical`` and ``impute``) fitted on the training rows only encodes every split. The
    fitted preprocessor is ``ds.meta["preprocessor"]``, its notes ``ds.meta["notes"]``;
    ``feature_names`` are the raw columns used."""
    from deepatlas.preprocessing import TabularPreprocessor, frame_from_rows

    header, body, labels, target_name = read_csv_cells(p, target=target)
    frame = frame_from_rows(header, body)
    where = f"Data file {str(p)!r}"
    for c in frame.columns:  # inf is a number, not a missing value: refused, never imputed
        values = frame[c].to_numpy()
        if values.dtype.kind == "f" and np.isinf(values).any():
            i = int(np.flatnonzero(np.isinf(values))[0])
            cell = body[i][header.index(c)].strip()
            raise InputError(f"{where}: column {c!r} has a non-finite value ({cell}) in row {i + 2}.")
    y, inferred = infer_task(labels, task)
    if len(frame) < 10:
        raise InputError(f"{where} has {len(frame)} rows; at least 10 are needed to split train, validation and test.")
    parts = split(np.arange(len(frame)), y, seed=seed, stratify=inferred == "classification")
    train_rows = parts[0]
    pre = TabularPreprocessor(**(preprocess or {})).fit(frame.iloc[train_rows], where=where)
    encoded = [pre.transform(frame.iloc[rows], where=where)[0] for rows in parts[0::2]]
    ds = Dataset(
        str(p),
        inferred,
        encoded[0],
        parts[1],
        encoded[1],
        parts[3],
        encoded[2],
        parts[5],
        description=f"user data from {p}",
        feature_names=list(pre.feature_names_in_),
        target_name=target_name,
    )
    ds.meta.update(preprocessor=pre, notes=list(pre.notes_))
    return ds


def read_csv_cells(path: Path, target: str | None = None):
    """A CSV's header, its rows of feature cells (strings, target column removed), the target
    cells and the target's name; rows of the wrong width and a target with a missing value are
    refused naming the row."""
    from deepatlas.preprocessing import MISSING_MARKERS

    rows = _csv_file_rows(path)
    header = [h.strip() for h in rows[0]]
    if all(parse_number(h) is not None for h in header):
        raise InputError(f"Data file {str(path)!r} has no header row; the first row must name the columns.")
    body = rows[1:]
    if not body:
        raise InputError(f"Data file {str(path)!r} has a header but no data rows.")
    for i, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise InputError(
                f"Data file {str(path)!r}: row {i} has {len(row)} fields, but the header has {len(header)}."
            )
    if target is None:
        t = len(header) - 1
    elif target in header:
        t = header.index(target)
    else:
        raise InputError(f"Data file {str(path)!r} has no column {target!r}; its columns are: {', '.join(header)}.")
    if len(header) < 2:
        raise InputError(f"Data file {str(path)!r} has only one column; it needs features and a target.")
    labels = np.array([row[t].strip() for row in body], dtype=object)
    missing = [i for i, v in enumerate(labels) if v.lower() in MISSING_MARKERS]
    if missing:
        shown = f" ({labels[missing[0]]!r})" if labels[missing[0]] else ""
        raise InputError(
            f"Data file {str(path)!r}: target column {header[t]!r} has {len(missing)} missing value(s){shown}, "
            f"the first in row {missing[0] + 2}; remove those rows or label them."
        )
    features = [h for j, h in enumerate(header) if j != t]
    cells = [[c for j, c in enumerate(row) if j != t] for row in body]
    return features, cells, labels, header[t]


def _csv_file_rows(path: Path) -> list[list[str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            sample = f.read(4096)
            f.seek(0)
            delimiter = "\t" if path.suffix.lower() == ".tsv" or ("\t" in sample and "," not in sample) else ","
            rows = csv_rows(f, f"Data file {str(path)!r}", delimiter)
    except UnicodeDecodeError:
        raise InputError(f"Data file {str(path)!r} is not UTF-8 text.") from None
    except OSError as exc:
        raise InputError(f"Data file {str(path)!r} cannot be read: {exc.strerror}.") from None
    if not rows:
        raise InputError(f"Data file {str(path)!r} is empty.")
    return rows


def read_csv(path: Path, target: str | None = None, require_target: bool = True, headerless: bool = False):
    """Read a CSV with a header row. Returns ``(feature_names, X, labels, target_name)``; labels
    stay strings until :func:`infer_task` decides what they are. With ``headerless=True`` a first
    row of numbers is data, not names, and ``feature_names`` is ``None`` (no target then)."""
    rows = _csv_file_rows(path)
    header = [h.strip() for h in rows[0]]
    named = not all(parse_number(h) is not None for h in header)
    if not named and headerless:  # the first row is data: name the columns by their place
        header, body, target, require_target = [f"column {j + 1}" for j in range(len(header))], rows, None, False
    else:
        body = rows[1:]
    if not body:
        raise InputError(f"Data file {str(path)!r} has a header but no data rows.")
    if not named and not headerless:
        raise InputError(f"Data file {str(path)!r} has no header row; the first row must name the columns.")
    first = 2 if named else 1  # the file's row number of body[0]
    for i, row in enumerate(body, start=first):
        if len(row) != len(header):
            against = f"the header has {len(header)}" if named else f"row 1 has {len(header)}"
            raise InputError(f"Data file {str(path)!r}: row {i} has {len(row)} fields, but {against}.")
    if require_target:
        if target is None:
            t = len(header) - 1
        elif target in header:
            t = header.index(target)
        else:
            raise InputError(f"Data file {str(path)!r} has no column {target!r}; its columns are: {', '.join(header)}.")
        if len(header) < 2:
            raise InputError(f"Data file {str(path)!r} has only one column; it needs features and a target.")
    else:
        t = header.index(target) if target in header else None
    features = [h for j, h in enumerate(header) if j != t]
    cols = [j for j in range(len(header)) if j != t]
    X = np.empty((len(body), len(cols)), dtype=np.float32)
    problems: dict[int, str] = {}  # the first problem of every column: all reported at once
    for i, row in enumerate(body):
        for k, j in enumerate(cols):
            cell = row[j].strip()
            value = parse_number(cell)
            if k in problems:
                continue
            if value is None:
                if cell == "" or cell.lower() in ("na", "nan", "null", "none"):
                    problems[k] = f"column {header[j]!r} has a missing value in row {i + first}"
                else:
                    problems[k] = f"feature column {header[j]!r} is not numeric (row {i + first} has {cell!r})"
            elif not math.isfinite(value):
                problems[k] = f"column {header[j]!r} has a non-finite value ({cell}) in row {i + first}"
            else:
                X[i, k] = value
    if problems:
        raise InputError(f"Data file {str(path)!r}: " + "; ".join(problems[k] for k in sorted(problems)) + ".")
    labels = None
    if t is not None:
        labels = np.array([row[t].strip() for row in body], dtype=object)
        blank = np.flatnonzero(labels == "")
        if len(blank):
            raise InputError(
                f"Data file {str(path)!r}: target column {header[t]!r} is empty in row {blank[0] + first}."
            )
    return (features if named else None), X, labels, (header[t] if t is not None else None)


def read_idx(path: Path) -> np.ndarray:
    """Read one MNIST IDX file (optionally gzipped)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    try:
        with opener(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in dtypes:
                raise InputError(f"Data file {str(path)!r} is not an IDX file (bad magic number).")
            ndim = head[3]
            shape = struct.unpack(f">{ndim}I", f.read(4 * ndim))
            data = np.frombuffer(f.read(), dtype=dtypes[head[2]])
    except (OSError, EOFError, struct.error) as exc:
        raise InputError(f"Data file {str(path)!r} cannot be read as IDX: {exc}.") from None
    if data.size != int(np.prod(shape)):
        raise InputError(
            f"Data file {str(path)!r} is truncated: expected {int(np.prod(shape))} values, found {data.size}."
        )
    return data.reshape(shape)


def mnist_label_name(name: str) -> str | None:
    """The label file MNIST names beside an image file (``train-images-idx3-ubyte`` ->
    ``train-labels-idx1-ubyte``, ``.gz`` kept), or None when ``name`` does not follow that pattern."""
    if "images-idx3" not in name and "images.idx3" not in name:
        return None
    return name.replace("images-idx3", "labels-idx1").replace("images.idx3", "labels.idx1")


def read_labels_file(path: Path, n: int, what: str) -> np.ndarray:
    """``n`` labels from ``--labels FILE``: an IDX file, an ``.npy`` array or a CSV/text file with one
    label per row (an optional header row naming it)."""
    if not path.exists():
        raise InputError(f"--labels file {str(path)!r} does not exist.")
    name = path.name.lower()
    if name.endswith(".npy"):
        try:
            labels = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise InputError(f"--labels file {str(path)!r} is not a valid .npy array: {exc}.") from None
    elif "idx" in name or "ubyte" in name:
        labels = read_idx(path)
    else:
        rows = _csv_file_rows(path)
        labels = np.array([row[-1].strip() for row in rows], dtype=object)
        if len(labels) == n + 1 or (len(labels) and parse_number(labels[0]) is None and len(labels) != n):
            labels = labels[1:]  # a header row
    if labels.ndim != 1:
        raise InputError(f"--labels file {str(path)!r} must hold one label per sample. Got shape {labels.shape}.")
    if len(labels) != n:
        raise InputError(f"--labels file {str(path)!r} has {len(labels)} labels, but {what} has {n} samples.")
    return labels


def read_npy_pair(path: Path, labels: str | None):
    """``--data X.npy --labels y.npy``: the samples of an ``.npy`` and their labels."""
    if labels is None:
        raise InputError(
            f"Data file {str(path)!r} is an .npy, which holds the samples only; give their labels with "
            "--labels FILE (.npy, .csv, or IDX), or save both in one .npz (arrays X and y)."
        )
    try:
        X = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputError(f"Data file {str(path)!r} is not a valid .npy array: {exc}.") from None
    if not np.issubdtype(X.dtype, np.number) or X.ndim < 2:
        raise InputError(f"Data file {str(path)!r} must be a numeric array (n, ...). Got {X.dtype} {X.shape}.")
    X = X.astype(np.float32)
    if not np.all(np.isfinite(X)):
        raise InputError(f"Data file {str(path)!r} contains NaN or infinite values.")
    return X, read_labels_file(Path(labels), len(X), f"data file {str(path)!r}")


def read_idx_pair(images_path: Path, labels: str | None = None):
    """MNIST IDX images and their labels: ``labels`` (``--labels FILE``), else the file MNIST's
    naming puts beside them (:func:`mnist_label_name`); any other name is not guessed."""
    name = images_path.name
    images = read_idx(images_path)
    if labels is not None:
        labels = read_labels_file(Path(labels), len(images), f"IDX file {name!r}")
    else:
        label_name = mnist_label_name(name)
        if label_name is None:
            raise InputError(
                f"Data file {str(images_path)!r}: its label file is found only when the names follow MNIST's "
                "pattern (train-images-idx3-ubyte beside train-labels-idx1-ubyte); give it with --labels FILE."
            )
        labels_path = images_path.with_name(label_name)
        if not labels_path.exists():
            raise InputError(
                f"Data file {str(images_path)!r}: the label file {label_name!r} was not found beside it; "
                "give it with --labels FILE."
            )
        labels = read_idx(labels_path)
    if images.ndim != 3:
        raise InputError(
            f"Data file {str(images_path)!r} must hold images of shape (n, rows, cols). Got {images.shape} instead."
        )
    if len(images) != len(labels):
        raise InputError(f"IDX files disagree: {len(images)} images but {len(labels)} labels.")
    X = images.astype(np.float32)[:, None] / (255.0 if images.dtype == np.uint8 else 1.0)
    return X, labels.astype(np.int64)


def read_image_folder(root: Path):
    """A folder with one sub-folder per class, each holding images of one common size.

    An image over Pillow's ``Image.MAX_IMAGE_PIXELS`` (a decompression bomb) is refused, and so
    is a folder whose images together exceed the data limit (:data:`~deepatlas.data.core.MAX_DATA_BYTES`)."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        return _read_images(root, Image, UnidentifiedImageError)


def _read_images(root: Path, Image, UnidentifiedImageError):
    too_big = (Image.DecompressionBombError, Image.DecompressionBombWarning)

    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise InputError(
            f"Data folder {str(root)!r} has no class sub-folders; put each class's images in its own sub-folder."
        )
    images, labels, size, mode = [], [], None, None
    files = [(c, f) for c in classes for f in sorted((root / c).iterdir()) if f.suffix.lower() in _IMAGE_EXTENSIONS]
    if not files:
        raise InputError(f"Data folder {str(root)!r} contains no images ({', '.join(sorted(_IMAGE_EXTENSIONS))}).")
    try:
        modes = {Image.open(f).mode for _, f in files[:50]}
    except too_big as exc:
        raise InputError(f"Data folder {str(root)!r}: an image is too large to read: {_bomb(exc)}") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"Data folder {str(root)!r}: an image cannot be read: {exc}.") from None
    mode = "L" if modes <= {"L", "1", "I", "I;16", "F"} else "RGB"
    for label, f in files:
        try:
            with Image.open(f) as im:
                im = im.convert(mode)
                arr = np.asarray(im, dtype=np.float32) / 255.0
        except too_big as exc:
            raise InputError(f"Image {str(f)!r} is too large to read: {_bomb(exc)}") from None
        except (UnidentifiedImageError, OSError) as exc:
            raise InputError(f"Image {str(f)!r} cannot be read: {exc}.") from None
        if size is None:
            size = arr.shape
            what = f"Data folder {str(root)!r} ({len(files)} images of {arr.shape[1]}x{arr.shape[0]})"
            check_memory(what, 2 * len(files) * arr.nbytes, "use fewer or smaller images")
        elif arr.shape != size:
            raise InputError(
                f"Image {str(f)!r} is {arr.shape[1]}x{arr.shape[0]}, but earlier images are {size[1]}x{size[0]}; resize them to one size."
            )
        images.append(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))
        labels.append(label)
    return np.stack(images), np.array(labels), classes


def read_labelled_images(root: Path, labels_csv: Path):
    """``--data DIR --labels FILE.csv``: the images of ``DIR`` named in a CSV's rows (a header row
    with a file column, ``file``/``filename``/``image``/``path``, and a label column, ``label`` or
    the other one), one common size, scaled to 0-1."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    if not labels_csv.exists():
        raise InputError(f"--labels file {str(labels_csv)!r} does not exist.")
    rows = _csv_file_rows(labels_csv)
    header = [h.strip().lower() for h in rows[0]]
    where = f"--labels file {str(labels_csv)!r}"
    file_col = next((header.index(h) for h in ("file", "filename", "image", "path") if h in header), None)
    if file_col is None or len(header) < 2:
        raise InputError(
            f"{where} needs a header row with a file column (file, filename, image or path) and a label column; "
            f"found: {', '.join(header)}."
        )
    label_col = header.index("label") if "label" in header else next(j for j in range(len(header)) if j != file_col)
    body = rows[1:]
    if not body:
        raise InputError(f"{where} has a header but no rows.")
    images, labels, size = [], [], None
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        for i, row in enumerate(body, start=2):
            f = root / row[file_col].strip()
            if not f.is_file():
                raise InputError(
                    f"{where}: row {i} names {row[file_col].strip()!r}, which is not a file in {str(root)!r}."
                )
            try:
                with Image.open(f) as im:
                    arr = np.asarray(im.convert("L" if im.mode in ("L", "1", "I", "I;16", "F") else "RGB"), np.float32)
            except (UnidentifiedImageError, OSError, *_TOO_BIG(Image)) as exc:
                raise InputError(f"Image {str(f)!r} cannot be read: {exc}.") from None
            if size is None:
                size = arr.shape
                check_memory(f"Data folder {str(root)!r} ({len(body)} images)", 2 * len(body) * arr.nbytes, "use fewer")
            elif arr.shape != size:
                raise InputError(
                    f"Image {str(f)!r} is {arr.shape[1]}x{arr.shape[0]} ({'RGB' if arr.ndim == 3 else 'grey'}), "
                    f"but earlier images are {size[1]}x{size[0]}; give them one size and mode."
                )
            images.append(arr[None] / 255.0 if arr.ndim == 2 else arr.transpose(2, 0, 1) / 255.0)
            labels.append(row[label_col].strip())
    return np.stack(images).astype(np.float32), np.array(labels, dtype=object)


def _TOO_BIG(Image) -> tuple:  # noqa: N802 - reads as the exception tuple it returns
    return (Image.DecompressionBombError, Image.DecompressionBombWarning)


def _bomb(exc: Exception) -> str:
    """Pillow's decompression-bomb message, with the way to raise its limit."""
    return f"{str(exc).rstrip('.')} (see Pillow's Image.MAX_IMAGE_PIXELS); resize it, or raise that limit in Python."

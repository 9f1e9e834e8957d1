"""Built-in sequence and text data: the adding and copy-memory problems, strings of handwritten
digits for CTC, a text corpus every Python install carries, and loaders for text files.

- ``adding`` (Hochreiter & Schmidhuber, 1997, "Long short-term memory", experiment 4): each step
  holds a value in [0, 1] and a marker; the target is the sum of the two marked values, one marked
  in each half of the sequence. Predicting the mean (1.0) gives MSE 1/6 = 0.167.
- ``copy`` (Hochreiter & Schmidhuber, 1997; the form of Arjovsky, Shah & Bengio, 2016, "Unitary
  evolution recurrent neural networks"): ten symbols, a delay of ``T`` blanks, a delimiter, and the
  network must then emit the ten symbols. One label per step (task ``tagging``).
- ``digit-strings``: 1-5 scikit-learn digits placed side by side with random gaps, read column by
  column, labelled only by the digit string (unsegmented transcription for CTC; Graves et al.,
  2006).
- ``pydoc-text``: the text of ``pydoc_data.topics`` (Python's own help pages), for character-level
  language models.

Sequences are arrays ``(n, T, features)`` (or object arrays of ``(T_i, features)`` arrays when the
lengths differ); a text corpus is a one-element array per split holding the split's text.

User files of sequences are ``.npz``: ``X`` ``(n, steps[, features])`` with ``y``; an integer array
``lengths`` ``(n,)`` makes them ragged (steps past each length are ignored), ``y`` of shape
``(n, steps)`` holds one label per step (a tagging task), and with ``--task sequence`` ``y`` holds
one string per sequence to transcribe (CTC).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from deepatlas.data.core import Dataset, check_size, csv_rows, infer_task, read_npz, register_dataset, split
from deepatlas.errors import InputError


def _check_int(name: str, value, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InputError(f"Dataset option {name!r} must be an int >= {minimum}. Got {value!r} instead.")
    return value


# ---- adding problem -------------------------------------------------------------------------
def make_adding(n: int, T: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``X`` (n, T, 2): value and marker channels; ``y`` (n,): the sum of the two marked values."""
    values = rng.uniform(0.0, 1.0, size=(n, T))
    first = rng.integers(0, T // 2, size=n)  # one mark in each half
    second = rng.integers(T // 2, T, size=n)
    markers = np.zeros((n, T))
    rows = np.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    X = np.stack([values, markers], axis=2).astype(np.float32)  # (n, T, 2)
    y = (values[rows, first] + values[rows, second]).astype(np.float32)
    return X, y


@register_dataset(
    "adding",
    task="regression",
    description="adding problem (Hochreiter & Schmidhuber, 1997): sum of 2 marked values in T steps; baseline MSE 0.167",
)
def adding(T: int = 100, n: int = 10000, seed: int = 0) -> Dataset:
    T, n = _check_int("T", T, 2), _check_int("n", n, 20)
    check_size("adding", 48 * n * T, {"T": T, "n": n})  # float64 values, markers, stack; float32 X
    X, y = make_adding(n, T, np.random.default_rng(seed))
    parts = split(X, y, seed=seed, stratify=False)
    return Dataset(
        "adding",
        "regression",
        *parts,
        description=f"adding problem, T={T}: predicting 1.0 gives MSE 0.167",
        meta={"T": T, "baseline_mse": 1 / 6},
    )


# ---- copy-memory problem -----------------------------------------------------------------------
def make_copy(n: int, T: int, rng: np.random.Generator, n_symbols: int = 8, length: int = 10):
    """``X`` (n, T + 2*length, n_symbols + 2) one-hot; ``y`` (n, T + 2*length) step labels.

    Label 0 is the blank, 1..n_symbols the symbols, n_symbols + 1 the delimiter (input only)."""
    total = T + 2 * length
    symbols = rng.integers(1, n_symbols + 1, size=(n, length))
    inputs = np.zeros((n, total), dtype=np.int64)
    inputs[:, :length] = symbols
    inputs[:, T + length - 1] = n_symbols + 1  # "now repeat them"
    targets = np.zeros((n, total), dtype=np.int64)
    targets[:, -length:] = symbols
    X = np.eye(n_symbols + 2, dtype=np.float32)[inputs]  # (n, total, n_symbols + 2)
    return X, targets


@register_dataset(
    "copy",
    task="tagging",
    description="copy-memory task: repeat 10 symbols after a delay of T blanks (one label per step)",
)
def copy(T: int = 20, n: int = 4000, seed: int = 0) -> Dataset:
    T, n = _check_int("T", T, 1), _check_int("n", n, 20)
    check_size("copy", 100 * n * (T + 20), {"T": T, "n": n})  # int64 inputs, targets; one-hot float32 X
    X, y = make_copy(n, T, np.random.default_rng(seed))
    parts = split(X, y, seed=seed, stratify=False)
    # A memoryless model emits blanks, then guesses among 8 symbols: 10 * ln 8 nats per sequence.
    baseline = 10 * math.log(8) / (T + 20)
    return Dataset(
        "copy",
        "tagging",
        *parts,
        description=f"copy memory, delay {T}: memoryless baseline {baseline:.3f} nats per step",
        meta={"T": T, "baseline_loss": baseline},
    )


# ---- strings of handwritten digits --------------------------------------------------------------
def compose_digit_strings(images, labels, n, rng, max_digits=5, max_gap=3, width=None):
    """Place 1..max_digits 8x8 digit images side by side with random gaps.

    Returns ``X`` (n, width, 8) — columns as time steps — and ``y``, the digit strings."""
    width = width or max_digits * 8 + (max_digits - 1) * max_gap + max_gap + 1
    X = np.zeros((n, width, 8), dtype=np.float32)
    strings = []
    for i in range(n):
        k = int(rng.integers(1, max_digits + 1))
        picks = rng.integers(0, len(images), size=k)
        col = int(rng.integers(0, max_gap + 1))
        for j in picks:
            X[i, col : col + 8] = images[j].T  # (8 rows, 8 cols) -> (8 cols as steps, 8 features)
            col += 8 + int(rng.integers(0, max_gap + 1))
        strings.append("".join(str(int(labels[j])) for j in picks))
    return X, np.array(strings)


@register_dataset(
    "digit-strings",
    task="sequence",
    description="1-5 scikit-learn digits side by side with random gaps, labelled only by the string (for CTC)",
)
def digit_strings(n: int = 6000, max_digits: int = 5, seed: int = 0) -> Dataset:
    from sklearn.datasets import load_digits

    n, max_digits = _check_int("n", n, 20), _check_int("max_digits", max_digits, 1)
    check_size("digit-strings", 64 * n * (11 * max_digits + 1), {"n": n, "max_digits": max_digits})
    data = load_digits()
    images = (data.images / 16.0).astype(np.float32)
    # Split the digit images first, so test strings are written with digits never seen in training.
    tr_i, tr_y, va_i, va_y, te_i, te_y = split(images, data.target, seed=seed)
    rng = np.random.default_rng(seed)
    n_test, n_val = int(0.2 * n), int(0.1 * n)
    n_train = n - n_test - n_val
    parts = []
    for imgs, labs, count in ((tr_i, tr_y, n_train), (va_i, va_y, n_val), (te_i, te_y, n_test)):
        parts += compose_digit_strings(imgs, labs, count, rng, max_digits=max_digits)
    return Dataset(
        "digit-strings",
        "sequence",
        *parts,
        description="digit strings read column by column (8 features per step), labels are strings",
        meta={"alphabet": "0123456789"},
    )


# ---- text -----------------------------------------------------------------------------------------
def _text_splits(name: str, text: str, description: str, seed: int = 0) -> Dataset:
    """Contiguous 80 / 10 / 10 character splits (held-out text is text the model never read)."""
    if len(text) < 100:
        raise InputError(f"Text {name!r} has {len(text)} characters; at least 100 are needed for a language model.")
    a, b = int(0.8 * len(text)), int(0.9 * len(text))
    train, val, test = (np.array([s]) for s in (text[:a], text[a:b], text[b:]))
    return Dataset(name, "text", train, None, val, None, test, None, description=description, meta={"corpus": True})


def pydoc_corpus() -> str:
    """Python's own help topics, in a fixed order (about 465,000 characters)."""
    from pydoc_data.topics import topics

    return "\n".join(topics[k] for k in sorted(topics))


@register_dataset(
    "pydoc-text",
    task="text",
    description="the text of pydoc_data.topics (Python's help pages, ~465k characters) for character LMs",
)
def pydoc_text() -> Dataset:
    return _text_splits("pydoc-text", pydoc_corpus(), "Python's help topics, split 80/10/10 by position")


def read_text(path: str | Path) -> str:
    """The whole file as text; a one-line error when it is not UTF-8."""
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"Text file {str(p)!r} is not UTF-8 text (byte {exc.start} cannot be decoded).") from None
    except OSError as exc:
        raise InputError(f"Text file {str(p)!r} cannot be read: {exc.strerror}.") from None


def load_text_file(path: str | Path, *, text: str, target=None, task=None, seed: int = 0) -> Dataset:
    """``--text COLUMN``: a CSV/TSV with a text column (text classification or regression), or
    any other UTF-8 file read whole as a corpus for a language model (``COLUMN`` is then unused)."""
    p = Path(path)
    if p.suffix.lower() not in (".csv", ".tsv"):
        return _text_splits(str(p), read_text(p), f"text corpus from {p}", seed)
    raw = read_text(p).lstrip("\ufeff")
    delimiter = "\t" if p.suffix.lower() == ".tsv" else ","
    rows = csv_rows(raw.splitlines(), f"Data file {str(p)!r}", delimiter)
    if len(rows) < 2:
        raise InputError(f"Data file {str(p)!r} needs a header row and data rows.")
    header = [h.strip() for h in rows[0]]
    if text not in header:
        raise InputError(f"Data file {str(p)!r} has no text column {text!r}; its columns are: {', '.join(header)}.")
    if target is None:
        others = [h for h in header if h != text]
        if not others:
            raise InputError(f"Data file {str(p)!r} has only the text column; it needs a target column too.")
        target = others[-1]
    elif target not in header:
        raise InputError(f"Data file {str(p)!r} has no column {target!r}; its columns are: {', '.join(header)}.")
    if target == text:
        raise InputError(f"--target and --text both name column {text!r}; the target must be another column.")
    t, j = header.index(text), header.index(target)
    body = rows[1:]
    for i, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise InputError(f"Data file {str(p)!r}: row {i} has {len(row)} fields, but the header has {len(header)}.")
    docs = np.array([row[t] for row in body])
    missing = [i for i, row in enumerate(body, start=2) if not row[t].strip()]
    if missing:
        raise InputError(
            f"Data file {str(p)!r}: text column {text!r} is empty in {len(missing)} row(s), first row {missing[0]}; "
            "give every row a document, or remove those rows."
        )
    labels = np.array([row[j].strip() for row in body], dtype=object)
    blank = np.flatnonzero(labels == "")
    if len(blank):
        raise InputError(f"Data file {str(p)!r}: target column {target!r} is empty in row {blank[0] + 2}.")
    y, inferred = infer_task(labels, task)
    if len(docs) < 10:
        raise InputError(
            f"Data file {str(p)!r} has {len(docs)} rows; at least 10 are needed to split train, validation and test."
        )
    parts = split(docs, y, seed=seed, stratify=inferred == "classification")
    return Dataset(
        str(p),
        inferred,
        *parts,
        description=f"text column {text!r} of {p}",
        feature_names=[text],
        target_name=target,
        meta={"text_column": text},
    )


# ---- user files of sequences -----------------------------------------------------------------------
def check_lengths(lengths: np.ndarray, n: int, steps: int, where: str) -> np.ndarray:
    """Validate an array of sequence lengths against ``n`` sequences of at most ``steps`` steps."""
    if lengths.ndim != 1 or len(lengths) != n:
        raise InputError(
            f"{where}: 'lengths' must be 1-D with one entry per sequence ({n}). Got shape {lengths.shape}."
        )
    if not np.issubdtype(lengths.dtype, np.integer):
        raise InputError(f"{where}: 'lengths' must hold integers. Got dtype {lengths.dtype} instead.")
    bad = np.flatnonzero((lengths < 1) | (lengths > steps))
    if len(bad):
        i = int(bad[0])
        raise InputError(
            f"{where}: lengths[{i}] is {int(lengths[i])}; each length must be between 1 and {steps} (the steps in X)."
        )
    return lengths.astype(np.int64)


def _objects(rows: list) -> np.ndarray:
    out = np.empty(len(rows), dtype=object)
    out[:] = rows
    return out


def load_sequence_npz(path: str | Path, *, task: str | None = None, seed: int = 0) -> Dataset | None:
    """An ``.npz`` of sequences that the table loader would misread: ragged (``lengths`` beside a
    padded ``X``) or labelled per step (``y`` of shape ``(n, steps)``, unless ``task`` says
    otherwise). ``None`` for any other ``.npz``."""
    p = Path(path)
    X, y = read_npz(p)
    with np.load(p, allow_pickle=False) as f:
        lengths = np.asarray(f["lengths"]) if "lengths" in f.files else None
    per_step = task in (None, "tagging") and X.ndim in (2, 3) and y.ndim == 2 and y.shape[1] == X.shape[1]
    where = f"Data file {str(p)!r}"
    if task == "tagging" and not per_step:
        raise InputError(
            f"{where}: task 'tagging' needs one label per step, 'y' of shape (n, steps) = ({len(X)}, "
            f"{X.shape[1] if X.ndim > 1 else '?'}). Got {y.shape} instead."
        )
    if task == "sequence" and y.ndim != 1:
        raise InputError(f"{where}: task 'sequence' needs one string per sequence, 'y' of shape (n,). Got {y.shape}.")
    if lengths is None and not per_step and task != "sequence":
        return None
    if X.ndim not in (2, 3):
        raise InputError(f"{where}: sequences need 'X' of shape (n, steps) or (n, steps, features). Got {X.shape}.")
    if X.shape[1] == 0:
        raise InputError(f"{where} holds empty sequences (shape {X.shape}); every sequence needs at least one step.")
    steps = np.full(len(X), X.shape[1]) if lengths is None else check_lengths(lengths, len(X), X.shape[1], where)
    if len(X) < 10:
        raise InputError(f"{where} has {len(X)} rows; at least 10 are needed to split train, validation and test.")
    if per_step:
        labels, _ = infer_task(y.ravel(), "classification")  # step labels: ints or strings
        labels = labels.reshape(y.shape)
        y = labels if lengths is None else _objects([labels[i, :L] for i, L in enumerate(steps)])
        task = "tagging"
    elif task == "sequence":  # transcriptions (CTC): strings, kept as written ("007" stays "007")
        y = y.astype(str)
    else:
        y, task = infer_task(y, task)
    X = X if lengths is None else _objects([X[i, :L] for i, L in enumerate(steps)])
    parts = split(X, y, seed=seed, stratify=task == "classification")
    return Dataset(str(p), task, *parts, description=f"sequences from {p}", meta={"ragged": lengths is not None})

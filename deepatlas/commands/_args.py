"""Arguments that several sub-commands share: the data (``--data``, ``--target``, ``--task``,
``--text``), a table's raw columns (``--drop``, ``--categorical``, ``--impute``, ``--id``) and label
files (``--labels``), and the estimator's parameters (``--set NAME=VALUE`` and its shortcuts)."""

from __future__ import annotations

import argparse

from deepatlas.errors import InputError


def params_from_set(items: list[str] | None) -> dict:
    from deepatlas.data import literal

    params = {}
    for item in items or []:
        key, eq, raw = item.partition("=")
        if not eq or not key.strip():
            raise InputError(f"--set expects name=value, e.g. --set hidden_sizes=(128,64). Got {item!r} instead.")
        params[key.strip()] = literal(raw.strip())
    return params


def seed_arg(text: str) -> int:
    """``--seed``'s type: an int in [0, 2**32 - 1] (the range every library accepts), checked
    before any work starts."""
    from deepatlas._validation import MAX_SEED

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be an int in the range [0, {MAX_SEED}]. Got {text!r} instead."
        ) from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be an int in the range [0, {MAX_SEED}]. Got {value} instead.")
    return value


def threads_arg(text: str):
    """``--threads``' type: ``auto`` or an int >= 1."""
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be 'auto' or an int >= 1. Got {text!r} instead.") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 'auto' or an int >= 1. Got {value} instead.")
    return value


def add_data_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument(
        "--data", required=required, metavar="D", help="built-in dataset (name[:key=value,...]) or a file/folder path"
    )
    p.add_argument("--target", metavar="COLUMN", help="CSV target column (default: the last column)")
    p.add_argument(
        "--task",
        choices=("classification", "regression", "tagging", "sequence", "ratings", "translation"),
        help="override the task inferred from the target (tagging, sequence: .npz of sequences; ratings: a "
        "user,item,rating CSV, see docs; translation: a .tsv of source<TAB>target lines)",
    )
    p.add_argument("--text", metavar="COLUMN", help="CSV column holding text (text classification)")
    p.add_argument("--val", metavar="FILE", help="CoNLL validation file (default: split from --data)")
    p.add_argument("--test", metavar="FILE", help="CoNLL test file (default: split from --data)")


IMPUTE = (
    "median",
    "mean",
    "most_frequent",
    "none",
)  # deepatlas.preprocessing.IMPUTE (not imported: --help stays light)


def add_table_args(p: argparse.ArgumentParser) -> None:
    """``--drop``, ``--categorical``, ``--impute``, ``--id`` (a CSV's raw columns, see
    :mod:`deepatlas.preprocessing`; the estimators' ``preprocess`` parameter) and ``--labels``."""
    g = p.add_argument_group("tables (CSV) and label files")
    g.add_argument("--drop", nargs="+", metavar="COL", default=[], help="CSV columns to leave out (a leak, free text)")
    g.add_argument(
        "--categorical",
        nargs="+",
        metavar="COL",
        default=["auto"],
        help="CSV columns to one-hot encode, or 'auto' (default): text columns with few distinct values",
    )
    g.add_argument(
        "--impute",
        choices=IMPUTE,
        default="median",
        help="fill missing values with the training median (default), mean or most frequent value "
        "(categories: the most frequent), or 'none': a missing value is an error",
    )
    g.add_argument(
        "--id",
        metavar="COL",
        help="an identifier column: left out of the features, and copied into predict's output",
    )
    add_labels_arg(g)


def add_labels_arg(p) -> None:
    p.add_argument(
        "--labels",
        metavar="FILE",
        help="the labels of --data: an IDX label file (MNIST images), a CSV of file,label rows (image folder) "
        "or an .npy of labels (an .npy of images)",
    )


def preprocess_options(args) -> dict:
    """The table options of ``args`` as :class:`~deepatlas.preprocessing.TabularPreprocessor`'s arguments."""
    categorical = args.categorical
    return {
        "drop": list(args.drop),
        "categorical": "auto" if categorical == ["auto"] else list(categorical),
        "impute": args.impute,
        "id_column": getattr(args, "id", None),
    }


def load_data(args, *, notes: bool = True):
    """The dataset of ``--data`` with the table options (``add_table_args``), the table's notes
    (an identifier-like column, the imputation, the encoded columns) printed on stderr."""
    import sys

    from deepatlas.data import load_dataset

    ds = load_dataset(
        args.data,
        target=args.target,
        task=args.task,
        seed=args.seed,
        preprocess=preprocess_options(args),
        labels=args.labels,
    )
    for note in (ds.meta.get("notes") or []) if notes else []:
        print(f"note: {note}", file=sys.stderr)
    return ds


def add_param_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set",
        action="append",
        metavar="NAME=VALUE",
        help="set any estimator parameter (value read as a Python/JSON literal); repeatable",
    )
    p.add_argument("--epochs", type=int, help="shortcut for --set epochs=N")
    p.add_argument("--lr", type=float, help="shortcut for --set lr=X")
    p.add_argument("--batch-size", type=int, help="shortcut for --set batch_size=B")
    p.add_argument(
        "--seed", type=seed_arg, default=0, help="random seed for the model and for splitting user files (default 0)"
    )
    p.add_argument(
        "--threads",
        type=threads_arg,
        metavar="N",
        help="CPU threads torch may use while fitting (default auto: one per process, fastest for the "
        "small models here; see docs/results-threads.md)",
    )


def collect_params(args) -> dict:
    params = params_from_set(getattr(args, "set", None))
    for flag, name in (("epochs", "epochs"), ("lr", "lr"), ("batch_size", "batch_size"), ("threads", "threads")):
        value = getattr(args, flag, None)
        if value is not None:
            params[name] = value
    if getattr(args, "seed", None) is not None:
        params.setdefault("seed", args.seed)
    return params

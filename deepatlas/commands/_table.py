"""The options of ``deepatlas train`` for a table's raw columns (``--drop``, ``--categorical``,
``--impute``) and for label files (``--labels``); see :mod:`deepatlas.preprocessing`."""

from __future__ import annotations

import argparse

IMPUTE = (
    "median",
    "mean",
    "most_frequent",
    "none",
)  # deepatlas.preprocessing.IMPUTE (not imported: --help stays light)


def add_table_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("tables (CSV) and label files")
    g.add_argument("--drop", nargs="+", metavar="COL", default=[], help="CSV columns to leave out (an ID, a leak)")
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
    add_labels_arg(g)


def add_labels_arg(p) -> None:
    p.add_argument(
        "--labels",
        metavar="FILE",
        help="the labels of --data: an IDX label file (MNIST images), a CSV of file,label rows (image folder) "
        "or an .npy of labels (an .npy of images)",
    )


def preprocess_options(args) -> dict:
    categorical = args.categorical
    return {
        "drop": list(args.drop),
        "categorical": "auto" if categorical == ["auto"] else list(categorical),
        "impute": args.impute,
    }

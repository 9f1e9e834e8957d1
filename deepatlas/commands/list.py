"""``deepatlas list [all|models|datasets] [--pattern GLOB]``: the registered models and datasets, one line each."""

from __future__ import annotations

import fnmatch


def cmd_list(args) -> int:
    from deepatlas.data import list_datasets
    from deepatlas.registry import model_entries

    if args.what in ("all", "models"):
        print("models:")
        for e in model_entries():
            if args.pattern and not fnmatch.fnmatch(e.name, args.pattern):
                continue
            print(f"  {e.name:<20} {e.description}  [{', '.join(e.classes)}]")
    if args.what in ("all", "datasets"):
        print("datasets:")
        for d in list_datasets():
            print(f"  {d.name:<20} {d.description}  [{d.task}]")
        print(
            "  (or a path: .csv with header, .npz with X and y (sequences: optional lengths), MNIST IDX files,"
            " a folder of class sub-folders, a .txt text corpus)"
        )
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("list", help="list models and datasets")
    p.add_argument("what", nargs="?", choices=("all", "models", "datasets"), default="all")
    p.add_argument("--pattern", help="shell-style filter on model names, e.g. '*gan*'")
    p.set_defaults(func=cmd_list)

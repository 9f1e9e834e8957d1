"""``deepatlas list [all|models|datasets] [--pattern GLOB]``: the model cards and datasets, one line
each; ``deepatlas list --params NAME [--task TASK]``: a model's parameters with their defaults,
allowed values and meaning."""

from __future__ import annotations

import fnmatch
import shutil
import textwrap


def _settings(defaults: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in defaults.items())


def _model_line(m: dict) -> str:
    """One name of :func:`deepatlas.registry.model_summaries`: a variant says which name (or class)
    it is with which defaults, e.g. ``= rnn with cell='gru': ``."""
    exports = "ONNX" if m["exports"] else "no export"
    variant = f"= {m['variant_of']} with {m['settings']}: " if m["variant_of"] else ""
    return f"  {m['name']:<20} {variant}{m['description']}  [{m['family']}: {', '.join(m['tasks'])}; {exports}]"


def _default_text(value) -> str:
    from dataclasses import MISSING

    return "required" if value is MISSING else repr(value)


def params_lines(name: str, task: str | None = None, width: int | None = None) -> list[str]:
    """The lines of ``deepatlas list --params NAME``: a header, then per parameter ``name = default
    (allowed values)`` and its documentation, wrapped to ``width`` (default: the terminal's)."""
    from deepatlas._params import describe_params
    from deepatlas.registry import get_card, get_entry

    card = get_card(name, task)
    entry = get_entry(name)
    width = width or shutil.get_terminal_size((100, 24)).columns
    header = f"{card.name} ({card.task}): {card.cls.__name__}"
    if card.defaults:
        header += f" with {_settings(card.defaults)}"
    others = [t for t in entry.cards if t != card.task]
    if others:
        header += f"; other tasks: {', '.join(others)} (--task)"
    lines = [header]
    indent = " " * 6
    for p in describe_params(card.cls, card.defaults):
        head = f"  {p.name} = {_default_text(p.default)}"
        if p.allowed:
            head += f"  ({p.allowed})"
        lines += textwrap.wrap(head, width, subsequent_indent=indent, break_on_hyphens=False) or [head]
        doc = " ".join(p.doc.replace("``", "`").split()) or "(not documented)"
        lines += textwrap.wrap(doc, width, initial_indent=indent, subsequent_indent=indent, break_on_hyphens=False)
    return lines


def cmd_list(args) -> int:
    if args.params:
        print("\n".join(params_lines(args.params, args.task)))
        return 0

    from deepatlas.data import list_datasets
    from deepatlas.registry import model_summaries

    if args.what in ("all", "models"):
        print("models (name, description, [family: tasks; export]; `deepatlas list --params NAME` explains one):")
        for m in model_summaries():  # from the card index: no model module (and no torch) imported
            if args.pattern and not fnmatch.fnmatch(m["name"], args.pattern):
                continue
            print(_model_line(m))
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
    p = sub.add_parser("list", help="list models and datasets, or one model's parameters")
    p.add_argument("what", nargs="?", choices=("all", "models", "datasets"), default="all")
    p.add_argument("--pattern", help="shell-style filter on model names, e.g. '*gan*'")
    p.add_argument(
        "--params", metavar="NAME", help="print the parameters of model NAME: default, allowed values, meaning"
    )
    p.add_argument("--task", help="with --params: the task whose estimator to describe (default: the model's first)")
    p.set_defaults(func=cmd_list)

"""The ``deepatlas`` command: a thin layer over the Python API.

Exit status: 0 on success, 2 on a user error (one line on stderr, no traceback), 1 on an
internal error. Sub-commands beyond ``list``, ``train`` and ``predict`` live in
``deepatlas/commands/`` (one module each, exposing ``add_parser(subparsers)``); this file
discovers them, so a family adds a command by adding a file.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import time
from pathlib import Path

from deepatlas import __version__
from deepatlas.errors import DeepAtlasError, InputError


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump) and exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _params_from_set(items: list[str] | None) -> dict:
    from deepatlas.data import literal

    params = {}
    for item in items or []:
        key, eq, raw = item.partition("=")
        if not eq or not key.strip():
            raise InputError(f"--set expects name=value, e.g. --set hidden_sizes=(128,64). Got {item!r} instead.")
        params[key.strip()] = literal(raw.strip())
    return params


def add_data_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument(
        "--data", required=required, metavar="D", help="built-in dataset (name[:key=value,...]) or a file/folder path"
    )
    p.add_argument("--target", metavar="COLUMN", help="CSV target column (default: the last column)")
    p.add_argument(
        "--task",
        choices=("classification", "regression", "tagging", "sequence"),
        help="override the task inferred from the target (tagging, sequence: .npz of sequences, see docs)",
    )
    p.add_argument("--text", metavar="COLUMN", help="CSV column holding text (text classification)")


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
        "--seed", type=int, default=0, help="random seed for the model and for splitting user files (default 0)"
    )


def collect_params(args) -> dict:
    params = _params_from_set(getattr(args, "set", None))
    for flag, name in (("epochs", "epochs"), ("lr", "lr"), ("batch_size", "batch_size")):
        value = getattr(args, flag, None)
        if value is not None:
            params[name] = value
    if getattr(args, "seed", None) is not None:
        params.setdefault("seed", args.seed)
    return params


def build_model(name: str, task: str | None, params: dict):
    """Create through the registry; drop ``seed``/``verbose`` for models that lack them."""
    from deepatlas.registry import create_model, get_model_class

    cls = get_model_class(name, task)
    valid = cls._get_param_names()
    for optional in ("seed", "verbose"):
        if optional in params and optional not in valid:
            params.pop(optional)
    return create_model(name, task, **params)


# ---- train -----------------------------------------------------------------------------------
def _default_out(model: str, data: str) -> Path:
    stem = Path(data.split(":")[0]).stem if ("/" in data or "." in data) else data.split(":")[0]
    return Path("runs") / f"{model}-{stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def cmd_train(args) -> int:
    from deepatlas.data import load_dataset
    from deepatlas.runs import train_run
    from deepatlas.training import distributed

    if args.data is None:  # a model may name its own default data (charlm: pydoc-text)
        from deepatlas.registry import get_model_class

        args.data = getattr(get_model_class(args.model), "default_data", None)
        if args.data is None:
            raise InputError("the following arguments are required: --data")
    params = collect_params(args)
    out = Path(args.out) if args.out else _default_out(args.model, args.data)
    if args.nproc is not None:
        # Resolve the run directory here so that every process writes (rank 0) the same one.
        argv = _without_nproc(sys.argv[1:] if args.argv is None else args.argv)
        if not args.out:
            argv += ["--out", str(out)]
        return distributed.launch_torchrun(args.nproc, argv)
    if args.resume and not args.out:
        raise InputError("--resume needs --out DIR: the run directory whose checkpoint to continue.")
    if (out / "metrics.json").exists() and not args.resume:
        raise InputError(f"--out {str(out)!r} already holds a finished run; choose another directory.")
    ds = load_dataset(args.data, target=args.target, task=args.task, seed=args.seed, text=getattr(args, "text", None))
    if ds.meta.get("corpus"):  # a plain-text corpus trains only a language model
        from deepatlas.registry import get_entry

        if "text" not in get_entry(args.model).classes:
            raise InputError(
                f"--data {args.data!r} is a text corpus, which only a language model (charlm) trains on; "
                f"{args.model!r} needs a table: a .csv with a header row (text in a column: --text COLUMN), "
                "an .npz with X and y, or a built-in dataset."
            )
    model = build_model(args.model, ds.task, params)
    if not args.quiet and hasattr(model, "verbose"):
        model.set_params(verbose=True)
    metrics = train_run(model, ds, out, data_spec=args.data, seed=args.seed, resume=args.resume, quiet=args.quiet)
    if not distributed.is_main_process():
        return 0
    if not args.quiet:
        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k.startswith("test_") and isinstance(v, float))
        print(f"{args.model} on {ds.name}: {shown} (fit {metrics['fit_seconds']:.1f} s) -> {out}")
    else:
        print(out)
    return 0


def _without_nproc(argv: list[str]) -> list[str]:
    out, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item == "--nproc":
            skip = True
        elif not item.startswith("--nproc="):
            out.append(item)
    return out


# ---- predict ---------------------------------------------------------------------------------
def cmd_predict(args) -> int:
    from deepatlas.predict import predict_file

    text = predict_file(args.run, args.input)
    if args.output:
        from deepatlas.runs import atomic_write_text

        atomic_write_text(args.output, text)
    else:
        sys.stdout.write(text)
    return 0


_FIRST = ("list", "train", "predict")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="deepatlas", description="The classic deep-learning map, runnable and measured.")
    parser.add_argument("--version", action="version", version=f"deepatlas {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("train", help="train a model on a dataset into a run directory")
    p.add_argument("model", help="registry name (see 'deepatlas list models')")
    add_data_args(p, required=False)  # required unless the model names default data
    add_param_args(p)
    p.add_argument("--out", metavar="DIR", help="run directory (default runs/<model>-<data>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary; print only the run directory")
    p.add_argument(
        "--nproc", type=int, metavar="N", help="train data-parallel on N local processes (launches torchrun)"
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("predict", help="predict with a trained run; writes CSV")
    p.add_argument("run", help="run directory")
    p.add_argument(
        "--input",
        required=True,
        metavar="FILE",
        help=".csv (header row), .npz (array X; sequences: optional lengths) or .txt (text models: one document per line)",
    )
    p.add_argument("--output", metavar="FILE", help="CSV to write (default: standard output)")
    p.set_defaults(func=cmd_predict)

    import deepatlas.commands as commands

    names = [i.name for i in pkgutil.iter_modules(commands.__path__) if not i.name.startswith("_")]
    # The everyday commands first in --help, then the rest alphabetically.
    for name in sorted(names, key=lambda n: (_FIRST.index(n) if n in _FIRST else len(_FIRST), n)):
        importlib.import_module(f"deepatlas.commands.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except DeepAtlasError as exc:
        # Under torchrun every rank meets the same user error; one of them says it.
        if int(os.environ.get("RANK", "0")) == 0:
            print(f"deepatlas {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"deepatlas {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())

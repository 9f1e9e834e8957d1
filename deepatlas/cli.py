"""The ``deepatlas`` command: a thin layer over the Python API.

Exit status: 0 on success, 2 on a user error (one line on stderr, no traceback), 1 on an
internal error. This file holds only the parser, the discovery of sub-commands and the error
handling: every sub-command lives in ``deepatlas/commands/`` (one module each, exposing
``add_parser(subparsers)``), so a family adds a command by adding a file. Nothing here imports
torch, so ``deepatlas --help`` stays fast; commands import what they need when they run.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from deepatlas import __version__, commands
from deepatlas.errors import DeepAtlasError


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump) and exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


_FIRST = ("list", "train", "predict")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="deepatlas", description="The classic deep-learning map, runnable and measured.")
    parser.add_argument("--version", action="version", version=f"deepatlas {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

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
        line = f"deepatlas {args.command}: error: {exc}"
        # Under ``--nproc`` every rank meets the same user error: each leaves its line in a file
        # and the launcher says one. Under a bare torchrun, rank 0 says it.
        if (error_file := _rank_error_file()) is not None:
            from deepatlas._io import atomic_write_text

            atomic_write_text(error_file, line + "\n")
        elif int(os.environ.get("RANK", "0")) == 0:
            print(line, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"deepatlas {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:
        # Under torchrun a rank whose peer died or went silent says so in one line (exit 1).
        lost = _peer_failure(exc)
        if lost is None:
            raise
        print(f"deepatlas {args.command}: error: {lost}", file=sys.stderr)
        return 1


def _rank_error_file() -> str | None:
    if "DEEPATLAS_RANK_ERRORS" not in os.environ:  # not a rank of ``--nproc``: no torch import
        return None
    from deepatlas.training.distributed import user_error_file

    return user_error_file()


def _peer_failure(exc: Exception) -> str | None:
    if "torch" not in sys.modules:  # torch not imported: not a distributed run
        return None
    from deepatlas.training.distributed import peer_failure

    return peer_failure(exc)


if __name__ == "__main__":
    sys.exit(main())

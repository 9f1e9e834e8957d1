"""Files written whole or not at all, and JSON that any run, checkpoint or report can hold.

The bottom layer of the package (it imports only the standard library and NumPy), so that a
model, the training loop, the run directory and the reports share one way to write a file: into
a temporary file beside the target, then renamed over it, so a reader never sees half a file and
a crash leaves the old one in place.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix, so writers that look at it still work);
    on success it is renamed to ``path`` with the usual file permissions, on failure removed.

    >>> with atomic_path("runs/x/samples.npz") as tmp:    # doctest: +SKIP
    ...     np.savez(tmp, X=X)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_writable(path: str | os.PathLike, arg: str, *, directory: bool = False) -> Path:
    """Refuse, before any work starts, an output ``path`` that cannot be written: a folder where a
    file is expected (or a file where a folder is), or a place whose nearest existing folder
    refuses a new file (tried with an unnamed temporary file, so nothing is left behind).

    ``arg`` names the option in the one-line :class:`~deepatlas.errors.InputError`."""
    from deepatlas.errors import InputError

    path = Path(path)
    shown = f"{arg} {str(path)!r}"
    if directory and path.exists() and not path.is_dir():
        raise InputError(f"{shown} is a file; expected a directory.")
    if not directory and path.is_dir():
        raise InputError(f"{shown} is a directory; expected a file name (e.g. {str(path / 'out')!r}).")
    place = path if directory and path.is_dir() else path.parent
    while not place.exists() and place != place.parent:
        place = place.parent
    if not place.is_dir():
        raise InputError(f"{shown} cannot be written: {str(place)!r} is a file, not a directory.")
    try:
        with tempfile.TemporaryFile(dir=place):
            pass
    except OSError as exc:
        raise InputError(
            f"{shown} cannot be written: {str(place)!r} is not writable ({exc.strerror or exc})."
        ) from None
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_savez(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """``np.savez(path, **arrays)`` atomically (``path`` should end in ``.npz``)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:  # a file object: np.savez would append .npz to a name
            np.savez(f, **arrays)


def to_jsonable(value: Any) -> Any:
    """Params and metrics as JSON: tuples become lists, NumPy scalars plain numbers, NaN null."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as indented JSON (through :func:`to_jsonable`) atomically."""
    atomic_write_text(path, json.dumps(to_jsonable(data), indent=2) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read a UTF-8 JSON file (errors are the caller's to word: ``OSError``, ``json.JSONDecodeError``)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))

"""Small helpers shared by atlas experiments."""

from __future__ import annotations

import functools
import hashlib
import time
from pathlib import Path

import numpy as np


def fit_timed(model, X, y, **kwargs):
    start = time.perf_counter()
    model.fit(X, y, **kwargs)
    return model, time.perf_counter() - start


def n_params(model) -> int:
    return int(sum(p.numel() for p in model.module_.parameters()))


def flat(X: np.ndarray) -> np.ndarray:
    return X.reshape(len(X), -1)


def r(x: float, digits: int = 4) -> float:
    return round(float(x), digits)


# Seed budgets (full report, quick report). The default of ``@experiment`` is five seeds in the
# full report and three in the quick one; experiments that cost more than about a second in quick
# mode run one quick seed (MEDIUM: still five full seeds) so that the quick report stays near a
# minute. Every experiment runs at least five seeds in the full report (issue #30): the heaviest
# (HEAVY, the application claims) shrink their per-seed budgets instead (fewer pairs, utterances,
# epochs, trials or steps a seed; each module says what it measured before and after).
MEDIUM = {"seeds": (0, 1, 2, 3, 4), "quick_seeds": (0,)}
HEAVY = MEDIUM
# Once MEDIUM, now three quick seeds: each costs about half a second in quick mode (issue #30).
CHEAP = {"seeds": (0, 1, 2, 3, 4), "quick_seeds": (0, 1, 2)}


def _array_digest(digest, value) -> None:
    if isinstance(value, np.ndarray):
        arr = np.ascontiguousarray(value)
        digest.update(f"{arr.dtype}{arr.shape}".encode() + arr.tobytes())
    elif isinstance(value, (list, tuple)):
        digest.update(f"{type(value).__name__}{len(value)}".encode())
        for v in value:
            _array_digest(digest, v)
    else:
        digest.update(repr(value).encode())


_FITS: dict[str, object] = {}


@functools.cache
def _code_digest(module: str) -> str:
    """The source of ``module`` and of every deepatlas module it imports, read once per process
    (as the runner reads each experiment's code once, when the report starts)."""
    from deepatlas.atlas.runner import module_closure

    digest = hashlib.sha256()
    for f in module_closure(module):
        digest.update(f.encode() + Path(f).read_bytes())
    return digest.hexdigest()


def fit_key(model, X, y, **fit_kwargs) -> str:
    """What :func:`shared_fit` files a fit under: the class, every parameter, the arrays, the code."""
    digest = hashlib.sha256(f"{type(model).__module__}.{type(model).__qualname__}".encode())
    digest.update(repr(sorted(model.get_params(deep=False).items())).encode())
    for part in (X, y, sorted(fit_kwargs.items())):
        _array_digest(digest, part)
    digest.update(_code_digest(type(model).__module__).encode())
    return digest.hexdigest()[:24]


def shared_fit(ctx, model, X, y, **fit_kwargs):
    """``model.fit(X, y, **fit_kwargs)``, or the identical fit that another experiment of the same
    report already made (C.features, C.hierarchy and C.fixed-size all train the default CNN on
    MNIST-1D): fits are seeded, so the saved one gives the same numbers. The key covers the class,
    every parameter, the arrays, and the source of every deepatlas module the class's module
    imports; the fit is kept in this process and saved (safetensors, :mod:`deepatlas.saving`) in
    the report's ``cache/fits/`` for the other workers (a worker that asks for a fit another one
    is making waits for it). Use it only where the experiment reads what a saved model keeps
    (predictions, scores, weights), not the training history."""
    import os
    import shutil

    from deepatlas.saving import load, save_model

    key = fit_key(model, X, y, **fit_kwargs)
    if key in _FITS:
        return _FITS[key]
    folder = Path(ctx.figures_dir).parent / "cache" / "fits" / key
    folder.parent.mkdir(parents=True, exist_ok=True)
    lock = folder.with_name(f"{key}.lock")
    own, start = False, time.perf_counter()
    while time.perf_counter() - start < 3600:  # the worker that takes the lock fits; another one waits
        if (folder / "config.json").exists():
            try:
                _FITS[key] = load(folder)
                return _FITS[key]
            except Exception:  # a damaged entry: fit again and replace it
                shutil.rmtree(folder, ignore_errors=True)
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            own = True
            break
        except FileExistsError:
            if not _holder_alive(lock):
                lock.unlink(missing_ok=True)  # its worker died mid-fit
            else:
                time.sleep(0.2)
    try:
        model.fit(X, y, **fit_kwargs)
        tmp = folder.with_name(f"{key}.tmp{os.getpid()}")
        save_model(model, tmp)
        try:
            os.replace(tmp, folder)  # atomic: another worker sees the whole entry or none
        except OSError:  # it saved the same fit first
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        if own:
            lock.unlink(missing_ok=True)
    _FITS[key] = model
    return model


def _holder_alive(lock: Path) -> bool:
    """Whether the process that wrote ``lock`` still runs (an unreadable lock is being written)."""
    import os

    try:
        pid = int(lock.read_text() or "0")
    except (OSError, ValueError):
        return True
    if pid <= 0:
        return True  # created, pid not written yet
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

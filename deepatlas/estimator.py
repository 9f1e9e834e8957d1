"""The root of every deepatlas estimator and agent.

:class:`Estimator` is a dataclass over scikit-learn's ``BaseEstimator``. It declares the three
settings every family shares (``seed``, ``device``, ``verbose``) and their constraints once, and
owns the checks that every ``fit`` starts with:

* :meth:`Estimator._validate_params` checks every declared constraint (one message template, see
  :mod:`deepatlas._validation`) and, under ``torchrun``, refuses to start a family that does not
  train data-parallel (``_data_parallel = False``) with one line instead of N unsynchronised
  copies;
* :meth:`Estimator._check_fitted` raises scikit-learn's ``NotFittedError`` with one message for
  every family, through :func:`sklearn.utils.validation.check_is_fitted`; a family names the
  attribute that marks it fitted in ``_fitted_attr``.

Hyperparameters are documented where they are declared: a string literal right under a dataclass
field is that field's documentation (:func:`deepatlas._params.field_docs` reads it), shown by
``help()``-style listings and ``deepatlas list --params NAME``.
"""

from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass
from typing import ClassVar

from sklearn.base import BaseEstimator

from deepatlas._features import InputSchemaMixin, PreprocessOptions
from deepatlas._validation import SEED, AnyOf, Boolean, Interval, Options, check_device_available, validate_params
from deepatlas.errors import InputError

DEVICES = ("auto", "cpu", "cuda", "mps")


class _DocumentedParams(type):
    """Metaclass whose ``__doc__`` appends a "Parameters" section built from the field docs, on
    demand (reading the sources costs ~0.3 s for the whole registry, too much at import), so that
    ``help(MLPClassifier)`` lists every hyperparameter with its default, allowed values and meaning."""

    @property
    def __doc__(cls):
        own = cls.__dict__.get("_own_doc_", cls.__dict__.get("__doc__")) or ""
        try:
            from deepatlas._params import params_doc

            return f"{own}\n\n{params_doc(cls)}".strip()
        except TypeError:  # not a dataclass yet (while the class is being built)
            return own

    @__doc__.setter
    def __doc__(cls, value):
        type.__setattr__(cls, "_own_doc_", value)


@dataclass(eq=False, repr=False, kw_only=True)
class Estimator(InputSchemaMixin, BaseEstimator, metaclass=_DocumentedParams):
    """Shared settings and fit-time checks of every deepatlas model (column names and raw tables:
    :class:`~deepatlas._features.InputSchemaMixin`)."""

    preprocess: dict | None = None
    """How a pandas DataFrame's raw columns become numbers: a dict with any of ``drop`` (columns to leave
    out), ``categorical`` (``"auto"``: text and ``category`` columns with few values, or the columns to
    one-hot encode), ``impute`` (``median``, ``mean``, ``most_frequent`` or ``none``) and ``id`` (an
    identifier column, left out and copied into ``deepatlas predict``'s output). Fitted on the training
    rows only and saved with the model; None encodes only a frame with text or missing values, with the
    defaults. Arrays are taken as the numbers themselves."""
    seed: int | None = 0
    """Seed of every random draw in ``fit`` (initial weights, batch order, noise, sampling);
    the same seed gives the same model on the same machine. ``None`` draws a fresh seed."""
    device: str = "auto"
    """Where the arithmetic runs: ``auto`` picks CUDA, then Apple MPS, then the CPU."""
    threads: int | str = "auto"
    """CPU threads torch may use while fitting (set for the fit, restored after). ``auto`` uses one
    thread per process: the networks trained here are small, and on a CPU they fit fastest on one
    thread, several times faster than with torch's default of one thread per core when the machine
    is busy (docs/results-threads.md). Give a number for large convolutional models on an idle machine."""
    verbose: bool = False
    """Print progress (a bar per epoch or step) while fitting."""

    _parameter_constraints: ClassVar[dict] = {
        "preprocess": PreprocessOptions(),
        "seed": SEED,
        "device": Options(DEVICES),
        "verbose": Boolean(),
        "threads": AnyOf((Options(("auto",)), Interval(int, 1, None))),
    }
    # True when ``fit`` runs data-parallel under torchrun (the shared TorchEstimator fit does);
    # every other family refuses to start there.
    _data_parallel: ClassVar[bool] = False
    # The attribute that ``fit`` sets last; its presence means "fitted".
    _fitted_attr: ClassVar[str] = "module_"

    def __init_subclass__(cls, **kwargs):
        # Every fitting entry point a class defines runs with the thread count of ``threads``.
        for name in _FIT_METHODS:
            fn = cls.__dict__.get(name)
            if callable(fn) and not hasattr(fn, "__deepatlas_threads__"):
                setattr(cls, name, _with_threads(fn))
        super().__init_subclass__(**kwargs)

    def _thread_count(self) -> int | None:
        """The torch thread count of ``threads`` (``None``: an invalid value, left to the checks)."""
        if self.threads == "auto":
            return 1
        ok = isinstance(self.threads, int) and not isinstance(self.threads, bool) and self.threads >= 1
        return self.threads if ok else None

    @contextlib.contextmanager
    def _threads_set(self):
        """Run a block with torch limited to :meth:`_thread_count` threads, then restore the count."""
        import torch

        n, old = self._thread_count(), torch.get_num_threads()
        if n is None or n == old:
            yield
            return
        torch.set_num_threads(n)
        try:
            yield
        finally:
            torch.set_num_threads(old)

    def _validate_params(self) -> None:
        """Check every constrained parameter; refuse torchrun for a family that is not data-parallel."""
        validate_params(self)
        if self.device in ("cuda", "mps"):  # named, not picked by "auto": it must exist here
            check_device_available(self.device, f"The 'device' parameter of {type(self).__name__}")
        if not self._data_parallel and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise InputError(self._not_data_parallel())

    def _not_data_parallel(self) -> str:
        return (
            f"{type(self).__name__} does not train data-parallel; run it as a single process "
            "(without torchrun or --nproc)."
        )

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, self._fitted_attr)

    def _check_fitted(self) -> None:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, msg=NOT_FITTED)


_FIT_METHODS = ("fit", "fit_dataset", "partial_fit", "learn")


def _with_threads(fn):
    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        with self._threads_set():
            return fn(self, *args, **kwargs)

    wrapper.__deepatlas_threads__ = True
    return wrapper


NOT_FITTED = "This %(name)s instance is not fitted yet. Call 'fit' with appropriate arguments first."

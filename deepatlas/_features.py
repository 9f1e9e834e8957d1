"""Column names and raw tables for every estimator: ``feature_names_in_`` and ``preprocessor_``.

:class:`InputSchemaMixin` sits under :class:`deepatlas.estimator.Estimator`, so every family gets
scikit-learn's column-name behaviour without touching its own ``fit``/``predict``: when a class is
created, its own ``fit``/``fit_transform`` and its input methods (``predict``, ``predict_proba``,
``predict_log_proba``, ``decision_function``, ``transform``, ``score``, ``score_samples``) are
wrapped once. Only the outermost call of a nested chain (``super().fit``) does the work.

* ``fit`` on a pandas DataFrame whose column names are all strings records them in
  ``feature_names_in_`` (an object array, as scikit-learn does); a fit on anything else removes it.
  A DataFrame with a text or ``category`` column or a missing value is encoded by a
  :class:`~deepatlas.preprocessing.TabularPreprocessor` fitted on it (``preprocessor_``: text
  columns with few values one-hot, missing values filled with the median or the most frequent
  category); its problems (a free-text column, an empty one) are one error naming each column.
* At predict time a DataFrame's columns are matched by name, in any order; missing or unexpected
  columns are refused with their names. A NumPy array is taken by position (with scikit-learn's
  warning when the model was fitted with names and has no preprocessor); with a preprocessor it is
  the encoded matrix itself (what ``deepatlas train`` hands the network).
* ``y`` with a missing value among text labels (``None``, ``NaN``, ``pd.NA``) is one
  ``ValueError`` naming ``y`` and the first such row, never a ``TypeError`` from sorting.

Only models that read feature tables (``_input_kind == "features"``, the default) take part;
sequence, text and corpus models see their input untouched.
"""

from __future__ import annotations

import functools
import threading
import warnings

import numpy as np

from deepatlas.errors import InputError
from deepatlas.preprocessing import TabularPreprocessor, is_frame, is_missing, needs_preprocessing

FIT_METHODS = ("fit", "fit_transform")
INPUT_METHODS = (
    "predict",
    "predict_proba",
    "predict_log_proba",
    "decision_function",
    "transform",
    "score",
    "score_samples",
)
_active = threading.local()


def _names(frame) -> list[str] | None:
    """A frame's column names when they are all strings (scikit-learn ignores mixed names)."""
    cols = list(frame.columns)
    return [str(c) for c in cols] if cols and all(isinstance(c, str) for c in cols) else None


def check_labels_present(y) -> None:
    """Refuse labels with a missing value (``None``, ``NaN``, ``pd.NA``) among text labels."""
    if y is None or isinstance(y, (str, bytes)):
        return
    try:
        arr = np.asarray(y, dtype=object) if not isinstance(y, np.ndarray) else y
    except (TypeError, ValueError):
        return
    if arr.dtype != object:
        return
    flat = arr.reshape(-1) if arr.ndim else arr.reshape(1)
    missing = [i for i, v in enumerate(flat) if is_missing(v) and not isinstance(v, str)]
    if missing:
        raise InputError(
            f"y has {len(missing)} missing label(s) (first at row {missing[0]}); drop those rows or give them "
            "a label before fitting."
        )


def align_frame(frame, names: list[str], owner: str, allowed_extra=()) -> object:
    """``frame``'s columns in the order ``names``; missing and unexpected columns refused by name."""
    given = _names(frame) or [str(c) for c in frame.columns]
    missing = [n for n in names if n not in given]
    unexpected = [c for c in given if c not in names and c not in allowed_extra]
    repeated = sorted({c for c in given if given.count(c) > 1})
    if missing or unexpected or repeated:
        parts = [
            f"{what} {', '.join(map(repr, those[:8]))}{', ...' if len(those) > 8 else ''}"
            for what, those in (("missing", missing), ("unexpected", unexpected), ("repeated", repeated))
            if those
        ]
        raise InputError(
            f"The columns of X do not match the feature names {owner} was fitted with: {'; '.join(parts)} "
            f"(columns are matched by name, in any order; fitted with {len(names)}: "
            f"{', '.join(names[:8])}{', ...' if len(names) > 8 else ''})."
        )
    frame = frame.set_axis(given, axis=1)
    return frame[names] if given != names else frame


class InputSchemaMixin:
    """See the module docstring."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in FIT_METHODS:
            if callable(cls.__dict__.get(name)) and not getattr(cls.__dict__[name], "_schema_wrapped", False):
                setattr(cls, name, _wrap_fit(cls.__dict__[name]))
        for name in INPUT_METHODS:
            if callable(cls.__dict__.get(name)) and not getattr(cls.__dict__[name], "_schema_wrapped", False):
                setattr(cls, name, _wrap_input(cls.__dict__[name]))

    # ---- used by deepatlas train and by save_model/load --------------------------------------
    def set_input_schema(self, preprocessor: TabularPreprocessor | None, names=None) -> None:
        """Record how raw columns become this (already fitted) model's input: the CLI fits the
        preprocessor on the training rows and the model on its output."""
        names = list(preprocessor.feature_names_in_) if preprocessor is not None else names
        if names:
            self.feature_names_in_ = np.asarray(names, dtype=object)
        if preprocessor is not None:
            self.preprocessor_ = preprocessor

    def _input_schema_config(self) -> dict:
        out: dict = {}
        names = getattr(self, "feature_names_in_", None)
        if names is not None:
            out["feature_names_in"] = [str(n) for n in names]
        pre = getattr(self, "preprocessor_", None)
        if pre is not None:
            out["preprocessing"] = pre.to_config()
        return out

    def _restore_input_schema(self, config: dict, where: str) -> None:
        if config.get("preprocessing") is not None:
            self.preprocessor_ = TabularPreprocessor.from_config(config["preprocessing"], where)
        if config.get("feature_names_in") is not None:
            self.feature_names_in_ = np.asarray([str(n) for n in config["feature_names_in"]], dtype=object)

    def _encode_frame(self, frame, *, warn: bool = True):
        """A DataFrame as the numbers the network reads: columns matched by name, then the
        preprocessor (unseen categories and missing values reported as a warning)."""
        owner = type(self).__name__
        names = getattr(self, "feature_names_in_", None)
        pre = getattr(self, "preprocessor_", None)
        if names is not None:
            frame = align_frame(frame, list(names), owner, pre.dropped_ if pre is not None else ())
        elif _names(frame) is not None:
            warnings.warn(
                f"X has feature names, but {owner} was fitted without feature names", UserWarning, stacklevel=3
            )
        if pre is None:
            return frame.to_numpy(), {}
        X, report = pre.transform(frame)
        if warn:
            for line in TabularPreprocessor.describe(report):
                warnings.warn(f"{owner}: {line}", UserWarning, stacklevel=4)
        return X, report


def _reads_tables(est) -> bool:
    return getattr(est, "_input_kind", "features") == "features"


def _outermost(est) -> bool:
    busy = getattr(_active, "ids", None)
    if busy is None:
        busy = _active.ids = set()
    return id(est) not in busy


class _Busy:
    def __init__(self, est):
        self.key = id(est)

    def __enter__(self):
        _active.ids.add(self.key)

    def __exit__(self, *exc):
        _active.ids.discard(self.key)


def _split_x(args, kwargs):
    if args:
        return args[0], lambda X: ((X, *args[1:]), kwargs)
    if "X" in kwargs:
        return kwargs["X"], lambda X: (args, {**kwargs, "X": X})
    return None, lambda X: (args, kwargs)


def _wrap_fit(fn):
    @functools.wraps(fn)
    def fit(self, *args, **kwargs):
        if not _outermost(self):
            return fn(self, *args, **kwargs)
        X, rebuild = _split_x(args, kwargs)
        y = args[1] if len(args) > 1 else kwargs.get("y")
        check_labels_present(y)
        names, pre = None, None
        if is_frame(X) and _reads_tables(self):
            names = _names(X)
            if needs_preprocessing(X):
                pre = TabularPreprocessor(style="api").fit(X, where="X")
                X = pre.transform(X)[0]
                names = pre.feature_names_in_
            else:
                X = X.to_numpy()
            validation = kwargs.get("validation_data")
            if validation is not None and is_frame(validation[0]):
                Xv = align_frame(validation[0], list(names or []), type(self).__name__) if names else validation[0]
                Xv = pre.transform(Xv, where="validation_data")[0] if pre is not None else Xv.to_numpy()
                kwargs = {**kwargs, "validation_data": (Xv, *validation[1:])}
            args, kwargs = rebuild(X) if args or "X" in kwargs else (args, kwargs)
        with _Busy(self):
            result = fn(self, *args, **kwargs)
        for attr in ("feature_names_in_", "preprocessor_"):
            if hasattr(self, attr):
                delattr(self, attr)
        if names:
            self.feature_names_in_ = np.asarray(names, dtype=object)
        if pre is not None:
            self.preprocessor_ = pre
        return result

    fit._schema_wrapped = True
    return fit


def _wrap_input(fn):
    @functools.wraps(fn)
    def method(self, *args, **kwargs):
        if not _outermost(self) or not _reads_tables(self):
            return fn(self, *args, **kwargs)
        X, rebuild = _split_x(args, kwargs)
        if is_frame(X):
            X, _ = self._encode_frame(X)
            args, kwargs = rebuild(X)
        elif (
            X is not None
            and getattr(self, "feature_names_in_", None) is not None
            and getattr(self, "preprocessor_", None) is None
        ):
            warnings.warn(
                f"X does not have valid feature names, but {type(self).__name__} was fitted with feature names",
                UserWarning,
                stacklevel=2,
            )
        with _Busy(self):
            return fn(self, *args, **kwargs)

    method._schema_wrapped = True
    return method

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
* ``preprocess`` (a parameter of every estimator, so ``clone``, ``GridSearchCV`` and every CV fold
  carry it) sets the preprocessor's options: ``{"drop": [...], "categorical": "auto" | [...],
  "impute": "median" | "mean" | "most_frequent" | "none", "id": COL}``, the CLI's ``--drop``,
  ``--categorical``, ``--impute`` and ``--id``. When set, every DataFrame goes through a
  preprocessor fitted with them; an array is taken as the numbers themselves.
* ``predict``, ``predict_proba``, ``predict_log_proba`` and ``decision_function`` of a
  standardising model warn (:class:`~deepatlas.preprocessing.FarFromTrainingWarning`) when inputs lie
  far outside the training data, naming each far column and how far
  (:func:`~deepatlas.preprocessing.far_from_training`).
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

from deepatlas._validation import Constraint
from deepatlas.errors import InputError
from deepatlas.preprocessing import (
    OPTIONS,
    FarFromTrainingWarning,
    TabularPreprocessor,
    check_options,
    far_from_training,
    is_frame,
    is_missing,
    needs_preprocessing,
)

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
PREDICT_METHODS = ("predict", "predict_proba", "predict_log_proba", "decision_function")
"""The input methods that warn when inputs lie far outside the training data."""
_active = threading.local()


class PreprocessOptions(Constraint):
    """The ``preprocess`` parameter: None or a dict of :data:`deepatlas.preprocessing.OPTIONS`."""

    description = f"None or a dict with keys among {', '.join(OPTIONS)}"

    def accepts(self, value) -> bool:
        if value is None:
            return True
        try:
            check_options(value)
        except InputError:
            return False
        return True


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
    """See the module docstring (the ``preprocess`` parameter is declared on
    :class:`~deepatlas.estimator.Estimator`, with the other settings every family shares)."""

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

    def _preprocess_options(self) -> dict | None:
        """The validated ``preprocess`` parameter as the preprocessor's arguments (None when unset)."""
        value = getattr(self, "preprocess", None)
        if value is None:
            return None
        owner = type(self).__name__
        options = check_options(value, f"The 'preprocess' parameter of {owner}")
        if not _reads_tables(self):
            raise InputError(
                f"The 'preprocess' parameter of {owner} applies to models that read feature tables; {owner} "
                f"reads {getattr(self, '_input_kind', 'features')}. Leave it None."
            )
        return options

    def far_from_training(self, X) -> str | None:
        """One sentence when the (encoded) inputs ``X`` lie far outside the training data, else None:
        each far column named with how far for a model fitted with column names (the numeric ones
        of an encoded table), the share of far values otherwise. Only standardising models keep
        the training mean and scale this needs."""
        if not getattr(self, "standardize", False) or not _reads_tables(self):
            return None
        mean, scale = getattr(self, "mean_", None), getattr(self, "scale_", None)
        pre = getattr(self, "preprocessor_", None)
        names = getattr(self, "feature_names_in_", None)
        if pre is not None:
            return far_from_training(X, mean, scale, pre.feature_names_out_, range(len(pre.numeric_)))
        return far_from_training(X, mean, scale, None if names is None else list(names))

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
        options = self._preprocess_options()
        names, pre = None, None
        if is_frame(X) and _reads_tables(self):
            names = _names(X)
            if options is not None or needs_preprocessing(X):
                pre = TabularPreprocessor(**(options or {}), style="api").fit(X, where="X")
                X = pre.transform(X)[0]
                names = pre.feature_names_in_
            else:
                X = X.to_numpy()
            validation = kwargs.get("validation_data")
            args, kwargs = rebuild(X) if args or "X" in kwargs else (args, kwargs)
            if validation is not None and is_frame(validation[0]):  # encoded as the training frame
                Xv = validation[0]
                if names:
                    extra = pre.dropped_ if pre is not None else ()
                    Xv = align_frame(Xv, list(names), type(self).__name__, extra)
                Xv = pre.transform(Xv, where="validation_data")[0] if pre is not None else Xv.to_numpy()
                kwargs = {**kwargs, "validation_data": (Xv, *validation[1:])}
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
    far_check = fn.__name__ in PREDICT_METHODS

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
        if far_check and X is not None:
            far = self.far_from_training(X)
            if far:
                warnings.warn(f"{type(self).__name__}: {far}", FarFromTrainingWarning, stacklevel=2)
        with _Busy(self):
            return fn(self, *args, **kwargs)

    method._schema_wrapped = True
    return method

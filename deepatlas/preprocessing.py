"""Tabular preprocessing: the raw columns of a CSV or a DataFrame to the numbers a network reads.

:class:`TabularPreprocessor` decides what each column is (numeric, categorical, or a problem),
then encodes with scikit-learn: a :class:`~sklearn.compose.ColumnTransformer` whose numeric
columns go through a :class:`~sklearn.impute.SimpleImputer` and whose categorical columns go
through an imputer and a :class:`~sklearn.preprocessing.OneHotEncoder` (categories unseen in
training encode as all zeros, and are counted). It is fitted on the training rows only.

Nothing is pickled: :meth:`TabularPreprocessor.to_config` writes the fitted statistics (the
imputers' ``statistics_``, the encoders' ``categories_``, the columns and options) as JSON, and
:meth:`TabularPreprocessor.from_config` rebuilds the same transformer from them: each column's
imputer becomes a ``strategy="constant"`` imputer holding the learnt value and each encoder gets
its categories explicitly, so the rebuilt transformer gives the same numbers without seeing the
training data again.

Every problem of a file is reported at once, in one line that names each problem column and the
option that fixes it (``--drop``, ``--categorical``, ``--impute``); a column that looks like an
identifier (a different integer in every row) is used, with a note. An identifier named as such
(``--id COL``, ``preprocess={"id": COL}``) is left out of the features and recorded, so that
``deepatlas predict`` copies it into its output.

:func:`far_from_training` is the one check of inputs far outside the training data (raw 0-255
pixels into a model trained on 0-1), used by the estimators' ``predict`` (a
:class:`FarFromTrainingWarning`), by ``deepatlas predict`` and by the server.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from deepatlas.errors import InputError

IMPUTE = ("median", "mean", "most_frequent", "none")
OPTIONS = ("drop", "categorical", "impute", "id")
"""The keys of an estimator's ``preprocess`` parameter (the CLI's ``--drop``, ``--categorical``,
``--impute``, ``--id``)."""
MISSING_MARKERS = ("", "na", "n/a", "nan", "null", "none", "?")
"""Cells read as missing values in a CSV (case-insensitive, after stripping spaces)."""
MAX_AUTO_CATEGORIES = 50
"""``--categorical auto`` encodes a text column with at most this many distinct values (and at
most half as many as its rows); a column with more is a problem to resolve, not a guess."""
_FORMAT = 1


def is_frame(X) -> bool:
    """True for a pandas DataFrame (checked without importing pandas)."""
    return type(X).__module__.split(".")[0] == "pandas" and hasattr(X, "columns") and hasattr(X, "dtypes")


def is_missing(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, str):
        return value.strip().lower() in MISSING_MARKERS
    return type(value).__name__ in ("NAType", "NaTType")


def category_text(value) -> str:
    """One spelling per category: 3, 3.0 and "3" are the same category "3"."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    text = str(value).strip()
    number = _number(text)
    if number is not None and math.isfinite(number) and number.is_integer():
        return str(int(number))
    return text


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def frame_from_rows(header: list[str], rows: list[list[str]]):
    """A DataFrame from CSV cells (strings): a column whose every non-missing cell is a number
    becomes float64 (missing cells NaN), any other column stays text (missing cells None)."""
    import pandas as pd

    data = {}
    for j, name in enumerate(header):
        cells = [row[j].strip() for row in rows]
        missing = [is_missing(c) for c in cells]
        numbers = [None if m else _number(c) for c, m in zip(cells, missing)]
        if all(m or v is not None for m, v in zip(missing, numbers)):
            data[name] = pd.Series([np.nan if v is None else v for v in numbers], dtype="float64")
        else:
            data[name] = pd.Series([None if m else c for c, m in zip(cells, missing)], dtype=object)
    return pd.DataFrame(data, columns=header)


def _missing_mask(column) -> np.ndarray:
    return np.array([is_missing(v) for v in column], dtype=bool)


def _is_numeric(series) -> bool:
    import pandas as pd

    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return False
    return bool(pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype))


def _is_category_dtype(series) -> bool:
    import pandas as pd

    return isinstance(series.dtype, pd.CategoricalDtype)


def check_options(value, what: str = "preprocess") -> dict:
    """``value`` (a dict with some of the keys :data:`OPTIONS`) as the keyword arguments of
    :class:`TabularPreprocessor`; a wrong key or value is one :class:`InputError` naming ``what``."""
    if not isinstance(value, dict):
        raise InputError(f"{what} must be None or a dict with keys among {', '.join(OPTIONS)}. Got {value!r} instead.")
    unknown = [k for k in value if k not in OPTIONS]
    if unknown:
        raise InputError(f"{what} has unknown key(s) {_shown(unknown)}; the keys are {', '.join(OPTIONS)}.")

    def columns(key):
        v = value.get(key, [])
        v = [v] if isinstance(v, str) else v
        if not isinstance(v, (list, tuple)) or not all(isinstance(c, str) and c for c in v):
            raise InputError(f"{what}[{key!r}] must be a list of column names (strings). Got {value[key]!r} instead.")
        return list(v)

    categorical = value.get("categorical", "auto")
    categorical = "auto" if categorical == "auto" else columns("categorical")
    impute = value.get("impute", "median")
    if impute not in IMPUTE:
        raise InputError(f"{what}['impute'] must be one of {', '.join(IMPUTE)}. Got {impute!r} instead.")
    id_column = value.get("id")
    if id_column is not None and (not isinstance(id_column, str) or not id_column):
        raise InputError(f"{what}['id'] must be None or a column name (a string). Got {id_column!r} instead.")
    return {"drop": columns("drop"), "categorical": categorical, "impute": impute, "id_column": id_column}


def _shown(values, limit: int = 3) -> str:
    values = list(values)
    text = ", ".join(repr(v) for v in values[:limit])
    return text if len(values) <= limit else f"{text}, ..."


class TabularPreprocessor:
    """Fit-once encoding of a table's raw columns (see the module docstring).

    Parameters
    ----------
    drop : columns to leave out (an identifier, a leak of the target, free text).
    categorical : ``"auto"`` (text columns with few distinct values, and pandas ``category``
        columns), or a list of the columns to one-hot encode (numbers included, e.g. a zip code);
        a text column not listed is then a problem.
    impute : how missing values are filled: ``"median"`` (default), ``"mean"`` or
        ``"most_frequent"`` for numeric columns (categorical columns always take their most
        frequent category), or ``"none"``: a missing value is an error.
    id_column : an identifier column: left out of the features (as ``drop``) and recorded, so that
        ``deepatlas predict`` copies it into its output.
    style : ``"cli"`` names the command-line options in its messages, ``"api"`` what to do in Python.
    """

    def __init__(
        self, drop=(), categorical="auto", impute: str = "median", id_column: str | None = None, *, style: str = "cli"
    ):
        self.drop = [str(c) for c in drop]
        self.id_column = None if id_column is None else str(id_column)
        self.categorical = categorical if categorical == "auto" else [str(c) for c in categorical]
        if impute not in IMPUTE:
            raise InputError(f"impute must be one of {', '.join(IMPUTE)}. Got {impute!r} instead.")
        self.impute = impute
        self.style = style
        self.notes_: list[str] = []

    # ---- messages -------------------------------------------------------------------------
    def _fix(self, what: str, column: str) -> str:
        cli = self.style == "cli"
        fixes = {
            "drop": f"--drop {column}" if cli else f"drop it (preprocess={{'drop': [{column!r}]}})",
            "categorical": f"--categorical {column}"
            if cli
            else f"encode it (preprocess={{'categorical': [{column!r}]}})",
            "impute": "--impute median (or mean, most_frequent)"
            if cli
            else "impute them (preprocess={'impute': 'median'}, or mean, most_frequent)",
        }
        return fixes[what]

    def _option(self, key: str) -> str:
        """How a message names an option: ``--drop`` on the command line, ``preprocess['drop']`` in Python."""
        return f"--{key}" if self.style == "cli" else f"preprocess[{key!r}]"

    def _row(self, frame, mask) -> str:
        """Where the first marked row is: its CSV row (header = row 1) or its DataFrame index."""
        label = frame.index[int(np.flatnonzero(mask)[0])]
        return f"first in row {int(label) + 2}" if self.style == "cli" else f"first at index {label!r}"

    # ---- fitting --------------------------------------------------------------------------
    def fit(self, frame, *, where: str = "X"):
        """Decide every column's role on the training rows ``frame`` (a DataFrame), refuse all the
        problems at once (one :class:`InputError`), then fit the imputers and encoders."""
        from sklearn.impute import SimpleImputer
        from sklearn.preprocessing import OneHotEncoder

        columns = [str(c) for c in frame.columns]
        frame = frame.set_axis(columns, axis=1)
        problems: list[str] = []
        self.notes_ = []
        for c in self.drop:
            if c not in columns:
                problems.append(f"{self._option('drop')} names {c!r}, which is not a column")
        if self.id_column is not None and self.id_column not in columns:
            problems.append(f"{self._option('id')} names {self.id_column!r}, which is not a column")
        listed = [] if self.categorical == "auto" else self.categorical
        for c in listed:
            if c not in columns:
                problems.append(f"{self._option('categorical')} names {c!r}, which is not a column")
        repeated = sorted({c for c in columns if columns.count(c) > 1})
        if repeated:
            problems.append(f"column name(s) {_shown(repeated)} repeated; give every column its own name")
        numeric, categorical = [], []
        n = len(frame)
        for c in columns:
            if c in self.drop or c == self.id_column or c in repeated:
                continue
            series = frame[c]
            missing = _missing_mask(series.to_numpy(dtype=object))
            n_missing = int(missing.sum())
            if n_missing == n:
                problems.append(f"column {c!r} is empty (every value missing): {self._fix('drop', c)}")
                continue
            is_num = _is_numeric(series) and not _is_category_dtype(series)
            values = series.to_numpy(dtype=object)[~missing]
            distinct = {category_text(v) for v in values}
            if c in listed or (self.categorical == "auto" and _is_category_dtype(series)):
                categorical.append(c)
            elif not is_num:
                example = next(iter(values))
                if self.categorical != "auto":
                    problems.append(
                        f"column {c!r} holds text (e.g. {str(example)!r}): {self._fix('categorical', c)} to encode "
                        f"it{' (or --categorical auto)' if self.style == 'cli' else ''}, or {self._fix('drop', c)}"
                    )
                    continue
                if len(distinct) == len(values) and len(values) >= 10:
                    problems.append(
                        f"column {c!r} holds text with a different value in every row (an identifier?): "
                        f"{self._fix('drop', c)}"
                    )
                    continue
                if len(distinct) > min(MAX_AUTO_CATEGORIES, max(2, len(values) // 2)):
                    problems.append(
                        f"column {c!r} holds text with {len(distinct)} distinct values in {len(values)} rows, too many "
                        f"to encode as categories unasked: {self._fix('drop', c)}, or {self._fix('categorical', c)} "
                        "to one-hot encode them anyway"
                    )
                    continue
                categorical.append(c)
            else:
                numeric.append(c)
                if n >= 10 and n_missing == 0 and len(distinct) == n and _integral(values):
                    hint = f"{self._fix('drop', c)} if it is one" if self.style == "cli" else "drop it if it is one"
                    self.notes_.append(
                        f"column {c!r} looks like an identifier (a different integer in every row); "
                        f"it is used as a feature: {hint}"
                    )
            if n_missing and self.impute == "none":
                problems.append(
                    f"column {c!r} has {n_missing} missing value(s) ({self._row(frame, missing)}): "
                    f"{self._fix('impute', c)}, or {self._fix('drop', c)}"
                )
        if not problems and not numeric and not categorical:
            problems.append("no feature column is left to train on")
        if problems:
            raise InputError(f"{where} has {_count(problems, 'problem')}: " + "; ".join(problems) + ".")

        self.numeric_ = numeric
        self.categorical_ = categorical
        self.feature_names_in_ = [c for c in columns if c in numeric or c in categorical]
        self.dropped_ = [c for c in (*self.drop, self.id_column) if c is not None and c in columns]
        # The statistics come from scikit-learn, fitted on these (training) rows only.
        self.fill_: dict[str, Any] = {}
        if numeric:
            values = frame[numeric].to_numpy(dtype=np.float64)
            if self.impute != "none":
                imputer = SimpleImputer(strategy=self.impute, keep_empty_features=True).fit(values)
                self.fill_.update({c: float(s) for c, s in zip(numeric, imputer.statistics_)})
        self.categories_: dict[str, list[str]] = {}
        if categorical:
            texts = self._category_texts(frame, categorical)
            imputer = SimpleImputer(strategy="most_frequent", missing_values=None).fit(texts)
            self.fill_.update({c: str(s) for c, s in zip(categorical, imputer.statistics_)})
            encoder = OneHotEncoder(handle_unknown="ignore").fit(imputer.transform(texts))
            self.categories_ = {c: [str(v) for v in cats] for c, cats in zip(categorical, encoder.categories_)}
        self._build()
        imputed = {c: int(_missing_mask(frame[c].to_numpy(dtype=object)).sum()) for c in self.feature_names_in_}
        filled = [f"{c} ({k})" for c, k in imputed.items() if k]
        if filled:
            self.notes_.append(
                f"filled {sum(imputed.values())} missing value(s) with training statistics "
                f"({self.impute} for numbers, the most frequent category for text): {', '.join(filled)}"
            )
        if categorical:
            shown = ", ".join(f"{c} ({len(self.categories_[c])})" for c in categorical)
            self.notes_.append(f"one-hot encoded {len(categorical)} categorical column(s): {shown}")
        return self

    @staticmethod
    def _category_texts(frame, columns) -> np.ndarray:
        out = np.empty((len(frame), len(columns)), dtype=object)
        for k, c in enumerate(columns):
            out[:, k] = [None if is_missing(v) else category_text(v) for v in frame[c].to_numpy(dtype=object)]
        return out

    def _build(self) -> None:
        """The transformer itself: one imputer (learnt value as a constant) per numeric column and
        one imputer + encoder (explicit categories) per categorical column, in one ColumnTransformer.
        It has nothing left to learn, so it is fitted on one row of the learnt values."""
        import pandas as pd
        from sklearn.compose import ColumnTransformer
        from sklearn.impute import SimpleImputer
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import OneHotEncoder

        parts = []  # steps are named by position: a column name may hold '__', which sklearn refuses
        for k, c in enumerate(self.numeric_):
            if c in self.fill_:
                parts.append((f"num{k}", SimpleImputer(strategy="constant", fill_value=self.fill_[c]), [c]))
            else:
                parts.append((f"num{k}", "passthrough", [c]))
        for k, c in enumerate(self.categorical_):
            encoder = OneHotEncoder(categories=[self.categories_[c]], handle_unknown="ignore", sparse_output=False)
            imputer = SimpleImputer(strategy="constant", fill_value=self.fill_[c], missing_values=None)
            parts.append((f"cat{k}", make_pipeline(imputer, encoder), [c]))
        self.transformer_ = ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0)
        row = {c: [self.fill_.get(c, 0.0)] for c in self.numeric_}
        row.update({c: np.array([self.categories_[c][0]], dtype=object) for c in self.categorical_})
        self.transformer_.fit(pd.DataFrame(row, columns=self.feature_names_in_))
        self.feature_names_out_ = [f"{c}={v}" for c in self.categorical_ for v in self.categories_[c]]
        self.feature_names_out_ = list(self.numeric_) + self.feature_names_out_

    # ---- applying -------------------------------------------------------------------------
    def transform(self, frame, *, where: str = "X") -> tuple[np.ndarray, dict]:
        """The encoded float32 array of ``frame`` (its columns matched by name) and a report:
        ``{"missing": {column: count}, "unseen": {column: {value: count}}}``."""
        import pandas as pd

        columns = [str(c) for c in frame.columns]
        frame = frame.set_axis(columns, axis=1)
        absent = [c for c in self.feature_names_in_ if c not in columns]
        if absent:
            raise InputError(f"{where} is missing the training column(s) {_shown(absent, 8)}.")
        report: dict[str, dict] = {"missing": {}, "unseen": {}}
        data: dict[str, Any] = {}
        problems: list[str] = []  # every problem column of the file, reported at once
        for c in self.numeric_:
            raw = frame[c].to_numpy(dtype=object)
            missing = _missing_mask(raw)
            numbers = np.full(len(raw), np.nan)
            bad = np.zeros(len(raw), dtype=bool)
            for i, v in enumerate(raw):
                if missing[i]:
                    continue
                x = v if isinstance(v, (int, float, np.integer, np.floating, bool)) else _number(str(v))
                if x is None or not math.isfinite(float(x)):
                    bad[i] = True
                else:
                    numbers[i] = float(x)
            if bad.any():
                first = raw[int(np.flatnonzero(bad)[0])]
                problems.append(
                    f"column {c!r} is numeric in training, but holds {first!r} "
                    f"({int(bad.sum())} such value(s), {self._row(frame, bad)})"
                )
            if missing.any():
                if c not in self.fill_:
                    problems.append(
                        f"column {c!r} has {int(missing.sum())} missing value(s) ({self._row(frame, missing)}), "
                        "and the model was trained without imputation (impute='none')"
                    )
                report["missing"][c] = int(missing.sum())
            data[c] = numbers
        if problems:
            raise InputError(f"{where} has {_count(problems, 'problem')}: " + "; ".join(problems) + ".")
        texts = self._category_texts(frame, self.categorical_)
        for k, c in enumerate(self.categorical_):
            col = texts[:, k]
            missing = np.array([v is None for v in col])
            if missing.any():
                report["missing"][c] = int(missing.sum())
            known = set(self.categories_[c])
            unseen: dict[str, int] = {}
            for v in col[~missing]:
                if v not in known:
                    unseen[v] = unseen.get(v, 0) + 1
            if unseen:
                report["unseen"][c] = unseen
            data[c] = col
        X = self.transformer_.transform(pd.DataFrame(data, columns=self.feature_names_in_))
        return np.asarray(X, dtype=np.float32), report

    @staticmethod
    def describe(report: dict) -> list[str]:
        """One sentence per kind of fix applied at predict time (for a note or a warning)."""
        lines = []
        if report.get("missing"):
            parts = ", ".join(f"{c} ({k})" for c, k in report["missing"].items())
            lines.append(f"filled {sum(report['missing'].values())} missing value(s) from training statistics: {parts}")
        if report.get("unseen"):
            parts = "; ".join(
                f"{c}: {sum(u.values())} ({_shown(sorted(u), 3)})" for c, u in sorted(report["unseen"].items())
            )
            total = sum(sum(u.values()) for u in report["unseen"].values())
            lines.append(f"{total} value(s) of categories unseen in training, encoded as all zeros: {parts}")
        return lines

    # ---- saving ---------------------------------------------------------------------------
    def to_config(self) -> dict:
        return {
            "format": _FORMAT,
            "impute": self.impute,
            "categorical": self.categorical,
            "drop": self.drop,
            "id": self.id_column,
            "numeric": self.numeric_,
            "categories": self.categories_,
            "fill": self.fill_,
            "columns": self.feature_names_in_,
        }

    @classmethod
    def from_config(cls, config: dict, where: str = "preprocessing") -> TabularPreprocessor:
        try:
            pre = cls(
                drop=config["drop"],
                categorical=config["categorical"],
                impute=config["impute"],
                id_column=config.get("id"),  # runs saved before --id record none
            )
            pre.numeric_ = [str(c) for c in config["numeric"]]
            pre.categories_ = {str(c): [str(v) for v in vs] for c, vs in config["categories"].items()}
            pre.categorical_ = list(pre.categories_)
            pre.fill_ = dict(config["fill"])
            pre.feature_names_in_ = [str(c) for c in config["columns"]]
            pre.dropped_ = [c for c in (*pre.drop, pre.id_column) if c is not None]
            if sorted(pre.feature_names_in_) != sorted(pre.numeric_ + pre.categorical_):
                raise ValueError("its columns are not its numeric and categorical columns")
            if any(not cats for cats in pre.categories_.values()):
                raise ValueError("a categorical column has no categories")
            pre._build()
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, InputError):
                raise
            detail = f"no {exc}" if isinstance(exc, KeyError) else str(exc)
            raise InputError(f"{where}: the saved preprocessing cannot be rebuilt ({detail}).") from None
        return pre

    def __repr__(self) -> str:
        if not hasattr(self, "feature_names_in_"):
            return f"TabularPreprocessor(drop={self.drop}, categorical={self.categorical!r}, impute={self.impute!r})"
        return (
            f"TabularPreprocessor({len(self.numeric_)} numeric, {len(self.categorical_)} categorical column(s) "
            f"-> {len(self.feature_names_out_)} features, impute={self.impute!r})"
        )


def _integral(values) -> bool:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return bool(np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)))


def _count(items: list, word: str) -> str:
    return f"{len(items)} {word}{'s' if len(items) != 1 else ''}"


def needs_preprocessing(frame) -> bool:
    """A DataFrame with a non-numeric column or a missing value (a numeric frame goes straight in)."""
    for c in frame.columns:
        series = frame[c]
        if not _is_numeric(series) or _is_category_dtype(series):
            return True
        if bool(series.isna().any()):
            return True
    return False


def run_options(config: dict | None) -> dict | None:
    """The ``drop``/``categorical``/``impute``/``id`` options a run's config.json records, so that a
    reload of its data (its own split) refits the very same encoding; None without any."""
    saved = (config or {}).get("preprocessing")
    if not isinstance(saved, dict):
        return None
    return {
        "drop": saved.get("drop", []),
        "categorical": saved.get("categorical", "auto"),
        "impute": saved.get("impute", "median"),
        "id_column": saved.get("id"),
    }


# ---- inputs far from the training data ----------------------------------------------------------
FAR_Z, FAR_SHARE = 10.0, 0.05
"""An input value is far from the training data at more than ``FAR_Z`` training standard
deviations from the training mean; a warning comes when over ``FAR_SHARE`` of the values (of all
of them, or of one named column) are."""
FAR_ROWS = 2_048
"""At most this many rows of a batch are judged (evenly spaced), so the check stays cheap."""


class FarFromTrainingWarning(UserWarning):
    """Inputs lie far outside the training data (e.g. raw 0-255 pixels into a model trained on 0-1):
    the predictions are extrapolations. Filter it with ``warnings.simplefilter("ignore", FarFromTrainingWarning)``."""


def far_from_training(X, mean, scale, names=None, columns=None) -> str | None:
    """One sentence when inputs lie far outside the training data, from the training ``mean`` and
    ``scale`` (one per input value, or per feature), else None.

    Without ``names`` the values are judged together (an image: over ``FAR_SHARE`` of its pixels
    far). With ``names`` (one per column of the 2-D ``X``) each column is judged on its own and
    every far column is named with how far it lies; ``columns`` limits the check to those column
    indices (the numeric columns of an encoded table: a rare category's one-hot column is far from
    its mean by design)."""
    if mean is None or scale is None:
        return None
    if isinstance(X, np.ndarray) and len(X) > FAR_ROWS:  # a large batch: judged on evenly spaced rows
        X = X[np.linspace(0, len(X) - 1, FAR_ROWS).astype(np.int64)]
    try:
        flat = np.asarray(X, dtype=np.float32).reshape(len(X), -1)
        mean = np.asarray(mean, dtype=np.float32).reshape(1, -1)
        scale = np.asarray(scale, dtype=np.float32).reshape(1, -1)
    except (TypeError, ValueError):
        return None
    if not flat.size or flat.shape[1] != mean.shape[1] or scale.shape != mean.shape:
        return None
    scale = np.where(scale > 0, scale, 1.0)
    # far means |x - mean| > FAR_Z * scale; NaN is never far, +-inf always (no division on the common path)
    far_mask = np.abs(flat - mean) > FAR_Z * scale

    def z_of(values, m, sd) -> np.ndarray:  # standard deviations from the mean, only for what is reported
        with np.errstate(over="ignore", invalid="ignore"):
            z = np.abs(values.astype(np.float64) - m) / sd
        return np.nan_to_num(z, nan=0.0, posinf=np.finfo(np.float64).max)

    if names is None or len(names) != flat.shape[1]:
        share = float(far_mask.mean())
        if share <= FAR_SHARE:
            return None
        z_max = float(z_of(flat, mean.astype(np.float64), scale.astype(np.float64)).max())
        return (
            f"{share:.0%} of the input values lie more than {FAR_Z:g} training standard deviations from the "
            f"training mean (up to {z_max:.0f}); were they scaled as the training data was "
            f"(range {float(np.nanmin(flat)):.3g} to {float(np.nanmax(flat)):.3g} here)?"
        )
    shares = far_mask.mean(axis=0)
    far = []
    for j in range(flat.shape[1]) if columns is None else columns:
        share = float(shares[j])
        if share > FAR_SHARE:
            col, m, sd = flat[:, j], float(mean[0, j]), float(scale[0, j])
            far.append(
                f"{names[j]!r} ({share:.0%} of its values, up to {float(z_of(col, m, sd).max()):.0f} standard "
                f"deviations; {float(np.nanmin(col)):.4g} to {float(np.nanmax(col)):.4g} here, training mean "
                f"{m:.4g}, standard deviation {sd:.4g})"
            )
    if not far:
        return None
    return (
        f"{_count(far, 'input column')} {'lies' if len(far) == 1 else 'lie'} more than {FAR_Z:g} training "
        "standard deviations from the training "
        f"mean: {'; '.join(far)}; were they scaled as the training data was?"
    )

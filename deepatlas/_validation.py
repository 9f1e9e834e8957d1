"""Declarative checks of estimator parameters, with one message template.

Each estimator lists ``_parameter_constraints = {"lr": Interval(float, 0, None, "neither"), ...}``;
:func:`validate_params` checks them at the start of ``fit`` and raises::

    The 'lr' parameter of MLPClassifier must be a float in the range (0, inf). Got -1 instead.
"""

from __future__ import annotations

import difflib
import math
import numbers
from dataclasses import dataclass
from typing import Any

from deepatlas.errors import InputError, InputTypeError


class Constraint:
    description = "a valid value"

    def accepts(self, value: Any) -> bool:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass(frozen=True)
class Interval(Constraint):
    """A real (``float``) or integer (``int``) value between ``low`` and ``high``.

    ``closed`` is one of ``"both"``, ``"left"``, ``"right"``, ``"neither"``; ``None`` bounds are
    infinite.
    """

    kind: type
    low: float | None
    high: float | None
    closed: str = "both"

    def accepts(self, value: Any) -> bool:
        if isinstance(value, bool):
            return False
        if self.kind is int and not isinstance(value, numbers.Integral):
            return False
        if self.kind is float and not isinstance(value, numbers.Real):
            return False
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.low is not None:
            if value < self.low or (value == self.low and self.closed in ("right", "neither")):
                return False
        if self.high is not None:
            if value > self.high or (value == self.high and self.closed in ("left", "neither")):
                return False
        return True

    @property
    def description(self) -> str:
        name = "an int" if self.kind is int else "a float"
        left = "[" if self.closed in ("both", "left") and self.low is not None else "("
        right = "]" if self.closed in ("both", "right") and self.high is not None else ")"
        low = "-inf" if self.low is None else _fmt(self.low)
        high = "inf" if self.high is None else _fmt(self.high)
        return f"{name} in the range {left}{low}, {high}{right}"


@dataclass(frozen=True)
class Options(Constraint):
    """One of a fixed set of values (usually strings)."""

    values: tuple

    def accepts(self, value: Any) -> bool:
        return isinstance(value, (str, bool, type(None), numbers.Number)) and value in self.values

    @property
    def description(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)


@dataclass(frozen=True)
class TupleOf(Constraint):
    """A non-empty tuple or list of positive ints, such as ``hidden_sizes``."""

    allow_empty: bool = False

    def accepts(self, value: Any) -> bool:
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            value = (value,)
        if not isinstance(value, (tuple, list)) or (not value and not self.allow_empty):
            return False
        return all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0 for v in value)

    @property
    def description(self) -> str:
        return "a tuple of positive ints"


@dataclass(frozen=True)
class Boolean(Constraint):
    def accepts(self, value: Any) -> bool:
        return isinstance(value, bool)

    description = "a bool"


@dataclass(frozen=True)
class NonEmptyString(Constraint):
    def accepts(self, value: Any) -> bool:
        return isinstance(value, str) and bool(value)

    description = "a non-empty str"


@dataclass(frozen=True)
class Matrix(Constraint):
    """A 2-D array of real numbers (anything ``numpy.asarray`` reads as one), such as a dictionary."""

    def accepts(self, value: Any) -> bool:
        import numpy as np

        if isinstance(value, (str, bytes)):
            return False
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            return False
        return arr.ndim == 2 and arr.size > 0

    description = "a 2-D array of numbers"


@dataclass(frozen=True)
class NoneOr(Constraint):
    inner: Constraint

    def accepts(self, value: Any) -> bool:
        return value is None or self.inner.accepts(value)

    @property
    def description(self) -> str:
        return f"None or {self.inner.description}"


@dataclass(frozen=True)
class AnyOf(Constraint):
    options: tuple

    def accepts(self, value: Any) -> bool:
        return any(c.accepts(value) for c in self.options)

    @property
    def description(self) -> str:
        return " or ".join(c.description for c in self.options)


MAX_SEED = 2**32 - 1
"""The largest seed: every library a run seeds accepts 0 <= seed < 2**32 (scikit-learn's
``random_state`` refuses more), so a larger one is refused rather than wrapped."""
SEED = NoneOr(Interval(int, 0, MAX_SEED))


def check_seed(value: Any, what: str = "seed") -> int:
    """``value`` as a seed in [0, 2**32 - 1], or an :class:`InputError` naming ``what``."""
    if not Interval(int, 0, MAX_SEED).accepts(value):
        raise InputError(f"{what} must be an int in the range [0, {MAX_SEED}]. Got {value!r} instead.")
    return int(value)


def check_device_available(device: str, what: str = "device") -> None:
    """An :class:`InputError` (one line) when ``device`` names CUDA or MPS and this PyTorch has
    none, instead of an assertion deep inside torch when the first tensor moves there."""
    import torch

    kind = str(device).split(":")[0]
    if kind == "cuda" and not torch.cuda.is_available():
        why = "was built without CUDA" if torch.version.cuda is None else "finds no CUDA GPU"
        raise InputError(
            f"{what} is {device!r}, but this PyTorch ({torch.__version__}) {why}; use device='cpu' or 'auto'."
        )
    if kind == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise InputError(
                f"{what} is {device!r}, but Apple MPS is not available on this machine; use device='cpu' or 'auto'."
            )


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def validate_params(estimator: Any) -> None:
    """Check every constrained parameter of ``estimator``; raise on the first bad one."""
    owner = type(estimator).__name__
    for name, constraint in _constraints_of(type(estimator)).items():
        value = getattr(estimator, name)
        if not constraint.accepts(value):
            message = f"The {name!r} parameter of {owner} must be {constraint.description}. Got {value!r} instead."
            wrong_type = isinstance(constraint, Interval) and not isinstance(value, numbers.Number)
            raise (InputTypeError if wrong_type else InputError)(message)


def _constraints_of(cls: type) -> dict[str, Constraint]:
    merged: dict[str, Constraint] = {}
    for klass in reversed(cls.__mro__):
        merged.update(getattr(klass, "_parameter_constraints", {}) or {})
    return merged


def suggest(name: str, candidates, n: int = 3) -> str:
    """`` Did you mean 'x'?`` for the closest candidates, or an empty string."""
    close = difflib.get_close_matches(name, list(candidates), n=n, cutoff=0.6)
    if not close:
        return ""
    return " Did you mean " + " or ".join(repr(c) for c in close) + "?"

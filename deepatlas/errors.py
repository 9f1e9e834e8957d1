"""Exceptions that mark a user's mistake, as opposed to a bug in deepatlas.

The CLI turns any :class:`DeepAtlasError` into one line on stderr and exit status 2; every other
exception is an internal error (exit status 1, with a traceback). The classes also subclass the
built-in ``ValueError`` / ``TypeError`` so that Python callers can catch what they expect.
"""


class DeepAtlasError(Exception):
    """Base class for errors caused by the caller's input (data, parameters, files)."""


class InputError(DeepAtlasError, ValueError):
    """A value is out of range, a file is missing or malformed, a name is unknown."""


class InputTypeError(DeepAtlasError, TypeError):
    """A value has the wrong type."""


class TrainingDiverged(DeepAtlasError, FloatingPointError):
    """The training loss became NaN or infinite."""

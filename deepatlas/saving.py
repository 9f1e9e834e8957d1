"""Saving a fitted estimator and rebuilding it, without pickle: ``config.json`` + ``model.safetensors``.

:func:`save_model` writes what an estimator's ``_fitted_state()`` returns; :func:`load` reads
``config.json``, rebuilds the estimator through the registry with the saved parameters and hands
the tensors to ``_restore_state``. This module sits just above the registry, so that a model
(``GAN.save_generator``, ``Agent.save``/``Agent.load``) can save itself without importing the
run-directory layer (:mod:`deepatlas.runs`), which trains, evaluates and reports.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from deepatlas._io import atomic_path, read_json, write_json
from deepatlas._validation import validate_params
from deepatlas.errors import InputError, InputTypeError


def save_model(estimator, directory: str | os.PathLike, *, extra_config: dict | None = None) -> Path:
    """Write ``config.json`` and ``model.safetensors`` for a fitted estimator (with its column
    names and the encoding of raw columns, when it was fitted from a DataFrame)."""
    from safetensors.torch import save_file

    from deepatlas import __version__

    if not hasattr(estimator, "_fitted_state"):
        hint = ""
        if hasattr(estimator, "steps") or hasattr(estimator, "best_estimator_"):
            hint = (
                "; a scikit-learn Pipeline or search is not saved whole: save its fitted deepatlas step "
                "(pipeline[-1], search.best_estimator_), which encodes a DataFrame's raw columns itself"
            )
        raise InputTypeError(
            f"save_model: the argument 'estimator' must be a deepatlas estimator, got {type(estimator).__name__}{hint}."
        )
    directory = Path(directory)
    tensors, fitted = estimator._fitted_state()
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    with atomic_path(directory / "model.safetensors") as tmp:
        save_file(tensors, str(tmp), metadata={"format": "deepatlas", "version": __version__})
    from deepatlas.registry import card_of

    card = card_of(estimator, getattr(estimator, "_task", None)) or card_of(estimator)
    task = getattr(estimator, "_task", None) or (card.task if card is not None else None)
    config = {
        "model": card.name if card is not None else type(estimator).__name__,
        "task": task,
        "class": type(estimator).__name__,
        "params": estimator.get_params(deep=False),
        "fitted": fitted,
        "version": __version__,
    }
    if hasattr(estimator, "_input_schema_config"):
        config.update(estimator._input_schema_config())  # feature_names_in, preprocessing
    config.update(extra_config or {})
    write_json(directory / "config.json", config)
    return directory


def tuple_params(cls, params: dict) -> dict:
    """JSON turns tuples into lists; give tuple-typed defaults their tuples back."""
    defaults = cls().get_params(deep=False)
    return {k: tuple(v) if isinstance(v, list) and isinstance(defaults.get(k), tuple) else v for k, v in params.items()}


# config.json, declared: each key and the JSON types its value may take. ``load`` refuses a
# missing required key, a key not listed here and a value of another type, naming the key.
CONFIG_REQUIRED: dict[str, tuple[type, ...]] = {
    "model": (str,),
    "params": (dict,),
    "fitted": (dict,),
}
CONFIG_OPTIONAL: dict[str, tuple[type, ...]] = {
    "task": (str, type(None)),
    "class": (str,),
    "version": (str,),
    "package_version": (str,),
    "data": (str, type(None)),
    "seed": (int, type(None)),
    "data_task": (str, type(None)),
    "sample_shape": (list, type(None)),
    "feature_names": (list, type(None)),
    "target_name": (str, type(None)),
    "env": (str, type(None)),
    "total_timesteps": (int, type(None)),
    "preset": (str, type(None)),
    "transfer_from": (str,),
    "freeze": (str, int, list, type(None)),
    "feature_names_in": (list, type(None)),
    "preprocessing": (dict, type(None)),
}
_JSON_NAMES = {str: "a string", dict: "an object", list: "a list", int: "an integer", type(None): "null"}


class _MissingEntry(KeyError):
    """A key ``_restore_state`` needs and the run does not have (still a ``KeyError``)."""

    def __init__(self, where: str, key):
        super().__init__(key)
        self.where, self.key = where, key


class _Required(dict):
    """A dict whose missing keys say where they were looked for."""

    def __init__(self, data: dict, where: str):
        super().__init__(data)
        self.where = where

    def __missing__(self, key):
        raise _MissingEntry(self.where, key)


class WrongShape(ValueError):
    """A saved tensor whose shape is not the one the estimator needs (raised by :func:`shaped`)."""

    def __init__(self, name: str, expected: tuple, found: tuple):
        super().__init__(f"tensor {name!r} has shape {found}, expected {expected}")
        self.name, self.expected, self.found = name, expected, found


def shaped(tensors: dict, name: str, shape: tuple):
    """``tensors[name]`` when its shape is ``shape``; else :class:`WrongShape`. For a family whose
    ``_restore_state`` keeps plain tensors (no ``load_state_dict`` to check them)."""
    tensor = tensors[name]
    if tuple(tensor.shape) != tuple(shape):
        raise WrongShape(name, tuple(shape), tuple(tensor.shape))
    return tensor


def _check_config(config, where: str) -> None:
    """Refuse a config.json that does not follow :data:`CONFIG_REQUIRED`/:data:`CONFIG_OPTIONAL`."""
    if not isinstance(config, dict):
        raise InputError(
            f"{where}: expected a JSON object, found {_JSON_NAMES.get(type(config), type(config).__name__)}."
        )
    missing = [k for k in CONFIG_REQUIRED if k not in config]
    if missing:
        raise InputError(f"{where}: missing key(s) {', '.join(map(repr, missing))}.")
    known = CONFIG_REQUIRED | CONFIG_OPTIONAL
    extra = [k for k in config if k not in known]
    if extra:
        raise InputError(f"{where}: unexpected key(s) {', '.join(map(repr, extra))}; known keys: {', '.join(known)}.")
    for key, types in known.items():
        if key in config and (not isinstance(config[key], types) or isinstance(config[key], bool)):
            expected = " or ".join(_JSON_NAMES.get(t, t.__name__) for t in types)
            found = _JSON_NAMES.get(type(config[key]), type(config[key]).__name__)
            raise InputError(f"{where}: key {key!r} should be {expected}, found {found} ({config[key]!r:.60}).")


def _check_tensors(tensors: dict, where: str) -> None:
    """Refuse NaN or infinite weights, naming the first tensor that holds one."""
    import torch

    for name, tensor in tensors.items():
        if tensor.is_floating_point() or tensor.is_complex():
            finite = torch.isfinite(tensor)
            if not bool(finite.all()):
                bad = tensor[~finite].flatten()[0].item()
                count = int((~finite).sum())
                raise InputError(f"{where}: tensor {name!r} holds {count} non-finite value(s) (first: {bad}).")


def load(directory: str | os.PathLike):
    """Rebuild the fitted estimator saved in a run directory.

    ``config.json`` is checked against :data:`CONFIG_REQUIRED`/:data:`CONFIG_OPTIONAL` and the
    estimator's parameters, ``model.safetensors`` for finite values and for every tensor the
    estimator needs, at the shape it needs; each mistake is one :class:`InputError` naming the file.

    >>> model = load("runs/mlp-digits")            # doctest: +SKIP
    >>> model.predict(X)                           # doctest: +SKIP
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from deepatlas.errors import DeepAtlasError
    from deepatlas.registry import get_model_class

    directory = Path(directory)
    config_path = directory / "config.json"
    weights = directory / "model.safetensors"
    if not directory.is_dir():
        raise InputError(f"Run directory {str(directory)!r} does not exist.")
    if not config_path.exists() or not weights.exists():
        raise InputError(
            f"Run directory {str(directory)!r} has no config.json and model.safetensors; was the run finished?"
        )
    where = f"Run directory {str(directory)!r}: config.json"
    try:
        config = read_json(config_path)
    except UnicodeDecodeError as exc:
        raise InputError(f"{where} is not UTF-8 text (byte {exc.start}).") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{where} is not valid JSON ({exc}).") from None
    except OSError as exc:
        raise InputError(f"{where} cannot be read ({exc.strerror or exc}).") from None
    _check_config(config, where)
    try:
        cls = get_model_class(config["model"], config.get("task"))
    except DeepAtlasError as exc:
        raise InputError(f"{where}: {exc}") from None
    params = tuple_params(cls, config["params"])
    unknown = sorted(set(params) - set(cls().get_params(deep=False)))
    if unknown:
        raise InputError(f"{where}: unknown parameter(s) {', '.join(map(repr, unknown))} for {cls.__name__}.")
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError) as exc:
        raise InputError(f"Run directory {str(directory)!r}: model.safetensors cannot be read ({exc}).") from None
    weights_where = f"Run directory {str(directory)!r}: model.safetensors"
    _check_tensors(tensors, weights_where)
    if "device" in params:
        params["device"] = "auto"  # a run trained on a GPU loads wherever this process runs
    estimator = cls(**params)
    try:  # a hand-edited value (lr="fast") is named here, not deep inside a later predict
        validate_params(estimator)
    except DeepAtlasError as exc:
        raise InputError(f"{where}: {exc}") from None
    try:
        estimator._restore_state(
            _Required(tensors, f"{weights_where} has no tensor"),
            _Required(config["fitted"], f"{where}: 'fitted' has no"),
        )
    except _MissingEntry as exc:
        raise InputError(f"{exc.where} {exc.key!r}, which {cls.__name__} needs.") from None
    except WrongShape as exc:
        raise InputError(
            f"{weights_where}: tensor {exc.name!r} has shape {list(exc.found)}, but the {cls.__name__} "
            f"config.json describes needs {list(exc.expected)}."
        ) from None
    except RuntimeError as exc:
        if "state_dict" not in str(exc):
            raise
        detail = "; ".join(line.strip().rstrip(".") for line in str(exc).splitlines()[1:] if line.strip())
        raise InputError(f"{weights_where} does not fit the {cls.__name__} config.json describes: {detail}.") from None
    except (ValueError, TypeError, IndexError) as exc:
        if isinstance(exc, DeepAtlasError):
            raise
        raise InputError(
            f"{weights_where} and config.json do not describe one {cls.__name__} ({type(exc).__name__}: {exc})."
        ) from None
    if hasattr(estimator, "_restore_input_schema"):
        estimator._restore_input_schema(config, where)
    estimator.run_config_ = config
    return estimator

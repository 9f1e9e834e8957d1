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
from deepatlas.errors import InputError


def save_model(estimator, directory: str | os.PathLike, *, extra_config: dict | None = None) -> Path:
    """Write ``config.json`` and ``model.safetensors`` for a fitted estimator."""
    from safetensors.torch import save_file

    from deepatlas import __version__

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
    config.update(extra_config or {})
    write_json(directory / "config.json", config)
    return directory


def tuple_params(cls, params: dict) -> dict:
    """JSON turns tuples into lists; give tuple-typed defaults their tuples back."""
    defaults = cls().get_params(deep=False)
    return {k: tuple(v) if isinstance(v, list) and isinstance(defaults.get(k), tuple) else v for k, v in params.items()}


def load(directory: str | os.PathLike):
    """Rebuild the fitted estimator saved in a run directory.

    >>> model = load("runs/mlp-digits")            # doctest: +SKIP
    >>> model.predict(X)                           # doctest: +SKIP
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

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
    try:
        config = read_json(config_path)
        cls = get_model_class(config["model"], config.get("task"))
    except (json.JSONDecodeError, KeyError) as exc:
        raise InputError(f"Run directory {str(directory)!r}: config.json is damaged ({exc}).") from None
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError) as exc:
        raise InputError(f"Run directory {str(directory)!r}: model.safetensors cannot be read ({exc}).") from None
    params = tuple_params(cls, config.get("params", {}))
    if "device" in params:
        params["device"] = "auto"  # a run trained on a GPU loads wherever this process runs
    estimator = cls(**params)
    estimator._restore_state(tensors, config.get("fitted", {}))
    estimator.run_config_ = config
    return estimator

"""Run directories: saving a fitted estimator and rebuilding it, without pickle.

Layout (``--out DIR``)::

    config.json         model name, task, class, params, data, seed, package version, fitted metadata
    model.safetensors   weights and preprocessing tensors
    metrics.json        written last: its presence means the run finished
    history.json        one record per epoch
    plots/loss.png      the training curves

:func:`load` reads ``config.json``, rebuilds the estimator through the registry with the saved
parameters and loads the tensors.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from deepatlas.errors import InputError


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write to a temporary file beside ``path`` and rename it, so a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    atomic_write_text(path, json.dumps(to_jsonable(data), indent=2) + "\n")


def save_model(estimator, directory: str | os.PathLike, *, extra_config: dict | None = None) -> Path:
    """Write ``config.json`` and ``model.safetensors`` for a fitted estimator."""
    from safetensors.torch import save_file

    from deepatlas import __version__

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors, fitted = estimator._fitted_state()
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    tmp = directory / f".model.safetensors.tmp{os.getpid()}"
    save_file(tensors, str(tmp), metadata={"format": "deepatlas", "version": __version__})
    os.replace(tmp, directory / "model.safetensors")
    names = getattr(type(estimator), "_registry_names", {})
    task = getattr(estimator, "_task", None) or next(iter(names), None)
    config = {
        "model": names.get(task) or getattr(type(estimator), "_registry_name", type(estimator).__name__),
        "task": task,
        "class": type(estimator).__name__,
        "params": estimator.get_params(deep=False),
        "fitted": fitted,
        "version": __version__,
    }
    config.update(extra_config or {})
    write_json(directory / "config.json", config)
    return directory


def _tuple_params(cls, params: dict) -> dict:
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
        config = json.loads(config_path.read_text(encoding="utf-8"))
        cls = get_model_class(config["model"], config.get("task"))
    except (json.JSONDecodeError, KeyError) as exc:
        raise InputError(f"Run directory {str(directory)!r}: config.json is damaged ({exc}).") from None
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError) as exc:
        raise InputError(f"Run directory {str(directory)!r}: model.safetensors cannot be read ({exc}).") from None
    params = _tuple_params(cls, config.get("params", {}))
    if "device" in params:
        params["device"] = "auto"  # a run trained on a GPU loads wherever this process runs
    estimator = cls(**params)
    estimator._restore_state(tensors, config.get("fitted", {}))
    estimator.run_config_ = config
    return estimator


def supervised_metrics(estimator, ds) -> dict[str, float]:
    """Test (and train/validation) scores for a classifier or regressor on a dataset's splits."""
    from sklearn.metrics import accuracy_score, mean_squared_error, r2_score

    out: dict[str, float] = {}
    if ds.task == "classification":
        for split_name, X, y in (
            ("train", ds.X_train, ds.y_train),
            ("val", ds.X_val, ds.y_val),
            ("test", ds.X_test, ds.y_test),
        ):
            out[f"{split_name}_accuracy"] = float(accuracy_score(y, estimator.predict(X)))
    else:
        for split_name, X, y in (("val", ds.X_val, ds.y_val), ("test", ds.X_test, ds.y_test)):
            pred = estimator.predict(X)
            out[f"{split_name}_mse"] = float(mean_squared_error(y, pred))
            out[f"{split_name}_r2"] = float(r2_score(y, pred))
    return out


def train_run(
    estimator,
    ds,
    out: str | os.PathLike,
    *,
    data_spec: str,
    seed: int | None = 0,
    resume: bool = False,
    quiet: bool = False,
) -> dict:
    """Fit ``estimator`` on ``ds`` and write a complete run directory; returns the metrics.

    Families with their own way to fit on a dataset or their own measures implement
    ``fit_dataset(ds, checkpoint_dir=..., resume=...)`` and ``dataset_metrics(ds)``.
    ``metrics.json`` is written last, so a run that fails leaves none.
    """
    import inspect
    import time

    from deepatlas import __version__
    from deepatlas.plotting import plot_history
    from deepatlas.training.distributed import is_main_process

    out = Path(out)
    main = is_main_process()  # under torchrun only rank 0 writes the run directory
    if main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").unlink(missing_ok=True)
    start = time.perf_counter()
    if hasattr(estimator, "fit_dataset"):
        estimator.fit_dataset(ds, checkpoint_dir=out, resume=resume)
    else:
        kwargs = {}
        fit_params = inspect.signature(estimator.fit).parameters
        if "validation_data" in fit_params:
            kwargs["validation_data"] = (ds.X_val, ds.y_val)
        if "checkpoint_dir" in fit_params:
            kwargs.update(checkpoint_dir=out, resume=resume)
        estimator.fit(ds.X_train, ds.y_train, **kwargs)
    fit_seconds = time.perf_counter() - start
    metrics = (
        estimator.dataset_metrics(ds) if hasattr(estimator, "dataset_metrics") else supervised_metrics(estimator, ds)
    )
    metrics["fit_seconds"] = fit_seconds
    if hasattr(estimator, "n_epochs_"):
        metrics["epochs_run"] = estimator.n_epochs_
    if not main:
        return metrics
    save_model(
        estimator,
        out,
        extra_config={
            "data": data_spec,
            "seed": seed,
            "data_task": ds.task,
            "sample_shape": list(ds.sample_shape),
            "feature_names": ds.feature_names,
            "target_name": ds.target_name,
            "package_version": __version__,
        },
    )
    history = getattr(estimator, "history_", [])
    write_json(out / "history.json", history)
    if history:
        plot_history(history, out / "plots" / "loss.png", title=f"{type(estimator).__name__} on {ds.name}")
    for name in ("checkpoint.safetensors", "checkpoint.json"):
        (out / name).unlink(missing_ok=True)
    write_json(out / "metrics.json", metrics)
    from deepatlas.evaluation.report import write_report

    write_report(out)  # report.html: configuration, metrics and plots, self-contained
    return metrics

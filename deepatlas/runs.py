"""Run directories: training an estimator into one (``deepatlas train``).

Layout (``--out DIR``)::

    config.json         model name, task, class, params, data, seed, package version, fitted metadata
    model.safetensors   weights and preprocessing tensors
    metrics.json        written last: its presence means the run finished
    history.json        one record per epoch
    plots/loss.png      the training curves
    report.html         configuration, metrics and plots, self-contained

``config.json`` and ``model.safetensors`` are written and read by :mod:`deepatlas.saving`
(``save_model``/``load``, re-exported here); the file helpers live in :mod:`deepatlas._io`.
"""

from __future__ import annotations

import os
from pathlib import Path

from deepatlas._io import atomic_write_text, to_jsonable, write_json
from deepatlas.saving import load, save_model, tuple_params

__all__ = [
    "atomic_write_text",
    "load",
    "save_model",
    "supervised_metrics",
    "to_jsonable",
    "train_run",
    "tuple_params",
    "write_json",
]


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

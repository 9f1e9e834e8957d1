"""Run directories: training an estimator into one (``deepatlas train``).

Layout (``--out DIR``)::

    config.json         model name, task, class, params, data, seed, package version, fitted metadata
                        (the settings alone are written when the run starts, for ``--resume`` to check)
    model.safetensors   weights and preprocessing tensors
    metrics.json        written last: its presence means the run finished
    history.json        one record per epoch
    plots/loss.png      the training curves
    report.html         configuration, metrics and plots, self-contained

``config.json`` and ``model.safetensors`` are written and read by :mod:`deepatlas.saving`
(``save_model``/``load``, re-exported here); the file helpers live in :mod:`deepatlas._io`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from pathlib import Path

from deepatlas._io import atomic_write_text, check_writable, read_json, to_jsonable, write_json
from deepatlas.errors import InputError
from deepatlas.saving import load, save_model, tuple_params

__all__ = [
    "atomic_write_text",
    "check_out_dir",
    "claim_run_dir",
    "removed_if_it_fails",
    "load",
    "run_settings",
    "save_model",
    "starts_afresh",
    "supervised_metrics",
    "to_jsonable",
    "train_run",
    "tuple_params",
    "write_json",
]


_CHECKPOINT = ("checkpoint.safetensors", "checkpoint.json")
_WHERE_NOT_WHAT = ("verbose", "device")  # parameters a resumed run may change freely
_UNSET = "unset"


def run_settings(estimator, ds, data_spec: str, seed: int | None, **extra) -> dict:
    """What makes two runs the same run: model, task, parameters, data spec and seed (as JSON).

    ``ds`` is the dataset, or for an agent its task name (``"rl"``, ``data_spec`` being the
    environment id); ``extra`` adds settings such as an agent's ``total_timesteps``."""
    data_task = ds if isinstance(ds, str) else ds.task
    from deepatlas import __version__
    from deepatlas.registry import card_of

    card = card_of(estimator, getattr(estimator, "_task", None) or data_task) or card_of(estimator)
    settings = {
        "model": card.name if card is not None else type(estimator).__name__,
        "task": getattr(estimator, "_task", None) or (card.task if card is not None else None),
        "class": type(estimator).__name__,
        "params": estimator.get_params(deep=False),
        "data": data_spec,
        "seed": seed,
        "data_task": data_task,
        "package_version": __version__,
        **extra,
    }
    pre = None if isinstance(ds, str) else ds.meta.get("preprocessor")
    if pre is not None:  # a CSV's --drop/--categorical/--impute/--id: --resume refuses others
        settings["preprocessing"] = {
            "drop": pre.drop,
            "categorical": pre.categorical,
            "impute": pre.impute,
            "id": pre.id_column,
        }
    return json.loads(json.dumps(to_jsonable(settings)))


def _differences(old: dict, new: dict, *, more_epochs: bool) -> list[str]:
    """Each setting that differs, named; ``more_epochs``: a larger budget (``epochs``, or an
    agent's ``total_timesteps``) is not a difference."""
    diffs = [
        f"{label} {old.get(key, _UNSET)!r} (now {new.get(key)!r})"
        for key, label in (("model", "model"), ("data_task", "task"), ("data", "data"), ("seed", "seed"))
        if old.get(key, _UNSET) != new.get(key)
    ]
    if "total_timesteps" in old or "total_timesteps" in new:  # an agent's budget
        was, now = old.get("total_timesteps", _UNSET), new.get("total_timesteps", _UNSET)
        if was != now and not (more_epochs and isinstance(was, int) and isinstance(now, int) and now > was):
            diffs.append(f"total_timesteps {was!r} (now {now!r})")
    old_pre, new_pre = old.get("preprocessing") or {}, new.get("preprocessing") or {}
    for key in ("drop", "categorical", "impute", "id"):  # a CSV's --drop/--categorical/--impute/--id
        unset = None if key == "id" else _UNSET  # runs started before --id record none
        if old_pre.get(key, unset) != new_pre.get(key, unset):
            diffs.append(f"--{key} {old_pre.get(key, unset)!r} (now {new_pre.get(key, unset)!r})")
    old_params, new_params = old.get("params") or {}, new.get("params") or {}
    for key in sorted(set(old_params) | set(new_params)):
        was, now = old_params.get(key, _UNSET), new_params.get(key, _UNSET)
        if key in _WHERE_NOT_WHAT or was == now:
            continue
        if key == "epochs" and more_epochs and isinstance(was, int) and isinstance(now, int) and now > was:
            continue  # the one change --resume applies: train on for more epochs
        if f"{key} {was!r} (now {now!r})" not in diffs:  # the seed is both a setting and a parameter
            diffs.append(f"{key} {was!r} (now {now!r})")
    return diffs


def _has_checkpoint(out: Path) -> bool:
    return any((out / name).exists() for name in _CHECKPOINT)


def _non_empty(out: Path) -> bool:
    return out.is_dir() and any(out.iterdir())


def _checkpoint_problem(out: Path) -> str | None:
    from deepatlas.training.callbacks import checkpoint_problem

    return checkpoint_problem(out)


def check_out_dir(out: Path, *, resume: bool, overwrite: bool) -> None:
    """The refusals of ``deepatlas train --out`` that need no settings (before any data is loaded).

    Raises :class:`InputError`; writes nothing."""
    shown = repr(str(out))
    if resume and overwrite:
        raise InputError(
            "--resume and --overwrite exclude each other: --resume continues the run in --out, "
            "--overwrite moves it aside and starts again."
        )
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {shown} is a file; expected a run directory (new, empty, or the run to resume).")
    if overwrite:
        here = Path.cwd().resolve()
        if out.resolve() in (here, *here.parents):
            raise InputError(
                f"--overwrite: --out {shown} is the current directory or holds it; it cannot be moved aside."
            )
        return
    finished = (out / "metrics.json").exists()
    if resume:
        if not out.is_dir():
            raise InputError(f"--resume: --out {shown} does not exist; expected the directory of an interrupted run.")
        if finished:
            raise InputError(
                f"--resume: --out {shown} holds a finished run (metrics.json); there is nothing to continue. "
                "Train into another directory, or pass --overwrite instead to move it aside and start again."
            )
        if not _has_checkpoint(out):
            raise InputError(f"--resume: --out {shown} holds no checkpoint (checkpoint.safetensors) to continue from.")
        problem = _checkpoint_problem(out)
        if problem:
            raise InputError(
                f"--resume: the checkpoint in --out {shown} is damaged: {problem}. "
                "Train into another directory, or pass --overwrite instead to move it aside and start again."
            )
        return
    if not _non_empty(out):
        return
    if finished:
        raise InputError(
            f"--out {shown} already holds a finished run; choose another directory, "
            "or pass --overwrite to move it aside and start again."
        )
    if not _has_checkpoint(out):
        raise InputError(
            f"--out {shown} is a non-empty folder that holds no checkpoint of an unfinished run; "
            "choose another directory, or pass --overwrite to move its files aside and start again."
        )


def claim_output_dir(out: Path, *, overwrite: bool, what: str) -> str | None:
    """The ``--out`` rule of the commands that write one result folder and have nothing to resume
    (``cv``, ``compare``, ``learning-curve``, ``transfer``): a new or empty folder is used as it is,
    a non-empty one is refused unless ``overwrite``, which moves it aside first (one rename).
    Call it before any work starts. ``what`` names the command's result in the message.

    Returns a note for the user (where the old files went), or None."""
    check_writable(out, "--out", directory=True)
    if overwrite:
        check_out_dir(out, resume=False, overwrite=True)  # refuses the current directory
        return claim_run_dir(out, {}, resume=False, overwrite=True)
    if _non_empty(out):
        raise InputError(
            f"--out {str(out)!r} is a non-empty folder; {what} goes into a new or empty one. "
            "Choose another directory, or pass --overwrite to move its files aside first."
        )
    return None


def _started_settings(out: Path) -> dict | None:
    try:
        config = read_json(out / "config.json")
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) else None


def _move_aside(out: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    dest, n = out.with_name(f"{out.name}.old-{stamp}"), 1
    while dest.exists():
        dest, n = out.with_name(f"{out.name}.old-{stamp}-{n}"), n + 1
    try:
        os.rename(out, dest)  # one rename: the old run is either all there or all moved
    except OSError as exc:
        raise InputError(
            f"--overwrite: cannot move --out {str(out)!r} aside to {str(dest)!r}: {exc.strerror}."
        ) from None
    return dest


def claim_run_dir(out: Path, settings: dict, *, resume: bool, overwrite: bool, budget: str = "--epochs") -> str | None:
    """After :func:`check_out_dir` and once the run's :func:`run_settings` are known: refuse a
    resume or a restart of a run with other settings, or move the old folder aside (``overwrite``).
    ``budget`` names the option that may grow on resume. Returns a note for the user (where the
    old files went), or None."""
    shown = repr(str(out))
    if overwrite:
        if _non_empty(out):
            return f"--overwrite: moved the old contents of --out {shown} to {str(_move_aside(out))!r}"
        return None
    if resume:
        old = _started_settings(out)
        if old is None:
            raise InputError(
                f"--resume: --out {shown} has no readable config.json recording the settings its checkpoint "
                "was started with; they cannot be checked."
            )
        diffs = _differences(old, settings, more_epochs=True)
        if diffs:
            raise InputError(
                f"--resume: the run in --out {shown} was started with other settings: {'; '.join(diffs)}. "
                f"Resume with the same settings (only {budget} may grow)."
            )
        return None
    if _non_empty(out) and _has_checkpoint(out):  # an unfinished run (check_out_dir refused the rest)
        old = _started_settings(out)
        diffs = ["no readable config.json"] if old is None else _differences(old, settings, more_epochs=False)
        if diffs:
            raise InputError(
                f"--out {shown} holds an unfinished run of other settings ({'; '.join(diffs)}); "
                "choose another directory, or pass --overwrite to move it aside and start again."
            )
        return f"--out {shown} holds an unfinished run of these settings; starting it again (--resume continues it)"
    return None


def starts_afresh(out: Path, *, resume: bool, overwrite: bool) -> bool:
    """Whether a run into ``out`` starts in a new (or emptied) folder, with nothing to keep."""
    return not resume and (overwrite or not _non_empty(out))


@contextlib.contextmanager
def removed_if_it_fails(out: Path, fresh: bool):
    """A new run (``fresh``) that fails before its first checkpoint leaves no folder behind to
    block a retry; an interrupted run with a checkpoint stays, for ``--resume``."""
    try:
        yield
    except BaseException:
        if fresh and out.is_dir() and not _has_checkpoint(out):
            shutil.rmtree(out, ignore_errors=True)
        raise


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
        # The settings the run starts with, replaced by the full config when it ends: --resume
        # compares them with its own (a resumed run with more epochs records the new count).
        write_json(out / "config.json", run_settings(estimator, ds, data_spec, seed))
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
    if ds.meta.get("preprocessor") is not None and hasattr(estimator, "set_input_schema"):
        # a CSV's raw columns: the encoding fitted on the training rows travels with the model
        estimator.set_input_schema(ds.meta["preprocessor"])
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
    if hasattr(estimator, "write_run_plots"):  # a family's own pictures (e.g. attention heat maps)
        estimator.write_run_plots(ds, out / "plots")
    if hasattr(estimator, "dataset_evaluation"):  # a family's own test report (NER: seqeval per entity type)
        write_json(out / "evaluation.json", {**estimator.dataset_evaluation(ds), "data": data_spec})
    write_json(out / "metrics.json", metrics)
    from deepatlas.evaluation.report import write_report

    write_report(out)  # report.html: configuration, metrics and plots, self-contained
    return metrics

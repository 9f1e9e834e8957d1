"""Hyperparameter search with Optuna: TPE sampling, pruning from per-epoch validation scores.

The sampler is the Tree-structured Parzen Estimator (Bergstra, Bardenet, Bengio & Kegl, 2011,
"Algorithms for Hyper-Parameter Optimization"). Weak trials are stopped early from the
validation score each epoch reports, by default with asynchronous successive halving (Li et al.,
2020, "A System for Massively Parallel Hyperparameter Tuning"; Jamieson & Talwalkar, 2016): at
epochs 5, 13, 37, 109 (4 x 3^k + 1) a trial goes on only if its score is in the top third of the
scores that all trials so far had at that epoch. The median stopping rule (Golovin et al., 2017,
"Google Vizier: A Service for Black-Box Optimization") is the alternative ``pruner="median"``;
it compares with the *finished* trials only, which after a few prunings are the good ones, so it
grows more aggressive as a study goes on (on MNIST-1D it cut the trials that would have won).
Optuna itself: Akiba et al. (2019), "Optuna: A Next-generation Hyperparameter Optimization
Framework".

A search space maps parameter names to distributions::

    lr:         {type: float, low: 1.0e-4, high: 3.0e-2, log: true}
    batch_size: {type: categorical, choices: [32, 64, 128]}
    width:      {type: int, low: 64, high: 1024, log: true}

Names are the estimator's own parameters, plus a few derived ones per family (``width`` and
``depth`` build an MLP's ``hidden_sizes``; ``base_channels`` and ``depth`` build a CNN's
``channels``). A model declares its space on its card (``register_model(..., tuning_space=)``,
next to the estimator); models without one get a generic space over the common parameters they
have (``lr``, ``batch_size``, ``dropout``, ``hidden_size``, ``weight_decay``).

Storage: one SQLite file in the run directory by default (``study.db``), so an interrupted study
resumes where it stopped, or any SQLAlchemy URL: PostgreSQL for workers on several machines
(``postgresql+psycopg://user:pass@host:5432/db``, driver from the ``tune-pg`` extra).
Trials carry a heartbeat; a worker killed mid-trial leaves a trial that the next worker to claim
one marks ``FAIL`` once its heartbeat is older than the grace period (or, killed in the instant
before its first heartbeat, once the trial is :data:`ORPHAN_S` seconds old). A worker that finds
the study's last slots held by other workers' running trials waits for them, so a dead one's
slot is run again rather than lost.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import time
from pathlib import Path
from typing import Any

from deepatlas._optional import require
from deepatlas._params import SPACE_BATCH, SPACE_DROPOUT, SPACE_LR
from deepatlas.errors import InputError
from deepatlas.training.callbacks import Callback

require("tune", "deepatlas tune")  # one line naming the extra, before any study needs Optuna

HEARTBEAT_S = 2
GRACE_S = 6
# A trial whose worker died after the storage created it but before its first heartbeat has no
# heartbeat for Optuna to find stale; it is failed once it is this old without having started.
ORPHAN_S = 60

# ---- search spaces ----------------------------------------------------------------------------
# Derived names per registry name: they are composed into real estimator parameters.
DERIVED: dict[str, tuple[str, ...]] = {"mlp": ("width", "depth"), "cnn": ("base_channels", "depth")}

# The space of a model whose card declares none (``register_model(..., tuning_space=)``).
_GENERIC = {
    "lr": SPACE_LR,
    "batch_size": SPACE_BATCH,
    "dropout": SPACE_DROPOUT,
    "hidden_size": {"type": "int", "low": 16, "high": 256, "log": True},
    "weight_decay": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True},
}


def default_space(model: str, task: str | None = None) -> dict[str, dict]:
    """The space on ``model``'s card, or a generic one over the common parameters it has."""
    from deepatlas.registry import get_card

    card = get_card(model, task)
    if card.tuning_space is not None:
        return json.loads(json.dumps(card.tuning_space))  # a copy the caller may change
    valid = card.cls._get_param_names()
    space = {k: dict(v) for k, v in _GENERIC.items() if k in valid}
    if not space:
        raise InputError(f"Model {model!r} has no default search space; give one with --space FILE.")
    return space


def read_space_file(path: str | os.PathLike) -> dict:
    """A YAML (``.yaml``/``.yml``) or JSON search-space file as a mapping."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--space file {str(path)!r} does not exist.")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:
        raise InputError(f"--space file {str(path)!r} cannot be read: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or not data:
        raise InputError(f"--space file {str(path)!r} must map parameter names to ranges. Got {data!r} instead.")
    return data


def check_space(space: dict, model: str, task: str | None = None) -> dict[str, dict]:
    """Validate a space against the model's parameters; one-line errors name the parameter."""
    from deepatlas._validation import suggest
    from deepatlas.registry import get_model_class

    valid = list(get_model_class(model, task)._get_param_names()) + list(DERIVED.get(model, ()))
    out: dict[str, dict] = {}
    for name, spec in space.items():
        if name not in valid:
            hint = suggest(str(name), valid) or f" Valid names: {', '.join(valid)}."
            raise InputError(f"Search space: unknown parameter {name!r} for model {model!r}.{hint}")
        if not isinstance(spec, dict):
            raise InputError(f"Search space: {name!r} must be a mapping with 'type'. Got {spec!r} instead.")
        kind = spec.get("type", "categorical" if "choices" in spec else "float")
        if kind == "categorical":
            choices = spec.get("choices")
            if not isinstance(choices, list) or not choices:
                raise InputError(f"Search space: {name!r} needs a non-empty list of choices. Got {choices!r} instead.")
            out[name] = {"type": "categorical", "choices": choices}
            continue
        if kind not in ("float", "int"):
            raise InputError(f"Search space: {name!r} has type {kind!r}; expected 'float', 'int' or 'categorical'.")
        low, high = spec.get("low"), spec.get("high")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
            raise InputError(f"Search space: {name!r} needs numeric low and high. Got low={low!r}, high={high!r}.")
        if not low < high:
            raise InputError(f"Search space: {name!r} has an empty range: low={low!r} must be below high={high!r}.")
        log = bool(spec.get("log", False))
        if log and low <= 0:
            raise InputError(f"Search space: {name!r} is log-scaled, so low must be > 0. Got low={low!r}.")
        out[name] = {"type": kind, "low": low, "high": high, "log": log}
    return out


def suggest_params(trial, space: dict[str, dict]) -> dict[str, Any]:
    values = {}
    for name, spec in space.items():
        if spec["type"] == "categorical":
            values[name] = trial.suggest_categorical(name, spec["choices"])
        elif spec["type"] == "int":
            values[name] = trial.suggest_int(name, int(spec["low"]), int(spec["high"]), log=spec.get("log", False))
        else:
            values[name] = trial.suggest_float(
                name, float(spec["low"]), float(spec["high"]), log=spec.get("log", False)
            )
    return values


def compose_params(model: str, sampled: dict[str, Any], fixed: dict[str, Any] | None = None) -> dict[str, Any]:
    """Sampled values (with derived names) -> estimator parameters, on top of ``fixed``."""
    params = dict(fixed or {})
    sampled = dict(sampled)
    if model == "mlp" and ("width" in sampled or "depth" in sampled):
        hidden = tuple(params.get("hidden_sizes") or (128, 128))  # the fixed value fills the other half
        width, depth = int(sampled.pop("width", hidden[0])), int(sampled.pop("depth", len(hidden)))
        params["hidden_sizes"] = (width,) * depth
    if model == "cnn" and ("base_channels" in sampled or "depth" in sampled):
        channels = tuple(params.get("channels") or (32, 64, 128))
        base, depth = int(sampled.pop("base_channels", channels[0])), int(sampled.pop("depth", len(channels)))
        params["channels"] = tuple(base * 2**i for i in range(depth))
    params.update(sampled)
    return params


# ---- pruning ----------------------------------------------------------------------------------
class PruningCallback(Callback):
    """Report the validation score each epoch; raise ``optuna.TrialPruned`` when the pruner says so.

    ``monitor`` is ``val_accuracy`` for classifiers (higher is better) or ``val_loss`` (reported
    negated, so the study always maximises)."""

    def __init__(self, trial, monitor: str = "val_accuracy") -> None:
        self.trial = trial
        self.monitor = monitor
        self.epochs = 0

    def on_epoch_end(self, loop, epoch, logs) -> None:
        import optuna

        self.epochs = epoch + 1
        value = logs.get(self.monitor)
        if value is None:
            return
        value = float(value) if self.monitor != "val_loss" else -float(value)
        self.trial.report(value, epoch)
        self.trial.set_user_attr("epochs", self.epochs)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {self.epochs} ({self.monitor} {logs[self.monitor]:.4f})")


# ---- storage and study ------------------------------------------------------------------------
def check_storage_url(url: str) -> None:
    """The URL's form, and its driver when that is an optional extra (one line naming it)."""
    if not isinstance(url, str) or "://" not in url:
        raise InputError(f"--storage must be an SQLAlchemy URL such as sqlite:///study.db. Got {url!r} instead.")
    if url.partition("://")[0].lower().endswith("+psycopg"):
        require("tune-pg", "a PostgreSQL --storage")


def open_storage(url: str):
    """An Optuna RDB storage with trial heartbeats; a URL that cannot be opened is an InputError."""
    import optuna

    check_storage_url(url)
    _quiet_optuna()
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    try:
        with _schema_lock(url):
            return optuna.storages.RDBStorage(
                url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S
            )
    except Exception as exc:  # sqlalchemy/driver errors vary by back end
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(f"--storage {shown_url(url)!r} cannot be opened: {first}") from None


_SCHEMA_LOCK = 0x6465657061746C73  # "deepatls": the PostgreSQL advisory lock of the line below


@contextlib.contextmanager
def _schema_lock(url: str):
    """On PostgreSQL, hold an advisory lock while Optuna creates its tables: workers started
    together on an empty database otherwise race on CREATE TYPE/TABLE, and all but one fail
    ("duplicate key value violates unique constraint pg_type_typname_nsp_index")."""
    if not url.partition("://")[0].lower().startswith(("postgresql", "postgres")):
        yield
        return
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as con:  # the lock lasts as long as this session at most
            con.execute(sqlalchemy.text("select pg_advisory_lock(:key)"), {"key": _SCHEMA_LOCK})
            try:
                yield
            finally:
                con.execute(sqlalchemy.text("select pg_advisory_unlock(:key)"), {"key": _SCHEMA_LOCK})
    finally:
        engine.dispose()


def shown_url(url: str) -> str:
    """The storage URL with its password masked, for messages and logs."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy parses: nothing to mask
        return url


def _quiet_optuna() -> None:
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


PRUNERS = ("halving", "median", "none")


def make_pruner(kind: str = "halving"):
    """``halving``: successive halving from epoch 5, keeping the top third at each rung;
    ``median``: median stopping rule after 5 finished trials and 5 epochs; ``none``."""
    import optuna

    if kind not in PRUNERS:
        raise InputError(f"--pruner must be one of {', '.join(PRUNERS)}. Got {kind!r} instead.")
    if kind == "none":
        return optuna.pruners.NopPruner()
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=5, interval_steps=1)
    return optuna.pruners.SuccessiveHalvingPruner(min_resource=4, reduction_factor=3)


def load_study(storage, name: str, *, seed: int = 0, pruner: str = "halving"):
    import optuna

    # Multivariate TPE models the parameters jointly (Falkner, Klein & Hutter, 2018, "BOHB"):
    # width, depth and learning rate interact, and over five seeds it found MLPs on MNIST-1D
    # that the independent per-parameter model missed (docs/results-tuning-transfer.md).
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=8, multivariate=True)
    return optuna.create_study(
        storage=storage,
        study_name=name,
        direction="maximize",
        sampler=sampler,
        pruner=make_pruner(pruner),
        load_if_exists=True,
    )


def finished_count(study) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def make_objective(model: str, ds, space: dict, fixed: dict):
    """Fit one configuration on ``ds.X_train`` and return its validation score."""
    import inspect

    from deepatlas.registry import build_model, get_model_class
    from deepatlas.saving import tuple_params

    fixed = tuple_params(get_model_class(model, ds.task), fixed)  # JSON gave lists back

    def objective(trial) -> float:
        params = compose_params(model, suggest_params(trial, space), fixed)
        estimator = build_model(model, ds.task, dict(params))
        kwargs = {}
        fit_params = inspect.signature(estimator.fit).parameters
        monitor = "val_accuracy" if ds.task == "classification" else "val_loss"
        pruner_cb = PruningCallback(trial, monitor)
        if "validation_data" in fit_params:
            kwargs["validation_data"] = (ds.X_val, ds.y_val)
        if "callbacks" in fit_params:
            kwargs["callbacks"] = [pruner_cb]
        trial.set_user_attr("pid", os.getpid())
        start = time.perf_counter()
        estimator.fit(ds.X_train, ds.y_train, **kwargs)
        epochs = getattr(estimator, "n_epochs_", None) or pruner_cb.epochs or params.get("epochs")
        trial.set_user_attr("epochs", int(epochs) if epochs else None)
        trial.set_user_attr("fit_seconds", time.perf_counter() - start)
        return float(estimator.score(ds.X_val, ds.y_val))

    return objective


def run_worker(
    *,
    model: str,
    data: str,
    storage_url: str,
    study_name: str,
    trials: int,
    space: dict,
    fixed: dict,
    quota: int | None = None,
    worker: int = 0,
    seed: int = 0,
    timeout: float | None = None,
    pruner: str = "halving",
    target: str | None = None,
    task: str | None = None,
    progress: bool = False,
    preprocess: dict | None = None,
    labels: str | None = None,
) -> int:
    """Run trials until the study holds ``trials`` finished ones, ``quota`` trials were run here,
    or ``timeout`` passed; returns how many ran here.

    Optuna claims each trial through the storage before it runs, so two workers never run the
    same one. ``deepatlas tune --workers K`` splits what is left into K quotas; independent
    workers (several machines) start a trial while finished + running trials are fewer than
    ``trials``. A worker that finds the last slots held by running trials waits for them: each
    finishes, or its worker died and it goes stale and fails, and its slot is claimed again. Two
    workers that claim the last slot at once both create a trial; the one numbered later is not
    run (it ends ``FAIL`` with the user attribute ``surplus``), so the study never overshoots.
    """
    import logging

    import optuna

    from deepatlas.data import load_dataset

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(storage_url)
    study = load_study(storage, study_name, seed=seed + 1000 * worker, pruner=pruner)
    ds = load_dataset(data, target=target, task=task, seed=seed, preprocess=preprocess, labels=labels)
    objective = make_objective(model, ds, space, fixed)
    deadline = None if timeout is None else time.monotonic() + timeout
    ran = 0
    prefix = f"worker {worker}: " if worker else ""
    callbacks = [TrialReport(trials, prefix)] if progress else None
    surplus: list[int] = []

    def objective_in_target(trial) -> float:
        if _beyond_target(study, trial.number, trials):
            surplus.append(trial.number)
            trial.set_user_attr("surplus", True)
            raise _SurplusTrial(f"trial {trial.number} is beyond the study's {trials} trials")
        return objective(trial)

    def not_surplus(record: logging.LogRecord) -> bool:  # Optuna logs every failed trial as a warning
        return not any(record.getMessage().startswith(f"Trial {n} failed ") for n in surplus)

    optuna_log = logging.getLogger("optuna.study._optimize")
    optuna_log.addFilter(not_surplus)
    waiting = False
    try:
        while (quota is None or ran < quota) and (deadline is None or time.monotonic() < deadline):
            if not _claim(study, trials):
                if finished_count(study) >= trials:
                    break
                if progress and not waiting:
                    print(f"{prefix}waiting: running trials of other workers hold the last slots", flush=True)
                waiting = True
                time.sleep(HEARTBEAT_S)  # each finishes, or goes stale (its worker died) and fails
                continue
            waiting = False
            before = len(surplus)
            study.optimize(
                objective_in_target,
                n_trials=1,
                catch=(InputError, _SurplusTrial),
                gc_after_trial=False,
                callbacks=callbacks,
            )
            ran += len(surplus) == before
    finally:
        optuna_log.removeFilter(not_surplus)
    return ran


class _SurplusTrial(Exception):
    """A trial created after the study's trials were all taken (two workers claimed the last slot)."""


def _beyond_target(study, number: int, trials: int) -> bool:
    """True when ``trials`` live trials are numbered below ``number``. The storage numbers trials
    in creation order under a lock on the study, and a trial's state only leaves RUNNING, so of
    two trials created for one last slot every worker agrees that the later one is the surplus."""
    from optuna.trial import TrialState

    live = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    return sum(t.number < number for t in study.get_trials(deepcopy=False, states=live)) >= trials


class TrialReport:
    """One line per finished trial: its state, score, epochs and time, and the best so far."""

    def __init__(self, trials: int, prefix: str = "") -> None:
        self.trials, self.prefix = trials, prefix

    def __call__(self, study, trial) -> None:
        if trial.user_attrs.get("surplus"):
            print(f"{self.prefix}trial {trial.number} not run: other workers took the last slot", flush=True)
            return
        done = finished_count(study)
        epochs = trial.user_attrs.get("epochs")
        seconds = trial.duration.total_seconds() if trial.duration is not None else None
        value = "" if trial.value is None else f" {trial.value:.4f}"
        parts = [f"{self.prefix}trial {trial.number} {trial.state.name.lower()}{value}"]
        if epochs:
            parts.append(f"{epochs} epochs" + (f", {seconds:.1f} s" if seconds else ""))
        try:
            best = study.best_trial
            parts.append(f"best {best.value:.4f} (trial {best.number})")
        except ValueError:
            pass  # no finished trial yet
        print(f"[{min(done, self.trials)}/{self.trials}] " + " · ".join(parts), flush=True)


def worker_main(config_path: str) -> int:
    """Entry point of a worker process started by ``deepatlas tune --workers K``."""
    config = json.loads(Path(config_path).read_text(encoding="utf-8"))
    return run_worker(**config)


def fail_orphans(study, older_than: float | None = None) -> list[int]:
    """Mark ``FAIL`` the RUNNING trials that never reached the objective (no ``pid``) and started
    more than ``older_than`` seconds ago: their worker died between Optuna creating the trial and
    its first heartbeat, so ``fail_stale_trials`` cannot see them. Returns their numbers.

    Ages come from the trial's ``datetime_start``, which Optuna writes in the creating worker's
    local time: workers on several machines must share a time zone (a live trial is safe either
    way once its objective has set ``pid``, within milliseconds of starting)."""
    import datetime

    from optuna.trial import TrialState

    older_than = ORPHAN_S if older_than is None else older_than
    now = datetime.datetime.now()  # Optuna stores naive local times
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        started = t.datetime_start
        if "pid" in t.user_attrs or started is None or (now - started).total_seconds() < older_than:
            continue
        try:
            study.tell(t.number, state=TrialState.FAIL)
            failed.append(t.number)
        except (RuntimeError, ValueError):
            continue  # another worker finished or failed it first
    return failed


def _claim(study, trials: int) -> bool:
    """True when one more trial may start: finished + running (live) trials < the target."""
    from optuna.storages import fail_stale_trials
    from optuna.trial import TrialState

    fail_stale_trials(study)
    fail_orphans(study)
    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    return len(study.get_trials(deepcopy=False, states=states)) < trials


# ---- outputs ----------------------------------------------------------------------------------
def trials_csv(study) -> str:
    trials = study.get_trials(deepcopy=False)
    names = sorted({k for t in trials for k in t.params})
    attrs = sorted({k for t in trials for k in t.user_attrs})
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["number", "state", "value", "duration_s", *names, *attrs])
    for t in trials:
        dur = t.duration.total_seconds() if t.duration is not None else ""
        w.writerow(
            [t.number, t.state.name, "" if t.value is None else t.value, dur]
            + [t.params.get(k, "") for k in names]
            + [t.user_attrs.get(k, "") for k in attrs]
        )
    return buf.getvalue()


def write_plots(study, directory: Path) -> list[str]:
    """Optuna's matplotlib plots; returns the files written (a plot needing more trials is skipped)."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    from optuna.visualization import matplotlib as vis

    from deepatlas.plotting import save_figure

    written = []
    plots = (
        ("optimization_history.png", vis.plot_optimization_history),
        ("param_importances.png", vis.plot_param_importances),
        ("parallel_coordinate.png", vis.plot_parallel_coordinate),
    )
    for filename, fn in plots:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ax = fn(study)
            ax = ax.flat[0] if hasattr(ax, "flat") else ax
            save_figure(ax.figure, directory / filename)
            written.append(filename)
        except (ValueError, RuntimeError, ZeroDivisionError):
            continue  # e.g. importances need two finished trials with varied parameters
    return written


def summarize(study, model: str, fixed: dict, out: Path) -> dict:
    """Write ``best.json``, ``trials.csv`` and ``plots/``; return the summary."""
    from optuna.trial import TrialState

    from deepatlas._io import atomic_write_text, write_json

    trials = study.get_trials(deepcopy=False)
    count = {s.name: sum(t.state == s for t in trials) for s in TrialState}
    count["SURPLUS"] = sum(t.state == TrialState.FAIL and bool(t.user_attrs.get("surplus")) for t in trials)
    count["FAIL"] -= count["SURPLUS"]
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    epochs_run = sum(
        int(t.user_attrs.get("epochs") or 0) for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
    )
    summary: dict[str, Any] = {
        "model": model,
        "study": study.study_name,
        "trials": {k.lower(): v for k, v in count.items() if v},
        "epochs_run": epochs_run,
    }
    if done:
        best = study.best_trial
        summary.update(
            best_value=best.value,
            best_trial=best.number,
            best_sampled=best.params,
            best_params=compose_params(model, best.params, fixed),
        )
    atomic_write_text(out / "trials.csv", trials_csv(study))
    summary["plots"] = write_plots(study, out / "plots") if done else []
    write_json(out / "best.json", summary)
    return summary


if __name__ == "__main__":
    import sys

    worker_main(sys.argv[1])

"""``deepatlas tune MODEL --data D --trials N``: hyperparameter search with Optuna.

Writes into ``--out`` (default ``runs/tune-<model>-<data>-<time>``): ``study.db`` (the SQLite
study, unless ``--storage`` names another), ``best.json``, ``trials.csv``, ``plots/`` and, with
``--then-train``, a normal run directory ``best-run/`` trained with the best parameters.
Running the same command again on the same ``--out`` resumes the study up to ``--trials``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from deepatlas.errors import InputError


def _positive(value, flag: str, kind=int) -> None:
    if value is not None and (not isinstance(value, kind) or value <= 0):
        raise InputError(f"{flag} must be a positive {kind.__name__}. Got {value} instead.")


def cmd_tune(args) -> int:
    from deepatlas import tuning
    from deepatlas.commands._args import collect_params, load_data, preprocess_options
    from deepatlas.registry import build_model

    _positive(args.trials, "--trials")
    _positive(args.workers, "--workers")
    if args.timeout is not None:
        _positive(float(args.timeout), "--timeout", float)
    if args.storage:
        tuning.check_storage_url(args.storage)  # its form and driver, before the data are loaded
    stem = args.data.split(":")[0]
    stem = Path(stem).stem if ("/" in stem or "." in stem) else stem
    out = Path(args.out) if args.out else Path("runs") / f"tune-{args.model}-{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    fixed = collect_params(args)
    preprocess = preprocess_options(args)
    ds = load_data(args, notes=not args.quiet)
    build_model(args.model, ds.task, dict(fixed))  # unknown --set names fail here, before any trial
    space = tuning.read_space_file(args.space) if args.space else tuning.default_space(args.model, ds.task)
    space = tuning.check_space(space, args.model, ds.task)
    for name in space:
        fixed.pop(name, None)  # a searched parameter is not also fixed
    out.mkdir(parents=True, exist_ok=True)
    storage_url = args.storage or f"sqlite:///{(out / 'study.db').resolve()}"
    study_name = args.study or f"{args.model}-{stem}"
    study = tuning.load_study(tuning.open_storage(storage_url), study_name, seed=args.seed, pruner=args.pruner)
    remaining = max(0, args.trials - tuning.finished_count(study))
    config = dict(
        model=args.model, data=args.data, storage_url=storage_url, study_name=study_name, trials=args.trials,
        space=space, fixed=fixed, seed=args.seed, timeout=args.timeout, pruner=args.pruner,
        target=args.target, task=args.task, progress=not args.quiet, preprocess=preprocess, labels=args.labels,
    )  # fmt: skip
    if not args.quiet:
        where = tuning.shown_url(storage_url)  # the password masked
        print(f"study {study_name!r}: {args.trials - remaining} trials finished, {remaining} to run ({where})")
    if remaining and args.workers == 1:
        tuning.run_worker(**config, quota=remaining)
    elif remaining:
        _run_workers(config, out, remaining, args.workers)
    summary = tuning.summarize(study, args.model, fixed, out)
    if "best_params" not in summary:
        raise InputError(f"no trial of study {study_name!r} finished; see {out / 'trials.csv'}.")
    if not args.quiet:
        shown = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in summary["best_sampled"].items()
        )
        print(f"best validation score {summary['best_value']:.4f} (trial {summary['best_trial']}): {shown}")
        print(f"trials {summary['trials']}, epochs run {summary['epochs_run']} -> {out}")
    if args.then_train:
        from deepatlas.runs import train_run

        model = build_model(args.model, ds.task, dict(summary["best_params"]))
        metrics = train_run(model, ds, out / "best-run", data_spec=args.data, seed=args.seed, quiet=True)
        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k.startswith("test_"))
        print(f"best configuration trained: {shown} -> {out / 'best-run'}")
    return 0


def _run_workers(config: dict, out: Path, remaining: int, workers: int) -> None:
    """Start ``workers`` processes on one study, each with its share of the remaining trials."""
    from deepatlas._io import write_json

    procs = []
    for i in range(workers):
        quota = remaining // workers + (i < remaining % workers)
        if quota == 0:
            continue
        path = out / f".worker-{i}.json"
        write_json(path, dict(config, quota=quota, worker=i))
        procs.append(subprocess.Popen([sys.executable, "-m", "deepatlas.tuning", str(path)]))
    failed = [p.wait() for p in procs]
    if any(failed):
        print(f"deepatlas tune: {sum(1 for r in failed if r)} worker(s) exited with an error", file=sys.stderr)


def add_parser(sub) -> None:
    from deepatlas.commands._args import add_data_args, add_param_args, add_table_args

    p = sub.add_parser("tune", help="search hyperparameters with Optuna (TPE, pruning, resumable study)")
    p.add_argument("model", help="registry name (see 'deepatlas list models')")
    add_data_args(p)
    add_param_args(p)
    add_table_args(p)
    p.add_argument("--trials", type=int, required=True, metavar="N", help="finished trials the study should hold")
    p.add_argument("--timeout", type=float, metavar="S", help="stop starting new trials after S seconds")
    p.add_argument("--storage", metavar="URL",
                   help="SQLAlchemy URL of the study (default: sqlite in --out; postgresql+psycopg://user:pass@host:5432/db "
                   "for workers on several machines, with the [tune-pg] extra)")  # fmt: skip
    p.add_argument("--study", metavar="NAME", help="study name (default <model>-<data>)")
    p.add_argument("--space", metavar="FILE", help="search space as YAML or JSON (default: the model's own)")
    p.add_argument("--workers", type=int, default=1, metavar="K", help="worker processes on one study (default 1)")
    p.add_argument("--pruner", choices=("halving", "median", "none"), default="halving",
                   help="pruning rule: successive halving (default), median stopping rule, or none")  # fmt: skip
    p.add_argument("--out", metavar="DIR", help="output directory (default runs/tune-<model>-<data>-<time>)")
    p.add_argument("--then-train", action="store_true", help="train the best configuration into DIR/best-run")
    p.add_argument("--quiet", action="store_true", help="print less")
    p.set_defaults(func=cmd_tune)

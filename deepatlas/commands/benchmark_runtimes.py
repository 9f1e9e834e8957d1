"""``deepatlas benchmark-runtimes RUN``: latency, throughput and accuracy of the run's model in torch
eager, torch.compile, onnxruntime, OpenVINO and LiteRT, float and int8, on this machine.

Writes ``RUN/runtimes.json`` (the rows), ``RUN/plots/runtimes.png`` and the table into
``RUN/report.html``; prints the table. Runtimes whose extra is absent get a row that says so.
"""

from __future__ import annotations


def cmd_benchmark_runtimes(args) -> int:
    from pathlib import Path

    from deepatlas._io import to_jsonable, write_json
    from deepatlas.data import load_dataset
    from deepatlas.errors import InputError
    from deepatlas.export.runtimes import benchmark_runtimes, plot, table
    from deepatlas.preprocessing import run_options
    from deepatlas.saving import load

    run = Path(args.run)
    for name, value, low in (("--threads", args.threads, 1), ("--rounds", args.rounds, 1)):
        if value < low:
            raise InputError(f"{name} must be a positive int. Got {value} instead.")
    estimator = load(run)
    config = estimator.run_config_
    if not config.get("data"):
        raise InputError(f"Run {str(run)!r} records no data; benchmark-runtimes needs its test split for accuracy.")
    ds = load_dataset(
        config["data"],
        target=config.get("target_name"),
        task=config.get("data_task"),
        seed=config.get("seed") or 0,
        preprocess=run_options(config),
    )
    rows = benchmark_runtimes(
        estimator, ds.X_test, ds.y_test, ds.X_train, threads=args.threads, rounds=args.rounds, quantize=not args.no_int8
    )
    metric = "accuracy" if config.get("task") != "regression" else "r2"
    title = f"{config.get('model')} on {config['data']}, {args.threads} thread(s)"
    write_json(run / "runtimes.json", to_jsonable({"title": title, "metric": metric, "rows": rows}))
    (run / "plots").mkdir(exist_ok=True)
    plot(rows, run / "plots" / "runtimes.png", title)
    from deepatlas.evaluation.report import write_report

    report = write_report(run)
    print(title)
    print(table(rows, metric))
    print(f"-> {run / 'runtimes.json'}, {run / 'plots' / 'runtimes.png'}, {report}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser(
        "benchmark-runtimes",
        help="latency, throughput and accuracy of a run's model in torch, torch.compile, onnxruntime, OpenVINO, LiteRT",
    )
    p.add_argument("run", help="run directory")
    p.add_argument("--threads", type=int, default=2, help="threads for every runtime (default 2)")
    p.add_argument("--rounds", type=int, default=5, help="timing rounds, runtimes alternated (default 5)")
    p.add_argument("--no-int8", action="store_true", help="skip the int8 files (no quantisation)")
    p.set_defaults(func=cmd_benchmark_runtimes)

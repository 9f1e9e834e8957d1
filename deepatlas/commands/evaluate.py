"""``deepatlas evaluate RUN``: score a trained run on its test split (or other data) and write
``evaluation.json``, the plots and ``report.html`` into the run directory."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepatlas.commands._args import add_data_args, add_labels_arg, seed_arg
from deepatlas.errors import InputError


def _load_data(args, config: dict, model=None):
    from deepatlas.data import load_dataset

    spec = args.data or config.get("data")
    if not spec:
        raise InputError(f"Run {args.run!r} does not record the data it was trained on; pass --data D.")
    # Re-draw the run's own split of a user file: same seed, same target column, same task.
    seed = config.get("seed", 0) if args.seed is None else args.seed
    target = args.target if args.target or args.data else config.get("target_name")
    task = args.task or config.get("data_task") or config.get("task")
    if task not in ("classification", "regression"):
        task = None
    text = args.text
    if text is None and getattr(model, "_input_kind", None) == "text":
        text = (config.get("feature_names") or [None])[0]  # the run's own text column
    from deepatlas.preprocessing import run_options

    options = run_options(config)  # the run's own options: its own split refits the very same encoding
    seed = seed if seed is not None else 0
    labels = getattr(args, "labels", None)
    return spec, load_dataset(spec, target=target, task=task, seed=seed, text=text, preprocess=options, labels=labels)


def _whole_table(args, config: dict, model, kind: str):
    """Every row of the CSV ``--data FILE`` (a test set), read through the run's own encoding.
    Returns ``(X, y, task)``."""
    from deepatlas.data.core import infer_task
    from deepatlas.data.files import read_csv_cells
    from deepatlas.preprocessing import frame_from_rows

    path = Path(args.data)
    pre = model.preprocessor_
    target = args.target or config.get("target_name")
    header, body, labels, _ = read_csv_cells(path, target=target)
    absent = [c for c in pre.feature_names_in_ if c not in header]
    if absent:
        raise InputError(
            f"--data {args.data!r} lacks the training column(s) {', '.join(map(repr, absent))}; "
            f"run {args.run!r} was trained on {', '.join(pre.feature_names_in_)}."
        )
    keep = [header.index(c) for c in pre.feature_names_in_]
    frame = frame_from_rows(list(pre.feature_names_in_), [[row[j] for j in keep] for row in body])
    X, report = pre.transform(frame, where=f"--data {args.data!r}")
    for line in type(pre).describe(report):
        print(f"note: {line}")
    y, task = infer_task(labels, args.task or kind)
    return X, y, task


def _all_rows(ds):
    """Every row of a loaded file: the union of its splits (its test split when a part has no labels)."""
    parts = [(ds.X_train, ds.y_train), (ds.X_val, ds.y_val), (ds.X_test, ds.y_test)]
    if any(y is None for _, y in parts):
        return ds.X_test, ds.y_test
    return np.concatenate([X for X, _ in parts]), np.concatenate([y for _, y in parts])


def cmd_evaluate(args) -> int:
    from deepatlas.evaluation import evaluate
    from deepatlas.evaluation.core import format_table
    from deepatlas.evaluation.metrics import model_kind
    from deepatlas.saving import load

    model = load(args.run)
    config = model.run_config_
    kind = model_kind(model)
    from deepatlas.data.files import looks_like_path

    whole = bool(args.data) and looks_like_path(args.data) and Path(args.data).exists()
    if whole and args.split is not None:
        raise InputError(
            f"--split applies to the run's own data; --data {args.data!r} is a file, scored whole (a test set)."
        )
    split = args.split or "test"
    table = whole and getattr(model, "preprocessor_", None) is not None and args.data.lower().endswith((".csv", ".tsv"))
    if table:  # the run's own encoding of raw columns, no split, no refit
        spec, (X, y, task) = args.data, _whole_table(args, config, model, kind)
    else:
        spec, ds = _load_data(args, config, model)
        task = ds.task
        X, y = _all_rows(ds) if whole else (getattr(ds, f"X_{split}"), getattr(ds, f"y_{split}"))
    if task != kind:
        raise InputError(f"Run {args.run!r} holds a {kind} model, but --data {spec!r} is {task} data.")
    if y is None:
        raise InputError(f"--data {spec!r} has no targets in its {split} split; evaluation needs labels.")
    flat = getattr(model, "_input_kind", "features") == "features"  # sequence/text models check their own input
    shape = tuple(getattr(model, "input_shape_", ()) or config.get("sample_shape") or ()) if flat else ()
    if shape and X.shape[1:] != shape and int(np.prod(X.shape[1:])) == int(np.prod(shape)):
        X = X.reshape(len(X), *shape)  # e.g. flattened 8x8 images from a CSV
    n_in = getattr(model, "n_features_in_", None)
    if flat and n_in is not None and int(np.prod(X.shape[1:])) != int(n_in):
        raise InputError(
            f"--data {spec!r} has {int(np.prod(X.shape[1:]))} features per sample, "
            f"but run {args.run!r} was trained on {int(n_in)}."
        )
    if kind == "classification":
        unknown = np.setdiff1d(np.unique(y), np.asarray(model.classes_))
        if len(unknown):
            shown = ", ".join(repr(v.item() if isinstance(v, np.generic) else v) for v in unknown[:8])
            known = ", ".join(
                repr(v.item() if isinstance(v, np.generic) else v) for v in np.asarray(model.classes_)[:12]
            )
            raise InputError(
                f"--data {spec!r} has labels [{shown}] that run {args.run!r} was not trained on; its classes are [{known}]."
            )
    out = Path(args.out) if args.out else Path(args.run)
    name = config.get("model", type(model).__name__)
    shown = "all" if whole else split  # evaluation.json's "split": the split's name, or "all" for a whole file
    result = evaluate(model, X, y, out=out, title=f"{name} on {spec}", data=spec, split=shown, run=str(args.run))
    if whole:
        print(f"{name} on {spec}: scored all {result['n_samples']} rows of the file (a test set; no split)")
    else:
        print(f"{name} on {spec} ({split} split, {result['n_samples']} samples)")
    print(format_table(list(result["metrics"].items())))
    per_class = result.get("per_class") or {}
    if per_class and len(per_class) <= 20:
        print(f"  {'class':<10} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>8}")
        for c, v in per_class.items():
            print(f"  {c:<10} {v['precision']:>9.4f} {v['recall']:>9.4f} {v['f1']:>9.4f} {v['support']:>8d}")
    for note in result.get("notes") or []:
        print(f"note: {note}")
    print(f"wrote evaluation.json, {len(result['plots'])} plots and report.html -> {out}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser(
        "evaluate", help="metrics, confusion matrix, ROC/PR curves, calibration and report.html for a run"
    )
    p.add_argument("run", help="run directory (from deepatlas train)")
    add_data_args(p, required=False)
    add_labels_arg(p)
    p.add_argument(
        "--split",
        choices=("test", "val", "train"),
        default=None,
        help="which split of the run's own data to score (default test); a --data FILE is scored whole",
    )
    p.add_argument("--seed", type=seed_arg, default=None, help="split seed for user files (default: the run's own)")
    p.add_argument("--out", metavar="DIR", help="where to write the results (default: the run directory)")
    p.set_defaults(func=cmd_evaluate)

"""``deepatlas evaluate RUN``: score a trained run on its test split (or other data) and write
``evaluation.json``, the plots and ``report.html`` into the run directory."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepatlas.commands._args import add_data_args, seed_arg
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
    return spec, load_dataset(spec, target=target, task=task, seed=seed if seed is not None else 0, text=text)


def cmd_evaluate(args) -> int:
    from deepatlas.evaluation import evaluate
    from deepatlas.evaluation.core import format_table
    from deepatlas.evaluation.metrics import model_kind
    from deepatlas.saving import load

    model = load(args.run)
    config = model.run_config_
    kind = model_kind(model)
    spec, ds = _load_data(args, config, model)
    if ds.task != kind:
        raise InputError(f"Run {args.run!r} holds a {kind} model, but --data {spec!r} is {ds.task} data.")
    X, y = getattr(ds, f"X_{args.split}"), getattr(ds, f"y_{args.split}")
    if y is None:
        raise InputError(f"--data {spec!r} has no targets in its {args.split} split; evaluation needs labels.")
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
    result = evaluate(model, X, y, out=out, title=f"{name} on {spec}", data=spec, split=args.split, run=str(args.run))
    print(f"{name} on {spec} ({args.split} split, {result['n_samples']} samples)")
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
    p.add_argument(
        "--split", choices=("test", "val", "train"), default="test", help="which split to score (default test)"
    )
    p.add_argument("--seed", type=seed_arg, default=None, help="split seed for user files (default: the run's own)")
    p.add_argument("--out", metavar="DIR", help="where to write the results (default: the run directory)")
    p.set_defaults(func=cmd_evaluate)

"""``deepatlas learning-curve MODEL --data D``: training and validation score against the
training-set size (k-fold, a fresh model per size and fold) and, with ``--epochs-curve``,
against epochs — the gap between the two curves shows over-fitting, two low curves under-fitting."""

from __future__ import annotations

import sys
from pathlib import Path

from deepatlas.commands._args import add_data_args, add_param_args, collect_params
from deepatlas.errors import InputError
from deepatlas.registry import build_model


def _sizes(text: str) -> list[float]:
    try:
        sizes = [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise InputError(
            f"--sizes expects comma-separated fractions such as 0.1,0.5,1. Got {text!r} instead."
        ) from None
    if not sizes or any(not 0 < s <= 1 for s in sizes):
        raise InputError(f"--sizes expects fractions in (0, 1]. Got {text!r} instead.")
    return sizes


def cmd_learning_curve(args) -> int:
    from deepatlas.data import load_dataset
    from deepatlas.evaluation import development_data, epochs_curve, learning_curve, save_curves
    from deepatlas.evaluation.core import default_out
    from deepatlas.runs import claim_output_dir

    out = Path(args.out) if args.out else default_out("learning-curve", args.model, args.data)
    note = claim_output_dir(out, overwrite=args.overwrite, what="the learning-curve report")
    if note:
        print(note, file=sys.stderr)
    ds = load_dataset(args.data, target=args.target, task=args.task, seed=args.seed)
    model = build_model(args.model, ds.task, collect_params(args))
    X, y = development_data(ds)
    size = learning_curve(
        model, X, y, train_sizes=_sizes(args.sizes), folds=args.folds, seed=args.seed, metric=args.metric
    )
    by_epoch = None
    if args.epochs_curve:
        by_epoch = epochs_curve(model, ds.X_train, ds.y_train, ds.X_val, ds.y_val, metric=args.metric)
    save_curves(size, by_epoch, out, data=args.data)
    print(f"{args.model} on {ds.name}: {size['metric']} against training-set size ({args.folds}-fold)")
    print(f"  {'samples':>8} {'training':>10} {'validation':>11}")
    for n, t, v, s in zip(size["train_sizes"], size["train_mean"], size["val_mean"], size["val_std"]):
        print(f"  {n:>8d} {t:>10.4f} {v:>11.4f} ± {s:.4f}")
    if by_epoch:
        print(f"{size['metric']} against epochs ({by_epoch['method']}; training / validation split of {ds.name})")
        ep = by_epoch["epochs"]
        step = max(1, len(ep) // 10)
        for i in sorted(set(range(0, len(ep), step)) | {len(ep) - 1}):
            print(f"  epoch {ep[i]:>4d} {by_epoch['train_scores'][i]:>10.4f} {by_epoch['val_scores'][i]:>11.4f}")
    print(f"wrote learning_curve.json, plots and report.html -> {out}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("learning-curve", help="training and validation score against training-set size (and epochs)")
    p.add_argument("model", help="registry name (see 'deepatlas list models')")
    add_data_args(p)
    add_param_args(p)
    p.add_argument("--folds", type=int, default=5, metavar="K", help="number of folds (default 5)")
    p.add_argument("--sizes", default="0.1,0.325,0.55,0.775,1.0", help="training-set fractions (default 0.1,...,1)")
    p.add_argument("--epochs-curve", action="store_true", help="also score after every epoch (early stopping off)")
    p.add_argument("--metric", help="measure to plot (default accuracy for classifiers, r2 for regressors)")
    p.add_argument(
        "--out", metavar="DIR", help="where to write the curves, plots, report.html (default runs/learning-curve-...)"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a non-empty --out: its old contents are first moved aside to DIR.old-<time>",
    )
    p.set_defaults(func=cmd_learning_curve)

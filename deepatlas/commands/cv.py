"""``deepatlas cv MODEL --data D``: (repeated) stratified k-fold cross-validation, each fold
trained from scratch with its own preprocessing; per-fold scores and mean ± std."""

from __future__ import annotations

import sys
from pathlib import Path

from deepatlas.commands._args import add_data_args, add_param_args, add_table_args, collect_params, load_data
from deepatlas.registry import build_model


def cmd_cv(args) -> int:
    from deepatlas.evaluation import cross_validate, development_data, save_cv
    from deepatlas.evaluation.core import default_out, pm
    from deepatlas.runs import claim_output_dir

    out = Path(args.out) if args.out else default_out("cv", args.model, args.data)
    note = claim_output_dir(out, overwrite=args.overwrite, what="the cross-validation report")
    if note:
        print(note, file=sys.stderr)
    ds = load_data(args)
    model = build_model(args.model, ds.task, collect_params(args))
    X, y = development_data(ds)
    result = cross_validate(model, X, y, folds=args.folds, repeats=args.repeats, seed=args.seed)
    save_cv(result, out, data=args.data)
    metrics = list(result["scores"])
    print(
        f"{args.model} on {ds.name}: {args.folds}-fold x {args.repeats} on {len(y)} samples "
        "(training + validation splits; the test split is left untouched)"
    )
    print("  fold  " + "  ".join(f"{m:>10.10}" for m in metrics) + "   fit s")
    for i in range(len(result["fit_time"])):
        row = "  ".join(f"{result['scores'][m][i]:>10.4f}" for m in metrics)
        print(f"  {i + 1:>4}  {row}  {result['fit_time'][i]:>6.2f}")
    for m in metrics:
        print(f"  {m:<18} {pm(result['summary'][m])}   (training {pm(result['train_summary'][m])})")
    print(f"wrote cv.json, plots and report.html -> {out}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("cv", help="stratified (repeated) k-fold cross-validation of a model")
    p.add_argument("model", help="registry name (see 'deepatlas list models')")
    add_data_args(p)
    add_param_args(p)
    add_table_args(p)
    p.add_argument("--folds", type=int, default=5, metavar="K", help="number of folds (default 5)")
    p.add_argument("--repeats", type=int, default=1, metavar="R", help="repetitions with reshuffled folds (default 1)")
    p.add_argument("--out", metavar="DIR", help="where to write cv.json, plots, report.html (default runs/cv-...)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a non-empty --out: its old contents are first moved aside to DIR.old-<time>",
    )
    p.set_defaults(func=cmd_cv)

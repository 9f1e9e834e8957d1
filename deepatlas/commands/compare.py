"""``deepatlas compare MODEL MODEL ... --data D``: the models on identical folds, mean ± std per
measure with fit time, a box plot, and a corrected resampled t-test (Nadeau & Bengio, 2003) of
every pair, Holm-adjusted, saying which differences are significant.

``--set name=value`` goes to every model that has the parameter; ``--set MODEL.name=value``
(a model's name, or its position 1, 2, ...) to one model only, so one model can be compared
with itself under two settings: ``compare mlp mlp --set 2.dropout=0.5``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from deepatlas._validation import suggest
from deepatlas.commands._args import add_data_args, add_param_args, add_table_args, collect_params, load_data
from deepatlas.errors import InputError
from deepatlas.registry import build_model


def _labels(names: list[str]) -> list[str]:
    return [f"{n}#{i + 1}" if names.count(n) > 1 else n for i, n in enumerate(names)]


def build_models(names: list[str], task: str, params: dict) -> dict:
    """One estimator per name, with global and per-model (``MODEL.param``) settings."""
    from deepatlas.registry import get_model_class

    labels = _labels(names)
    common = {k: v for k, v in params.items() if "." not in k}
    own: list[dict] = [{} for _ in names]
    for key, value in params.items():
        if "." not in key:
            continue
        prefix, _, name = key.partition(".")
        hits = [i for i, n in enumerate(names) if prefix in (n, labels[i], str(i + 1))]
        if not hits:
            raise InputError(
                f"--set {key}=...: {prefix!r} names no model in the comparison; use one of "
                f"{', '.join(labels)} or a position 1..{len(names)}."
            )
        for i in hits:
            own[i][name] = value
    models = {}
    for i, name in enumerate(names):
        valid = get_model_class(name, task)._get_param_names()
        shared = {k: v for k, v in common.items() if k in valid or k in ("seed", "verbose")}
        models[labels[i]] = build_model(name, task, {**shared, **own[i]})
    valid_any = sorted({k for m in models.values() for k in m.get_params(deep=False)})
    for key in common:
        if key not in ("seed", "verbose") and key not in valid_any:
            hint = suggest(key, valid_any) or f" Parameters of these models: {', '.join(valid_any)}."
            raise InputError(f"--set {key}=...: no model in the comparison has a parameter {key!r}.{hint}")
    return models


def cmd_compare(args) -> int:
    from deepatlas.evaluation import compare, development_data, save_compare
    from deepatlas.evaluation.core import default_out, pm
    from deepatlas.runs import claim_output_dir

    if len(args.models) < 2:
        raise InputError(f"compare needs at least 2 models. Got {len(args.models)}: {', '.join(args.models)}.")
    out = Path(args.out) if args.out else default_out("compare", "-".join(args.models), args.data)
    note = claim_output_dir(out, overwrite=args.overwrite, what="the comparison report")
    if note:
        print(note, file=sys.stderr)
    ds = load_data(args)
    models = build_models(args.models, ds.task, collect_params(args))
    X, y = development_data(ds)
    result = compare(
        models, X, y, folds=args.folds, repeats=args.repeats, seed=args.seed, metric=args.metric, alpha=args.alpha
    )
    save_compare(result, out, data=args.data)
    shown = [
        m
        for m in ("accuracy", "balanced_accuracy", "f1_macro", "roc_auc", "log_loss", "mse", "mae", "r2")
        if m in next(iter(result["models"].values()))["scores"]
    ]
    if result["metric"] not in shown:
        shown.insert(0, result["metric"])
    width = max(len(label) for label in result["models"]) + 2
    print(f"{len(models)} models on {ds.name}: {args.folds}-fold x {args.repeats}, identical folds, {len(y)} samples")
    print(f"  {'model':<{width}}" + "".join(f"{m:>22}" for m in shown) + f"{'fit s':>18}")
    for label, r in result["models"].items():
        cells = "".join(f"{pm(r['summary'][m]):>22}" for m in shown)
        print(f"  {label:<{width}}{cells}{pm(r['summary']['fit_time']):>18}")
    print(f"paired tests on {result['metric']} ({result['test']}):")
    for p in result["pairs"]:
        print(
            f"  {p['a']} - {p['b']}: difference {p['mean_difference']:+.4f}, t {p['t']:.3f}, "
            f"p {p['p']:.4f}, Holm p {p['p_holm']:.4f}: {p['verdict']}"
        )
    print(f"wrote compare.json, plots and report.html -> {out}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("compare", help="compare models on identical folds with a corrected resampled t-test")
    p.add_argument("models", nargs="+", metavar="MODEL", help="two or more registry names")
    add_data_args(p)
    add_param_args(p)
    add_table_args(p)
    p.add_argument("--folds", type=int, default=5, metavar="K", help="number of folds (default 5)")
    p.add_argument("--repeats", type=int, default=1, metavar="R", help="repetitions with reshuffled folds (default 1)")
    p.add_argument("--metric", help="measure to test (default accuracy for classifiers, r2 for regressors)")
    p.add_argument(
        "--alpha", type=float, default=0.05, help="significance level after Holm's adjustment (default 0.05)"
    )
    p.add_argument(
        "--out", metavar="DIR", help="where to write compare.json, plots, report.html (default runs/compare-...)"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a non-empty --out: its old contents are first moved aside to DIR.old-<time>",
    )
    p.set_defaults(func=cmd_compare)

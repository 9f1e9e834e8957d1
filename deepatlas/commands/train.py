"""``deepatlas train MODEL --data D``: fit a registered model and write a run directory
(``--nproc N`` relaunches itself under torchrun; ``--resume`` continues from the checkpoint).

``--out`` is never overwritten by accident: a non-empty folder other than an unfinished run of
the same settings is refused unless ``--overwrite`` (which renames it to ``DIR.old-<time>``
first); ``--resume`` refuses a folder without a checkpoint, a finished run and changed settings
(see :func:`deepatlas.runs.check_out_dir` and :func:`deepatlas.runs.claim_run_dir`)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from deepatlas.commands._args import add_data_args, add_param_args, add_table_args, collect_params, preprocess_options
from deepatlas.errors import InputError


def _default_out(model: str, data: str) -> Path:
    stem = Path(data.split(":")[0]).stem if ("/" in data or "." in data) else data.split(":")[0]
    return Path("runs") / f"{model}-{stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def cmd_train(args) -> int:
    from deepatlas._io import check_writable
    from deepatlas.data import load_dataset
    from deepatlas.registry import build_model, get_entry, get_model_class
    from deepatlas.runs import (
        check_out_dir,
        claim_run_dir,
        removed_if_it_fails,
        run_settings,
        starts_afresh,
        train_run,
    )
    from deepatlas.training import distributed

    if args.data is None:  # a model may name its own default data (charlm: pydoc-text)
        args.data = getattr(get_model_class(args.model), "default_data", None)
        if args.data is None:
            raise InputError("the following arguments are required: --data")
    params = collect_params(args)
    if args.log:
        params["log"] = args.log  # written into the run directory (the estimator's log_dir default)
    out = Path(args.out) if args.out else _default_out(args.model, args.data)
    if args.resume and not args.out:
        raise InputError("--resume needs --out DIR: the run directory whose checkpoint to continue.")
    # --out is checked (and moved aside under --overwrite) once, here or in the launcher: a
    # torchrun worker finds it already claimed, and rank 0 may have started writing.
    worker = distributed.world_size() > 1
    if not worker:
        check_out_dir(out, resume=args.resume, overwrite=args.overwrite)
        check_writable(out, "--out", directory=True)
    val, test = getattr(args, "val", None), getattr(args, "test", None)
    if val is not None or test is not None:  # CoNLL files of tagged sentences
        from deepatlas.data.ner import is_conll, load_conll

        if not is_conll(args.data):
            raise InputError(
                f"--val and --test go with CoNLL files (.conll, .iob, .bio, .bioes); --data is {args.data!r}."
            )
        ds = load_conll(args.data, val=val, test=test, seed=args.seed)
    else:
        ds = load_dataset(
            args.data,
            target=args.target,
            task=args.task,
            seed=args.seed,
            text=getattr(args, "text", None),
            preprocess=preprocess_options(args),
            labels=args.labels,
        )
    if args.nproc is None and distributed.is_main_process():  # once: rank 0, not the torchrun launcher
        for note in ds.meta.get("notes") or []:  # what the table's preprocessing did (an ID-like column, ...)
            print(f"note: {note}", file=sys.stderr)
    if ds.meta.get("corpus"):  # a plain-text corpus trains only a language model
        entry = get_entry(args.model)
        if "text" not in entry.classes and not any(getattr(c, "_reads_corpus", False) for c in entry.classes.values()):
            raise InputError(
                f"--data {args.data!r} is a text corpus, which only a language model (charlm) trains on; "
                f"{args.model!r} needs a table: a .csv with a header row (text in a column: --text COLUMN), "
                "an .npz with X and y, or a built-in dataset."
            )
    model = build_model(args.model, ds.task, params)
    # Every parameter (and, for --nproc, data-parallel training) is checked here, before the run
    # directory is claimed and before torchrun starts N copies that would each fail alike.
    if hasattr(model, "_validate_params"):
        model._validate_params()
        if args.nproc is not None and not getattr(model, "_data_parallel", True):
            raise InputError(model._not_data_parallel())
    # A new run that fails before its first checkpoint leaves no folder behind to block a retry.
    fresh = not worker and starts_afresh(out, resume=args.resume, overwrite=args.overwrite)
    if not worker:
        note = claim_run_dir(
            out, run_settings(model, ds, args.data, args.seed), resume=args.resume, overwrite=args.overwrite
        )
        if note:
            print(note, file=sys.stderr)
    if args.nproc is not None:
        # Resolve the run directory here so that every process writes (rank 0) the same one.
        argv = _without_nproc(sys.argv[1:] if args.argv is None else args.argv)
        if not args.out:
            argv += ["--out", str(out)]
        return distributed.launch_torchrun(args.nproc, argv)
    if not args.quiet and hasattr(model, "verbose"):
        model.set_params(verbose=True)
    with removed_if_it_fails(out, fresh):
        metrics = train_run(model, ds, out, data_spec=args.data, seed=args.seed, resume=args.resume, quiet=args.quiet)
    if not distributed.is_main_process():
        return 0
    if not args.quiet:
        print(
            f"{args.model} on {ds.name}: {_headline(metrics)}{_epochs_note(model)} (fit {metrics['fit_seconds']:.1f} s) -> {out}"
        )
    else:
        print(out)
    return 0


_NOT_HEADLINE = ("fit_seconds", "epochs_run", "n_")


def _headline(metrics: dict) -> str:
    """The test scores, or, for a family without them (GANs: mode coverage, FID; coders), its own
    first measures: never an empty summary."""

    def fmt(k, v):
        return f"{k} {v}" if isinstance(v, int) else f"{k} {v:.4f}"

    numbers = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    shown = [fmt(k, v) for k, v in numbers.items() if k.startswith("test_")]
    if not shown:
        shown = [fmt(k, v) for k, v in numbers.items() if not k.startswith(_NOT_HEADLINE)][:5]
    return ", ".join(shown) or "no measures"


def _epochs_note(model) -> str:
    """``; best epoch 36 of 56 (early stopping)`` for a model trained in epochs."""
    n, best = getattr(model, "n_epochs_", None), getattr(model, "best_epoch_", None)
    if not isinstance(n, int) or not isinstance(best, int):
        return ""
    stopped = " (early stopping)" if getattr(model, "stopped_early_", False) else ""
    return f"; best epoch {best} of {n}{stopped}"


def _without_nproc(argv: list[str]) -> list[str]:
    out, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item == "--nproc":
            skip = True
        elif not item.startswith("--nproc="):
            out.append(item)
    return out


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model on a dataset into a run directory")
    p.add_argument("model", help="registry name (see 'deepatlas list models')")
    add_data_args(p, required=False)  # required unless the model names default data
    add_param_args(p)
    add_table_args(p)
    p.add_argument("--out", metavar="DIR", help="run directory (default runs/<model>-<data>-<time>)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted run in --out from its checkpoint (same settings; --epochs may grow)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a non-empty --out: its old contents are first moved aside to DIR.old-<time>",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary; print only the run directory")
    p.add_argument(
        "--log",
        choices=("csv", "tensorboard"),
        help="per-epoch log in the run directory: log.csv, or tensorboard/ (pip install 'deepatlas[tensorboard]')",
    )
    p.add_argument(
        "--nproc", type=int, metavar="N", help="train data-parallel on N local processes (launches torchrun)"
    )
    p.set_defaults(func=cmd_train)

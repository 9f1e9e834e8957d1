"""``deepatlas transfer --from RUN --data D``: fine-tune a trained network on a new task and
compare it with the same network trained from scratch on the same labels.

Writes a run directory (``--out``): the transferred model (loadable by ``predict``), the
scratch model in ``scratch/``, both learning curves in ``plots/transfer-vs-scratch.png`` and
both scores in ``metrics.json``.
"""

from __future__ import annotations

import time
from pathlib import Path

from deepatlas.errors import InputError


def cmd_transfer(args) -> int:
    import sys

    from deepatlas._io import check_writable
    from deepatlas.commands._args import collect_params
    from deepatlas.data import load_dataset
    from deepatlas.runs import check_out_dir, claim_run_dir
    from deepatlas.saving import load
    from deepatlas.transfer import transfer, write_transfer_run

    source = load(args.source)
    out = (
        Path(args.out)
        if args.out
        else Path("runs") / f"transfer-{args.data.split(':')[0]}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    # Never overwrite by accident, as `deepatlas train`: a non-empty folder is refused unless
    # --overwrite, which moves it aside first (there is no checkpoint, so nothing to resume).
    check_out_dir(out, resume=False, overwrite=args.overwrite)
    check_writable(out, "--out", directory=True)
    ds = load_dataset(args.data, target=args.target, task=args.task, seed=args.seed)
    if args.overwrite:
        note = claim_run_dir(out, {}, resume=False, overwrite=True)  # moves the old folder aside
        if note:
            print(note, file=sys.stderr)
    elif out.is_dir() and any(out.iterdir()):  # what check_out_dir lets through: an unfinished `train` run
        raise InputError(
            f"--out {str(out)!r} holds an unfinished run of deepatlas train, which transfer does not continue; "
            "choose another directory, or pass --overwrite to move it aside and start again."
        )
    params = collect_params(args)
    seed = params.pop("seed", args.seed)
    tuned, scratch, metrics = transfer(
        source, ds, freeze=args.freeze, labels_fraction=args.labels_fraction,
        reuse_lr_factor=args.reuse_lr_factor, params=params, seed=seed,
    )  # fmt: skip
    write_transfer_run(out, tuned, scratch, metrics, source_run=args.source, data_spec=args.data, ds=ds)
    print(
        f"{args.data} with {metrics['n_train_labels']} labels, freeze={args.freeze}: "
        f"transfer test accuracy {metrics['transfer_test_accuracy']:.4f}, "
        f"from scratch {metrics['scratch_test_accuracy']:.4f} -> {out}"
    )
    return 0


def add_parser(sub) -> None:
    from deepatlas.commands._args import add_data_args, add_param_args

    p = sub.add_parser(
        "transfer", help="fine-tune a trained network on new data and compare with training from scratch"
    )
    p.add_argument("--from", dest="source", required=True, metavar="RUN", help="run directory of the trained model")
    add_data_args(p)
    add_param_args(p)
    p.add_argument("--freeze", choices=("none", "features", "all-but-head"), default="none",
                   help="which reused layers stay fixed (default none: fine-tune every layer, which won "
                        "on Fashion-MNIST and 3 of 4 digits/MNIST-1D cells)")  # fmt: skip
    p.add_argument("--labels-fraction", type=float, default=1.0, metavar="F",
                   help="use a stratified fraction F of the training labels (default 1)")  # fmt: skip
    p.add_argument("--reuse-lr-factor", type=float, default=1.0, metavar="R",
                   help="reused layers train at R x lr (default 1; e.g. 0.1 for long fine-tuning on many labels)")  # fmt: skip
    p.add_argument("--out", metavar="DIR", help="run directory (default runs/transfer-<data>-<time>)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a non-empty --out: its old contents are first moved aside to DIR.old-<time>",
    )
    p.set_defaults(func=cmd_transfer)

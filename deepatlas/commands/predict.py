"""``deepatlas predict RUN --input FILE [--output FILE]``: a trained run's predictions as CSV
(the file handling is :mod:`deepatlas.predict`)."""

from __future__ import annotations

import sys


def cmd_predict(args) -> int:
    from deepatlas._io import check_writable
    from deepatlas.predict import predict_file

    if args.output:
        check_writable(args.output, "--output")  # before any work: nothing is computed for nothing
    text = predict_file(args.run, args.input, id_column=args.id)
    if args.output:
        from deepatlas._io import atomic_write_text

        atomic_write_text(args.output, text)
    else:
        sys.stdout.write(text)
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("predict", help="predict with a trained run; writes CSV")
    p.add_argument("run", help="run directory")
    p.add_argument(
        "--input",
        required=True,
        metavar="FILE",
        help=".csv (header row: the training columns, raw, by name), .npz (array X; sequences: optional lengths), "
        ".txt (text models: one document per line), or for image models an image or a folder of images "
        "(resized to the training size)",
    )
    p.add_argument(
        "--id", metavar="COLUMN", help="a CSV column to copy into the output (e.g. an ID dropped in training)"
    )
    p.add_argument("--output", metavar="FILE", help="CSV to write (default: standard output)")
    p.set_defaults(func=cmd_predict)

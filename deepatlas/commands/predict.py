"""``deepatlas predict RUN --input FILE [--output FILE]``: a trained run's predictions as CSV
(the file handling is :mod:`deepatlas.predict`)."""

from __future__ import annotations

import sys


def _scenes_run(run) -> bool:
    """Whether ``run`` holds a detector or segmenter (its answer is images and JSON, not CSV)."""
    import json
    from pathlib import Path

    try:
        return json.loads((Path(run) / "config.json").read_text()).get("task") == "scenes"
    except (OSError, ValueError, AttributeError):
        return False  # predict_file reports a missing or damaged run


def _predict_scenes(args) -> int:
    from deepatlas._io import check_writable
    from deepatlas.errors import InputError
    from deepatlas.models.vision.images import predict_images
    from deepatlas.saving import load

    if not args.output:
        raise InputError("--output DIR is required for a detector or segmenter run (it writes images and JSON).")
    check_writable(args.output, "--output", directory=True)
    for line in predict_images(load(args.run), args.run, args.input, args.output):
        print(line)
    return 0


def _recognition_run(run) -> str | None:
    """``"keypoints"`` or ``"open-set"`` for a pose or recognition run (images in, JSON/CSV and
    drawings out: deepatlas/models/recognition/images.py), else None."""
    import json
    from pathlib import Path

    try:
        task = json.loads((Path(run) / "config.json").read_text()).get("task")
    except (OSError, ValueError, AttributeError):
        return None
    return task if task in ("keypoints", "open-set") else None


def _predict_recognition(args, task: str) -> int:
    from deepatlas._io import check_writable
    from deepatlas.errors import InputError
    from deepatlas.models.recognition import images
    from deepatlas.saving import load

    if not args.output:
        raise InputError(f"--output DIR is required for a {task} run (it writes images, JSON or CSV there).")
    if args.gallery is not None and task != "open-set":
        raise InputError("--gallery applies to embedding runs (open-set recognition), not to a keypoints run.")
    check_writable(args.output, "--output", directory=True)
    model = load(args.run)
    if task == "keypoints":
        lines = images.predict_keypoint_images(model, args.run, args.input, args.output)
    else:
        lines = images.predict_embedding_images(model, args.run, args.input, args.output, args.gallery)
    for line in lines:
        print(line)
    return 0


def cmd_predict(args) -> int:
    from deepatlas._io import check_writable
    from deepatlas.predict import predict_file

    if _scenes_run(args.run):
        return _predict_scenes(args)
    if (task := _recognition_run(args.run)) is not None:
        return _predict_recognition(args, task)
    if getattr(args, "gallery", None) is not None:
        from deepatlas.errors import InputError

        raise InputError("--gallery applies to embedding runs (open-set recognition) only.")
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
    p.add_argument(
        "--gallery",
        metavar="DIR",
        help="embedding runs: identify each input image against these (one sub-folder of images per identity)",
    )
    p.set_defaults(func=cmd_predict)

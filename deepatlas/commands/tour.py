"""``deepatlas tour``: a few minutes' walk through the spine — train a handful of models on the
built-in data and print their test scores, with the ideas each pair shows."""

from __future__ import annotations

import time

from deepatlas.commands._args import seed_arg

TOUR = [
    ("perceptron", "blobs", "a perceptron separates linearly separable data"),
    ("perceptron", "xor", "...and cannot solve XOR (no line separates it)"),
    ("mlp", "xor", "one hidden layer solves XOR"),
    ("mlp", "spirals", "a deeper non-linear model follows two spirals"),
    ("mlp", "digits", "an MLP on 8x8 digit images, read as 64 numbers"),
    ("cnn", "digits", "a CNN on the same images, with shared local filters"),
    ("cnn", "mnist1d", "a 1-D CNN on MNIST-1D, where shift-invariance matters"),
]


def cmd_tour(args) -> int:
    from deepatlas.data import load_dataset
    from deepatlas.registry import build_model

    print(f"{'model':<11} {'data':<9} {'test acc':>8} {'fit s':>6}  what it shows")
    total = time.perf_counter()
    for model_name, data, note in TOUR:
        if args.quick and data == "mnist1d":
            continue
        ds = load_dataset(data)
        model = build_model(model_name, ds.task, {"seed": args.seed})
        start = time.perf_counter()
        if hasattr(model, "early_stopping"):
            model.fit(ds.X_train, ds.y_train, validation_data=(ds.X_val, ds.y_val))
        else:
            model.fit(ds.X_train, ds.y_train)
        seconds = time.perf_counter() - start
        print(f"{model_name:<11} {data:<9} {model.score(ds.X_test, ds.y_test):8.3f} {seconds:6.1f}  {note}", flush=True)
    print(f"total {time.perf_counter() - total:.0f} s. Next: 'deepatlas train MODEL --data D' writes a run directory.")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("tour", help="train a few models on built-in data and print their scores (a few minutes)")
    p.add_argument("--quick", action="store_true", help="skip the slower MNIST-1D step")
    p.add_argument("--seed", type=seed_arg, default=0)
    p.set_defaults(func=cmd_tour)

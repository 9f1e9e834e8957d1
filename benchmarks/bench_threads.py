"""Fit time of small models at 1, 2 and 4 torch threads (issue #28, point 3).

    python benchmarks/bench_threads.py [--repeats 3] [--threads 1 2 4]

Digits MLP (the default 64-256-128-10 network), digits CNN and a GRU classifier on mnist1d, each
for a fixed number of epochs without early stopping, timed interleaved (1, 2, 4, 1, 2, 4, ...) so
that the load of a shared machine hits every setting alike. Prints medians, ratios to one
thread, and the test accuracy of each setting (threads change speed, not results).
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from _common import interleaved  # noqa: E402

from deepatlas import create_model, load_dataset  # noqa: E402


def cases():
    digits = load_dataset("digits")
    m1d = load_dataset("mnist1d")
    common = {"early_stopping": False, "device": "cpu"}
    return {
        "mlp digits (30 ep)": ("mlp", digits, {"epochs": 30, **common}),
        "cnn digits (5 ep)": ("cnn", digits, {"epochs": 5, **common}),
        "gru mnist1d (2 ep)": ("gru", m1d, {"epochs": 2, **common}),
    }


def fitter(name, ds, params, threads):
    def run():  # the estimator sets torch's thread count for its fit and restores it after
        model = create_model(name, task=ds.task, threads=threads, **params).fit(ds.X_train, ds.y_train)
        return model.score(ds.X_test, ds.y_test)

    return run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2, 4])
    args = ap.parse_args()
    print(
        f"torch {torch.__version__}, default threads {torch.get_num_threads()}, cpus {os.cpu_count()}, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    for label, (name, ds, params) in cases().items():
        res = interleaved({t: fitter(name, ds, params, t) for t in args.threads}, repeats=args.repeats)
        base = res[args.threads[0]][0]
        row = "  ".join(f"{t} thr {s:6.2f} s ({s / base:4.2f}x, acc {acc:.3f})" for t, (s, acc) in res.items())
        print(f"{label:20s} {row}  load {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()

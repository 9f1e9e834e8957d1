"""How fit time grows with the work, for deepatlas and each peer of ``bench_peers.py`` (issue #27,
point 2): the MLP's fit time against training rows (1,875 -> 60,000 Fashion-MNIST images), hidden
width (64 -> 1,024; 3,000 rows) and depth (1 -> 4 hidden layers of 256; 3,000 rows); prediction latency and throughput against
batch size; log-log plots with the least-squares slope of each curve.

Every contender fits the same network (784 -> hidden -> 10, ReLU, the default dropout 0.3; no
dropout for scikit-learn, which has none) with Adam lr 1e-3, batch 200, one epoch per fit (time per
epoch is what scales), one thread, in this one process (warm: import costs are
``bench_peers.py``'s). Contenders alternate at every point (A B C A B C ...), after one warm-up fit
each at the start of each sweep; each figure is the median of ``--repeats``.

    python benchmarks/bench_scaling.py [--repeats 3] [--json out.json] [--plot docs/perf-scaling.png]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from bench_peers import FITS, prepare  # noqa: E402

PEERS = ("deepatlas", "sklearn", "skorch", "keras", "lightning-bare")
ROWS = (1875, 7500, 60000)
WIDTHS = (64, 256, 1024)
DEPTHS = (1, 2, 4)
BATCHES = (1, 16, 256, 4096)
BASE = {"hidden": (256,), "dropout": 0.3, "batch": 200, "epochs": 1, "rows": None}


def timed(fns: dict, repeats: int, warmup: bool = True) -> dict[str, float]:
    """Median seconds of each contender, alternating, after one warm-up each (if ``warmup``)."""
    for fn in fns.values() if warmup else ():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def subset(d: dict, rows: int) -> dict:
    return {**d, "X": d["X"][:rows], "y": d["y"][:rows], "Xs": d["Xs"][:rows]}


def sweep(d: dict, axis: str, values, peers, repeats: int) -> dict:
    """{peer: [seconds per value]} for one axis."""
    out: dict[str, list[float]] = {p: [] for p in peers}
    for v in values:
        cfg, data = dict(BASE), d
        if axis == "rows":
            data = subset(d, v)
        elif axis == "width":
            cfg["hidden"], data = (v,), subset(d, 3000)
        else:
            cfg["hidden"], data = (256,) * v, subset(d, 3000)
        fns = {p: (lambda p=p, data=data, cfg=cfg: FITS[p]("mlp", data, cfg, 0)) for p in peers}
        med = timed(fns, repeats, warmup=v == values[0])  # one warm-up per sweep
        for p in peers:
            out[p].append(med[p])
        print(f"{axis}={v}: " + ", ".join(f"{p} {med[p]:.3f}s" for p in peers), file=sys.stderr, flush=True)
    return out


def predictors(d: dict, peers) -> dict:
    """Each peer's MLP of the sweeps' base size as ``fn(X) -> labels`` (trained briefly where the
    tool predicts only after a fit; the weights do not change the time)."""
    import torch

    out = {}
    for p in peers:
        if p == "deepatlas":
            from deepatlas.models.mlp import MLPClassifier

            est = MLPClassifier(hidden_sizes=BASE["hidden"], epochs=1, batch_size=200, early_stopping=False,
                                device="cpu").fit(d["X"][:7500], d["y"][:7500])  # fmt: skip
            out[p] = est.predict
        elif p == "keras":  # untrained: the weights do not change the time
            import keras

            net = keras.Sequential([keras.Input((784,)), keras.layers.Dense(256, activation="relu"),
                                    keras.layers.Dropout(0.3), keras.layers.Dense(10)])  # fmt: skip
            out[p] = lambda X, net=net: np.asarray(net.predict_on_batch(X.reshape(len(X), -1))).argmax(1)
        elif p == "sklearn":
            from sklearn.neural_network import MLPClassifier as SkMLP

            sk = SkMLP(hidden_layer_sizes=(256,), max_iter=1, batch_size=200).fit(
                d["Xs"][:7500].reshape(7500, -1), d["y"][:7500]
            )
            out[p] = lambda X, sk=sk: sk.predict(X.reshape(len(X), -1))
        elif p == "skorch":
            from bench_peers import torch_module
            from skorch import NeuralNetClassifier

            net = NeuralNetClassifier(torch_module("mlp", (1, 28, 28), 10, BASE), criterion=torch.nn.CrossEntropyLoss,
                                      max_epochs=1, batch_size=200, train_split=None, verbose=0)  # fmt: skip
            net.fit(d["Xs"][:2000], d["y"][:2000])
            out[p] = net.predict
        else:  # Lightning: serving is the module's forward, under no_grad
            from bench_peers import torch_module

            mod = torch_module("mlp", (1, 28, 28), 10, BASE).eval()

            def lit_predict(X, mod=mod):
                with torch.no_grad():
                    return mod(torch.from_numpy(X)).argmax(1).numpy()

            out[p] = lit_predict
    return out


def latency(d: dict, peers, repeats: int) -> dict:
    """{peer: [median seconds per call at each batch size]}."""
    preds = predictors(d, peers)
    out: dict[str, list[float]] = {p: [] for p in peers}
    for b in BATCHES:
        X = np.ascontiguousarray(d["Xts"][:b] if b <= len(d["Xts"]) else d["Xts"])
        Xraw = np.ascontiguousarray(d["Xt"][:b])
        n_calls = max(1, 2000 // b)  # enough calls to time small batches

        def many(p, X=X, Xraw=Xraw, n_calls=n_calls):
            inp = Xraw if p == "deepatlas" else X
            for _ in range(n_calls):
                preds[p](inp)

        med = timed({p: (lambda p=p: many(p)) for p in peers}, repeats)
        for p in peers:
            out[p].append(med[p] / n_calls)
        print(f"batch={b}: " + ", ".join(f"{p} {med[p] / n_calls * 1e3:.2f}ms" for p in peers), file=sys.stderr)
    return out


def slope(xs, ys) -> float:
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def plot(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("rows", ROWS, "training rows"), ("width", WIDTHS, "hidden width"), ("depth", DEPTHS, "hidden layers"),
              ("latency", BATCHES, "prediction batch size")]  # fmt: skip
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.2))
    for ax, (key, xs, label) in zip(axes, panels):
        if key not in results:
            continue
        for p, ys in results[key].items():
            if key == "latency":
                ys = [b / t for b, t in zip(xs, ys)]  # throughput, rows/s
            ax.loglog(xs, ys, "o-", label=f"{p} (slope {slope(xs, ys):.2f})")
        ax.set_xlabel(label)
        ax.set_ylabel("rows per second" if key == "latency" else "fit seconds (1 epoch)")
        ax.legend(fontsize=7)
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--peers", nargs="*", default=list(PEERS))
    parser.add_argument("--axes", nargs="*", default=["rows", "width", "depth", "latency"])
    parser.add_argument("--json", help="write the medians here")
    parser.add_argument("--plot", help="write the log-log plots here (PNG)")
    args = parser.parse_args()
    os.environ["KERAS_BACKEND"] = "torch"
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "fashion.npz")
        prepare("fashion-mnist", None, path)
        d = dict(np.load(path))
    results = {}

    def save():
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"threads": args.threads, "repeats": args.repeats, "results": results}, f, indent=1)

    for axis, values in (("rows", ROWS), ("width", WIDTHS), ("depth", DEPTHS)):
        if axis in args.axes:
            results[axis] = sweep(d, axis, values, args.peers, args.repeats)
            save()
    if "latency" in args.axes:
        results["latency"] = latency(d, args.peers, args.repeats)
        save()
    for key, xs in (("rows", ROWS), ("width", WIDTHS), ("depth", DEPTHS), ("latency", BATCHES)):
        if key not in results:
            continue
        print(f"\n### {key}\n")
        unit = "ms per call" if key == "latency" else "s per 1-epoch fit"
        print("| tool | " + " | ".join(str(x) for x in xs) + f" | slope | ({unit})")
        print("|---|" + "---:|" * (len(xs) + 1))
        for p, ys in results[key].items():
            shown = [y * 1e3 if key == "latency" else y for y in ys]
            ratio = ""
            if p != "deepatlas" and "deepatlas" in results[key]:
                ratio = " (deepatlas/tool: " + ", ".join(
                    f"{a / b:.2f}" for a, b in zip(results[key]["deepatlas"], ys)
                ) + ")"  # fmt: skip
            print(f"| {p} | " + " | ".join(f"{y:.3g}" for y in shown) + f" | {slope(xs, ys):.2f} |{ratio}")
    if args.plot:
        plot(results, args.plot)


if __name__ == "__main__":
    main()

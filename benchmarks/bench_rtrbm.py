"""The recurrent temporal RBM on bouncing balls: next-frame squared error against baselines.

Data: ``bouncing-balls:n=400,T=30,size=15,balls=3`` (280 training, 80 test sequences of 30 frames
of 15x15 pixels). Contenders, all scored on the test sequences' frames 1..29 (mean squared error
per pixel):

- RTRBM (defaults: 150 hidden units, CD-1, 30 epochs), and the same without backpropagation
  through time (``bptt=False``);
- a per-frame RBM (150 hidden units, 10 epochs over the training frames): next frame = its
  reconstruction of the current frame (no temporal information);
- an LSTM regressor (deepatlas ``RNNRegressor(cell="lstm")``, 128 units) reading the last 6
  frames (blank frames before the start) and predicting the next frame, outputs clipped to [0, 1];
- the previous frame, and the mean training frame.

Run: ``python benchmarks/bench_rtrbm.py`` (``--seeds 0 1 2``; ``--quick`` for a smaller set).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from deepatlas.data import load_dataset
from deepatlas.models.rbm.rbm import RBM
from deepatlas.models.rbm.rtrbm import (
    RTRBM,
    frame_rbm_next_frame_error,
    next_frame_windows,
    previous_frame_error,
)
from deepatlas.models.rnn.recurrent import RNNRegressor


def run(spec: str, seed: int, lstm_epochs: int) -> dict[str, tuple[float, float]]:
    ds = load_dataset(spec)
    Xtr, Xte = ds.X_train, ds.X_test
    out: dict[str, tuple[float, float]] = {}

    def timed(name, fn):
        start = time.perf_counter()
        err = fn()
        out[name] = (err, time.perf_counter() - start)

    timed("RTRBM", lambda: RTRBM(seed=seed, device="cpu").fit(Xtr).next_frame_error(Xte))
    timed("RTRBM, no BPTT", lambda: RTRBM(bptt=False, seed=seed, device="cpu").fit(Xtr).next_frame_error(Xte))
    frames = Xtr.reshape(-1, Xtr.shape[2])
    timed(
        "per-frame RBM (reconstruct current)",
        lambda: frame_rbm_next_frame_error(RBM(n_hidden=150, epochs=10, seed=seed, device="cpu").fit(frames), Xte),
    )

    def lstm():
        Wtr, ytr = next_frame_windows(Xtr, 6)
        Wte, yte = next_frame_windows(Xte, 6)
        net = RNNRegressor(cell="lstm", hidden_size=128, epochs=lstm_epochs, seed=seed, device="cpu")
        net.fit(Wtr, ytr)
        return float(((np.clip(net.predict(Wte), 0, 1) - yte) ** 2).mean())

    timed("LSTM (last 6 frames)", lstm)
    out["previous frame"] = (previous_frame_error(Xte), 0.0)
    out["mean training frame"] = (float(((Xte[:, 1:] - Xtr.mean((0, 1))) ** 2).mean()), 0.0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--quick", action="store_true", help="100 sequences of 20 frames, 10 LSTM epochs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    spec = "bouncing-balls:n=100,T=20,size=15" if args.quick else "bouncing-balls:n=400,T=30,size=15"
    runs = [run(spec, s, 10 if args.quick else 40) for s in args.seeds]
    print(f"{spec}, seeds {args.seeds}: next-frame MSE per pixel on the test sequences (fit seconds)")
    print(f"{'model':40s} {'MSE':>8s} {'seconds':>8s}")
    for name in runs[0]:
        errs = [r[name][0] for r in runs]
        secs = statistics.median(r[name][1] for r in runs)
        spread = f" ± {statistics.stdev(errs):.4f}" if len(errs) > 1 else ""
        print(f"{name:40s} {statistics.mean(errs):8.4f}{spread} {secs:8.1f}")


if __name__ == "__main__":
    main()

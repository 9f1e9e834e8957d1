"""Sequence-model benchmarks: speed against a minimal torch loop, and the family's quality targets.

Usage (each section prints its own table; medians of ``--repeats`` runs, ratios ours / peer)::

    python benchmarks/bench_rnn.py speed      # RNN/GRU/LSTM training vs a hand-written torch loop
    python benchmarks/bench_rnn.py peephole   # our peephole LSTM step vs nn.LSTM
    python benchmarks/bench_rnn.py adding     # adding problem, T=200: LSTM/GRU vs tanh RNN
    python benchmarks/bench_rnn.py mnist1d    # GRU on MNIST-1D
    python benchmarks/bench_rnn.py ctc        # BiLSTM-CTC on digit-strings
    python benchmarks/bench_rnn.py charlm     # character LM on pydoc-text vs unigram

Targets (issue #4): speed ratio <= 1.05; adding T=200 MSE <= 0.01 for LSTM and GRU while the tanh
RNN stays >= 0.1; GRU mnist1d test accuracy >= 0.91; CTC whole-string accuracy >= 0.90; the LM
at least 1 bit per character below the unigram baseline.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from torch import nn


class _Progress:
    """Prints each epoch's logs (the run can take minutes on a busy machine)."""

    def __init__(self, name: str) -> None:
        self.name, self.start = name, time.perf_counter()

    def on_train_begin(self, loop) -> None: ...

    def on_epoch_end(self, loop, epoch, logs) -> None:
        shown = " ".join(f"{k}={v:.4g}" for k, v in logs.items() if k != "epoch")
        print(f"  [{self.name}] epoch {epoch + 1} {shown} ({time.perf_counter() - self.start:.0f} s)", flush=True)

    def on_train_end(self, loop) -> None: ...


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# ---- speed --------------------------------------------------------------------------------------
def minimal_loop(X, y, cell: str, hidden: int, epochs: int, batch_size: int, seed: int = 0) -> None:
    """What a careful user writes by hand: the same fused layer, fused Adam, one permutation per epoch."""
    torch.manual_seed(seed)
    kind = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[cell]
    rnn = kind(X.shape[2], hidden, batch_first=True)
    head = nn.Linear(hidden, int(y.max()) + 1)
    params = list(rnn.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=1e-3, fused=True)
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(Xt), generator=gen)
        Xp, yp = Xt[perm], yt[perm]
        for i in range(0, len(Xt), batch_size):
            _, h = rnn(Xp[i : i + batch_size])
            h = h[0] if isinstance(h, tuple) else h
            loss = nn.functional.cross_entropy(head(h[-1]), yp[i : i + batch_size])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


def bench_speed(args) -> None:
    from deepatlas.models.rnn.recurrent import RNNClassifier

    rng = np.random.default_rng(0)
    n, T, F, hidden, bs = 1024, 50, 8, 64, 64
    epochs = args.epochs  # default 5 epochs of 16 batches: long enough that timer noise stays small
    X = rng.standard_normal((n, T, F)).astype(np.float32)
    y = rng.integers(0, 10, n).astype(np.int64)
    print(f"training {n} sequences x {T} steps x {F} features, hidden {hidden}, {epochs} epochs, batch {bs}")
    print(
        f"{'cell':<6} {'ours (s)':>9} {'minimal (s)':>12} {'ratio':>6}  {'ours loop (s)':>13} {'ratio':>6}"
        f"  {'ours+clip (s)':>14} {'ratio':>6}"
    )
    for cell in ("rnn", "gru", "lstm"):
        common = dict(cell=cell, hidden_size=hidden, epochs=epochs, batch_size=bs, early_stopping=False, device="cpu")
        loop_s: list[float] = []

        def ours(c=common, loop_s=loop_s):
            loop_s.append(RNNClassifier(**c, clip_norm=None).fit(X, y).fit_seconds_)

        runs = {
            "ours": ours,
            "clip": lambda c=common: RNNClassifier(**c, clip_norm=1.0).fit(X, y),
            "peer": lambda c=cell: minimal_loop(X, y, c, hidden, epochs, bs),
        }
        times = {k: [] for k in runs}
        for _ in range(args.repeats):  # interleaved, so load changes hit all three alike
            for k, fn in runs.items():
                times[k].append(_median_time(fn, 1))
        ours_s, clipped, peer = (statistics.median(times[k]) for k in ("ours", "clip", "peer"))
        loop_only = statistics.median(loop_s)
        print(
            f"{cell:<6} {ours_s:9.3f} {peer:12.3f} {ours_s / peer:6.3f}  {loop_only:13.3f} {loop_only / peer:6.3f}"
            f"  {clipped:14.3f} {clipped / peer:6.3f}"
        )
    print(
        "ours = the whole fit (input checks, standardisation, model build, loop); ours loop = the training\n"
        "loop alone (fit_seconds_), i.e. training throughput; minimal = a hand-written loop, setup included."
    )


def bench_peephole(args) -> None:
    from deepatlas.models.rnn.cells import PeepholeLSTM

    B, T, F, H = 64, 50, 8, 64
    x = torch.randn(B, T, F)
    print(f"forward + backward of one batch ({B} x {T} x {F}, hidden {H})")
    print(f"{'layer':<28} {'ms':>8} {'vs nn.LSTM':>11}")
    base = None
    for name, layer in (
        ("nn.LSTM (fused)", nn.LSTM(F, H, batch_first=True)),
        ("PeepholeLSTM (ours)", PeepholeLSTM(F, H)),
        ("PeepholeLSTM bidirectional", PeepholeLSTM(F, H, bidirectional=True)),
    ):

        def step(layer=layer):
            out, _ = layer(x)
            out.sum().backward()

        for _ in range(3):
            step()
        t = _median_time(lambda: [step() for _ in range(10)], args.repeats) / 10
        base = base or t
        print(f"{name:<28} {1000 * t:8.2f} {t / base:11.2f}")


# ---- quality ------------------------------------------------------------------------------------
def bench_adding(args) -> None:
    from deepatlas.data import load_dataset
    from deepatlas.registry import create_model

    ds = load_dataset(f"adding:T={args.T},n={args.n}")
    print(f"adding problem T={args.T}: {ds.summary()}; predicting the mean gives MSE {ds.meta['baseline_mse']:.3f}")
    print(f"{'cell':<6} {'test MSE':>9} {'epochs':>7} {'fit (s)':>8}")
    for cell in args.cells:
        model = create_model(
            cell, task="regression", hidden_size=args.hidden, epochs=args.epochs, lr=args.lr, patience=args.epochs
        )
        model.fit(ds.X_train, ds.y_train, validation_data=(ds.X_val, ds.y_val), callbacks=[_Progress(cell)])
        mse = float(np.mean((model.predict(ds.X_test) - ds.y_test) ** 2))
        print(f"{cell:<6} {mse:9.4f} {model.n_epochs_:7d} {model.fit_seconds_:8.1f}", flush=True)


def bench_mnist1d(args) -> None:
    from deepatlas.data import load_dataset
    from deepatlas.registry import create_model

    ds = load_dataset("mnist1d")
    model = create_model(
        "gru", hidden_size=args.hidden, num_layers=2, epochs=args.epochs, lr=args.lr, patience=25, batch_size=64
    )
    model.fit(ds.X_train, ds.y_train, validation_data=(ds.X_val, ds.y_val), callbacks=[_Progress("gru")])
    acc = model.score(ds.X_test, ds.y_test)
    print(
        f"GRU (2 x {args.hidden}) on mnist1d: test accuracy {acc:.4f} after {model.n_epochs_} epochs ({model.fit_seconds_:.0f} s)"
    )


def bench_ctc(args) -> None:
    from deepatlas.data import load_dataset
    from deepatlas.models.rnn.ctc import CTCRecognizer

    ds = load_dataset("digit-strings")
    model = CTCRecognizer(epochs=args.epochs)
    model.fit(ds.X_train, ds.y_train, validation_data=(ds.X_val, ds.y_val), callbacks=[_Progress("ctc")])
    metrics = model.dataset_metrics(ds)
    beam = float(np.mean(model.predict(ds.X_test, decoder="beam") == ds.y_test.astype(object)))
    print(
        f"BiLSTM-CTC on digit-strings ({len(ds.X_train)} train strings): test string accuracy "
        f"{metrics['test_string_accuracy']:.4f} greedy, {beam:.4f} beam; character error rate "
        f"{metrics['test_char_error_rate']:.4f}; {model.n_epochs_} epochs ({model.fit_seconds_:.0f} s)"
    )


def bench_charlm(args) -> None:
    from deepatlas.data import load_dataset
    from deepatlas.models.rnn.charlm import CharLM

    ds = load_dataset("pydoc-text")
    model = CharLM(epochs=args.epochs, max_chars=args.max_chars)
    model.fit(str(ds.X_train[0]), validation_data=(str(ds.X_val[0]),), callbacks=[_Progress("charlm")])
    m = model.dataset_metrics(ds)
    print(
        f"CharLM (LSTM {model.hidden_size}) on pydoc-text: test {m['test_bits_per_char']:.3f} bits/char, "
        f"unigram {m['test_unigram_bits_per_char']:.3f}, {m['test_bits_below_unigram']:.3f} bits below; "
        f"{model.n_epochs_} epochs ({model.fit_seconds_:.0f} s)"
    )
    print("sample (temperature 0.7):", repr(model.sample(200, prompt="The ", temperature=0.7)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("section", choices=("speed", "peephole", "adding", "mnist1d", "ctc", "charlm"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--T", type=int, default=200)
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--cells", nargs="+", default=["lstm", "gru", "rnn"])
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--max-chars", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    defaults = {"speed": 5, "adding": 10, "mnist1d": 150, "ctc": 20, "charlm": 5}
    if args.epochs is None:
        args.epochs = defaults.get(args.section, 1)
    {
        "speed": bench_speed,
        "peephole": bench_peephole,
        "adding": bench_adding,
        "mnist1d": bench_mnist1d,
        "ctc": bench_ctc,
        "charlm": bench_charlm,
    }[args.section](args)


if __name__ == "__main__":
    main()

"""Transfer benchmark: pre-train on classes 0-4, fine-tune on 5-9 with 5 % of the labels, against
the same network trained from scratch on the same labels (digits and MNIST-1D, MLP and CNN).

    python benchmarks/bench_transfer.py                          # 5 seeds, all freezing policies
    python benchmarks/bench_transfer.py --data digits --reuse-lr-factor 0.1
    python benchmarks/bench_transfer.py --fraction 0.01
    python benchmarks/bench_transfer.py --data digits --models cnn --freeze none --lr 3e-4 1e-3 3e-3 1e-2 --seeds 10

Prints the median test accuracy over label-subset seeds of transfer and scratch, the median of
the per-seed differences (target, issue #10: transfer beats scratch by >= 5 points at 5 %
labels), and, as a reference for what the labels alone allow, a logistic regression on the raw
inputs of the same labelled subset. With several ``--lr`` values, each runs on both sides, and a
last table sets each side at its own best learning rate (median over seeds) against the other,
so that neither is judged at a learning rate that handicaps it.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def main() -> None:
    from sklearn.linear_model import LogisticRegression

    from deepatlas.data import load_dataset
    from deepatlas.models.cnn import CNNClassifier
    from deepatlas.models.mlp import MLPClassifier
    from deepatlas.transfer import FREEZE, label_subset, transfer

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fraction", type=float, default=0.05)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--lr", type=float, nargs="+", default=[1e-3],
                   help="learning rate(s) of fine-tuning (head) and scratch; each value runs on both sides")  # fmt: skip
    p.add_argument("--reuse-lr-factor", type=float, default=1.0, help="reused layers train at this x lr")
    p.add_argument("--data", nargs="+", default=["digits", "mnist1d"], choices=["digits", "mnist1d"])
    p.add_argument("--models", nargs="+", default=["mlp", "cnn"], choices=["mlp", "cnn"])
    p.add_argument("--freeze", nargs="+", default=list(FREEZE), choices=list(FREEZE))
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"fraction {args.fraction}, {args.seeds} seeds, lr {args.lr}, reuse-lr-factor {args.reuse_lr_factor}")
    print(f"{'data':<8} {'model':<4} {'freeze':<13} {'lr':>7} {'labels':>6} {'transfer':>9} {'scratch':>8} {'gain':>7} "
          f"{'logreg':>7}  CPU s")  # fmt: skip
    medians: dict[tuple, dict[float, tuple[float, float]]] = {}
    classes = {"mlp": MLPClassifier, "cnn": CNNClassifier}
    for data in args.data:
        src_ds, tgt = load_dataset(f"{data}-0to4"), load_dataset(f"{data}-5to9")
        logreg = []
        for seed in range(args.seeds):
            keep = label_subset(tgt.y_train, args.fraction, seed)
            flat = tgt.X_train[keep].reshape(len(keep), -1)
            clf = LogisticRegression(max_iter=5000).fit(flat, tgt.y_train[keep])
            logreg.append(clf.score(tgt.X_test.reshape(len(tgt.X_test), -1), tgt.y_test))
        ml = statistics.median(logreg)
        for name in args.models:
            source = classes[name](epochs=30, patience=10).fit(
                src_ds.X_train, src_ds.y_train, validation_data=(src_ds.X_val, src_ds.y_val)
            )
            for freeze, lr in ((f, lr) for f in args.freeze for lr in args.lr):
                t, s, d, n = [], [], [], 0
                cpu = time.process_time()
                for seed in range(args.seeds):
                    params = {"epochs": 100, "patience": 20, "lr": lr}
                    _, _, m = transfer(
                        source, tgt, freeze=freeze, labels_fraction=args.fraction, params=params, seed=seed,
                        reuse_lr_factor=args.reuse_lr_factor,
                    )  # fmt: skip
                    t.append(m["transfer_test_accuracy"])
                    s.append(m["scratch_test_accuracy"])
                    d.append(m["gain_test_accuracy"])
                    n = m["n_train_labels"]
                mt, ms, md = statistics.median(t), statistics.median(s), statistics.median(d)
                medians.setdefault((data, name, freeze), {})[lr] = (mt, ms)
                print(f"{data:<8} {name:<4} {freeze:<13} {lr:>7.0e} {n:>6} {mt:>9.3f} {ms:>8.3f} {100 * md:>+6.1f} "
                      f"{ml:>7.3f}  {time.process_time() - cpu:.0f}", flush=True)  # fmt: skip
    if len(args.lr) > 1:
        print("\neach side at its own best learning rate (median test accuracy over seeds):")
        for (data, name, freeze), by_lr in medians.items():
            lt = max(by_lr, key=lambda lr: by_lr[lr][0])
            ls = max(by_lr, key=lambda lr: by_lr[lr][1])
            gain = 100 * (by_lr[lt][0] - by_lr[ls][1])
            print(
                f"{data:<8} {name:<4} {freeze:<13} transfer {by_lr[lt][0]:.3f} (lr {lt:.0e})  "
                f"scratch {by_lr[ls][1]:.3f} (lr {ls:.0e})  gain {gain:+.1f}"
            )


if __name__ == "__main__":
    main()

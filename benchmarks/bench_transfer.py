"""Transfer benchmark: pre-train on classes 0-4, fine-tune on 5-9 with 5 % of the labels, against
the same network trained from scratch on the same labels (digits and MNIST-1D, MLP and CNN).

    python benchmarks/bench_transfer.py                 # 3 seeds, all freezing policies
    python benchmarks/bench_transfer.py --fraction 0.01

Prints the median test accuracy over seeds of transfer and scratch and their difference
(target, issue #10: transfer beats scratch by >= 5 points at 5 % labels).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def main() -> None:
    from deepatlas.data import load_dataset
    from deepatlas.models.cnn import CNNClassifier
    from deepatlas.models.mlp import MLPClassifier
    from deepatlas.transfer import FREEZE, transfer

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fraction", type=float, default=0.05)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--lr", type=float, default=1e-3, help="head learning rate of fine-tuning and scratch")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{'data':<8} {'model':<4} {'freeze':<13} {'labels':>6} {'transfer':>9} {'scratch':>8} {'gain':>7}  CPU s")
    for data in ("digits", "mnist1d"):
        src_ds, tgt = load_dataset(f"{data}-0to4"), load_dataset(f"{data}-5to9")
        for name, cls in (("mlp", MLPClassifier), ("cnn", CNNClassifier)):
            source = cls(epochs=30, patience=10).fit(
                src_ds.X_train, src_ds.y_train, validation_data=(src_ds.X_val, src_ds.y_val)
            )
            for freeze in FREEZE:
                t, s, n = [], [], 0
                cpu = time.process_time()
                for seed in range(args.seeds):
                    params = {"epochs": 100, "patience": 20, "lr": args.lr}
                    _, _, m = transfer(
                        source, tgt, freeze=freeze, labels_fraction=args.fraction, params=params, seed=seed
                    )
                    t.append(m["transfer_test_accuracy"])
                    s.append(m["scratch_test_accuracy"])
                    n = m["n_train_labels"]
                mt, ms = statistics.median(t), statistics.median(s)
                print(f"{data:<8} {name:<4} {freeze:<13} {n:>6} {mt:>9.3f} {ms:>8.3f} {100 * (mt - ms):>+6.1f}  "
                      f"{time.process_time() - cpu:.0f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()

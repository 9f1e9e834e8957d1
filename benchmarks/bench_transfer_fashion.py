"""Transfer on real images (issue #19, point 8): the default CNN pre-trained on Fashion-MNIST
classes 0-4 (T-shirt, trouser, pullover, dress, coat; 27,000 training images), fine-tuned on
classes 5-9 (sandal, shirt, sneaker, bag, ankle boot) with 1, 5 and 10 % of their training labels,
against the same network trained from scratch on the same labels, both with the CNN's defaults.

    python benchmarks/bench_transfer_fashion.py                      # 5 seeds, freeze none and features
    python benchmarks/bench_transfer_fashion.py --seeds 3 --lr 1e-3 3e-3

Prints per (fraction, freeze, lr) the median test accuracy over label-subset seeds of transfer and
scratch and the median per-seed gain; with several ``--lr`` values, a last table sets each side at
its own best rate. Digits and MNIST-1D: ``benchmarks/bench_transfer.py``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def main() -> None:
    from deepatlas.data import load_dataset
    from deepatlas.models.cnn import CNNClassifier
    from deepatlas.transfer import FREEZE, transfer

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fractions", type=float, nargs="+", default=[0.05, 0.01, 0.1])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--lr", type=float, nargs="+", default=[1e-3])
    p.add_argument("--freeze", nargs="+", default=["none", "features"], choices=list(FREEZE))
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    src, tgt = load_dataset("fashion-mnist-0to4"), load_dataset("fashion-mnist-5to9")
    cpu = time.process_time()
    source = CNNClassifier(verbose=False).fit(src.X_train, src.y_train, validation_data=(src.X_val, src.y_val))
    print(f"source (classes 0-4, defaults): test accuracy {source.score(src.X_test, src.y_test):.4f}, "
          f"{time.process_time() - cpu:.0f} CPU s", flush=True)  # fmt: skip
    print(f"{'fraction':>8} {'labels':>6} {'freeze':<9} {'lr':>7} {'transfer':>9} {'scratch':>8} {'gain':>6}  "
          f"per-seed gains (points)  CPU s", flush=True)  # fmt: skip
    medians: dict[tuple, dict[float, tuple[float, float]]] = {}
    for fraction in args.fractions:
        for freeze in args.freeze:
            for lr in args.lr:
                t, s, d, n = [], [], [], 0
                cpu = time.process_time()
                for seed in range(args.seeds):
                    _, _, m = transfer(
                        source, tgt, freeze=freeze, labels_fraction=fraction, params={"lr": lr}, seed=seed
                    )
                    t.append(m["transfer_test_accuracy"])
                    s.append(m["scratch_test_accuracy"])
                    d.append(m["gain_test_accuracy"])
                    n = m["n_train_labels"]
                mt, ms, md = statistics.median(t), statistics.median(s), statistics.median(d)
                medians.setdefault((fraction, freeze), {})[lr] = (mt, ms)
                gains = " ".join(f"{100 * g:+.1f}" for g in d)
                print(f"{fraction:>8.2f} {n:>6} {freeze:<9} {lr:>7.0e} {mt:>9.4f} {ms:>8.4f} {100 * md:>+6.1f}  "
                      f"{gains}  {time.process_time() - cpu:.0f}", flush=True)  # fmt: skip
    if len(args.lr) > 1:
        print("\neach side at its own best learning rate (median test accuracy over seeds):")
        for (fraction, freeze), by_lr in medians.items():
            lt = max(by_lr, key=lambda lr: by_lr[lr][0])
            ls = max(by_lr, key=lambda lr: by_lr[lr][1])
            print(
                f"{fraction:.2f} {freeze:<9} transfer {by_lr[lt][0]:.4f} (lr {lt:.0e})  "
                f"scratch {by_lr[ls][1]:.4f} (lr {ls:.0e})  gain {100 * (by_lr[lt][0] - by_lr[ls][1]):+.1f}"
            )


if __name__ == "__main__":
    main()

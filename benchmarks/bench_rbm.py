"""RBM and DBN against scikit-learn: fit time, feature quality, and DBN fine-tuning.

1. scikit-learn's RBM example settings on digits (100 hidden units, learning rate 0.06, 10
   epochs, batch 10, inputs in [0, 1]): fit time of our RBM / BernoulliRBM (median of runs,
   interleaved), and the test accuracy of RBM features + LogisticRegression(C=6000) over seeds.
2. 10x the training data (ten one-pixel shifts of the training images) and 500 hidden units:
   fit-time ratio.
3. DBNClassifier with its defaults on digits: test accuracy.
4. 5 % of the training labels: DBNClassifier pretrained on all training images vs the same
   network from random initialisation, over seeds.

Run: ``python benchmarks/bench_rbm.py`` (``--quick`` for fewer repeats).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import BernoulliRBM
from threadpoolctl import threadpool_limits

from deepatlas.data import load_dataset
from deepatlas.models.rbm.dbn import DBNClassifier
from deepatlas.models.rbm.rbm import RBM

warnings.filterwarnings("ignore", category=ConvergenceWarning)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def compare_times(X, n_hidden: int, repeats: int) -> tuple[float, float]:
    ours, peer = [], []
    for r in range(repeats):  # interleaved, so both see the same machine load
        ours.append(
            timed(lambda r=r: RBM(n_hidden=n_hidden, lr=0.06, epochs=10, batch_size=10, seed=r, device="cpu").fit(X))
        )
        peer.append(
            timed(
                lambda r=r: BernoulliRBM(
                    n_components=n_hidden, learning_rate=0.06, n_iter=10, batch_size=10, random_state=r
                ).fit(X)
            )
        )
    return statistics.median(ours), statistics.median(peer)


def shifted(images: np.ndarray, copies: int) -> np.ndarray:
    """``copies`` versions of (n, 8, 8) images moved by one pixel in different directions."""
    moves = [(0, 0), (0, 1), (1, 0), (0, -1), (-1, 0), (1, 1), (-1, -1), (1, -1), (-1, 1), (0, 2)]
    out = []
    for dy, dx in moves[:copies]:
        img = np.roll(images, (dy, dx), axis=(1, 2))
        out.append(img.reshape(len(img), -1))
    return np.concatenate(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer repeats and seeds")
    args = ap.parse_args()
    repeats, seeds = (3, 3) if args.quick else (7, 5)

    ds = load_dataset("digits")
    X = ds.X_train.reshape(len(ds.X_train), -1)
    Xte = ds.X_test.reshape(len(ds.X_test), -1)

    # 1. scikit-learn's example settings
    ours, peer = compare_times(X, 100, repeats)
    print(
        f"digits, 100 hidden, 10 epochs, batch 10: ours {ours:.3f} s, BernoulliRBM {peer:.3f} s, ratio {ours / peer:.2f}"
    )
    acc_ours, acc_peer = [], []
    for seed in range(seeds):
        ours_rbm = RBM(n_hidden=100, lr=0.06, epochs=10, batch_size=10, seed=seed, device="cpu").fit(X)
        peer_rbm = BernoulliRBM(n_components=100, learning_rate=0.06, n_iter=10, batch_size=10, random_state=seed).fit(
            X
        )
        for rbm, accs in ((ours_rbm, acc_ours), (peer_rbm, acc_peer)):
            with threadpool_limits(1):  # a small problem: BLAS threads only contend
                clf = LogisticRegression(C=6000, max_iter=10000).fit(rbm.transform(X), ds.y_train)
            accs.append(clf.score(rbm.transform(Xte), ds.y_test))
    print(
        f"RBM features + LogisticRegression(C=6000), {seeds} seeds: ours {np.mean(acc_ours):.4f} "
        f"(min {min(acc_ours):.4f}), BernoulliRBM {np.mean(acc_peer):.4f} (min {min(acc_peer):.4f})"
    )
    pl_ours = ours_rbm.score_samples(Xte).mean()
    pl_peer = peer_rbm.score_samples(Xte).mean()
    print(f"test pseudo-likelihood (last seed): ours {pl_ours:.2f}, BernoulliRBM {pl_peer:.2f}")
    print(f"test log-likelihood by AIS (ours, last seed): {ours_rbm.log_likelihood(Xte, 'ais'):.2f} nats")

    # 2. ten times the data, 500 hidden units
    X10 = shifted(ds.X_train[:, 0], 10)
    ours, peer = compare_times(X10, 500, max(3, repeats // 2))
    print(
        f"digits x10 ({len(X10)} rows), 500 hidden: ours {ours:.3f} s, BernoulliRBM {peer:.3f} s, ratio {ours / peer:.2f}"
    )

    # 3. DBNClassifier with its defaults
    start = time.perf_counter()
    dbn = DBNClassifier(seed=0, device="cpu").fit(ds.X_train, ds.y_train)
    print(
        f"DBNClassifier defaults (256-256, pretrain 40 epochs, fine-tune 100): test accuracy "
        f"{dbn.score(ds.X_test, ds.y_test):.4f} ({time.perf_counter() - start:.1f} s)"
    )

    # 4. few labels: pretraining on all images vs random initialisation
    rng = np.random.default_rng(0)
    n_labeled = int(0.05 * len(ds.X_train))
    results = {True: [], False: []}
    for seed in range(seeds):
        idx = rng.permutation(len(ds.X_train))
        lab, unl = idx[:n_labeled], idx[n_labeled:]
        for pretrain in (True, False):
            est = DBNClassifier(pretrain=pretrain, epochs=200, seed=seed, device="cpu")
            est.fit(ds.X_train[lab], ds.y_train[lab], unlabeled=ds.X_train[unl])
            results[pretrain].append(est.score(ds.X_test, ds.y_test))
    for pretrain, accs in results.items():
        name = "pretrained" if pretrain else "random init"
        print(
            f"5% labels ({n_labeled} rows), {name}: test accuracy {np.mean(accs):.4f} +- {np.std(accs):.4f} "
            f"({', '.join(f'{a:.3f}' for a in accs)})"
        )


if __name__ == "__main__":
    main()

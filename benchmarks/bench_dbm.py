"""DBM against DBN and RBM on digits: likelihood, samples, linear-probe accuracy, fit time.

Models (seeded, one torch thread): ``RBM(n_hidden=100)``, ``DBN(hidden_sizes=(100, 100))`` and
``DBM(hidden_sizes=(100, 100))``, each trained with its defaults on the 1,293 training images.

- Likelihood on the 360 test images, in nats per image. RBM: ``-F(v) - log Z`` (an estimate
  of the log-likelihood itself). DBN: the variational bound of Salakhutdinov & Murray (2008),
  ``E_q[log p(v | h1) + log p_top(h1)] + H(q)`` with ``q(h1 | v)`` the up pass, the expectation
  over 100 samples of ``h1`` per image. DBM: the mean-field bound. Every ``log Z`` by AIS
  (100 chains, 10,000 temperatures), so every number is an estimate; the bounds sit below the
  true log-likelihood.
- Linear probe: ``deepatlas.models.common.linear_probe`` (logistic regression, C=1000, raw
  features) on the top layer's features (and, for the DBM, all hidden layers' posteriors).
- Samples: 16 per model after 1,000 Gibbs sweeps, written to ``--samples`` as one PNG.

Run: ``python benchmarks/bench_dbm.py [--seeds 0 1 2] [--samples dbm-samples.png]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from deepatlas.data import load_dataset
from deepatlas.models.common import linear_probe
from deepatlas.models.rbm.dbm import DBM
from deepatlas.models.rbm.dbn import DBN
from deepatlas.models.rbm.rbm import RBM

AIS = {"n_chains": 100, "n_betas": 10000}


def probe(ftr, ytr, fte, yte) -> float:
    return linear_probe(ftr, ytr, fte, yte, standardize=False, C=1000.0, max_iter=3000)


def dbn_bound(dbn: DBN, X: np.ndarray, seed: int, n_samples: int = 100) -> float:
    """Mean over rows of the Monte-Carlo variational bound of a two-layer DBN."""
    bottom, top = dbn.layers_
    W, b = bottom.components_.T.astype(np.float64), bottom.intercept_visible_.astype(np.float64)
    q = bottom.transform(X).astype(np.float64)  # (n, h1)
    rng = np.random.default_rng(seed)
    entropy = -(q * np.log(q + 1e-12) + (1 - q) * np.log(1 - q + 1e-12)).sum(1)
    terms = np.zeros(len(X))
    for _ in range(n_samples):
        h = (rng.random(q.shape) < q).astype(np.float64)
        pre = h @ W.T + b  # (n, nv): log p(v | h) = v.pre - softplus(pre)
        log_pv_h = (X * pre - np.logaddexp(0, pre)).sum(1)
        terms += (log_pv_h - top.free_energy(h)) / n_samples
    return float(np.mean(terms + entropy) - top.log_partition("ais", **AIS))


def run(seed: int, ds) -> tuple[dict, dict]:
    Xtr, Xte = ds.X_train.reshape(len(ds.X_train), -1), ds.X_test.reshape(len(ds.X_test), -1)
    out, samples = {}, {}
    start = time.perf_counter()
    rbm = RBM(n_hidden=100, seed=seed, device="cpu").fit(Xtr)
    fit = time.perf_counter() - start
    out["RBM"] = {
        "fit_s": fit,
        "ll": rbm.log_likelihood(Xte, "ais", **AIS),
        "probe": probe(rbm.transform(Xtr), ds.y_train, rbm.transform(Xte), ds.y_test),
    }
    samples["RBM"] = rbm.sample(16, 1000, probabilities=True, seed=seed)
    start = time.perf_counter()
    dbn = DBN(hidden_sizes=(100, 100), seed=seed, device="cpu").fit(Xtr)
    fit = time.perf_counter() - start
    out["DBN"] = {
        "fit_s": fit,
        "ll": dbn_bound(dbn, Xte, seed),
        "probe": probe(dbn.transform(Xtr), ds.y_train, dbn.transform(Xte), ds.y_test),
    }
    samples["DBN"] = dbn.sample(16, 1000, seed=seed)
    start = time.perf_counter()
    dbm = DBM(hidden_sizes=(100, 100), seed=seed, device="cpu").fit(Xtr)
    fit = time.perf_counter() - start
    mtr, mte = dbm.mean_field(Xtr), dbm.mean_field(Xte)
    out["DBM"] = {
        "fit_s": fit,
        "ll": dbm.log_likelihood_bound(Xte, "ais", **AIS),
        "probe": probe(mtr[-1], ds.y_train, mte[-1], ds.y_test),
        "probe_all": probe(np.hstack(mtr), ds.y_train, np.hstack(mte), ds.y_test),
    }
    samples["DBM"] = dbm.sample(16, 1000, probabilities=True, seed=seed)
    return out, samples


def save_samples(samples: dict, path: str) -> None:
    from deepatlas.plotting import new_figure, save_figure

    fig, axes = new_figure(len(samples), 16, figsize=(12, 0.9 * len(samples) + 0.3), squeeze=False)
    for row, (name, S) in enumerate(samples.items()):
        for j, img in enumerate(S.reshape(16, 8, 8)):
            axes[row][j].imshow(img, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
            axes[row][j].axis("off")
        axes[row][0].set_title(name, fontsize=8, loc="left")
    save_figure(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--samples", default=None, help="PNG for 16 samples per model (first seed)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    ds = load_dataset("digits")
    rows: dict[str, list[dict]] = {}
    with threadpool_limits(1):
        for i, seed in enumerate(args.seeds):
            out, samples = run(seed, ds)
            for name, rec in out.items():
                rows.setdefault(name, []).append(rec)
                print(f"seed {seed} {name}: " + ", ".join(f"{k} {v:.4f}" for k, v in rec.items()), flush=True)
            if i == 0 and args.samples:
                save_samples(samples, args.samples)
    print("\n| model | test log-likelihood (nats; DBN, DBM: lower bound) | probe accuracy | fit s |")
    print("|---|---|---|---|")
    for name, recs in rows.items():
        cell = {k: statistics.mean(r[k] for r in recs) for k in recs[0]}
        extra = f" (all layers {cell['probe_all']:.4f})" if "probe_all" in cell else ""
        print(f"| {name} | {cell['ll']:.2f} | {cell['probe']:.4f}{extra} | {cell['fit_s']:.1f} |")


if __name__ == "__main__":
    main()

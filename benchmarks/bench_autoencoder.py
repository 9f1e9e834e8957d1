"""Autoencoder family on digits: quality against PCA, and our training overhead.

Run: ``python benchmarks/bench_autoencoder.py [--repeats 3] [--epochs 100] [--seeds 3]``

1. Overhead: our ``Autoencoder.fit`` against a hand-written torch loop with the same network,
   optimiser, batch size and epochs (no validation, no early stopping), medians of ``--repeats``,
   measured back to back in this process. Ratio = ours / hand-written.
2. Quality (seed 0, default settings but ``--epochs``): test MSE against PCA at the same code
   size, a linear classifier on the codes, PSNR gains on Gaussian noise sigma = 0.3 and on 30 %
   missing pixels, and the VAE's test ELBO / importance-weighted bound.
3. Code size sweep (dense AE vs PCA at 2, 4, 8, 16, 32) and the spread over ``--seeds`` seeds.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from sklearn.decomposition import PCA

from deepatlas.data import load_dataset
from deepatlas.models.autoencoder.autoencoder import (
    Autoencoder,
    ConvAutoencoder,
    DenoisingAutoencoder,
    SparseAutoencoder,
    denoising_metrics,
    linear_probe,
)
from deepatlas.models.autoencoder.vae import VAE


def pca_mse(ds, k: int) -> float:
    tr, te = ds.X_train.reshape(len(ds.X_train), -1), ds.X_test.reshape(len(ds.X_test), -1)
    pca = PCA(n_components=k, random_state=0).fit(tr)
    return float(np.mean((pca.inverse_transform(pca.transform(te)) - te) ** 2))


def hand_written(X: np.ndarray, epochs: int, batch_size: int, seed: int = 0) -> float:
    """The same dense autoencoder (64-256-16-256-64, ReLU) in a plain torch loop; seconds."""
    torch.manual_seed(seed)
    start = time.perf_counter()
    net = torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(64, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 16),
        torch.nn.Linear(16, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 64),
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, fused=True)
    Xt = torch.as_tensor(X.reshape(len(X), -1))
    for _ in range(epochs):
        perm = torch.randperm(len(Xt))
        Xp = Xt[perm]
        for i in range(0, len(Xp), batch_size):
            xb = Xp[i : i + batch_size]
            loss = torch.nn.functional.mse_loss(net(xb), xb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return time.perf_counter() - start


def overhead(ds, repeats: int, epochs: int) -> None:
    ours, peer = [], []
    for r in range(repeats):
        start = time.perf_counter()
        Autoencoder(code_size=16, epochs=epochs, early_stopping=False, device="cpu", seed=r).fit(ds.X_train)
        ours.append(time.perf_counter() - start)
        peer.append(hand_written(ds.X_train, epochs, 64, seed=r))
    mo, mp = statistics.median(ours), statistics.median(peer)
    print(
        f"fit {epochs} epochs, batch 64, {len(ds.X_train)} rows: ours {mo:.2f} s, hand-written torch {mp:.2f} s, "
        f"ratio {mo / mp:.2f} (median of {repeats})"
    )


def quality(ds, epochs: int) -> None:
    print("\nmodel        code  test MSE  PCA MSE  ratio  probe acc (PCA)  PSNR gain s=0.3  gain 30% missing  extra")
    models = [
        Autoencoder(code_size=16, epochs=epochs),
        DenoisingAutoencoder(code_size=16, epochs=epochs),
        DenoisingAutoencoder(code_size=64, epochs=epochs),
        SparseAutoencoder(code_size=64, epochs=epochs),
        ConvAutoencoder(code_size=16, epochs=epochs),
        VAE(code_size=16, epochs=epochs),
        VAE(code_size=8, epochs=epochs),
    ]
    tr, te = ds.X_train.reshape(len(ds.X_train), -1), ds.X_test.reshape(len(ds.X_test), -1)
    for m in models:
        start = time.perf_counter()
        m.fit(ds.X_train, validation_data=ds.X_val)
        secs = time.perf_counter() - start
        mse = float(np.mean((m.reconstruct(ds.X_test) - ds.X_test) ** 2))
        k = min(m.code_size, 64)
        pm = pca_mse(ds, k)
        pca = PCA(n_components=k, random_state=0).fit(tr)
        acc = linear_probe(m.transform(ds.X_train), ds.y_train, m.transform(ds.X_test), ds.y_test)
        pacc = linear_probe(pca.transform(tr), ds.y_train, pca.transform(te), ds.y_test)
        d = denoising_metrics(m, ds.X_test, levels=(0.3,))
        extra = f"{m.n_epochs_} epochs, {secs:.0f} s"
        ratio = f"{mse / pm:5.2f}" if m.code_size < tr.shape[1] else "    -"  # PCA is exact at full size
        if isinstance(m, VAE):
            elbo = float(np.mean(m.elbo(ds.X_test)))
            iw = float(np.mean(m.log_likelihood(ds.X_test, k=100)))
            extra += f"; test ELBO {elbo:.2f}, IW bound (k=100) {iw:.2f} nats"
        if isinstance(m, SparseAutoencoder):
            extra += f"; {np.mean(np.abs(m.transform(ds.X_test)) < 1e-2):.0%} of codes < 0.01"
        print(
            f"{type(m).__name__[:12]:<12} {m.code_size:>4}  {mse:.5f}  {pm:.5f}  {ratio}  {acc:.3f} ({pacc:.3f})"
            f"    {d['psnr_gaussian_0.3_gain']:6.2f} dB        {d['psnr_missing_0.3_gain']:6.2f} dB       {extra}",
            flush=True,
        )


def sweep(ds, epochs: int, seeds: int) -> None:
    print("\ncode size  AE test MSE (mean +- sd over seeds)  PCA MSE  ratio")
    for k in (2, 4, 8, 16, 32):
        vals = [
            -Autoencoder(code_size=k, epochs=epochs, seed=s).fit(ds.X_train, validation_data=ds.X_val).score(ds.X_test)
            for s in range(seeds)
        ]
        pm = pca_mse(ds, k)
        print(
            f"{k:>9}  {np.mean(vals):.5f} +- {np.std(vals):.5f}               {pm:.5f}  {np.mean(vals) / pm:.2f}",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--skip", nargs="*", default=(), choices=("overhead", "quality", "sweep"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    ds = load_dataset("digits")
    if "overhead" not in args.skip:
        overhead(ds, args.repeats, 30)
    if "quality" not in args.skip:
        quality(ds, args.epochs)
    if "sweep" not in args.skip:
        sweep(ds, args.epochs, args.seeds)


if __name__ == "__main__":
    main()

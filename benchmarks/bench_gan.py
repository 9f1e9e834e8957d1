"""GAN family benchmark: mode coverage and sample quality over seeds, digits measures, and the
overhead of our two-player loop against a hand-written torch loop.

    python benchmarks/bench_gan.py                       # everything, seeds 0 1 2
    python benchmarks/bench_gan.py --only mixtures --models wgan-gp --data grid25
    python benchmarks/bench_gan.py --only digits
    python benchmarks/bench_gan.py --only speed

Targets (issue #5): WGAN-GP on grid25 >= 24 of 25 modes with >= 70 % high-quality samples on
every seed, on ring8 8 of 8 with >= 90 %; CGAN on digits >= 90 % of samples classified as their
label. Issue #27: WGAN-GP meets them with its default settings (as `deepatlas train wgan-gp --data
ring8` runs it: `fit_dataset`, which takes the dataset's settings for parameters left at None),
each run under 3 minutes on 2 cores: judged on the fit's CPU seconds (one torch thread, so CPU
seconds are the wall time of a quiet machine; the wall time is printed too). The vanilla GAN's
numbers are reported whatever they are.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time

import numpy as np
import torch

from deepatlas.data import load_dataset
from deepatlas.models.gan import metrics as gm
from deepatlas.registry import create_model

# Training budgets per (model, data); everything else is the estimator's default. WGAN-GP runs
# with its defaults alone: its budget on ring8 and grid25 comes from the estimator (issue #27).
MIXTURE_BUDGET = {
    ("gan", "ring8"): dict(epochs=200, batch_size=256),
    ("gan", "grid25"): dict(epochs=200, batch_size=256),
    ("wgan", "ring8"): dict(epochs=200, batch_size=256),
    ("wgan", "grid25"): dict(epochs=200, batch_size=256),
}
TARGETS = {("wgan-gp", "ring8"): (8, 0.90), ("wgan-gp", "grid25"): (24, 0.70)}
CPU_SECONDS_TARGET = 180.0  # per default WGAN-GP run (issue #27: under 3 minutes)
DIGITS_MODELS = {
    "cgan": dict(),
    "gan": dict(hidden_sizes=(256, 256), latent_dim=32, batch_size=64, lr=2e-4, epochs=200),
    "dcgan": dict(epochs=100),
    "infogan": dict(),
}


class ModeTrace:
    """Callback: every ``every`` epochs, modes captured and high-quality share of 2,500 samples
    from the generator as it stands (printed as ``trace`` lines; the learning rate may still be
    decaying, so these are snapshots of one run, not results of shorter runs)."""

    def __init__(self, model, ds, seed: int, every: int, label: str = "") -> None:
        self.model, self.ds, self.seed, self.every, self.label = model, ds, seed, every, label
        self.start = time.perf_counter()

    def on_train_begin(self, loop) -> None:
        pass

    def on_epoch_end(self, loop, epoch, logs) -> None:
        if (epoch + 1) % self.every:
            return
        G = self.model.module_.generator
        stats = gm.mode_coverage(
            self.model.sample(2500, seed=1000 + self.seed), self.ds.meta["modes"], self.ds.meta["sigma"]
        )
        G.train()
        print(
            f"trace {type(self.model).__name__}{self.label} {self.ds.name} seed {self.seed} epoch {epoch + 1}: "
            f"{stats['modes_captured']}/{stats['n_modes']} modes, {100 * stats['high_quality_share']:.1f} % HQ, "
            f"{time.perf_counter() - self.start:.0f} s",
            flush=True,
        )

    def on_train_end(self, loop) -> None:
        pass


def mixtures(models, datasets, seeds, overrides=None, device="auto", trace_every=0) -> bool:
    ok = True
    print("| model | data | seed | modes captured | high-quality share | epochs | fit CPU s | fit wall s |")
    print("|---|---|---|---|---|---|---|---|")
    for name in models:
        for data in datasets:
            ds = load_dataset(data)
            rows = []
            for seed in seeds:
                params = {**MIXTURE_BUDGET.get((name, data), {}), **(overrides or {})}
                model = create_model(name, "generative", seed=seed, device=device, **params)
                label = "".join(f" {k}={v}" for k, v in (overrides or {}).items())
                cbs = [ModeTrace(model, ds, seed, trace_every, label)] if trace_every else []
                start, cpu0 = time.perf_counter(), _cpu_seconds()
                model.fit_dataset(ds, callbacks=cbs)  # as `deepatlas train` fits it
                cpu_s, fit_s = _cpu_seconds() - cpu0, time.perf_counter() - start
                stats = gm.mode_coverage(model.sample(2500, seed=1000 + seed), ds.meta["modes"], ds.meta["sigma"])
                rows.append(stats)
                print(
                    f"| {name}{label} | {data} | {seed} | {stats['modes_captured']}/{stats['n_modes']} | "
                    f"{100 * stats['high_quality_share']:.1f} % | {model.n_epochs_} | {cpu_s:.0f} | {fit_s:.0f} |",
                    flush=True,
                )
                if (name, data) in TARGETS:
                    modes, share = TARGETS[(name, data)]
                    ok &= stats["modes_captured"] >= modes and stats["high_quality_share"] >= share
                    ok &= cpu_s <= CPU_SECONDS_TARGET
            print(
                f"| {name} | {data} | mean | {np.mean([r['modes_captured'] for r in rows]):.1f} | "
                f"{100 * np.mean([r['high_quality_share'] for r in rows]):.1f} % | | | |",
                flush=True,
            )
    return ok


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process (all its threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def digits(models, seeds) -> bool:
    ds = load_dataset("digits")
    ok = True
    print(
        "| model | seed | classifier-feature FID | (real held-out) | label agreement | code clustering acc. | nearest-train dist. (real) | fit s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in models:
        for seed in seeds:
            model = create_model(name, "classification", seed=seed, **DIGITS_MODELS[name])
            start = time.perf_counter()
            model.fit(ds.X_train, ds.y_train)
            fit_s = time.perf_counter() - start
            m = model.dataset_metrics(ds)
            agree = m.get("label_agreement")
            code = m.get("code_cluster_accuracy")
            print(
                f"| {name} | {seed} | {m['classifier_fid']:.2f} | {m['real_classifier_fid']:.2f} | "
                f"{'' if agree is None else f'{100 * agree:.1f} %'} | {'' if code is None else f'{100 * code:.1f} %'} | "
                f"{m['nearest_train_distance']:.2f} ({m['real_nearest_train_distance']:.2f}) | {fit_s:.0f} |",
                flush=True,
            )
            if name == "cgan":
                ok &= agree >= 0.90
    return ok


def _hand_written_wgan_gp(X: torch.Tensor, epochs: int, batch: int, n_critic: int, lam: float, seed: int) -> float:
    """The same WGAN-GP updates as a minimal torch loop (the peer for our overhead)."""
    from torch import nn

    torch.manual_seed(seed)

    def net(i, o, act):
        return nn.Sequential(
            nn.Linear(i, 128), act(), nn.Linear(128, 128), act(), nn.Linear(128, 128), act(), nn.Linear(128, o)
        )

    G, D = net(16, 2, nn.ReLU), net(2, 1, lambda: nn.LeakyReLU(0.2))
    oG = torch.optim.Adam(G.parameters(), 1e-3, betas=(0.5, 0.9))
    oD = torch.optim.Adam(D.parameters(), 1e-3, betas=(0.5, 0.9))
    start = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(len(X))
        Xp = X[perm]
        for k, i in enumerate(range(0, len(X), batch)):
            x = Xp[i : i + batch]
            with torch.no_grad():
                f = G(torch.randn(len(x), 16))
            e = torch.rand(len(x), 1)
            xh = (e * x + (1 - e) * f).requires_grad_(True)
            (g,) = torch.autograd.grad(D(xh).sum(), xh, create_graph=True)
            loss = D(f).mean() - D(x).mean() + lam * ((g.norm(dim=1) - 1) ** 2).mean()
            oD.zero_grad()
            loss.backward()
            oD.step()
            if (k + 1) % n_critic == 0:
                lg = -D(G(torch.randn(len(x), 16))).mean()
                oG.zero_grad()
                lg.backward()
                oG.step()
    return time.perf_counter() - start


def speed(repeats: int = 3, epochs: int = 10) -> None:
    ds = load_dataset("ring8")
    X = ds.X_train
    Xs = torch.as_tensor((X - X.mean(0)) / X.std(0))
    ours, peer = [], []
    for r in range(repeats):
        model = create_model("wgan-gp", "generative", epochs=epochs, batch_size=256, seed=r, device="cpu")
        start = time.perf_counter()
        model.fit(X)
        ours.append(time.perf_counter() - start)
        peer.append(_hand_written_wgan_gp(Xs, epochs, 256, model.n_critic, 0.1, r))  # the same updates
    mo, mp = statistics.median(ours), statistics.median(peer)
    print(
        f"WGAN-GP on ring8, {epochs} epochs x {len(X) // 256 + 1} batches, batch 256, CPU, {torch.get_num_threads()} threads"
    )
    print(
        f"ours (AdversarialLoop): median {mo:.2f} s; hand-written torch loop: median {mp:.2f} s; ratio ours/peer = {mo / mp:.2f}"
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=("mixtures", "digits", "speed"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--models", nargs="+", help="default: wgan-gp gan wgan (mixtures), cgan gan dcgan infogan (digits)")
    p.add_argument("--data", nargs="+", default=["ring8", "grid25"])
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override a parameter (mixtures)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (mixtures)")
    p.add_argument("--trace-every", type=int, default=0, help="print modes / HQ share every N epochs (mixtures)")
    args = p.parse_args(argv)
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = json.loads(value) if value[:1] in "[{0123456789-." or value in ("true", "false") else value
        if isinstance(overrides[key], list):
            overrides[key] = tuple(overrides[key])
    if args.threads:
        torch.set_num_threads(args.threads)
    ok = True
    if args.only in (None, "mixtures"):
        ok &= mixtures(
            args.models or ["wgan-gp", "gan", "wgan"], args.data, args.seeds, overrides, args.device, args.trace_every
        )
    if args.only in (None, "digits"):
        ok &= digits(args.models or ["cgan", "gan", "dcgan", "infogan"], args.seeds)
    if args.only in (None, "speed"):
        speed()
    if args.only != "speed":
        print("targets met" if ok else "targets NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

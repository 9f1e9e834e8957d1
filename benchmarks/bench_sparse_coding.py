"""Sparse coding against scikit-learn, and the family's measures, on digits patches.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_sparse_coding.py [--images 300] [--repeats 3]

1. Solvers: the same dictionary and alpha for our batched FISTA / CD / ISTA / OMP and
   scikit-learn's SparseCoder (lasso_cd, lasso_lars, omp): median seconds, mean objective, ratios.
2. Objective against time for ISTA, FISTA and CD (a picture), with scikit-learn's points.
3. Dictionary learning: our online DictionaryLearning against MiniBatchDictionaryLearning; time
   to reach scikit-learn's final objective (both dictionaries scored by the same coder).
4. LISTA with 16 layers against ISTA: how many ISTA iterations reach LISTA's code error.
5. Measures: error at equal sparsity for learned / DCT / random dictionaries (OMP), denoising
   PSNR, codes → logistic-regression accuracy.

Both sides run single-threaded by default (``--threads``); timings on a shared machine are noisy,
so read the ratios of medians.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from deepatlas.models.common import linear_probe
from deepatlas.models.sparse_coding.coders import LISTA, DictionaryLearning, SparseCoder, plot_atoms  # noqa: E402
from deepatlas.models.sparse_coding.solvers import lasso_objective, sparse_encode  # noqa: E402


def median_time(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)), out


def interleaved(jobs: dict, repeats: int):
    """Run every job once per round, ``repeats`` rounds; per-job lists of seconds and the last
    outputs."""
    times, outs = {name: [] for name in jobs}, {}
    for _ in range(repeats):
        for name, fn in jobs.items():
            t = time.perf_counter()
            outs[name] = fn()
            times[name].append(time.perf_counter() - t)
    return times, outs


def mean_obj(P, D, Z, alpha) -> float:
    X, Dt, Zt = (torch.as_tensor(np.asarray(a, dtype=np.float64)) for a in (P, D, Z))
    return float(lasso_objective(X, Dt, Zt, alpha).mean())


def mean_sq(P, D, Z) -> float:
    return float(((P - np.asarray(Z) @ D) ** 2).sum(1).mean())


def load_patches(n_images: int, size: int = 6):
    from sklearn.datasets import load_digits
    from sklearn.feature_extraction.image import extract_patches_2d

    imgs = (load_digits().images / 16.0).astype(np.float32)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(imgs))
    train, test = imgs[order[:n_images]], imgs[order[n_images : n_images + n_images // 3]]

    def patches(ims):
        return np.concatenate([extract_patches_2d(im, (size, size)) for im in ims]).reshape(-1, size * size)

    return patches(train), patches(test), imgs, order


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=300, help="digits images whose 6x6 patches are coded")
    ap.add_argument("--atoms", type=int, default=100)
    ap.add_argument("--alpha", type=float, default=0.2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dl-epochs", type=int, default=3, help="epochs (max_iter) for MiniBatchDictionaryLearning")
    ap.add_argument("--plots", default="runs/bench-sparse-coding", help="folder for the pictures")
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: solvers,curves,dl,lista,measures")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")  # scikit-learn's per-sample ConvergenceWarnings
    skip = set(filter(None, args.skip.split(",")))
    from sklearn.decomposition import MiniBatchDictionaryLearning
    from sklearn.decomposition import SparseCoder as SkCoder

    P, Ptest, imgs, order = load_patches(args.images)
    alpha, K, R = args.alpha, args.atoms, args.repeats
    print(f"digits 6x6 patches: {P.shape[0]} train / {Ptest.shape[0]} test, {K} atoms, alpha {alpha}, "
          f"torch threads {torch.get_num_threads()}, torch {torch.__version__}")  # fmt: skip
    t = time.perf_counter()
    D = DictionaryLearning(n_atoms=K, alpha=alpha, epochs=5, seed=0).fit(P).components_
    print(f"dictionary: our DictionaryLearning, 5 epochs, {time.perf_counter() - t:.1f} s")
    os.makedirs(args.plots, exist_ok=True)
    plot_atoms(D, (6, 6), os.path.join(args.plots, "atoms.png"), title="learned atoms (6x6 digit patches)")
    Xt, Dt = torch.from_numpy(P), torch.from_numpy(D)

    # ---- 1. solvers -------------------------------------------------------------------------
    if "solvers" not in skip:
        print("\n## 1. Solvers (same dictionary, same alpha; objective = mean ½‖x − zD‖² + α‖z‖₁)")
        # Interleaved: one run of every solver per round, so a burst of load on the shared machine
        # hits all of them alike; medians over the rounds.
        n_nz = 5
        coders = {alg: SkCoder(D, transform_algorithm=alg, transform_alpha=alpha) for alg in ("lasso_cd", "lasso_lars")}
        sk_omp = SkCoder(D, transform_algorithm="omp", transform_n_nonzero_coefs=n_nz)
        jobs = {
            "fista": lambda: sparse_encode(Xt, Dt, solver="fista", alpha=alpha),
            "cd": lambda: sparse_encode(Xt, Dt, solver="cd", alpha=alpha),
            "ista": lambda: sparse_encode(Xt, Dt, solver="ista", alpha=alpha),
            "lasso_cd": lambda: coders["lasso_cd"].transform(P),
            "lasso_lars": lambda: coders["lasso_lars"].transform(P),
            "omp": lambda: sparse_encode(Xt, Dt, solver="omp", n_nonzero=n_nz),
            "sk omp": lambda: sk_omp.transform(P),
        }
        times, outs = interleaved(jobs, R)
        rows = {}
        for name, out in outs.items():
            sec = float(np.median(times[name]))
            if name in ("fista", "cd", "ista"):
                rows[name] = (sec, mean_obj(P, D, out.codes, alpha), out.n_iter, out.converged)
            elif name == "omp":
                rows[name] = (sec, mean_sq(P, D, out.codes.numpy()), n_nz, True)
            elif name == "sk omp":
                rows[name] = (sec, mean_sq(P, D, out), None, None)
            else:
                rows[name] = (sec, mean_obj(P, D, out, alpha), None, None)
        print("| solver | median s | objective | iterations | converged |\n|---|---|---|---|---|")
        for k, (sec, obj, it, conv) in rows.items():
            print(
                f"| {k} | {sec:.3f} | {obj:.6f} | {it if it is not None else '-'} | {conv if conv is not None else '-'} |"
            )
        print("\n| ours vs scikit-learn | time ratio (ours/peer) | per-round ratios | objective difference |")
        print("|---|---|---|---|")
        for ours, peer in (("fista", "lasso_cd"), ("fista", "lasso_lars"), ("cd", "lasso_cd"), ("cd", "lasso_lars"),
                           ("omp", "sk omp")):  # fmt: skip
            ratio = rows[ours][0] / rows[peer][0]
            rounds = ", ".join(f"{a / b:.2f}" for a, b in zip(times[ours], times[peer]))
            diff = (rows[ours][1] - rows[peer][1]) / rows[peer][1]
            print(f"| {ours} vs {peer} | {ratio:.3f} | {rounds} | {diff:+.2e} |")

    # ---- 2. objective against time ------------------------------------------------------------
    if "curves" not in skip:
        print("\n## 2. Objective against time (relative excess over the best objective found)")
        best = mean_obj(
            P, D, sparse_encode(Xt.double(), Dt.double(), alpha=alpha, tol=1e-8, max_iter=20000).codes, alpha
        )
        curves = {}
        for name, grid in (("ista", (1, 3, 10, 30, 100, 300, 1000)), ("fista", (1, 3, 10, 30, 100, 300, 1000)),
                           ("cd", (1, 2, 5, 10, 20, 50, 100))):  # fmt: skip
            pts = []
            for it in grid:
                sec, res = median_time(
                    lambda n=name, i=it: sparse_encode(Xt, Dt, solver=n, alpha=alpha, max_iter=i, tol=0.0), 1
                )
                pts.append((sec, mean_obj(P, D, res.codes, alpha) / best - 1))
            curves[name] = pts
            print(f"{name}: " + ", ".join(f"{s:.3f}s:{e:.1e}" for s, e in pts))
        from deepatlas.plotting import new_figure, save_figure

        fig, ax = new_figure(figsize=(5.5, 3.6))
        for name, pts in curves.items():
            ax.loglog([p[0] for p in pts], [max(p[1], 1e-9) for p in pts], marker="o", label=f"ours: {name}")
        if "solvers" not in skip:
            for alg in ("lasso_cd", "lasso_lars"):
                ax.loglog([rows[alg][0]], [max(rows[alg][1] / best - 1, 1e-9)], marker="*", markersize=12,
                          linestyle="none", label=f"scikit-learn {alg}")  # fmt: skip
        ax.set_xlabel("seconds")
        ax.set_ylabel("objective / best − 1")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        save_figure(fig, os.path.join(args.plots, "objective_vs_time.png"))
        fig, ax = new_figure(figsize=(6, 2.5))
        codes = sparse_encode(Xt[:60], Dt, alpha=alpha).codes.numpy()
        ax.imshow(np.abs(codes.T) > 0, aspect="auto", cmap="Greys", interpolation="nearest")
        ax.set_xlabel("patch")
        ax.set_ylabel("atom")
        ax.set_title(f"non-zero codes of 60 patches (mean {np.mean((codes != 0).sum(1)):.1f} per patch)", fontsize=9)
        save_figure(fig, os.path.join(args.plots, "codes.png"))

    # ---- 3. dictionary learning -------------------------------------------------------------
    if "dl" not in skip:
        print(f"\n## 3. Dictionary learning ({K} atoms, alpha {alpha}, batch 256); objective on all train patches")

        def score(Dn):
            Dn = torch.as_tensor(np.asarray(Dn, dtype=np.float32))
            return mean_obj(P, Dn.numpy(), sparse_encode(Xt, Dn, alpha=alpha, tol=1e-5).codes, alpha)

        sk = MiniBatchDictionaryLearning(n_components=K, alpha=alpha, batch_size=256, max_iter=args.dl_epochs,
                                         random_state=0)  # fmt: skip
        sk_sec, _ = median_time(lambda: sk.fit(P), 1)
        sk_obj = score(sk.components_)
        print(
            f"scikit-learn MiniBatchDictionaryLearning (max_iter={args.dl_epochs}, lars): {sk_sec:.2f} s, objective {sk_obj:.5f}"
        )
        reached = None
        for epochs in (1, 2, 3, 5, 8):
            sec, dl = median_time(
                lambda e=epochs: DictionaryLearning(n_atoms=K, alpha=alpha, epochs=e, seed=0).fit(P), 1
            )
            obj = score(dl.components_)
            print(f"ours, {epochs} epochs: {sec:.2f} s, objective {obj:.5f}")
            if reached is None and obj <= sk_obj:
                reached = (epochs, sec, obj)
        if reached:
            print(f"ours reaches scikit-learn's objective after {reached[0]} epochs in {reached[1]:.2f} s: "
                  f"time ratio {reached[1] / sk_sec:.3f}")  # fmt: skip
        else:
            print("ours did not reach scikit-learn's objective within 8 epochs")

    # ---- 4. LISTA ---------------------------------------------------------------------------
    if "lista" not in skip:
        print("\n## 4. LISTA (16 layers, untied) against ISTA iterations; code error on held-out patches")
        t = time.perf_counter()
        lista = LISTA(dictionary=D, alpha=alpha, n_layers=16, epochs=60, lr=2e-3, batch_size=128, seed=0).fit(P)
        print(f"LISTA trained in {time.perf_counter() - t:.1f} s ({lista.n_epochs_} epochs)")
        Xs = torch.from_numpy(Ptest)
        target = sparse_encode(Xs, Dt, alpha=alpha, tol=1e-6, max_iter=20000).codes
        Zl = torch.from_numpy(lista.transform(Ptest))
        err_l = float(((Zl - target) ** 2).mean())
        print(f"LISTA-16 code MSE {err_l:.3e}, objective {mean_obj(Ptest, D, Zl, alpha):.5f} "
              f"(optimum {mean_obj(Ptest, D, target, alpha):.5f})")  # fmt: skip
        need = None
        for it in (16, 32, 64, 100, 160, 250, 400, 640, 1000, 1600, 2500, 4000):
            for name in ("ista", "fista"):
                Z = sparse_encode(Xs, Dt, solver=name, alpha=alpha, max_iter=it, tol=0.0).codes
                err = float(((Z - target) ** 2).mean())
                print(f"  {name} {it:5d} iterations: code MSE {err:.3e}")
                if name == "ista" and need is None and err <= err_l:
                    need = it
            if need:
                break
        print(f"ISTA needs {need} iterations to match LISTA-16: {need / 16:.0f}x" if need else "ISTA needs > 4000")

    # ---- 5. measures ------------------------------------------------------------------------
    if "measures" not in skip:
        from deepatlas.models.sparse_coding.coders import dct_dictionary, random_dictionary

        print("\n## 5a. Reconstruction error at equal sparsity (OMP, test patches, mean squared error per patch)")
        dicts = {"learned": D, "dct": dct_dictionary((6, 6), K), "random": random_dictionary(K, 36, 0)}
        print("| non-zeros | " + " | ".join(dicts) + " |\n|---|---|---|---|")
        for k in (1, 2, 4, 8):
            errs = [mean_sq(Ptest, Dn, sparse_encode(torch.from_numpy(Ptest), torch.from_numpy(Dn), solver="omp",
                                                     n_nonzero=k).codes.numpy()) for Dn in dicts.values()]  # fmt: skip
            print(f"| {k} | " + " | ".join(f"{e:.4f}" for e in errs) + " |")

        print("\n## 5b. Denoising test digits (Gaussian noise sigma 0.2; 6x6 patches, learned dictionary)")
        from sklearn.feature_extraction.image import extract_patches_2d, reconstruct_from_patches_2d

        test_imgs = imgs[order[args.images : args.images + 200]]
        rng = np.random.default_rng(1)
        noisy = test_imgs + 0.2 * rng.standard_normal(test_imgs.shape).astype(np.float32)

        def psnr(a, b):
            return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))

        print(f"noisy input PSNR {psnr(noisy, test_imgs):.2f} dB")
        for a in (0.1, 0.2, 0.4):
            Dn = DictionaryLearning(n_atoms=K, alpha=a, epochs=5, seed=0).fit(P).components_
            out = []
            for im in noisy:
                pt = extract_patches_2d(im, (6, 6)).reshape(-1, 36)
                Z = sparse_encode(torch.from_numpy(pt), torch.from_numpy(Dn), alpha=a).codes.numpy()
                out.append(reconstruct_from_patches_2d((Z @ Dn).reshape(-1, 6, 6), (8, 8)))
            print(f"alpha {a}: denoised PSNR {psnr(np.stack(out), test_imgs):.2f} dB")

        print("\n## 5c. Codes -> logistic regression on whole 8x8 digits (the deepatlas digits split)")
        from deepatlas.data import load_dataset

        ds = load_dataset("digits")
        Xtr, Xte = ds.X_train.reshape(len(ds.X_train), -1), ds.X_test.reshape(len(ds.X_test), -1)
        print(f"raw pixels: {linear_probe(Xtr, ds.y_train, Xte, ds.y_test):.4f}")
        for name, est in (("learned, 100 atoms", DictionaryLearning(n_atoms=100, alpha=0.2, epochs=10, seed=0)),
                          ("dct, 64 atoms", SparseCoder(dictionary="dct", alpha=0.2)),
                          ("random, 100 atoms", SparseCoder(dictionary="random", n_atoms=100, alpha=0.2))):  # fmt: skip
            est.fit(ds.X_train)
            acc = linear_probe(est.transform(ds.X_train), ds.y_train, est.transform(ds.X_test), ds.y_test)
            print(f"{name}: {acc:.4f}")
    print(f"\npictures in {args.plots}/ (atoms.png, codes.png, objective_vs_time.png)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

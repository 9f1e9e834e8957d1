"""Atlas experiments for the perceptron claims (P.*)."""

from __future__ import annotations

import numpy as np

from deepatlas.atlas import Result, Rule, experiment
from deepatlas.atlas.experiments._common import r
from deepatlas.data import load_dataset
from deepatlas.models.perceptron import Perceptron


@experiment(
    "P.fast",
    rule=Rule(
        "worst share of Novikoff's update bound used over the margins (1e6 if a run did not converge)",
        supported=0.5,
        refuted=1.0,
        condition="it converges, but close to the theorem's worst case",
    ),
    seeds=(0, 1, 2, 3, 4),
    quick_seeds=(0, 1, 2),
    each_seed=False,
    requires=("perceptron",),
)
def p_fast(ctx):
    from sklearn.svm import LinearSVC

    rows = []
    for gap in ctx.pick((3.0, 1.5, 0.75), (4.0, 3.0, 2.0, 1.5, 1.0, 0.75, 0.5)):
        for seed in ctx.seeds:
            rng = np.random.default_rng(seed)
            X = np.c_[rng.choice([-1.0, 1.0], 300) * gap + rng.normal(0, 0.5, 300), rng.normal(0, 1, 300)]
            X = X[np.abs(X[:, 0]) > 0.05]  # a strictly positive margin around the boundary x0 = 0
            y = (X[:, 0] > 0).astype(int)
            model = Perceptron(standardize=False, epochs=1000, seed=seed).fit(X, y)
            Z = np.c_[X, np.ones(len(X))]
            svm = LinearSVC(C=1e4, max_iter=200000).fit(X, y)
            w = np.r_[svm.coef_[0], svm.intercept_]
            gamma = np.min((2 * y - 1) * (Z @ w)) / np.linalg.norm(w)
            bound = (np.max(np.linalg.norm(Z, axis=1)) / gamma) ** 2 if gamma > 0 else np.inf
            rows.append((gap, seed, model.converged_, model.n_updates_, bound))
    per_seed = [max(u / b if c else 1e6 for _, s_, c, u, b in rows if s_ == seed) for seed in ctx.seeds]
    fig, ax = ctx.figure(figsize=(5, 3.2))
    ax.scatter([b for *_, b in rows], [u for *_, u, _ in rows], c=[g for g, *_ in rows], cmap="viridis")
    lim = max(b for *_, b in rows)
    ax.plot([1, lim], [1, lim], "k--", lw=1, label="updates = bound")
    ax.set(xscale="log", yscale="log", xlabel="Novikoff bound (R/γ)²", ylabel="updates made")
    ax.legend(fontsize=8)
    worst = max(u / b for *_, u, b in rows)
    return Result(
        per_seed,
        f"On {len(rows)} separable sets the perceptron converged in {sum(c for _, _, c, _, _ in rows)}, using at most {worst:.1%} of Novikoff's update bound; "
        "the smaller the margin, the more updates.",
        {"runs": len(rows), "max_updates": int(max(u for *_, u, _ in rows)), "max_fraction_of_bound": r(worst)},
        ctx.save(fig),
    )


@experiment(
    "P.small",
    rule=Rule(
        "lowest test accuracy over the small training sizes (separable two-class blobs)",
        supported=0.95,
        refuted=0.75,
        condition="it learns, but small sets leave it well short of the separable optimum",
    ),
    seeds=(0, 1, 2, 3, 4),
    quick_seeds=(0, 1, 2),
    each_seed=False,
    requires=("perceptron",),
)
def p_small(ctx):
    sizes = ctx.pick((20, 50, 100), (20, 50, 100, 200, 400))
    accs = {n: [] for n in sizes}
    for n in sizes:
        for seed in ctx.seeds:
            ds = load_dataset(f"blobs:n={n},seed={seed}")
            fresh = load_dataset(f"blobs:n=2000,seed={seed + 100}")  # a large test set from the same distribution
            model = Perceptron(seed=seed).fit(ds.X_train, ds.y_train)
            accs[n].append(model.score(fresh.X_test, fresh.y_test))
    means = {n: float(np.mean(v)) for n, v in accs.items()}
    fig, ax = ctx.figure(figsize=(5, 3))
    ax.plot(list(means), list(means.values()), "o-")
    ax.set(xlabel="samples", ylabel="test accuracy", ylim=(0.5, 1.02), xscale="log")
    per_seed = [min(accs[n][i] for n in sizes) for i in range(len(ctx.seeds))]
    return Result(
        per_seed,
        f"On small separable two-class sets it reaches {min(means.values()):.0%}–{max(means.values()):.0%} test accuracy; "
        "this holds only when the classes are linearly separable (see P.linear-only).",
        {f"n={n}": r(v) for n, v in means.items()},
        ctx.save(fig),
    )


@experiment(
    "P.linear-only",
    rule=Rule(
        "best test accuracy on XOR and circles (no straight boundary separates them)",
        supported=0.75,
        refuted=0.9,
        condition="it does better than chance on them, though no line separates the classes",
    ),
    requires=("perceptron",),
)
def p_linear_only(ctx):
    scores = {}
    for name in ("blobs", "moons", "circles", "xor"):
        ds = load_dataset(name, seed=ctx.seed)
        scores[name] = Perceptron(seed=ctx.seed).fit(ds.X_train, ds.y_train).score(ds.X_test, ds.y_test)
    fig, ax = ctx.figure(figsize=(5, 3))
    ax.bar(list(scores), list(scores.values()), color=["tab:green", "tab:orange", "tab:red", "tab:red"])
    ax.axhline(0.5, color="k", lw=1, ls="--")
    ax.set(ylabel="test accuracy", ylim=(0, 1))
    return Result(
        max(scores["xor"], scores["circles"]),
        f"Separable blobs: {scores['blobs']:.0%}; XOR {scores['xor']:.0%} and circles {scores['circles']:.0%}, near chance — "
        "no line separates them.",
        {k: r(v) for k, v in scores.items()},
        ctx.save(fig),
    )


@experiment(
    "P.overfit",
    rule=Rule(
        "growth of the perceptron's train-test gap from the fewest to the most input dimensions (n = 60)",
        supported=0.15,
        refuted=0.05,
        condition="the gap grows, but modestly",
    ),
    seeds=(0, 1, 2, 3, 4),
    quick_seeds=(0, 1, 2),
    each_seed=False,
    requires=("perceptron",),
)
def p_overfit(ctx):
    from sklearn.linear_model import LogisticRegression

    dims = ctx.pick((2, 20, 200), (2, 10, 50, 100, 200, 500))
    n = 60
    gaps, reg_gaps, per_dim = [], [], []
    for d in dims:
        g, rg = [], []
        for seed in ctx.seeds:
            rng = np.random.default_rng(seed)
            X = rng.normal(size=(n + 1000, d))
            y = (X[:, 0] + 0.5 * rng.normal(size=n + 1000) > 0).astype(int)  # one informative feature, label noise
            m = Perceptron(seed=seed).fit(X[:n], y[:n])
            g.append(m.score(X[:n], y[:n]) - m.score(X[n:], y[n:]))
            lr = LogisticRegression(C=0.01).fit(X[:n], y[:n])
            rg.append(lr.score(X[:n], y[:n]) - lr.score(X[n:], y[n:]))
        gaps.append(float(np.mean(g)))
        reg_gaps.append(float(np.mean(rg)))
        per_dim.append(g)
    fig, ax = ctx.figure(figsize=(5, 3))
    ax.plot(dims, gaps, "o-", label="perceptron (no penalty)")
    ax.plot(dims, reg_gaps, "s--", label="L2-penalised linear model")
    ax.set(xscale="log", xlabel=f"input dimension (n = {n} training samples)", ylabel="train − test accuracy")
    ax.legend(fontsize=8)
    return Result(
        [per_dim[-1][i] - per_dim[0][i] for i in range(len(ctx.seeds))],
        f"With {n} samples the train–test gap grows from {gaps[0]:.2f} (d={dims[0]}) to {gaps[-1]:.2f} (d={dims[-1]}); "
        f"an L2 penalty keeps it at {reg_gaps[-1]:.2f}. It overfits when dimensions outnumber samples.",
        {"dims": list(dims), "gap": [r(g) for g in gaps], "gap_l2": [r(g) for g in reg_gaps]},
        ctx.save(fig),
    )


@experiment(
    "P.init",
    rule=Rule(
        "spread (max - min) of test accuracy over random starts on non-separable moons",
        supported=0.03,
        refuted=0.005,
        condition="the start moves the boundary but barely the accuracy",
    ),
    seeds=tuple(range(10)),
    quick_seeds=tuple(range(5)),
    each_seed=False,
    requires=("perceptron",),
)
def p_init(ctx):
    seeds = ctx.seeds
    out, converged = {}, {}
    for name in ("blobs", "moons"):
        ds = load_dataset(name)
        accs, dirs = [], []
        for seed in seeds:
            m = Perceptron(init="random", seed=seed).fit(ds.X_train, ds.y_train)
            accs.append(m.score(ds.X_test, ds.y_test))
            converged[name] = converged.get(name, 0) + int(bool(m.converged_))
            w = m.coef_[0]
            dirs.append(np.degrees(np.arctan2(w[1], w[0])))
        out[name] = (accs, dirs)
    fig, ax = ctx.figure(figsize=(5, 3))
    for name, (accs, _) in out.items():
        ax.plot(seeds, accs, "o-", label=name)
    ax.set(xlabel="seed (initial weights and sample order)", ylabel="test accuracy")
    ax.legend(fontsize=8)
    spread = {k: float(np.ptp(v[0])) for k, v in out.items()}
    angle = {k: float(np.ptp(v[1])) for k, v in out.items()}
    return Result(
        spread["moons"],
        f"On separable blobs {converged['blobs']} of {len(seeds)} starts converge (accuracy spread {spread['blobs']:.2f}, boundary angle spread "
        f"{angle['blobs']:.0f}°); on non-separable moons the final weights depend on the start and order "
        f"(accuracy spread {spread['moons']:.2f}, angle spread {angle['moons']:.0f}°).",
        {
            "accuracy_spread": {k: r(v) for k, v in spread.items()},
            "angle_spread_deg": {k: r(v, 1) for k, v in angle.items()},
            "converged": converged,
        },
        ctx.save(fig),
    )

"""Atlas experiments for the multilayer-perceptron claims (M.*)."""

from __future__ import annotations

import time

import numpy as np

from deepatlas.atlas import Result, Rule, experiment
from deepatlas.atlas.experiments._common import MEDIUM, flat, n_params, r
from deepatlas.data import load_dataset
from deepatlas.models.mlp import MLPClassifier


def _mlp(**kw):
    base = dict(epochs=200, lr=1e-2, dropout=0.0, early_stopping=False, batch_size=64)
    base.update(kw)
    return MLPClassifier(**base)


@experiment(
    "M.features",
    rule=Rule(
        "smallest margin of: 0.75 - linear XOR accuracy, 1-hidden-layer XOR accuracy - 0.9, 2-layer minus linear spirals - 0.2",
        supported=0.0,
        refuted=-0.1,
        condition="hidden layers help, but short of one of the three margins",
    ),
    requires=("mlp",),
)
def m_features(ctx):
    configs = {"linear (no hidden layer)": (), "1 x 4": (4,), "1 x 32": (32,), "2 x 32": (32, 32)}
    epochs = ctx.pick(60, 200)
    table = {}
    for data in ("xor", "spirals"):
        ds = load_dataset(data, seed=ctx.seed)
        for label, hidden in configs.items():
            m = _mlp(hidden_sizes=hidden or (1,), epochs=epochs, seed=ctx.seed)
            if not hidden:  # a linear softmax model: sklearn's logistic regression on the same split
                from sklearn.linear_model import LogisticRegression

                acc = LogisticRegression().fit(ds.X_train, ds.y_train).score(ds.X_test, ds.y_test)
            else:
                acc = m.fit(ds.X_train, ds.y_train).score(ds.X_test, ds.y_test)
            table[f"{data} / {label}"] = r(acc)
    fig, ax = ctx.figure(figsize=(5.5, 3.2))
    labels = list(configs)
    for i, data in enumerate(("xor", "spirals")):
        ax.bar(np.arange(len(labels)) + 0.4 * i, [table[f"{data} / {k}"] for k in labels], width=0.4, label=data)
    ax.set_xticks(np.arange(len(labels)) + 0.2, labels, fontsize=7)
    ax.set(ylabel="test accuracy", ylim=(0, 1.05))
    ax.legend(fontsize=8)
    margin = min(
        0.75 - table["xor / linear (no hidden layer)"],
        table["xor / 1 x 32"] - 0.9,
        table["spirals / 2 x 32"] - table["spirals / linear (no hidden layer)"] - 0.2,
    )
    return Result(
        margin,
        f"A linear model fails XOR ({table['xor / linear (no hidden layer)']:.0%}); one hidden layer of 32 solves it "
        f"({table['xor / 1 x 32']:.0%}); spirals go from {table['spirals / linear (no hidden layer)']:.0%} to "
        f"{table['spirals / 2 x 32']:.0%} with two hidden layers.",
        table,
        ctx.save(fig),
    )


@experiment(
    "M.generalise",
    rule=Rule(
        "worst held-out accuracy of the MLP minus logistic regression's, over the datasets",
        supported=0.02,
        refuted=-0.02,
        condition="the MLP only matches a linear model on held-out data",
    ),
    **MEDIUM,
    requires=("mlp",),
)
def m_generalise(ctx):
    from sklearn.linear_model import LogisticRegression

    out = {}
    for data in ctx.pick(("digits", "moons"), ("digits", "moons", "mnist1d")):
        ds = load_dataset(data, seed=ctx.seed)
        mlp = MLPClassifier(epochs=ctx.pick(40, 200), seed=ctx.seed).fit(
            ds.X_train, ds.y_train, validation_data=(ds.X_val, ds.y_val)
        )
        lin = LogisticRegression(max_iter=2000).fit(flat(ds.X_train), ds.y_train)
        out[data] = {
            "mlp_train": r(mlp.score(ds.X_train, ds.y_train)),
            "mlp_test": r(mlp.score(ds.X_test, ds.y_test)),
            "linear_test": r(lin.score(flat(ds.X_test), ds.y_test)),
        }
    fig, ax = ctx.figure(figsize=(5, 3))
    names = list(out)
    ax.bar(np.arange(len(names)) - 0.2, [out[n]["mlp_test"] for n in names], 0.4, label="MLP")
    ax.bar(np.arange(len(names)) + 0.2, [out[n]["linear_test"] for n in names], 0.4, label="logistic regression")
    ax.set_xticks(range(len(names)), names)
    ax.set(ylabel="held-out accuracy", ylim=(0.5, 1.02))
    ax.legend(fontsize=8)
    return Result(
        min(v["mlp_test"] - v["linear_test"] for v in out.values()),
        "With early stopping on a validation split, held-out accuracy of the MLP vs a linear model: "
        + ", ".join(f"{k} {v['mlp_test']:.0%} vs {v['linear_test']:.0%}" for k, v in out.items())
        + "; generalisation depends on that control (see M.overfit).",
        out,
        ctx.save(fig),
    )


@experiment(
    "M.parallel",
    rule=Rule(
        "share of the network's outputs that move when only the first layer's weights move "
        "(independent layers would give 0; the text-error argument needs most of them to depend on it)",
        supported=0.5,
        refuted=0.5,
        verdict="text error",
        higher=True,
    ),
    requires=("mlp",),
)
def m_parallel(ctx):
    import torch

    from deepatlas.models.mlp import mlp_stack

    net = mlp_stack(64, (256, 256), 10)
    batches = ctx.pick((1, 16, 256), (1, 4, 16, 64, 256, 1024))
    per_sample = []
    with torch.no_grad():
        for b in batches:
            x = torch.randn(b, 64)
            net(x)
            reps = max(3, 2000 // b)
            start = time.perf_counter()
            for _ in range(reps):
                net(x)
            per_sample.append((time.perf_counter() - start) / (reps * b) * 1e6)
    fig, ax = ctx.figure(figsize=(5, 3))
    ax.plot(batches, per_sample, "o-")
    ax.set(xscale="log", yscale="log", xlabel="batch size", ylabel="µs per sample (forward)")
    speedup = per_sample[0] / per_sample[-1]
    # Are the layers independent? Re-draw the first layer's weights and count how many of the last
    # layer's outputs move: if the layers were independent, none would.
    torch.manual_seed(ctx.seed)
    x = torch.randn(256, 64)
    first = next(m for m in net.modules() if isinstance(m, torch.nn.Linear))
    with torch.no_grad():
        before = net(x).clone()
        first.weight.add_(0.01 * torch.randn_like(first.weight))
        moved = float(((net(x) - before).abs() > 1e-7).float().mean())
    return Result(
        moved,
        f"Layers are not independent: nudging the first layer's weights moves {moved:.0%} of the outputs, since each layer "
        "needs the previous layer's output, so they run in sequence. The parallelism "
        f"is inside a layer (a matrix product) and across samples: batching makes each sample {speedup:.0f}x cheaper.",
        {
            "batch": list(batches),
            "us_per_sample": [r(v, 2) for v in per_sample],
            "share_of_outputs_moved_by_layer1": r(moved, 3),
        },
        ctx.save(fig),
    )


@experiment(
    "M.interpretable",
    rule=Rule(
        "mean share of a first-layer unit's absolute weight held by its top 10% of pixels "
        "(a unit tied to a nameable part would hold most of it there)",
        supported=0.5,
        refuted=0.5,
        verdict="not testable",
        higher=False,
    ),
    requires=("mlp",),
)
def m_interpretable(ctx):
    ds = load_dataset("digits", seed=ctx.seed)
    m = MLPClassifier(hidden_sizes=(16,), epochs=ctx.pick(30, 100), dropout=0.0, seed=ctx.seed).fit(
        ds.X_train, ds.y_train
    )
    W = m.module_[1].weight.detach().numpy().reshape(-1, 8, 8)
    mass = np.sort(np.abs(W.reshape(len(W), -1)), axis=1)[:, ::-1]
    top = float(np.mean(mass[:, : max(1, mass.shape[1] // 10)].sum(1) / mass.sum(1)))
    fig, axes = ctx.figure(2, 8, figsize=(6, 1.8))
    for w, ax in zip(W, axes.ravel()):
        ax.imshow(w, cmap="RdBu")
        ax.axis("off")
    return Result(
        top,
        "“Highly interpretable” has no measurable meaning as stated, and most would call MLPs the opposite. The first-layer "
        f"weights (shown) are diffuse mixtures of pixels, not nameable parts: a unit's top 10% of pixels hold {top:.0%} "
        "of its weight.",
        {"hidden_units_shown": 16, "top10pct_weight_share": r(top)},
        ctx.save(fig),
    )


@experiment(
    "M.overfit",
    rule=Rule(
        "train-test gap at the largest width minus at the smallest (150 training images, no regularisation)",
        supported=0.03,
        refuted=-0.03,
        condition="with scarce data the gap does not depend on width",
    ),
    seeds=(0, 1, 2, 3, 4),
    quick_seeds=(0, 1, 2),
    each_seed=False,
    requires=("mlp",),
)
def m_overfit(ctx):
    ds = load_dataset("digits")
    n = 150
    # The statistic compares the end points; quick mode fits only those (the middle width was a
    # point on the figure).
    widths = ctx.pick((16, 1024), (8, 32, 128, 512, 2048))
    gap, gap_reg, per_width = [], [], []
    for w in widths:
        g, gr = [], []
        for seed in ctx.seeds:
            plain = _mlp(hidden_sizes=(w,), epochs=ctx.pick(100, 300), lr=1e-3, seed=seed).fit(
                ds.X_train[:n], ds.y_train[:n]
            )
            reg = _mlp(
                hidden_sizes=(w,),
                epochs=ctx.pick(100, 300),
                lr=1e-3,
                dropout=0.5,
                weight_decay=1e-3,
                optimizer="adamw",
                seed=seed,
            ).fit(ds.X_train[:n], ds.y_train[:n])
            g.append(plain.score(ds.X_train[:n], ds.y_train[:n]) - plain.score(ds.X_test, ds.y_test))
            gr.append(reg.score(ds.X_train[:n], ds.y_train[:n]) - reg.score(ds.X_test, ds.y_test))
        gap.append(float(np.mean(g)))
        gap_reg.append(float(np.mean(gr)))
        per_width.append(g)
    fig, ax = ctx.figure(figsize=(5, 3))
    ax.plot(widths, gap, "o-", label="no regularisation")
    ax.plot(widths, gap_reg, "s--", label="dropout 0.5 + weight decay")
    ax.set(xscale="log", xlabel=f"hidden width (n = {n} training images)", ylabel="train − test accuracy")
    ax.legend(fontsize=8)
    return Result(
        [per_width[-1][i] - per_width[0][i] for i in range(len(ctx.seeds))],
        f"With {n} training images the train–test gap goes from {gap[0]:.2f} (width {widths[0]}) to {gap[-1]:.2f} "
        f"(width {widths[-1]}); dropout and weight decay give {gap_reg[0]:.2f} and {gap_reg[-1]:.2f}.",
        {"widths": list(widths), "gap": [r(v) for v in gap], "gap_regularised": [r(v) for v in gap_reg]},
        ctx.save(fig),
    )


@experiment(
    "M.params",
    rule=Rule(
        "parameters of the smallest MLP reaching 95% on digits over the smallest CNN's "
        "(1e6 if only the CNN reaches it)",
        supported=1.5,
        refuted=1.0,
        condition="the MLP needs somewhat more parameters than a CNN, not many more",
    ),
    **MEDIUM,
    requires=("mlp", "cnn"),
)
def m_params(ctx):
    from deepatlas.models.cnn import CNNClassifier

    ds = load_dataset("digits", seed=ctx.seed)
    target = 0.95
    rows = []
    for hidden in ctx.pick(((16,), (64,), (256,)), ((8,), (16,), (32,), (64,), (128,), (256,))):
        m = MLPClassifier(hidden_sizes=hidden, dropout=0.0, epochs=ctx.pick(60, 200), seed=ctx.seed).fit(
            ds.X_train, ds.y_train, validation_data=(ds.X_val, ds.y_val)
        )
        rows.append(("MLP", n_params(m), m.score(ds.X_test, ds.y_test)))
    for ch in ctx.pick(((4, 8), (8, 16)), ((4, 8), (8, 16), (16, 32), (32, 64))):
        m = CNNClassifier(channels=ch, epochs=ctx.pick(30, 60), seed=ctx.seed).fit(
            ds.X_train, ds.y_train, validation_data=(ds.X_val, ds.y_val)
        )
        rows.append(("CNN", n_params(m), m.score(ds.X_test, ds.y_test)))
    fig, ax = ctx.figure(figsize=(5, 3))
    for kind, marker in (("MLP", "o"), ("CNN", "s")):
        pts = [(p, a) for k, p, a in rows if k == kind]
        ax.plot(*zip(*pts), marker + "-", label=kind)
    ax.axhline(target, color="k", lw=1, ls="--")
    ax.set(xscale="log", xlabel="parameters", ylabel="test accuracy")
    ax.legend(fontsize=8)
    smallest = {k: min((p for kk, p, a in rows if kk == k and a >= target), default=None) for k in ("MLP", "CNN")}
    if smallest["MLP"] and smallest["CNN"]:
        ratio = smallest["MLP"] / smallest["CNN"]
        text = f"To reach {target:.0%} on digits the smallest MLP tried needs {smallest['MLP']:,} parameters, the smallest CNN {smallest['CNN']:,} ({ratio:.1f}x)."
    else:
        ratio = 1e6 if smallest["CNN"] else float("nan")
        text = f"Not every family reached {target:.0%} in this budget: {smallest}."
    return Result(ratio, text, {"rows": [[k, p, r(a)] for k, p, a in rows]}, ctx.save(fig))


@experiment(
    "M.scaling",
    rule=Rule(
        "test accuracy with standardised inputs minus raw inputs (features in units 10^6 apart)",
        supported=0.05,
        refuted=0.0,
        condition="standardising helps by less than five points",
    ),
    seeds=(0, 1, 2, 3, 4),
    quick_seeds=(0, 1, 2),
    each_seed=False,
    requires=("mlp",),
)
def m_scaling(ctx):
    ds = load_dataset("moons")
    scales = np.array([1000.0, 0.001])  # the same data, features in very different units
    raw, std = [], []
    for seed in ctx.seeds:
        kw = dict(hidden_sizes=(32,), epochs=ctx.pick(60, 200), seed=seed)
        raw.append(
            _mlp(standardize=False, **kw).fit(ds.X_train * scales, ds.y_train).score(ds.X_test * scales, ds.y_test)
        )
        std.append(
            _mlp(standardize=True, **kw).fit(ds.X_train * scales, ds.y_train).score(ds.X_test * scales, ds.y_test)
        )
    fig, ax = ctx.figure(figsize=(4.5, 3))
    ax.bar(["raw (units 1000 : 0.001)", "standardised"], [np.mean(raw), np.mean(std)], yerr=[np.std(raw), np.std(std)])
    ax.set(ylabel="test accuracy", ylim=(0.4, 1.02))
    return Result(
        [b - a for a, b in zip(raw, std, strict=True)],
        f"Moons with features in units 10⁶ apart: {np.mean(raw):.0%} on raw inputs vs {np.mean(std):.0%} after standardising "
        "(statistics from the training split).",
        {"raw": [r(v) for v in raw], "standardised": [r(v) for v in std]},
        ctx.save(fig),
    )


@experiment(
    "M.local-minima",
    rule=Rule(
        "share of 2-hidden-unit XOR runs that end in a poor solution (training accuracy < 90%)",
        supported=0.2,
        refuted=0.0,
        condition="poor minima occur, but rarely",
    ),
    seeds=tuple(range(8)),
    quick_seeds=tuple(range(5)),
    each_seed=False,
    requires=("mlp",),
)
def m_local_minima(ctx):
    ds = load_dataset("xor")
    seeds = ctx.seeds
    res = {}
    for width in (2, 64):
        accs = [
            _mlp(hidden_sizes=(width,), epochs=ctx.pick(80, 200), seed=s)
            .fit(ds.X_train, ds.y_train)
            .score(ds.X_train, ds.y_train)
            for s in seeds
        ]
        res[width] = accs
    fig, ax = ctx.figure(figsize=(4.5, 3))
    ax.boxplot([res[2], res[64]], tick_labels=["2 hidden units", "64 hidden units"])
    ax.set(ylabel="final training accuracy on XOR")
    stuck = sum(a < 0.9 for a in res[2])
    return Result(
        stuck / len(seeds),
        f"With 2 hidden units {stuck} of {len(seeds)} seeds end in a poor solution on XOR (training accuracy < 90%); "
        f"with 64 units none do (min {min(res[64]):.0%}). Poor minima trouble narrow networks; width removes most of them.",
        {"narrow": [r(a) for a in res[2]], "wide": [r(a) for a in res[64]]},
        ctx.save(fig),
    )

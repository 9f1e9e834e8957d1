"""Atlas experiments for the workflow claims (K.*)."""

from __future__ import annotations

import numpy as np

from deepatlas.atlas import Result, experiment
from deepatlas.atlas.experiments._common import r


@experiment("K.cv", seeds=tuple(range(40)), requires=("perceptron",))
def k_cv(ctx):
    from sklearn.datasets import make_moons
    from sklearn.model_selection import StratifiedKFold, cross_val_score, train_test_split

    from deepatlas.models.perceptron import Perceptron

    seeds = ctx.seeds[: ctx.pick(15, 40)]
    single_err, cv_err = [], []
    X_big, y_big = make_moons(20000, noise=0.3, random_state=999)
    for seed in seeds:
        X, y = make_moons(100, noise=0.3, random_state=seed)
        truth = Perceptron(seed=0).fit(X, y).score(X_big, y_big)  # the model's real accuracy on new data
        Xa, Xb, ya, yb = train_test_split(X, y, test_size=0.2, random_state=seed, stratify=y)
        single = Perceptron(seed=0).fit(Xa, ya).score(Xb, yb)
        cv = cross_val_score(Perceptron(seed=0), X, y, cv=StratifiedKFold(5, shuffle=True, random_state=seed)).mean()
        single_err.append(single - truth)
        cv_err.append(cv - truth)
    fig, ax = ctx.figure(figsize=(5, 3))
    ax.boxplot([single_err, cv_err], tick_labels=["single 80/20 split", "5-fold CV"])
    ax.axhline(0, color="k", lw=1)
    ax.set(ylabel="estimate − true accuracy")
    rmse = {"single": float(np.sqrt(np.mean(np.square(single_err)))), "cv": float(np.sqrt(np.mean(np.square(cv_err))))}
    return Result(
        "supported" if rmse["cv"] < rmse["single"] else "refuted",
        f"Over {len(seeds)} samples of 100 points, a single hold-out split misses the true accuracy by {rmse['single']:.3f} "
        f"(RMS), 5-fold cross-validation by {rmse['cv']:.3f}: averaging over folds steadies the estimate.",
        {"rmse_single_split": r(rmse["single"]), "rmse_5fold": r(rmse["cv"]), "samples": len(seeds)},
        ctx.save(fig),
    )

"""Tuning benchmark: a tuned MLP against the default MLP on MNIST-1D, and what pruning saves.

Two studies with the same TPE seed and the same trial budget run one after the other, one with
the median pruner and one without; the best configuration of the pruned study is then trained on
the training split and scored on the test split, against the default ``MLPClassifier``.

    python benchmarks/bench_tuning.py --trials 30             # the issue's budget
    python benchmarks/bench_tuning.py --trials 30 --epochs 60 # cap every trial's epochs (faster)

Targets (issue #10): tuned beats default test accuracy by >= 5 points within 30 trials; pruning
saves >= 30 % of the epochs the unpruned study runs. Prints CPU seconds as well as wall seconds,
because wall time on a shared machine says little.
"""

from __future__ import annotations

import argparse
import time

import torch


def study_run(ds, trials: int, pruner: str, fixed: dict, seed: int):
    import optuna

    from deepatlas import tuning

    tuning._quiet_optuna()
    study = tuning.load_study(optuna.storages.InMemoryStorage(), f"bench-{pruner}", seed=seed, pruner=pruner)
    objective = tuning.make_objective("mlp", ds, tuning.default_space("mlp"), fixed)
    wall, cpu = time.perf_counter(), time.process_time()
    study.optimize(objective, n_trials=trials)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    epochs = sum(int(t.user_attrs.get("epochs") or 0) for t in study.trials)
    pruned = sum(t.state.name == "PRUNED" for t in study.trials)
    return study, epochs, pruned, wall, cpu


def main() -> None:
    from deepatlas import tuning
    from deepatlas.data import load_dataset
    from deepatlas.models.mlp import MLPClassifier

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=30)
    p.add_argument("--epochs", type=int, default=None, help="fixed epochs cap per trial (default: the model's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--pruner", choices=("median", "none", "both"), default="both",
                   help="run one study only (two processes can then run the two side by side)")  # fmt: skip
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    ds = load_dataset("mnist1d")
    fixed = {} if args.epochs is None else {"epochs": args.epochs}

    t = time.process_time()
    default = MLPClassifier(**fixed).fit(ds.X_train, ds.y_train, validation_data=(ds.X_val, ds.y_val))
    default_acc = default.score(ds.X_test, ds.y_test)
    print(
        f"default MLP {fixed or ''}: test accuracy {default_acc:.4f} ({default.n_epochs_} epochs, {time.process_time() - t:.1f} CPU s)"
    )

    results = {}
    for pruner in ("median", "none") if args.pruner == "both" else (args.pruner,):
        study, epochs, pruned, wall, cpu = study_run(ds, args.trials, pruner, fixed, args.seed)
        results[pruner] = (study, epochs)
        print(f"study pruner={pruner}: {args.trials} trials, {pruned} pruned, {epochs} epochs, best val "
              f"{study.best_value:.4f}, {cpu:.0f} CPU s ({wall:.0f} s wall)", flush=True)  # fmt: skip
    if len(results) == 2:
        saved = 1 - results["median"][1] / results["none"][1]
        print(f"pruning saves {100 * saved:.1f} % of the epochs (target >= 30 %)")

    for pruner, (study, _) in results.items():
        params = tuning.compose_params("mlp", study.best_params, fixed)
        tuned = MLPClassifier(**params).fit(ds.X_train, ds.y_train, validation_data=(ds.X_val, ds.y_val))
        acc = tuned.score(ds.X_test, ds.y_test)
        print(f"tuned MLP (pruner={pruner}) {params}: test accuracy {acc:.4f}, "
              f"{100 * (acc - default_acc):+.1f} points vs default (target >= +5)")  # fmt: skip


if __name__ == "__main__":
    main()

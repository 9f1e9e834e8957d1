"""Tuning benchmark: a tuned MLP against the default MLP on MNIST-1D, and what pruning saves.

For every TPE seed, studies with the same seed and trial budget run one after the other, one per
pruner (the library's default successive halving, the median rule, none); the best
configuration of each study is trained on the training split and scored on the test split,
against the default ``MLPClassifier`` under the same epoch cap.

    python benchmarks/bench_tuning.py --trials 30 --epochs 20                  # halving vs none
    python benchmarks/bench_tuning.py --trials 30 --epochs 20 --seeds 0 1 2 --pruners halving median none

Targets (issue #10): tuned beats default test accuracy by >= 5 points within 30 trials; pruning
saves >= 30 % of the epochs the unpruned study (same seed) runs. Prints CPU seconds as well as
wall seconds, because wall time on a shared machine says little.
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
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="TPE sampler seeds")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--pruners", nargs="+", choices=tuning.PRUNERS, default=["halving", "none"],
                   help="studies to run per seed; savings are against 'none' when it is listed")  # fmt: skip
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    ds = load_dataset("mnist1d")
    fixed = {} if args.epochs is None else {"epochs": args.epochs}

    t = time.process_time()
    default = MLPClassifier(**fixed).fit(ds.X_train, ds.y_train, validation_data=(ds.X_val, ds.y_val))
    default_acc = default.score(ds.X_test, ds.y_test)
    print(f"default MLP {fixed or ''}: test accuracy {default_acc:.4f} ({default.n_epochs_} epochs, "
          f"{time.process_time() - t:.1f} CPU s)")  # fmt: skip
    print(f"{'seed':>4} {'pruner':<8} {'pruned':>6} {'epochs':>6} {'saved':>6} {'best val':>8} {'test':>6} "
          f"{'gain':>6} {'CPU s':>6}  best configuration")  # fmt: skip
    for seed in args.seeds:
        rows = {}
        for pruner in args.pruners:
            study, epochs, pruned, wall, cpu = study_run(ds, args.trials, pruner, fixed, seed)
            params = tuning.compose_params("mlp", study.best_params, fixed)
            tuned = MLPClassifier(**params).fit(ds.X_train, ds.y_train, validation_data=(ds.X_val, ds.y_val))
            rows[pruner] = (pruned, epochs, study.best_value, tuned.score(ds.X_test, ds.y_test), cpu, params)
        for pruner, (pruned, epochs, best, acc, cpu, params) in rows.items():
            saved = f"{100 * (1 - epochs / rows['none'][1]):5.1f}%" if "none" in rows else "     -"
            shown = {k: round(v, 5) if isinstance(v, float) else v for k, v in params.items() if k != "epochs"}
            print(f"{seed:>4} {pruner:<8} {pruned:>6} {epochs:>6} {saved:>6} {best:>8.4f} {acc:>6.3f} "
                  f"{100 * (acc - default_acc):>+6.1f} {cpu:>6.0f}  {shown}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()

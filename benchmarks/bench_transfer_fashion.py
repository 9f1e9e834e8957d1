"""Transfer on real images (issue #19, point 8): the default CNN pre-trained on Fashion-MNIST
classes 0-4 (T-shirt, trouser, pullover, dress, coat; 27,000 training images), fine-tuned on
classes 5-9 (sandal, shirt, sneaker, bag, ankle boot) with 1, 5 and 10 % of their training labels,
against the same network trained from scratch on the same labels, both with the CNN's defaults
(so both sides get the small-data schedule the same way) and each side at its best learning rate.

    python benchmarks/bench_transfer_fashion.py                       # 5 seeds, lr 1e-3 and 3e-3
    python benchmarks/bench_transfer_fashion.py --lr 1e-3 --results a.jsonl &   # two processes,
    python benchmarks/bench_transfer_fashion.py --lr 3e-3 --results b.jsonl &   # one source fit
    python benchmarks/bench_transfer_fashion.py --summary a.jsonl b.jsonl       # the table

The source is fitted once and saved to ``--source`` (reused when that run directory exists), so
every cell and every process fine-tunes the same network. Each (fraction, freeze, lr, seed) fit
pair appends one JSON line to ``--results`` (done lines are skipped on a rerun). The summary
chooses each side's learning rate per cell on the **validation** split (median over seeds of the
validation accuracy, the split early stopping also watches) and reports the test accuracy at that
choice: medians over seeds, the per-seed gains transfer - scratch, and the CPU seconds.

Training accuracy is not scored here: ``transfer`` scores it on the target's whole training split
(27,000 images, mostly unlabelled in these cells), 15 CPU s a model, which would double the cost.
Digits and MNIST-1D: ``benchmarks/bench_transfer.py``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path


def _val_test_metrics(estimator, ds) -> dict[str, float]:
    """Validation and test accuracy only (stands in for ``runs.supervised_metrics`` here)."""
    from sklearn.metrics import accuracy_score

    return {
        "val_accuracy": float(accuracy_score(ds.y_val, estimator.predict(ds.X_val))),
        "test_accuracy": float(accuracy_score(ds.y_test, estimator.predict(ds.X_test))),
    }


def source_model(path: Path, src):
    """The default CNN on classes 0-4: loaded from ``path`` if saved there, else fitted and saved."""
    from deepatlas.models.cnn import CNNClassifier
    from deepatlas.saving import load, save_model

    if (path / "model.safetensors").exists():
        return load(path), 0.0
    cpu = time.process_time()
    model = CNNClassifier(verbose=False).fit(src.X_train, src.y_train, validation_data=(src.X_val, src.y_val))
    seconds = time.process_time() - cpu
    save_model(model, path, extra_config={"data": "fashion-mnist-0to4"})
    return model, seconds


def measure(args) -> None:
    import torch

    import deepatlas.runs
    from deepatlas.data import load_dataset
    from deepatlas.transfer import transfer

    torch.set_num_threads(args.threads)
    deepatlas.runs.supervised_metrics = _val_test_metrics  # `transfer` imports it at call time
    src, tgt = load_dataset("fashion-mnist-0to4"), load_dataset("fashion-mnist-5to9")
    source, seconds = source_model(Path(args.source), src)
    print(f"source (classes 0-4, defaults, {args.source}): test accuracy {source.score(src.X_test, src.y_test):.4f}"
          + (f", fitted in {seconds:.0f} CPU s" if seconds else ", loaded"), flush=True)  # fmt: skip
    out = Path(args.results)
    done = {(r["fraction"], r["freeze"], r["lr"], r["seed"]) for r in _read([out])}
    for fraction in args.fractions:
        for freeze in args.freeze:
            for lr in args.lr:
                for seed in range(args.seeds):
                    if (fraction, freeze, lr, seed) in done:
                        continue
                    cpu = time.process_time()
                    tuned, scratch, m = transfer(
                        source, tgt, freeze=freeze, labels_fraction=fraction, params={"lr": lr}, seed=seed
                    )
                    row = {"fraction": fraction, "freeze": freeze, "lr": lr, "seed": seed}
                    row["labels"] = m["n_train_labels"]
                    for side, est in (("transfer", tuned), ("scratch", scratch)):
                        row[f"{side}_val"] = m[f"{side}_val_accuracy"]
                        row[f"{side}_test"] = m[f"{side}_test_accuracy"]
                        row[f"{side}_schedule"] = [est.epochs_, est.batch_size_]  # epochs x batch the rule chose
                        row[f"{side}_epochs_run"] = m[f"{side}_epochs"]
                    row["cpu_s"] = round(time.process_time() - cpu, 1)
                    with out.open("a") as fh:
                        fh.write(json.dumps(row) + "\n")
                    print(json.dumps(row), flush=True)


def _read(paths) -> list[dict]:
    rows = []
    for path in paths:
        if Path(path).exists():
            rows += [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return rows


def _best_lr(by_lr: dict, seeds: list[int], side: str) -> float:
    """The learning rate whose median validation accuracy over ``seeds`` is highest (the smaller on a tie)."""
    return max(sorted(by_lr), key=lambda lr: statistics.median(by_lr[lr][s][f"{side}_val"] for s in seeds))


def summary(paths) -> None:
    rows = _read(paths)
    cells: dict[tuple, dict[float, dict[int, dict]]] = {}
    for r in rows:
        cells.setdefault((r["fraction"], r["freeze"]), {}).setdefault(r["lr"], {})[r["seed"]] = r
    med = statistics.median
    print("per learning rate (median over seeds; val = validation accuracy, the selection criterion):")
    print(f"{'fraction':>8} {'labels':>6} {'freeze':<8} {'lr':>7} {'seeds':>5} {'t val':>6} {'s val':>6} "
          f"{'t test':>6} {'s test':>6} {'schedule t / s':>15}  CPU s")  # fmt: skip
    for (fraction, freeze), by_lr in sorted(cells.items()):
        for lr, by_seed in sorted(by_lr.items()):
            rs = list(by_seed.values())
            sched = (
                f"{'x'.join(map(str, rs[0]['transfer_schedule']))} / {'x'.join(map(str, rs[0]['scratch_schedule']))}"
            )
            print(f"{fraction:>8.2f} {rs[0]['labels']:>6} {freeze:<8} {lr:>7.0e} {len(rs):>5} "
                  f"{med(r['transfer_val'] for r in rs):>6.4f} {med(r['scratch_val'] for r in rs):>6.4f} "
                  f"{med(r['transfer_test'] for r in rs):>6.4f} {med(r['scratch_test'] for r in rs):>6.4f} "
                  f"{sched:>15}  {sum(r['cpu_s'] for r in rs):.0f}")  # fmt: skip
    print("\neach side at the learning rate with the best median validation accuracy (test accuracy reported):")
    for (fraction, freeze), by_lr in sorted(cells.items()):
        seeds = sorted(set.intersection(*(set(s) for s in by_lr.values())))  # seeds measured at every lr
        if not seeds:
            continue
        lt, ls = (_best_lr(by_lr, seeds, side) for side in ("transfer", "scratch"))
        t = [by_lr[lt][s]["transfer_test"] for s in seeds]
        sc = [by_lr[ls][s]["scratch_test"] for s in seeds]
        gains = [100 * (a - b) for a, b in zip(t, sc)]
        verdict = (
            f"transfer ahead on all {len(seeds)} seeds"
            if all(g > 0 for g in gains)
            else f"transfer behind on all {len(seeds)} seeds"
            if all(g < 0 for g in gains)
            else f"mixed ({sum(g > 0 for g in gains)} of {len(seeds)} ahead)"
        )
        cpu = sum(r["cpu_s"] for by_seed in by_lr.values() for r in by_seed.values())
        print(f"{fraction:.2f} ({by_lr[lt][seeds[0]]['labels']} labels) {freeze}: transfer {med(t):.4f} (lr {lt:.0e}), "
              f"scratch {med(sc):.4f} (lr {ls:.0e}), gain {med(gains):+.1f} "
              f"[{', '.join(f'{g:+.1f}' for g in gains)}], {len(seeds)} seeds, {cpu:.0f} CPU s: {verdict}")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.01, 0.05])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--lr", type=float, nargs="+", default=[1e-3, 3e-3])
    p.add_argument("--freeze", nargs="+", default=["none"], choices=("none", "features", "all-but-head"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--source", default="runs/transfer-fashion-source", help="source run directory (cache)")
    p.add_argument("--results", default="runs/transfer-fashion.jsonl", help="one JSON line per fit pair")
    p.add_argument("--summary", nargs="+", metavar="JSONL", help="only print the tables of these result files")
    args = p.parse_args()
    if args.summary:
        summary(args.summary)
        return
    measure(args)
    summary([args.results])


if __name__ == "__main__":
    main()

"""Which runtime for the MLP and the CNN: torch eager, torch.compile, onnxruntime, OpenVINO and LiteRT,
float and int8 (static, calibrated on the training split), at batch 1 and 64, with test accuracy and
file size (deepatlas/export/runtimes.py; the same as ``deepatlas benchmark-runtimes RUN`` per run).

Each model is trained with its card's defaults (seed 0) into ``--runs`` (reused when already
there), then measured. Prints one Markdown table per (model, data) and writes them all as JSON.
Issue #26's targets: int8 within 1 point of float accuracy, int8 files <= 0.3x the float size, the
best runtime at batch 1 >= 5x faster than torch eager.

    python benchmarks/bench_runtimes.py [--data digits fashion-mnist] [--models mlp cnn] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from deepatlas.data import load_dataset
from deepatlas.export.runtimes import benchmark_runtimes, table
from deepatlas.models.cnn import CNNClassifier
from deepatlas.models.mlp import MLPClassifier
from deepatlas.runs import train_run
from deepatlas.saving import load

MODELS = {"mlp": MLPClassifier, "cnn": CNNClassifier}


def targets(rows: list[dict]) -> dict:
    done = {(r["runtime"], r["precision"]): r for r in rows if r["batch_1_ms"]}
    pairs = [(done[(n, "float32")], done[(n, "int8")]) for n, p in done if p == "int8" and (n, "float32") in done]
    return {
        "worst_int8_points": min(100 * (q["accuracy"] - f["accuracy"]) for f, q in pairs),
        "largest_int8_size_ratio": max(q["bytes"] / f["bytes"] for f, q in pairs),
        "best_b1_speedup_vs_eager": max(r["speedup_b1_vs_eager"] for r in done.values()),
        "best_b1_runtime": max(done.values(), key=lambda r: r["speedup_b1_vs_eager"])["runtime"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["digits", "fashion-mnist"])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", default="runs/bench-runtimes", help="where the trained runs go (reused)")
    parser.add_argument("--out", default="runs/bench-runtimes/runtimes.json")
    parser.add_argument("--epochs", type=int, help="override the cards' default epochs (a loaded machine)")
    parser.add_argument("--no-timing", action="store_true", help="accuracy and sizes only (one short timing round)")
    args = parser.parse_args()
    results = []
    for data in args.data:
        ds = load_dataset(data, seed=0)
        for name in args.models:
            run = Path(args.runs) / f"{name}-{data}"
            start = time.perf_counter()
            if not (run / "model.safetensors").exists():
                params = {"seed": 0} if args.epochs is None else {"seed": 0, "epochs": args.epochs}
                train_run(MODELS[name](**params), ds, run, data_spec=data)
            trained = time.perf_counter() - start
            est = load(run)
            short = {"rounds": 1, "calls": {1: 5, 64: 2}} if args.no_timing else {"rounds": args.rounds}
            rows = benchmark_runtimes(est, ds.X_test, ds.y_test, ds.X_train, threads=args.threads, **short)
            entry = {"model": name, "data": data, "threads": args.threads, "train_s": trained, "rows": rows}
            entry["targets"] = targets(rows)
            results.append(entry)
            print(f"\n### {name} on {data} ({args.threads} threads; trained in {trained:.0f} s)\n")
            print(table(rows))
            print(json.dumps(entry["targets"]))
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()

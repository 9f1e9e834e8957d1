"""Which runtime for the MLP and the CNN: torch eager, torch.compile, onnxruntime, OpenVINO and LiteRT,
float and int8 (static, calibrated on the training split), at batch 1 and 64, with test accuracy and
file size (deepatlas/export/runtimes.py; the same as ``deepatlas benchmark-runtimes RUN`` per run).

Each model is trained with its card's defaults (seed 0) into ``--runs`` (reused when already
there), then measured. Prints one Markdown table per (model, data) and writes them all as JSON.
Issue #26's targets: int8 within 1 point of float accuracy, int8 files <= 0.3x the float size, the
best runtime at batch 1 >= 5x faster than torch eager.

    python benchmarks/bench_runtimes.py [--data digits fashion-mnist] [--models mlp cnn] [--threads 2]
    python benchmarks/bench_runtimes.py --quant-table   # deepatlas export RUN --format F --quantize M, all F, M
    python benchmarks/bench_runtimes.py --quant-table --exporter torchscript   # the legacy ONNX exporter
"""

from __future__ import annotations

import argparse
import json
import os
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
    best = max(done.values(), key=lambda r: r["speedup_b1_vs_eager"])
    result = {
        "worst_int8_points": min(100 * (q["accuracy"] - f["accuracy"]) for f, q in pairs),
        "largest_int8_size_ratio": max(q["bytes"] / f["bytes"] for f, q in pairs),
        "best_b1_speedup_vs_eager": best["speedup_b1_vs_eager"],
        "best_b1_runtime": f"{best['runtime']} {best['precision']}",
    }
    result["met"] = {
        "int8_within_1_point": result["worst_int8_points"] >= -1.0,
        "int8_size_at_most_0.3": result["largest_int8_size_ratio"] <= 0.3,
        "best_b1_at_least_5x_eager": result["best_b1_speedup_vs_eager"] >= 5.0,
    }
    return result


def quant_table(run: Path, modes=("int8", "dynamic"), exporter: str = "dynamo") -> list[dict]:
    """``deepatlas export RUN --exporter E --format F --quantize M`` for every format and mode (E: the
    CLI's default, dynamo, unless asked); each row also gets the export's CPU seconds."""
    from deepatlas.export import export

    rows = []
    for fmt in ("onnx", "openvino", "tflite"):
        for mode in modes:
            cpu = time.process_time()
            q = export(run, format=fmt, quantize=mode, exporter=exporter).quantized
            q["cpu_s"], q["exporter"] = time.process_time() - cpu, exporter
            rows.append(q)
            print(
                f"| {run.name} | {fmt} | {mode} | {q['float']:.4f} | {q['quantized']:.4f} | "
                f"{100 * (q['quantized'] - q['float']):+.2f} | {q['float_bytes']:,} | "
                f"{q['quantized_bytes']:,} | {q['size_ratio']:.3f} | {q['cpu_s']:.0f} |",
                flush=True,
            )
    return rows


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
    parser.add_argument("--quant-table", action="store_true", help="every format x --modes; no timing")
    parser.add_argument("--modes", nargs="+", default=["int8", "dynamic"], choices=["int8", "dynamic"])
    parser.add_argument("--exporter", default="dynamo", choices=["dynamo", "torchscript"], help="--quant-table's")
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
            if args.quant_table:
                results.append({"model": name, "data": data, "rows": quant_table(run, args.modes, args.exporter)})
                Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                Path(args.out).write_text(json.dumps(results, indent=1, default=float))
                continue
            est = load(run)
            short = {"rounds": 1, "calls": {1: 5, 64: 2}} if args.no_timing else {"rounds": args.rounds}
            load_before = os.getloadavg()  # a shared machine: the load says how far to trust the times
            rows = benchmark_runtimes(est, ds.X_test, ds.y_test, ds.X_train, threads=args.threads, **short)
            entry = {"model": name, "data": data, "threads": args.threads, "train_s": trained, "rows": rows}
            entry["epochs"] = est.run_config_.get("fitted", {}).get("n_epochs_")  # early stopping may end sooner
            entry["load_average"] = {"before": load_before, "after": os.getloadavg()}
            entry["targets"] = targets(rows)
            results.append(entry)
            loads = ", ".join(f"{a:.1f}-{b:.1f}" for a, b in zip(load_before, entry["load_average"]["after"]))
            print(f"\n### {name} on {data} ({args.threads} threads; load average 1/5/15 min {loads})\n")
            print(table(rows))
            print(json.dumps(entry["targets"]))
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()

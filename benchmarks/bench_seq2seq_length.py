"""Exact match by source length for trained seq2seq runs: attention against the no-attention ablation.

Train the runs first (seed 0, defaults; each under ten minutes on 2 cores), then compare them:

    deepatlas train seq2seq --data dates --out runs/dates-additive
    deepatlas train seq2seq --data dates --set "attention='none'" --out runs/dates-none
    python benchmarks/bench_seq2seq_length.py runs/dates-additive runs/dates-none --plot plots/dates-by-length.png

Each run is loaded from its directory and evaluated again on the test split of the data it was
trained on (its ``config.json``), with :func:`deepatlas.models.seq2seq.seq2seq.exact_match_by_length`
(quarters of the test sources' lengths). Prints one row per bucket and run, and the gap between the
first run and each other on the longest bucket; ``--json`` writes the same as JSON and ``--plot``
draws the buckets side by side (:func:`deepatlas.models.seq2seq.plots.length_buckets_plot`). Several
runs with the same ``attention`` (other seeds) are summarised as the median, min and max of their
longest-bucket exact match.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def evaluate(run: Path) -> tuple[str, list[dict], dict]:
    from deepatlas.data import load_dataset
    from deepatlas.saving import load

    config = json.loads((run / "config.json").read_text())
    est = load(run)
    ds = load_dataset(config["data"])
    buckets = est.length_buckets(ds.X_test, ds.y_test)
    return est.attention, buckets, {"run": str(run), "data": config["data"], "seed": config.get("seed")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="seq2seq run directories (the first is the reference)")
    parser.add_argument("--plot", type=Path, help="write the buckets of the first run of each attention as a PNG")
    parser.add_argument("--json", type=Path, help="write every run's buckets as JSON")
    args = parser.parse_args()

    from deepatlas.models.seq2seq.plots import length_buckets_plot

    results = []
    for run in args.runs:
        attention, buckets, info = evaluate(run)
        results.append({**info, "attention": attention, "length_buckets": buckets})
        for b in buckets:
            print(
                f"{run.name:<28} attention={attention:<14} length {b['min_length']:>3}-{b['max_length']:<3} "
                f"n={b['n']:<5} exact match {b['exact_match']:.3f}"
            )
    ref = results[0]["length_buckets"][-1]["exact_match"]
    for r in results[1:]:
        gap = ref - r["length_buckets"][-1]["exact_match"]
        print(f"longest bucket: {results[0]['run']} - {r['run']} = {gap:+.3f}")
    by_attention: dict[str, list[float]] = {}
    for r in results:
        by_attention.setdefault(r["attention"], []).append(r["length_buckets"][-1]["exact_match"])
    for attention, values in by_attention.items():
        print(
            f"attention={attention}: longest bucket over {len(values)} run(s): median {statistics.median(values):.3f}, "
            f"min {min(values):.3f}, max {max(values):.3f}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    if args.plot:
        first = {}
        for r in results:
            first.setdefault(f"attention={r['attention']}", r["length_buckets"])
        print("wrote", length_buckets_plot(first, args.plot))


if __name__ == "__main__":
    main()

"""Exact match by source length for trained seq2seq runs: attention against the no-attention ablation.

Train the runs first (defaults; each under ten minutes on 2 cores), then compare them:

    deepatlas train seq2seq --data dates --seed 0 --out runs/att-0
    deepatlas train seq2seq --data dates --seed 0 --set attention=none --out runs/none-0
    ... (seeds 1 and 2 the same)
    python benchmarks/bench_seq2seq_length.py runs/att-0 runs/att-1 runs/att-2 runs/none-0 runs/none-1 runs/none-2 \\
        --plot plots/dates-by-length.png --json dates-by-length.json

Each run is loaded from its directory and evaluated again on the test split of the data it was
trained on (its ``config.json``), with :func:`deepatlas.models.seq2seq.seq2seq.exact_match_by_length`
(quarters of the test sources' lengths). Prints one row per bucket and run, the gap between the
first run and each other on the longest bucket, and the median, min and max of the longest bucket
over the runs of each ``attention``.

With runs of both sides (attention, and ``attention=none``) on the same test sources, it then judges
"clearly above the ablation on the longest inputs" as docs/results-seq2seq.md defines it: on the
longest bucket, (a) every attention run above every ablation run, (b) on every pair (each attention run
with each ablation run) attention removes at least half of the ablation's errors, (c) on every pair the
exact McNemar test gives p < 0.01 (:func:`deepatlas.models.seq2seq.seq2seq.paired_comparison`). It
also prints the earlier bar's outcome (>= 5 points on the longest bucket between the attention's worst
run and the ablation's best, which must also be above it). ``--json`` writes everything as JSON and
``--plot`` draws the buckets of the first run of each side
(:func:`deepatlas.models.seq2seq.plots.length_buckets_plot`).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np

MIN_ERROR_REDUCTION = 0.5
MAX_P = 0.01
OLD_BAR_POINTS = 0.05


def evaluate(run: Path) -> dict:
    """The run's buckets, and which test sources it writes right (for the paired tests)."""
    from deepatlas.data import load_dataset
    from deepatlas.models.seq2seq.seq2seq import exact_match_by_length, tokenize
    from deepatlas.saving import load

    config = json.loads((run / "config.json").read_text())
    est = load(run)
    ds = load_dataset(config["data"])
    sources, references = list(ds.X_test), list(ds.y_test)
    predictions = list(est.predict(sources))
    lengths = np.array([len(tokenize(s, est.level)) for s in sources])
    buckets = exact_match_by_length(predictions, references, lengths)
    correct = np.array([str(p) == str(r) for p, r in zip(predictions, references)])
    return {
        "run": str(run),
        "data": config["data"],
        "seed": config.get("seed"),
        "attention": est.attention_kind,
        "length_buckets": buckets,
        "_sources": sources,
        "_correct_longest": correct[lengths >= buckets[-1]["min_length"]],
    }


def clearly_above(attention_runs: list[dict], ablation_runs: list[dict]) -> dict:
    """The bar of docs/results-seq2seq.md ("What 'clearly above' means") and the earlier 5-point bar."""
    from deepatlas.models.seq2seq.seq2seq import paired_comparison

    every = attention_runs + ablation_runs
    for r in every[1:]:
        if r["_sources"] != every[0]["_sources"]:
            raise SystemExit(
                f"{r['run']}: its test sources differ from the others'; the paired test needs the same ones."
            )
    longest = lambda r: r["length_buckets"][-1]["exact_match"]  # noqa: E731
    pairs = []
    for a in attention_runs:
        for b in ablation_runs:
            pairs.append(
                {"attention_run": a["run"], "ablation_run": b["run"]}
                | paired_comparison(a["_correct_longest"], b["_correct_longest"])
            )
    worst_attention = min(longest(r) for r in attention_runs)
    best_ablation = max(longest(r) for r in ablation_runs)
    a_ok = worst_attention > best_ablation
    b_ok = all(p["error_reduction"] is not None and p["error_reduction"] >= MIN_ERROR_REDUCTION for p in pairs)
    c_ok = all(p["mcnemar_p"] < MAX_P for p in pairs)
    return {
        "pairs": pairs,
        "attention_worst_longest": worst_attention,
        "ablation_best_longest": best_ablation,
        "a_every_attention_run_above_every_ablation_run": a_ok,
        "b_error_reduction_at_least_half_on_every_pair": b_ok,
        "c_mcnemar_p_below_0.01_on_every_pair": c_ok,
        "clearly_above": a_ok and b_ok and c_ok,
        "old_bar_5_points_worst_vs_best": worst_attention - best_ablation,
        "old_bar_met": a_ok and worst_attention - best_ablation >= OLD_BAR_POINTS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="seq2seq run directories (the first is the reference)")
    parser.add_argument("--plot", type=Path, help="write the buckets of the first run of each attention as a PNG")
    parser.add_argument("--json", type=Path, help="write every run's buckets and the verdict as JSON")
    args = parser.parse_args()

    from deepatlas.models.seq2seq.plots import length_buckets_plot

    results = []
    for run in args.runs:
        r = evaluate(run)
        results.append(r)
        for b in r["length_buckets"]:
            print(
                f"{run.name:<28} attention={r['attention']:<14} length {b['min_length']:>3}-{b['max_length']:<3} "
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
    attention_runs = [r for r in results if r["attention"] != "none"]
    ablation_runs = [r for r in results if r["attention"] == "none"]
    verdict = None
    if attention_runs and ablation_runs:
        verdict = clearly_above(attention_runs, ablation_runs)
        n = verdict["pairs"][0]["n"]
        print(f"longest bucket (n={n}), each attention run against each ablation run:")
        for p in verdict["pairs"]:
            reduction = "undefined" if p["error_reduction"] is None else f"{p['error_reduction']:.3f}"
            print(
                f"  {Path(p['attention_run']).name} vs {Path(p['ablation_run']).name}: errors {p['errors_a']} vs "
                f"{p['errors_b']}, error reduction {reduction}, discordant {p['only_a_right']} (attention only right) / "
                f"{p['only_b_right']} (ablation only right), exact McNemar p = {p['mcnemar_p']:.2e}"
            )
        print(
            f"(a) every attention run above every ablation run: {verdict['a_every_attention_run_above_every_ablation_run']} "
            f"(worst attention {verdict['attention_worst_longest']:.3f}, best ablation {verdict['ablation_best_longest']:.3f})"
        )
        print(
            f"(b) error reduction >= {MIN_ERROR_REDUCTION} on every pair: {verdict['b_error_reduction_at_least_half_on_every_pair']}"
        )
        print(f"(c) exact McNemar p < {MAX_P} on every pair: {verdict['c_mcnemar_p_below_0.01_on_every_pair']}")
        print(f"clearly above (a, b and c): {'MET' if verdict['clearly_above'] else 'NOT MET'}")
        print(
            f"earlier bar (>= {OLD_BAR_POINTS * 100:.0f} points, worst attention run vs best ablation run): "
            f"{verdict['old_bar_5_points_worst_vs_best'] * 100:+.1f} points, {'met' if verdict['old_bar_met'] else 'not met'}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        public = [{k: v for k, v in r.items() if not k.startswith("_")} for r in results]
        args.json.write_text(json.dumps({"runs": public, "verdict": verdict}, indent=1) + "\n")
    if args.plot:
        first = {}
        for r in results:
            first.setdefault(f"attention={r['attention']}", r["length_buckets"])
        print("wrote", length_buckets_plot(first, args.plot))


if __name__ == "__main__":
    main()

"""Scaling efficiency of data-parallel training from 1 to 2 processes (torchrun, gloo, CPU).

    python benchmarks/bench_ddp.py [--repeats 3]

A model large enough for the arithmetic to outweigh gradient all-reduces: an MLP 64 -> 1024 ->
1024 -> 10 (~1.1 M parameters) on digits, global batch 256, 20 epochs, one thread per process.
Efficiency = t(1 process) / (2 x t(2 processes)); 1.0 is perfect scaling.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time


def run(nproc: int, out: str) -> float:
    args = [sys.executable, "-m", "deepatlas", "train", "mlp", "--data", "digits", "--quiet", "--out", out,
            "--epochs", "20", "--batch-size", str(256 // nproc), "--set", "hidden_sizes=(1024,1024)",
            "--set", "dropout=0.0", "--set", "early_stopping=False"]  # fmt: skip
    if nproc > 1:
        args += ["--nproc", str(nproc)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    start = time.perf_counter()
    subprocess.run(args, check=True, env=env, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    times = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):  # alternate so that background load hits both alike
            for n in (1, 2):
                times[n].append(run(n, os.path.join(tmp, f"run-{n}-{r}")))
    t1, t2 = statistics.median(times[1]), statistics.median(times[2])
    print("MLP 64-1024-1024-10 (~1.1 M parameters), digits, global batch 256, 20 epochs (process start included)")
    print(f"1 process : {t1:.2f} s (median of {args.repeats})")
    print(f"2 processes: {t2:.2f} s")
    print(f"speed-up {t1 / t2:.2f}x, scaling efficiency {t1 / (2 * t2):.2f}")


if __name__ == "__main__":
    main()

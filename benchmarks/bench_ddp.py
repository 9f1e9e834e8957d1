"""Data-parallel training from 1 to 2 processes (torchrun, gloo, CPU), and what an all-reduce costs.

    python benchmarks/bench_ddp.py [--model mlp|gru] [--repeats 5]   # 1 vs 2 processes: wall, per epoch
    python benchmarks/bench_ddp.py --families           # per data-parallel family's default model:
                                                        # parameters, bytes per step, compute per step
    python benchmarks/bench_ddp.py --allreduce          # gloo all-reduce of those sizes, 2 processes

Scaling (``--model``): an MLP 64 -> 1024 -> 1024 -> 10 (~1.1 M parameters) on digits, global
batch 256, 20 epochs, or the default GRU on mnist1d (much compute per parameter), one thread per
process, the global batch split between the ranks. Wall time includes the interpreters' start; time per epoch is rank 0's ``fit_seconds``
(the training loop alone, all-reduces included) over the epochs. Efficiency = t(1) / (2 x t(2));
1.0 is perfect scaling.

Families: each default model (``deepatlas train NAME`` with no ``--set``) is fitted for a few epochs
on its usual data set with one thread, without early stopping; an all-reduce moves about
parameters x 4 bytes x 2 per rank and step (a ring sends and receives each gradient byte about
once), which is set against the measured compute per step at 1, 10 and 100 Gbit/s. The plain MLP is
timed with its autograd step (``fast_step=False``): the one it takes under torchrun.

All-reduce: two gloo processes on loopback (one thread each) all-reduce float32 tensors of each
family's size, median of 30 after 5 warm-ups: what one step's gradient exchange costs here.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

# name, data set, epochs to time (the default model, the default batch of 64)
FAMILIES = [("mlp", "digits", 5), ("cnn", "digits", 2), ("gru", "mnist1d", 2), ("lstm", "mnist1d", 2),
            ("text-rnn", "reviews", 2), ("ae", "digits", 5)]  # fmt: skip
LINKS_GBIT = (1, 10, 100)


# scaling cases: (description, deepatlas train arguments, global batch)
CASES = {
    "mlp": ("MLP 64-1024-1024-10 (~1.1 M parameters), digits, global batch 256, 20 epochs",
            ["mlp", "--data", "digits", "--epochs", "20", "--set", "hidden_sizes=(1024,1024)", "--set", "dropout=0.0"],
            256),
    "gru": ("GRU, default (hidden 64, 13.5 k parameters), mnist1d, global batch 64, 3 epochs",
            ["gru", "--data", "mnist1d", "--epochs", "3"], 64),
}  # fmt: skip


def run(case: str, nproc: int, out: str) -> tuple[float, float]:
    """(wall seconds, seconds per epoch) of one training run."""
    _, train_args, batch = CASES[case]
    args = [sys.executable, "-m", "deepatlas", "train", *train_args, "--quiet", "--out", out,
            "--batch-size", str(batch // nproc), "--set", "early_stopping=False"]  # fmt: skip
    if nproc > 1:
        args += ["--nproc", str(nproc)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    start = time.perf_counter()
    subprocess.run(args, check=True, env=env, capture_output=True)
    wall = time.perf_counter() - start
    metrics = json.loads(open(os.path.join(out, "metrics.json")).read())
    return wall, metrics["fit_seconds"] / metrics["epochs_run"]


def scaling(case: str, repeats: int) -> None:
    times: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):  # alternate so that background load hits both alike
            for n in (1, 2):
                times[n].append(run(case, n, os.path.join(tmp, f"run-{n}-{r}")))
    load = os.getloadavg()[0]
    wall = {n: statistics.median(t[0] for t in times[n]) for n in times}
    epoch = {n: statistics.median(t[1] for t in times[n]) for n in times}
    print(f"{CASES[case][0]}, 1 thread per process")
    print(f"medians of {repeats}, interleaved; load average at the end {load:.1f} on {os.cpu_count()} cores")
    for n in (1, 2):
        print(
            f"{n} process{'es' if n > 1 else '  '}: wall {wall[n]:.2f} s (start included), {epoch[n] * 1e3:.0f} ms per epoch"
        )
    print(f"wall: speed-up {wall[1] / wall[2]:.2f}x, scaling efficiency {wall[1] / (2 * wall[2]):.2f}")
    print(f"per epoch: speed-up {epoch[1] / epoch[2]:.2f}x, scaling efficiency {epoch[1] / (2 * epoch[2]):.2f}")


def families() -> None:
    import numpy as np
    import torch

    from deepatlas.data import load_dataset
    from deepatlas.registry import create_model

    torch.set_num_threads(1)
    print(f"one thread, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; all-reduce = params x 4 B x 2")
    header = "| family | data | parameters | all-reduce per step | compute per step (1 thread) |"
    header += "".join(f" all-reduce at {g} Gbit/s |" for g in LINKS_GBIT)
    print(header)
    print("|---" * (5 + len(LINKS_GBIT)) + "|")
    for name, data, epochs in FAMILIES:
        ds = load_dataset(data)
        est = create_model(name)
        est.set_params(epochs=epochs, early_stopping=False, verbose=False)
        if name == "mlp":
            est.set_params(fast_step=False)  # the autograd step, as under torchrun
        est.fit(ds.X_train, ds.y_train)
        params = sum(p.numel() for p in est.module_.parameters() if p.requires_grad)
        steps = epochs * int(np.ceil(len(ds.X_train) / est.batch_size))
        step_s = est.fit_seconds_ / steps
        volume = params * 4 * 2
        cells = "".join(f" {volume * 8 / (g * 1e9) * 1e3:.2f} ms |" for g in LINKS_GBIT)
        print(f"| {name} | {data} | {params:,} | {volume / 1e6:.2f} MB | {step_s * 1e3:.2f} ms |{cells}")


# parameters of the default models (``--families``) and of the scaling MLP
SIZES = {"mlp": 85_002, "cnn": 94_410, "gru": 13_514, "lstm": 17_802, "text-rnn": 38_594, "ae": 41_552,
         "mlp 64-1024-1024-10": 1_126_410}  # fmt: skip


def _allreduce_worker(rank: int, port: int, queue) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    for name, n in SIZES.items():
        t = torch.randn(n)
        for _ in range(5):
            dist.all_reduce(t)
        times = []
        for _ in range(30):
            dist.barrier()
            start = time.perf_counter()
            dist.all_reduce(t)
            times.append(time.perf_counter() - start)
        if rank == 0:
            queue.put((name, n, statistics.median(times)))
    dist.destroy_process_group()


def allreduce() -> None:
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    procs = [ctx.Process(target=_allreduce_worker, args=(r, port, queue)) for r in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    print(f"gloo all-reduce, 2 processes on loopback, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("| model | parameters | bytes moved (x 4 B x 2) | median all-reduce | effective rate |")
    print("|---|---|---|---|---|")
    while not queue.empty():
        name, n, sec = queue.get()
        print(f"| {name} | {n:,} | {n * 8 / 1e6:.2f} MB | {sec * 1e3:.2f} ms | {n * 8 * 8 / sec / 1e9:.1f} Gbit/s |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", choices=sorted(CASES), default="mlp", help="the scaling case")
    parser.add_argument("--families", action="store_true", help="parameters and compute per step per family")
    parser.add_argument("--allreduce", action="store_true", help="gloo all-reduce time per family's size")
    args = parser.parse_args()
    if args.families:
        families()
    elif args.allreduce:
        allreduce()
    else:
        scaling(args.model, args.repeats)


if __name__ == "__main__":
    main()

"""Data-parallel training on PyTorch's own engine (``torch.distributed`` + DDP).

Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) the shared training loop:
  - joins the process group (``gloo`` on CPU, ``nccl`` on CUDA: picked here, once),
  - wraps the module in ``DistributedDataParallel`` so gradients are averaged every step,
  - gives each rank its own slice of every epoch's seeded permutation (the same permutation on
    every rank, so together the ranks cover the epoch once, like ``DistributedSampler`` with
    ``drop_last=True``),
  - sums losses and validation metrics across ranks before any decision (early stopping,
    divergence), so every rank decides alike,
and only rank 0 writes files or prints progress.

Multi-machine: ``torchrun --nnodes 2 --nproc-per-node 4 --rdzv-backend c10d
--rdzv-endpoint HOST:29500 -m deepatlas train mlp --data digits --out DIR`` on each machine.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys

import torch

from deepatlas.errors import InputError


def world_size() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    return rank() == 0


def local_device(device: torch.device) -> torch.device:
    """Under torchrun each process takes the GPU of its ``LOCAL_RANK``."""
    if device.type == "cuda" and device.index is None and "LOCAL_RANK" in os.environ:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return device


def ensure_initialized(device: torch.device) -> bool:
    """Join the process group when started by torchrun; True when training is distributed."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not torch.distributed.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        timeout = datetime.timedelta(seconds=float(os.environ.get("DEEPATLAS_DIST_TIMEOUT", "600")))
        if device.type == "cuda":
            torch.cuda.set_device(device)
        torch.distributed.init_process_group(backend=backend, timeout=timeout)
    return True


def wrap(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    if world_size() > 1 and torch.distributed.is_initialized():
        values = values.clone()
        torch.distributed.all_reduce(values, op=torch.distributed.ReduceOp.SUM)
    return values


def launch_torchrun(nproc: int, argv: list[str]) -> int:
    """Re-run this ``deepatlas`` command under ``torchrun`` with ``nproc`` local processes."""
    if nproc < 1:
        raise InputError(f"--nproc must be a positive int. Got {nproc} instead.")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "deepatlas",
        *argv,
    ]
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    return subprocess.call(cmd, env=env)

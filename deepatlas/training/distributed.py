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

``DEEPATLAS_DIST_TIMEOUT`` (seconds, default 600) bounds the process group's collectives, so a rank
whose peer stops answering fails instead of hanging. ``DEEPATLAS_DDP_TRACE=DIR`` (a debugging aid,
off by default) makes every rank write ``DIR/rank{r}-epoch{e}.json`` after each epoch's steps: the
sample indices it trained on and a hash of its weights (what the multi-node tests check).

Multi-machine: ``torchrun --nnodes 2 --nproc-per-node 4 --rdzv-backend c10d
--rdzv-endpoint HOST:29500 -m deepatlas train mlp --data digits --out DIR`` on each machine.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import subprocess
import sys

import torch

from deepatlas._io import atomic_write_text
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


def weights_digest(module: torch.nn.Module) -> str:
    """SHA-256 of the module's state (parameters and buffers, in ``state_dict`` order)."""
    h = hashlib.sha256()
    for name, t in module.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def write_trace(trace_dir: str, epoch: int, indices: torch.Tensor, module: torch.nn.Module) -> None:
    """``DEEPATLAS_DDP_TRACE``: this rank's sample indices of ``epoch`` and its weights' digest."""
    record = {
        "rank": rank(),
        "world_size": world_size(),
        "epoch": epoch + 1,
        "indices": indices.tolist(),
        "weights_sha256": weights_digest(module),
    }
    os.makedirs(trace_dir, exist_ok=True)
    atomic_write_text(os.path.join(trace_dir, f"rank{rank()}-epoch{epoch + 1}.json"), json.dumps(record))


# What gloo, NCCL and the c10d store say when another rank is gone or silent (torch raises these as
# ``RuntimeError`` from inside DDP's backward, or as ``torch.distributed.DistError``).
_PEER_LOST = ("connection reset by peer", "connection closed by peer", "broken pipe", "timed out", "timeout")


def peer_failure(exc: BaseException) -> str | None:
    """One line for an exception that means another rank died or stopped answering (None for
    any other exception, which keeps its traceback): the CLI prints it instead of a traceback."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    text = str(exc).strip()
    dist_error = isinstance(exc, getattr(torch.distributed, "DistError", ()))
    if not dist_error and not (isinstance(exc, RuntimeError) and any(s in text.lower() for s in _PEER_LOST)):
        return None
    detail = text.splitlines()[0] if text else type(exc).__name__
    if detail.startswith("[") and "] " in detail:  # drop gloo's "[/path/to/pair.cc:537] " prefix
        detail = detail.split("] ", 1)[1]
    detail = detail.split(". ")[0].rstrip(".")  # its first sentence
    timeout = float(os.environ.get("DEEPATLAS_DIST_TIMEOUT", "600"))
    return (
        f"distributed training stopped on rank {rank()} of {world_size()}: another rank died or did not "
        f"answer within DEEPATLAS_DIST_TIMEOUT={timeout:g} s ({detail[:200]})"
    )


# Set by ``launch_torchrun`` for its ranks: a folder where a rank that meets a user error leaves
# its one line (``user_error_file``), for the launcher to print. torchrun stops the other ranks as
# soon as the first one exits, so a line printed by rank 0 itself could be lost when a faster rank
# exits first (seen under load); a file written before the rank exits cannot be.
ERROR_DIR_ENV = "DEEPATLAS_RANK_ERRORS"


def user_error_file() -> str | None:
    """Where this rank should leave its user-error line, or None outside ``launch_torchrun``."""
    folder = os.environ.get(ERROR_DIR_ENV)
    if not folder or "RANK" not in os.environ:
        return None
    return os.path.join(folder, f"rank{int(os.environ['RANK'])}.txt")


def launch_torchrun(nproc: int, argv: list[str]) -> int:
    """Re-run this ``deepatlas`` command under ``torchrun`` with ``nproc`` local processes."""
    import tempfile

    if nproc < 1:
        raise InputError(f"--nproc must be a positive int. Got {nproc} instead.")
    args = ["--standalone", f"--nproc-per-node={nproc}", "-m", "deepatlas", *argv]
    code = f"import sys; from deepatlas.training.distributed import run_torchrun; sys.exit(run_torchrun({args!r}))"
    with tempfile.TemporaryDirectory(prefix="deepatlas-ranks-") as folder:
        env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"), **{ERROR_DIR_ENV: folder})
        status = subprocess.call([sys.executable, "-c", code], env=env)
        if status == 2:  # a rank met a user error: say the lowest rank's line, once
            lines = sorted(os.listdir(folder), key=lambda name: int(name[4:-4]))
            if lines:
                with open(os.path.join(folder, lines[0]), encoding="utf-8") as fh:
                    print(fh.read().rstrip("\n"), file=sys.stderr)
        return status


def run_torchrun(args: list[str]) -> int:
    """torchrun (``torch.distributed.run``) with ``args``, without its traceback and failure
    report: when a rank meets a user error it leaves its one line for ``launch_torchrun`` and
    exits 2, and so does this launcher, silently; any other failure of a rank (whose own
    traceback is above) ends in one line here and exit 1."""
    import logging

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    try:
        run(parse_args(args))
    except ChildFailedError as exc:
        codes = {r: f.exitcode for r, f in exc.failures.items()}
        if 2 in codes.values():
            return 2
        first, failure = exc.get_first_failure()
        print(
            f"deepatlas: error: distributed training failed: rank {first} exited with status {failure.exitcode}",
            file=sys.stderr,
        )
        return 1
    return 0

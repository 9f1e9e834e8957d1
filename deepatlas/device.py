"""The one place that picks a device and seeds random number generators."""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from deepatlas._validation import check_device_available


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then Apple MPS, then the CPU; anything else is passed to torch."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    check_device_available(device)
    return torch.device(device)


def make_generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator seeded with ``seed`` (a fresh random seed when ``None``)."""
    gen = torch.Generator(device=device)
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(int(seed))
    return gen


def numpy_rng(seed: int | None) -> np.random.Generator:
    return np.random.default_rng(seed)


@contextlib.contextmanager
def seeded(seed: int | None):
    """Run a block (e.g. module construction) under ``seed`` without disturbing the caller's
    global torch RNG state."""
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        if seed is not None:
            torch.manual_seed(int(seed))
        yield

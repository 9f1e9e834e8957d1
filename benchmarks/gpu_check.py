"""Runs every family once with ``device="auto"`` and says where it trained and how well.

    python benchmarks/gpu_check.py [--only NAME ...] [--out DIR]

On a machine with CUDA, ``auto`` must pick the GPU: the script trains every model card with its
smoke settings (``register_model(..., smoke=)``; ``--scale`` lengthens them) through the same path as ``deepatlas train`` (``runs.train_run``: fit, metrics, run
directory), checks that the learned tensors live on the GPU (or, for models that keep NumPy state,
that the fit allocated GPU memory), reloads the run with
``deepatlas.load`` (weights come back to the CPU) and compares a prediction with the GPU model's,
and prints one table row per model. On a CPU-only machine the same script runs on the CPU, so
it doubles as a smoke test. It exits with status 1 if any model failed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch
from torch import nn

import deepatlas
from deepatlas.data import load_dataset
from deepatlas.registry import create_model
from deepatlas.runs import train_run

METRICS = ("test_accuracy", "test_string_accuracy", "test_mse", "test_reconstruction_error", "test_bits_per_char")


def cases(scale: int = 1) -> list[tuple]:
    """One case per model card (RL agents aside: `deepatlas rl` trains them): the card's smoke
    settings, with ``epochs`` multiplied by ``scale`` for a longer run."""
    from deepatlas.registry import cards

    out = []
    for card in cards():
        if card.task == "rl" or not card.smoke:
            continue
        params = dict(card.smoke.get("params", {}))
        if "epochs" in params:
            params["epochs"] *= scale
        out.append((card.name, card.task, card.smoke["data"], params))
    return out


def learned_devices(est) -> set[str]:
    """Device types of the tensors the fitted estimator holds (modules and bare tensors)."""
    seen = set()
    for value in vars(est).values():
        if isinstance(value, nn.Module):
            seen |= {p.device.type for p in value.parameters()}
        elif isinstance(value, torch.Tensor):
            seen.add(value.device.type)
    return seen


def first_output(est, X):
    for name in ("predict_proba", "predict", "transform"):
        if hasattr(est, name):
            try:
                return np.asarray(getattr(est, name)(X), dtype=np.float64)
            except (TypeError, ValueError, NotImplementedError):
                continue
    return None


def run_case(name, task, data, params, out: Path) -> dict:
    from deepatlas._validation import _constraints_of

    ds = load_dataset(data)
    est = create_model(name, task, seed=0, **params)
    # Families that compute in NumPy (the perceptron) refuse a GPU: CPU by design.
    has_device = _constraints_of(type(est))["device"].accepts("cuda")
    if has_device:
        est.set_params(device="auto")
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    metrics = train_run(est, ds, out, data_spec=data, seed=0, quiet=True)
    fit_s = time.perf_counter() - start
    devices = learned_devices(est)
    if torch.cuda.is_available() and torch.cuda.max_memory_allocated() > 0:
        devices.add("cuda")  # models that keep NumPy state (sparse coding) still compute on the GPU
    if not devices and not torch.cuda.is_available():
        devices.add("cpu")  # NumPy state on a CPU-only machine
    row = {"devices": ",".join(sorted(devices)) or "-", "fit_s": fit_s, "has_device": has_device}
    metric = next((m for m in METRICS if m in metrics), None)
    row["metric"] = f"{metric}={metrics[metric]:.4g}" if metric else ""
    reloaded = deepatlas.load(out)
    X = ds.X_test[:32] if getattr(ds, "X_test", None) is not None and not isinstance(ds.X_test, list) else None
    if X is not None:
        a, b = first_output(est, X), first_output(reloaded, X)
        if a is not None and b is not None and a.shape == b.shape:
            row["reload_max_diff"] = float(np.max(np.abs(a - b))) if a.size else 0.0
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", help="registry names to run (default: all)")
    p.add_argument("--scale", type=int, default=1, help="multiply every card's smoke epochs by this (default 1)")
    p.add_argument("--out", default=None, help="where the run directories go (default: a temporary folder)")
    args = p.parse_args(argv)
    want = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"deepatlas {deepatlas.__version__}, torch {torch.__version__}, auto -> {want}", flush=True)
    if want == "cuda":
        print(f"GPU: {torch.cuda.get_device_name()}", flush=True)
    base = Path(args.out or tempfile.mkdtemp(prefix="gpu-check-"))
    failures = 0
    print("| model | task | data | learned tensors on | fit s | metric | reload max diff | status |")
    print("|---|---|---|---|---|---|---|---|")
    for i, (name, task, data, params) in enumerate(cases(args.scale)):
        if args.only and name not in args.only:
            continue
        try:
            row = run_case(name, task, data, params, base / f"{i:02d}-{name}-{task}")
            on_device = want in row["devices"].split(",") or not row["has_device"]
            ok = on_device and row.get("reload_max_diff", 0.0) < 1e-3
            status = "ok" if ok else "FAIL"
        except Exception as exc:  # report and go on: one broken family must not hide the others
            traceback.print_exc(file=sys.stderr)
            row, status = {"devices": "-", "fit_s": float("nan"), "metric": f"{type(exc).__name__}: {exc}"[:90]}, "FAIL"
        failures += status != "ok"
        diff = row.get("reload_max_diff")
        print(
            f"| {name} | {task or '-'} | {data} | {row['devices']} | {row['fit_s']:.1f} | {row['metric']} | "
            f"{'' if diff is None else f'{diff:.2g}'} | {status} |",
            flush=True,
        )
    print(f"{failures} failed" if failures else "all ok")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""Atlas experiment for the deployment claim (K.deploy): export a trained MLP to ONNX, run it in
onnxruntime, and compare its outputs and latency with the same network run eagerly in torch."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from deepatlas.atlas import Result, Rule, experiment
from deepatlas.atlas.experiments._common import MEDIUM, r
from deepatlas.data import load_dataset
from deepatlas.models.mlp import MLPClassifier

PARITY_LIMIT = 1e-4  # largest max-abs difference between onnxruntime and torch we call "the same model"


def _median_seconds(fn, X, repeats: int) -> float:
    fn(X)  # warm-up (allocations, first-call graph work)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(X)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


@experiment(
    "K.deploy",
    rule=Rule(
        "max |onnxruntime - torch| over the test set (1.0 if any predicted class differs)",
        supported=PARITY_LIMIT,
        refuted=1e-2,
        condition="the exported model runs but drifts beyond the parity limit",
    ),
    **MEDIUM,
    requires=("mlp",),
)
def k_deploy(ctx):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread for training and for both runtimes: a fair race on a shared machine
    try:
        return _k_deploy(ctx)
    finally:
        torch.set_num_threads(threads)


def _k_deploy(ctx):
    from deepatlas.export import export, inference_spec, max_abs_diff
    from deepatlas.export import onnx as ox

    seed = ctx.seed
    ds = load_dataset("digits", seed=seed)
    model = MLPClassifier(
        hidden_sizes=(64,), epochs=ctx.pick(8, 60), lr=1e-2, batch_size=64, early_stopping=False, seed=seed
    ).fit(ds.X_train, ds.y_train)
    accuracy = model.score(ds.X_test, ds.y_test)
    exporter = ctx.pick("torchscript", "dynamo")  # the legacy exporter is ~10x faster to run
    threads = 1
    batches = {1: ctx.pick(50, 300), 256: ctx.pick(10, 60)}  # batch size -> timed repeats
    with tempfile.TemporaryDirectory(prefix="deepatlas-deploy-") as tmp:
        result = export(model, Path(tmp) / "model.onnx", X=ds.X_test, exporter=exporter, seed=seed)
        spec = inference_spec(model)
        sess = ox.session(result.path, threads=threads)  # same thread count as torch: a fair race
        X_all = np.ascontiguousarray(ds.X_test, dtype=np.float32)
        ort_out = ox.run_session(sess, X_all)
        torch_out = ox.run_torch(spec, X_all)
        diff = max_abs_diff(ort_out, torch_out)
        first = next(iter(ort_out))
        agree = (
            float(np.mean(ort_out[first].argmax(1) == model.predict(ds.X_test))) if ort_out[first].ndim == 2 else 1.0
        )
        latency = {}
        for b, repeats in batches.items():
            X = np.ascontiguousarray(np.resize(X_all, (b, *X_all.shape[1:])))
            t_torch = _median_seconds(lambda a: ox.run_torch(spec, a), X, repeats)
            t_ort = _median_seconds(lambda a: ox.run_session(sess, a), X, repeats)
            latency[b] = (t_torch, t_ort)
    ratios = {b: t_ort / t_torch for b, (t_torch, t_ort) in latency.items()}

    fig, ax = ctx.figure(figsize=(5, 3.2))
    x = np.arange(len(latency))
    ax.bar(x - 0.2, [1e3 * t for t, _ in latency.values()], width=0.4, label="torch eager")
    ax.bar(x + 0.2, [1e3 * t for _, t in latency.values()], width=0.4, label="onnxruntime")
    ax.set_xticks(x, [f"batch {b}" for b in latency])
    ax.set(yscale="log", ylabel="median latency (ms)", title=f"max |onnxruntime − torch| = {diff:.1e}")
    ax.legend(fontsize=8)

    return Result(
        diff if agree == 1.0 else max(diff, 1.0),
        f"An MLP trained on digits (test accuracy {accuracy:.1%}) exported to ONNX ({result.exporter}) gives outputs within "
        f"{diff:.1e} of torch in onnxruntime (limit {PARITY_LIMIT:g}) and the same class for {agree:.0%} of test digits; "
        f"onnxruntime takes {ratios[1]:.2f}× torch's time at batch 1 and {ratios[256]:.2f}× at batch 256 "
        "(one thread each).",
        {
            "test_accuracy": r(accuracy),
            "max_abs_diff": float(f"{diff:.3g}"),
            "same_class": r(agree),
            "exporter": result.exporter,
            "threads": threads,
            **{f"torch_ms_b{b}": r(1e3 * t, 3) for b, (t, _) in latency.items()},
            **{f"ort_ms_b{b}": r(1e3 * t, 3) for b, (_, t) in latency.items()},
            **{f"latency_ratio_b{b}": r(v, 3) for b, v in ratios.items()},
        },
        ctx.save(fig),
    )

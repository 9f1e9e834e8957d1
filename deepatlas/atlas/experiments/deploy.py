"""Atlas experiment for the deployment claim (K.deploy): export a trained MLP to the survey's three
formats (ONNX, OpenVINO IR and TensorFlow Lite), run each in its runtime (onnxruntime, OpenVINO,
the LiteRT interpreter), and compare outputs and latency with the same network run eagerly in torch.
The statistic is the worst of the three parity gaps: every format must compute the model."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from deepatlas.atlas import Result, Rule, experiment
from deepatlas.atlas.experiments._common import MEDIUM, r
from deepatlas.data import load_dataset
from deepatlas.models.mlp import MLPClassifier

PARITY_LIMIT = 1e-4  # largest max-abs difference between a runtime and torch we call "the same model"
RUNTIMES = ("onnxruntime", "OpenVINO", "LiteRT")


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
        "max |runtime - torch| over the test set, worst of onnxruntime, OpenVINO and LiteRT "
        "(1.0 if any predicted class differs)",
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


def _runtimes():
    """OpenVINO and LiteRT, or the one line naming the extra that brings the missing one (pending)."""
    from deepatlas._optional import MissingExtra

    try:
        import openvino  # noqa: F401
    except ImportError:
        raise MissingExtra("K.deploy needs OpenVINO: pip install 'deepatlas[openvino]'") from None
    from deepatlas.export.tflite import require_converter, require_interpreter

    require_converter()
    require_interpreter()


def _k_deploy(ctx):
    from deepatlas.export import export, inference_spec, max_abs_diff
    from deepatlas.export import onnx as ox
    from deepatlas.export.openvino import CompiledModel
    from deepatlas.export.tflite import LiteRTModel, write_tflite

    _runtimes()

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
        compiled = CompiledModel(result.path, threads=threads)
        compiled.output_names = list(spec.output_names)
        # Both signatures even in quick mode: with batch 1 alone, batch 256 would be timed as 256 calls.
        write_tflite(spec, Path(tmp) / "model.tflite")
        lite = LiteRTModel(Path(tmp) / "model.tflite", threads=threads, output_names=spec.output_names)
        runs = {
            "torch eager": lambda a: ox.run_torch(spec, a),
            "onnxruntime": lambda a: ox.run_session(sess, a),
            "OpenVINO": compiled.run,
            "LiteRT": lite.run,
        }
        X_all = np.ascontiguousarray(ds.X_test, dtype=np.float32)
        torch_out = runs["torch eager"](X_all)
        expected = model.predict(ds.X_test)
        diffs, agree = {}, {}
        for name in RUNTIMES:
            out = runs[name](X_all)
            diffs[name] = max_abs_diff(out, torch_out)
            agree[name] = float(np.mean(model.classes_[out["probabilities"].argmax(1)] == expected))
        latency = {}  # batch -> runtime -> median seconds
        for b, repeats in batches.items():
            X = np.ascontiguousarray(np.resize(X_all, (b, *X_all.shape[1:])))
            latency[b] = {name: _median_seconds(fn, X, repeats) for name, fn in runs.items()}
    diff, worst = max(diffs.values()), max(diffs, key=diffs.get)
    same = min(agree.values())
    ratios = {b: {n: t[n] / t["torch eager"] for n in RUNTIMES} for b, t in latency.items()}

    fig, ax = ctx.figure(figsize=(5.5, 3.2))
    x = np.arange(len(latency))
    names = list(runs)
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        ax.bar(
            x + (i - (len(names) - 1) / 2) * width, [1e3 * t[name] for t in latency.values()], width=width, label=name
        )
    ax.set_xticks(x, [f"batch {b}" for b in latency])
    ax.set(yscale="log", ylabel="median latency (ms)", title=f"worst max |runtime − torch| = {diff:.1e} ({worst})")
    ax.legend(fontsize=7)

    big = max(batches)
    timing = "; ".join(f"{n} {ratios[1][n]:.2f}× at batch 1, {ratios[big][n]:.2f}× at batch {big}" for n in RUNTIMES)
    return Result(
        diff if same == 1.0 else max(diff, 1.0),
        f"An MLP trained on digits (test accuracy {accuracy:.1%}) exported to ONNX ({result.exporter}), OpenVINO IR and "
        f"TFLite (litert-torch) gives outputs within {diffs['onnxruntime']:.1e} of torch in onnxruntime, "
        f"{diffs['OpenVINO']:.1e} in OpenVINO and {diffs['LiteRT']:.1e} in LiteRT (limit {PARITY_LIMIT:g}), and the same "
        f"class for {same:.0%} of test digits in all three; time relative to torch eager (one thread each): {timing}.",
        {
            "test_accuracy": r(accuracy),
            "max_abs_diff": float(f"{diff:.3g}"),
            **{f"max_abs_diff_{n.lower()}": float(f"{d:.3g}") for n, d in diffs.items()},
            "same_class": r(same),
            "exporter": result.exporter,
            "threads": threads,
            **{f"torch_ms_b{b}": r(1e3 * t["torch eager"], 3) for b, t in latency.items()},
            **{f"{n.lower()}_ms_b{b}": r(1e3 * t[n], 3) for b, t in latency.items() for n in RUNTIMES},
            **{f"{n.lower()}_ratio_b{b}": r(v[n], 3) for b, v in ratios.items() for n in RUNTIMES},
        },
        ctx.save(fig),
    )

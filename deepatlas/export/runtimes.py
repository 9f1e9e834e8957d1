"""Which runtime to deploy a model with, measured: ``deepatlas benchmark-runtimes RUN``.

The same inference module (preprocessing inside, as exported) runs in torch eager, under
``torch.compile`` (Ansel et al. 2024, "PyTorch 2"), and as exported files in onnxruntime, OpenVINO
and LiteRT, each in float and, for the three file formats, quantised to int8 (static, calibrated
on the training split; :mod:`deepatlas.export.quantize`). For every (runtime, precision) it
records the median latency of one call at batch 1 and batch 64 (runtimes alternated in rounds, so
that load on a shared machine hits all alike; each call timed alone, so that a call the scheduler
pauses lands in the tail rather than in the median), the throughput at batch 64, the
test-split accuracy and the file size. A runtime that is not installed, or cannot run the model,
gets a row that says why instead of numbers.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from deepatlas.errors import DeepAtlasError, InputError

BATCHES = (1, 64)
FORMATS = (("onnxruntime", "onnx"), ("OpenVINO", "openvino"), ("LiteRT", "tflite"))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


def _torch_runners(spec, threads: int) -> dict[tuple[str, str], Any]:
    import torch

    module = spec.module.eval().cpu()
    names = spec.output_names

    def wrap(fn):
        def run(X):
            with torch.inference_mode():
                out = fn(torch.from_numpy(X))
            outs = out if isinstance(out, (tuple, list)) else (out,)
            return {n: o.numpy() for n, o in zip(names, outs)}

        return run

    runners: dict[tuple[str, str], Any] = {("torch eager", "float32"): wrap(module)}
    try:
        compiled = torch.compile(module, dynamic=False)
        runner = wrap(compiled)
        for b in BATCHES:  # compile for each batch size now, not inside the timed calls
            runner(np.ascontiguousarray(spec.random_inputs(np.random.default_rng(0), b)))
        runners[("torch.compile", "float32")] = runner
    except Exception as exc:  # no C++ compiler, an unsupported op...
        runners[("torch.compile", "float32")] = f"torch.compile failed: {_first_line(exc)}"
    return runners


def serving_call(fmt: str, path: str | Path, batch: int, threads: int | None = None):
    """``X -> list of output arrays`` for calls of exactly ``batch`` rows, set up once, as a serving loop
    of that runtime calls it. Every runtime gets its own cheapest documented per-call path, and no more:

    * onnxruntime: ``InferenceSession.run`` with the input and output names resolved once;
    * OpenVINO: one ``InferRequest`` per batch size whose input tensor shares a preset numpy buffer;
      a call copies the rows in and runs ``infer()`` (``CompiledModel.__call__`` builds the input
      tensor and the result dictionary on every call: 48 -> 30 us a call for the Fashion-MNIST MLP);
    * LiteRT: at batch 1, ``set_tensor``/``invoke``/``get_tensor`` on the interpreter's primary
      subgraph (the ``batch_1`` signature); a signature runner resizes and re-allocates its tensors on
      every call; other batch sizes through their signature runner.

    The input of a fully quantised ``.tflite`` is quantised with the file's scale (and its outputs
    dequantised) in every path, since a caller must do that too; the parameters are read once
    (:func:`deepatlas.export.tflite.encoder`), as a serving loop would. torch eager and ``torch.compile`` run the module under
    ``torch.inference_mode`` on ``torch.from_numpy`` (no copy).
    """
    if fmt == "onnx":
        from deepatlas.export import onnx as ox

        sess = ox.session(path, threads=threads)
        name, outputs = sess.get_inputs()[0].name, [o.name for o in sess.get_outputs()]
        return lambda X: sess.run(outputs, {name: X})
    if fmt == "openvino":
        import openvino as ov

        from deepatlas.export.openvino import CompiledModel

        compiled = CompiledModel(path, threads=threads).compiled
        request = compiled.create_infer_request()
        dtype, n_out = compiled.input(0).get_element_type().to_dtype(), len(compiled.outputs)
        preset: list[np.ndarray] = []  # the input buffer, made for the first call's shape (a time axis may vary)

        def run_openvino(X):
            if not preset or preset[0].shape != X.shape:
                preset[:] = [np.empty(X.shape, dtype)]
                request.set_input_tensor(ov.Tensor(preset[0], shared_memory=True))
            preset[0][...] = X
            request.infer()
            return [request.get_output_tensor(i).data for i in range(n_out)]

        return run_openvino
    if fmt == "tflite":
        from deepatlas.export.tflite import LiteRTModel, decoder, encoder

        model = LiteRTModel(path, threads=threads)
        runner, inp, outs, details = model.runners[batch]
        encode, decoders = encoder(details[inp]), [(o, details[o]["index"], decoder(details[o])) for o in outs]
        primary = model.interpreter.get_input_details()
        if (
            batch == 1
            and len(primary) == 1
            and primary[0]["index"] == details[inp]["index"]
            and all(d["name"].startswith("batch_1_") for d in model.interpreter.get_output_details())
        ):
            interpreter, index = model.interpreter, details[inp]["index"]
            del model, runner  # invoke() refuses while a signature runner holds the interpreter's tensors

            def run_litert(X):
                interpreter.set_tensor(index, encode(X))
                interpreter.invoke()
                return [decode(interpreter.get_tensor(i)) for _, i, decode in decoders]

            return run_litert

        def run_signature(X):
            result = runner(**{inp: encode(X)})
            return [decode(result[o]) for o, _, decode in decoders]

        return run_signature
    raise InputError(f"format must be one of onnx, openvino, tflite. Got {fmt!r} instead.")


def _score(run, X, y, meta) -> float:
    from deepatlas.export.quantize import batched, score

    return score(batched(run, X), y, meta["kind"], meta["classes"], meta["decision"])[1]


def benchmark_runtimes(
    estimator,
    X_test: np.ndarray,
    y_test: np.ndarray,
    X_train: np.ndarray,
    *,
    threads: int = 2,
    rounds: int = 5,
    calls: dict[int, int] | None = None,
    quantize: bool = True,
    formats: tuple[str, ...] = ("onnx", "openvino", "tflite"),
    workdir: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Rows ``{runtime, precision, batch_1_ms, batch_64_ms, rows_per_s, accuracy, bytes, note}``."""
    import torch

    from deepatlas.export import export, inference_spec
    from deepatlas.export.pipeline import _as_inputs
    from deepatlas.export.quantize import file_size, runner

    calls = calls or {1: 200, 64: 20}
    spec = inference_spec(estimator)
    meta = {k: spec.metadata.get(k) for k in ("kind", "classes", "decision")}
    if meta["kind"] not in ("classifier", "regressor"):
        raise InputError(
            f"benchmark-runtimes reports test accuracy, so it takes a classifier or regressor; this run holds "
            f"{'an' if str(meta['kind'])[:1] in 'aeiou' else 'a'} {meta['kind']}."
        )
    X_test, X_train = _as_inputs(X_test, spec, rows=None), _as_inputs(X_train, spec, rows=512)
    y_test = np.asarray(y_test)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    runners = _torch_runners(spec, threads)
    sizes: dict[tuple[str, str], int | None] = {key: None for key in runners}
    served: dict[tuple[str, str], dict[int, Any]] = {}  # the files' timed calls (serving_call), by batch
    tmp = tempfile.TemporaryDirectory(prefix="deepatlas-runtimes-", dir=workdir)
    try:
        for name, fmt in FORMATS:
            if fmt not in formats:
                continue
            out = Path(tmp.name) / f"model.{ {'onnx': 'onnx', 'openvino': 'xml', 'tflite': 'tflite'}[fmt] }"
            try:
                result = export(
                    estimator, out, format=fmt, X=X_test, y=y_test if quantize else None,
                    calibration=X_train if quantize else None, quantize="int8" if quantize else None,
                    exporter="torchscript",
                )  # fmt: skip
            except (DeepAtlasError, ImportError) as exc:
                runners[(name, "float32")] = f"{fmt} export failed: {_first_line(exc)}"
                sizes[(name, "float32")] = None
                continue
            files = {"float32": result.path}
            if result.quantized:
                files["int8"] = out.with_name(result.quantized["file"])
            for precision, path in files.items():
                runners[(name, precision)] = runner(fmt, path, spec.output_names, threads=threads)
                sizes[(name, precision)] = file_size(path)
                served[(name, precision)] = {b: serving_call(fmt, path, b, threads) for b in BATCHES}
        live = {k: v for k, v in runners.items() if callable(v)}
        accuracy = {k: _score(v, X_test, y_test, meta) for k, v in live.items()}
        inputs = {b: np.ascontiguousarray(np.resize(X_test, (b, *X_test.shape[1:]))) for b in BATCHES}
        timed = {k: served.get(k, {b: fn for b in BATCHES}) for k, fn in live.items()}
        for k, fn in live.items():  # the timed call computes what the scored one does
            for b in BATCHES:
                expected = list(fn(inputs[b]).values())
                out = timed[k][b](inputs[b])
                got = [np.array(v) for v in (out.values() if isinstance(out, dict) else out)]
                if len(got) != len(expected) or any(
                    not np.allclose(g, e, rtol=1e-5, atol=1e-6) for g, e in zip(got, expected)
                ):
                    raise DeepAtlasError(f"{k[0]} {k[1]}: the timed call at batch {b} disagrees with the scored one")
        times: dict[tuple, list[float]] = {(k, b): [] for k in live for b in BATCHES}
        for k in live:  # warm-up
            for b in BATCHES:
                timed[k][b](inputs[b])
        for _ in range(rounds):  # each call timed alone: on a shared machine a call that the scheduler
            for b in BATCHES:  # pauses lands in the tail, not in the median (a round's mean absorbs it)
                for k in live:
                    fn, X, samples = timed[k][b], inputs[b], times[(k, b)]
                    for _ in range(calls[b]):
                        start = time.perf_counter()
                        fn(X)
                        samples.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(before)
        tmp.cleanup()
    rows = []
    for key, fn in runners.items():
        name, precision = key
        row: dict[str, Any] = {"runtime": name, "precision": precision, "threads": threads}
        if callable(fn):
            t1, t64 = (statistics.median(times[(key, b)]) for b in BATCHES)
            row.update(batch_1_ms=1e3 * t1, batch_64_ms=1e3 * t64, rows_per_s=64 / t64)
            row.update(accuracy=accuracy[key], bytes=sizes.get(key), note=None)
        else:
            row.update(batch_1_ms=None, batch_64_ms=None, rows_per_s=None, accuracy=None, bytes=None, note=fn)
        rows.append(row)
    eager = next(r["batch_1_ms"] for r in rows if r["runtime"] == "torch eager")
    for row in rows:
        row["speedup_b1_vs_eager"] = eager / row["batch_1_ms"] if row["batch_1_ms"] else None
    return rows


def table(rows: list[dict[str, Any]], metric: str = "accuracy") -> str:
    """A Markdown table of the rows (what the run report and the docs show)."""
    head = f"| runtime | precision | batch 1 (ms) | batch 64 (ms) | rows/s at 64 | × eager at 1 | test {metric} | file (KB) |"
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        if r["note"]:
            lines.append(f"| {r['runtime']} | {r['precision']} | — | — | — | — | — | {r['note']} |")
            continue
        size = f"{r['bytes'] / 1024:.0f}" if r["bytes"] else "—"
        lines.append(
            f"| {r['runtime']} | {r['precision']} | {r['batch_1_ms']:.3f} | {r['batch_64_ms']:.3f} | "
            f"{r['rows_per_s']:,.0f} | {r['speedup_b1_vs_eager']:.1f} | {r['accuracy']:.4f} | {size} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: str | Path, title: str = "") -> None:
    """Latency at batch 1 and 64 per (runtime, precision), log scale."""
    from deepatlas.plotting import new_figure, save_figure

    done = [r for r in rows if r["batch_1_ms"]]
    labels = [f"{r['runtime']}\n{r['precision']}" for r in done]
    x = np.arange(len(done))
    fig, ax = new_figure(figsize=(max(6, 0.9 * len(done)), 3.6))
    ax.bar(x - 0.2, [r["batch_1_ms"] for r in done], width=0.4, label="batch 1")
    ax.bar(x + 0.2, [r["batch_64_ms"] for r in done], width=0.4, label="batch 64")
    ax.set_xticks(x, labels, fontsize=7)
    ax.set(yscale="log", ylabel="median latency per call (ms)", title=title)
    ax.legend(fontsize=8)
    save_figure(fig, path)

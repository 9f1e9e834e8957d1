"""Quantise an exported model (``deepatlas export RUN --quantize int8|dynamic``) and say what it costs.

Two modes, each through the format's own maintained tool:

* ``dynamic``: int8 weights, activations quantised on the fly (ONNX: onnxruntime's
  ``quantize_dynamic``) or kept in float (OpenVINO: NNCF's ``compress_weights`` INT8_SYM; TFLite:
  ai-edge-quantizer's dynamic recipe, :func:`deepatlas.export.tflite.dynamic_recipe`). Needs no data.
* ``int8``: static post-training quantisation, 8-bit weights and activations whose ranges are
  calibrated on training inputs (ONNX: ``quantize_static``, QOperator format, per-channel int8
  weights, uint8 activations; OpenVINO: ``nncf.quantize``, per-tensor weights, the standardisation in
  float; TFLite: ai-edge-quantizer's static int8
  recipe with the input standardisation left in float, :func:`deepatlas.export.tflite.static_recipe`).

Each quantised file is judged on the test split beside its float twin in the same runtime:
accuracy for a classifier, R^2 for a regressor, with both file sizes. Other inference paths (an
encoder's codes, a generator's samples) have no test score to judge a quantised file by, and are
refused with one line, as is a graph the quantiser cannot handle.

References: Jacob et al. (2018), "Quantization and training of neural networks for efficient
integer-arithmetic-only inference" (CVPR); Krishnamoorthi (2018), "Quantizing deep convolutional
networks for efficient inference: a whitepaper" (arXiv:1806.08342), on per-channel weights and
post-training calibration; Kozlov et al. (2020), "Neural Network Compression Framework for fast
model inference" (arXiv:2002.08679), NNCF.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from deepatlas.errors import InputError

MODES = ("int8", "dynamic")
SCORED_KINDS = ("classifier", "regressor")
CALIBRATION_ROWS = 512
SCORE_BATCH = 64  # rows a call when scoring a file (the runtime table's batch)


def check_mode(mode: str | None) -> None:
    if mode is not None and mode not in MODES:
        raise InputError(f"--quantize must be one of {', '.join(MODES)}. Got {mode!r} instead.")


def check_quantisable(kind: str, owner: str, mode: str, has_labels: bool, has_calibration: bool) -> None:
    """Refuse, before anything is exported, what cannot be quantised and judged (one line each)."""
    if kind not in SCORED_KINDS:
        raise InputError(
            f"--quantize {mode}: {owner}'s inference path is {'an' if kind[:1] in 'aeiou' else 'a'} {kind}, which has no test accuracy to judge a "
            "quantised file by; quantisation covers classifiers and regressors."
        )
    if not has_labels:
        raise InputError(
            f"--quantize {mode} needs labelled test data to report the quantised accuracy: export a run "
            "directory whose data still load, or pass X and y."
        )
    if mode == "int8" and not has_calibration:
        raise InputError(
            "--quantize int8 needs calibration inputs (the training split): export a run directory whose data "
            "still load, or pass calibration=."
        )


def quantized_path(path: str | os.PathLike, mode: str) -> Path:
    """``model.onnx`` -> ``model.int8.onnx`` (``model.dynamic.xml``, ...)."""
    path = Path(path)
    return path.with_name(f"{path.stem}.{mode}{path.suffix}")


def file_size(path: str | os.PathLike) -> int:
    """Bytes on disk; an OpenVINO IR counts its ``.xml`` and its ``.bin``."""
    path = Path(path)
    size = path.stat().st_size
    if path.suffix.lower() == ".xml" and path.with_suffix(".bin").exists():
        size += path.with_suffix(".bin").stat().st_size
    return size


# ---- the three quantisers ------------------------------------------------------------------------
def _batches(X: np.ndarray, size: int = 64):
    return [X[i : i + size] for i in range(0, len(X), size)]


def quantize_onnx(float_path: Path, out: Path, mode: str, calibration: np.ndarray | None) -> None:
    from onnxruntime import quantization as q

    from deepatlas._optional import require

    require("export", "--quantize for ONNX", "onnxruntime")
    if mode == "dynamic":
        q.quantize_dynamic(str(float_path), str(out), weight_type=q.QuantType.QInt8, per_channel=True)
        return
    from deepatlas.export import onnx as ox

    name = ox.session(float_path).get_inputs()[0].name

    class Reader(q.CalibrationDataReader):
        def __init__(self):
            self.rows = iter(_batches(calibration))

        def get_next(self):
            batch = next(self.rows, None)
            return None if batch is None else {name: batch}

    q.quantize_static(
        str(float_path),
        str(out),
        Reader(),
        # QOperator (QLinearConv, QLinearMatMul) has no Q/DQ node pair per tensor: fashion CNN 0.300 -> 0.271x
        # the float size. Its activations must be uint8 (U8S8): onnxruntime's int8 x int8 QOperator kernels
        # are its slow path on x86 (digits CNN at batch 64: 196 ms vs 8.9 ms for U8S8 and 8.1 for QDQ).
        quant_format=q.QuantFormat.QOperator,
        per_channel=True,
        activation_type=q.QuantType.QUInt8,
        weight_type=q.QuantType.QInt8,
        calibrate_method=q.CalibrationMethod.MinMax,
    )


def quantize_openvino(onnx_path: Path, out: Path, mode: str, calibration: np.ndarray | None) -> None:
    from deepatlas.export.openvino import require_openvino

    require_openvino()
    try:
        import nncf
    except ImportError:
        from deepatlas._optional import MissingExtra

        raise MissingExtra("--quantize for --format openvino needs NNCF: pip install 'deepatlas[openvino]'") from None
    import logging

    logging.getLogger("nncf").setLevel(logging.ERROR)
    from deepatlas.export.openvino import read, save, standardisation_ops

    model = read(onnx_path)
    if mode == "dynamic":
        quantized = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_SYM)
    else:
        from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, QuantizationParameters

        dataset = nncf.Dataset(list(_batches(calibration, 1)))
        # Size (an IR's XML is fixed overhead beside ~90 k int8 weights; digits CNN 0.333x -> 0.30x): the input
        # standardisation stays float, as in the TFLite recipe (no FakeQuantize on the raw input); a ReduceMean gets
        # no FakeQuantize of its own (only convolutions and matmuls compute in int8); weights have one scale per
        # tensor, as TFLite's fully connected layers do, rather than one float32 per output channel.
        ignored = nncf.IgnoredScope(names=standardisation_ops(model), types=["ReduceMean"], validate=False)
        per_tensor = AdvancedQuantizationParameters(
            weights_quantization_params=QuantizationParameters(per_channel=False)
        )
        quantized = nncf.quantize(
            model, dataset, subset_size=len(calibration), ignored_scope=ignored, advanced_parameters=per_tensor
        )
    save(quantized, out)


def quantize_tflite(float_path: Path, out: Path, mode: str, calibration: np.ndarray | None) -> None:
    from deepatlas.export.tflite import quantize_file

    quantize_file(float_path, out, mode, calibration)


QUANTIZERS = {"onnx": quantize_onnx, "openvino": quantize_openvino, "tflite": quantize_tflite}
SCHEMES = {  # what each (format, mode) does, recorded in the quantised file's sidecar
    ("onnx", "int8"): "onnxruntime quantize_static, QOperator; int8 per-channel weights, uint8 activations (MinMax)",
    ("onnx", "dynamic"): "onnxruntime quantize_dynamic; int8 per-channel weights",
    ("openvino", "int8"): "nncf.quantize; int8 per-tensor weights, int8 activations, standardisation in float",
    ("openvino", "dynamic"): "nncf.compress_weights INT8_SYM; int8 weights, float activations",
    ("tflite", "int8"): "ai-edge-quantizer static; int8 per-tensor weights, int8 activations, standardisation in float",
    ("tflite", "dynamic"): "ai-edge-quantizer dynamic; int8 weights (per-channel conv, per-tensor fully connected)",
}


# ---- running and scoring ---------------------------------------------------------------------------
def runner(format: str, path: str | os.PathLike, output_names, threads: int | None = None):
    """``X -> {output name: array}`` for a file in its format's runtime."""
    if format == "onnx":
        from deepatlas.export import onnx as ox

        sess = ox.session(path, threads=threads)
        return lambda X: ox.run_session(sess, X)
    if format == "openvino":
        from deepatlas.export.openvino import CompiledModel

        compiled = CompiledModel(path, threads=threads)
        compiled.output_names = list(output_names)
        return compiled.run
    if format == "tflite":
        from deepatlas.export.tflite import LiteRTModel

        return LiteRTModel(path, threads=threads, output_names=output_names).run
    raise InputError(f"format must be one of onnx, openvino, tflite. Got {format!r} instead.")


def batched(run, X: np.ndarray, size: int = SCORE_BATCH) -> dict[str, np.ndarray]:
    """``run`` over ``X`` in calls of ``size`` rows, the outputs concatenated.

    A quantised file is scored the way a service calls it, a batch at a time, because with
    ``dynamic`` quantisation the answer depends on the batch: onnxruntime quantises each call's
    activations with that call's own min-max, so one call with the whole test split lets a few
    extreme rows set the step for all of them (Fashion-MNIST MLP: 0.8763 in one call of 10,000 rows,
    0.8944 in calls of 64, 0.8938 in calls of 1; float 0.8938 either way).
    """
    outs = [run(X[i : i + size]) for i in range(0, len(X), size)]
    return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}


def score(outputs: dict[str, np.ndarray], y: np.ndarray, kind: str, classes, decision) -> tuple[str, float]:
    """The test score of a file's outputs: ("accuracy", a) for a classifier, ("r2", r) for a regressor."""
    y = np.asarray(y)
    if kind == "classifier":
        values = outputs.get("probabilities")
        if values is None:
            values = outputs.get("scores", next(iter(outputs.values())))
        values = np.asarray(values)
        index = (values > 0).astype(int) if values.ndim == 1 else values.argmax(1)
        labels = np.asarray(classes)[index] if classes is not None else index
        return "accuracy", float(np.mean(labels.astype(y.dtype) == y))
    pred = np.asarray(next(iter(outputs.values())), np.float64).reshape(y.shape)
    resid = float(np.sum((y - pred) ** 2))
    total = float(np.sum((y - y.mean(axis=0)) ** 2))
    return "r2", 1.0 - resid / total if total > 0 else float("nan")


def quantize_export(
    format: str,
    float_path: Path,
    onnx_path: Path,
    out: Path,
    mode: str,
    *,
    calibration: np.ndarray | None,
    X_test: np.ndarray,
    y_test: np.ndarray,
    kind: str,
    classes,
    decision,
    output_names,
) -> dict[str, Any]:
    """Write the quantised twin of ``float_path`` to ``out`` and score both on the test split."""
    import logging

    source = onnx_path if format == "openvino" else float_path
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # onnxruntime's quantiser advises pre-processing on the root logger
    from deepatlas.export.tflite import silenced

    try:
        with silenced():  # NNCF's and ai-edge-quantizer's progress bars
            QUANTIZERS[format](source, out, mode, calibration)
    except (InputError, ImportError):
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"--quantize {mode} cannot quantise this graph for {format}: {first[:300]}") from None
    finally:
        root.setLevel(level)
    metric, float_score = score(
        batched(runner(format, float_path, output_names), X_test), y_test, kind, classes, decision
    )
    _, quant_score = score(batched(runner(format, out, output_names), X_test), y_test, kind, classes, decision)
    float_size, quant_size = file_size(float_path), file_size(out)
    return {
        "mode": mode,
        "format": format,
        "scheme": SCHEMES[(format, mode)],
        "file": out.name,
        "metric": metric,
        "float": float_score,
        "quantized": quant_score,
        "test_rows": len(X_test),
        "rows_per_call": SCORE_BATCH,
        "float_bytes": float_size,
        "quantized_bytes": quant_size,
        "size_ratio": quant_size / float_size,
    }


def summary_line(q: dict[str, Any]) -> str:
    points = 100 * (q["quantized"] - q["float"])
    return (
        f"  {q['mode']} {q['format']} -> {q['file']}: test {q['metric']} {q['quantized']:.4f} "
        f"(float {q['float']:.4f}, {points:+.2f} points on {q['test_rows']} rows, {q.get('rows_per_call', SCORE_BATCH)} a call); "
        f"{q['quantized_bytes']:,} bytes, {q['size_ratio']:.2f}x the float file's {q['float_bytes']:,}"
    )

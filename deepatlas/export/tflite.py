"""TensorFlow Lite / LiteRT (optional extra ``deepatlas[tflite]``): convert an
:class:`~deepatlas.export.protocol.ExportSpec` with ``litert-torch``, run it in the LiteRT interpreter.

Why ``litert-torch`` and not ONNX -> TFLite with ``onnx2tf``: litert-torch 0.10 installs beside
the pinned CPU ``torch==2.13.0`` (it lowers ``torch.export`` programs through its own MLIR
converter, ``litert-converter``, with no TensorFlow), whereas onnx2tf needs the whole of
TensorFlow (hundreds of MB, too slow for CI's install budget).

The batch axis: litert-torch 0.10 cannot convert a dynamic batch with torch 2.13 (the symbolic
size reaches its lowering as ``-2**63``), and a graph converted at one batch size bakes that size
into its reshapes, so resizing the input at run time fails. The file therefore holds one
signature per batch size in :data:`BATCHES` (``batch_1`` and ``batch_64``; the weights are
shared), and :class:`LiteRTModel` runs any number of rows as full batches of 64 followed by
single rows. A graph with another dynamic axis (a sequence's time axis) is refused with one line.

Quantisation (:func:`quantize_file`) goes through Google's ``ai-edge-quantizer`` (installed with
litert-torch): ``dynamic`` is int8 weights with float activations (``dynamic_wi8_afp32``),
``int8`` is int8 weights and activations calibrated on training inputs (``static_wi8_ai8``).

References: Google AI Edge, "LiteRT" and "LiteRT Torch" documentation; Jacob et al. (2018),
"Quantization and training of neural networks for efficient integer-arithmetic-only inference"
(CVPR), the affine int8 scheme both quantisers use.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from deepatlas.errors import InputError

if TYPE_CHECKING:
    from deepatlas.export.protocol import ExportSpec

BATCHES = (1, 64)  # one signature per batch size: litert-torch cannot convert a dynamic batch axis
SIGNATURE = "batch_{}"
MISSING = "--format tflite needs litert-torch and ai-edge-litert: pip install 'deepatlas[tflite]'"


@contextlib.contextmanager
def silenced():
    """The converter prints progress bars and its C++ libraries log to file descriptor 2."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    buf = io.StringIO()
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2 (an embedded interpreter): Python-level redirection only
        saved = None
    try:
        if saved is not None:
            with open(os.devnull, "w") as null:
                os.dup2(null.fileno(), 2)
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            yield
    finally:
        if saved is not None:
            os.dup2(saved, 2)
            os.close(saved)


def _import(name: str):
    import importlib

    try:
        with silenced():
            return importlib.import_module(name)
    except ImportError:
        from deepatlas._optional import MissingExtra

        raise MissingExtra(MISSING) from None


def require_converter():
    return _import("litert_torch")


def require_interpreter():
    return _import("ai_edge_litert.interpreter")


def check_convertible(spec: ExportSpec, owner: str) -> None:
    """Refuse a graph whose inputs vary along an axis other than the batch (one line)."""
    other = {ax: name for ax, name in spec.dynamic_axes.items() if ax != 0}
    if other:
        axes = ", ".join(f"axis {ax} ({name})" for ax, name in other.items())
        raise InputError(
            f"{owner} does not export to tflite: its input varies along {axes}, and a TFLite file from "
            "litert-torch fixes every axis; export it with --format onnx or openvino."
        )


def _batch_of(example, n: int):
    import torch

    return example[torch.arange(n) % len(example)].contiguous()


def write_tflite(spec: ExportSpec, path: str | Path, batches: tuple[int, ...] = BATCHES) -> str:
    """Convert ``spec`` to ``path`` (one signature per batch size); returns the converter's name."""
    litert_torch = require_converter()
    module = copy.deepcopy(spec.module).cpu().eval()
    example = spec.example_input.detach().cpu()
    builder = litert_torch
    for b in batches:
        builder = builder.signature(SIGNATURE.format(b), module, (_batch_of(example, b),))
    try:
        with silenced():
            edge = builder.convert()
            edge.export(str(path))
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"litert-torch cannot convert this model: {type(exc).__name__}: {first[:300]}") from None
    return f"litert-torch {_version('litert-torch')}"


class LiteRTModel:
    """A ``.tflite`` file in the LiteRT interpreter, called like an onnxruntime session.

    ``run(X)`` takes any number of rows: full batches through the largest signature, the rest
    through smaller ones; outputs are named ``output_names`` (the sidecar's) in the file's order.
    """

    def __init__(self, path: str | Path, threads: int | None = None, output_names=None):
        interpreter = require_interpreter()
        try:
            with silenced():
                self.interpreter = interpreter.Interpreter(model_path=str(path), num_threads=threads)
                signatures = self.interpreter.get_signature_list()
        except Exception as exc:
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(f"TFLite file {str(path)!r} cannot be loaded by LiteRT: {msg[:300]}") from None
        self.runners: dict[int, tuple] = {}
        for name, sig in signatures.items():
            if not name.startswith("batch_") or not name[6:].isdigit() or len(sig["inputs"]) != 1:
                continue
            outs = sorted(sig["outputs"], key=lambda s: int(s.rsplit("_", 1)[-1]) if s[-1].isdigit() else 0)
            runner = self.interpreter.get_signature_runner(name)
            io_details = {**runner.get_input_details(), **runner.get_output_details()}
            self.runners[int(name[6:])] = (runner, sig["inputs"][0], outs, io_details)
        if 1 not in self.runners:
            raise InputError(
                f"TFLite file {str(path)!r} has no 'batch_1' signature (signatures: {', '.join(signatures) or 'none'}); "
                "export it with deepatlas export --format tflite."
            )
        self.output_names = list(output_names) if output_names else list(self.runners[1][2])
        runner, inp, _, details = self.runners[1]
        with silenced():  # the first call creates the XNNPACK delegate, which says so on stderr
            runner(**{inp: np.zeros(details[inp]["shape"], details[inp]["dtype"])})

    @property
    def batches(self) -> list[int]:
        return sorted(self.runners, reverse=True)

    def run(self, X: np.ndarray) -> dict[str, np.ndarray]:
        X = np.ascontiguousarray(X)
        pieces: list[dict] = []
        i, n = 0, len(X)
        while i < n:
            b = next(b for b in self.batches if b <= n - i)
            runner, inp, outs, details = self.runners[b]
            result = runner(**{inp: _quantized(X[i : i + b], details[inp])})
            pieces.append({name: _dequantized(result[o], details[o]) for name, o in zip(self.output_names, outs)})
            i += b
        if not pieces:
            raise InputError("LiteRT cannot run an empty batch.")
        return {name: np.concatenate([p[name] for p in pieces]) for name in pieces[0]}


def _quantized(X: np.ndarray, detail: dict) -> np.ndarray:
    """Float inputs -> the integer type of a fully quantised file's input (``q = x / scale + zero``)."""
    dtype = np.dtype(detail["dtype"])
    scale, zero = detail.get("quantization", (0.0, 0))
    if X.dtype == dtype or not np.issubdtype(dtype, np.integer) or not scale:
        return X
    info = np.iinfo(dtype)
    return np.clip(np.round(X / scale) + zero, info.min, info.max).astype(dtype)


def _dequantized(values, detail: dict) -> np.ndarray:
    """A quantised output back to float (``x = (q - zero) * scale``); float outputs as they are."""
    values = np.asarray(values)
    scale, zero = detail.get("quantization", (0.0, 0))
    if not np.issubdtype(values.dtype, np.integer) or not scale:
        return values
    return ((values.astype(np.float32) - zero) * scale).astype(np.float32)


def quantize_file(float_path: str | Path, out: str | Path, mode: str, calibration: np.ndarray | None) -> None:
    """Quantise a ``.tflite`` file with ai-edge-quantizer: ``dynamic`` (int8 weights) or ``int8``
    (int8 weights and activations, ranges calibrated on ``calibration`` inputs)."""
    require_converter()
    from ai_edge_quantizer import quantizer, recipe

    with silenced():
        qt = quantizer.Quantizer(str(float_path))
        if mode == "dynamic":
            qt.load_quantization_recipe(recipe.dynamic_wi8_afp32())
            result = qt.quantize()
        else:
            qt.load_quantization_recipe(recipe.static_wi8_ai8())
            model = LiteRTModel(float_path)
            data = {}
            for b, (_, inp, _, _) in model.runners.items():
                rows = len(calibration) - len(calibration) % b
                data[SIGNATURE.format(b)] = [{inp: calibration[i : i + b]} for i in range(0, min(rows, 8 * 64), b)]
            result = qt.quantize(qt.calibrate(data, num_threads=1))
        result.export_model(str(out), overwrite=True)


def versions() -> dict[str, str | None]:
    return {"litert_torch_version": _version("litert-torch"), "ai_edge_litert_version": _version("ai-edge-litert")}


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None

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
single rows. A graph with another dynamic axis (a sequence's time axis) is refused with one line;
a resizable one (``ExportSpec.resizable``: an image CNN's height and width) is converted at its
training size by the export pipeline, and the sidecar's ``input`` says so.

Quantisation (:func:`quantize_file`) goes through Google's ``ai-edge-quantizer`` (installed with
litert-torch): ``dynamic`` is int8 weights with float activations (:func:`dynamic_recipe`),
``int8`` is int8 weights and activations calibrated on training inputs, with the input
standardisation left in float (:func:`static_recipe`).

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
    """Refuse a graph whose inputs vary along an axis other than the batch (one line); the pipeline
    passes a resizable model's spec at its example size (:meth:`ExportSpec.at_example_size`)."""
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
    import torch

    litert_torch = require_converter()
    module = copy.deepcopy(spec.module).cpu().eval()
    example = spec.example_input.detach().cpu()
    builder = litert_torch
    for b in batches:
        builder = builder.signature(SIGNATURE.format(b), module, (_batch_of(example, b),))
    try:
        with silenced():
            # Token ids (int64) keep 64-bit types: downcast to int32, a scatter of them fails to lower
            # (the LSTM reader's left-alignment: 'stablehlo.scatter' op inferred type(s) i64 ... incompatible).
            edge = builder.convert(enable_x64=example.dtype == torch.int64)
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
    if X.dtype == dtype or not np.issubdtype(dtype, np.integer):
        return X
    if not scale:  # token ids into a file whose ids are int32 (litert-torch downcasts int64 unless enable_x64)
        return X.astype(dtype) if np.issubdtype(X.dtype, np.integer) else X
    info = np.iinfo(dtype)
    return np.clip(np.round(X / scale) + zero, info.min, info.max).astype(dtype)


def encoder(detail: dict):
    """:func:`_quantized` for one input, its parameters worked out once (the same numbers, bit for bit):
    a serving loop's per-call cost. numpy's ``clip``, ``issubdtype`` and the temporaries made
    ``_quantized`` 8 us of a 20 us call of the Fashion-MNIST MLP's int8 file."""
    dtype = np.dtype(detail["dtype"])
    scale, zero = detail.get("quantization", (0.0, 0))
    if dtype.kind not in "iu" or not scale:
        return lambda X: _quantized(X, detail)
    info = np.iinfo(dtype)
    scale32, zero32, low, high = (np.float32(v) for v in (scale, zero, info.min, info.max))

    def encode(X: np.ndarray) -> np.ndarray:
        if X.dtype == dtype:
            return X
        q = np.divide(X, scale32)
        np.rint(q, out=q)
        q += zero32
        np.maximum(q, low, out=q)
        np.minimum(q, high, out=q)
        return q.astype(dtype)

    return encode


def decoder(detail: dict):
    """:func:`_dequantized` for one output, worked out once (the same numbers, bit for bit)."""
    scale, zero = detail.get("quantization", (0.0, 0))
    if np.dtype(detail["dtype"]).kind not in "iu" or not scale:
        return lambda values: values
    scale32, zero32 = np.float32(scale), np.float32(zero)

    def decode(values: np.ndarray) -> np.ndarray:
        x = values.astype(np.float32)
        x -= zero32
        x *= scale32
        return x

    return decode


def _dequantized(values, detail: dict) -> np.ndarray:
    """A quantised output back to float (``x = (q - zero) * scale``); float outputs as they are."""
    values = np.asarray(values)
    scale, zero = detail.get("quantization", (0.0, 0))
    if not np.issubdtype(values.dtype, np.integer) or not scale:
        return values
    return ((values.astype(np.float32) - zero) * scale).astype(np.float32)


# The preprocessing modules ((x - mean) / scale: Standardize, FeatureStandardize, the vision models'
# ChannelStandardize) name the scope of their ops in the converted file.
PREPROCESSING_SCOPE = "Standardize"
WEIGHT_GRANULARITY = "TENSORWISE"  # ai-edge-quantizer's QuantGranularity for --quantize int8's weights


def static_recipe():
    """ai-edge-quantizer's recipe for ``--quantize int8``: int8 weights and activations, except the
    input standardisation, whose ops stay float.

    Why the standardisation stays float: its divisor is one constant per input feature, and a
    feature that is almost always the same (a border pixel of Fashion-MNIST) has a tiny standard
    deviation, so ``1 / scale`` spans four orders of magnitude (about 1 to 2,600). One int8 scale
    for that whole constant rounds every ordinary ``1 / scale`` to zero, and the quantised MLP fell
    to 0.29 accuracy (float 0.87). Left in float, those ops cost a few hundred multiply-adds; the
    first layer's input is quantised after them, with a range calibrated on training inputs.

    Weights are quantised per tensor (one scale per weight tensor), as TensorFlow Lite's own
    converter does for fully connected layers: per-channel scales are stored as a float32 scale
    and an int64 zero point per output channel for each weight and bias tensor, in each of the
    file's two signatures, which for the ~90k-weight digits models added 11-25 KB, a tenth of the
    file (measured in docs/results-deploy.md).
    """
    from ai_edge_quantizer import algorithm_manager, qtyping, recipe_manager

    manager = recipe_manager.RecipeManager()
    manager.add_static_config(
        regex=".*",
        operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
        activation_num_bits=8,
        weight_num_bits=8,
        weight_granularity=getattr(qtyping.QuantGranularity, WEIGHT_GRANULARITY),
    )
    manager.add_quantization_config(
        regex=f".*{PREPROCESSING_SCOPE}.*",
        operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
        algorithm_key=algorithm_manager.AlgorithmName.NO_QUANTIZE,
    )
    return manager.get_quantization_recipe()


def dynamic_recipe():
    """``--quantize dynamic``: int8 weights, float activations; per-channel weights for
    convolutions (with per-tensor ones LiteRT's hybrid convolution fell to 0.14 accuracy on the
    digits CNN, float 0.99) and per-tensor for fully connected layers, as for ``int8``."""
    from ai_edge_quantizer import qtyping, recipe_manager

    manager = recipe_manager.RecipeManager()
    for op, granularity in (
        (qtyping.TFLOperationName.ALL_SUPPORTED, qtyping.QuantGranularity.CHANNELWISE),
        (qtyping.TFLOperationName.FULLY_CONNECTED, getattr(qtyping.QuantGranularity, WEIGHT_GRANULARITY)),
    ):
        manager.add_dynamic_config(regex=".*", operation_name=op, num_bits=8, granularity=granularity)
    return manager.get_quantization_recipe()


def quantize_file(float_path: str | Path, out: str | Path, mode: str, calibration: np.ndarray | None) -> None:
    """Quantise a ``.tflite`` file with ai-edge-quantizer: ``dynamic`` (int8 weights) or ``int8``
    (int8 weights and activations, ranges calibrated on ``calibration`` inputs; :func:`static_recipe`)."""
    require_converter()
    from ai_edge_quantizer import quantizer

    with silenced():
        qt = quantizer.Quantizer(str(float_path))
        if mode == "dynamic":
            qt.load_quantization_recipe(dynamic_recipe())
            result = qt.quantize()
        else:
            qt.load_quantization_recipe(static_recipe())
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

"""ONNX: write an :class:`~deepatlas.export.protocol.ExportSpec` with ``torch.onnx``, check it, run it.

The dynamo exporter (``torch.export`` + onnxscript) is tried first; should it fail for a module,
the legacy TorchScript exporter is used and the result says so. The batch axis (and any other
axis the spec names) is dynamic. ``onnx.checker`` runs with ``full_check=True`` (shape inference
included), and onnxruntime's outputs are compared with torch's.

References: the ONNX specification (onnx.ai, "Open Neural Network Exchange"); Ansel et al. (2024),
"PyTorch 2: faster machine learning through dynamic Python bytecode transformation and graph
compilation" (the ``torch.export`` tracer behind the dynamo exporter).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from deepatlas._optional import require
from deepatlas.errors import InputError

if TYPE_CHECKING:
    from deepatlas.export.protocol import ExportSpec

# torch is imported inside the functions that need it: serving an ONNX file does not load torch.

DYNAMO = "torch.onnx dynamo"
TORCHSCRIPT = "torch.onnx TorchScript (legacy)"


def max_opset() -> int:
    onnx = require("export", "ONNX export", "onnx")

    return int(onnx.defs.onnx_opset_version())


def check_opset(opset: int | None) -> None:
    if opset is None:
        return
    high = max_opset()
    if isinstance(opset, bool) or not isinstance(opset, int) or not 7 <= opset <= high:
        raise InputError(f"--opset must be an int in the range [7, {high}]. Got {opset!r} instead.")


class _Skip(Exception):
    pass


@contextlib.contextmanager
def _quiet():
    """The exporters log and warn about things a user cannot act on (missing torchvision ops...)."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


EXPORTERS = ("dynamo", "torchscript")


def write_onnx(
    spec: ExportSpec, path: str | Path, opset: int | None = None, exporter: str = "dynamo"
) -> tuple[str, list[str]]:
    """Export ``spec`` to ``path``; returns (exporter used, notes).

    ``exporter="dynamo"`` (the default) falls back to the TorchScript exporter when it fails;
    ``"torchscript"`` asks for the legacy exporter directly (about 10x faster to export).
    """
    import torch

    check_opset(opset)
    if exporter not in EXPORTERS:
        raise InputError(f"exporter must be one of {', '.join(EXPORTERS)}. Got {exporter!r} instead.")
    module = copy.deepcopy(spec.module).cpu().eval()  # the family's own module stays where it is
    example = spec.example_input.detach().cpu()
    notes: list[str] = []
    dims = {ax: torch.export.Dim(name, min=1) for ax, name in spec.dynamic_axes.items()}
    try:
        if exporter == "torchscript":
            raise _Skip
        with _quiet():
            kwargs = {"opset_version": opset} if opset is not None else {}
            program = torch.onnx.export(
                module,
                (example,),
                dynamo=True,
                input_names=[spec.input_name],
                output_names=list(spec.output_names),
                dynamic_shapes=(dims,),
                verbose=False,
                **kwargs,
            )
            program.save(str(path))
        fixed = _fixed_axes(path, spec)
        if not fixed:
            return DYNAMO, notes
        notes.append(f"the dynamo exporter fixed {fixed}; used the TorchScript exporter")
    except _Skip:
        pass
    except Exception as exc:  # the dynamo path does not cover every module; the legacy one may
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        notes.append(f"the dynamo exporter failed ({type(exc).__name__}: {first[:200]}); used the TorchScript exporter")
    try:
        _torchscript(module, example, spec, path, opset)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"torch.onnx cannot export this model: {type(exc).__name__}: {first[:300]}") from None
    fixed = _fixed_axes(path, spec)
    if fixed:
        raise InputError(f"the exported graph fixed {fixed}, which the model declares dynamic.")
    return TORCHSCRIPT, notes


def _fixed_axes(path, spec: ExportSpec) -> str:
    """Dynamic axes that the exporter turned into fixed sizes, e.g. "axis 1 (time) to 8"."""
    inputs, _ = io_signature(path)
    shape = inputs[0]["shape"] if inputs else []
    bad = [
        f"axis {ax} ({name}) to {shape[ax]}"
        for ax, name in spec.dynamic_axes.items()
        if ax < len(shape) and isinstance(shape[ax], int)
    ]
    return ", ".join(bad)


def _torchscript(module, example, spec: ExportSpec, path, opset) -> None:
    import torch

    axes = {spec.input_name: dict(spec.dynamic_axes)}
    axes.update({name: {0: "batch"} for name in spec.output_names})
    with _quiet(), torch.no_grad():
        torch.onnx.export(
            module,
            (example,),
            str(path),
            dynamo=False,
            input_names=[spec.input_name],
            output_names=list(spec.output_names),
            dynamic_axes=axes,
            opset_version=opset or 17,
        )


def check_file(path: str | Path) -> None:
    """``onnx.checker`` with the full check (type and shape inference); InputError when it fails."""
    onnx = require("export", "ONNX export", "onnx")

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError, OSError, Exception) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"ONNX file {str(path)!r} fails onnx.checker: {msg[:300]}") from None


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def session(path: str | Path, threads: int | None = None):
    """An onnxruntime session (CUDA when onnxruntime has it, else CPU); InputError if unreadable."""
    ort = require("export", "running an ONNX model", "onnxruntime")

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    options.log_severity_level = 3
    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"ONNX file {str(path)!r} cannot be loaded by onnxruntime: {msg[:300]}") from None


def run_session(sess, X: np.ndarray) -> dict[str, np.ndarray]:
    name = sess.get_inputs()[0].name
    outs = sess.run(None, {name: X})
    return {o.name: np.asarray(v) for o, v in zip(sess.get_outputs(), outs)}


def run_torch(spec: ExportSpec, X: np.ndarray) -> dict[str, np.ndarray]:
    import torch

    with torch.no_grad():
        return _run_torch(spec, X)


def _run_torch(spec: ExportSpec, X: np.ndarray) -> dict[str, np.ndarray]:
    import torch

    module = spec.module.eval()
    try:
        device = next(module.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    out = module(torch.as_tensor(np.ascontiguousarray(X), device=device))
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return {name: o.detach().cpu().numpy() for name, o in zip(spec.output_names, outs)}


def max_abs_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray], scaled: bool = False) -> float:
    """Largest |a - b| over the outputs both hold (inf on a shape mismatch or a non-finite value).

    ``scaled``: the largest ``|a - b| / max(1, |b|)``, absolute for values up to 1 (probabilities)
    and relative beyond (unnormalised scores, regression targets in their own units), since
    float32 carries about 7 significant digits whatever the magnitude.
    """
    worst = 0.0
    for name in a.keys() & b.keys():
        x, y = np.asarray(a[name], np.float64), np.asarray(b[name], np.float64)
        if x.shape != y.shape:
            return float("inf")
        if x.size:
            with np.errstate(invalid="ignore"):
                d = np.abs(x - y)
            d = np.where((x == y) | (np.isnan(x) & np.isnan(y)), 0.0, d)  # equal infinities agree
            if scaled:
                d = d / np.maximum(1.0, np.abs(np.nan_to_num(y, posinf=1.0, neginf=1.0)))
            worst = max(worst, float(np.where(np.isnan(d), np.inf, d).max()))
    return worst


def io_signature(path: str | Path) -> tuple[list[dict], list[dict]]:
    """Inputs and outputs of an ONNX file: name, shape (ints, or names for dynamic axes), dtype."""
    onnx = require("export", "ONNX export", "onnx")
    helper = onnx.helper

    model = onnx.load(str(path), load_external_data=False)

    def describe(value_info):
        t = value_info.type.tensor_type
        shape = [d.dim_param or (int(d.dim_value) if d.HasField("dim_value") else None) for d in t.shape.dim]
        return {"name": value_info.name, "shape": shape, "dtype": str(helper.tensor_dtype_to_np_dtype(t.elem_type))}

    inits = {i.name for i in model.graph.initializer}
    inputs = [describe(v) for v in model.graph.input if v.name not in inits]
    return inputs, [describe(v) for v in model.graph.output]


def opset_of(path: str | Path) -> int | None:
    onnx = require("export", "ONNX export", "onnx")

    model = onnx.load(str(path), load_external_data=False)
    return next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), None)

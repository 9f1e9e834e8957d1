"""Export a fitted model to ONNX (and optionally OpenVINO), with checks that the file computes what
the model computes.

>>> from deepatlas.export import export
>>> result = export("runs/mlp-digits")                       # doctest: +SKIP
>>> result.path, result.parity["held_out"]["max_abs_diff"]   # doctest: +SKIP
(PosixPath('runs/mlp-digits/model.onnx'), 3.1e-08)

What :func:`export` does, in order: build the model's inference module through the protocol in
:mod:`deepatlas.export.protocol` (preprocessing inside the graph); check that this module
reproduces the estimator's own outputs; export it with a dynamic batch axis; run
``onnx.checker`` (full check); run the file in onnxruntime on held-out inputs (the run's test
split, or ``X``) and on random inputs and compare with torch, failing above ``tolerance``; write
the JSON sidecar ``FILE.json`` (``model.onnx`` -> ``model.onnx.json``; from a run directory it
records the SHA-256 of the run's ``model.safetensors``, which :func:`check_weights` compares).
Files appear only when every check passed.
"""

from __future__ import annotations

import sys
import types

from deepatlas.export.pipeline import (
    FORMATS,
    TOLERANCE,
    ExportResult,
    ParityError,
    check_weights,
    export,
    max_abs_diff,
    read_sidecar,
    sidecar_path,
)

_PROTOCOL = (
    "ExportSpec",
    "as_spec",
    "export_parts",
    "has_inference_path",
    "inference_paths",
    "inference_spec",
    "register_exporter",
)


class _CallableModule(types.ModuleType):
    """``deepatlas.export(...)`` calls :func:`export`, while ``deepatlas.export.onnx`` stays a module."""

    def __call__(self, *args, **kwargs):
        return export(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule


def __getattr__(name: str):
    # The protocol needs torch; it is loaded on first use, so serving an ONNX file does not.
    if name in _PROTOCOL:
        from deepatlas.export import protocol

        return getattr(protocol, name)
    raise AttributeError(f"module 'deepatlas.export' has no attribute {name!r}")


__all__ = [
    "FORMATS",
    "TOLERANCE",
    "ExportResult",
    "ExportSpec",
    "ParityError",
    "as_spec",
    "check_weights",
    "export",
    "export_parts",
    "has_inference_path",
    "inference_paths",
    "inference_spec",
    "max_abs_diff",
    "read_sidecar",
    "register_exporter",
    "sidecar_path",
]

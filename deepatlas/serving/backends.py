"""What the server runs: an ONNX file in onnxruntime (default), a run's inference module in torch,
or a ``.tflite`` file (``deepatlas export --format tflite``) in the LiteRT interpreter.

:func:`load_source` turns ``RUN``, ``MODEL.onnx`` or ``MODEL.tflite`` into a backend and a description of the model
(the export sidecar's content: input name, shape and dtype, kind, class labels, decision rule).
A corrupt, truncated or replaced ONNX file is refused with one line that says why.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deepatlas.errors import InputError

BACKENDS = ("onnxruntime", "torch")


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def __init__(self, path: str | Path, threads: int | None = None, keep: Any = None):
        from deepatlas.export import onnx as ox

        self.session = ox.session(path, threads=threads)
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self._keep = keep  # a temporary directory that must live as long as the session

    def run(self, X: np.ndarray) -> dict[str, np.ndarray]:
        outs = self.session.run(None, {self.input_name: X})
        return dict(zip(self.output_names, outs))


class LiteRTBackend:
    name = "litert"

    def __init__(self, path: str | Path, threads: int | None = None, output_names=None):
        from deepatlas.export.tflite import LiteRTModel

        self.model = LiteRTModel(path, threads=threads, output_names=output_names)
        self.output_names = self.model.output_names

    def run(self, X: np.ndarray) -> dict[str, np.ndarray]:
        return self.model.run(X)


class TorchBackend:
    name = "torch"

    def __init__(self, spec, threads: int | None = None):
        import torch

        self.spec = spec
        self.module = spec.module.eval()
        self.output_names = list(spec.output_names)
        if threads:
            torch.set_num_threads(int(threads))

    def run(self, X: np.ndarray) -> dict[str, np.ndarray]:
        import torch

        from deepatlas.export.onnx import run_torch

        with torch.inference_mode():
            return run_torch(self.spec, X)


@dataclass
class Loaded:
    backend: Any
    info: dict[str, Any]
    source: str
    notes: list[str] = field(default_factory=list)
    tabular: Any = None
    """The run's :class:`~deepatlas.preprocessing.TabularPreprocessor` (a model trained on a CSV's raw
    columns): then the server also takes named records, ``{"instances": [{"col": value, ...}]}``."""


def run_preprocessor(run: Path):
    """The preprocessing saved in a run's config.json, rebuilt (None when it has none)."""
    from deepatlas._io import read_json
    from deepatlas.preprocessing import TabularPreprocessor

    try:
        config = read_json(run / "config.json")
    except (OSError, ValueError):
        return None
    saved = config.get("preprocessing") if isinstance(config, dict) else None
    if not saved:
        return None
    return TabularPreprocessor.from_config(saved, f"Run directory {str(run)!r}: config.json")


def describe_spec(spec, estimator) -> dict[str, Any]:
    """The sidecar's fields for a model served straight from torch."""
    from deepatlas import __version__

    meta = dict(spec.metadata)
    config = getattr(estimator, "run_config_", {}) or {}
    shape: list[Any] = [None] * (1 + len(spec.sample_shape))
    for ax in range(len(shape)):
        shape[ax] = spec.dynamic_axes.get(ax, spec.sample_shape[ax - 1] if ax else "batch")
    return {
        "package_version": __version__,
        "model": config.get("model"),
        "class": type(estimator).__name__,
        "task": config.get("task"),
        "kind": meta.pop("kind", "transform"),
        "input": {"name": spec.input_name, "shape": shape, "dtype": str(spec.example_input.numpy().dtype)},
        "outputs": [{"name": n} for n in spec.output_names],
        "sample_shape": list(spec.sample_shape),
        "classes": meta.pop("classes", None),
        "decision": meta.pop("decision", None),
        "preprocessing": meta.pop("preprocessing", None),
        "metadata": meta,
    }


def _load_onnx(path: Path, threads: int | None, keep=None) -> tuple[OnnxRuntimeBackend, dict]:
    from deepatlas.export import onnx as ox
    from deepatlas.export import read_sidecar

    if path.stat().st_size == 0:
        raise InputError(f"ONNX file {str(path)!r} is empty.")
    sidecar = read_sidecar(path)
    if sidecar and sidecar.get("sha256") and sidecar["sha256"] != ox.sha256(path):
        raise InputError(
            f"ONNX file {str(path)!r} does not match the checksum in its sidecar (truncated or replaced?); "
            "export it again with deepatlas export."
        )
    ox.check_file(path)
    backend = OnnxRuntimeBackend(path, threads=threads, keep=keep)
    inputs, outputs = ox.io_signature(path)
    if len(inputs) != 1:
        raise InputError(f"ONNX file {str(path)!r} has {len(inputs)} inputs; the server serves models with one.")
    info = dict(sidecar or {"kind": "unknown", "classes": None, "decision": None})
    info["input"], info["outputs"] = inputs[0], outputs
    info["sample_shape"] = inputs[0]["shape"][1:]
    return backend, info


def _load_tflite(path: Path, threads: int | None) -> tuple[LiteRTBackend, dict]:
    """A ``.tflite`` file with its sidecar (which carries the input, outputs, classes and decision)."""
    from deepatlas.export import read_sidecar
    from deepatlas.export.onnx import sha256

    sidecar = read_sidecar(path)
    if sidecar is None or sidecar.get("format") != "tflite":
        raise InputError(
            f"TFLite file {str(path)!r} has no deepatlas sidecar {str(path) + '.json'!r} (its input, outputs and "
            "classes); export it with deepatlas export --format tflite."
        )
    if sidecar.get("sha256") != sha256(path):
        raise InputError(
            f"TFLite file {str(path)!r} does not match the checksum in its sidecar (truncated or replaced?); "
            "export it again with deepatlas export --format tflite."
        )
    backend = LiteRTBackend(path, threads=threads, output_names=sidecar.get("output_names"))
    info = dict(sidecar)
    info["outputs"] = [{"name": n} for n in backend.output_names]
    return backend, info


def load_source(
    source: str | Path, backend: str = "onnxruntime", threads: int | None = None, part: str | None = None
) -> Loaded:
    """``RUN`` (a run directory) or ``MODEL.onnx`` -> a ready backend and the model's description.

    From a run with onnxruntime, ``RUN/model.onnx`` (``RUN/model-PART.onnx`` for a ``part``, as
    ``deepatlas export --part`` names it) is used when it exists (and matches its sidecar);
    otherwise the run is exported (with the parity checks) to a temporary file. An exported file
    of a run (served as ``RUN`` or named directly inside ``RUN``) whose sidecar does not record
    the SHA-256 of the run's current ``model.safetensors`` is refused as stale, with the fix.
    """
    if backend not in BACKENDS:
        raise InputError(f"--backend must be one of {', '.join(BACKENDS)}. Got {backend!r} instead.")
    path = Path(source)
    if not path.exists():
        raise InputError(f"{str(source)!r} does not exist; expected a run directory or a .onnx file.")
    if path.is_file():
        if part is not None:
            raise InputError(
                f"--part applies to a run directory; {str(source)!r} is an ONNX file, which holds one part."
            )
        if path.suffix.lower() == ".xml":  # an OpenVINO export: its ONNX twin is what serve runs
            onnx_twin = path.with_suffix(".onnx")
            raise InputError(
                f"{str(source)!r} is an OpenVINO file, which serve does not run; serve its ONNX file "
                f"{str(onnx_twin)!r} (written by the same export) or the run directory "
                f"{str(path.parent)!r}, each checked against the run's weights."
            )
        if path.suffix.lower() == ".tflite":
            if backend == "torch":
                raise InputError("--backend torch needs a run directory; a TFLite file is served with LiteRT.")
            if (path.parent / "config.json").is_file():
                from deepatlas.export import check_weights

                check_weights(path, path.parent)
            lite, info = _load_tflite(path, threads)
            tabular = run_preprocessor(path.parent) if (path.parent / "config.json").is_file() else None
            return Loaded(lite, info, str(path), tabular=tabular)
        if path.suffix.lower() != ".onnx":
            raise InputError(f"{str(source)!r} is neither a run directory nor a .onnx or .tflite file.")
        if backend == "torch":
            raise InputError("--backend torch needs a run directory; an ONNX file can only be served with onnxruntime.")
        if (path.parent / "config.json").is_file():  # a file inside a run directory: its weights must match
            from deepatlas.export import check_weights

            check_weights(path, path.parent)
        ort_backend, info = _load_onnx(path, threads)
        tabular = run_preprocessor(path.parent) if (path.parent / "config.json").is_file() else None
        return Loaded(ort_backend, info, str(path), tabular=tabular)

    from deepatlas.export import check_weights, export, inference_spec
    from deepatlas.saving import load

    estimator = load(path)
    if backend == "torch":
        spec = inference_spec(estimator, part)
        info = describe_spec(spec, estimator)
        return Loaded(TorchBackend(spec, threads), info, str(path), tabular=getattr(estimator, "preprocessor_", None))
    onnx_file = path / ("model.onnx" if part is None else f"model-{part}.onnx")
    if onnx_file.exists():
        check_weights(onnx_file, path)  # refuses a file exported from other weights than the run's
        ort_backend, info = _load_onnx(onnx_file, threads)
        return Loaded(ort_backend, info, str(onnx_file), tabular=getattr(estimator, "preprocessor_", None))
    tmp = tempfile.TemporaryDirectory(prefix="deepatlas-serve-")
    result = export(estimator, Path(tmp.name) / "model.onnx", part=part)
    ort_backend, info = _load_onnx(result.onnx_path, threads, keep=tmp)
    notes = [f"exported {path} to a temporary ONNX file"] + result.notes
    return Loaded(ort_backend, info, str(path), notes=notes, tabular=getattr(estimator, "preprocessor_", None))

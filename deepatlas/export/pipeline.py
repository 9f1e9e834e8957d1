"""What :func:`deepatlas.export.export` does: build the inference module, check it against the
estimator, write ONNX (and OpenVINO IR), check the files against torch, write the sidecar.

It sits above the models (it loads runs and builds their modules); the protocol that the models
use to describe themselves (:mod:`deepatlas.export.protocol`, :mod:`deepatlas.export.adapters`)
sits below them, so the package is split across two layers (see docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import json
import os
import shlex
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deepatlas._optional import require
from deepatlas.errors import DeepAtlasError, InputError

TOLERANCE = 1e-4
FORMATS = ("onnx", "openvino", "tflite")
WEIGHTS_FILE = "model.safetensors"  # a run's weights; the sidecar records their SHA-256
_MAX_HELD_OUT = 512


class ParityError(DeepAtlasError):
    """An exported file (or an inference module) computes something other than the model."""


@dataclass
class ExportResult:
    path: Path  # the deployable file (model.onnx, model.xml for OpenVINO, model.tflite for TFLite)
    sidecar: Path
    onnx_path: Path
    format: str
    exporter: str
    parity: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    quantized: dict[str, Any] | None = None  # --quantize: the quantised file, its test score and size

    def summary(self) -> str:
        lines = [f"exported {self.format} with {self.exporter} -> {self.path}"]
        titles = {
            "reference": "torch module vs the estimator",
            "held_out": "onnxruntime vs torch",
            "random": "onnxruntime vs torch",
            "openvino_held_out": "OpenVINO vs torch",
            "openvino_random": "OpenVINO vs torch",
            "tflite_held_out": "LiteRT vs torch",
            "tflite_random": "LiteRT vs torch",
        }
        for key, title in titles.items():
            if key in self.parity:
                p = self.parity[key]
                extra = "" if p["max_scaled_diff"] == p["max_abs_diff"] else f" (scaled {p['max_scaled_diff']:.3g})"
                lines.append(f"  {title}, {p['label']} ({p['rows']} rows): max abs diff {p['max_abs_diff']:.3g}{extra}")
        lines.append(f"  tolerance {self.parity['tolerance']:g}; sidecar {self.sidecar}")
        if self.quantized:
            from deepatlas.export.quantize import summary_line

            lines.append(summary_line(self.quantized))
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def sidecar_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".json")


def read_sidecar(path: str | os.PathLike) -> dict | None:
    """The JSON sidecar of an exported file, or None when it has none."""
    side = sidecar_path(path)
    if not side.exists():
        return None
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"Sidecar {str(side)!r} is not valid JSON ({exc}).") from None
    if not isinstance(data, dict):
        raise InputError(f"Sidecar {str(side)!r} must hold a JSON object.")
    return data


def check_weights(path: str | os.PathLike, run_dir: str | os.PathLike) -> None:
    """Refuse an exported file of ``run_dir`` that does not come from the run's current weights.

    The sidecar's ``weights_sha256`` must equal the SHA-256 of ``RUN/model.safetensors``; a file
    without a sidecar, or whose sidecar records no weights hash, cannot be tied to the weights
    and is refused too. The one-line error names the file and the command that re-exports it.
    """
    from deepatlas.export.onnx import sha256

    path, run_dir = Path(path), Path(run_dir)
    weights = run_dir / WEIGHTS_FILE
    if not weights.is_file():
        return
    fix = f"deepatlas export {shlex.quote(str(run_dir))}"
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    if stem.startswith("model-") and path.suffix.lower() == ".onnx":
        fix += f" --part {shlex.quote(stem[len('model-') :])}"
    elif path.name != "model.onnx":
        fix += f" --out {shlex.quote(str(path))}"
    fix += {".tflite": " --format tflite", ".xml": " --format openvino"}.get(path.suffix.lower(), "")
    what = f"{'ONNX' if path.suffix.lower() == '.onnx' else 'Exported'} file {str(path)!r}"
    side = read_sidecar(path)
    if side is None:
        raise InputError(
            f"{what} has no sidecar {str(sidecar_path(path))!r}, so it cannot be tied to the run's weights "
            f"{str(weights)!r}; export it again with: {fix}"
        )
    recorded, current = side.get("weights_sha256"), sha256(weights)
    if not recorded:
        raise InputError(
            f"{what} is stale: its sidecar records no weights_sha256 (expected the SHA-256 of {str(weights)!r}, "
            f"{current[:12]}); export it again with: {fix}"
        )
    if recorded != current:
        raise InputError(
            f"{what} is stale: it was exported from weights with SHA-256 {str(recorded)[:12]}, but "
            f"{str(weights)!r} now has {current[:12]}; export it again with: {fix}"
        )


def _as_inputs(X, spec, rows: int | None = _MAX_HELD_OUT) -> np.ndarray:
    dtype = spec.example_input.numpy().dtype
    X = np.asarray(X)
    shape = spec.sample_shape
    fixed = [ax for ax in range(1, len(shape) + 1) if ax not in spec.dynamic_axes]
    same_size = X.ndim >= 2 and int(np.prod(X.shape[1:])) == int(np.prod(shape))
    if len(fixed) == len(shape) and tuple(X.shape[1:]) != shape and same_size:
        X = X.reshape(len(X), *shape)  # e.g. images (n, 1, 8, 8) for a model that takes (n, 64)
    return np.ascontiguousarray(X[:rows], dtype=dtype)


def _run_dataset(config: dict, notes: list[str]):
    """The run's data (for the held-out parity check, and --quantize's calibration and test score),
    or None when they cannot be loaded."""
    from deepatlas.data import load_dataset

    data = config.get("data")
    if not data:
        notes.append("the run records no data; checked on random inputs only")
        return None
    try:
        from deepatlas.preprocessing import run_options

        ds = load_dataset(
            data,
            target=config.get("target_name"),
            task=config.get("data_task"),
            seed=config.get("seed") or 0,
            preprocess=run_options(config),  # a CSV's raw columns: the run's own --drop/--categorical/--impute
        )
    except (DeepAtlasError, OSError) as exc:
        notes.append(f"the run's data {data!r} cannot be loaded ({exc}); checked on random inputs only")
        return None
    return ds


def _compare(label: str, rows: int, ours: dict, theirs: dict, parity: dict, key: str, tolerance: float, what: str):
    diff, scaled = max_abs_diff(ours, theirs), max_abs_diff(ours, theirs, scaled=True)
    parity[key] = {"label": label, "rows": int(rows), "max_abs_diff": diff, "max_scaled_diff": scaled}
    if not scaled <= tolerance:
        raise ParityError(
            f"{what}: max abs diff {diff:.3g} (scaled by max(1, |value|): {scaled:.3g}) on {label} "
            f"exceeds the tolerance {tolerance:g}."
        )


def export(
    model,
    out: str | os.PathLike | None = None,
    *,
    format: str = "onnx",
    opset: int | None = None,
    part: str | None = None,
    X=None,
    tolerance: float = TOLERANCE,
    n_random: int = 64,
    seed: int = 0,
    exporter: str = "dynamo",
    quantize: str | None = None,
    y=None,
    calibration=None,
) -> ExportResult:
    """Export a fitted estimator or a run directory and check the result.

    Parameters
    ----------
    model : a fitted estimator, or the path of a run directory.
    out : the file to write; default ``RUN/model.onnx`` (``model.xml`` for OpenVINO; the ONNX
        file is kept beside it). Required when ``model`` is an estimator.
    format : ``"onnx"``, ``"openvino"`` (optional extra; compiles the ONNX file) or ``"tflite"``
        (optional extra; converted with litert-torch, checked in the LiteRT interpreter; see
        :mod:`deepatlas.export.tflite`).
    opset : ONNX opset (default: the exporter's).
    part : which inference path, for models with several (``_export_parts``, or the ``parts`` of
        their registered exporter; e.g. ``"decoder"``); default: the first.
    X : held-out inputs for the parity check, as the inference path takes them (codes for a
        decoder); default: the run's test split, mapped by the path's ``held_out`` hook when it
        has one (a decoder's codes of the data, a policy's rollouts, a generator's codes).
    tolerance : largest allowed difference between onnxruntime and torch, ``|ort - torch| /
        max(1, |torch|)``: absolute for outputs up to 1 (probabilities), relative beyond.
    exporter : ``"dynamo"`` (default; falls back to TorchScript with a note if it fails) or
        ``"torchscript"`` (the legacy exporter, much faster to run).
    quantize : ``None``, ``"int8"`` (static, calibrated on the training split) or ``"dynamic"``
        (int8 weights): also writes ``model.int8.onnx`` (``.xml``, ``.tflite``) and scores it and
        the float file on the test split (:mod:`deepatlas.export.quantize`).
    y : labels of ``X``, for the quantised test score when exporting an estimator object.
    calibration : inputs for ``quantize="int8"`` when exporting an estimator object.
    """
    from deepatlas import __version__, registry
    from deepatlas._io import to_jsonable, write_json
    from deepatlas.export import onnx as ox
    from deepatlas.export.protocol import export_parts, has_inference_path, inference_spec
    from deepatlas.saving import load

    require("export", "deepatlas export")
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance > 0:
        raise InputError(f"--tolerance must be a positive float. Got {tolerance!r} instead.")
    if format not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}. Got {format!r} instead.")
    ox.check_opset(opset)
    from deepatlas.export.quantize import check_mode

    check_mode(quantize)
    if format == "openvino":
        from deepatlas.export.openvino import require_openvino

        if out is not None and Path(out).suffix != ".xml":  # OpenVINO writes NAME.xml + NAME.bin only
            found = repr(Path(out).suffix) if Path(out).suffix else "no suffix"
            raise InputError(
                f"--out {str(out)!r}: an OpenVINO IR is written as NAME.xml with NAME.bin beside it; "
                f"expected a file name ending in .xml, found {found}."
            )
        require_openvino()
    if format == "tflite":
        from deepatlas.export.tflite import require_converter

        require_converter()
    notes: list[str] = []
    config: dict = {}
    weights_sha256 = None  # of the run's model.safetensors, when exporting a run directory
    if isinstance(model, (str, os.PathLike)):
        run_dir = Path(model)
        if (run_dir / WEIGHTS_FILE).is_file():  # hashed before loading: a later change reads as stale
            weights_sha256 = ox.sha256(run_dir / WEIGHTS_FILE)
        estimator = load(run_dir)
        config = estimator.run_config_
        if out is None:
            stem = f"model-{part}" if part else "model"
            out = run_dir / f"{stem}.{ {'openvino': 'xml', 'tflite': 'tflite'}.get(format, 'onnx') }"
    else:
        estimator = model
        config = getattr(estimator, "run_config_", {}) or {}
        if out is None:
            raise InputError("out is required when exporting an estimator object (e.g. out='model.onnx').")
    out = Path(out)
    if not has_inference_path(estimator):
        from deepatlas.export.protocol import DOCS

        name = type(estimator).__name__
        where = f"Run {str(model)!r} holds a {name}, which has" if config else f"{name} has"
        raise InputError(f"{where} no inference path to export: it defines no _export_module() (see {DOCS}).")
    spec = inference_spec(estimator, part)
    onnx_out = out if format == "onnx" else out.with_suffix(".onnx")
    tfl_spec = None
    if format == "tflite":  # a resizable model (an image CNN) is converted at its training size
        from deepatlas.export.tflite import check_convertible

        tfl_spec = spec.at_example_size() if spec.resizable else spec
        check_convertible(tfl_spec, type(estimator).__name__)

    label = "given inputs"
    ds = None
    if X is None:
        if config and (config.get("data") or spec.held_out is None):
            ds = _run_dataset(config, notes)
            X, label = (ds.X_test, f"{config['data']} test split") if ds is not None else (None, None)
            y = ds.y_test if ds is not None and spec.held_out is None else y
        if spec.held_out is not None:  # this path's own held-out inputs (a decoder's codes of the data...)
            mapped = spec.held_out(X, label)
            X, label = mapped if mapped is not None else (None, label)
            if mapped is None and config:
                notes.append("the run's data are not inputs of this inference path; checked on random inputs only")
    held_out = _as_inputs(X, spec) if X is not None else None
    if quantize:
        from deepatlas.export.quantize import CALIBRATION_ROWS, check_quantisable

        if calibration is None and ds is not None:
            calibration = ds.X_train
        kind = spec.metadata.get("kind", "transform")
        check_quantisable(kind, type(estimator).__name__, quantize, y is not None, calibration is not None)
        test_X = _as_inputs(X, spec, rows=None)
        calibration = _as_inputs(calibration, spec, rows=CALIBRATION_ROWS) if calibration is not None else None
    rng = np.random.default_rng(seed)
    random_X = [spec.random_inputs(rng, 1), spec.random_inputs(rng, n_random)]
    if len(spec.dynamic_axes) > 1:  # another length along the dynamic axes (e.g. a longer sequence)
        random_X.append(spec.random_inputs(rng, 3, grow=3))
    parity: dict[str, Any] = {"tolerance": tolerance}

    # 1. The module must compute what the estimator computes (before any file is written).
    if spec.reference is not None:
        probe = held_out if held_out is not None else random_X[1]
        ref = {k: np.asarray(v) for k, v in spec.reference(probe).items()}
        _compare(
            label if held_out is not None else "random inputs",
            len(probe),
            ox.run_torch(spec, probe),
            ref,
            parity,
            "reference",
            max(tolerance, 1e-4),
            f"the inference module of {type(estimator).__name__} disagrees with the estimator",
        )

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".export-") as tmp:
        tmp_onnx = Path(tmp) / "model.onnx"
        exporter, export_notes = ox.write_onnx(spec, tmp_onnx, opset, exporter)
        notes += export_notes
        ox.check_file(tmp_onnx)
        sess = ox.session(tmp_onnx)

        # 2. onnxruntime against torch, on held-out and random inputs (batch 1 and n_random).
        if held_out is not None:
            _compare(
                label, len(held_out), _checked(lambda a: ox.run_session(sess, a))(held_out), ox.run_torch(spec, held_out), parity, "held_out",
                tolerance, "onnxruntime disagrees with torch",
            )  # fmt: skip
        n_rnd = sum(len(r) for r in random_X)
        ort_rnd = _run_batches(lambda a: ox.run_session(sess, a), random_X)
        _compare(
            "random inputs", n_rnd, ort_rnd, _run_batches(lambda a: ox.run_torch(spec, a), random_X), parity,
            "random", tolerance, "onnxruntime disagrees with torch",
        )  # fmt: skip

        inputs, outputs = ox.io_signature(tmp_onnx)
        meta = dict(spec.metadata)
        sidecar = {
            "format": "onnx",
            "file": onnx_out.name,
            "sha256": ox.sha256(tmp_onnx),
            "weights_sha256": weights_sha256,
            "package": "deepatlas",
            "package_version": __version__,
            "exporter": exporter,
            "opset": ox.opset_of(tmp_onnx),
            "torch_version": _version("torch"),
            "onnxruntime_version": _version("onnxruntime"),
            "model": config.get("model") or registry.name_of(estimator),
            "class": type(estimator).__name__,
            "part": part or next(iter(export_parts(estimator)), None),
            "task": config.get("task") or getattr(estimator, "_task", None),
            "kind": meta.pop("kind", "transform"),
            "input": inputs[0] if inputs else None,
            "outputs": outputs,
            "sample_shape": list(spec.sample_shape),
            "classes": meta.pop("classes", None),
            "decision": meta.pop("decision", None),
            "preprocessing": meta.pop("preprocessing", None),
            "metadata": meta,
            "parity": parity,
            "notes": notes,
        }
        ov_path = None
        if format == "openvino":
            ov_path, ov_version = _openvino(
                tmp_onnx, out, Path(tmp), spec, held_out, label, random_X, parity, tolerance
            )
            sidecar_ov = dict(sidecar, format="openvino", file=out.name, onnx_file=onnx_out.name, sha256=None)
            sidecar_ov["openvino_version"] = ov_version
        tfl_path = None
        if format == "tflite":
            fixed_X = random_X[:2] if tfl_spec is not spec else random_X  # not the other input size
            tfl_path, converter = _tflite(Path(tmp), tfl_spec, held_out, label, fixed_X, parity, tolerance)
            from deepatlas.export.tflite import BATCHES, versions

            sidecar_tfl = dict(sidecar, format="tflite", file=out.name, onnx_file=onnx_out.name, sha256=None)
            sidecar_tfl["input"] = fixed_input(sidecar["input"], tfl_spec)
            sidecar_tfl.update(converter=converter, signatures={f"batch_{b}": b for b in BATCHES}, **versions())
            sidecar_tfl["output_names"] = list(spec.output_names)
        os.replace(tmp_onnx, onnx_out)
        write_json(sidecar_path(onnx_out), to_jsonable(sidecar))
        if ov_path is not None:
            os.replace(ov_path, out)
            os.replace(ov_path.with_suffix(".bin"), out.with_suffix(".bin"))
            sidecar_ov["sha256"] = ox.sha256(out)
            write_json(sidecar_path(out), to_jsonable(sidecar_ov))
        if tfl_path is not None:
            os.replace(tfl_path, out)
            sidecar_tfl["sha256"] = ox.sha256(out)
            write_json(sidecar_path(out), to_jsonable(sidecar_tfl))
    quantized = None
    if quantize:
        quantized = _quantize(format, out, onnx_out, quantize, calibration, test_X, y, sidecar, spec)
    return ExportResult(
        path=out,
        sidecar=sidecar_path(out),
        onnx_path=onnx_out,
        format=format,
        exporter=sidecar_tfl["converter"] if tfl_path is not None else exporter,
        parity=parity,
        notes=notes,
        quantized=quantized,
    )


def _quantize(format, out, onnx_out, mode, calibration, X_test, y_test, sidecar, spec) -> dict:
    """Write ``OUT``'s quantised twin and its sidecar (the float sidecar's facts, re-hashed)."""
    from deepatlas._io import to_jsonable, write_json
    from deepatlas.export import onnx as ox
    from deepatlas.export.quantize import quantize_export, quantized_path

    q_out = quantized_path(out, mode)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".quantize-") as tmp:
        tmp_out = Path(tmp) / q_out.name
        report = quantize_export(
            format, out, onnx_out, tmp_out, mode, calibration=calibration, X_test=X_test,
            y_test=np.asarray(y_test)[: len(X_test)], kind=sidecar["kind"], classes=sidecar["classes"],
            decision=sidecar["decision"], output_names=list(spec.output_names),
        )  # fmt: skip
        report["file"] = q_out.name
        if format == "openvino":
            os.replace(tmp_out.with_suffix(".bin"), q_out.with_suffix(".bin"))
        os.replace(tmp_out, q_out)
    side = dict(sidecar, format=format, file=q_out.name, sha256=ox.sha256(q_out), quantization=report)
    side["parity"] = {"tolerance": None, "note": "a quantised file is judged by its test score, not by parity"}
    if format == "tflite":
        side["output_names"] = list(spec.output_names)
        side["input"] = fixed_input(sidecar["input"], spec.at_example_size() if spec.resizable else spec)
    write_json(sidecar_path(q_out), to_jsonable(side))
    return report


def fixed_input(onnx_input: dict | None, spec) -> dict | None:
    """The ONNX file's input description with the axes ``spec`` keeps fixed at the example's size
    (a TFLite file of a resizable model: its height and width are the training size's)."""
    if onnx_input is None:
        return None
    shape = [name if ax in spec.dynamic_axes else dim for ax, (name, dim) in
             enumerate(zip(onnx_input["shape"], [None, *spec.sample_shape]))]  # fmt: skip
    return dict(onnx_input, shape=shape)


def max_abs_diff(a, b, scaled: bool = False) -> float:
    from deepatlas.export.onnx import max_abs_diff as _mad

    return _mad(a, b, scaled)


def _run_batches(fn, batches) -> dict[str, np.ndarray]:
    """Run each batch separately (exercising the dynamic axes); outputs keyed ``name@batch``."""
    return {f"{k}@{i}": v for i, b in enumerate(batches) for k, v in _checked(fn)(b).items()}


def _checked(fn):
    """A runtime that cannot run the file on an input fails the parity check (with its reason)."""

    def run(X):
        try:
            return fn(X)
        except Exception as exc:
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ParityError(f"the exported file cannot run on inputs of shape {list(X.shape)}: {msg[:300]}") from None

    return run


def _openvino(onnx_file, out, tmp, spec, held_out, label, random_X, parity, tolerance):
    from deepatlas.export import onnx as ox
    from deepatlas.export.openvino import CompiledModel, read, save, version

    xml = Path(tmp) / "model.xml"
    save(read(onnx_file), xml)
    compiled = CompiledModel(xml)  # parity of the file as written, not of the model in memory
    compiled.output_names = list(spec.output_names)
    if held_out is not None:
        _compare(
            label, len(held_out), compiled.run(held_out), ox.run_torch(spec, held_out), parity,
            "openvino_held_out", tolerance, "OpenVINO disagrees with torch",
        )  # fmt: skip
    _compare(
        "random inputs", sum(len(r) for r in random_X), _run_batches(compiled.run, random_X),
        _run_batches(lambda a: ox.run_torch(spec, a), random_X), parity, "openvino_random", tolerance,
        "OpenVINO disagrees with torch",
    )  # fmt: skip
    return xml, version()


def _tflite(tmp, spec, held_out, label, random_X, parity, tolerance):
    """Convert to TFLite and check the LiteRT interpreter against torch, as for onnxruntime."""
    from deepatlas.export import onnx as ox
    from deepatlas.export.tflite import LiteRTModel, write_tflite

    path = Path(tmp) / "model.tflite"
    converter = write_tflite(spec, path)
    model = LiteRTModel(path, output_names=spec.output_names)
    if held_out is not None:
        _compare(
            label, len(held_out), _checked(model.run)(held_out), ox.run_torch(spec, held_out), parity,
            "tflite_held_out", tolerance, "LiteRT disagrees with torch",
        )  # fmt: skip
    _compare(
        "random inputs", sum(len(r) for r in random_X), _run_batches(model.run, random_X),
        _run_batches(lambda a: ox.run_torch(spec, a), random_X), parity, "tflite_random", tolerance,
        "LiteRT disagrees with torch",
    )  # fmt: skip
    return path, converter


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None

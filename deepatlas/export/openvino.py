"""OpenVINO (optional extra ``deepatlas[openvino]``): compile the exported ONNX file, check parity,
save the OpenVINO IR (``.xml`` + ``.bin``).

Reference: Intel, "OpenVINO toolkit" documentation (``openvino.Core.read_model``,
``compile_model``, ``save_model``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepatlas.errors import InputError


def require_openvino():
    try:
        import openvino as ov
    except ImportError:
        raise InputError(
            "--format openvino needs the optional package openvino; install it with pip install 'deepatlas[openvino]'."
        ) from None
    return ov


class CompiledModel:
    """An OpenVINO model compiled for the CPU, called like an onnxruntime session."""

    def __init__(self, model_path: str | Path, device: str = "CPU", threads: int | None = None):
        ov = require_openvino()
        core = ov.Core()
        # f32 explicitly: on CPUs with bf16 units OpenVINO otherwise computes in bf16 (~1e-2 error).
        config = {"INFERENCE_PRECISION_HINT": "f32"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            self.model = read(model_path)
            self.compiled = core.compile_model(self.model, device, config)
        except Exception as exc:
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(f"OpenVINO cannot compile {str(model_path)!r}: {msg[:300]}") from None
        self.output_names = [o.get_any_name() for o in self.compiled.outputs]

    def run(self, X: np.ndarray) -> dict[str, np.ndarray]:
        result = self.compiled(X)
        return {name: np.asarray(result[out]) for name, out in zip(self.output_names, self.compiled.outputs)}

    def save(self, xml_path: str | Path) -> None:
        save(self.model, xml_path)


def save(model, xml_path: str | Path) -> None:
    """Write ``model`` as an IR (``.xml`` + ``.bin``) with nothing the runtime does not read.

    Every IR this package writes, float or quantised, goes through here, so the two compare alike:

    * weights stay as they are (``compress_to_fp16=False``: float32 for the float IR, parity 1e-4);
    * identical constants are stored once (NNCF gives each FakeQuantize its own four range
      constants, and ``input_low``/``output_low`` are usually the same numbers);
    * the model-level ``rt_info`` is dropped: the converter's arguments and NNCF's settings
      (about 0.7-1.7 KB of text) are provenance, which the sidecar records, not something the
      runtime reads;
    * the XML is written without indentation (OpenVINO writes a tab per nesting level and a
      newline per element, 15-20 % of the text).

    On the digits CNN the int8 IR goes from 0.333x to 0.30x the float IR (both written here).
    """
    import xml.etree.ElementTree as ET

    ov = require_openvino()
    _share_equal_constants(model)
    ov.save_model(model, str(xml_path), compress_to_fp16=False)
    tree = ET.parse(xml_path)
    root = tree.getroot()
    for info in root.findall("rt_info"):
        root.remove(info)
    for element in root.iter():
        if element.text is not None and not element.text.strip():
            element.text = None
        if element.tail is not None and not element.tail.strip():
            element.tail = None
    tree.write(xml_path, encoding="utf-8", xml_declaration=True)


def _share_equal_constants(model) -> int:
    """Point every consumer of a constant at one copy of each distinct (type, shape, value)."""
    import hashlib

    seen: dict[tuple, object] = {}
    shared = 0
    for op in model.get_ordered_ops():
        if op.get_type_name() != "Constant":
            continue
        try:
            data = np.ascontiguousarray(op.get_data())
        except Exception:  # an element type numpy cannot hold: keep the constant as it is
            continue
        key = (str(op.get_element_type()), tuple(op.get_output_shape(0)), hashlib.sha256(data.tobytes()).digest())
        keep = seen.setdefault(key, op)
        if keep is not op:
            for target in list(op.output(0).get_target_inputs()):
                target.replace_source_output(keep.output(0))
            shared += 1
    if shared:
        model.validate_nodes_and_infer_types()
    return shared


def read(model_path: str | Path):
    """An ``ov.Model`` from an ONNX file (through ``ov.convert_model``) or an IR ``.xml``.

    ``convert_model`` runs OpenVINO's offline transformations, which fold the ONNX frontend's
    shape sub-graphs (a convolution's bias arrives as ShapeOf/Broadcast/Concat/Reshape nodes);
    ``Core.read_model`` keeps them. Same outputs, and an IR whose ``.xml`` is 30-40 % smaller, which
    matters for the int8 file of a small model (digits CNN: 0.36x the float size -> 0.33x).
    """
    ov = require_openvino()
    if Path(model_path).suffix.lower() == ".onnx":
        return ov.convert_model(str(model_path))
    return ov.Core().read_model(str(model_path))


def standardisation_ops(model) -> list[str]:
    """Friendly names of the input standardisation's ops: those named for the ``standardize`` module
    and every op between them and the model's input (``convert_model`` renames some, e.g. the
    ``Sub``/``Div`` it folds into a ``Multiply``). NNCF leaves them in float, as the TFLite recipe
    does (:func:`deepatlas.export.tflite.static_recipe`): quantising the raw input before it is
    standardised costs a FakeQuantize and precision, and buys no integer arithmetic."""
    named = [op for op in model.get_ordered_ops() if "standardize" in op.get_friendly_name().lower()]
    keep, stack = {}, list(named)
    while stack:
        op = stack.pop()
        if op.get_type_name() in ("Parameter", "Constant") or op.get_friendly_name() in keep:
            continue
        keep[op.get_friendly_name()] = op
        stack.extend(value.get_node() for value in op.input_values())
    # The dynamo exporter's names carry no module path ("node_div", "Multiply_11146"): take, too, the
    # element-wise prefix of each input, the ops between it and the first layer with weights.
    front = [
        value.get_node()
        for param in model.get_parameters()
        for out in param.outputs()
        for value in out.get_target_inputs()
    ]
    while front:
        op = front.pop()
        if op.get_type_name() not in _ELEMENTWISE or op.get_friendly_name() in keep:
            continue
        keep[op.get_friendly_name()] = op
        front.extend(target.get_node() for out in op.outputs() for target in out.get_target_inputs())
    return sorted(keep)


# Ops a standardisation (and the reshapes around it) is made of; the walk from the inputs stops at any other.
_ELEMENTWISE = frozenset(
    {"Reshape", "Squeeze", "Unsqueeze", "Transpose", "Convert", "Multiply", "Add", "Subtract", "Divide"}
)


def version() -> str:
    return require_openvino().get_version()

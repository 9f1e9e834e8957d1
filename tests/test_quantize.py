"""--quantize int8|dynamic: the quantised file's test accuracy on digits stays within one point of the
float file's (issue #26's target) in onnxruntime, OpenVINO (NNCF) and LiteRT, with its size beside the
float size; what cannot be quantised is refused with one line before any file is written."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deepatlas.data import load_dataset
from deepatlas.errors import InputError
from deepatlas.export import export
from deepatlas.export.quantize import file_size

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SUFFIX = {"onnx": "onnx", "openvino": "xml", "tflite": "tflite"}


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


class _Models(dict):
    """Each model is trained on first use (the default run needs only the MLP)."""

    def __init__(self, digits):
        super().__init__()
        self.digits = digits

    def __missing__(self, name):
        from deepatlas.models.cnn import CNNClassifier
        from deepatlas.models.mlp import MLPClassifier

        est = MLPClassifier(epochs=20, seed=0) if name == "mlp" else CNNClassifier(seed=0)  # the CNN's defaults
        self[name] = est.fit(self.digits.X_train, self.digits.y_train)
        return self[name]


@pytest.fixture(scope="module")
def models(digits):
    return _Models(digits)


def _needs(fmt):
    if fmt == "openvino":
        pytest.importorskip("nncf", reason="the [openvino] extra (NNCF) is not installed")
    if fmt == "tflite":
        pytest.importorskip("litert_torch", reason="the [tflite] extra is not installed")


CASES = [
    pytest.param(
        fmt, mode, name, id=f"{name}-{fmt}-{mode}", marks=pytest.mark.slow if fmt == "tflite" or name == "cnn" else ()
    )
    for fmt in ("onnx", "openvino", "tflite")
    for mode in ("int8", "dynamic")
    for name in ("mlp", "cnn")
]


@pytest.mark.parametrize(("fmt", "mode", "name"), CASES)
def test_quantised_accuracy_on_digits_is_within_one_point(fmt, mode, name, models, digits, tmp_path):
    _needs(fmt)
    est = models[name]
    out = tmp_path / f"m.{SUFFIX[fmt]}"
    result = export(
        est, out, format=fmt, X=digits.X_test, y=digits.y_test, calibration=digits.X_train, quantize=mode,
        exporter="torchscript",
    )  # fmt: skip
    q = result.quantized
    q_file = tmp_path / f"m.{mode}.{SUFFIX[fmt]}"
    assert q["file"] == q_file.name and q_file.exists()
    assert q["metric"] == "accuracy" and q["test_rows"] == len(digits.X_test)
    assert q["float"] == pytest.approx(est.score(digits.X_test, digits.y_test), abs=1 / len(digits.X_test))
    assert q["quantized"] >= q["float"] - 0.01, q
    assert q["float_bytes"] == file_size(out) and q["quantized_bytes"] == file_size(q_file)
    # int8 weights: a quarter of float32, plus scales and the graph; issue #26's target is 0.3x (the OpenVINO
    # int8 IR of the CNN, 94 k weights, is the closest: 0.297, its XML's FakeQuantize and dequantisation layers).
    assert q["size_ratio"] <= 0.3, q
    assert q["rows_per_call"] == 64  # scored as a service calls it (dynamic quantisation depends on the batch)
    if fmt == "openvino":  # IRs written without NNCF's rt_info or indentation (deepatlas.export.openvino.save)
        from deepatlas.export.quantize import runner
        from deepatlas.export.runtimes import serving_call

        for xml in (out, q_file):
            text = xml.read_text()
            assert "<rt_info" not in text and "\n\t" not in text, xml
        # the runtime table's timed call (a preset input tensor) computes what the scoring runner does
        X = np.ascontiguousarray(digits.X_test[:1])
        expected = runner("openvino", q_file, ["logits", "probabilities"], threads=1)(X)
        got = serving_call("openvino", q_file, 1, threads=1)(X)
        assert [np.asarray(v).tolist() for v in got] == [v.tolist() for v in expected.values()]
    side = json.loads((tmp_path / f"{q_file.name}.json").read_text())
    assert side["quantization"] == q and side["classes"] == list(range(10))
    assert f"{mode} {fmt} -> {q_file.name}: test accuracy" in result.summary()


def test_onnx_int8_files_are_at_most_030_of_the_float_size(models, digits, tmp_path):
    result = export(
        models["mlp"], tmp_path / "m.onnx", X=digits.X_test, y=digits.y_test, calibration=digits.X_train,
        quantize="int8", exporter="torchscript",
    )  # fmt: skip
    assert result.quantized["size_ratio"] <= 0.3, result.quantized


def test_what_has_no_test_accuracy_is_refused_with_one_line(digits, tmp_path):
    from deepatlas.models.autoencoder.autoencoder import Autoencoder

    est = Autoencoder(code_size=4, epochs=1, seed=0).fit(digits.X_train)
    with pytest.raises(InputError) as err:
        export(est, tmp_path / "m.onnx", X=digits.X_test, y=digits.y_test, quantize="dynamic")
    assert str(err.value) == (
        "--quantize dynamic: Autoencoder's inference path is an encoder, which has no test accuracy to judge a "
        "quantised file by; quantisation covers classifiers and regressors."
    )
    assert list(tmp_path.iterdir()) == []


def test_quantize_needs_labels_and_int8_needs_calibration(models, digits, tmp_path):
    with pytest.raises(InputError) as err:
        export(models["mlp"], tmp_path / "m.onnx", X=digits.X_test, quantize="dynamic")
    assert str(err.value).startswith("--quantize dynamic needs labelled test data")
    with pytest.raises(InputError) as err:
        export(models["mlp"], tmp_path / "m.onnx", X=digits.X_test, y=digits.y_test, quantize="int8")
    assert str(err.value) == (
        "--quantize int8 needs calibration inputs (the training split): export a run directory whose data "
        "still load, or pass calibration=."
    )
    with pytest.raises(InputError) as err:
        export(models["mlp"], tmp_path / "m.onnx", quantize="int4")
    assert str(err.value) == "--quantize must be one of int8, dynamic. Got 'int4' instead."
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow  # a subprocess that trains and quantises: ~65 s on the loaded machine
def test_cli_quantises_a_run_with_its_training_split(cli, digits, tmp_path):
    from deepatlas.models.mlp import MLPClassifier
    from deepatlas.runs import train_run

    run = tmp_path / "run"
    train_run(MLPClassifier(hidden_sizes=(32,), epochs=10, seed=0), digits, run, data_spec="digits")
    proc = cli("export", str(run), "--exporter", "torchscript", "--quantize", "int8")
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if "int8 onnx -> model.int8.onnx" in ln)
    assert f"on {len(digits.X_test)} rows" in line and "x the float file's" in line
    side = json.loads((run / "model.int8.onnx.json").read_text())
    assert side["weights_sha256"] == json.loads((run / "model.onnx.json").read_text())["weights_sha256"]
    assert np.isfinite(side["quantization"]["quantized"])


def test_tflite_int8_keeps_a_near_constant_feature_from_erasing_the_others(digits, tmp_path):
    """Issue #26's collapse (Fashion-MNIST MLP: 0.29 int8 vs 0.87 float): a feature that is almost
    always the same has a tiny standard deviation, so 1 / scale spans 2 to ~3,400 here and one int8
    scale for that constant rounded every ordinary feature's to zero. The standardisation stays
    float (deepatlas.export.tflite.static_recipe), and the int8 file keeps the float accuracy."""
    _needs("tflite")
    from deepatlas.export.tflite import LiteRTModel
    from deepatlas.models.mlp import MLPClassifier

    X_train, X_test = (X.reshape(len(X), -1).copy() for X in (digits.X_train, digits.X_test))
    X_train[:, 0], X_test[:, 0] = 0.0, 0.0  # pixel 0 is always blank in digits...
    X_train[0, 0] = 0.01  # ...but for one faint training row: scale 2.6e-4
    est = MLPClassifier(hidden_sizes=(32,), epochs=20, seed=0).fit(X_train, digits.y_train)
    assert 1 / est.scale_.min() > 3000 and 1 / np.median(est.scale_) < 10
    result = export(
        est, tmp_path / "m.tflite", format="tflite", X=X_test, y=digits.y_test, calibration=X_train,
        quantize="int8", exporter="torchscript",
    )  # fmt: skip
    q = result.quantized
    assert q["float"] > 0.9 and q["quantized"] >= q["float"] - 0.01, q
    side = LiteRTModel(tmp_path / "m.int8.tflite").interpreter.get_tensor_details()
    # (the first layer's input is quantised after the standardisation: its "..._quantized" copy is int8)
    standardize = [
        d for d in side if "Standardize" in d["name"] and len(d["shape"]) == 2 and not d["name"].endswith("_quantized")
    ]
    assert standardize and all(d["dtype"] == np.float32 for d in standardize), standardize


@pytest.mark.slow  # torch.compile compiles the module for two batch sizes: ~20 s on quiet cores
def test_benchmark_runtimes_rows_for_every_runtime_and_precision(models, digits):
    from deepatlas.export.runtimes import benchmark_runtimes, table

    rows = benchmark_runtimes(
        models["mlp"], digits.X_test, digits.y_test, digits.X_train, threads=1, rounds=1, calls={1: 3, 64: 1},
        formats=("onnx",),
    )  # fmt: skip
    keys = [(r["runtime"], r["precision"]) for r in rows]
    assert keys == [
        ("torch eager", "float32"),
        ("torch.compile", "float32"),
        ("onnxruntime", "float32"),
        ("onnxruntime", "int8"),
    ]
    done = {k: r for k, r in zip(keys, rows) if r["note"] is None}
    assert ("torch eager", "float32") in done and ("onnxruntime", "int8") in done
    eager = done[("torch eager", "float32")]
    assert eager["speedup_b1_vs_eager"] == 1.0 and eager["bytes"] is None
    for r in done.values():
        assert r["batch_1_ms"] > 0 and r["rows_per_s"] == pytest.approx(64e3 / r["batch_64_ms"])
        assert r["accuracy"] == pytest.approx(eager["accuracy"], abs=0.01)
    f, q = done[("onnxruntime", "float32")], done[("onnxruntime", "int8")]
    assert q["bytes"] <= 0.3 * f["bytes"]
    assert len(table(rows).splitlines()) == 2 + len(rows)


def test_openvino_int8_keeps_the_standardisation_float_with_the_default_exporter(models, digits, tmp_path):
    """The dynamo exporter's op names carry no module path: the standardisation is found by its place
    (the element-wise ops between the input and the first layer with weights), so no FakeQuantize
    sits on the raw input or inside the standardisation."""
    import xml.etree.ElementTree as ET

    _needs("openvino")
    export(
        models["mlp"], tmp_path / "m.xml", format="openvino", X=digits.X_test, y=digits.y_test,
        calibration=digits.X_train, quantize="int8",
    )  # fmt: skip
    root = ET.parse(tmp_path / "m.int8.xml").getroot()
    kinds = {layer.get("id"): layer.get("type") for layer in root.iter("layer")}
    feeds: dict[str, list[str]] = {}
    for edge in root.iter("edge"):
        feeds.setdefault(edge.get("from-layer"), []).append(edge.get("to-layer"))
    # walk from the input through the element-wise ops: the first FakeQuantize must come after all of them
    front = [i for i, kind in kinds.items() if kind == "Parameter"]
    seen = []
    while front:
        layer = front.pop()
        for nxt in feeds.get(layer, []):
            seen.append(kinds[nxt])
            if kinds[nxt] in ("Reshape", "Multiply", "Add", "Subtract", "Divide", "Convert"):
                front.append(nxt)
    assert "Multiply" in seen or "Add" in seen, seen  # the standardisation is there, in float
    assert seen[-1] == "FakeQuantize" and seen.count("FakeQuantize") == 1, seen  # one, before the MatMul

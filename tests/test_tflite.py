"""TFLite export (litert-torch) and the LiteRT interpreter: parity with the estimator on the shared
(family, format) table, the sidecar, serving a .tflite, and the one line when the extra is absent.

The table below is built from the registry: every card with an exporter (tests/test_contract.py's
EXPORTABLE, whose ONNX parity that module checks) crossed with the formats beyond ONNX. Converting
to TFLite takes seconds a model, so the full table is slow; the MLP classifier runs by default.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from test_contract import EXPORTABLE, _fit, _make

from deepatlas.data import load_dataset
from deepatlas.errors import InputError
from deepatlas.export import TOLERANCE, export, export_parts, inference_spec
from deepatlas.export import onnx as ox

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FORMATS = ("openvino", "tflite")  # ONNX: tests/test_contract.py::test_export_parity
SUFFIX = {"openvino": "xml", "tflite": "tflite"}
DEFAULT_RUN = {("mlp", "classification")}  # the rest is @slow (a conversion takes seconds)
PAIRS = [
    pytest.param(
        card,
        fmt,
        id=f"{card.name}/{card.task}-{fmt}",
        marks=() if (card.name, card.task) in DEFAULT_RUN else pytest.mark.slow,
    )
    for card in EXPORTABLE
    for fmt in FORMATS
]


def _litert():
    pytest.importorskip("litert_torch", reason="the [tflite] extra (litert-torch) is not installed")
    pytest.importorskip("ai_edge_litert", reason="the [tflite] extra (ai-edge-litert) is not installed")


@pytest.mark.parametrize(("card", "fmt"), PAIRS)
def test_parity_table(card, fmt, tmp_path):
    """Every exportable card in every format: within TOLERANCE of torch (which the estimator's own
    outputs were checked against), or, for TFLite, a one-line refusal where the input has a
    dynamic axis besides the batch (a sequence's time axis) that is not a resizable one (an image
    CNN's height and width, converted at the training size)."""
    if fmt == "tflite":
        _litert()
    else:
        pytest.importorskip("openvino", reason="the [openvino] extra is not installed")
    est = _fit(card, _make(card))
    for part in export_parts(est) or (None,):
        spec = inference_spec(est, part)
        out = tmp_path / f"{part}.{SUFFIX[fmt]}"
        if fmt == "tflite" and set(spec.dynamic_axes) != {0} and not spec.resizable:
            axes = ", ".join(f"axis {ax} ({name})" for ax, name in spec.dynamic_axes.items() if ax)
            with pytest.raises(InputError) as err:
                export(est, out, part=part, format=fmt, exporter="torchscript")
            assert str(err.value) == (
                f"{type(est).__name__} does not export to tflite: its input varies along {axes}, and a TFLite file "
                "from litert-torch fixes every axis; export it with --format onnx or openvino."
            )
            assert not out.exists()
            continue
        result = export(est, out, part=part, format=fmt, exporter="torchscript")
        keys = [k for k in result.parity if k.startswith(f"{fmt}_")]
        assert f"{fmt}_random" in keys, result.parity
        for key in keys:
            assert result.parity[key]["max_scaled_diff"] <= TOLERANCE, (part, key, result.parity[key])
        assert out.exists() and result.sidecar.exists()


# ---- the MLP and CNN in detail -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def cnn_run(digits, tmp_path_factory):
    from deepatlas.models.cnn import CNNClassifier
    from deepatlas.runs import train_run

    run = tmp_path_factory.mktemp("cnn") / "run"
    est = CNNClassifier(channels=(4,), epochs=2, seed=0)
    train_run(est, digits, run, data_spec="digits")
    return run, est


def test_tflite_export_of_a_run_matches_the_estimator_and_records_the_onnx_preprocessing(cnn_run, digits):
    _litert()
    from deepatlas.export.tflite import LiteRTModel

    run, est = cnn_run
    result = export(run, format="tflite", exporter="torchscript")
    assert result.path == run / "model.tflite" and result.onnx_path == run / "model.onnx"
    assert result.exporter.startswith("litert-torch ")
    for key in ("tflite_held_out", "tflite_random"):
        assert result.parity[key]["max_scaled_diff"] <= TOLERANCE, result.parity[key]
    assert result.parity["tflite_held_out"]["rows"] == len(digits.X_test)
    side = json.loads((run / "model.tflite.json").read_text())
    onnx_side = json.loads((run / "model.onnx.json").read_text())
    assert side["format"] == "tflite" and side["onnx_file"] == "model.onnx"
    for field in ("preprocessing", "classes", "decision", "kind", "weights_sha256", "sample_shape"):
        assert side[field] == onnx_side[field], field  # the same sidecar facts as the ONNX file's
    # The ONNX file takes any image size; the TFLite file holds the training size (litert-torch fixes it).
    assert onnx_side["input"]["shape"] == ["batch", 1, "height", "width"]
    assert side["input"] == dict(onnx_side["input"], shape=["batch", 1, 8, 8])
    assert result.parity["tflite_random"]["rows"] == 1 + 64  # not the ONNX check's larger images
    assert side["signatures"] == {"batch_1": 1, "batch_64": 64} and side["sha256"] == ox.sha256(result.path)
    # Any number of rows: full batches of 64, then single rows.
    model = LiteRTModel(result.path, output_names=side["output_names"])
    for n in (1, 63, 130):
        X = np.ascontiguousarray(digits.X_test[:n], np.float32)
        probabilities = model.run(X)["probabilities"]
        assert probabilities.shape == (n, 10)
        np.testing.assert_allclose(probabilities, est.predict_proba(X), atol=1e-5)


def test_serve_runs_a_tflite_file_in_litert(cnn_run, digits):
    _litert()
    pytest.importorskip("fastapi", reason="the [serve] extra is not installed")
    from fastapi.testclient import TestClient

    from deepatlas.serving import create_app

    run, est = cnn_run
    if not (run / "model.tflite").exists():
        export(run, format="tflite", exporter="torchscript")
    client = TestClient(create_app(run / "model.tflite"))
    assert client.get("/v1/health").json()["backend"] == "litert"
    got = client.post("/v1/predict", json={"instances": digits.X_test[:5].tolist()}).json()["predictions"]
    assert [p["label"] for p in got] == est.predict(digits.X_test[:5]).tolist()


def test_a_tflite_file_without_its_sidecar_is_refused_with_one_line(cnn_run, tmp_path):
    _litert()
    from deepatlas.serving.backends import load_source

    run, _ = cnn_run
    if not (run / "model.tflite").exists():
        export(run, format="tflite", exporter="torchscript")
    lone = tmp_path / "m.tflite"
    lone.write_bytes((run / "model.tflite").read_bytes())
    with pytest.raises(InputError) as err:
        load_source(lone)
    assert str(err.value) == (
        f"TFLite file {str(lone)!r} has no deepatlas sidecar {str(lone) + '.json'!r} (its input, outputs and classes); "
        "export it with deepatlas export --format tflite."
    )


def test_a_sequence_model_is_refused_in_one_line_before_any_file(tmp_path):
    _litert()
    from deepatlas.models.rnn.recurrent import RNNClassifier

    X = np.random.default_rng(0).normal(size=(32, 6, 3)).astype(np.float32)
    est = RNNClassifier(hidden_size=4, epochs=1, seed=0).fit(X, np.arange(32) % 2)
    with pytest.raises(InputError) as err:
        export(est, tmp_path / "m.tflite", format="tflite")
    assert str(err.value) == (
        "RNNClassifier does not export to tflite: its input varies along axis 1 (time), and a TFLite file from "
        "litert-torch fixes every axis; export it with --format onnx or openvino."
    )
    assert list(tmp_path.iterdir()) == []


def test_without_the_extra_the_cli_says_one_line(cnn_run, monkeypatch, capsys):
    from deepatlas.cli import main

    run, _ = cnn_run
    monkeypatch.setitem(sys.modules, "litert_torch", None)  # import litert_torch -> ImportError
    assert main(["export", str(run), "--format", "tflite"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("--format tflite needs litert-torch and ai-edge-litert: pip install 'deepatlas[tflite]'")
    assert "\n" not in err and "Traceback" not in err

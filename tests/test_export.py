"""Export: every spine model goes to ONNX with its preprocessing inside, passes onnx.checker and
matches torch and the estimator itself; the protocol; OpenVINO; the CLI; clear errors."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from deepatlas.data import load_dataset
from deepatlas.errors import InputError
from deepatlas.export import ExportSpec, ParityError, export, inference_spec, sidecar_path
from deepatlas.export import onnx as ox
from deepatlas.models.cnn import CNNClassifier, CNNRegressor
from deepatlas.models.mlp import MLPClassifier, MLPRegressor
from deepatlas.models.perceptron import Perceptron


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _regression_data(shape, n=240, seed=0):
    rng = np.random.default_rng(seed)
    X = (rng.normal(size=(n, *shape)) * 3 + 5).astype(np.float32)
    y = X.reshape(n, -1)[:, :4].sum(axis=1) * 10 + 100
    return X, y


_FITTED: dict = {}


def _fitted(kind: str, digits):
    """A small fitted estimator and held-out inputs, fitted once per kind (export leaves it as it is)."""
    if kind not in _FITTED:
        _FITTED[kind] = _fit(kind, digits)
    return _FITTED[kind]


def _fit(kind: str, digits):
    if kind == "perceptron":
        return Perceptron(epochs=5).fit(digits.X_train.reshape(len(digits.X_train), -1), digits.y_train), (
            digits.X_test.reshape(len(digits.X_test), -1)
        )
    if kind == "mlp-classifier":
        return MLPClassifier(hidden_sizes=(16,), epochs=3, seed=0).fit(digits.X_train, digits.y_train), digits.X_test
    if kind == "cnn-classifier":
        return CNNClassifier(channels=(4,), epochs=1, seed=0).fit(digits.X_train, digits.y_train), digits.X_test
    if kind == "mlp-regressor":
        X, y = _regression_data((5,))
        return MLPRegressor(hidden_sizes=(8,), epochs=5, seed=0).fit(X[:200], y[:200]), X[200:]
    X, y = _regression_data((1, 12))
    return CNNRegressor(channels=(4,), epochs=2, seed=0).fit(X[:200], y[:200]), X[200:]


KINDS = ["perceptron", "mlp-classifier", "cnn-classifier", "mlp-regressor", "cnn-regressor"]


# The dynamo exporter costs seconds per model (and ~10 s to warm up in a fresh process), so the
# default run exports every spine model with the TorchScript exporter and the MLP with dynamo;
# the slow run exports every model with dynamo.
EXPORTS = [pytest.param(kind, "torchscript", id=f"{kind}-torchscript") for kind in KINDS]
EXPORTS += [
    pytest.param(kind, "dynamo", id=f"{kind}-dynamo", marks=() if kind == "mlp-classifier" else pytest.mark.slow)
    for kind in KINDS
]


@pytest.mark.parametrize("kind, exporter", EXPORTS)
def test_every_spine_model_exports_with_parity(kind, exporter, digits, tmp_path):
    est, X_held = _fitted(kind, digits)
    result = export(est, tmp_path / "m.onnx", X=X_held, exporter=exporter)

    assert result.exporter == (ox.DYNAMO if exporter == "dynamo" else ox.TORCHSCRIPT) and result.notes == []
    for key in ("reference", "held_out", "random"):
        assert result.parity[key]["max_scaled_diff"] <= 1e-4, (key, result.parity[key])
    assert result.parity["held_out"]["rows"] == len(X_held)
    onnx.checker.check_model(str(result.path), full_check=True)
    model = onnx.load(str(result.path))
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"

    # An independent check: onnxruntime on a batch of 3 (not a size seen at export) against the
    # estimator's public methods, with the preprocessing done inside the graph.
    sess = ox.session(result.path)
    X3 = np.ascontiguousarray(X_held[5:8], dtype=np.float32)
    out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"input": X3})))
    if kind == "perceptron":
        np.testing.assert_allclose(out["scores"], est.decision_function(X3), atol=1e-4)
    elif "classifier" in kind:
        np.testing.assert_allclose(out["probabilities"], est.predict_proba(X3), atol=1e-5)
        assert (est.classes_[out["logits"].argmax(1)] == est.predict(X3)).all()
    else:
        np.testing.assert_allclose(out["prediction"], est.predict(X3), rtol=1e-5, atol=1e-3)

    side = json.loads(sidecar_path(result.path).read_text())
    shape = list(X_held.shape[1:])
    if kind.startswith("cnn"):  # a channel axis, then any length or height and width (global pooling)
        shape[1:] = ["height", "width"] if len(shape) == 3 else ["length"]
    assert side["input"] == {"name": "input", "shape": ["batch", *shape], "dtype": "float32"}
    assert side["kind"] == ("regressor" if "regressor" in kind else "classifier")
    assert side["package_version"] and side["sha256"] == ox.sha256(result.path)
    per_channel = kind.startswith("cnn")  # the CNN's statistics are per channel, repeated for every position
    mean = np.ravel(est.mean_)[: 1 if per_channel else None]
    np.testing.assert_allclose(side["preprocessing"]["mean"], mean, rtol=1e-6)
    if kind != "perceptron" and "classifier" in kind:
        assert side["classes"] == list(range(10)) and side["decision"] == "argmax"


def _framed(X, pad: int):
    """Digits on a larger canvas: ``pad`` background pixels (zeros) around each image."""
    return np.pad(X, ((0, 0), (0, 0), (pad, pad), (pad, pad)))


CLEAN_CNN_GRAPH = ["Sub", "Div", "Conv", "Relu", "MaxPool", "ReduceMean", "Gemm", "Softmax"]


def test_the_cnn_graph_takes_any_image_size(digits, tmp_path):
    """Issue #19: the image CNN's ONNX (and OpenVINO) graph has dynamic height and width, its
    standardisation per channel inside, and equals predict_proba at the training size (8x8) and at
    others (12x12, 8x5); the channel count stays fixed."""
    pytest.importorskip("openvino", reason="the [openvino] extra is not installed")
    from deepatlas.export.openvino import CompiledModel

    est, X_held = _fitted("cnn-classifier", digits)
    result = export(est, tmp_path / "cnn.xml", format="openvino", X=X_held)  # the default (dynamo) exporter
    assert result.exporter == ox.DYNAMO and result.notes == []
    for key in ("random", "openvino_random"):  # 1 + 64 rows at 8x8, then 3 at 11x11
        assert result.parity[key]["rows"] == 68 and result.parity[key]["max_scaled_diff"] <= 1e-4, key
    model = onnx.load(str(result.onnx_path))
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 1, "height", "width"]
    # one ReduceMean after the last block, no shape ops (global mean instead of pool + flatten)
    assert [n.op_type for n in model.graph.node] == CLEAN_CNN_GRAPH
    sess, compiled = ox.session(result.onnx_path), CompiledModel(result.path)
    compiled.output_names = ["logits", "probabilities"]
    for X in (X_held[:40], _framed(X_held[:40], 2), X_held[:40, :, :, :5]):
        X = np.ascontiguousarray(X, np.float32)
        expected = est.predict_proba(X)
        np.testing.assert_allclose(ox.run_session(sess, X)["probabilities"], expected, atol=1e-5)
        np.testing.assert_allclose(compiled.run(X)["probabilities"], expected, atol=1e-5)
    side = json.loads(sidecar_path(result.onnx_path).read_text())
    assert side["sample_shape"] == side["metadata"]["training_shape"] == [1, 8, 8]
    assert side["preprocessing"]["per"] == "channel"
    assert side["preprocessing"]["mean"] == [float(np.float32(est.mean_[0]))]
    assert side["preprocessing"]["scale"] == [float(np.float32(est.scale_[0]))]
    # Another channel count: the estimator's one line; the file's channel axis is fixed.
    three = np.ascontiguousarray(np.repeat(X_held[:2], 3, axis=1), np.float32)
    with pytest.raises(InputError) as err:
        est.predict_proba(three)
    assert str(err.value) == "X has 3 channels, but CNNClassifier was trained on 1."
    with pytest.raises(Exception, match="index: 1 Got: 3 Expected: 1"):
        ox.run_session(sess, three)
    # The estimator's own network is untouched (its pool and flatten, so saved runs load as they did).
    assert type(est.module_[-3]).__name__ == "AdaptiveAvgPool2d" and type(est.module_[-2]).__name__ == "Flatten"


def test_the_cnn_graph_of_signals_takes_any_length(tmp_path):
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(160, 2, 24)) * 2 + 3).astype(np.float32)
    y = (X[:, 0].mean(axis=1) > X[:, 1].mean(axis=1)).astype(int)
    est = CNNClassifier(channels=(4,), epochs=2, seed=0).fit(X, y)
    result = export(est, tmp_path / "signal.onnx", X=X[:40], exporter="torchscript")
    assert result.parity["random"]["rows"] == 1 + 64 + 3  # the last 3 are 3 steps longer
    sess = ox.session(result.path)
    assert sess.get_inputs()[0].shape == ["batch", 2, "length"]
    for length in (24, 40, 7):  # the training length, then others
        Xl = np.ascontiguousarray((rng.normal(size=(20, 2, length)) * 2 + 3).astype(np.float32))
        np.testing.assert_allclose(ox.run_session(sess, Xl)["probabilities"], est.predict_proba(Xl), atol=1e-5)
    side = json.loads(sidecar_path(result.path).read_text())
    assert side["metadata"]["training_shape"] == side["sample_shape"] == [2, 24]
    assert len(side["preprocessing"]["mean"]) == 2 and side["preprocessing"]["per"] == "channel"


def test_a_cnn_with_per_position_statistics_keeps_its_training_size(digits, tmp_path):
    """Runs saved when the CNN's statistics were per position: predict uses them at the training size
    (and their channel averages elsewhere), which one graph cannot do, so the file keeps 8x8."""
    import copy

    est, X_held = _fitted("cnn-classifier", digits)
    old = copy.deepcopy(est)
    old.mean_ = (est.mean_ + np.linspace(-0.05, 0.05, est.mean_.size)).astype(est.mean_.dtype)
    result = export(old, tmp_path / "old.onnx", X=X_held, exporter="torchscript")
    assert result.parity["held_out"]["max_scaled_diff"] <= 1e-4
    assert result.parity["random"]["rows"] == 1 + 64  # no other size
    assert ox.session(result.path).get_inputs()[0].shape == ["batch", 1, 8, 8]
    side = json.loads(sidecar_path(result.path).read_text())
    assert "per" not in side["preprocessing"] and len(side["preprocessing"]["mean"]) == 64


class _Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(3, 5, batch_first=True)

    def forward(self, x):  # (B, T, 3) -> (B, 5)
        return self.rnn(x)[0][:, -1]


class _TwoParts:
    """A family that adopts the protocol in its own class: two parts, a dynamic time axis."""

    _export_parts = ("encoder", "decoder")

    def _export_module(self, part=None):
        torch.manual_seed(0)
        if part == "decoder":
            return nn.Linear(5, 3).eval(), torch.randn(2, 5), {"kind": "decoder", "output_names": ["x"]}
        meta = {"kind": "encoder", "dynamic_axes": {1: "time"}, "output_names": ["code"]}
        return _Encoder().eval(), torch.randn(2, 7, 3), meta


def test_protocol_short_form_parts_and_dynamic_sequence_length(tmp_path):
    result = export(_TwoParts(), tmp_path / "enc.onnx", part="encoder", exporter="torchscript")
    assert result.parity["random"]["rows"] == 1 + 64 + 3  # the last 3 rows are longer sequences
    sess = ox.session(result.path)
    assert sess.get_inputs()[0].shape == ["batch", "time", 3]
    assert sess.run(None, {"input": np.zeros((4, 11, 3), np.float32)})[0].shape == (4, 5)
    side = json.loads(sidecar_path(result.path).read_text())
    assert side["part"] == "encoder" and side["kind"] == "encoder" and side["outputs"][0]["name"] == "code"
    assert inference_spec(_TwoParts(), "decoder").output_names == ("x",)
    with pytest.raises(InputError) as err:
        inference_spec(_TwoParts(), "generator")
    assert (
        str(err.value)
        == "--part 'generator' is not an inference path of _TwoParts; expected one of 'encoder', 'decoder'."
    )


def test_a_wrong_inference_module_is_caught_before_writing(tmp_path):
    class Wrong:
        def _export_module(self):
            return ExportSpec(
                module=nn.Identity(),
                example_input=torch.zeros(2, 3),
                reference=lambda X: {"output": X + 1.0},
            )

    with pytest.raises(ParityError) as err:
        export(Wrong(), tmp_path / "w.onnx", exporter="torchscript")
    assert str(err.value) == (
        "the inference module of Wrong disagrees with the estimator: max abs diff 1 (scaled by max(1, |value|): "
        "1) on random inputs exceeds the tolerance 0.0001."
    )
    assert list(tmp_path.iterdir()) == []


def test_onnxruntime_disagreement_fails_and_leaves_no_file(digits, tmp_path, monkeypatch):
    est, X_held = _fitted("mlp-classifier", digits)
    real = ox.run_session
    monkeypatch.setattr(ox, "run_session", lambda s, X: {k: v + 1e-3 for k, v in real(s, X).items()})
    with pytest.raises(ParityError) as err:
        export(est, tmp_path / "m.onnx", X=X_held, exporter="torchscript")
    assert str(err.value).startswith(
        "onnxruntime disagrees with torch: max abs diff 0.001 (scaled by max(1, |value|): 0.001)"
    )
    assert str(err.value).endswith("on given inputs exceeds the tolerance 0.0001.")
    assert list(tmp_path.iterdir()) == []


def test_openvino_compiles_the_onnx_file_with_the_same_parity(digits, tmp_path):
    est, X_held = _fitted("mlp-classifier", digits)
    result = export(est, tmp_path / "m.xml", format="openvino", X=X_held, exporter="torchscript")
    assert result.path.exists() and result.path.with_suffix(".bin").exists() and result.onnx_path.exists()
    assert result.parity["openvino_held_out"]["max_abs_diff"] <= 1e-4
    assert result.parity["openvino_random"]["max_abs_diff"] <= 1e-4
    side = json.loads(sidecar_path(result.path).read_text())
    assert side["format"] == "openvino" and side["onnx_file"] == "m.onnx" and side["openvino_version"]
    assert side["weights_sha256"] is None  # an estimator object, not a run directory


def test_openvino_missing_is_a_clear_error(digits, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(InputError) as err:
        export(object(), tmp_path / "m.xml", format="openvino")
    assert str(err.value) == (
        "--format openvino needs the optional package openvino; install it with pip install 'deepatlas[openvino]'."
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"format": "coreml"}, "--format must be one of onnx, openvino, tflite. Got 'coreml' instead."),
        ({"tolerance": -1.0}, "--tolerance must be a positive float. Got -1.0 instead."),
        ({"opset": 3}, "--opset must be an int in the range [7, {high}]. Got 3 instead."),
        ({"part": "decoder"}, "--part 'decoder' is not an inference path of MLPRegressor; expected none (it has one inference path)."),
    ],
)  # fmt: skip
def test_bad_export_arguments(kwargs, message, digits, tmp_path):
    est, _ = _fitted("mlp-regressor", digits)
    with pytest.raises(InputError) as err:
        export(est, tmp_path / "m.onnx", **kwargs)
    assert str(err.value) == message.format(high=ox.max_opset())


def test_the_package_is_callable(digits, tmp_path):
    import deepatlas.export

    est, X_held = _fitted("mlp-regressor", digits)
    result = deepatlas.export(est, tmp_path / "m.onnx", X=X_held, exporter="torchscript")
    assert (
        result.path.exists()
        and deepatlas.export.onnx.sha256(result.path) == json.loads(result.sidecar.read_text())["sha256"]
    )


def test_models_without_an_inference_path_are_refused(tmp_path):
    from sklearn.linear_model import LogisticRegression

    with pytest.raises(InputError) as err:
        export(LogisticRegression(), tmp_path / "m.onnx")
    assert str(err.value) == (
        "LogisticRegression has no inference path to export: it defines no _export_module() "
        "(see docs/results-deployment.md)."
    )
    with pytest.raises(InputError) as err:
        export(MLPClassifier(), None)
    assert str(err.value) == "out is required when exporting an estimator object (e.g. out='model.onnx')."


def test_cli_export_run_prints_parity_and_writes_sidecar(cli, digits, tmp_path):
    from deepatlas.export.onnx import sha256
    from deepatlas.runs import train_run

    run = tmp_path / "run"
    train_run(Perceptron(epochs=3), digits, run, data_spec="digits")
    proc = cli("export", str(run), "--exporter", "torchscript", "--opset", "17")
    assert proc.returncode == 0, proc.stderr
    assert "digits test split (360 rows): max abs diff" in proc.stdout
    assert "random inputs (65 rows): max abs diff" in proc.stdout
    side = json.loads((run / "model.onnx.json").read_text())
    assert side["model"] == "perceptron" and side["opset"] == 17 and side["parity"]["held_out"]["rows"] == 360
    assert side["classes"] == list(range(10)) and side["decision"] == "argmax"
    assert side["weights_sha256"] == sha256(run / "model.safetensors")  # the weights it came from

    proc = cli("export", str(tmp_path / "missing"))
    assert proc.returncode == 2
    assert (
        proc.stderr.strip() == f"deepatlas export: error: Run directory {str(tmp_path / 'missing')!r} does not exist."
    )


def _sequences(n=160, T=10, seed=0):
    rng = np.random.default_rng(seed)
    X = (rng.normal(size=(n, T, 3)) * 2 + 1).astype(np.float32)
    return X, (X[:, :, 0].sum(1) > 10).astype(int)


def test_recurrent_classifier_exports_with_a_dynamic_time_axis(tmp_path):
    from deepatlas.models.rnn.recurrent import RNNClassifier

    X, y = _sequences()
    est = RNNClassifier(cell="gru", hidden_size=8, epochs=2, seed=0).fit(X, y)
    result = export(est, tmp_path / "gru.onnx", X=X[:40], exporter="torchscript")
    assert result.parity["held_out"]["max_scaled_diff"] <= 1e-4
    assert result.parity["random"]["rows"] == 1 + 64 + 3  # the last 3 are 3 steps longer
    sess = ox.session(result.path)
    assert sess.get_inputs()[0].shape == ["batch", "time", 3]
    X_short = np.ascontiguousarray(X[:4, :6])  # another length than at training and export
    proba = sess.run(["probabilities"], {"input": X_short})[0]
    np.testing.assert_allclose(proba, est.predict_proba(X_short), atol=1e-5)

    ragged = [x[: 5 + i % 5] for i, x in enumerate(X)]  # different lengths: a masked network
    masked = RNNClassifier(cell="gru", hidden_size=4, epochs=1, seed=0).fit(ragged, y)
    with pytest.raises(InputError) as err:
        export(masked, tmp_path / "m.onnx")
    assert str(err.value) == (
        "RNNClassifier was trained on sequences of different lengths (a masked network); "
        "only networks trained on equal-length sequences export."
    )


@pytest.mark.slow
def test_dynamo_fixing_a_dynamic_axis_falls_back_to_torchscript(tmp_path):
    from deepatlas.models.rnn.recurrent import RNNClassifier

    X, y = _sequences()
    est = RNNClassifier(hidden_size=8, epochs=2, seed=0).fit(X, y)
    result = export(est, tmp_path / "rnn.onnx", X=X[:40])
    assert result.exporter == ox.TORCHSCRIPT
    assert result.notes == ["the dynamo exporter fixed axis 1 (time) to 8; used the TorchScript exporter"]
    assert result.parity["random"]["max_scaled_diff"] <= 1e-4

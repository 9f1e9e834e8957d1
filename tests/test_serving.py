"""The model server: each endpoint, each request check, the backends, bad model files, and
schemathesis against the app's own OpenAPI schema (no request may produce a 5xx)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from deepatlas.data import load_dataset
from deepatlas.errors import InputError
from deepatlas.export import export
from deepatlas.models.mlp import MLPClassifier, MLPRegressor
from deepatlas.models.perceptron import Perceptron
from deepatlas.runs import load, train_run
from deepatlas.serving import create_app, format_predictions, load_source


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def run(digits, tmp_path_factory):
    """A small MLP run on digits with its ONNX file (TorchScript exporter: fast to make)."""
    out = tmp_path_factory.mktemp("serve") / "mlp"
    train_run(MLPClassifier(hidden_sizes=(16,), epochs=4, seed=0), digits, out, data_spec="digits")
    export(out, exporter="torchscript")
    return out


@pytest.fixture(scope="module")
def client(run):
    return TestClient(create_app(run, max_batch=8, max_body_bytes=20_000))


def test_health(client):
    r = client.get("/v1/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "model": "mlp", "backend": "onnxruntime"}


def test_metadata(client):
    meta = client.get("/v1/metadata").json()
    assert meta["input"] == {"name": "input", "shape": ["batch", 1, 8, 8], "dtype": "float32"}
    assert meta["classes"] == list(range(10)) and meta["kind"] == "classifier"
    assert meta["limits"] == {
        "max_batch": 8,
        "max_body_bytes": 20_000,
        "max_elements": 262_144,
        "read_timeout_s": 10.0,
        "max_header_bytes": 16_384,
        "max_inferences": 2,
    }
    assert meta["preprocessing_in_graph"] is True and meta["exported_with"].startswith("torch.onnx")


def test_openapi_documents_the_endpoints(client):
    schema = client.get("/openapi.json").json()
    assert {"/v1/predict", "/v1/health", "/v1/metadata"} <= set(schema["paths"])
    assert "413" in schema["paths"]["/v1/predict"]["post"]["responses"]


@pytest.mark.parametrize("flat", [False, True])
def test_predict_matches_the_estimator(client, run, digits, flat):
    est = load(run)
    X = digits.X_test[:8]
    body = X.reshape(8, -1).tolist() if flat else X.tolist()
    r = client.post("/v1/predict", json={"instances": body})
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    assert [p["label"] for p in preds] == est.predict(X).tolist()
    proba = np.array([[p["probabilities"][str(c)] for c in range(10)] for p in preds])
    np.testing.assert_allclose(proba, est.predict_proba(X), atol=1e-5)


def test_torch_backend_answers_like_onnxruntime(client, run, digits):
    torch_client = TestClient(create_app(run, backend="torch"))
    assert torch_client.get("/v1/health").json()["backend"] == "torch"
    body = {"instances": digits.X_test[:5].tolist()}
    a, b = client.post("/v1/predict", json=body).json(), torch_client.post("/v1/predict", json=body).json()
    assert [p["label"] for p in a["predictions"]] == [p["label"] for p in b["predictions"]]
    for pa, pb in zip(a["predictions"], b["predictions"]):
        np.testing.assert_allclose(list(pa["probabilities"].values()), list(pb["probabilities"].values()), atol=1e-5)


def _row(value=0.0):
    return [value] * 64


@pytest.mark.parametrize(
    "body, status, fragment",
    [
        ({"instances": [_row()[:63]]}, 422, "List should have at least 64 items after validation, not 63"),
        ({"instances": [["1"] * 64]}, 422, "Input should be a valid number"),
        ({"instances": [[True] * 64]}, 422, "Input should be a valid number"),
        ({"instances": [_row(1e39)]}, 422, "less than or equal to"),
        ({"instances": []}, 422, "List should have at least 1 item"),
        ({"instances": [_row()] * 9}, 422, "List should have at most 8 items"),
        ({"instances": [_row()], "path": "/etc/passwd"}, 422, "Extra inputs are not permitted"),
        ({"rows": [_row()]}, 422, "Field required"),
        ({"instances": [_row(3e38)]}, 422, "The model's outputs are not finite for these instances"),
    ],
)  # fmt: skip
def test_bad_requests_get_a_4xx_with_a_message(client, body, status, fragment):
    r = client.post("/v1/predict", json=body)
    assert r.status_code == status
    assert fragment in r.text
    assert "input" not in r.json()["detail"][0] if isinstance(r.json()["detail"], list) else True


def test_non_finite_and_malformed_json_are_refused(client):
    nan = "[" + ",".join(["NaN"] + ["0"] * 63) + "]"
    r = client.post("/v1/predict", content='{"instances": [' + nan + "]}", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "Input should be a finite number" in r.text
    r = client.post("/v1/predict", content="{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "json_invalid" in r.text
    assert client.get("/v1/predict").status_code == 405
    assert client.get("/v1/files/etc/passwd").status_code == 404


def test_body_size_limit(client):
    big = {"instances": [_row(0.123456789)] * 40}  # ~33 kB: refused before the batch is even read
    r = client.post("/v1/predict", json=big)
    assert r.status_code == 413
    assert r.json() == {"detail": "The request body is larger than the limit of 20000 bytes (--max-body-bytes)."}

    def chunks():  # no Content-Length: the limit still holds while streaming
        yield b'{"instances": ['
        for _ in range(400):
            yield b"[" + b",".join([b"0.5"] * 64) + b"],"

    r = client.post("/v1/predict", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["detail"].startswith("The request body is larger than the limit")


def test_perceptron_and_regressor_predictions(digits, tmp_path):
    p = Perceptron(epochs=2).fit(digits.X_train.reshape(len(digits.X_train), -1), digits.y_train % 2)
    export(p, tmp_path / "p.onnx", exporter="torchscript")
    c = TestClient(create_app(tmp_path / "p.onnx"))
    X = digits.X_test[:6].reshape(6, -1)
    preds = c.post("/v1/predict", json={"instances": X.tolist()}).json()["predictions"]
    assert [q["label"] for q in preds] == p.predict(X).tolist()
    np.testing.assert_allclose([q["score"] for q in preds], p.decision_function(X), rtol=1e-5, atol=1e-4)

    rng = np.random.default_rng(0)
    Xr = rng.normal(size=(120, 3)).astype(np.float32)
    reg = MLPRegressor(hidden_sizes=(8,), epochs=3).fit(Xr, Xr.sum(1) * 50 + 7)
    export(reg, tmp_path / "r.onnx", exporter="torchscript")
    c = TestClient(create_app(tmp_path / "r.onnx"))
    preds = c.post("/v1/predict", json={"instances": Xr[:4].tolist()}).json()["predictions"]
    np.testing.assert_allclose([q["value"] for q in preds], reg.predict(Xr[:4]), rtol=1e-5)


def test_onnx_without_sidecar_serves_raw_outputs(run, digits, tmp_path):
    shutil.copy(run / "model.onnx", tmp_path / "bare.onnx")
    c = TestClient(create_app(tmp_path / "bare.onnx"))
    assert c.get("/v1/metadata").json()["kind"] == "unknown"
    pred = c.post("/v1/predict", json={"instances": digits.X_test[:1].tolist()}).json()["predictions"][0]
    assert set(pred) == {"logits", "probabilities"} and abs(sum(pred["probabilities"]) - 1) < 1e-5


def test_format_predictions_without_labels():
    info = {"kind": "classifier", "classes": None}
    out = format_predictions(info, {"probabilities": np.array([[0.2, 0.8]])}, 1)
    assert out == [{"label": 1, "probabilities": {"0": 0.2, "1": 0.8}}]


def test_corrupt_truncated_and_replaced_onnx_files(run, tmp_path, cli):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"this is not a protobuf" * 10)
    with pytest.raises(InputError) as err:
        load_source(garbage)
    assert str(err.value).startswith(f"ONNX file {str(garbage)!r} fails onnx.checker:")

    data = (run / "model.onnx").read_bytes()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as err:
        load_source(truncated)
    assert str(err.value).startswith(f"ONNX file {str(truncated)!r} fails onnx.checker:")

    shutil.copy(run / "model.onnx.json", tmp_path / "truncated.onnx.json")  # the sidecar knows the checksum
    with pytest.raises(InputError) as err:
        load_source(truncated)
    assert str(err.value) == (
        f"ONNX file {str(truncated)!r} does not match the checksum in its sidecar (truncated or replaced?); "
        "export it again with deepatlas export."
    )

    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    proc = cli("serve", str(empty))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"deepatlas serve: error: ONNX file {str(empty)!r} is empty."


def _perturb_weights(run_dir):
    """Rewrite the run's model.safetensors with every float tensor shifted (the weights changed)."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    path = run_dir / "model.safetensors"
    with safe_open(str(path), "np") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    save_file({k: v + 0.25 if v.dtype.kind == "f" else v for k, v in tensors.items()}, str(path), metadata=meta)


def test_a_stale_export_is_refused_until_exported_again(run, digits, tmp_path, cli):
    """Exports record the SHA-256 of the weights they came from; serve refuses a file of other
    weights (or one whose sidecar records none); predict reads the weights themselves."""
    from deepatlas.export.onnx import sha256
    from deepatlas.predict import predict_file

    stale = tmp_path / "run"
    shutil.copytree(run, stale)
    onnx_file, side_file = stale / "model.onnx", stale / "model.onnx.json"
    side = json.loads(side_file.read_text())
    old = side["weights_sha256"]
    assert old == sha256(stale / "model.safetensors")  # a fresh export passes
    assert load_source(stale).source == str(onnx_file)
    assert TestClient(create_app(stale)).get("/v1/metadata").json()["weights_sha256"] == old

    _perturb_weights(stale)
    new = sha256(stale / "model.safetensors")
    stale_msg = (
        f"ONNX file {str(onnx_file)!r} is stale: it was exported from weights with SHA-256 {old[:12]}, but "
        f"{str(stale / 'model.safetensors')!r} now has {new[:12]}; export it again with: deepatlas export {stale}"
    )
    for source in (stale, onnx_file):  # the run, or its file named directly
        with pytest.raises(InputError) as err:
            load_source(source)
        assert str(err.value) == stale_msg
    proc = cli("serve", str(stale))
    assert (proc.returncode, proc.stderr.strip()) == (2, f"deepatlas serve: error: {stale_msg}")
    assert TestClient(create_app(stale, backend="torch")).get("/v1/health").status_code == 200

    # predict uses the run's torch weights, never the exported file: it follows the new weights.
    np.savez(tmp_path / "x.npz", X=digits.X_test[:20])
    expected = load(stale).predict(digits.X_test[:20])
    rows = predict_file(stale, tmp_path / "x.npz").splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == expected.tolist()

    del side["weights_sha256"]  # a sidecar of an older export, which records no weights hash
    side_file.write_text(json.dumps(side))
    with pytest.raises(InputError) as err:
        load_source(stale)
    assert str(err.value) == (
        f"ONNX file {str(onnx_file)!r} is stale: its sidecar records no weights_sha256 (expected the SHA-256 of "
        f"{str(stale / 'model.safetensors')!r}, {new[:12]}); export it again with: deepatlas export {stale}"
    )
    side_file.unlink()
    with pytest.raises(InputError) as err:
        load_source(stale)
    assert str(err.value) == (
        f"ONNX file {str(onnx_file)!r} has no sidecar {str(side_file)!r}, so it cannot be tied to the run's weights "
        f"{str(stale / 'model.safetensors')!r}; export it again with: deepatlas export {stale}"
    )

    export(stale, exporter="torchscript")  # the fix: the new file serves the new weights
    c = TestClient(create_app(stale))
    preds = c.post("/v1/predict", json={"instances": digits.X_test[:20].tolist()}).json()["predictions"]
    assert [p["label"] for p in preds] == expected.tolist()
    assert json.loads(side_file.read_text())["weights_sha256"] == new


def test_an_openvino_export_is_not_served_and_its_onnx_twin_is_checked(run, tmp_path):
    """serve runs no OpenVINO: the .xml is one line pointing at the ONNX file the same export
    wrote, and that file (and the run) is refused when the weights changed since (issue #29)."""
    from deepatlas.export.onnx import sha256

    stale = tmp_path / "run"
    shutil.copytree(run, stale)
    for name in ("model.onnx", "model.onnx.json"):
        (stale / name).unlink()
    export(stale, format="openvino", exporter="torchscript")
    xml, onnx_file = stale / "model.xml", stale / "model.onnx"
    recorded = {json.loads((stale / f"{n}.json").read_text())["weights_sha256"] for n in ("model.xml", "model.onnx")}
    assert recorded == {sha256(stale / "model.safetensors")}
    assert load_source(stale).source == str(onnx_file)
    xml_msg = (
        f"{str(xml)!r} is an OpenVINO file, which serve does not run; serve its ONNX file {str(onnx_file)!r} "
        f"(written by the same export) or the run directory {str(stale)!r}, each checked against the run's weights."
    )
    with pytest.raises(InputError) as err:
        load_source(xml)
    assert str(err.value) == xml_msg
    _perturb_weights(stale)
    for source in (stale, onnx_file):
        with pytest.raises(InputError) as err:
            load_source(source)
        assert str(err.value).startswith(f"ONNX file {str(onnx_file)!r} is stale: it was exported from weights")


def test_serve_arguments(run, tmp_path):
    from deepatlas.cli import build_parser

    args = build_parser().parse_args(["serve", str(run)])
    assert (args.host, args.port, args.backend) == ("127.0.0.1", 8000, "onnxruntime")
    with pytest.raises(InputError) as err:
        load_source(run / "model.onnx", backend="torch")
    assert str(err.value) == "--backend torch needs a run directory; an ONNX file can only be served with onnxruntime."
    with pytest.raises(InputError) as err:
        load_source(tmp_path / "nothing")
    assert str(err.value) == f"{str(tmp_path / 'nothing')!r} does not exist; expected a run directory or a .onnx file."
    with pytest.raises(InputError) as err:
        create_app(run, max_batch=0)
    assert str(err.value) == "--max-batch must be a positive int. Got 0 instead."


# ---- schemathesis: requests generated from the app's own OpenAPI schema --------------------------
# (Driven through hypothesis directly: schemathesis' pytest plugin does not yet run under pytest 9.)
@pytest.mark.parametrize("mode", list(schemathesis.GenerationMode), ids=lambda m: m.value)
def test_no_request_produces_a_server_error(run, mode):
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(run, max_batch=8))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} == {"/v1/predict", "/v1/health", "/v1/metadata"}
    statuses = []
    for op in operations:
        if op.method.upper() == "GET" and mode == schemathesis.GenerationMode.NEGATIVE:
            continue  # no parameters, so nothing to make invalid

        @given(case=op.as_strategy(generation_mode=mode))
        @settings(
            max_examples=25 if op.method.upper() == "POST" else 3,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
        )
        def check(case):
            response = case.call_and_validate(checks=[not_a_server_error])
            statuses.append(response.status_code)

        check()
    assert statuses and max(statuses) < 500
    if mode == schemathesis.GenerationMode.NEGATIVE:
        assert any(400 <= code < 500 for code in statuses)


def test_a_non_json_content_type_is_refused(client):
    body = json.dumps({"instances": [_row()]})
    r = client.post("/v1/predict", content=body, headers={"content-type": "text/plain"})
    assert r.status_code == 422


def test_cli_serve_runs_uvicorn_on_loopback(run, tmp_path):
    """The real command: uvicorn on 127.0.0.1 at a free port, answered, then stopped."""
    import os
    import socket
    import subprocess
    import sys
    import time

    import httpx

    onnx_file = tmp_path / "m.onnx"
    shutil.copy(run / "model.onnx", onnx_file)
    shutil.copy(run / "model.onnx.json", tmp_path / "m.onnx.json")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "deepatlas", "serve", str(onnx_file), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    try:
        assert (
            proc.stdout.readline().strip()
            == f"serving {onnx_file} with onnxruntime on http://127.0.0.1:{port}/v1/predict"
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=2)
                break
            except httpx.HTTPError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
                time.sleep(0.1)
        assert r.json()["status"] == "ok"
        listening = open("/proc/net/tcp").read()
        assert f"0100007F:{port:04X}" in listening  # bound to 127.0.0.1, not 0.0.0.0
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_a_run_without_an_onnx_file_is_exported_at_start(digits, tmp_path):
    out = tmp_path / "run"
    train_run(MLPClassifier(hidden_sizes=(8,), epochs=2, seed=0), digits, out, data_spec="digits")
    loaded = load_source(out)
    assert loaded.notes[0] == f"exported {out} to a temporary ONNX file"
    c = TestClient(create_app(loaded=loaded))
    preds = c.post("/v1/predict", json={"instances": digits.X_test[:3].tolist()}).json()["predictions"]
    assert [p["label"] for p in preds] == load(out).predict(digits.X_test[:3]).tolist()


def test_a_cnn_file_takes_any_size_nested_and_its_training_size_flattened(digits, tmp_path):
    """A CNN's ONNX graph has dynamic height and width: nested images of any size are served, and a
    flattened instance is folded back at the training size the sidecar records (8x8 here)."""
    from deepatlas.models.cnn import CNNClassifier

    out = tmp_path / "cnn"
    train_run(CNNClassifier(channels=(8,), epochs=1, seed=0), digits, out, data_spec="digits")
    export(out, exporter="torchscript")
    est, c = load(out), TestClient(create_app(out, max_batch=8))
    X = digits.X_test[:4]
    assert X.shape[1:] == (1, 8, 8)
    nested = c.post("/v1/predict", json={"instances": X.tolist()})
    flat = c.post("/v1/predict", json={"instances": X.reshape(4, -1).tolist()})
    assert nested.status_code == flat.status_code == 200, (nested.text, flat.text)
    assert nested.json() == flat.json()
    assert [p["label"] for p in flat.json()["predictions"]] == est.predict(X).tolist()
    big = np.pad(X, ((0, 0), (0, 0), (2, 2), (2, 2)))  # 12x12
    r = c.post("/v1/predict", json={"instances": big.tolist()})
    assert r.status_code == 200, r.text
    assert [p["label"] for p in r.json()["predictions"]] == est.predict(big).tolist()
    assert c.post("/v1/predict", json={"instances": big.reshape(4, -1).tolist()}).status_code == 422

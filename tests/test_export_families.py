"""Export of the families beyond the spine (each family's deepatlas/models/<family>/export.py): autoencoder and VAE
encoders and decoders, GAN generators, RBM/DBN hidden probabilities, the DBN classifier, LISTA,
sequence taggers, CTC log-probabilities and RL greedy policies. Each goes through the full
pipeline (reference vs the estimator's public API, onnx.checker, onnxruntime vs torch on held-out
and random inputs) and is then checked once more here against the estimator, in onnxruntime."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from deepatlas.data import load_dataset
from deepatlas.errors import InputError
from deepatlas.export import export, inference_paths
from deepatlas.export import onnx as ox

TOL = 1e-4


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: see conftest.py


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def ring():
    ds = load_dataset("ring8")
    return ds.X_train[:256], ds.y_train[:256]


def _run(path, X):
    sess = ox.session(path)
    return ox.run_session(sess, np.ascontiguousarray(X, dtype=np.float32)), sess


def _check_parity(result, keys=("reference", "held_out", "random")):
    for key in keys:
        assert result.parity[key]["max_scaled_diff"] <= TOL, (key, result.parity[key])
    side = json.loads(result.sidecar.read_text())
    assert side["input"]["shape"][0] == "batch" and side["parity"]["tolerance"] == TOL
    return side


# ---- autoencoders and the VAE ------------------------------------------------------------------
def _autoencoder(name, X):
    from deepatlas.models.autoencoder import autoencoder as ae
    from deepatlas.models.autoencoder.vae import VAE

    kw = {"code_size": 4, "epochs": 2, "seed": 0}
    if name == "ConvAutoencoder":
        kw["channels"] = (4,)
    if name == "Autoencoder":
        kw["standardize"] = True  # the saved mean and scale go inside the encoder's graph
    cls = VAE if name == "VAE" else getattr(ae, name)
    return cls(**kw).fit(X)


@pytest.mark.parametrize("name", ["Autoencoder", "DenoisingAutoencoder", "SparseAutoencoder", "ConvAutoencoder", "VAE"])
def test_autoencoders_export_encoder_and_decoder(name, digits, tmp_path):
    est = _autoencoder(name, digits.X_train)
    X = digits.X_test[:50]
    enc = export(est, tmp_path / "enc.onnx", part="encoder", X=X, exporter="torchscript")
    side = _check_parity(enc)
    assert side["kind"] == "encoder" and side["part"] == "encoder" and side["input"]["shape"] == ["batch", 1, 8, 8]
    out, _ = _run(enc.path, X[:3])
    np.testing.assert_allclose(out["code"], est.transform(X[:3]), atol=1e-5)

    Z = est.transform(X)
    dec = export(est, tmp_path / "dec.onnx", part="decoder", X=Z, exporter="torchscript")
    side = _check_parity(dec)
    assert (
        side["kind"] == "decoder"
        and side["input"]["shape"] == ["batch", 4]
        and side["outputs"][0]["name"] == ("reconstruction")
    )
    out, _ = _run(dec.path, Z[:5])
    np.testing.assert_allclose(out["reconstruction"], est.inverse_transform(Z[:5]), atol=1e-5)
    if name == "VAE":  # the decoder is the generator: sample(n, seed) decodes z ~ N(0, I) drawn from seed
        z = torch.randn(6, 4, generator=torch.Generator().manual_seed(3)).numpy()
        out, _ = _run(dec.path, z)
        np.testing.assert_allclose(out["reconstruction"], est.sample(6, seed=3), atol=1e-5)
        assert side["metadata"]["prior"] == "standard normal"


def test_the_parts_of_an_autoencoder_are_checked(digits, tmp_path):
    est = _autoencoder("DenoisingAutoencoder", digits.X_train)
    with pytest.raises(InputError) as err:
        export(est, tmp_path / "m.onnx", part="generator")
    assert str(err.value) == (
        "--part 'generator' is not an inference path of DenoisingAutoencoder; expected one of 'encoder', 'decoder'."
    )
    # Without a part: the first one (the encoder), recorded as such.
    result = export(est, tmp_path / "m.onnx", X=digits.X_test[:20], exporter="torchscript")
    assert json.loads(result.sidecar.read_text())["part"] == "encoder"


# ---- GAN generators ----------------------------------------------------------------------------
def _gan(name, ring, digits):
    from deepatlas.models.gan import gan
    from deepatlas.models.gan import variants as gan_variants

    cls = getattr(gan, name, None) or getattr(gan_variants, name)
    if name == "DCGAN":
        return cls(epochs=1, channels=(4, 8), latent_dim=8, seed=0).fit(digits.X_train[:128])
    kw = {"epochs": 1, "hidden_sizes": (16,), "latent_dim": 4, "seed": 0}
    if name == "CGAN":
        return cls(**kw).fit(*ring)
    if name == "InfoGAN":
        kw.update(n_categories=3, n_continuous=1)
    return cls(**kw).fit(ring[0])


@pytest.mark.parametrize("name", ["GAN", "WGAN", "WGANGP", "DCGAN", "CGAN", "InfoGAN"])
def test_gan_generators_export(name, ring, digits, tmp_path):
    est = _gan(name, ring, digits)
    result = export(est, tmp_path / "g.onnx", exporter="torchscript")
    side = _check_parity(result)
    # the held-out check ran on the codes sample() draws, against sample() itself
    assert result.parity["held_out"]["label"] == "the codes sample(256, seed=0) draws"
    assert side["kind"] == "generator" and side["input"]["name"] == "z"
    width = sum(block["size"] for block in side["metadata"]["input_layout"])
    assert side["input"]["shape"] == ["batch", width]
    if name == "CGAN":  # z, then the label one-hot: the file draws the class asked for
        assert side["metadata"]["input_layout"][1] == {"name": "label_onehot", "size": 8, "classes": list(range(8))}
        z = torch.randn(5, 4, generator=torch.Generator().manual_seed(7)).numpy()
        codes = np.concatenate([z, np.eye(8, dtype=np.float32)[[2] * 5]], axis=1)
        out, _ = _run(result.path, codes)
        np.testing.assert_allclose(out["samples"], est.sample(5, y=2, seed=7), atol=1e-5)
    if name == "InfoGAN":
        assert [b["name"] for b in side["metadata"]["input_layout"]] == ["z", "category_onehot", "continuous"]


# ---- RBMs, DBNs ----------------------------------------------------------------------------------
def _gaussian_data(n=300):
    return np.random.default_rng(0).normal(500.0, 80.0, size=(n, 3)).astype(np.float32)


def _rbm_family(name, digits):
    from deepatlas.models.rbm.conv_rbm import ConvRBM
    from deepatlas.models.rbm.dbn import DBN, ConvDBN, DBNClassifier
    from deepatlas.models.rbm.rbm import RBM, GaussianRBM

    X = digits.X_train
    if name == "RBM":
        return RBM(n_hidden=16, epochs=1).fit(X), digits.X_test
    if name == "GaussianRBM":
        G = _gaussian_data()
        return GaussianRBM(n_hidden=8, epochs=2).fit(G[:200]), G[200:]
    if name == "ConvRBM":
        return ConvRBM(n_filters=4, epochs=1, pool_size=2).fit(X), digits.X_test
    if name == "DBN":
        return DBN(hidden_sizes=(16, 8), epochs=1).fit(X), digits.X_test
    if name == "DBN-gaussian":
        G = _gaussian_data()
        return DBN(hidden_sizes=(8, 4), epochs=1, visible="gaussian").fit(G[:200]), G[200:]
    if name == "ConvDBN":
        return ConvDBN(channels=(4, 4), kernel_size=2, pool_size=2, epochs=1).fit(X), digits.X_test
    return DBNClassifier(hidden_sizes=(16,), pretrain_epochs=1, epochs=2).fit(X, digits.y_train), digits.X_test


@pytest.mark.parametrize("name", ["RBM", "GaussianRBM", "ConvRBM", "DBN", "DBN-gaussian", "ConvDBN", "DBNClassifier"])
def test_rbm_and_dbn_export(name, digits, tmp_path):
    est, X = _rbm_family(name, digits)
    result = export(est, tmp_path / "m.onnx", X=X, exporter="torchscript")
    side = _check_parity(result)
    out, _ = _run(result.path, X[:4])
    if name == "DBNClassifier":
        assert side["kind"] == "classifier" and side["classes"] == list(range(10))
        np.testing.assert_allclose(out["probabilities"], est.predict_proba(X[:4]), atol=1e-5)
    else:
        assert side["kind"] == "transform"
        np.testing.assert_allclose(out["hidden"], est.transform(X[:4]), atol=1e-5)


def test_lista_exports_its_unrolled_iterations(digits, tmp_path):
    from deepatlas.models.sparse_coding.coders import LISTA

    est = LISTA(dictionary="dct", n_atoms=32, n_layers=4, epochs=2, max_iter=100).fit(digits.X_train)
    result = export(est, tmp_path / "lista.onnx", X=digits.X_test, exporter="torchscript")
    side = _check_parity(result)
    assert side["metadata"] == {"n_atoms": 32, "n_layers": 4} and side["outputs"][0]["name"] == "code"
    out, _ = _run(result.path, digits.X_test[:4])
    np.testing.assert_allclose(out["code"], est.transform(digits.X_test[:4]), atol=1e-5)


# ---- sequence taggers and CTC --------------------------------------------------------------------
def _tagging(n=120, T=10, seed=0):
    rng = np.random.default_rng(seed)
    X = (rng.normal(size=(n, T, 3)) * 2 + 1).astype(np.float32)
    return X, (np.cumsum(X[:, :, 0], 1) > 5).astype(int)


def test_taggers_export_per_step_outputs_with_a_dynamic_time_axis(tmp_path):
    from deepatlas.models.rnn.recurrent import SequenceTagger

    X, y = _tagging()
    est = SequenceTagger(cell="gru", hidden_size=8, epochs=2, seed=0).fit(X[:100], y[:100])
    result = export(est, tmp_path / "tagger.onnx", X=X[100:], exporter="torchscript")
    side = _check_parity(result)
    assert side["input"]["shape"] == ["batch", "time", 3] and side["kind"] == "tagger"
    assert result.parity["random"]["rows"] == 1 + 64 + 3  # the last 3 are 3 steps longer
    short = np.ascontiguousarray(X[100:104, :6])  # another length than at training
    out, _ = _run(result.path, short)
    assert out["probabilities"].shape == (4, 6, 2)
    np.testing.assert_allclose(out["probabilities"], est.predict_proba(short), atol=1e-5)

    ragged = [x[: 5 + i % 5] for i, x in enumerate(X[:40])]
    masked = SequenceTagger(cell="gru", hidden_size=4, epochs=1, seed=0).fit(
        ragged, [t[: len(x)] for x, t in zip(ragged, y)]
    )
    with pytest.raises(InputError) as err:
        export(masked, tmp_path / "m.onnx")
    assert str(err.value) == (
        "SequenceTagger was trained on sequences of different lengths (a masked network); "
        "only networks trained on equal-length sequences export."
    )


def test_ctc_recognizer_exports_per_frame_log_probabilities(tmp_path):
    from deepatlas.models.rnn.ctc import CTCRecognizer

    ds = load_dataset("digit-strings:n=120")
    est = CTCRecognizer(hidden_size=8, epochs=1, seed=0).fit(ds.X_train, ds.y_train)
    X = ds.X_test[:20]
    result = export(est, tmp_path / "ctc.onnx", X=X, exporter="torchscript")
    side = _check_parity(result)
    assert side["kind"] == "sequence" and side["metadata"]["blank"] == 0
    assert side["metadata"]["alphabet"] == est.alphabet_ and side["input"]["shape"][:2] == ["batch", "time"]
    out, _ = _run(result.path, X[:3])
    np.testing.assert_allclose(out["log_probs"], est.predict_log_proba(X[:3]), atol=1e-5)


def test_the_character_language_model_exports_next_character_log_probabilities(tmp_path):
    import math

    from deepatlas.data.sequences import pydoc_corpus
    from deepatlas.models.rnn.charlm import CharLM, encode

    text = pydoc_corpus()[:6000]
    lm = CharLM(hidden_size=16, embedding_size=8, seq_len=32, epochs=1, seed=0).fit(text[:5000])
    result = export(lm, tmp_path / "lm.onnx", exporter="torchscript")
    side = _check_parity(result, keys=("reference", "random"))
    assert side["input"] == {"name": "ids", "shape": ["batch", "time"], "dtype": "int64"}
    assert side["kind"] == "language_model" and side["metadata"]["vocabulary"][2:] == lm.vocabulary_
    # A short text is one window from a zero state: the file's log-probabilities give bits_per_char.
    ids = encode(text[5000:5060], lm._index())
    sess = ox.session(result.path)
    log_probs = ox.run_session(sess, ids[None, :-1])["log_probs"][0]  # (59, V)
    bpc = -log_probs[np.arange(len(ids) - 1), ids[1:]].mean() / math.log(2)
    assert bpc == pytest.approx(lm.bits_per_char(text[5000:5060]), abs=1e-5)


def _reviews(n=200, seed=0):
    rng = np.random.default_rng(seed)
    words = ["good", "great", "fine", "bad", "awful", "poor", "the", "movie", "was", "very"]
    docs = [" ".join(rng.choice(words, rng.integers(1, 8))) for _ in range(n)]
    score = [sum((w in words[:3]) - (w in words[3:6]) for w in d.split()) for d in docs]
    return docs, (np.array(score) >= 0).astype(int)


@pytest.mark.parametrize(
    "cell, bidirectional, layers", [("gru", True, 1), ("lstm", False, 2), ("peephole-lstm", True, 1)]
)
def test_the_text_classifier_exports_its_packed_network_as_static_ops(cell, bidirectional, layers, tmp_path):
    from deepatlas.models.rnn.charlm import TextClassifier

    docs, y = _reviews()
    est = TextClassifier(
        cell=cell, bidirectional=bidirectional, num_layers=layers, hidden_size=8, embedding_size=4, epochs=2
    ).fit(docs[:150], y[:150])
    ids = est._encode_docs(docs[150:])  # what a client sends: character ids, 0-padded
    result = export(est, tmp_path / "text.onnx", X=ids, exporter="torchscript")
    side = _check_parity(result)
    assert side["input"] == {"name": "ids", "shape": ["batch", est.length_], "dtype": "int64"}
    assert side["metadata"]["vocabulary"][2:] == est.vocabulary_ and side["classes"] == [0, 1]
    out = ox.run_session(ox.session(result.path), ids[:6])
    np.testing.assert_allclose(out["probabilities"], est.predict_proba(docs[150:156]), atol=1e-5)


# ---- RL greedy policies ------------------------------------------------------------------------
def _agent(name):
    from deepatlas.rl import A2C, DQN, PPO, REINFORCE

    if name == "DQN":
        return DQN("CartPole-v1", hidden_sizes=(16,), learning_starts=50, seed=0).learn(200)
    if name == "PPO-box":
        return PPO("Pendulum-v1", hidden_sizes=(16,), n_steps=64, seed=0).learn(128)
    cls = {"PPO": PPO, "A2C": A2C, "REINFORCE": REINFORCE}[name]
    return cls("CartPole-v1", hidden_sizes=(16,), seed=0).learn(64 if name != "REINFORCE" else 200)


@pytest.mark.parametrize("name", ["DQN", "PPO", "PPO-box", "A2C", "REINFORCE"])
def test_rl_greedy_policies_export(name, tmp_path):
    agent = _agent(name)
    result = export(agent, tmp_path / "policy.onnx", exporter="torchscript")
    side = _check_parity(result)
    env = "Pendulum-v1" if name == "PPO-box" else "CartPole-v1"
    assert result.parity["held_out"]["label"] == f"{env} observations from greedy rollouts"
    assert side["kind"] == "policy" and side["input"]["name"] == "observation"
    obs = np.random.default_rng(1).normal(size=(8, *agent.obs_shape_)).astype(np.float32) * 0.5
    out, _ = _run(result.path, obs)
    expected = agent.predict(obs, deterministic=True)
    if name == "PPO-box":
        assert out["action"].dtype == np.float32 and out["action"].shape == (8, 1)
        np.testing.assert_allclose(out["action"], expected, atol=1e-5)
    else:
        assert out["action"].dtype == np.int64 and out["action"].tolist() == expected.tolist()
        assert {o["name"] for o in side["outputs"]} == {"action", "q_values" if name == "DQN" else "logits"}


def test_a_policy_whose_environment_cannot_be_made_exports_on_random_inputs(tmp_path, monkeypatch):
    import deepatlas.rl.envs

    agent = _agent("DQN")

    def no_env(*args, **kwargs):
        raise RuntimeError("no such environment here")

    monkeypatch.setattr(deepatlas.rl.envs, "make_env", no_env)
    result = export(agent, tmp_path / "policy.onnx", exporter="torchscript")
    side = _check_parity(result, keys=("reference", "random"))
    assert "held_out" not in result.parity
    assert side["metadata"]["rollouts"] == "none (RuntimeError: no such environment here); random inputs only"


# ---- run directories, the CLI, the server, OpenVINO ------------------------------------------------
@pytest.fixture(scope="module")
def ae_run(digits, tmp_path_factory):
    from deepatlas.runs import save_model

    run = tmp_path_factory.mktemp("ae") / "ae-run"
    est = _autoencoder("Autoencoder", digits.X_train)
    save_model(est, run, extra_config={"data": "digits", "seed": 0})
    return run, est


@pytest.fixture(scope="module")
def rl_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("rl") / "dqn-run"
    _agent("DQN").save(run)
    return run


def test_cli_exports_an_unsupervised_run_and_an_rl_run(cli, ae_run, rl_run):
    run, _ = ae_run
    proc = cli("export", str(run), "--part", "decoder", "--exporter", "torchscript")
    assert proc.returncode == 0, proc.stderr
    assert "onnxruntime vs torch, digits test split, encoded (360 rows): max abs diff" in proc.stdout
    side = json.loads((run / "model-decoder.onnx.json").read_text())
    assert side["model"] == "ae" and side["part"] == "decoder" and side["kind"] == "decoder"

    proc = cli("export", str(rl_run), "--exporter", "torchscript")
    assert proc.returncode == 0, proc.stderr
    assert "CartPole-v1 observations from greedy rollouts (512 rows): max abs diff" in proc.stdout
    side = json.loads((rl_run / "model.onnx.json").read_text())
    assert side["model"] == "dqn" and side["task"] == "rl" and side["kind"] == "policy"


def test_the_server_answers_an_encoders_code_arrays(ae_run, digits):
    from fastapi.testclient import TestClient

    from deepatlas.serving import create_app

    run, est = ae_run
    export(run, exporter="torchscript")  # the encoder, the default part, as RUN/model.onnx
    client = TestClient(create_app(run))
    meta = client.get("/v1/metadata").json()
    assert meta["kind"] == "encoder" and meta["outputs"][0]["name"] == "code"
    X = digits.X_test[:3]
    r = client.post("/v1/predict", json={"instances": X.tolist()})
    assert r.status_code == 200
    codes = np.array([p["code"] for p in r.json()["predictions"]])
    np.testing.assert_allclose(codes, est.transform(X), atol=1e-5)
    assert client.post("/v1/predict", json={"instances": [[0.0] * 5]}).status_code == 422


def test_the_server_serves_a_chosen_part(ae_run, digits, tmp_path):
    from fastapi.testclient import TestClient

    from deepatlas.errors import InputError
    from deepatlas.serving import create_app

    run, est = ae_run
    Z = est.transform(digits.X_test[:3])
    for backend in ("onnxruntime", "torch"):  # onnxruntime exports the part to a temporary file
        client = TestClient(create_app(run, backend=backend, part="decoder"))
        assert client.get("/v1/metadata").json()["kind"] == "decoder"
        r = client.post("/v1/predict", json={"instances": Z.tolist()})
        assert r.status_code == 200
        (name,) = r.json()["predictions"][0]
        out = np.array([p[name] for p in r.json()["predictions"]]).reshape(3, -1)
        np.testing.assert_allclose(out, est.inverse_transform(Z).reshape(3, -1), atol=1e-4)
    onnx_file = tmp_path / "x.onnx"
    onnx_file.write_bytes(b"x")
    with pytest.raises(InputError) as err:
        create_app(onnx_file, part="decoder")
    assert str(err.value) == (
        f"--part applies to a run directory; {str(onnx_file)!r} is an ONNX file, which holds one part."
    )


def test_the_server_answers_a_policys_actions(rl_run):
    from fastapi.testclient import TestClient

    from deepatlas.runs import load
    from deepatlas.serving import create_app

    agent = load(rl_run)
    client = TestClient(create_app(rl_run, backend="torch"))
    obs = np.random.default_rng(2).normal(size=(4, 4)).astype(np.float32) * 0.3
    r = client.post("/v1/predict", json={"instances": obs.tolist()})
    assert r.status_code == 200
    assert [p["action"] for p in r.json()["predictions"]] == agent.predict(obs).tolist()


def test_openvino_compiles_a_decoder_with_the_same_parity(ae_run, digits, tmp_path):
    _, est = ae_run
    Z = est.transform(digits.X_test[:64])
    result = export(est, tmp_path / "dec.xml", format="openvino", part="decoder", X=Z, exporter="torchscript")
    assert result.path.exists() and result.path.with_suffix(".bin").exists()
    for key in ("openvino_held_out", "openvino_random"):
        assert result.parity[key]["max_scaled_diff"] <= TOL


def test_inference_paths_lists_the_families():
    paths = inference_paths()
    for key in (
        "ae/transform (Autoencoder)",
        "dae/transform (DenoisingAutoencoder)",
        "sparse-ae/transform (SparseAutoencoder)",
        "conv-ae/transform (ConvAutoencoder)",
        "vae/generative (VAE)",
        "gan/generative (GAN)",
        "wgan/generative (WGAN)",
        "wgan-gp/generative (WGANGP)",
        "dcgan/generative (DCGAN)",
        "cgan/generative (CGAN)",
        "infogan/generative (InfoGAN)",
        "rbm/generative (RBM)",
        "gaussian-rbm/generative (GaussianRBM)",
        "conv-rbm/generative (ConvRBM)",
        "dbn/generative (DBN)",
        "dbn/classification (DBNClassifier)",
        "conv-dbn/generative (ConvDBN)",
        "lista/transform (LISTA)",
        "rnn/tagging (SequenceTagger)",
        "gru/tagging (SequenceTagger)",
        "lstm/tagging (SequenceTagger)",
        "bilstm/tagging (SequenceTagger)",
        "peephole-lstm/tagging (SequenceTagger)",
        "lstm-ctc/sequence (CTCRecognizer)",
        "dqn/rl (DQN)",
        "reinforce/rl (REINFORCE)",
        "a2c/rl (A2C)",
        "ppo/rl (PPO)",
        "charlm/text (CharLM)",
        "text-rnn/classification (TextClassifier)",
    ):
        assert paths[key] is True, key


# ---- the dynamo exporter, one model per family (slow: seconds per model) ---------------------------
@pytest.mark.slow
@pytest.mark.parametrize(
    "family",
    [
        "vae-decoder",
        "conv-ae-encoder",
        "dcgan",
        "cgan",
        "dbn",
        "conv-rbm",
        "lista",
        "lstm-tagger",
        "ctc",
        "charlm",
        "text-gru",
        "dqn",
        "ppo-box",
    ],
)
def test_dynamo_exports_each_family(family, digits, ring, tmp_path):
    from deepatlas.models.rnn.recurrent import SequenceTagger
    from deepatlas.models.sparse_coding.coders import LISTA

    part, X = None, None
    if family == "vae-decoder":
        est, part = _autoencoder("VAE", digits.X_train), "decoder"
    elif family == "conv-ae-encoder":
        est, part, X = _autoencoder("ConvAutoencoder", digits.X_train), "encoder", digits.X_test
    elif family in ("dcgan", "cgan"):
        est = _gan(family.upper(), ring, digits)
    elif family in ("dbn", "conv-rbm"):
        est, X = _rbm_family({"dbn": "DBN", "conv-rbm": "ConvRBM"}[family], digits)
    elif family == "lista":
        est, X = LISTA(dictionary="dct", n_atoms=32, n_layers=4, epochs=2).fit(digits.X_train), digits.X_test
    elif family == "lstm-tagger":
        Xs, y = _tagging()
        est, X = SequenceTagger(cell="lstm", hidden_size=8, epochs=2, seed=0).fit(Xs[:100], y[:100]), Xs[100:]
    elif family == "ctc":
        from deepatlas.models.rnn.ctc import CTCRecognizer

        ds = load_dataset("digit-strings:n=120")
        est, X = CTCRecognizer(hidden_size=8, epochs=1, seed=0).fit(ds.X_train, ds.y_train), ds.X_test[:20]
    elif family == "charlm":
        from deepatlas.data.sequences import pydoc_corpus
        from deepatlas.models.rnn.charlm import CharLM

        est = CharLM(hidden_size=16, embedding_size=8, seq_len=32, epochs=1, seed=0).fit(pydoc_corpus()[:5000])
    elif family == "text-gru":
        from deepatlas.models.rnn.charlm import TextClassifier

        docs, y = _reviews()
        est = TextClassifier(hidden_size=8, embedding_size=4, epochs=2).fit(docs[:150], y[:150])
        X = est._encode_docs(docs[150:])
    else:
        est = _agent({"dqn": "DQN", "ppo-box": "PPO-box"}[family])
    result = export(est, tmp_path / "m.onnx", part=part, X=X)
    if family in ("lstm-tagger", "ctc", "charlm") and result.exporter == ox.TORCHSCRIPT:
        # torch 2.13's dynamo exporter keeps an nn.LSTM's time axis dynamic only for the first
        # LSTM it exports in a process (reproduced with a bare nn.LSTM); later ones get it fixed,
        # which the pipeline detects, noting it and falling back to TorchScript.
        steps = 32 if family == "charlm" else 8
        assert result.notes == [f"the dynamo exporter fixed axis 1 (time) to {steps}; used the TorchScript exporter"]
    else:
        assert result.exporter == ox.DYNAMO, result.notes
    _check_parity(result, keys=("reference", "random") + (("held_out",) if "held_out" in result.parity else ()))

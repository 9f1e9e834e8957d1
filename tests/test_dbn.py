"""DBN, DBNClassifier and ConvDBN: greedy stacking, the unrolled network, errors, persistence, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from deepatlas.data import load_dataset
from deepatlas.errors import InputError
from deepatlas.models.rbm.dbn import DBN, ConvDBN, DBNClassifier
from deepatlas.runs import load, save_model


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def dbn(digits):
    return DBN(hidden_sizes=(48, 24), epochs=10, lr=0.1, device="cpu").fit(digits.X_train)


def test_dbn_is_trained_greedily_and_samples(dbn, digits):
    first, second = dbn.layers_
    assert (first.n_features_in_, first.n_hidden, second.n_features_in_, second.n_hidden) == (64, 48, 48, 24)
    assert dbn.transform(digits.X_test).shape == (len(digits.X_test), 24)
    assert [h["layer"] for h in dbn.history_] == [1] * 10 + [2] * 10
    S = dbn.sample(6, steps=50)
    assert S.shape == (6, 1, 8, 8) and S.min() >= 0 and S.max() <= 1
    rec = dbn.reconstruct(digits.X_test).reshape(len(digits.X_test), -1)
    X = digits.X_test.reshape(len(digits.X_test), -1)
    assert np.mean((rec - X) ** 2) < 0.85 * X.var(0).mean()  # keeps more than the mean image (measured 0.76)


def test_unrolled_network_reproduces_the_stack(dbn, digits):
    """The classifier's hidden layers start as exactly the DBN's up pass."""
    est = DBNClassifier(hidden_sizes=(48, 24))
    est._pretrained = dbn.layers_
    est.mean_, est.scale_ = np.zeros(64, np.float32), np.ones(64, np.float32)
    module = est._build_module((1, 8, 8), 10)
    with torch.no_grad():
        up = module[:-1](torch.as_tensor(digits.X_test)).numpy()
    assert np.allclose(up, dbn.transform(digits.X_test), atol=1e-5)


def test_gaussian_first_layer_folds_its_standardisation():
    rng = np.random.default_rng(0)
    X = rng.normal(300.0, 40.0, (200, 5)).astype(np.float32)
    dbn = DBN(hidden_sizes=(8, 4), visible="gaussian", epochs=3, device="cpu").fit(X)
    est = DBNClassifier(hidden_sizes=(8, 4), standardize=True)
    est._pretrained = dbn.layers_
    est.mean_, est.scale_ = X.mean(0), X.std(0)
    module = est._build_module((5,), 2)
    with torch.no_grad():
        up = module[:-1](torch.as_tensor((X - est.mean_) / est.scale_)).numpy()
    assert np.allclose(up, dbn.transform(X), atol=1e-4)


@pytest.mark.parametrize("pretrain", [True, False])
def test_dbn_classifier_learns_digits(digits, pretrain):
    est = DBNClassifier(hidden_sizes=(64,), pretrain=pretrain, pretrain_epochs=3, epochs=25, device="cpu")
    est.fit(digits.X_train, digits.y_train)
    assert isinstance(est.module_, nn.Sequential)
    assert [type(m) for m in est.module_] == [nn.Flatten, nn.Linear, nn.Sigmoid, nn.Linear]
    assert est.score(digits.X_test, digits.y_test) > 0.9
    assert hasattr(est, "pretrain_seconds_") == pretrain


def test_unlabeled_rows_join_pretraining(digits):
    few = slice(0, 100)
    est = DBNClassifier(hidden_sizes=(32,), pretrain_epochs=1, epochs=2, early_stopping=False, device="cpu")
    est.fit(digits.X_train[few], digits.y_train[few], unlabeled=digits.X_train[100:])
    assert est.predict(digits.X_test).shape == (len(digits.X_test),)
    with pytest.raises(InputError, match=r"^unlabeled has 3 features, but X has 64\.$"):
        est.fit(digits.X_train[few], digits.y_train[few], unlabeled=np.zeros((5, 3)))


def test_save_and_load_round_trip(tmp_path, dbn, digits):
    save_model(dbn, tmp_path / "dbn")
    again = load(tmp_path / "dbn")
    assert type(again) is DBN
    assert np.allclose(again.transform(digits.X_test), dbn.transform(digits.X_test))
    clf = DBNClassifier(hidden_sizes=(16,), pretrain_epochs=1, epochs=2, device="cpu").fit(
        digits.X_train, digits.y_train
    )
    save_model(clf, tmp_path / "clf")
    assert np.allclose(load(tmp_path / "clf").predict_proba(digits.X_test), clf.predict_proba(digits.X_test))


def test_conv_dbn_stacks_convolutional_rbms(tmp_path, digits):
    cdbn = ConvDBN(channels=(8, 4), epochs=1, device="cpu").fit(digits.X_train)
    assert [layer.input_shape_ for layer in cdbn.layers_] == [(1, 8, 8), (8, 6, 6)]
    assert cdbn.transform(digits.X_test).shape == (len(digits.X_test), 4 * 4 * 4)
    assert cdbn.sample(2, steps=5).shape == (2, 1, 8, 8)
    save_model(cdbn, tmp_path / "c")
    assert np.allclose(load(tmp_path / "c").transform(digits.X_test[:5]), cdbn.transform(digits.X_test[:5]))
    with pytest.raises(InputError, match=r"^ConvDBN layer 2 gets 4x4 maps, smaller than kernel_size 5"):
        ConvDBN(channels=(4, 4), kernel_size=5, epochs=1, device="cpu").fit(digits.X_train[:50])


def test_bad_input():
    with pytest.raises(
        InputError, match=r"^The 'hidden_sizes' parameter of DBN must be a tuple of positive ints\. Got \(\) instead\.$"
    ):
        DBN(hidden_sizes=()).fit(np.zeros((4, 2)))
    with pytest.raises(InputError) as err:
        DBNClassifier().fit(np.array([[0.0, 3.0]] * 10), [0, 1] * 5)
    assert str(err.value) == (
        "X has values outside [0, 1] (min 0, max 3), but DBNClassifier reads each value as a probability: "
        "scale X to [0, 1] (e.g. sklearn's MinMaxScaler) or pass visible='gaussian' for real-valued data."
    )
    with pytest.raises(
        InputError, match=r"^The 'k' parameter of DBN must be an int in the range \[1, inf\)\. Got 0 instead\.$"
    ):
        DBN(k=0).fit(np.zeros((4, 2)))


def test_cli_train_dbn_classifier(cli, tmp_path):
    run = tmp_path / "dbn"
    r = cli(
        "train", "dbn", "--data", "digits", "--epochs", "30", "--set", "hidden_sizes=(64,)", "--set",
        "pretrain_epochs=3", "--out", str(run), "--quiet",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.9
    assert json.loads((run / "config.json").read_text())["class"] == "DBNClassifier"


@pytest.mark.slow
def test_dbn_classifier_defaults_reach_97_percent(digits):
    est = DBNClassifier(device="cpu").fit(digits.X_train, digits.y_train)
    assert est.score(digits.X_test, digits.y_test) >= 0.97

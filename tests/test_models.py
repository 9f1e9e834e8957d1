"""Spine estimators: quality on built-in data, reproducibility, persistence, sklearn tooling."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from deepatlas import create_model, load, save_model
from deepatlas.data import load_dataset
from deepatlas.errors import InputError, TrainingDiverged
from deepatlas.models.cnn import CNNClassifier
from deepatlas.models.mlp import MLPClassifier, MLPRegressor
from deepatlas.models.perceptron import Perceptron


def _fit_score(model, name):
    ds = load_dataset(name)
    kwargs = {"validation_data": (ds.X_val, ds.y_val)} if hasattr(model, "early_stopping") else {}
    model.fit(ds.X_train, ds.y_train, **kwargs)
    return model.score(ds.X_test, ds.y_test)


# ---- quality with default settings, seed 0 (issue #2, point 8) -------------------------------
@pytest.mark.parametrize(
    "model, data, threshold",
    [
        ("mlp", "digits", 0.97),
        ("cnn", "digits", 0.98),
        ("cnn", "mnist1d", 0.94),  # the MNIST-1D paper's CNN
        # The MNIST-1D paper's MLP reaches about 0.68; the default MLP's mean over seeds 0-7 is 0.676
        # (0.647-0.708; seed 0 0.672) with the fast step's bulk dropout masks, 0.676 with nn.Dropout's
        # (docs/results-defaults.md: met on about half the seeds). Seed 0 must stay in that band.
        ("mlp", "mnist1d", 0.66),
        ("perceptron", "blobs", 0.99),
    ],
)
def test_default_quality(model, data, threshold):
    assert _fit_score(create_model(model), data) >= threshold


def test_perceptron_cannot_separate_xor():
    model = Perceptron()
    assert _fit_score(model, "xor") <= 0.75
    assert not model.converged_  # no pass without mistakes on XOR
    assert model.n_updates_ > model.n_epochs_


def test_perceptron_converges_within_novikoff_bound():
    ds = load_dataset("blobs")
    model = Perceptron(standardize=False).fit(ds.X_train, ds.y_train)
    assert model.converged_
    # Novikoff: updates <= (R / gamma)^2 for any separating unit vector; use the learned one.
    Z = np.hstack([ds.X_train, np.ones((len(ds.X_train), 1))])
    w = model._W[0] / np.linalg.norm(model._W[0])
    margin = np.min(np.where(ds.y_train == 1, 1, -1) * (Z @ w))
    radius = np.max(np.linalg.norm(Z, axis=1))
    assert margin > 0
    assert model.n_updates_ <= (radius / margin) ** 2


def test_perceptron_is_the_rosenblatt_rule():
    # Two points, zero start, no shuffling: the first point is misclassified (score 0) and added.
    X = np.array([[1.0, 0.0], [0.0, 1.0]])
    y = np.array([1, 0])
    model = Perceptron(shuffle=False, standardize=False, fit_intercept=False, lr=0.5).fit(X, y)
    assert model.n_updates_ == 2  # +x0 (label +1), then -x1 (label -1, score 0 <= 0)
    np.testing.assert_allclose(model.coef_, [[0.5, -0.5]])
    assert model.converged_ and model.n_epochs_ == 2


# ---- reproducibility (point 10) -----------------------------------------------------------------
def test_same_seed_same_weights_and_scores():
    ds = load_dataset("digits")
    a = MLPClassifier(epochs=5, seed=3).fit(ds.X_train, ds.y_train)
    b = MLPClassifier(epochs=5, seed=3).fit(ds.X_train, ds.y_train)
    c = MLPClassifier(epochs=5, seed=4).fit(ds.X_train, ds.y_train)
    for (ka, va), (_, vb) in zip(a.module_.state_dict().items(), b.module_.state_dict().items()):
        assert torch.equal(va, vb), ka
    assert a.history_ == b.history_
    assert not torch.equal(a.module_[1].weight, c.module_[1].weight)


# ---- standardisation from training data only, saved with the model (point 3) -------------------
def test_standardisation_statistics_come_from_training_data():
    ds = load_dataset("mnist1d")
    model = MLPClassifier(epochs=1, early_stopping=False).fit(ds.X_train, ds.y_train)
    np.testing.assert_allclose(model.mean_, ds.X_train.mean(axis=0), rtol=1e-5, atol=1e-6)
    assert not np.allclose(model.mean_, ds.X_test.mean(axis=0), atol=1e-3)


# ---- persistence (point 6) ---------------------------------------------------------------------
@pytest.mark.parametrize("model", [Perceptron(), MLPRegressor(epochs=3), CNNClassifier(epochs=2, channels=(8, 8))])
def test_save_load_round_trip(tmp_path, model):
    ds = load_dataset("digits")
    y = ds.y_train.astype(np.float32) if isinstance(model, MLPRegressor) else ds.y_train
    model.fit(ds.X_train, y)
    save_model(model, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    again = load(tmp_path)
    assert type(again) is type(model)
    assert again.get_params() == model.get_params()
    np.testing.assert_array_equal(again.predict(ds.X_test), model.predict(ds.X_test))


def test_string_labels_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 4)).astype(np.float32)
    y = np.where(X[:, 0] > 0, "yes", "no")
    model = MLPClassifier(epochs=20, hidden_sizes=(16,)).fit(X, y)
    assert list(model.classes_) == ["no", "yes"]
    save_model(model, tmp_path)
    np.testing.assert_array_equal(load(tmp_path).predict(X), model.predict(X))


# ---- checkpoints and resume (point 4) ----------------------------------------------------------
@pytest.mark.parametrize("dropout", [0.2, 0.0])  # 0.0 takes the autograd-free step (direct fused Adam)
def test_resume_continues_exactly(tmp_path, dropout):
    ds = load_dataset("digits")
    params = dict(epochs=6, early_stopping=False, dropout=dropout, seed=1)
    full = MLPClassifier(**params).fit(ds.X_train, ds.y_train)
    MLPClassifier(**{**params, "epochs": 3}).fit(ds.X_train, ds.y_train, checkpoint_dir=tmp_path)
    assert (tmp_path / "checkpoint.safetensors").exists()
    resumed = MLPClassifier(**params).fit(ds.X_train, ds.y_train, checkpoint_dir=tmp_path, resume=True)
    assert len(resumed.history_) == 6
    assert resumed.history_ == full.history_
    for va, vb in zip(full.module_.state_dict().values(), resumed.module_.state_dict().values()):
        assert torch.equal(va, vb)
    saved = load_file(tmp_path / "checkpoint.safetensors")  # the optimiser's step counts are current
    steps = {k: float(v) for k, v in saved.items() if k.endswith(".step")}
    assert steps and set(steps.values()) == {6.0 * -(-len(ds.X_train) // 64)}


def test_nan_guard_names_epoch_and_suggests_lower_lr():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3)).astype(np.float32)
    y = X.sum(axis=1) * 10
    with pytest.raises(TrainingDiverged) as err:
        MLPRegressor(lr=1e6, epochs=5, early_stopping=False, optimizer="sgd").fit(X, y)
    assert re.fullmatch(
        r"Training diverged: the loss became (nan|inf) at epoch \d+\. Try a lower learning rate \(lr=1e\+06 now\)\.",
        str(err.value),
    )


def test_early_stopping_restores_best_epoch():
    ds = load_dataset("digits")
    model = MLPClassifier(patience=3, epochs=100).fit(ds.X_train, ds.y_train, validation_data=(ds.X_val, ds.y_val))
    best = max(h["val_accuracy"] for h in model.history_)
    assert model.n_epochs_ < 100
    assert model.history_[model.best_epoch_ - 1]["val_accuracy"] == best
    assert model.score(ds.X_val, ds.y_val) == pytest.approx(best)


# ---- CNN takes any input size (global pooling) -------------------------------------------------
def test_cnn_accepts_other_signal_lengths():
    ds = load_dataset("mnist1d")
    model = CNNClassifier(epochs=2, channels=(8, 8)).fit(ds.X_train[:, None, :], ds.y_train)
    longer = np.repeat(ds.X_test[:5, None, :], 2, axis=2)  # (5, 1, 80)
    assert model.predict_proba(longer).shape == (5, 10)
    with pytest.raises(InputError, match=r"^X has 3 channels, but CNNClassifier was trained on 1\.$"):
        model.predict(np.zeros((2, 3, 40), np.float32))


def test_cnn_standardises_per_channel_at_every_size():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2, 6, 5)).astype(np.float32)
    X[:, 1] = 10 * X[:, 1] + 3  # the second channel: mean ~3, scale ~10
    X[:, 0, 0, 0] += 50  # one position far off: per-position statistics would absorb it
    y = np.arange(40) % 2
    model = CNNClassifier(epochs=1, channels=(4,), early_stopping=False).fit(X, y)
    mean, scale = model.mean_.reshape(2, -1), model.scale_.reshape(2, -1)
    for c in range(2):  # one value per channel, over samples and positions, repeated per position
        np.testing.assert_allclose(mean[c], X[:, c].mean(), rtol=1e-5)
        np.testing.assert_allclose(scale[c], X[:, c].std(), rtol=1e-5)
    bigger = rng.normal(size=(3, 2, 9, 7)).astype(np.float32)  # another size: the same statistics
    expected = (bigger - mean[:, 0].reshape(1, 2, 1, 1)) / scale[:, 0].reshape(1, 2, 1, 1)
    np.testing.assert_allclose(model._standardized(bigger), expected, rtol=1e-5)
    np.testing.assert_allclose(
        model._standardized(X[:3]), (X[:3] - mean.reshape(1, 2, 6, 5)) / scale.reshape(1, 2, 6, 5), rtol=1e-5
    )


# ---- scikit-learn tooling works unchanged (point 5) --------------------------------------------
def test_clone_pipeline_gridsearch_cross_val_score():
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler

    ds = load_dataset("moons")
    X, y = ds.X_train, ds.y_train
    base = MLPClassifier(hidden_sizes=(16,), epochs=30, lr=1e-2, early_stopping=False, dropout=0.0)
    assert clone(base).get_params() == base.get_params()
    assert make_pipeline(MinMaxScaler(), clone(base)).fit(X, y).score(ds.X_test, ds.y_test) > 0.8
    grid = GridSearchCV(clone(base), {"hidden_sizes": [(4,), (32,)]}, cv=3).fit(X, y)
    assert grid.best_params_["hidden_sizes"] in [(4,), (32,)]
    scores = cross_val_score(Perceptron(), load_dataset("blobs").X_train, load_dataset("blobs").y_train, cv=3)
    assert scores.min() >= 0.95


# ---- parameter validation messages (point 9) ---------------------------------------------------
@pytest.mark.parametrize(
    "params, message",
    [
        ({"lr": -1}, "The 'lr' parameter of MLPClassifier must be a float in the range (0, inf). Got -1 instead."),
        ({"lr": 0}, "The 'lr' parameter of MLPClassifier must be a float in the range (0, inf). Got 0 instead."),
        ({"epochs": 0}, "The 'epochs' parameter of MLPClassifier must be an int in the range [1, inf). Got 0 instead."),
        (
            {"hidden_sizes": (100, -5)},
            "The 'hidden_sizes' parameter of MLPClassifier must be a tuple of positive ints. Got (100, -5) instead.",
        ),
        (
            {"optimizer": "adamm"},
            "The 'optimizer' parameter of MLPClassifier must be one of 'adam', 'adamw', 'sgd'. Got 'adamm' instead.",
        ),
    ],
)
def test_invalid_parameters(params, message):
    with pytest.raises(ValueError) as err:
        MLPClassifier(**params).fit(np.zeros((4, 2)), [0, 1, 0, 1])
    assert str(err.value) == message


def test_wrong_type_is_a_type_error():
    with pytest.raises(TypeError, match=r"^The 'lr' parameter of MLPClassifier must be a float"):
        MLPClassifier(lr="fast").fit(np.zeros((4, 2)), [0, 1, 0, 1])


def test_feature_count_mismatch_at_predict():
    model = MLPClassifier(epochs=1).fit(np.zeros((30, 4)), np.arange(30) % 2)
    with pytest.raises(ValueError) as err:
        model.predict(np.zeros((2, 3)))
    assert str(err.value) == "X has 3 features, but MLPClassifier is expecting 4 features as input."


def test_nan_input_is_refused():
    X = np.zeros((10, 2))
    X[3, 1] = np.nan
    with pytest.raises(ValueError) as err:
        MLPClassifier().fit(X, np.arange(10) % 2)
    assert str(err.value) == "X contains NaN or inf values; remove or impute them before fitting or predicting."


def test_fast_mlp_step_matches_autograd():
    """The hand-written MLP step gives autograd's numbers (up to float rounding)."""
    ds = load_dataset("digits")
    kw = dict(hidden_sizes=(32, 16), dropout=0.0, epochs=3, early_stopping=False, weight_decay=1e-4, seed=5)
    fast = MLPClassifier(fast_step=True, **kw).fit(ds.X_train, ds.y_train)
    slow = MLPClassifier(fast_step=False, **kw).fit(ds.X_train, ds.y_train)
    for (name, a), b in zip(fast.module_.state_dict().items(), slow.module_.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)
    assert [h["loss"] for h in fast.history_] == pytest.approx([h["loss"] for h in slow.history_], rel=1e-5)

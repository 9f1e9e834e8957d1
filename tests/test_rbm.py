"""RBM, GaussianRBM and ConvRBM: correctness against exact computations on tiny models, learning
on digits, errors, persistence and the CLI."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from deepatlas.data import load_dataset
from deepatlas.errors import InputError
from deepatlas.models.rbm.conv_rbm import ConvRBM
from deepatlas.models.rbm.rbm import RBM, GaussianRBM
from deepatlas.runs import load, save_model


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _prototype_data(n: int, seed: int = 0) -> np.ndarray:
    """Four 8-bit prototypes, each bit flipped with probability 0.05: a clearly multi-modal
    distribution that independent units cannot describe."""
    rng = np.random.default_rng(seed)
    protos = np.array(
        [[1, 1, 1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1, 1, 1], [1, 0, 1, 0, 1, 0, 1, 0], [1, 1, 0, 0, 1, 1, 0, 0]]
    )
    X = protos[rng.integers(0, 4, n)]
    flip = rng.random(X.shape) < 0.05
    return np.where(flip, 1 - X, X).astype(np.float32)


def _all_states(m: int) -> np.ndarray:
    return np.array(list(itertools.product([0, 1], repeat=m)), dtype=np.float64)


# ---- correctness on tiny models ----------------------------------------------------------------
def test_exact_log_likelihood_rises_during_training():
    X = _prototype_data(400)
    rbm = RBM(n_hidden=6, lr=0.1, epochs=30, device="cpu").fit(X)
    ll = [h["log_likelihood"] for h in rbm.history_]  # exact: 2^6 hidden states enumerated
    assert len(ll) == 30
    assert ll[-1] > ll[0] + 1.0
    assert ll[-1] >= max(ll) - 0.3  # no collapse at the end
    # better than the best model of independent units (the data's own marginals)
    p = X.mean(0).clip(1e-6, 1 - 1e-6)
    independent = float(np.mean(X @ np.log(p) + (1 - X) @ np.log(1 - p)))
    assert rbm.log_likelihood(X, "exact") > independent + 1.0


def test_exact_partition_function_matches_brute_force():
    rng = np.random.default_rng(1)
    W, b, c = rng.normal(0, 1, (5, 4)), rng.normal(0, 1, 5), rng.normal(0, 1, 4)
    rbm = RBM.from_params(W, b, c, device="cpu")
    V, H = _all_states(5), _all_states(4)
    energy = -(V @ b)[:, None] - (H @ c)[None, :] - V @ W @ H.T  # (32, 16)
    brute = np.log(np.exp(-energy).sum())
    assert rbm.log_partition("exact") == pytest.approx(brute, abs=1e-5)
    # free energy sums out the hidden units exactly
    assert np.allclose(rbm.free_energy(V), -np.log(np.exp(-energy).sum(1)), atol=1e-4)


def test_ais_matches_exact_partition_function(digits):
    rbm = RBM(n_hidden=15, epochs=3, device="cpu").fit(digits.X_train)
    exact = rbm.log_partition("exact")  # 2^15 hidden states
    ais = rbm.log_partition("ais", n_chains=100, n_betas=10000, seed=0)
    # the README's tolerance: within 0.001 nats (measured 0.00005-0.0007 over training seeds 0-3;
    # 1,000 temperatures instead of 10,000 give 0.0008-0.0023, so this would catch a coarser schedule)
    assert abs(ais - exact) < 0.001


def test_gaussian_ais_matches_exact():
    rng = np.random.default_rng(2)
    X = rng.normal(0, 1, (300, 3)) @ rng.normal(0, 1, (3, 3)) + 100.0
    g = GaussianRBM(n_hidden=6, epochs=10, device="cpu").fit(X)
    assert abs(g.log_partition("ais", n_chains=100, n_betas=10000, seed=0) - g.log_partition("exact")) < 0.001


def test_gibbs_sampling_reproduces_exact_marginals():
    rng = np.random.default_rng(3)
    W, b, c = rng.normal(0, 1.0, (5, 4)), rng.normal(0, 0.5, 5), rng.normal(0, 0.5, 4)
    rbm = RBM.from_params(W, b, c, device="cpu")
    V = _all_states(5)
    p = np.exp(-rbm.free_energy(V) - rbm.log_partition("exact"))
    assert p.sum() == pytest.approx(1.0, abs=1e-5)
    exact_mean = p @ V  # (5,)
    exact_pair = (V * p[:, None]).T @ V  # (5, 5) E[v_i v_j]
    S = rbm.sample(4000, steps=100, seed=0).reshape(4000, 5)
    assert set(np.unique(S)) <= {0.0, 1.0}
    assert np.abs(S.mean(0) - exact_mean).max() < 0.03  # ~4 standard errors
    assert np.abs(S.T @ S / len(S) - exact_pair).max() < 0.03


def test_gaussian_rbm_fits_unscaled_real_data():
    rng = np.random.default_rng(0)
    centers = np.array([[0, 0], [3, 3], [0, 4], [4, -1]]) * 1000.0 + 5000.0  # far from [0, 1]

    def draw(n):
        return centers[rng.integers(0, 4, n)] + rng.normal(0, 300.0, (n, 2))

    Xtr, Xte = draw(1000), draw(500)
    g = GaussianRBM(n_hidden=8, sigma=0.5, epochs=30, device="cpu").fit(Xtr)
    from scipy.stats import multivariate_normal

    one_gaussian = multivariate_normal(Xtr.mean(0), np.cov(Xtr.T)).logpdf(Xte).mean()
    ll = g.log_likelihood(Xte)  # exact, in the data's units
    assert ll > one_gaussian + 0.2  # a mixture beats the best single full-covariance Gaussian
    assert np.allclose(g.score_samples(Xte).mean(), ll, atol=1e-6)
    S = g.sample(500, steps=200)
    assert np.all(np.abs(S.mean(0) - Xtr.mean(0)) < 0.25 * Xtr.std(0))


# ---- learning and the transformer API ----------------------------------------------------------
def test_features_feed_a_linear_classifier(digits):
    rbm = RBM(n_hidden=100, lr=0.06, epochs=10, device="cpu")
    Ftr = rbm.fit(digits.X_train).transform(digits.X_train)
    assert Ftr.shape == (len(digits.X_train), 100) and Ftr.min() >= 0 and Ftr.max() <= 1
    with threadpool_limits(1):  # small problem: BLAS threads only contend
        clf = LogisticRegression(C=1000.0, max_iter=3000).fit(Ftr, digits.y_train)
    assert clf.score(rbm.transform(digits.X_test), digits.y_test) > 0.93  # measured 0.942
    assert rbm.history_[-1]["pseudo_likelihood"] > rbm.history_[0]["pseudo_likelihood"]
    assert rbm.components_.shape == (100, 64) and rbm.intercept_hidden_.shape == (100,)
    assert rbm.score_samples(digits.X_test).shape == (len(digits.X_test),)
    assert rbm.sample(5, steps=20).shape == (5, 1, 8, 8)


@pytest.mark.parametrize("params", [dict(k=3, persistent=False, lr=0.1), dict(k=2, momentum=0.5, weight_decay=1e-4)])
def test_cd_variants_learn(digits, params):
    rbm = RBM(n_hidden=32, epochs=5, device="cpu", **params).fit(digits.X_train)
    baseline = digits.X_train.reshape(len(digits.X_train), -1).var(0).mean()  # error of the mean image
    assert rbm.history_[-1]["reconstruction_loss"] < 0.7 * baseline


def test_same_seed_same_numbers_and_clone(digits):
    a = RBM(n_hidden=16, epochs=2, seed=3, device="cpu").fit(digits.X_train)
    b = clone(a).fit(digits.X_train)
    assert np.array_equal(a.components_, b.components_)
    c = RBM(n_hidden=16, epochs=2, seed=4, device="cpu").fit(digits.X_train)
    assert not np.array_equal(a.components_, c.components_)


def test_save_and_load_round_trip(tmp_path, digits):
    rbm = RBM(n_hidden=12, epochs=2, device="cpu").fit(digits.X_train)
    save_model(rbm, tmp_path / "r")
    again = load(tmp_path / "r")
    assert type(again) is RBM
    assert np.allclose(again.transform(digits.X_test), rbm.transform(digits.X_test))
    g = GaussianRBM(n_hidden=4, epochs=2, device="cpu").fit(np.random.default_rng(0).normal(50, 9, (100, 3)))
    save_model(g, tmp_path / "g")
    assert np.allclose(load(tmp_path / "g").free_energy([[50.0, 40, 60]]), g.free_energy([[50.0, 40, 60]]))


def test_conv_rbm_learns_filters(digits):
    crbm = ConvRBM(n_filters=8, epochs=5, device="cpu").fit(digits.X_train)
    maps = crbm.hidden_maps(digits.X_test)
    assert maps.shape == (len(digits.X_test), 8, 6, 6)
    baseline = digits.X_train.reshape(len(digits.X_train), -1).var(0).mean()  # error of the mean image
    recon = [h["reconstruction_loss"] for h in crbm.history_]
    assert recon[-1] < 0.7 * recon[0] and recon[-1] < baseline  # measured 0.113 -> 0.067
    assert crbm.sample(3, steps=10).shape == (3, 1, 8, 8)
    assert ConvRBM(n_filters=8, pool_size=2, epochs=1, device="cpu").fit(digits.X_train).transform(
        digits.X_test
    ).shape == (
        len(digits.X_test),
        8 * 3 * 3,
    )


# ---- bad input ---------------------------------------------------------------------------------
def test_bernoulli_rbm_rejects_values_outside_unit_interval():
    with pytest.raises(InputError) as err:
        RBM().fit(np.array([[0.0, 2.0], [1.0, -0.5]]))
    assert str(err.value) == (
        "X has values outside [0, 1] (min -0.5, max 2), but RBM reads each value as a probability: "
        "scale X to [0, 1] (e.g. sklearn's MinMaxScaler) or use GaussianRBM for real-valued data."
    )


def test_parameter_errors():
    with pytest.raises(
        InputError, match=r"^The 'k' parameter of RBM must be an int in the range \[1, inf\)\. Got 0 instead\.$"
    ):
        RBM(k=0).fit(np.zeros((4, 2)))
    with pytest.raises(
        InputError,
        match=r"^The 'sigma' parameter of GaussianRBM must be a float in the range \(0, inf\)\. Got -1\.0 instead\.$",
    ):
        GaussianRBM(sigma=-1.0).fit(np.zeros((4, 2)))
    rbm = RBM(n_hidden=30, epochs=1, device="cpu").fit(np.random.default_rng(0).random((50, 25)))
    with pytest.raises(
        InputError, match=r"^The exact partition function enumerates 2\^25 states; it is limited to 20 units"
    ):
        rbm.log_partition("exact")
    with pytest.raises(InputError, match=r"^X has 3 features, but RBM is expecting 25 features as input\.$"):
        rbm.transform(np.zeros((2, 3)))


# ---- the command line --------------------------------------------------------------------------
def test_cli_train_and_sample(cli, tmp_path):
    run = tmp_path / "rbm"
    r = cli("train", "rbm", "--data", "digits", "--epochs", "3", "--set", "n_hidden=16", "--out", str(run), "--quiet")
    assert r.returncode == 0, r.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_probe_accuracy"] > 0.8
    assert metrics["log_partition_method"] == "exact" and -60 < metrics["test_log_likelihood"] < 0
    for name in ("filters.png", "samples.png", "likelihood.png", "loss.png"):
        assert (run / "plots" / name).stat().st_size > 1000
    r = cli("sample", str(run), "-n", "16", "--out", str(tmp_path / "grid.png"))
    assert r.returncode == 0, r.stderr
    assert "wrote 16 samples" in r.stdout and (tmp_path / "grid.png").stat().st_size > 1000
    r = cli("train", "rbm", "--data", "moons", "--epochs", "1", "--out", str(tmp_path / "bad"))
    assert r.returncode == 2
    assert "X has values outside [0, 1]" in r.stderr and "Traceback" not in r.stderr

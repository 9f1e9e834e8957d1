"""DBM: the mean-field fixed point, log Z and the likelihood bound against exact enumeration,
Gibbs sampling against exact marginals, the doubled-input pretraining, persistence and bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from deepatlas.data import load_dataset
from deepatlas.errors import InputError
from deepatlas.models.rbm.dbm import DBM, mean_field
from deepatlas.saving import load, save_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits():
    ds = load_dataset("digits")
    return ds.X_train.reshape(len(ds.X_train), -1), ds.X_test.reshape(len(ds.X_test), -1)


@pytest.fixture(scope="module")
def small_dbm(digits):
    return DBM(hidden_sizes=(32, 16), pretrain_epochs=3, epochs=3, seed=0, device="cpu").fit(digits[0])


def _states(m: int) -> np.ndarray:
    return np.array(list(itertools.product([0, 1], repeat=m)), dtype=np.float64)


def _tiny(seed: int = 0, sizes=(5, 4, 3), scale: float = 1.0) -> DBM:
    rng = np.random.default_rng(seed)
    W = [rng.normal(0, scale, (a, b)) for a, b in zip(sizes[:-1], sizes[1:])]
    b = [rng.normal(0, 0.5, s) for s in sizes]
    return DBM.from_params(W, b, seed=seed, device="cpu")


def _joint_log_p(dbm: DBM):
    """Brute force over every joint state: log Z and the exact log p(v) of each visible state."""
    W = [w.double().numpy() for w in dbm.weights_]
    b = [c.double().numpy() for c in dbm.biases_]
    sizes = [len(c) for c in b]
    S = _states(sum(sizes))
    parts = np.split(S, np.cumsum(sizes)[:-1], axis=1)
    neg_e = sum(p @ c for p, c in zip(parts, b)) + sum(((parts[i] @ W[i]) * parts[i + 1]).sum(1) for i in range(len(W)))
    log_z = np.logaddexp.reduce(neg_e)
    codes = (parts[0] @ (2 ** np.arange(sizes[0])[::-1])).astype(int)
    log_pv = np.array([np.logaddexp.reduce(neg_e[codes == k]) for k in range(2 ** sizes[0])]) - log_z
    return log_z, log_pv


# ---- mean field ----------------------------------------------------------------------------------
def test_mean_field_reaches_a_fixed_point(small_dbm, digits):
    v = torch.as_tensor(digits[1], dtype=torch.float32)
    mu = mean_field(v, small_dbm.weights_, small_dbm.biases_, small_dbm.mean_field_steps)
    again = mean_field(v, small_dbm.weights_, small_dbm.biases_, small_dbm.mean_field_steps + 1)
    for a, b in zip(mu, again):
        assert float((a - b).abs().max()) < 1e-3  # one more sweep moves no posterior by 0.001
    # the fixed point is what transform returns, and it satisfies the update equations
    top = small_dbm.transform(digits[1])
    assert np.allclose(top, mu[-1].numpy(), atol=1e-6)
    W, c = small_dbm.weights_, small_dbm.biases_
    assert torch.allclose(mu[0], torch.sigmoid(v @ W[0] + mu[1] @ W[1].T + c[1]), atol=2e-3)
    assert torch.allclose(mu[1], torch.sigmoid(mu[0] @ W[1] + c[2]), atol=1e-5)  # updated last


def test_mean_field_maximises_the_bound_over_a_sweep():
    dbm = _tiny(4, sizes=(6, 5, 4), scale=1.5)
    v = torch.as_tensor(_states(6), dtype=torch.float32)
    from deepatlas.models.rbm.dbm import _energy_bound

    bounds = [
        _energy_bound(v, mean_field(v, dbm.weights_, dbm.biases_, s), dbm.weights_, dbm.biases_) for s in range(6)
    ]
    for before, after in zip(bounds[:-1], bounds[1:]):
        assert bool((after >= before - 1e-9).all())  # coordinate ascent never lowers the bound


# ---- log Z, the bound and sampling against enumeration ---------------------------------------------
@pytest.mark.parametrize("sizes", [(5, 4, 3), (3, 4, 3, 2)], ids=["two-layer", "three-layer"])
def test_log_partition_and_bound_match_brute_force(sizes):
    dbm = _tiny(1, sizes)
    log_z, log_pv = _joint_log_p(dbm)
    assert dbm.log_partition("exact") == pytest.approx(log_z, abs=1e-4)
    assert dbm.log_partition("ais", n_chains=100, n_betas=2000) == pytest.approx(log_z, abs=0.05)
    V = _states(sizes[0])
    assert dbm.exact_log_likelihood(V) == pytest.approx(log_pv.mean(), abs=1e-4)
    bound = dbm.log_likelihood_bound_samples(V, "exact")
    assert np.all(bound <= log_pv + 1e-6)  # a lower bound, row by row
    assert np.mean(log_pv - bound) < 1.0  # and not a vacuous one
    assert np.exp(log_pv).sum() == pytest.approx(1.0)


def test_ais_matches_exact_on_a_trained_model():
    rng = np.random.default_rng(0)
    protos = np.array([[1, 1, 1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1, 1, 1], [1, 0, 1, 0, 1, 0, 1, 0]], float)
    X = np.abs(protos[rng.integers(0, 3, 300)] - (rng.random((300, 8)) < 0.05))
    dbm = DBM(hidden_sizes=(6, 4), pretrain_epochs=10, epochs=10, n_chains=20, seed=0, device="cpu").fit(X)
    assert "log_likelihood_bound" in dbm.history_[-1]  # small enough for the exact bound per epoch
    exact = dbm.log_partition("exact")
    assert abs(dbm.log_partition("ais", n_chains=100, n_betas=2000) - exact) < 0.05  # measured 0.002-0.027 over 4 seeds
    _, log_pv = _joint_log_p(dbm)
    codes = (X @ (2 ** np.arange(8)[::-1])).astype(int)
    assert dbm.exact_log_likelihood(X) == pytest.approx(log_pv[codes].mean(), abs=1e-4)
    assert dbm.log_likelihood_bound(X, "exact") <= log_pv[codes].mean() + 1e-6


def test_gibbs_sampling_reproduces_exact_marginals():
    dbm = _tiny(3, sizes=(4, 3, 3))
    _, log_pv = _joint_log_p(dbm)
    S = dbm.sample(4000, steps=60, seed=0)
    assert set(np.unique(S)) <= {0.0, 1.0}
    exact_mean = np.exp(log_pv) @ _states(4)
    assert np.abs(S.mean(0) - exact_mean).max() < 0.03  # ~4 standard errors
    assert dbm.sample(3, steps=5, probabilities=True).shape == (3, 4)


# ---- pretraining with the doubled-input correction -------------------------------------------------
@pytest.mark.parametrize(
    "sizes, doubling", [((12, 8), [(2, 1), (1, 2)]), ((12, 8, 6), [(2, 1), (2, 2), (1, 2)])], ids=["2", "3"]
)
def test_pretraining_doubles_the_right_inputs(digits, sizes, doubling):
    X = digits[0][:300]
    dbm = DBM(hidden_sizes=sizes, pretrain_epochs=2, epochs=0, seed=0, device="cpu").fit(X)
    widths = [64, *sizes]
    assert [(m[3], m[4]) for m in dbm.pretrained_] == doubling  # (visible copies, hidden copies)
    for i, (W, b, c, _, _) in enumerate(dbm.pretrained_):
        assert W.shape == (widths[i], widths[i + 1]) and b.shape == (widths[i],) and c.shape == (widths[i + 1],)
        assert torch.equal(dbm.weights_[i], W)  # no joint training: the DBM is the composed stack
    # a middle layer's bias is the mean of what the module below and the module above give it
    mods = dbm.pretrained_
    assert torch.allclose(dbm.biases_[0], mods[0][1])
    assert torch.allclose(dbm.biases_[1], 0.5 * (mods[0][2] + mods[1][1]))
    assert torch.allclose(dbm.biases_[-1], mods[-1][2])
    # the bottom-up initialisation of mean field uses the doubled weights below the top
    v = torch.as_tensor(X[:5], dtype=torch.float32)
    mu0 = mean_field(v, dbm.weights_, dbm.biases_, 0)
    assert torch.allclose(mu0[0], torch.sigmoid(2 * v @ dbm.weights_[0] + dbm.biases_[1]))
    assert torch.allclose(mu0[-1], torch.sigmoid(mu0[-2] @ dbm.weights_[-1] + dbm.biases_[-1]))


def test_without_pretraining_and_seeds(digits):
    X = digits[0][:200]
    a = DBM(hidden_sizes=(8, 4), pretrain=False, epochs=1, seed=1, device="cpu").fit(X)
    b = DBM(hidden_sizes=(8, 4), pretrain=False, epochs=1, seed=1, device="cpu").fit(X)
    assert a.pretrained_ == [] and all(torch.equal(x, y) for x, y in zip(a.weights_, b.weights_))


# ---- persistence and bad input -----------------------------------------------------------------------
def test_save_and_load_round_trip(tmp_path, small_dbm, digits):
    save_model(small_dbm, tmp_path / "dbm")
    again = load(tmp_path / "dbm")
    assert type(again) is DBM and again.hidden_sizes == (32, 16)
    assert np.array_equal(again.transform(digits[1]), small_dbm.transform(digits[1]))
    assert [m.shape for m in again.mean_field(digits[1][:3])] == [(3, 32), (3, 16)]
    assert np.array_equal(again.sample(4, steps=5, seed=2), small_dbm.sample(4, steps=5, seed=2))
    assert again.log_partition("ais", n_chains=10, n_betas=100) == small_dbm.log_partition(
        "ais", n_chains=10, n_betas=100
    )


def test_bad_input(small_dbm):
    with pytest.raises(InputError) as err:
        DBM().fit(np.array([[0.0, 2.0], [1.0, -0.5]]))
    assert str(err.value) == (
        "X has values outside [0, 1] (min -0.5, max 2), but DBM reads each value as a probability: "
        "scale X to [0, 1] (e.g. sklearn's MinMaxScaler) (a DBM has Bernoulli visible units)."
    )
    with pytest.raises(
        InputError,
        match=r"^The 'hidden_sizes' parameter of DBM must be a tuple of at least 2 positive ints\. Got \(10,\) instead\.$",
    ):
        DBM(hidden_sizes=(10,)).fit(np.zeros((4, 2)))
    with pytest.raises(InputError, match=r"^X has 3 features, but DBM is expecting 64 features as input\.$"):
        small_dbm.transform(np.zeros((2, 3)))
    with pytest.raises(InputError, match=r"^The exact partition function enumerates 2\^32 states"):
        small_dbm.log_partition("exact")
    with pytest.raises(InputError, match=r"^steps must be a positive int\. Got 0 instead\.$"):
        small_dbm.sample(2, steps=0)
    with pytest.raises(InputError, match=r"^DBM needs at least 2 samples to fit\. Got 1 instead\.$"):
        DBM().fit(np.zeros((1, 4)))


# ---- learning on digits (slow) -----------------------------------------------------------------------
@pytest.mark.slow
def test_dbm_learns_digits(digits):
    from deepatlas.models.common import linear_probe

    Xtr, Xte = digits
    ds = load_dataset("digits")
    dbm = DBM(seed=0, device="cpu").fit(Xtr)
    recon = [h["reconstruction_loss"] for h in dbm.history_]
    assert recon[-1] <= recon[0]
    bound = dbm.log_likelihood_bound(Xte, "ais", n_chains=100, n_betas=3000)
    assert -30 < bound < -15  # measured about -24 nats
    acc = linear_probe(
        dbm.transform(Xtr), ds.y_train, dbm.transform(Xte), ds.y_test, standardize=False, C=1000.0, max_iter=3000
    )
    assert acc > 0.88  # measured about 0.92

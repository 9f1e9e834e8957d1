"""Sparse coding: solvers against scikit-learn, estimators, LISTA, convolutional coding, errors, CLI."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from deepatlas.errors import InputError
from deepatlas.models.sparse_coding.coders import LISTA, DictionaryLearning, SparseCoder, dct_dictionary
from deepatlas.models.sparse_coding.conv import ConvSparseCoding, analyze, synthesize
from deepatlas.models.sparse_coding.solvers import duality_gaps, ista, lasso_objective, sparse_encode

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: see conftest.py


@pytest.fixture(scope="module")
def patches():
    """6x6 patches of 40 digits (360 signals of 36 values) and a 48-atom unit-norm dictionary."""
    from sklearn.datasets import load_digits
    from sklearn.feature_extraction.image import extract_patches_2d

    imgs = load_digits().images[:40] / 16.0
    P = np.concatenate([extract_patches_2d(im, (6, 6)) for im in imgs]).reshape(-1, 36).astype(np.float32)
    rng = np.random.default_rng(0)
    D = P[rng.choice(len(P), 48, replace=False)] + 0.5 * rng.standard_normal((48, 36)).astype(np.float32)
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    return P, D.astype(np.float32)


@pytest.fixture(scope="module")
def digits():
    from deepatlas.data import load_dataset

    return load_dataset("digits")


# ---- solvers ------------------------------------------------------------------------------------
@pytest.mark.parametrize("solver", ["ista", "fista", "cd"])
def test_lasso_solvers_reach_sklearn_objective(patches, solver):
    from sklearn.decomposition import SparseCoder as SkCoder

    P, D = patches
    alpha = 0.2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Zsk = SkCoder(D.astype(np.float64), transform_algorithm="lasso_cd", transform_alpha=alpha).transform(
            P.astype(np.float64)
        )
    X, Dt = torch.from_numpy(P).double(), torch.from_numpy(D).double()
    res = sparse_encode(X, Dt, solver=solver, alpha=alpha, max_iter=5000, tol=1e-5)
    ours = float(lasso_objective(X, Dt, res.codes, alpha).mean())
    peer = float(lasso_objective(X, Dt, torch.from_numpy(Zsk), alpha).mean())
    assert res.converged and 1 <= res.n_iter < 5000
    assert abs(ours - peer) / peer < 1e-4
    # Same minimiser (the lasso is strictly convex here): codes agree closely.
    assert np.abs(res.codes.numpy() - Zsk).max() < 1e-2


def test_omp_matches_sklearn(patches):
    from sklearn.decomposition import SparseCoder as SkCoder

    P, D = patches
    Zsk = SkCoder(D, transform_algorithm="omp", transform_n_nonzero_coefs=4).transform(P)
    res = sparse_encode(torch.from_numpy(P), torch.from_numpy(D), solver="omp", n_nonzero=4)
    Z = res.codes.numpy()
    assert res.n_iter == 4
    assert ((Z != 0).sum(1) == 4).all()
    np.testing.assert_allclose(Z, Zsk, atol=1e-3)


def test_soft_threshold_on_identity_dictionary():
    # With D = I the lasso solution is soft thresholding of x itself.
    X = torch.tensor([[2.0, 0.5, -3.0], [0.0, -1.5, 1.0]])
    for solver in ("ista", "fista", "cd"):
        Z = sparse_encode(X, torch.eye(3), solver=solver, alpha=1.0).codes
        np.testing.assert_allclose(Z.numpy(), [[1.0, 0.0, -2.0], [0.0, -0.5, 0.0]], atol=1e-6)


def test_stopping_rule_and_iteration_counts(patches):
    P, D = patches
    X, Dt = torch.from_numpy(P).double(), torch.from_numpy(D).double()
    slow = sparse_encode(X, Dt, solver="ista", alpha=0.05, max_iter=5, tol=1e-8)
    assert slow.n_iter == 5 and not slow.converged
    fast = sparse_encode(X, Dt, solver="fista", alpha=0.2, tol=1e-5, max_iter=5000)
    plain = sparse_encode(X, Dt, solver="ista", alpha=0.2, tol=1e-5, max_iter=5000)
    assert fast.converged and plain.converged
    assert fast.n_iter < plain.n_iter  # acceleration pays off
    primal, gap = duality_gaps(X, Dt, fast.codes, 0.2)
    assert float(gap.sum() / primal.sum()) <= 1e-5  # the rule really held at the stop
    assert fast.gap <= 1e-5


@pytest.mark.parametrize("layout", ["per-signal", "union"])
def test_coordinate_descent_working_sets(patches, monkeypatch, layout):
    # Both working-set layouts are exact coordinate descent: the full problem's duality gap (which
    # bounds the distance to the optimum) holds at the stop, an all-zero atom stays out, a warm
    # start from the solution stops at the first check, and max_iter is honoured.
    import deepatlas.models.sparse_coding.solvers as solvers

    monkeypatch.setattr(solvers, "_GATHER_LIMIT", 1 << 40 if layout == "per-signal" else 0)
    P, D = patches
    X, Dt = torch.from_numpy(P).double(), torch.from_numpy(D).double()
    Dt[7] = 0.0  # a dead atom
    res = solvers.coordinate_descent(X, Dt, 0.1, tol=1e-6, max_iter=5000)
    assert res.converged and 10 < res.n_iter < 5000 and res.n_iter % 10 == 0
    primal, gap = duality_gaps(X, Dt, res.codes, 0.1)
    assert float(gap.sum() / primal.sum()) <= 1e-6
    assert bool((res.codes[:, 7] == 0).all())
    assert 2 < float((res.codes != 0).sum(1).double().mean()) < 40  # sparse, not trivial
    warm = solvers.coordinate_descent(X, Dt, 0.1, tol=1e-6, max_iter=5000, init=res.codes)
    assert warm.converged and warm.n_iter == 10
    short = solvers.coordinate_descent(X, Dt, 0.1, tol=1e-12, max_iter=7)
    assert short.n_iter == 7 and not short.converged
    assert float(lasso_objective(X, Dt, short.codes, 0.1).mean()) > float(primal.mean())


def test_alpha_zero_is_least_squares():
    Q, _ = torch.linalg.qr(torch.randn(8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    X = torch.randn(5, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    res = ista(X, Q.T, 0.0, tol=1e-10)
    np.testing.assert_allclose(
        res.codes.numpy(), (X @ Q).numpy(), atol=1e-8
    )  # orthonormal atoms: codes are the projections


# ---- estimators ---------------------------------------------------------------------------------
def test_dct_dictionary_is_orthonormal_when_complete():
    D = dct_dictionary((1, 8, 8), 64)
    np.testing.assert_allclose(D @ D.T, np.eye(64), atol=1e-5)
    assert dct_dictionary((40,), 80).shape == (80, 40)


def test_sparse_coder_transform_and_inverse(digits):
    coder = SparseCoder(dictionary="dct", alpha=0.05).fit(digits.X_train)
    Z = coder.transform(digits.X_test)
    assert Z.shape == (len(digits.X_test), 64)
    rec = coder.inverse_transform(Z)
    assert rec.shape == digits.X_test.shape
    # Complete orthonormal DCT: the codes are soft-thresholded coefficients, error stays small.
    assert float(((rec - digits.X_test) ** 2).mean()) < 0.01
    assert 0 < (Z != 0).sum(1).mean() < 64


def test_sparse_coder_with_array_matches_sklearn_convention(patches):
    P, D = patches
    coder = SparseCoder(dictionary=D, alpha=0.2, solver="cd").fit(P)
    np.testing.assert_array_equal(coder.components_, D)
    Z = coder.transform(P[:10])
    np.testing.assert_allclose(coder.inverse_transform(Z), Z @ D, rtol=1e-6)


def test_random_dictionary_is_seeded(digits):
    a = SparseCoder(dictionary="random", n_atoms=20, seed=3).fit(digits.X_train).components_
    b = SparseCoder(dictionary="random", n_atoms=20, seed=3).fit(digits.X_train).components_
    c = SparseCoder(dictionary="random", n_atoms=20, seed=4).fit(digits.X_train).components_
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_dictionary_learning_beats_random_and_dct(digits):
    X = digits.X_train[:600]
    dl = DictionaryLearning(n_atoms=64, alpha=0.2, epochs=4, seed=0).fit(X)
    losses = [h["loss"] for h in dl.history_]
    assert losses[-1] < losses[0]
    np.testing.assert_allclose(np.linalg.norm(dl.components_, axis=1), 1.0, atol=1e-4)
    learned = -dl.score(digits.X_test)
    for kind in ("dct", "random"):
        fixed = -SparseCoder(dictionary=kind, n_atoms=64, alpha=0.2).fit(X).score(digits.X_test)
        assert learned < 0.8 * fixed, (kind, learned, fixed)
    again = DictionaryLearning(n_atoms=64, alpha=0.2, epochs=4, seed=0).fit(X)
    np.testing.assert_array_equal(dl.components_, again.components_)


def test_lista_beats_ista_at_equal_depth(digits):
    X = digits.X_train[:500]
    lista = LISTA(dictionary="random", n_atoms=96, alpha=0.2, n_layers=8, epochs=40, lr=3e-3, seed=0).fit(X)
    D = torch.from_numpy(lista.components_)
    Xt = torch.from_numpy(digits.X_test.reshape(len(digits.X_test), -1))
    target = torch.from_numpy(lista.solver_codes(digits.X_test))
    Zl = torch.from_numpy(lista.transform(digits.X_test))
    Zi = ista(Xt, D, 0.2, max_iter=8, tol=0.0).codes  # 8 plain ISTA steps from zero
    err_lista = float(((Zl - target) ** 2).mean())
    err_ista = float(((Zi - target) ** 2).mean())
    assert err_lista < 0.5 * err_ista, (err_lista, err_ista)


def test_conv_sparse_coding_1d_and_2d(digits):
    img = ConvSparseCoding(n_atoms=4, kernel_size=3, epochs=3, alpha=0.05, seed=0).fit(digits.X_train[:128])
    assert img.components_.shape == (4, 1, 3, 3)
    codes = img.transform(digits.X_test[:16])
    assert codes.shape == (16, 4 * 10 * 10)
    rec = img.inverse_transform(codes)
    assert rec.shape == (16, 1, 8, 8)
    X = digits.X_test[:16]
    assert float(((rec - X) ** 2).mean()) < 0.2 * float(X.var())
    assert img.history_[-1]["loss"] < img.history_[0]["loss"]

    t = np.linspace(0, 1, 50, dtype=np.float32)
    sig = np.stack([np.sin(2 * np.pi * (3 + k % 4) * t + k) for k in range(40)]).astype(np.float32)
    one = ConvSparseCoding(n_atoms=3, kernel_size=7, epochs=2, alpha=0.05).fit(sig)
    assert one.components_.shape == (3, 1, 1, 7)
    assert one.transform(sig[:5]).shape == (5, 3 * 56)


def test_conv_operator_adjoint():
    g = torch.Generator().manual_seed(0)
    D = torch.randn(3, 2, 3, 4, generator=g, dtype=torch.float64)
    Z = torch.randn(2, 3, 7, 9, generator=g, dtype=torch.float64)  # codes for 5x6 images
    R = torch.randn(2, 2, 5, 6, generator=g, dtype=torch.float64)
    # <A z, r> == <z, Aᵀ r>: FISTA's gradient is the true gradient.
    assert torch.allclose((synthesize(Z, D) * R).sum(), (Z * analyze(R, D)).sum())


def test_save_load_round_trip(tmp_path, digits):
    from deepatlas.runs import load, save_model

    for est in (
        SparseCoder(dictionary="dct", alpha=0.1).fit(digits.X_train),
        LISTA(dictionary="dct", n_atoms=64, alpha=0.2, n_layers=4, epochs=2).fit(digits.X_train[:200]),
    ):
        save_model(est, tmp_path / type(est).__name__)
        back = load(tmp_path / type(est).__name__)
        assert type(back) is type(est)
        np.testing.assert_allclose(back.transform(digits.X_test[:20]), est.transform(digits.X_test[:20]), atol=1e-6)


# ---- bad input ----------------------------------------------------------------------------------
def test_negative_alpha(digits):
    with pytest.raises(InputError) as e:
        SparseCoder(alpha=-1.0).fit(digits.X_train)
    assert (
        str(e.value) == "The 'alpha' parameter of SparseCoder must be a float in the range [0, inf). Got -1.0 instead."
    )
    with pytest.raises(InputError, match=r"^alpha must be a float >= 0\. Got -0\.5 instead\.$"):
        sparse_encode(torch.ones(2, 3), torch.eye(3), alpha=-0.5)


def test_dictionary_size_mismatch(digits):
    with pytest.raises(InputError) as e:
        SparseCoder(dictionary=np.eye(10, 36, dtype=np.float32)).fit(digits.X_train)
    assert str(e.value) == (
        "dictionary atoms have 36 features, but X has 64 features; they must match "
        "(dictionary shape is (n_atoms, n_features))."
    )
    coder = SparseCoder(dictionary="dct").fit(digits.X_train)
    with pytest.raises(InputError, match=r"^X has 36 features, but SparseCoder is expecting 64 features as input\.$"):
        coder.transform(np.zeros((3, 36)))


def test_more_nonzeros_than_atoms(digits):
    with pytest.raises(InputError) as e:
        SparseCoder(solver="omp", n_atoms=10, n_nonzero=12).fit(digits.X_train)
    assert str(e.value) == "The 'n_nonzero' parameter of SparseCoder (12) must be at most the number of atoms (10)."
    with pytest.raises(InputError, match=r"^n_nonzero \(5\) must be at most the number of atoms \(3\)\.$"):
        sparse_encode(torch.ones(2, 3), torch.eye(3), solver="omp", n_nonzero=5)


def test_unknown_dictionary_and_solver(digits):
    with pytest.raises(InputError, match=r"^The 'dictionary' parameter of SparseCoder must be one of 'dct'"):
        SparseCoder(dictionary="wavelet").fit(digits.X_train)
    with pytest.raises(InputError, match=r"^The 'solver' parameter of SparseCoder must be one of 'fista', 'ista'"):
        SparseCoder(solver="lars").fit(digits.X_train)


# ---- CLI ----------------------------------------------------------------------------------------
def test_cli_train_sparse_coding(cli, tmp_path):
    out = tmp_path / "run"
    # the DCT dictionary keeps this quick (the learned default is checked in test_training_knobs, slow)
    argv = ["--set", "dictionary='dct'", "--set", "alpha=0.1", "--quiet", "--out", str(out)]
    r = cli("train", "sparse-coding", "--data", "digits", *argv)
    assert r.returncode == 0, r.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 < metrics["test_reconstruction_mse"] < 0.02
    assert 0 < metrics["test_mean_nonzeros"] < 64
    assert metrics["test_code_accuracy"] > 0.9
    assert (out / "plots" / "atoms.png").exists()
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "sparse-coding" and config["task"] == "transform"


def test_cli_bad_alpha(cli, tmp_path):
    r = cli("train", "sparse-coding", "--data", "digits", "--set", "alpha=-1", "--out", str(tmp_path / "r"))
    assert r.returncode == 2
    assert r.stderr.strip() == (
        "deepatlas train: error: The 'alpha' parameter of SparseCoder must be a float in the range [0, inf). "
        "Got -1 instead."
    )

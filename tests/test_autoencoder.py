"""The autoencoder family: shapes, persistence, quality on digits, bad input and the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.utils.estimator_checks import parametrize_with_checks

from deepatlas.data import load_dataset
from deepatlas.errors import InputError
from deepatlas.models.autoencoder.autoencoder import (
    Autoencoder,
    ConvAutoencoder,
    DenoisingAutoencoder,
    SparseAutoencoder,
    denoising_metrics,
)
from deepatlas.models.autoencoder.vae import VAE, VAENet
from deepatlas.registry import create_model
from deepatlas.runs import load, save_model, train_run

ALL = (Autoencoder, DenoisingAutoencoder, SparseAutoencoder, ConvAutoencoder, VAE)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _mse(a, b) -> float:
    return float(np.mean((np.asarray(a) - np.asarray(b)) ** 2))


# ---- contract: shapes, save/load, clone, seeds -------------------------------------------------
@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_shapes_persistence_and_seed(cls, digits, tmp_path):
    X = digits.X_train[:200]
    kw = (
        dict(code_size=6, epochs=2, hidden_sizes=(32,))
        if cls is not ConvAutoencoder
        else dict(code_size=6, epochs=2, channels=(4, 8))
    )
    model = cls(**kw).fit(X)
    Z = model.transform(digits.X_test[:7])
    assert Z.shape == (7, 6)
    assert model.inverse_transform(Z).shape == (7, 1, 8, 8)
    assert model.reconstruct(digits.X_test[:7]).shape == (7, 1, 8, 8)
    assert np.isfinite(model.score(digits.X_test[:7]))
    # flat rows of the same width are accepted and reshaped
    np.testing.assert_allclose(model.transform(digits.X_test[:7].reshape(7, 64)), Z, rtol=0, atol=0)

    save_model(model, tmp_path / "run")
    again = load(tmp_path / "run")
    assert type(again) is cls
    np.testing.assert_array_equal(again.transform(digits.X_test[:7]), Z)
    np.testing.assert_array_equal(again.inverse_transform(Z), model.inverse_transform(Z))

    twin = clone(model).fit(X)  # same seed: identical numbers
    np.testing.assert_array_equal(twin.transform(digits.X_test[:7]), Z)
    other = clone(model).set_params(seed=1).fit(X)
    assert not np.array_equal(other.transform(digits.X_test[:7]), Z)


# scikit-learn's own estimator checks, on tiny budgets.
@parametrize_with_checks(
    [
        Autoencoder(code_size=2, epochs=2, early_stopping=False, device="cpu"),
        VAE(code_size=2, epochs=2, likelihood="gaussian", early_stopping=False, device="cpu"),
    ],
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_registry_names_and_tasks():
    for name, cls in (("ae", Autoencoder), ("dae", DenoisingAutoencoder), ("sparse-ae", SparseAutoencoder)):
        assert type(create_model(name)) is cls
        assert type(create_model(name, task="classification")) is cls  # labelled data: labels ignored
    assert type(create_model("conv-ae")) is ConvAutoencoder
    assert type(create_model("vae")) is VAE and VAE._task == "generative"


def test_conv_autoencoder_odd_sizes_and_no_channel_axis():
    X = np.random.default_rng(0).uniform(0, 1, (40, 7, 9)).astype(np.float32)  # (n, H, W)
    model = ConvAutoencoder(code_size=5, epochs=1, channels=(4, 4, 4)).fit(X)
    assert model.reconstruct(X[:3]).shape == (3, 7, 9)


# ---- quality on digits (seed 0) ----------------------------------------------------------------
def test_autoencoder_beats_pca_at_code_size_16(digits):
    ae = Autoencoder(code_size=16, epochs=40).fit(digits.X_train, validation_data=digits.X_val)
    flat_tr = digits.X_train.reshape(len(digits.X_train), -1)
    flat_te = digits.X_test.reshape(len(digits.X_test), -1)
    pca = PCA(n_components=16).fit(flat_tr)
    pca_mse = _mse(pca.inverse_transform(pca.transform(flat_te)), flat_te)
    ae_mse = -ae.score(digits.X_test)
    print(f"test MSE: autoencoder {ae_mse:.5f}, PCA {pca_mse:.5f}, ratio {ae_mse / pca_mse:.3f}")
    assert ae_mse < 0.9 * pca_mse  # measured ratio 0.70 at 40 epochs


def test_denoising_autoencoder_gains_3db_at_sigma_03(digits):
    dae = DenoisingAutoencoder(code_size=32, noise_level=0.3, epochs=30).fit(
        digits.X_train, validation_data=digits.X_val
    )
    m = denoising_metrics(dae, digits.X_test, levels=(0.3,))
    print({k: round(v, 2) for k, v in m.items()})
    assert m["psnr_gaussian_0.3_noisy"] == pytest.approx(10 * math.log10(1 / 0.09), abs=0.2)
    assert m["psnr_gaussian_0.3_gain"] >= 3.0  # measured 6.3 dB
    assert m["psnr_missing_0.3_gain"] > 0  # inpainting helps too


def test_sparse_autoencoder_codes_are_sparse(digits):
    sae = SparseAutoencoder(code_size=64, sparsity="l1", sparsity_weight=0.1, epochs=15).fit(digits.X_train)
    Z = sae.transform(digits.X_test)
    share = float(np.mean(np.abs(Z) < 1e-2))
    print(f"share of near-zero codes {share:.3f}, test MSE {-sae.score(digits.X_test):.4f}")
    assert share > 0.5
    assert -sae.score(digits.X_test) < 0.03


def test_kl_sparsity_penalty_matches_closed_form():
    from deepatlas.models.autoencoder.autoencoder import kl_sparsity

    z = torch.tensor([[0.1, 0.5], [0.3, 0.5]])
    rho, target = torch.tensor([0.2, 0.5]), 0.05
    expected = (target * torch.log(target / rho) + (1 - target) * torch.log((1 - target) / (1 - rho))).sum()
    assert float(kl_sparsity(z, target)) == pytest.approx(float(expected))
    assert float(kl_sparsity(torch.full((4, 3), 0.05), 0.05)) == pytest.approx(0.0, abs=1e-6)


def test_vae_elbo_improves_and_samples_look_like_digits(digits):
    # One test, so that pytest-xdist trains this VAE once rather than once per worker.
    vae = VAE(code_size=8, epochs=40).fit(digits.X_train, validation_data=digits.X_val)
    m = vae.dataset_metrics(digits)
    print({k: round(v, 3) for k, v in m.items()})
    # At initialisation the decoder outputs ~0.5 everywhere: about 64 * log 2 = 44.4 nats.
    assert m["test_elbo_at_init"] == pytest.approx(-64 * math.log(2), abs=1.5)
    assert m["test_elbo_gain"] >= 15.0  # measured 19-20 nats after 30-40 epochs
    assert m["test_iw_bound_k100"] >= m["test_elbo"]
    assert m["test_iw_bound_k100"] - m["test_elbo"] < 2.0
    assert vae.log_likelihood(digits.X_test[:5], k=1).shape == (5,)

    # Samples, scored by the project's digits classifier.
    from deepatlas.models.mlp import MLPClassifier

    clf = MLPClassifier(hidden_sizes=(128,), epochs=30).fit(
        digits.X_train, digits.y_train, validation_data=(digits.X_val, digits.y_val)
    )
    S = vae.sample(200, seed=0)
    assert S.shape == (200, 1, 8, 8) and S.min() >= 0 and S.max() <= 1
    proba = clf.predict_proba(S)
    conf = float(proba.max(axis=1).mean())
    counts = np.bincount(proba.argmax(axis=1), minlength=10)
    print(f"mean confidence on 200 VAE samples {conf:.3f}; predicted classes {counts.tolist()}")
    assert conf > 0.6  # measured 0.72 (30 epochs) to 0.81 (60 epochs); 0.96 on real test digits
    assert (counts > 0).sum() >= 8 and counts.max() <= 0.3 * len(S)  # not one blob: most digits appear
    np.testing.assert_array_equal(vae.sample(3, seed=5), vae.sample(3, seed=5))


def test_vae_kl_term_matches_monte_carlo():
    torch.manual_seed(0)
    net = VAENet((6,), (8,), 3, "relu", "gaussian")
    x = torch.rand(4, 6)
    mu, logvar = net.posterior(x)
    _, kl = net.elbo(x, torch.zeros_like(mu))
    eps = torch.randn(200_000, *mu.shape)
    z = mu + (0.5 * logvar).exp() * eps
    log_q = (-0.5 * eps.pow(2) - 0.5 * logvar).sum(-1)
    log_p = (-0.5 * z.pow(2)).sum(-1)
    np.testing.assert_allclose(kl.detach().numpy(), (log_q - log_p).mean(0).detach().numpy(), atol=0.02)


def test_run_directory_metrics_and_pictures(digits, tmp_path):
    metrics = train_run(Autoencoder(code_size=8, epochs=2), digits, tmp_path / "ae", data_spec="digits")
    for key in ("test_mse", "pca_test_mse", "code_linear_accuracy", "psnr_gaussian_0.3_gain", "psnr_missing_0.3_gain"):
        assert key in metrics
    for png in ("reconstructions.png", "latent.png", "interpolation.png", "denoising.png"):
        assert (tmp_path / "ae" / "plots" / png).stat().st_size > 1000


# ---- bad input ---------------------------------------------------------------------------------
def test_code_size_larger_than_input(digits):
    with pytest.raises(InputError) as e:
        Autoencoder(code_size=65, epochs=1).fit(digits.X_train[:50])
    assert str(e.value) == (
        "The 'code_size' parameter of Autoencoder must be at most the number of input features (n_features = 64). "
        "Got 65 instead."
    )
    SparseAutoencoder(code_size=100, epochs=1).fit(digits.X_train[:50])  # overcomplete is fine with a penalty


def test_bad_noise_level(digits):
    with pytest.raises(InputError) as e:
        DenoisingAutoencoder(noise_level=-0.1).fit(digits.X_train[:50])
    assert str(e.value) == (
        "The 'noise_level' parameter of DenoisingAutoencoder must be a float in the range [0, inf). Got -0.1 instead."
    )
    with pytest.raises(InputError) as e:
        DenoisingAutoencoder(noise="mask", noise_level=1.5).fit(digits.X_train[:50])
    assert str(e.value) == (
        "The 'noise_level' parameter of DenoisingAutoencoder must be a probability in [0, 1] for noise='mask'. "
        "Got 1.5 instead."
    )
    with pytest.raises(InputError, match="'noise' parameter of DenoisingAutoencoder must be one of 'gaussian'"):
        DenoisingAutoencoder(noise="pink").fit(digits.X_train[:50])


def test_bernoulli_vae_needs_inputs_in_unit_interval(digits):
    X = digits.X_train[:50] * 2 - 0.5
    with pytest.raises(InputError) as e:
        VAE(epochs=1).fit(X)
    assert str(e.value) == (
        "X must lie in [0, 1] for VAE with likelihood='bernoulli'; found values from -0.5 to 1.5. "
        "Rescale it or use likelihood='gaussian'."
    )
    gaussian = VAE(epochs=1, likelihood="gaussian").fit(X)  # the Gaussian decoder takes any real values
    assert np.isfinite(gaussian.score(X))


def test_other_mistakes(digits):
    ae = Autoencoder(code_size=4, epochs=1).fit(digits.X_train[:50])
    with pytest.raises(InputError) as e:
        ae.inverse_transform(np.zeros((2, 3)))
    assert str(e.value) == "Z has 3 columns, but Autoencoder makes codes of size 4."
    with pytest.raises(InputError, match="X has 10 features, but Autoencoder is expecting 64 features"):
        ae.transform(np.zeros((2, 10)))
    with pytest.raises(InputError) as e:
        ConvAutoencoder(code_size=2, epochs=1).fit(np.zeros((30, 5), np.float32))
    assert str(e.value) == (
        "ConvAutoencoder takes images of shape (n, C, H, W) or (n, H, W). Got samples of shape (5,) instead."
    )
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        VAE().sample(2)
    with pytest.raises(InputError) as e:
        VAE(code_size=2, epochs=1).fit(digits.X_train[:50]).log_likelihood(digits.X_test[:2], k=0)
    assert str(e.value) == "k must be an int >= 1 (importance samples). Got 0 instead."


# ---- the CLI -----------------------------------------------------------------------------------
def test_cli_train_sample_transform_reconstruct(cli, digits, tmp_path):
    run = tmp_path / "vae"
    r = cli("train", "vae", "--data", "digits", "--epochs", "3", "--out", str(run), "--quiet")
    assert r.returncode == 0, r.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("test_elbo", "test_elbo_at_init", "test_iw_bound_k100", "test_mse", "pca_test_mse"):
        assert isinstance(metrics[key], float)
    assert json.loads((run / "config.json").read_text())["task"] == "generative"

    r = cli("sample", str(run), "-n", "16", "--out", str(tmp_path / "grid.png"))
    assert r.returncode == 0, r.stderr
    assert "wrote 16 samples" in r.stdout and (tmp_path / "grid.png").stat().st_size > 1000

    inp = tmp_path / "three.csv"
    flat = digits.X_test[:3].reshape(3, -1)
    inp.write_text(",".join(f"p{j}" for j in range(64)) + "\n" + "\n".join(",".join(map(str, r)) for r in flat) + "\n")
    r = cli("transform", str(run), "--input", str(inp))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0] == ",".join(f"code_{j}" for j in range(8)) and len(lines) == 4

    out = tmp_path / "rec.csv"
    r = cli("reconstruct", str(run), "--input", str(inp), "--output", str(out))
    assert r.returncode == 0, r.stderr
    rec = np.loadtxt(out, delimiter=",", skiprows=1)
    assert rec.shape == (3, 64) and rec.min() >= 0 and rec.max() <= 1

    with pytest.raises(InputError) as e:  # the CLI prints this line with exit status 2
        load(run).write_samples(tmp_path / "x.png", label="3")
    assert str(e.value) == "--label: VAE is unconditional; it takes no class to condition on."


def test_cli_transform_refuses_a_classifier(cli, digits, tmp_path):
    from deepatlas.models.mlp import MLPClassifier

    run = tmp_path / "mlp"
    save_model(MLPClassifier(hidden_sizes=(8,), epochs=1).fit(digits.X_train[:60], digits.y_train[:60]), run)
    inp = tmp_path / "x.npz"
    np.savez(inp, X=digits.X_test[:2])
    r = cli("transform", str(run), "--input", str(inp))
    assert r.returncode == 2
    assert r.stderr.strip() == (
        f"deepatlas transform: error: Run {str(run)!r} holds a MLPClassifier, which has no transform(); "
        "'deepatlas transform' needs a model that encodes data (an autoencoder, VAE, RBM or sparse coder)."
    )

"""Variational autoencoder: a latent-variable generative model trained by its evidence bound.

The decoder defines ``p(x | z)`` with a standard normal prior ``p(z)``; the encoder gives a
Gaussian ``q(z | x) = N(mu(x), diag sigma(x)^2)``. Training maximises the evidence lower bound

    ELBO(x) = E_q[log p(x | z)] - KL(q(z | x) || p(z))  <=  log p(x),

with one reparameterised sample ``z = mu + sigma * eps`` per input, so the expectation has a
gradient (Kingma & Welling, 2014, "Auto-encoding variational Bayes"; Rezende, Mohamed &
Wierstra, 2014). ``log_likelihood(X, k)`` is the importance-weighted bound with ``k`` samples,
which tightens toward ``log p(x)`` as ``k`` grows (Burda, Grosse & Salakhutdinov, 2016,
"Importance weighted autoencoders").

Decoders: ``bernoulli`` (logits; inputs must lie in [0, 1]; grey values are read as soft targets,
as is usual for digit images) or ``gaussian`` (a mean per value and a learned per-value standard
deviation, floored at 0.01). Bounds are in nats per sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from deepatlas._validation import Options, TupleOf
from deepatlas.device import seeded
from deepatlas.errors import InputError
from deepatlas.models.autoencoder.autoencoder import (
    AutoencoderBase,
    Standardize,
    _hidden,
    reconstruction_metrics,
    write_pictures,
)
from deepatlas.models.common import as_images, image_grid
from deepatlas.models.layers import ACTIVATIONS, mlp_stack
from deepatlas.registry import register_model
from deepatlas.training import TrainingLoop

_LOG_2PI = math.log(2 * math.pi)
_MIN_LOG_SIGMA = math.log(0.01)


class VAENet(nn.Module):
    """Encoder (B, *S) -> (mu, logvar) each (B, K); decoder (B, K) -> parameters (B, *S)."""

    def __init__(self, sample_shape, hidden, latent_size, activation, likelihood):
        super().__init__()
        n = int(np.prod(sample_shape))
        self.sample_shape = tuple(sample_shape)
        self.likelihood = likelihood
        self.standardize = Standardize(n)
        self.encoder = mlp_stack(n, hidden, 2 * latent_size, activation)  # (B, *S) -> (B, 2K)
        self.decoder = mlp_stack(latent_size, tuple(reversed(hidden)), n, activation)  # (B, K) -> (B, n)
        if likelihood == "gaussian":
            self.log_sigma = nn.Parameter(torch.zeros(n))  # per-value decoder noise

    def posterior(self, x: torch.Tensor):
        mu, logvar = self.encoder(self.standardize(x)).chunk(2, dim=1)  # (B, K) each
        return mu, logvar.clamp(-12.0, 8.0)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The posterior mean: the code of ``x``."""
        return self.posterior(x)[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's mean, in the input's shape: probabilities (bernoulli) or values (gaussian)."""
        out = self.decoder(z)
        out = torch.sigmoid(out) if self.likelihood == "bernoulli" else out
        return out.view(-1, *self.sample_shape)

    def log_px_given_z(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x | z) summed over the values of each sample: (B,)."""
        out = self.decoder(z)  # (B, n)
        x = x.flatten(1)
        if self.likelihood == "bernoulli":
            return -F.binary_cross_entropy_with_logits(out, x, reduction="none").sum(1)
        log_sigma = self.log_sigma.clamp(min=_MIN_LOG_SIGMA)
        return -(0.5 * ((x - out) / log_sigma.exp()) ** 2 + log_sigma + 0.5 * _LOG_2PI).sum(1)

    def elbo(self, x: torch.Tensor, eps: torch.Tensor | None = None):
        """Per-sample (ELBO, KL) with one reparameterised draw; ``eps`` (B, K) or the global RNG."""
        mu, logvar = self.posterior(x)
        eps = torch.randn_like(mu) if eps is None else eps
        z = mu + (0.5 * logvar).exp() * eps  # (B, K)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)  # closed form against N(0, I)
        return self.log_px_given_z(x, z) - kl, kl

    def forward(self, x: torch.Tensor):
        return self.elbo(x)


def negative_elbo(output, x: torch.Tensor) -> torch.Tensor:
    """The training loss: mean negative ELBO per sample (nats); ``output`` is ``(elbo, kl)``."""
    return -output[0].mean()


class VAELoop(TrainingLoop):
    """The shared loop with a step that also logs the KL term of the bound."""

    def train_step(self, xb, yb):
        elbo, kl = self.forward(xb)  # through DDP under torchrun, under autocast with bf16
        loss = -elbo.float().mean()
        self.backward_step(loss)
        return {"loss": loss.detach(), "kl": kl.mean().detach()}


@register_model(
    "vae",
    task="generative",
    description="variational autoencoder (Kingma & Welling, 2014)",
    smoke={"data": "digits", "params": {"hidden_sizes": (8,), "code_size": 2, "epochs": 2}},
)
@dataclass(eq=False, repr=False, kw_only=True)
class VAE(AutoencoderBase):
    """Variational autoencoder with a Gaussian latent of ``code_size`` dimensions.

    ``transform`` gives posterior means, ``inverse_transform`` decoder means, ``sample(n)`` new
    data, ``elbo(X)`` and ``log_likelihood(X, k)`` per-sample bounds. ``score`` is the mean
    ELBO (a log-likelihood bound, higher is better, like a density estimator's score).

    >>> from deepatlas.data import load_dataset
    >>> ds = load_dataset("digits")
    >>> vae = VAE(code_size=8, epochs=5).fit(ds.X_train)
    >>> vae.sample(4).shape
    (4, 1, 8, 8)
    """

    code_size: int = 8
    """Dimensions of the Gaussian latent space; ``transform`` returns the posterior means."""
    hidden_sizes: tuple = (256, 128)
    """Units of the encoder's hidden layers, input side first; the decoder mirrors them."""
    activation: str = "relu"
    """Non-linearity after every hidden layer of the encoder and the decoder."""
    likelihood: str = "bernoulli"
    """Decoder distribution: ``bernoulli`` for inputs in [0, 1] (e.g. pixel intensities), ``gaussian`` with a
    learned variance per value for any real data."""
    epochs: int = 300
    patience: int = 30

    _parameter_constraints: ClassVar[dict] = {
        "hidden_sizes": TupleOf(allow_empty=True),
        "activation": Options(tuple(ACTIVATIONS)),
        "likelihood": Options(("bernoulli", "gaussian")),
    }
    _task: ClassVar[str] = "generative"
    _loop_class: ClassVar[type] = VAELoop

    def _build_net(self, sample_shape, code_size):
        return VAENet(sample_shape, _hidden(self.hidden_sizes), code_size, self.activation, self.likelihood)

    def _loss(self, output, x):
        return negative_elbo(output, x)

    def _check_values(self, X, name):
        if self.likelihood == "bernoulli" and (X.min() < 0 or X.max() > 1):
            raise InputError(
                f"{name} must lie in [0, 1] for {type(self).__name__} with likelihood='bernoulli'; "
                f"found values from {float(X.min()):g} to {float(X.max()):g}. "
                "Rescale it or use likelihood='gaussian'."
            )

    # ---- bounds -----------------------------------------------------------------------------
    @torch.no_grad()
    def elbo(self, X, *, seed: int = 0, module: nn.Module | None = None) -> np.ndarray:
        """Per-sample ELBO in nats, one posterior draw each (seeded: the same numbers every call)."""
        X = self._check_input(X)
        self._check_values(X, "X")
        module = module or self.module_
        module.eval()
        device = next(module.parameters()).device
        gen = torch.Generator(device=device).manual_seed(seed)
        out = []
        for i in range(0, len(X), 1024):
            xb = self._to_tensor(X[i : i + 1024], device)
            eps = torch.randn(len(xb), self.code_size, generator=gen, device=device)
            out.append(module.elbo(xb, eps)[0])
        return torch.cat(out).double().cpu().numpy()

    @torch.no_grad()
    def log_likelihood(self, X, k: int = 100, *, seed: int = 0) -> np.ndarray:
        """Importance-weighted bound on log p(x) per sample (nats) with ``k`` posterior draws:
        ``log mean_i p(x, z_i) / q(z_i | x)`` (Burda et al., 2016); ``k = 1`` is the ELBO."""
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise InputError(f"k must be an int >= 1 (importance samples). Got {k!r} instead.")
        X = self._check_input(X)
        self._check_values(X, "X")
        module = self.module_.eval()
        device = next(module.parameters()).device
        gen = torch.Generator(device=device).manual_seed(seed)
        chunk = max(1, 8192 // k)
        out = []
        for i in range(0, len(X), chunk):
            xb = self._to_tensor(X[i : i + chunk], device)  # (B, *S)
            mu, logvar = module.posterior(xb)  # (B, K)
            std = (0.5 * logvar).exp()
            eps = torch.randn(k, *mu.shape, generator=gen, device=device)  # (k, B, K)
            z = mu + std * eps
            log_q = (-0.5 * eps.pow(2) - 0.5 * logvar - 0.5 * _LOG_2PI).sum(-1)  # (k, B)
            log_prior = (-0.5 * z.pow(2) - 0.5 * _LOG_2PI).sum(-1)  # (k, B)
            x_rep = xb.unsqueeze(0).expand(k, *xb.shape).reshape(k * len(xb), *xb.shape[1:])
            log_px = module.log_px_given_z(x_rep, z.reshape(-1, z.shape[-1])).view(k, -1)  # (k, B)
            out.append(torch.logsumexp(log_px + log_prior - log_q, dim=0) - math.log(k))
        return torch.cat(out).double().cpu().numpy()

    def score(self, X, y=None) -> float:
        """Mean ELBO per sample (nats; higher is better)."""
        return float(np.mean(self.elbo(X)))

    # ---- generation -------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int = 64, *, seed: int | None = None, temperature: float = 1.0) -> np.ndarray:
        """``n`` new samples (decoder means at ``z ~ N(0, temperature^2 I)``), in the input's shape;
        ``seed`` (default: the model's) fixes the draw."""
        self._check_fitted()
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
            raise InputError(f"n must be a positive int. Got {n!r} instead.")
        if not isinstance(temperature, (int, float)) or not temperature > 0 or not math.isfinite(temperature):
            raise InputError(f"temperature must be a positive float. Got {temperature!r} instead.")
        device = next(self.module_.parameters()).device
        if seed is None:  # the model's own seed, so repeated calls agree
            seed = self.seed or 0
        gen = torch.Generator(device=device).manual_seed(int(seed))
        z = temperature * torch.randn(int(n), self.code_size, generator=gen, device=device)
        return self._batched(self.module_.decode, z.cpu().numpy())

    def write_samples(self, out, *, n=None, prompt=None, label=None, temperature=1.0, seed=0) -> str:
        """``deepatlas sample``: a PNG grid for images, else (or for ``.csv``/``.npz``) the values."""
        if label is not None:
            raise InputError(f"--label: {type(self).__name__} is unconditional; it takes no class to condition on.")
        if prompt is not None:
            raise InputError(f"--prompt: {type(self).__name__} generates images or vectors, not text.")
        n = 64 if n is None else n
        X = self.sample(n, seed=seed, temperature=temperature)
        images = as_images(X)
        path = Path(out or ("samples.png" if images is not None else "samples.csv"))
        suffix = path.suffix.lower()
        if suffix == ".png":
            if images is None:
                raise InputError(
                    f"--out {str(path)!r}: samples of shape {X.shape[1:]} are not images; use .csv or .npz."
                )
            image_grid(images, path, rows=int(np.ceil(n / 8)) if n > 8 else 1, title=f"{n} VAE samples")
        elif suffix == ".npz":
            from deepatlas._io import atomic_savez

            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_savez(path, X=X)
        elif suffix == ".csv":
            from deepatlas._io import atomic_write_text

            flat = X.reshape(len(X), -1)
            header = ",".join(f"x{j}" for j in range(flat.shape[1]))
            rows = "\n".join(",".join(f"{v:.6g}" for v in row) for row in flat)
            atomic_write_text(path, f"{header}\n{rows}\n")
        else:
            raise InputError(f"--out {str(path)!r}: expected a .png, .csv or .npz file name.")
        return f"wrote {n} samples to {path}"

    # ---- run directories ----------------------------------------------------------------------
    def dataset_metrics(self, ds) -> dict[str, float]:
        """Reconstruction error (posterior means) against PCA, the test ELBO now and at
        initialisation, the importance-weighted bound (k = 100) and a linear probe on codes."""
        out = reconstruction_metrics(self, ds)
        out["test_elbo"] = float(np.mean(self.elbo(ds.X_test)))
        out["val_elbo"] = float(np.mean(self.elbo(ds.X_val)))
        with seeded(self.seed):  # the same initial weights as fit drew
            init = self._build_module(self.input_shape_, self.code_size).to(next(self.module_.parameters()).device)
        init.standardize.load_state_dict(self.module_.standardize.state_dict())
        out["test_elbo_at_init"] = float(np.mean(self.elbo(ds.X_test, module=init)))
        out["test_elbo_gain"] = out["test_elbo"] - out["test_elbo_at_init"]
        out["test_iw_bound_k100"] = float(np.mean(self.log_likelihood(ds.X_test, k=100)))
        plots = getattr(self, "_plot_dir", None)
        if plots:
            write_pictures(self, ds, plots)
            if as_images(ds.X_test[:1]) is not None:
                self.write_samples(Path(plots) / "samples.png", n=64, seed=0)
        return out

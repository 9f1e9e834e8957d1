"""Autoencoders: dense, denoising, sparse and convolutional.

An autoencoder learns, without labels, an encoder ``f`` to a code ``z = f(x)`` and a decoder
``g`` with ``g(f(x)) ~= x``. A code smaller than the input forces it to keep what matters most;
with one linear hidden layer and squared error it finds PCA's subspace (Baldi & Hornik, 1989),
so non-linear layers have to beat PCA at the same code size to earn their keep.

- ``Autoencoder``: dense encoder and decoder (Hinton & Salakhutdinov, 2006, "Reducing the
  dimensionality of data with neural networks").
- ``DenoisingAutoencoder``: reconstructs the clean input from a corrupted copy, so it cannot
  simply copy its input (Vincent, Larochelle, Bengio & Manzagol, 2008, "Extracting and composing
  robust features with denoising autoencoders").
- ``SparseAutoencoder``: an L1 or KL penalty keeps most code units near zero (Ng, 2011, "Sparse
  autoencoder", CS294A lecture notes; Lee, Ekanadham & Ng, 2008, "Sparse deep belief net model
  for visual area V2").
- ``ConvAutoencoder``: strided convolutions down, upsampling convolutions back (Masci, Meier,
  Ciresan & Schmidhuber, 2011, "Stacked convolutional auto-encoders for hierarchical feature
  extraction").

The variational autoencoder lives in :mod:`deepatlas.models.autoencoder.vae` and shares the base here.

All are scikit-learn transformers: ``fit(X)`` (labels ignored), ``transform`` -> codes,
``inverse_transform`` -> reconstructions in the input's shape, ``score`` -> negative mean squared
reconstruction error. Inputs keep their shape: ``(n, features)`` tables or ``(n, C, H, W)`` images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from sklearn.base import TransformerMixin
from torch import nn
from torch.nn import functional as F

from deepatlas._validation import Interval, Options, TupleOf
from deepatlas.errors import InputError
from deepatlas.models.base import FitData, TorchEstimator, check_features
from deepatlas.models.common import as_images, image_grid, linear_probe  # noqa: F401  (linear_probe: re-exported)
from deepatlas.models.layers import ACTIVATIONS, mlp_stack
from deepatlas.registry import register_model
from deepatlas.training import distributed

NOISES = ("gaussian", "mask", "salt-pepper")
# Unsupervised models train on any dataset: the labels of classification/regression data are ignored.


# ---- small blocks -----------------------------------------------------------------------------
class Standardize(nn.Module):
    """Per-feature ``(x - mean) / scale`` with the statistics as buffers (saved with the weights);
    the identity until :meth:`set` is called. (B, *S) -> (B, *S)."""

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("scale", torch.ones(n_features))

    def set(self, mean: np.ndarray, scale: np.ndarray) -> None:
        self.mean.copy_(torch.as_tensor(mean))
        self.scale.copy_(torch.as_tensor(scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x.flatten(1) - self.mean) / self.scale).view_as(x)


class Corrupt(nn.Module):
    """Corrupt inputs in training mode only (like dropout); the identity in evaluation mode.

    ``gaussian``: add N(0, level^2) noise; ``mask``: zero each value with probability ``level``;
    ``salt-pepper``: set each value with probability ``level`` to 0 or 1 (half each).
    """

    def __init__(self, kind: str, level: float) -> None:
        super().__init__()
        self.kind, self.level = kind, float(level)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.level == 0:
            return x
        return corrupt(x, self.kind, self.level)


def corrupt(x: torch.Tensor, kind: str, level: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """A corrupted copy of ``x`` (see :class:`Corrupt`); draws from ``generator`` when given."""
    if kind == "gaussian":
        return x + level * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    if kind == "mask":
        return x * (u >= level)
    salt = (u < level / 2).to(x.dtype)
    pepper = (u > 1 - level / 2).to(x.dtype)
    return x * (1 - salt - pepper) + salt  # salt -> 1, pepper -> 0


class DenseAutoencoderNet(nn.Module):
    """(B, *S) -> (reconstruction (B, *S), code (B, K)); the decoder mirrors the encoder."""

    def __init__(self, sample_shape, hidden, code_size, activation, code_activation, output_activation, noise=None):
        super().__init__()
        n = int(np.prod(sample_shape))
        self.sample_shape = tuple(sample_shape)
        self.corrupt = Corrupt(*noise) if noise else nn.Identity()
        self.standardize = Standardize(n)
        self.encoder = mlp_stack(n, hidden, code_size, activation)  # (B, *S) -> (B, K)
        self.code_activation = _activation(code_activation)
        self.decoder = mlp_stack(code_size, tuple(reversed(hidden)), n, activation)  # (B, K) -> (B, n)
        self.output_activation = _activation(output_activation)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        z = self.encoder(self.standardize(x))  # (B, K)
        return z if self.code_activation is None else self.code_activation(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        out = self.decoder(z)  # (B, n)
        out = out if self.output_activation is None else self.output_activation(out)
        return out.view(-1, *self.sample_shape)  # (B, *S)

    def forward(self, x: torch.Tensor):
        z = self.encode(self.corrupt(x))
        return self.decode(z), z


class ConvAutoencoderNet(nn.Module):
    """Images (B, C, H, W): stride-2 convolutions halve the size per stage, a linear layer makes
    the code; the decoder upsamples to each stage's exact size and convolves, so odd sizes work."""

    def __init__(self, sample_shape, channels, kernel_size, code_size, output_activation, noise=None):
        super().__init__()
        self.sample_shape = tuple(sample_shape)
        self.image_shape = (1, *sample_shape) if len(sample_shape) == 2 else tuple(sample_shape)  # (C, H, W)
        c, h, w = self.image_shape
        self.corrupt = Corrupt(*noise) if noise else nn.Identity()
        self.standardize = Standardize(c * h * w)
        pad = kernel_size // 2
        sizes = [(h, w)]
        enc: list[nn.Module] = []
        c_in = c
        for c_out in channels:
            enc += [nn.Conv2d(c_in, c_out, kernel_size, stride=2, padding=pad), nn.ReLU()]
            h, w = (h + 2 * pad - kernel_size) // 2 + 1, (w + 2 * pad - kernel_size) // 2 + 1
            sizes.append((h, w))
            c_in = c_out
        flat = c_in * h * w
        self.encoder = nn.Sequential(*enc, nn.Flatten(), nn.Linear(flat, code_size))  # (B, C, H, W) -> (B, K)
        dec: list[nn.Module] = [nn.Linear(code_size, flat), nn.ReLU(), nn.Unflatten(1, (c_in, h, w))]
        outs = list(reversed((c, *channels[:-1])))
        for i, c_out in enumerate(outs):
            dec += [nn.Upsample(size=sizes[-2 - i], mode="nearest"), nn.Conv2d(c_in, c_out, kernel_size, padding=pad)]
            if i < len(outs) - 1:
                dec.append(nn.ReLU())
            c_in = c_out
        self.decoder = nn.Sequential(*dec)  # (B, K) -> (B, C, H, W)
        self.output_activation = _activation(output_activation)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.standardize(x).reshape(-1, *self.image_shape))  # (B, K)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        out = self.decoder(z)  # (B, C, H, W)
        out = out if self.output_activation is None else self.output_activation(out)
        return out.view(-1, *self.sample_shape)  # (B, *S)

    def forward(self, x: torch.Tensor):
        z = self.encode(self.corrupt(x))
        return self.decode(z), z


def _activation(name: str) -> nn.Module | None:
    return None if name == "linear" else ACTIVATIONS[name]()


# ---- losses -------------------------------------------------------------------------------------
def reconstruction_loss(output, x: torch.Tensor) -> torch.Tensor:
    """Mean squared error per value; ``output`` is ``(reconstruction, code)``."""
    return F.mse_loss(output[0], x)


def l1_penalty(z: torch.Tensor) -> torch.Tensor:
    """Mean absolute code value."""
    return z.abs().mean()


def kl_sparsity(z: torch.Tensor, target: float) -> torch.Tensor:
    """Sum over code units of KL(target || mean activation), codes in (0, 1) (Ng, 2011)."""
    rho = z.mean(dim=0).clamp(1e-6, 1 - 1e-6)  # (K,)
    return (target * torch.log(target / rho) + (1 - target) * torch.log((1 - target) / (1 - rho))).sum()


# ---- the shared estimator ----------------------------------------------------------------------
@dataclass(eq=False, repr=False, kw_only=True)
class AutoencoderBase(TransformerMixin, TorchEstimator):
    """Fitting, coding, decoding, metrics and pictures shared by the autoencoder family.

    A leaf overrides ``_build_net(sample_shape, code_size)`` (a module with ``encode``, ``decode``,
    ``forward(x) -> (reconstruction, code)`` and a ``standardize`` layer) and, for extra loss
    terms, ``_loss``.
    """

    code_size: int = 16
    """Length of the code (the bottleneck) that ``transform`` returns; a plain autoencoder needs it smaller
    than the input."""
    epochs: int = 300
    batch_size: int = 64
    lr: float = 1e-3
    patience: int = 20
    standardize: bool = False
    """Standardise the encoder's input with the training statistics (a layer inside the network, so it is
    exported too); the reconstruction is compared with the raw input."""

    _parameter_constraints: ClassVar[dict] = {"code_size": Interval(int, 1, None)}
    _task: ClassVar[str] = "transform"
    _monitor: ClassVar[tuple[str, str]] = ("val_loss", "min")
    # An undercomplete code is what keeps a plain autoencoder from learning the identity; the
    # denoising and sparse variants are kept from it by their noise or penalty instead.
    _allow_overcomplete: ClassVar[bool] = False

    # ---- hooks ----------------------------------------------------------------------------
    def _build_net(self, sample_shape, code_size) -> nn.Module:
        """The network: ``encode``, ``decode``, ``forward(x) -> (reconstruction, code)`` and a
        ``standardize`` layer."""
        raise NotImplementedError

    def _build_module(self, sample_shape, code_size) -> nn.Module:
        net = self._build_net(sample_shape, code_size)
        if not self.standardize:
            net.standardize = nn.Identity()  # no per-step cost (and no buffers) when unused
        else:
            net.standardize.set(self.mean_, self.scale_)  # the training statistics, inside the graph
        return net

    def _loss(self, output, x):
        return reconstruction_loss(output, x)

    def _check_values(self, X: np.ndarray, name: str) -> None:
        """Extra checks on the values of ``X`` (e.g. a Bernoulli decoder needs [0, 1])."""

    # ---- fitting: the input is its own target ---------------------------------------------------
    def fit(self, X, y=None, *, validation_data=None, callbacks=(), checkpoint_dir=None, resume: bool = False):
        """Learn to reconstruct ``X`` (``y`` is ignored: no labels are used).

        Parameters
        ----------
        validation_data : optional ``X_val`` (or ``(X_val, y_val)``) for early stopping;
            otherwise, with ``early_stopping``, a random ``validation_fraction`` of ``X`` is held out.
        checkpoint_dir, resume : write a checkpoint there after every epoch; continue from it.
        """
        return super().fit(
            X, None, validation_data=validation_data, callbacks=callbacks, checkpoint_dir=checkpoint_dir, resume=resume
        )

    def _prepare_fit(self, X, y, validation_data) -> FitData:
        name = type(self).__name__
        X = check_features(X, name)
        self._check_values(X, "X")
        X_val = None
        if validation_data is not None:
            raw = validation_data[0] if isinstance(validation_data, tuple) else validation_data
            X_val = check_features(raw, name)
            if int(np.prod(X_val.shape[1:])) != int(np.prod(X.shape[1:])):
                raise InputError(
                    f"validation_data has {int(np.prod(X_val.shape[1:]))} features, but X has {int(np.prod(X.shape[1:]))}."
                )
            X_val = X_val.reshape(len(X_val), *X.shape[1:])
            self._check_values(X_val, "validation_data")
        self.input_shape_ = tuple(int(s) for s in X.shape[1:])
        self.n_features_in_ = int(np.prod(self.input_shape_))
        if self.code_size > self.n_features_in_ and not self._allow_overcomplete:
            raise InputError(
                f"The 'code_size' parameter of {name} must be at most the number of input features "
                f"(n_features = {self.n_features_in_}). Got {self.code_size} instead."
            )
        return FitData(X, None, X_val, None, self.code_size)

    def _holdout(self, X, targets):
        perm = np.random.default_rng(self.seed).permutation(len(X))
        n_val = max(1, int(round(self.validation_fraction * len(X))))
        return X[perm[n_val:]], None, X[perm[:n_val]], None

    def _fit_tensors(self, data: FitData, device) -> tuple:
        # The standardisation is a layer of the network, so the tensors stay in the data's units.
        Xt = self._to_tensor(data.X, device)
        Xv = self._to_tensor(data.X_val, device) if data.X_val is not None else None
        return Xt, Xt, Xv, Xv

    # ---- transformer API --------------------------------------------------------------------
    @torch.no_grad()
    def _batched(self, fn, X: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        self.module_.eval()
        device = next(self.module_.parameters()).device
        outs = [fn(self._to_tensor(X[i : i + batch_size], device)) for i in range(0, len(X), batch_size)]
        return torch.cat(outs).float().cpu().numpy()

    def transform(self, X) -> np.ndarray:
        """Codes of ``X``: shape (n_samples, code_size), float64 for float64 input, else float32."""
        dtype = _out_dtype(X)
        X = self._check_input(X)
        return self._batched(self.module_.encode, X).astype(dtype, copy=False)

    def _check_codes(self, Z) -> np.ndarray:
        self._check_fitted()
        Z = check_features(Z, type(self).__name__, allow_nd=False)
        if Z.shape[1] != self.code_size:
            raise InputError(
                f"Z has {Z.shape[1]} columns, but {type(self).__name__} makes codes of size {self.code_size}."
            )
        return Z

    def inverse_transform(self, Z) -> np.ndarray:
        """Decode codes ``Z`` (n_samples, code_size) to inputs of the training shape."""
        return self._batched(self.module_.decode, self._check_codes(Z)).astype(_out_dtype(Z), copy=False)

    def reconstruct(self, X) -> np.ndarray:
        """``inverse_transform(transform(X))``: the model's copy of ``X``, in ``X``'s shape."""
        X = self._check_input(X)
        return self._batched(lambda x: self.module_.decode(self.module_.encode(x)), X)

    def score(self, X, y=None) -> float:
        """Negative mean squared reconstruction error (higher is better, as scikit-learn expects)."""
        X = self._check_input(X)
        return -float(np.mean((self.reconstruct(X) - X) ** 2))

    # ---- run directories -------------------------------------------------------------------
    def fit_dataset(self, ds, *, checkpoint_dir=None, resume: bool = False):
        """``deepatlas train``: fit on the training split (labels unused), stop early on validation."""
        # Pictures go beside the run's other plots, written once (rank 0 under torchrun).
        main = distributed.is_main_process()
        self._plot_dir = None if checkpoint_dir is None or not main else f"{checkpoint_dir}/plots"
        return self.fit(ds.X_train, validation_data=ds.X_val, checkpoint_dir=checkpoint_dir, resume=resume)

    def dataset_metrics(self, ds) -> dict[str, float]:
        """Reconstruction error on every split, PCA's at the same code size, a linear classifier
        on the codes (when the data have labels), denoising and inpainting gains; pictures."""
        out = reconstruction_metrics(self, ds)
        out.update(denoising_metrics(self, ds.X_test, data_range=_data_range(ds.X_train)))
        if getattr(self, "_plot_dir", None):
            write_pictures(self, ds, self._plot_dir)
        return out


def _out_dtype(X) -> type:
    """Outputs keep float64 when the input is float64 (as scikit-learn's transformers do)."""
    return np.float64 if getattr(X, "dtype", None) == np.float64 else np.float32


# ---- measures (shared with the VAE) --------------------------------------------------------------
def _data_range(X: np.ndarray) -> float:
    span = float(np.max(X) - np.min(X))
    return span if span > 0 else 1.0


def psnr(mse: float, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB."""
    return float(10 * np.log10(data_range**2 / max(mse, 1e-12)))


def reconstruction_metrics(est, ds) -> dict[str, float]:
    from sklearn.decomposition import PCA

    out: dict[str, float] = {}
    for split, X in (("train", ds.X_train), ("val", ds.X_val), ("test", ds.X_test)):
        out[f"{split}_mse"] = float(np.mean((est.reconstruct(X) - X) ** 2))
    data_range = _data_range(ds.X_train)
    out["test_psnr"] = psnr(out["test_mse"], data_range)
    flat_tr, flat_te = ds.X_train.reshape(len(ds.X_train), -1), ds.X_test.reshape(len(ds.X_test), -1)
    k = min(est.code_size, *flat_tr.shape)
    pca = PCA(n_components=k, random_state=0).fit(flat_tr)
    out["pca_test_mse"] = float(np.mean((pca.inverse_transform(pca.transform(flat_te)) - flat_te) ** 2))
    out["test_mse_over_pca"] = out["test_mse"] / max(out["pca_test_mse"], 1e-12)
    if ds.task == "classification" and ds.y_train is not None and len(np.unique(ds.y_train)) > 1:
        out["code_linear_accuracy"] = linear_probe(
            est.transform(ds.X_train), ds.y_train, est.transform(ds.X_test), ds.y_test
        )
        out["pca_linear_accuracy"] = linear_probe(pca.transform(flat_tr), ds.y_train, pca.transform(flat_te), ds.y_test)
    return out


def denoising_metrics(est, X, *, data_range: float = 1.0, levels=(0.1, 0.3, 0.5), missing: float = 0.3, seed: int = 0):
    """PSNR of noisy / masked inputs and of the model's reconstructions of them (Gaussian noise
    at each level, unclipped; ``missing`` of the values set to 0 for inpainting)."""
    gen = torch.Generator().manual_seed(seed)
    Xt = torch.as_tensor(X)
    out: dict[str, float] = {}
    cases = [(f"gaussian_{s:g}", "gaussian", s) for s in levels] + [(f"missing_{missing:g}", "mask", missing)]
    for tag, kind, level in cases:
        noisy = corrupt(Xt, kind, level, gen).numpy()
        before = psnr(float(np.mean((noisy - X) ** 2)), data_range)
        after = psnr(float(np.mean((est.reconstruct(noisy) - X) ** 2)), data_range)
        out[f"psnr_{tag}_noisy"], out[f"psnr_{tag}_denoised"] = before, after
        out[f"psnr_{tag}_gain"] = after - before
    return out


# ---- pictures -----------------------------------------------------------------------------------
def write_pictures(est, ds, directory) -> None:
    """reconstructions.png (originals above reconstructions), latent.png (2-D codes coloured by
    class; first two principal components when the code is larger), interpolation.png (a line
    between two test codes); denoising.png (clean, noisy and masked inputs with the model's
    repairs) for image data."""
    from pathlib import Path

    from deepatlas.plotting import new_figure, save_figure

    directory = Path(directory)
    name = type(est).__name__
    X = ds.X_test[:10]
    orig, rec = as_images(X), as_images(est.reconstruct(X))
    if orig is not None:
        image_grid(
            np.concatenate([orig, rec]),
            directory / "reconstructions.png",
            rows=2,
            title=f"{name}: originals (top), reconstructions (bottom)",
        )
        gen = torch.Generator().manual_seed(0)
        noisy = corrupt(torch.as_tensor(X), "gaussian", 0.3, gen).numpy()
        holes = corrupt(torch.as_tensor(X), "mask", 0.3, gen).numpy()
        rows = [orig, noisy, est.reconstruct(noisy), holes, est.reconstruct(holes)]
        image_grid(
            np.concatenate([as_images(r) for r in rows]),
            directory / "denoising.png",
            rows=5,
            title=f"{name}: clean / noise 0.3 / repaired / 30% missing / repaired",
            value_range=(float(orig.min()), float(orig.max())),  # the clean images' grey scale
        )
        Z = est.transform(ds.X_test[:2])
        line = np.linspace(0, 1, 10)[:, None]
        image_grid(
            as_images(est.inverse_transform((1 - line) * Z[0] + line * Z[1])),
            directory / "interpolation.png",
            rows=1,
            title=f"{name}: decoded codes on a line",
        )
    Z = est.transform(ds.X_test)
    if Z.shape[1] > 2:
        from sklearn.decomposition import PCA

        Z = PCA(n_components=2, random_state=0).fit_transform(Z)
    fig, ax = new_figure(figsize=(5, 4.2))
    labels = ds.y_test if ds.task == "classification" and ds.y_test is not None else None
    sc = ax.scatter(Z[:, 0], Z[:, 1], c=labels if labels is not None else "tab:blue", cmap="tab10", s=8)
    if labels is not None:
        fig.colorbar(sc, ax=ax, label="class")
    ax.set_title(f"{name}: test codes" + (" (PCA of codes)" if est.code_size > 2 else ""), fontsize=9)
    save_figure(fig, directory / "latent.png")


# ---- the registered models ----------------------------------------------------------------------
def _hidden(hidden_sizes) -> tuple[int, ...]:
    return (hidden_sizes,) if isinstance(hidden_sizes, int) else tuple(hidden_sizes)


@dataclass(eq=False, repr=False, kw_only=True)
class _DenseBase(AutoencoderBase):
    hidden_sizes: tuple = (256,)
    """Units of the encoder's hidden layers, input side first; the decoder mirrors them. Empty maps
    the input to the code (and back) with one linear layer."""
    activation: str = "relu"
    """Non-linearity after every hidden layer of the encoder and the decoder."""
    output_activation: str = "linear"
    """Activation of the reconstruction: ``linear`` for any values, ``sigmoid`` for inputs in [0, 1]."""

    _parameter_constraints: ClassVar[dict] = {
        "hidden_sizes": TupleOf(allow_empty=True),
        "activation": Options(tuple(ACTIVATIONS)),
        "output_activation": Options(("linear", "sigmoid")),
    }
    _code_activation: ClassVar[str] = "linear"

    def _noise(self):
        return None

    def _build_net(self, sample_shape, code_size):
        return DenseAutoencoderNet(
            sample_shape,
            _hidden(self.hidden_sizes),
            code_size,
            self.activation,
            self._code_activation,
            self.output_activation,
            self._noise(),
        )


@register_model(
    "ae",
    task="transform",
    description="dense autoencoder (codes, reconstructions)",
    smoke={"data": "digits", "params": {"hidden_sizes": (8,), "code_size": 4, "epochs": 2}},
)
@dataclass(eq=False, repr=False, kw_only=True)
class Autoencoder(_DenseBase):
    """Dense autoencoder: ``Flatten -> hidden -> code_size -> reversed hidden -> input``.

    >>> from deepatlas.data import load_dataset
    >>> ds = load_dataset("digits")
    >>> ae = Autoencoder(code_size=16, epochs=5).fit(ds.X_train)
    >>> ae.transform(ds.X_test).shape, ae.inverse_transform(ae.transform(ds.X_test)).shape
    ((360, 16), (360, 1, 8, 8))
    """


@register_model(
    "dae",
    task="transform",
    description="denoising autoencoder (Vincent et al., 2008)",
    smoke={"data": "digits", "params": {"hidden_sizes": (8,), "code_size": 4, "epochs": 2}},
)
@dataclass(eq=False, repr=False, kw_only=True)
class DenoisingAutoencoder(_DenseBase):
    """Dense autoencoder trained to reconstruct clean inputs from corrupted ones.

    ``noise``: ``gaussian`` (add N(0, noise_level^2), for inputs scaled to about [0, 1]),
    ``mask`` (zero a fraction ``noise_level`` of the values) or ``salt-pepper`` (set a fraction
    ``noise_level`` to 0 or 1). Corruption happens in training only; ``transform`` codes the
    input as given, so ``reconstruct(noisy)`` denoises.
    """

    noise: str = "gaussian"
    """How training inputs are corrupted: ``gaussian`` adds N(0, noise_level^2) noise, ``mask`` zeroes values,
    ``salt-pepper`` sets values to 0 or 1."""
    noise_level: float = 0.3
    """Standard deviation of the Gaussian noise, or the probability that a value is masked or salted (at most
    1)."""

    _parameter_constraints: ClassVar[dict] = {
        "noise": Options(NOISES),
        "noise_level": Interval(float, 0, None),
    }
    _allow_overcomplete: ClassVar[bool] = True

    def _validate_params(self) -> None:
        super()._validate_params()
        if self.noise != "gaussian" and self.noise_level > 1:
            raise InputError(
                f"The 'noise_level' parameter of {type(self).__name__} must be a probability in [0, 1] "
                f"for noise={self.noise!r}. Got {self.noise_level!r} instead."
            )

    def _noise(self):
        return (self.noise, self.noise_level)


@register_model(
    "sparse-ae",
    task="transform",
    description="sparse autoencoder (L1 or KL penalty on codes)",
    smoke={"data": "digits", "params": {"hidden_sizes": (8,), "code_size": 8, "epochs": 2}},
)
@dataclass(eq=False, repr=False, kw_only=True)
class SparseAutoencoder(_DenseBase):
    """Dense autoencoder whose codes are pushed toward zero.

    ``sparsity="l1"``: ReLU codes, loss + ``sparsity_weight`` * mean |code|.
    ``sparsity="kl"``: sigmoid codes, loss + ``sparsity_weight`` * sum_j KL(``sparsity_target`` ||
    mean activation of unit j) (Ng, 2011). The code may be larger than the input (overcomplete):
    the penalty, not the bottleneck, keeps it from copying.
    """

    code_size: int = 64
    sparsity: str = "l1"
    """The penalty: ``l1`` on ReLU codes (mean absolute code), or ``kl`` on sigmoid codes (each unit's mean
    activation pulled toward ``sparsity_target``)."""
    sparsity_weight: float = 0.1
    """Weight of the sparsity penalty against the squared reconstruction error."""
    sparsity_target: float = 0.05
    """Mean activation each code unit should have under the ``kl`` penalty; unused with ``l1``."""

    _parameter_constraints: ClassVar[dict] = {
        "sparsity": Options(("l1", "kl")),
        "sparsity_weight": Interval(float, 0, None),
        "sparsity_target": Interval(float, 0, 1, "neither"),
    }
    _allow_overcomplete: ClassVar[bool] = True

    @property
    def _code_activation(self) -> str:  # type: ignore[override]
        return "relu" if self.sparsity == "l1" else "sigmoid"

    def _loss(self, output, x):
        recon, z = output
        penalty = l1_penalty(z) if self.sparsity == "l1" else kl_sparsity(z, self.sparsity_target)
        return F.mse_loss(recon, x) + self.sparsity_weight * penalty

    def dataset_metrics(self, ds):
        out = super().dataset_metrics(ds)
        Z = self.transform(ds.X_test)
        out["code_mean_activation"] = float(np.mean(Z))
        out["code_share_near_zero"] = float(np.mean(np.abs(Z) < 1e-2))
        return out


@register_model(
    "conv-ae",
    task="transform",
    description="convolutional autoencoder for images",
    smoke={"data": "digits", "params": {"channels": (4,), "code_size": 4, "epochs": 2}},
)
@dataclass(eq=False, repr=False, kw_only=True)
class ConvAutoencoder(AutoencoderBase):
    """Convolutional autoencoder for images ``(n, C, H, W)`` (or ``(n, H, W)``, one channel).

    Each of ``channels`` is a stride-2 convolution; a linear layer maps to the code. The decoder
    mirrors it with nearest-neighbour upsampling and convolutions.
    """

    channels: tuple = (32, 64)
    """Output channels of each stride-2 convolution of the encoder (each halves height and width); the decoder
    mirrors them."""
    kernel_size: int = 3
    """Side of every square convolution kernel, in pixels."""
    output_activation: str = "linear"
    """Activation of the reconstruction: ``linear`` for any values, ``sigmoid`` for inputs in [0, 1]."""

    _parameter_constraints: ClassVar[dict] = {
        "channels": TupleOf(),
        "kernel_size": Interval(int, 1, None),
        "output_activation": Options(("linear", "sigmoid")),
    }

    def _build_net(self, sample_shape, code_size):
        if len(sample_shape) not in (2, 3):
            raise InputError(
                f"{type(self).__name__} takes images of shape (n, C, H, W) or (n, H, W). "
                f"Got samples of shape {tuple(sample_shape)} instead."
            )
        return ConvAutoencoderNet(
            sample_shape, _hidden(self.channels), self.kernel_size, code_size, self.output_activation
        )

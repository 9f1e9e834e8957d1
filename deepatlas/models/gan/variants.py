"""GAN variants: the convolutional DCGAN, and GANs with codes: the class-conditional GAN and InfoGAN.

References
----------
- Radford, Metz & Chintala (2016), "Unsupervised representation learning with deep convolutional
  generative adversarial networks" (DCGAN): strided (transposed) convolutions, batch norm,
  ReLU in the generator, LeakyReLU in the discriminator, Adam with beta1 = 0.5.
- Mirza & Osindero (2014), "Conditional generative adversarial nets": both players see the
  class label (here a one-hot vector concatenated to the noise and to the discriminator's input),
  so the generator draws from p(x | y).
- Chen et al. (2016), "InfoGAN: Interpretable representation learning by information maximizing
  generative adversarial nets": the generator also receives a categorical code and continuous
  codes; an auxiliary head Q on the discriminator's body recovers them from the generated sample,
  and the variational lower bound of the mutual information I(c; G(z, c)) is maximised by
  minimising the cross-entropy of the categorical code plus the squared error of the continuous
  ones (a fixed-variance Gaussian), weighted by ``info_weight``.

The loop, scaling, sampling, saving and measures are :class:`deepatlas.models.gan.gan.GANBase`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from deepatlas._validation import Interval, TupleOf
from deepatlas.errors import InputError
from deepatlas.models.gan.gan import GANBase, MLPCritic, MLPGenerator, Players, _register
from deepatlas.models.layers import ACTIVATIONS


# ---- DCGAN ---------------------------------------------------------------------------------------
class ConvGenerator(nn.Module):
    """DCGAN generator: (B, latent) -> Linear -> (B, c_last, H/2^s, W/2^s) -> s x [ConvTranspose
    stride 2, batch norm, ReLU] -> (B, C, H, W) with ``tanh``."""

    def __init__(self, n_in: int, channels: tuple, sample_shape: tuple) -> None:
        super().__init__()
        c_img, h, w = sample_shape
        s = 2 ** len(channels)
        self.start = (channels[-1], h // s, w // s)
        self.project = nn.Sequential(
            nn.Linear(n_in, int(np.prod(self.start))), nn.BatchNorm1d(int(np.prod(self.start))), nn.ReLU()
        )
        layers: list[nn.Module] = []
        widths = list(reversed(channels))  # e.g. (128, 64)
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), nn.BatchNorm2d(c_out), nn.ReLU()]  # doubles H, W
        layers += [nn.ConvTranspose2d(widths[-1], c_img, 4, 2, 1), nn.Tanh()]
        self.up = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.up(self.project(z).view(len(z), *self.start))  # (B, C, H, W)


class ConvCritic(nn.Module):
    """DCGAN discriminator: s x [Conv stride 2, batch norm (not on the first), LeakyReLU] ->
    Linear -> (B, n_out) logits."""

    def __init__(self, channels: tuple, sample_shape: tuple, n_out: int = 1) -> None:
        super().__init__()
        c_in, h, w = sample_shape
        layers: list[nn.Module] = []
        for i, c in enumerate(channels):
            layers.append(nn.Conv2d(c_in, c, 4, 2, 1))  # halves H, W
            if i > 0:
                layers.append(nn.BatchNorm2d(c))
            layers.append(ACTIVATIONS["leaky_relu"]())
            c_in = c
        s = 2 ** len(channels)
        layers += [nn.Flatten(), nn.Linear(c_in * (h // s) * (w // s), n_out)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(x)


@_register(
    "dcgan",
    "DCGAN (Radford et al., 2016): convolutional players with batch norm",
    smoke={"data": "digits", "params": {"channels": (4, 8), "hidden_sizes": (8,), "epochs": 1}},
)
@dataclass(eq=False, repr=False, kw_only=True)
class DCGAN(GANBase):
    """Deep convolutional GAN for images ``(n, C, H, W)``; H and W divisible by
    ``2 ** len(channels)``. ``channels`` lists the discriminator's widths (the generator mirrors them)."""

    channels: tuple = (64, 128)
    """Widths of the discriminator's stride-2 convolutions, input side first (the generator mirrors them);
    image height and width must be divisible by ``2 ** len(channels)``."""
    latent_dim: int = 32
    batch_size: int = 64
    lr: float = 2e-4

    _parameter_constraints: ClassVar[dict] = {"channels": TupleOf()}

    def _check_data(self, X):
        s = 2 ** len(self._channels())
        if X.ndim != 4:
            raise InputError(
                f"DCGAN needs images X of shape (n, channels, height, width). Got an array of shape {X.shape} "
                "instead; use 'gan' or 'wgan-gp' for vector data."
            )
        if X.shape[2] % s or X.shape[3] % s:
            raise InputError(
                f"DCGAN needs image height and width divisible by {s} (2 ** len(channels)). "
                f"Got {X.shape[2]}x{X.shape[3]} instead."
            )

    def _channels(self) -> tuple:
        return (self.channels,) if isinstance(self.channels, int) else tuple(self.channels)

    def _build_players(self, sample_shape):
        return Players(
            ConvGenerator(self._code_size(), self._channels(), sample_shape),
            ConvCritic(self._channels(), sample_shape),
        )


# ---- CGAN -------------------------------------------------------------------------------------
@_register(
    "cgan",
    "conditional GAN (Mirza & Osindero, 2014): both players see the class label",
    smoke={"data": "digits", "params": {"hidden_sizes": (8,), "epochs": 1}},
)
@dataclass(eq=False, repr=False, kw_only=True)
class CGAN(GANBase):
    """Class-conditional GAN with MLP players; ``fit(X, y)`` needs labels, ``sample(n, y)``
    draws samples of the given labels (by default the classes in turn).

    >>> from deepatlas.data import load_dataset
    >>> ds = load_dataset("ring8")
    >>> CGAN(epochs=2).fit(ds.X_train, ds.y_train).sample(4, y=3).shape
    (4, 2)
    """

    latent_dim: int = 32
    hidden_sizes: tuple = (256, 256)
    batch_size: int = 64
    lr: float = 2e-4
    epochs: int = 200

    _conditional: ClassVar[bool] = True

    def _fit_labels(self, y, n: int) -> np.ndarray:
        if y is None:
            raise InputError("CGAN requires y, the class labels to condition on, but y is None.")
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y.ravel()
        if y.ndim != 1:
            raise InputError(f"y must be 1-D class labels for CGAN. Got shape {y.shape} instead.")
        if len(y) != n:
            raise InputError(f"X and y have inconsistent numbers of samples: X has {n}, y has {len(y)}.")
        self.classes_ = np.unique(y)
        return np.searchsorted(self.classes_, y).astype(np.int64)

    def _code_size(self) -> int:
        return self.latent_dim + len(self.classes_)

    def _build_players(self, sample_shape):
        n, k = int(np.prod(sample_shape)), len(self.classes_)
        return Players(
            MLPGenerator(self._code_size(), self._hidden(), sample_shape, self.bounded_),
            MLPCritic(n + k, self._hidden()),
        )

    def _codes(self, n, yb, gen):
        onehot = F.one_hot(yb, len(self.classes_)).float()  # (B, K)
        z = torch.randn(n, self.latent_dim, generator=gen, device=gen.device)
        return {"z": torch.cat([z, onehot], dim=1), "cond": onehot}

    def _critic_loss(self, loop, real, fake, codes, yb):
        D, c = loop.module.discriminator, codes["cond"]
        return F.softplus(-D(real, c)).mean() + F.softplus(D(fake, c)).mean()

    def _generator_loss(self, loop, fake, codes, yb):
        return F.softplus(-loop.module.discriminator(fake, codes["cond"])).mean()

    # ---- labels at sampling time ----------------------------------------------------------
    def _label_index(self, y, n: int) -> np.ndarray:
        y = np.asarray(y)
        if y.ndim == 0:
            y = np.full(n, y.item())
        if y.shape != (n,):
            raise InputError(f"y must be one label or {n} labels (one per sample). Got shape {y.shape} instead.")
        known = {str(c) for c in self.classes_}
        unseen = [v for v in np.unique(y) if str(v) not in known]
        if unseen:
            shown = ", ".join(str(c) for c in self.classes_[:20])
            first = unseen[0].item() if isinstance(unseen[0], np.generic) else unseen[0]
            raise InputError(f"label {first!r} was never seen in training; CGAN knows labels {shown}.")
        lookup = {str(c): i for i, c in enumerate(self.classes_)}
        return np.array([lookup[str(v)] for v in y], dtype=np.int64)

    def _sample_codes(self, n, y, gen):
        idx = self._label_index(self._grid_labels(n) if y is None else y, n)
        return self._codes(n, torch.as_tensor(idx, device=gen.device), gen)

    def _grid_labels(self, n: int) -> np.ndarray:
        """``n`` labels in equal sorted blocks: each class in turn."""
        return self.classes_[np.arange(n) * len(self.classes_) // n]

    def _label_from_text(self, label):
        for c in self.classes_:
            if str(c) == str(label):
                return c
        shown = ", ".join(str(c) for c in self.classes_[:20])
        raise InputError(f"label {label!r} was never seen in training; CGAN knows labels {shown}.")

    # ---- persistence ----------------------------------------------------------------------
    def _fitted_state(self):
        tensors, meta = super()._fitted_state()
        meta["classes_"] = self.classes_.tolist()
        return tensors, meta

    def _restore_state(self, tensors, meta):
        self.classes_ = np.array(meta["classes_"])
        super()._restore_state(tensors, meta)


# ---- InfoGAN ----------------------------------------------------------------------------------
class InfoCritic(nn.Module):
    """A shared body with two heads: the discriminator's logit and Q, which predicts the
    categorical code (logits) and the continuous codes (means) from a sample."""

    def __init__(self, n_in: int, hidden: tuple, n_categories: int, n_continuous: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for h in hidden:
            layers += [nn.Linear(n_in, h), ACTIVATIONS["leaky_relu"]()]
            n_in = h
        self.body = nn.Sequential(*layers)
        self.d_head = nn.Linear(n_in, 1)
        self.q_head = nn.Linear(n_in, n_categories + n_continuous)
        self.n_categories = n_categories

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        return self.d_head(self.body(x.flatten(1)))  # (B, 1)

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.body(x.flatten(1))  # (B, H)
        q = self.q_head(h)  # (B, K + n_cont)
        return self.d_head(h), q[:, : self.n_categories], q[:, self.n_categories :]


@_register(
    "infogan",
    "InfoGAN (Chen et al., 2016): categorical and continuous codes, mutual-information term",
    smoke={"data": "digits", "params": {"hidden_sizes": (8,), "epochs": 1}},
)
@dataclass(eq=False, repr=False, kw_only=True)
class InfoGAN(GANBase):
    """GAN whose generator input holds noise, one categorical code with ``n_categories``
    values and ``n_continuous`` codes uniform in [-1, 1]; ``predict_code(X)`` reads the
    categorical code of real samples (an unsupervised clustering).

    >>> from deepatlas.data import load_dataset
    >>> ds = load_dataset("ring8")
    >>> InfoGAN(n_categories=8, epochs=2).fit(ds.X_train).predict_code(ds.X_test[:5]).shape
    (5,)
    """

    n_categories: int = 10
    """Values of the categorical code fed to the generator (one-hot); ``predict_code`` recovers it from real
    samples, a clustering into this many groups."""
    n_continuous: int = 2
    """Continuous codes, uniform in [-1, 1], fed to the generator beside the noise; 0 uses none."""
    info_weight: float = 1.0
    """Weight of the mutual-information term (how well the critic's head recovers the codes from generated
    samples); 0 gives a plain GAN."""
    latent_dim: int = 32
    hidden_sizes: tuple = (256, 256)
    batch_size: int = 64
    lr: float = 2e-4
    epochs: int = 200

    _parameter_constraints: ClassVar[dict] = {
        "n_categories": Interval(int, 1, None),
        "n_continuous": Interval(int, 0, None),
        "info_weight": Interval(float, 0, None),
    }

    def _code_size(self) -> int:
        return self.latent_dim + self.n_categories + self.n_continuous

    def _build_players(self, sample_shape):
        n = int(np.prod(sample_shape))
        return Players(
            MLPGenerator(self._code_size(), self._hidden(), sample_shape, self.bounded_),
            InfoCritic(n, self._hidden(), self.n_categories, self.n_continuous),
        )

    def _codes(self, n, yb, gen, cat=None, cont=None):
        device = gen.device
        z = torch.randn(n, self.latent_dim, generator=gen, device=device)
        if cat is None:
            cat = torch.randint(self.n_categories, (n,), generator=gen, device=device)
        if cont is None:
            cont = torch.rand(n, self.n_continuous, generator=gen, device=device) * 2 - 1  # U(-1, 1)
        onehot = F.one_hot(cat, self.n_categories).float()
        return {"z": torch.cat([z, onehot, cont], dim=1), "cat": cat, "cont": cont}

    def _info_loss(self, q_cat, q_cont, codes) -> torch.Tensor:
        """Negative variational bound on I(c; G(z, c)), up to constants."""
        loss = F.cross_entropy(q_cat, codes["cat"])
        if self.n_continuous:
            loss = loss + 0.5 * ((q_cont - codes["cont"]) ** 2).sum(dim=1).mean()
        return loss

    def _critic_loss(self, loop, real, fake, codes, yb):
        D = loop.module.discriminator
        d_fake, q_cat, q_cont = D.forward_all(fake)
        gan = F.softplus(-D(real)).mean() + F.softplus(d_fake).mean()
        return gan + self.info_weight * self._info_loss(q_cat, q_cont, codes)

    def _generator_loss(self, loop, fake, codes, yb):
        d_fake, q_cat, q_cont = loop.module.discriminator.forward_all(fake)
        return F.softplus(-d_fake).mean() + self.info_weight * self._info_loss(q_cat, q_cont, codes)

    # ---- codes of real data, traversals ---------------------------------------------------
    @torch.no_grad()
    def predict_code(self, X) -> np.ndarray:
        """The categorical code Q assigns to each sample of ``X`` (0 .. n_categories - 1)."""
        from deepatlas.models.base import check_features

        self._check_fitted()
        if getattr(self, "generator_only_", False):
            raise InputError("predict_code needs the Q head, which a generator-only save does not hold.")
        X = check_features(X, "InfoGAN")
        if int(np.prod(X.shape[1:])) != self.n_features_in_:
            raise InputError(
                f"X has {int(np.prod(X.shape[1:]))} features, but InfoGAN is expecting {self.n_features_in_} features as input."
            )
        D = self.module_.discriminator
        D.eval()
        device = next(D.parameters()).device
        Xt = torch.as_tensor(self._scale(X.reshape(len(X), *self.input_shape_)), device=device)
        return D.forward_all(Xt)[1].argmax(dim=1).cpu().numpy()

    @torch.no_grad()
    def traverse(self, code: int = 0, n_steps: int = 8, seed: int | None = None) -> np.ndarray:
        """Samples with one noise vector per category row and continuous code ``code`` swept over
        [-2, 2] along the row (the others at 0); shape ``(n_categories * n_steps, *input_shape_)``."""
        self._check_fitted()
        if not 0 <= code < max(self.n_continuous, 1) or isinstance(code, bool):
            raise InputError(f"code must be an int in [0, {self.n_continuous - 1}]. Got {code!r} instead.")
        from deepatlas.device import make_generator

        device = next(self.module_.parameters()).device
        gen = make_generator(self.seed if seed is None else seed, device)
        k = self.n_categories
        cat = torch.arange(k, device=device).repeat_interleave(n_steps)  # (k * n_steps,)
        cont = torch.zeros(k * n_steps, self.n_continuous, device=device)
        if self.n_continuous:
            cont[:, code] = torch.linspace(-2, 2, n_steps, device=device).repeat(k)
        codes = self._codes(k * n_steps, None, gen, cat=cat, cont=cont)
        z = codes["z"]
        z[:, : self.latent_dim] = z[::n_steps, : self.latent_dim].repeat_interleave(n_steps, dim=0)  # one z per row
        G = self.module_.generator
        G.eval()
        return self._unscale(G(z).float().cpu().numpy()).astype(np.float32)

    def _extra_metrics(self, ds):
        if ds.y_test is None or ds.task not in ("classification", "generative"):
            return {}
        return {"code_cluster_accuracy": _cluster_accuracy(self.predict_code(ds.X_test), ds.y_test)}

    def _extra_plots(self, directory: Path) -> None:
        if not self.bounded_:
            return
        from deepatlas.models.gan.metrics import plot_traversal

        lo = self.center_[0] - self.scale_[0]
        for code in range(self.n_continuous):
            images = (self.traverse(code) - lo) / (2 * self.scale_[0])
            plot_traversal(
                images,
                self.n_categories,
                directory / f"traversal_c{code + 1}.png",
                f"InfoGAN: rows = categorical code, columns = continuous code c{code + 1} from -2 to 2",
            )


def _cluster_accuracy(pred, true) -> float:
    from deepatlas.models.gan.metrics import cluster_accuracy

    return cluster_accuracy(pred, true)

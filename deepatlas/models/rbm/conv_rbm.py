"""The convolutional RBM (Lee, Grosse, Ranganath & Ng, 2009, "Convolutional deep belief networks
for scalable unsupervised learning of hierarchical representations"): shared filters over images,
trained by CD-k / PCD like :class:`deepatlas.models.rbm.rbm.RBM`, whose helpers it reuses.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from sklearn.base import TransformerMixin
from torch.nn import functional as F

from deepatlas._validation import Interval
from deepatlas.device import make_generator, resolve_device
from deepatlas.errors import InputError
from deepatlas.models.base import check_features
from deepatlas.models.rbm.rbm import (
    _MONITOR_ROWS,
    ContrastiveDivergence,
    check_unit_interval,
    one_thread,
    probe_accuracy,
    save_samples,
    write_pictures,
)
from deepatlas.registry import register_model


@register_model(
    "conv-rbm",
    task="classification",
    description="convolutional RBM on images (Lee et al., 2009)",
    smoke={"data": "digits", "params": {"n_filters": 4, "epochs": 1}},
)
@register_model("conv-rbm", task="generative", smoke={"data": "digits", "params": {"n_filters": 4, "epochs": 1}})
@dataclass(eq=False, repr=False, kw_only=True)
class ConvRBM(TransformerMixin, ContrastiveDivergence):
    """Convolutional Bernoulli RBM: ``n_filters`` shared ``kernel_size`` filters over [0, 1] images.

    ``p(h_k = 1 | v) = sigmoid(conv(v, W_k) + c_k)`` gives one hidden map per filter ('valid'
    convolution) and ``p(v = 1 | h) = sigmoid(sum_k conv_transpose(h_k, W_k) + b)``. Trained by
    CD-k / PCD like :class:`RBM`, with the update averaged over positions (hence the larger
    default ``lr``). ``transform`` gives the
    hidden probability maps max-pooled by ``pool_size`` and flattened. Inputs: ``(n, C, H, W)``,
    ``(n, H, W)`` or square ``(n, H*W)`` rows.

    >>> from deepatlas.data import load_dataset
    >>> ds = load_dataset("digits")
    >>> ConvRBM(n_filters=8, epochs=2).fit(ds.X_train).transform(ds.X_test).shape
    (360, 288)
    """

    n_filters: int = 16
    """Shared filters, i.e. hidden feature maps."""
    kernel_size: int = 3
    """Side of each square filter, in pixels ('valid' convolution: the maps are ``kernel_size - 1`` pixels
    smaller)."""
    pool_size: int = 1
    """Max-pooling window applied to the hidden maps by ``transform``; 1 does not pool. Training is
    unaffected."""
    lr: float = 0.5
    """Step size of the contrastive-divergence update, averaged over the batch and over positions (hence
    larger than a dense RBM's)."""
    momentum: float = 0.5
    epochs: int = 10
    batch_size: int = 32

    _parameter_constraints: ClassVar[dict] = {
        "n_filters": Interval(int, 1, None),
        "kernel_size": Interval(int, 1, None),
        "pool_size": Interval(int, 1, None),
    }

    @staticmethod
    def _images(X, owner: str) -> np.ndarray:
        """(n, C, H, W) float32 in [0, 1] from (n, C, H, W), (n, H, W) or square (n, H*W)."""
        X = check_features(X, owner)
        if X.ndim == 2:
            side = int(round(math.sqrt(X.shape[1])))
            if side * side != X.shape[1]:
                raise InputError(
                    f"{owner} needs images: X of shape (n, C, H, W), (n, H, W) or square (n, H*W) rows. "
                    f"Got shape {X.shape} instead."
                )
            X = X.reshape(len(X), 1, side, side)
        elif X.ndim == 3:
            X = X[:, None]
        elif X.ndim != 4:
            raise InputError(f"{owner} needs images of shape (n, C, H, W). Got shape {X.shape} instead.")
        check_unit_interval(X, owner, hint="(a convolutional RBM has Bernoulli visible units)")
        return np.ascontiguousarray(X, dtype=np.float32)

    _fitted_attr: ClassVar[str] = "W_"

    def fit(self, X, y=None):
        self._validate_params()
        X = self._images(X, "ConvRBM")
        n, C, Hh, Ww = X.shape
        f = self.kernel_size
        if min(Hh, Ww) < f:
            raise InputError(f"kernel_size {f} is larger than the {Hh}x{Ww} images.")
        self.input_shape_ = (C, Hh, Ww)
        device = resolve_device(self.device)
        gen = make_generator(self.seed, device)
        Xt = torch.as_tensor(X, device=device)
        K = self.n_filters
        self.W_ = torch.randn(K, C, f, f, generator=gen, device=device) * 0.01  # (K, C, f, f)
        p = Xt.mean(dim=(0, 2, 3)).clamp(1e-3, 1 - 1e-3)
        self.b_ = torch.log(p / (1 - p))  # (C,) visible bias shared over positions
        self.c_ = torch.zeros(K, device=device)  # (K,) hidden bias per filter
        self.history_ = []
        start = time.perf_counter()
        with one_thread():
            self._train(Xt, gen)
        self.fit_seconds_ = time.perf_counter() - start
        self.n_epochs_ = self.epochs
        return self

    @torch.no_grad()
    def _train(self, X: torch.Tensor, gen: torch.Generator) -> None:
        conv_weight = torch.nn.grad.conv2d_weight
        n = len(X)
        B = min(self.batch_size, n)
        W, b, c = self.W_, self.b_, self.c_
        dW, db, dc = torch.zeros_like(W), torch.zeros_like(b), torch.zeros_like(c)
        hc = None  # persistent chains' hidden maps (B, K, H', W')
        mon = X[:_MONITOR_ROWS]
        for epoch in range(self.epochs):
            Xp = X[torch.randperm(n, generator=gen, device=gen.device).to(X.device)]
            for i in range(0, (n // B) * B, B):
                vp = Xp[i : i + B]  # (B, C, H, W)
                hp = torch.sigmoid(F.conv2d(vp, W, c))  # (B, K, H', W')
                if hc is None or not self.persistent:
                    hc = (torch.rand(hp.shape, generator=gen, device=hp.device) < hp).float()
                for step in range(self.k):
                    pv = torch.sigmoid(F.conv_transpose2d(hc, W, b))  # (B, C, H, W)
                    vn = (torch.rand(pv.shape, generator=gen, device=pv.device) < pv).float()
                    hn = torch.sigmoid(F.conv2d(vn, W, c))
                    if step < self.k - 1 or self.persistent:
                        hc = (torch.rand(hn.shape, generator=gen, device=hn.device) < hn).float()
                per_h = B * hp.shape[2] * hp.shape[3]
                per_v = B * vp.shape[2] * vp.shape[3]
                gW = conv_weight(torch.cat([vp, vn]), W.shape, torch.cat([hp, -hn])) / per_h  # data - model
                gc = (hp.sum((0, 2, 3)) - hn.sum((0, 2, 3))) / per_h
                gb = (vp.sum((0, 2, 3)) - vn.sum((0, 2, 3))) / per_v
                for d, g_, p_ in ((dW, gW, W), (dc, gc, c), (db, gb, b)):
                    d.mul_(self.momentum).add_(g_, alpha=self.lr)
                    p_.add_(d)
                if self.weight_decay:
                    W.mul_(1.0 - self.lr * self.weight_decay)
            rec = float(((self._visible_prob(torch.sigmoid(F.conv2d(mon, W, c))) - mon) ** 2).mean())
            if not math.isfinite(rec):
                from deepatlas.errors import TrainingDiverged

                raise TrainingDiverged(
                    f"Training diverged: the reconstruction loss became {rec} at epoch {epoch + 1}. "
                    f"Try a lower learning rate (lr={self.lr:g} now)."
                )
            self.history_.append({"epoch": epoch + 1, "reconstruction_loss": rec})
            if self.verbose:
                print(f"[ConvRBM] epoch {epoch + 1}/{self.epochs}: reconstruction_loss {rec:.4g}", flush=True)

    def _visible_prob(self, h: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(F.conv_transpose2d(h, self.W_, self.b_))  # (n, C, H, W)

    @torch.no_grad()
    def hidden_maps(self, X) -> np.ndarray:
        """Hidden probability maps ``p(h = 1 | v)``, (n, n_filters, H - f + 1, W - f + 1)."""
        self._check_fitted()
        X = self._images(X, "ConvRBM")
        if X.shape[1:] != self.input_shape_:
            raise InputError(f"X has sample shape {X.shape[1:]}, but ConvRBM was fitted on {self.input_shape_}.")
        out = []
        for i in range(0, len(X), 1024):
            v = torch.as_tensor(X[i : i + 1024], device=self.W_.device)
            out.append(torch.sigmoid(F.conv2d(v, self.W_, self.c_)).cpu())
        return torch.cat(out).numpy()

    def transform(self, X) -> np.ndarray:
        """Hidden probability maps, max-pooled by ``pool_size``, flattened: (n, features)."""
        maps = torch.from_numpy(self.hidden_maps(X))
        if self.pool_size > 1:
            maps = F.max_pool2d(maps, self.pool_size, ceil_mode=True)
        return maps.reshape(len(maps), -1).numpy()

    @torch.no_grad()
    def sample(self, n_samples: int = 16, steps: int = 500, *, probabilities: bool = False, seed=None) -> np.ndarray:
        """Images from Gibbs chains started at noise, (n_samples, C, H, W)."""
        self._check_fitted()
        if not isinstance(n_samples, int) or isinstance(n_samples, bool) or n_samples < 1:
            raise InputError(f"n_samples must be a positive int. Got {n_samples!r} instead.")
        gen = make_generator(self.seed if seed is None else seed, self.W_.device)
        v = (torch.rand((n_samples, *self.input_shape_), generator=gen, device=self.W_.device) < 0.5).float()
        for step in range(steps):
            p = torch.sigmoid(F.conv2d(v, self.W_, self.c_))
            h = (torch.rand(p.shape, generator=gen, device=p.device) < p).float()
            pv = self._visible_prob(h)
            v = (
                pv
                if (probabilities and step == steps - 1)
                else (torch.rand(pv.shape, generator=gen, device=pv.device) < pv).float()
            )
        return v.cpu().numpy().astype(np.float64)

    def filter_images(self) -> np.ndarray:
        return self.W_[:, 0].cpu().numpy()  # (K, f, f) first input channel

    def fit_dataset(self, ds, *, checkpoint_dir=None, resume: bool = False):
        """``deepatlas train``: fit on the training split, pictures into ``checkpoint_dir/plots``."""
        self.fit(ds.X_train)
        if checkpoint_dir is not None:
            write_pictures(self, Path(checkpoint_dir) / "plots", title=f"ConvRBM on {ds.name}")
        return self

    def dataset_metrics(self, ds) -> dict:
        X = self._images(ds.X_test, "ConvRBM")
        with torch.no_grad():
            v = torch.as_tensor(X, device=self.W_.device)
            rec = float(((self._visible_prob(torch.sigmoid(F.conv2d(v, self.W_, self.c_))) - v) ** 2).mean())
        return {"test_reconstruction_error": rec, **probe_accuracy(self, ds)}

    def write_samples(self, out=None, *, n=None, prompt=None, label=None, temperature=1.0, seed=0) -> str:
        del prompt, label, temperature
        n = 64 if n is None else n
        path = Path(out or "samples.png")
        save_samples(self.sample(n, 500, probabilities=True, seed=seed), path, title=f"ConvRBM: {n} Gibbs samples")
        return f"wrote {n} samples to {path}"

    def _fitted_state(self):
        self._check_fitted()
        tensors = {k: getattr(self, k).detach().cpu().contiguous() for k in ("W_", "b_", "c_")}
        return tensors, {"input_shape_": list(self.input_shape_), "n_epochs_": self.n_epochs_}

    def _restore_state(self, tensors, meta):
        device = resolve_device(self.device)
        for key in ("W_", "b_", "c_"):
            setattr(self, key, tensors[key].to(device))
        self.input_shape_ = tuple(meta["input_shape_"])
        self.n_epochs_ = meta.get("n_epochs_")

"""Convolutional sparse coding and convolutional dictionary learning, for 1-D signals and images.

A signal is written as a sum of small filters convolved with sparse feature maps::

    x ≈ Σ_k d_k ∗ z_k,      min_z ½‖x − Σ_k d_k ∗ z_k‖² + α Σ_k ‖z_k‖₁

The codes are found by FISTA with convolutions (the gradient of the smooth part is a correlation
of the residual with the filters); the filters are learned by alternating: code a mini-batch,
then take an Adam step on the filters for the reconstruction error and renormalise each filter
to unit norm. Feature maps are "full" size (``H + kh − 1``), so every sample is covered by
every filter offset, border included.

Shapes: ``X`` of shape ``(n, L)`` or ``(n, C, L)`` is a batch of 1-D signals; ``(n, C, H, W)``
is a batch of images. Internally both are ``(n, C, H, W)`` with ``H = 1`` for signals.
``transform`` returns the feature maps flattened to ``(n, n_atoms · H' · W')`` (scikit-learn's
2-D convention); ``code_shape_`` gives ``(n_atoms, H', W')``.

References
----------
- Zeiler, Krishnan, Taylor & Fergus (2010), "Deconvolutional networks".
- Bristow, Eriksson & Lucey (2013), "Fast convolutional sparse coding".
- Wohlberg (2016), "Efficient algorithms for convolutional sparse representations".
- Beck & Teboulle (2009), "A fast iterative shrinkage-thresholding algorithm" (FISTA).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import TransformerMixin
from torch.nn import functional as F

from deepatlas._validation import Interval
from deepatlas.device import make_generator, resolve_device, seeded
from deepatlas.errors import InputError
from deepatlas.estimator import Estimator
from deepatlas.models.base import check_features
from deepatlas.models.common import linear_probe
from deepatlas.models.sparse_coding.solvers import soft_threshold
from deepatlas.registry import register_model
from deepatlas.training import optim

_CHUNK = 1024  # signals coded at once


# ---- the convolutional operator ------------------------------------------------------------------
def synthesize(Z: torch.Tensor, D: torch.Tensor) -> torch.Tensor:
    """``Σ_k d_k ∗ z_k``: (B, K, H+kh−1, W+kw−1) codes, (K, C, kh, kw) filters -> (B, C, H, W)."""
    kh, kw = D.shape[-2:]
    return F.conv_transpose2d(Z, D, padding=(kh - 1, kw - 1))


def analyze(R: torch.Tensor, D: torch.Tensor) -> torch.Tensor:
    """The adjoint of :func:`synthesize`: correlate (B, C, H, W) with each filter -> (B, K, H', W')."""
    kh, kw = D.shape[-2:]
    return F.conv2d(R, D, padding=(kh - 1, kw - 1))


def conv_lipschitz(D: torch.Tensor, shape: tuple[int, int], iters: int = 30, seed: int = 0) -> float:
    """Largest eigenvalue of ``AᵀA`` (A = :func:`synthesize` with ``D``) by power iteration."""
    kh, kw = D.shape[-2:]
    gen = torch.Generator(device="cpu").manual_seed(seed)
    v = torch.randn(1, D.shape[0], shape[0] + kh - 1, shape[1] + kw - 1, generator=gen).to(D)
    lam = 0.0
    for _ in range(iters):
        w = analyze(synthesize(v, D), D)
        lam = float(torch.linalg.vector_norm(w))
        v = w / max(lam, 1e-30)
    return lam * 1.05 + 1e-12  # margin for the power method's underestimate


def conv_fista(
    X: torch.Tensor, D: torch.Tensor, alpha: float, *, max_iter: int = 100, tol: float = 1e-4, L: float | None = None
) -> tuple[torch.Tensor, int, float]:
    """FISTA for the convolutional lasso on a batch (B, C, H, W); returns codes, iterations run
    and the final relative duality gap (checked every 10 iterations, as for the dense solvers)."""
    H, W = X.shape[-2:]
    L = conv_lipschitz(D, (H, W)) if L is None else L
    C = analyze(X, D) / L  # (B, K, H', W') the constant part of the gradient step
    Z = torch.zeros_like(C)
    Y, t, rel, it = Z, 1.0, math.inf, 0
    for it in range(1, max_iter + 1):
        Z_new = soft_threshold(Y - analyze(synthesize(Y, D), D) / L + C, alpha / L)
        t_new = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
        Y = Z_new + ((t - 1.0) / t_new) * (Z_new - Z)
        Z, t = Z_new, t_new
        if it % 10 == 0 or it == max_iter:
            rel = conv_relative_gap(X, D, Z, alpha)
            if rel <= tol:
                break
    return Z, it, rel


def conv_objective(X: torch.Tensor, D: torch.Tensor, Z: torch.Tensor, alpha: float) -> torch.Tensor:
    """Per-signal ``½‖x − Σ d_k ∗ z_k‖² + α‖z‖₁``; shape (B,)."""
    R = X - synthesize(Z, D)
    return 0.5 * R.pow(2).flatten(1).sum(1) + alpha * Z.abs().flatten(1).sum(1)


def conv_relative_gap(X: torch.Tensor, D: torch.Tensor, Z: torch.Tensor, alpha: float) -> float:
    """Summed duality gap over summed objective (dual point: the scaled residual)."""
    R = X - synthesize(Z, D)
    rr = R.pow(2).flatten(1).sum(1)
    primal = 0.5 * rr + alpha * Z.abs().flatten(1).sum(1)
    if alpha <= 0:
        return 0.0 if float(rr.sum()) == 0 else math.inf
    corr = analyze(R, D).abs().flatten(1).amax(1)
    s = (alpha / corr.clamp_min(1e-30)).clamp(max=1.0)
    dual = s * (X * R).flatten(1).sum(1) - 0.5 * s * s * rr
    return float((primal - dual).sum()) / max(float(primal.sum()), 1e-30)


# ---- the estimator --------------------------------------------------------------------------------
@register_model(
    "conv-sparse-coding",
    task="transform",
    description="convolutional sparse coding and dictionary learning (FISTA with convolutions), 1-D and 2-D",
    smoke={"data": "digits", "params": {"n_atoms": 4, "kernel_size": 3, "epochs": 1, "max_iter": 20}},
)
@dataclass(eq=False, repr=False, kw_only=True)
class ConvSparseCoding(TransformerMixin, Estimator):
    """Learn ``n_atoms`` filters of size ``kernel_size`` and code signals as sparse feature maps.

    ``fit`` alternates FISTA coding of a mini-batch (``max_iter`` iterations at most) with an
    Adam step (``lr``) on the filters, ``epochs`` times over the data; ``history_`` holds the mean
    objective per epoch. ``transform`` codes with FISTA to tolerance ``tol``.

    >>> from deepatlas.data import load_dataset
    >>> ds = load_dataset("digits")
    >>> csc = ConvSparseCoding(n_atoms=4, kernel_size=3, epochs=1).fit(ds.X_train[:64])
    >>> csc.components_.shape, csc.transform(ds.X_test[:2]).shape
    ((4, 1, 3, 3), (2, 400))
    """

    n_atoms: int = 8
    """Filters learned, i.e. sparse feature maps per signal."""
    kernel_size: int = 5
    """Side of each square filter, in pixels (its length for 1-D signals)."""
    alpha: float = 0.1
    """Weight of the L1 penalty on the feature maps: larger gives sparser codes."""
    max_iter: int = 100
    """Most FISTA iterations per coding of a batch."""
    tol: float = 1e-3
    """Stopping tolerance of FISTA in ``transform`` (training codes stop at ``max(tol, 1e-3)``)."""
    epochs: int = 5
    """Passes over the training signals."""
    batch_size: int = 64
    """Signals coded per filter update."""
    lr: float = 0.02
    """Adam's learning rate for the filters."""

    _parameter_constraints: ClassVar[dict] = {
        "n_atoms": Interval(int, 1, None),
        "kernel_size": Interval(int, 1, None),
        "alpha": Interval(float, 0, None),
        "max_iter": Interval(int, 1, None),
        "tol": Interval(float, 0, None),
        "epochs": Interval(int, 1, None),
        "batch_size": Interval(int, 1, None),
        "lr": Interval(float, 0, None, "neither"),
    }
    _task: ClassVar[str] = "transform"

    # -- shapes --
    def _as_4d(self, X, *, fitting: bool) -> np.ndarray:
        X = check_features(X, "ConvSparseCoding")
        if X.ndim == 2:
            X4 = X[:, None, None, :]  # (n, L) -> (n, 1, 1, L)
        elif X.ndim == 3:
            X4 = X[:, :, None, :]  # (n, C, L) -> (n, C, 1, L)
        elif X.ndim == 4:
            X4 = X
        else:
            raise InputError(
                "ConvSparseCoding expects X of shape (n, L), (n, C, L) or (n, C, H, W). "
                f"Got an array of shape {X.shape} instead."
            )
        if fitting:
            self.input_shape_ = tuple(int(s) for s in X.shape[1:])
            self.n_features_in_ = int(np.prod(self.input_shape_))
            self.one_d_ = X.ndim < 4
            kh = 1 if self.one_d_ else self.kernel_size
            if kh > X4.shape[2] or self.kernel_size > X4.shape[3]:
                raise InputError(
                    f"The 'kernel_size' parameter of ConvSparseCoding ({self.kernel_size}) must not exceed the "
                    f"signal size {tuple(X4.shape[2:]) if not self.one_d_ else X4.shape[3]}."
                )
        elif tuple(X.shape[1:]) != self.input_shape_:
            raise InputError(
                f"X has samples of shape {tuple(X.shape[1:])}, but ConvSparseCoding was fitted on "
                f"samples of shape {self.input_shape_}."
            )
        return np.ascontiguousarray(X4)

    _fitted_attr: ClassVar[str] = "components_"

    # -- learning --
    def fit(self, X, y=None):
        self._validate_params()
        X4 = self._as_4d(X, fitting=True)
        n, C, H, W = X4.shape
        kh, kw = (1 if self.one_d_ else self.kernel_size), self.kernel_size
        device = resolve_device(self.device)
        Xt = torch.as_tensor(X4, device=device)
        with seeded(self.seed):
            D = torch.randn(self.n_atoms, C, kh, kw).to(device)  # (K, C, kh, kw)
        D = (D / D.flatten(1).norm(dim=1).view(-1, 1, 1, 1)).requires_grad_(True)
        opt = optim.Adam([D], lr=self.lr)
        gen = make_generator(self.seed, "cpu")
        bs = min(self.batch_size, n)
        self.history_, start = [], time.perf_counter()
        for epoch in range(self.epochs):
            order = torch.randperm(n, generator=gen).to(device)
            total = 0.0
            for i in range(0, n, bs):
                xb = Xt[order[i : i + bs]]
                with torch.no_grad():
                    Dd = D.detach()
                    z, _, _ = conv_fista(xb, Dd, float(self.alpha), max_iter=self.max_iter, tol=max(self.tol, 1e-3))
                    total += float(conv_objective(xb, Dd, z, float(self.alpha)).sum())
                loss = 0.5 * (xb - synthesize(z, D)).pow(2).sum() / len(xb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                with torch.no_grad():  # project each filter back onto the unit sphere
                    D /= D.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
            self.history_.append({"epoch": epoch + 1, "loss": total / n, "seconds": time.perf_counter() - start})
            if self.verbose:
                print(f"ConvSparseCoding epoch {epoch + 1}/{self.epochs}: objective {total / n:.5f}")
        self.components_ = D.detach().cpu().numpy()
        self.code_shape_ = (self.n_atoms, H + kh - 1, W + kw - 1)
        self.n_epochs_ = self.epochs
        return self

    # -- coding --
    def _codes(self, X4: np.ndarray) -> torch.Tensor:
        device = resolve_device(self.device)
        D = torch.as_tensor(self.components_, device=device)
        L = conv_lipschitz(D, X4.shape[-2:])
        out, self.n_iter_ = [], 0
        for i in range(0, len(X4), _CHUNK):
            z, it, _ = conv_fista(
                torch.as_tensor(X4[i : i + _CHUNK], device=device), D, float(self.alpha),
                max_iter=self.max_iter, tol=self.tol, L=L,
            )  # fmt: skip
            out.append(z.cpu())
            self.n_iter_ = max(self.n_iter_, it)
        return torch.cat(out)

    def transform(self, X) -> np.ndarray:
        """Feature maps, flattened to ``(n_samples, n_atoms · H' · W')``."""
        self._check_fitted()
        return self._codes(self._as_4d(X, fitting=False)).flatten(1).numpy()

    def inverse_transform(self, codes) -> np.ndarray:
        """Reconstructions ``Σ_k d_k ∗ z_k`` in the shape of the training samples."""
        self._check_fitted()
        Z = np.asarray(codes, dtype=np.float32)
        size = int(np.prod(self.code_shape_))
        if Z.ndim < 2 or int(np.prod(Z.shape[1:])) != size:
            raise InputError(
                f"codes must have shape (n_samples, {size}) or (n_samples, *{self.code_shape_}). "
                f"Got shape {Z.shape} instead."
            )
        Zt = torch.as_tensor(Z.reshape(len(Z), *self.code_shape_))
        with torch.no_grad():
            rec = synthesize(Zt, torch.as_tensor(self.components_))
        return rec.numpy().reshape(len(Z), *self.input_shape_)

    # -- dataset runs --
    def fit_dataset(self, ds, *, checkpoint_dir=None, resume: bool = False):
        self.fit(ds.X_train)
        if checkpoint_dir is not None:
            from pathlib import Path

            from deepatlas.models.sparse_coding.coders import plot_atoms

            K, C, kh, kw = self.components_.shape
            shape = (kh, kw) if kh > 1 else (kw,)
            filters = self.components_[:, 0].reshape(K, -1)
            plot_atoms(filters, shape, Path(checkpoint_dir) / "plots" / "filters.png", title="filters")
        return self

    def dataset_metrics(self, ds) -> dict[str, float]:
        """Reconstruction MSE, mean non-zeros per signal and objective; codes → classifier accuracy."""
        out: dict[str, float] = {}
        codes = {}
        for split, X in (("train", ds.X_train), ("test", ds.X_test)):
            X4 = self._as_4d(X, fitting=False)
            Z = self._codes(X4)
            codes[split] = Z.flatten(1).numpy()
            with torch.no_grad():
                R = torch.from_numpy(X4) - synthesize(Z, torch.as_tensor(self.components_))
            out[f"{split}_reconstruction_mse"] = float(R.pow(2).mean())
            out[f"{split}_mean_nonzeros"] = float((Z != 0).flatten(1).sum(1).float().mean())
            obj = 0.5 * R.pow(2).flatten(1).sum(1) + self.alpha * Z.abs().flatten(1).sum(1)
            out[f"{split}_objective"] = float(obj.mean())
        if ds.task == "classification" and ds.y_train is not None:
            out["test_code_accuracy"] = linear_probe(codes["train"], ds.y_train, codes["test"], ds.y_test)
        return out

    # -- persistence --
    def _fitted_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        self._check_fitted()
        meta = {
            "input_shape_": list(self.input_shape_),
            "code_shape_": list(self.code_shape_),
            "n_epochs_": self.n_epochs_,
        }
        return {"components_": torch.from_numpy(np.ascontiguousarray(self.components_))}, meta

    def _restore_state(self, tensors, meta) -> None:
        self.components_ = tensors["components_"].numpy()
        self.input_shape_ = tuple(meta["input_shape_"])
        self.n_features_in_ = int(np.prod(self.input_shape_))
        self.one_d_ = len(self.input_shape_) < 3
        self.code_shape_ = tuple(meta["code_shape_"])
        self.n_epochs_ = meta.get("n_epochs_")

"""Restricted Boltzmann machines: Bernoulli and Gaussian-visible (convolutional: ``conv_rbm.py``).

An RBM is an energy model over visible units ``v`` and hidden units ``h`` with no links inside a
layer, ``E(v, h) = -b.v - c.h - v W h`` (Bernoulli visible units) or
``E(v, h) = |v - b|^2 / 2 - c.h - v W h`` (Gaussian visible units with unit variance, on data
the model standardises itself). Both conditionals factorise, so a Gibbs sweep is two matrix
products. Training follows the likelihood gradient, ``<v h>_data - <v h>_model``, with the model
term estimated by k Gibbs steps from the data (CD-k) or from persistent chains (PCD).

Training does not use autograd: the CD update is itself the gradient, and at scikit-learn's batch
size of 10 every Python call and allocation on the step path counts. The parameters live in one
augmented matrix ``A = [[W, b], [c, 0]]`` of shape ``(n_visible + 1, n_hidden + 1)``; data and
negative particles are stacked in one buffer with a column of ones, so one matrix product gives
both phases' hidden probabilities and one ``addmm_`` applies the whole update (weights and both
biases). Bernoulli samples are ``uniform_`` draws compared with the probabilities, written into
preallocated buffers.

References: Smolensky (1986), "Information processing in dynamical systems: foundations of
harmony theory"; Hinton (2002), "Training products of experts by minimizing contrastive
divergence"; Tieleman (2008), "Training restricted Boltzmann machines using approximations to
the likelihood gradient"; Hinton (2010), "A practical guide to training restricted Boltzmann
machines"; Salakhutdinov & Murray (2008), "On the quantitative analysis of deep belief
networks" (annealed importance sampling); Besag (1975), "Statistical analysis of non-lattice
data" (pseudo-likelihood); Lee, Grosse, Ranganath & Ng (2009), "Convolutional deep belief
networks for scalable unsupervised learning of hierarchical representations".
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from sklearn.base import TransformerMixin
from torch.nn import functional as F

from deepatlas._validation import Boolean, Interval
from deepatlas.device import make_generator, resolve_device
from deepatlas.errors import InputError
from deepatlas.estimator import Estimator
from deepatlas.models.base import check_features
from deepatlas.models.common import as_images, linear_probe, tile_figure
from deepatlas.registry import register_model

_EXACT_LIMIT = 20  # enumerate 2^units states up to this many units on the smaller side
_MONITOR_ROWS = 500  # training rows scored once per epoch for history_


def check_unit_interval(X: np.ndarray, owner: str, hint: str = "or use GaussianRBM for real-valued data") -> None:
    """A Bernoulli RBM reads every value as a probability; say what to do otherwise."""
    lo, hi = float(X.min()), float(X.max())
    if lo < 0.0 or hi > 1.0:
        raise InputError(
            f"X has values outside [0, 1] (min {lo:g}, max {hi:g}), but {owner} reads each value as a "
            f"probability: scale X to [0, 1] (e.g. sklearn's MinMaxScaler) {hint}."
        )


@contextlib.contextmanager
def one_thread():
    """Run a loop of small tensor operations on one CPU thread: with more, each tiny op pays for
    thread hand-offs (and, on a busy machine, for threads spinning while they wait)."""
    n = torch.get_num_threads()
    if n > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if n > 1:
            torch.set_num_threads(n)


# ---- the lean CD / PCD loop ------------------------------------------------------------------
@torch.no_grad()
def train_cd(
    X: torch.Tensor,
    A: torch.Tensor,
    *,
    gaussian: bool,
    k: int,
    persistent: bool,
    lr: float,
    momentum: float,
    weight_decay: float,
    epochs: int,
    batch_size: int,
    generator: torch.Generator,
    on_epoch=None,
) -> None:
    """Train the augmented parameter matrix ``A`` in place on rows of ``X``.

    ``X`` (n, nv) on A's device; ``A`` (nv + 1, nh + 1) holds ``W`` (nv, nh), the visible bias in
    column ``nh`` and the hidden bias in row ``nv``. Each epoch sees ``n // B`` full batches of a
    fresh permutation (the few rows left over are seen in other epochs). ``on_epoch(epoch)`` runs
    once per epoch, outside the step path.
    """
    n, nv = X.shape
    nh = A.shape[1] - 1
    B = min(batch_size, n)
    dev, dt = A.device, A.dtype
    V = torch.ones(2 * B, nv + 1, device=dev, dtype=dt)  # rows [:B] data, [B:] negative particles; last column 1
    H = torch.ones(2 * B, nh + 1, device=dev, dtype=dt)  # hidden probabilities; last column +1 (data) / -1 (model)
    H[B:, nh] = -1.0
    hc = torch.zeros(B, nh + 1, device=dev, dtype=dt)  # hidden state of the chains, with a column of ones
    hc[:, nh] = 1.0
    Pv = torch.empty(B, nv, device=dev, dtype=dt)  # p(v | h) or the Gaussian mean
    Uv = torch.empty(B, nv, device=dev, dtype=dt)  # uniform (Bernoulli) or normal (Gaussian) draws
    Uh = torch.empty(B, nh, device=dev, dtype=dt)
    # Views made once: the step indexes nothing.
    AvT, Ah = A[:nv].T, A[:, :nh]  # (nh + 1, nv): [W^T; b];  (nv + 1, nh): [W; c]
    W = A[:nv, :nh]
    Hh, Hp, Hn = H[:, :nh], H[:B, :nh], H[B:, :nh]
    Vp, Vn, Vpa, Vna = V[:B, :nv], V[B:, :nv], V[:B], V[B:]
    hcs, VT = hc[:, :nh], V.T
    D = torch.zeros_like(A) if momentum > 0 else None  # velocity
    alpha = lr / B
    decay = 1.0 - lr * weight_decay
    g = generator

    def sample_visible() -> None:  # hc -> Vn
        torch.mm(hc, AvT, out=Pv)
        if gaussian:
            torch.add(Pv, Uv.normal_(generator=g), out=Vn)
        else:
            torch.lt(Uv.uniform_(generator=g), Pv.sigmoid_(), out=Vn)

    steps = n // B
    for epoch in range(epochs):
        Xp = X[torch.randperm(n, generator=g, device=g.device).to(dev)]
        for i in range(0, steps * B, B):
            Vp.copy_(Xp[i : i + B])
            if not persistent:  # CD: the chains start at the data
                torch.mm(Vpa, Ah, out=Hp).sigmoid_()
                torch.lt(Uh.uniform_(generator=g), Hp, out=hcs)
            for _ in range(k - 1):
                sample_visible()
                torch.mm(Vna, Ah, out=Hn).sigmoid_()
                torch.lt(Uh.uniform_(generator=g), Hn, out=hcs)
            sample_visible()
            if persistent:
                torch.mm(V, Ah, out=Hh).sigmoid_()  # both phases in one product
                torch.lt(Uh.uniform_(generator=g), Hn, out=hcs)  # the chains move on
            else:
                torch.mm(Vna, Ah, out=Hn).sigmoid_()
            Hn.neg_()  # H^T rows carry the sign: data minus model
            if D is None:
                A.addmm_(VT, H, alpha=alpha)  # W, b and c in one product
            else:
                D.mul_(momentum).addmm_(VT, H, alpha=alpha)
                A.add_(D)
            if weight_decay:
                W.mul_(decay)
        if on_epoch is not None:
            on_epoch(epoch)


# ---- the estimators ---------------------------------------------------------------------------
@dataclass(eq=False, repr=False, kw_only=True)
class ContrastiveDivergence(Estimator):
    """The training settings every model fitted by contrastive divergence shares (the dense and
    convolutional RBMs and their stacks); a family re-declares a field to change its default."""

    k: int = 1
    """Gibbs sampling steps behind each update (CD-k, or PCD-k with ``persistent``)."""
    persistent: bool = True
    """Keep the negative Gibbs chains running from one update to the next (persistent CD, Tieleman 2008);
    False restarts them at the data batch every update (CD-k)."""
    lr: float = 0.05
    """Step size of the contrastive-divergence update, averaged over the batch."""
    momentum: float = 0.0
    """Fraction of the previous update added to the next one; 0 turns momentum off."""
    weight_decay: float = 0.0
    """Weight shrinkage per update: the weights are multiplied by ``1 - lr * weight_decay`` (biases are not);
    0 turns it off."""
    epochs: int = 20
    """Passes over the training data (a fixed budget: no early stopping)."""
    batch_size: int = 10
    """Samples per contrastive-divergence update."""

    _parameter_constraints: ClassVar[dict] = {
        "k": Interval(int, 1, None),
        "persistent": Boolean(),
        "lr": Interval(float, 0, None, "neither"),
        "momentum": Interval(float, 0, 1, "left"),
        "weight_decay": Interval(float, 0, None),
        "epochs": Interval(int, 1, None),
        "batch_size": Interval(int, 1, None),
    }


@dataclass(eq=False, repr=False, kw_only=True)
class _RBMBase(TransformerMixin, ContrastiveDivergence):
    """Shared fitting, inference, likelihood and persistence of the dense RBMs."""

    n_hidden: int = 256
    """Hidden units, i.e. binary features learned from the data."""

    _parameter_constraints: ClassVar[dict] = {
        "n_hidden": Interval(int, 1, None),
    }
    _gaussian: ClassVar[bool] = False

    # ---- data in model units ------------------------------------------------------------------
    def _prepare(self, X, *, fitting: bool) -> np.ndarray:
        """Validate and flatten ``X`` (n, ...) to (n, nv) in the units the model works in."""
        name = type(self).__name__
        X = check_features(X, name)
        flat = X.reshape(len(X), -1)
        if not fitting:
            self._check_fitted()
            if flat.shape[1] != self.n_features_in_:
                raise InputError(
                    f"X has {flat.shape[1]} features, but {name} is expecting {self.n_features_in_} features as input."
                )
        elif len(X) < 2:
            raise InputError(f"{name} needs at least 2 samples to fit. Got {len(X)} instead.")
        if not self._gaussian:
            check_unit_interval(flat, name)
        return flat

    def _to_model(self, flat: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(flat, dtype=np.float32), device=self.A_.device)

    _fitted_attr: ClassVar[str] = "A_"

    # ---- fitting ------------------------------------------------------------------------------
    def fit(self, X, y=None):
        """Learn the weights from ``X`` (labels are ignored); returns ``self``."""
        self._validate_params()
        flat = self._prepare(X, fitting=True)
        self.input_shape_ = tuple(int(s) for s in np.shape(X)[1:])
        self.n_features_in_ = flat.shape[1]
        device = resolve_device(self.device)
        gen = make_generator(self.seed, device)
        data = self._init_units(flat)  # (n, nv) float32 in model units
        Xt = torch.as_tensor(data, device=device)
        nv, nh = Xt.shape[1], self.n_hidden
        A = torch.zeros(nv + 1, nh + 1, device=device)
        A[:nv, :nh] = torch.randn(nv, nh, generator=gen, device=device) * 0.01
        A[:nv, nh] = torch.as_tensor(self._initial_visible_bias(data), device=device)
        self.A_ = A
        self.base_bias_ = A[:nv, nh].clone()  # AIS starts from independent units with these biases
        self._logz = {}
        self.history_ = []
        mon = Xt[torch.randperm(len(Xt), generator=gen, device=gen.device)[:_MONITOR_ROWS].to(device)]
        exact = self._exact_size() <= 12  # a cheap exact log-likelihood per epoch

        def on_epoch(epoch: int) -> None:
            logs = {"epoch": epoch + 1, "reconstruction_loss": float(self._reconstruction_error(mon))}
            if not self._gaussian:
                logs["pseudo_likelihood"] = float(self._pseudo_likelihood(mon, gen).mean())
            if exact:
                self._logz = {}
                logs["log_likelihood"] = float(-self._free_energy_t(mon).mean() - self._exact_log_z())
            if not math.isfinite(logs["reconstruction_loss"]):
                from deepatlas.errors import TrainingDiverged

                raise TrainingDiverged(
                    f"Training diverged: the reconstruction loss became {logs['reconstruction_loss']} at epoch "
                    f"{epoch + 1}. Try a lower learning rate (lr={self.lr:g} now)."
                )
            self.history_.append(logs)
            if self.verbose:
                shown = ", ".join(f"{k} {v:.4g}" for k, v in logs.items() if k != "epoch")
                print(f"[{type(self).__name__}] epoch {epoch + 1}/{self.epochs}: {shown}", flush=True)

        start = time.perf_counter()
        small = nv * nh * self.batch_size < 2**22  # under ~4M multiply-adds a step, one thread is faster
        with one_thread() if small and device.type == "cpu" else contextlib.nullcontext():
            train_cd(
                Xt,
                A,
                gaussian=self._gaussian,
                k=self.k,
                persistent=self.persistent,
                lr=self.lr,
                momentum=self.momentum,
                weight_decay=self.weight_decay,
                epochs=self.epochs,
                batch_size=self.batch_size,
                generator=gen,
                on_epoch=on_epoch,
            )
        A[nv, nh] = 0.0  # the unused corner collects rounding only
        self._logz = {}
        self.fit_seconds_ = time.perf_counter() - start
        self.n_epochs_ = self.epochs
        return self

    def _init_units(self, flat: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(flat, dtype=np.float32)

    def _initial_visible_bias(self, data: np.ndarray) -> np.ndarray:
        # log-odds of each unit's training mean (Hinton, 2010, section 8)
        p = np.clip(data.mean(axis=0), 1e-3, 1 - 1e-3)
        return np.log(p / (1 - p)).astype(np.float32)

    # ---- the parameters in readable form -------------------------------------------------------
    @property
    def components_(self) -> np.ndarray:
        """Weights, (n_hidden, n_features), as in scikit-learn's BernoulliRBM."""
        self._check_fitted()
        nv = self.n_features_in_
        return self.A_[:nv, : self.n_hidden].T.cpu().numpy().copy()

    @property
    def intercept_visible_(self) -> np.ndarray:
        self._check_fitted()
        return self.A_[: self.n_features_in_, self.n_hidden].cpu().numpy().copy()

    @property
    def intercept_hidden_(self) -> np.ndarray:
        self._check_fitted()
        return self.A_[self.n_features_in_, : self.n_hidden].cpu().numpy().copy()

    @classmethod
    def from_params(cls, weights, visible_bias, hidden_bias, **params):
        """A fitted RBM with the given weights ``(n_visible, n_hidden)`` and biases (for tests and
        experiments with known parameters)."""
        W = torch.as_tensor(np.asarray(weights, dtype=np.float32))
        nv, nh = W.shape
        est = cls(n_hidden=nh, **params)
        A = torch.zeros(nv + 1, nh + 1)
        A[:nv, :nh] = W
        A[:nv, nh] = torch.as_tensor(np.asarray(visible_bias, dtype=np.float32))
        A[nv, :nh] = torch.as_tensor(np.asarray(hidden_bias, dtype=np.float32))
        est.A_ = A.to(resolve_device(est.device))
        est.base_bias_ = est.A_[:nv, nh].clone()
        est.n_features_in_ = nv
        est.input_shape_ = (nv,)
        est._logz = {}
        est._set_identity_scaling()
        est.history_ = []
        est.n_epochs_ = 0
        return est

    def _set_identity_scaling(self) -> None:
        pass

    # ---- tensor maths in model units ---------------------------------------------------------
    def _hidden_pre(self, v: torch.Tensor) -> torch.Tensor:
        nv = self.n_features_in_
        return torch.addmm(self.A_[nv, : self.n_hidden], v, self.A_[:nv, : self.n_hidden])  # (n, nh)

    def _visible_mean(self, h: torch.Tensor) -> torch.Tensor:
        nv, nh = self.n_features_in_, self.n_hidden
        pre = torch.addmm(self.A_[:nv, nh], h, self.A_[:nv, :nh].T)  # (n, nv)
        return pre if self._gaussian else torch.sigmoid(pre)

    def _sample_visible(self, h: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        mean = self._visible_mean(h)
        if self._gaussian:
            return mean + torch.randn(mean.shape, generator=gen, device=mean.device)
        return (torch.rand(mean.shape, generator=gen, device=mean.device) < mean).float()

    def _free_energy_t(self, v: torch.Tensor) -> torch.Tensor:
        nv, nh = self.n_features_in_, self.n_hidden
        b = self.A_[:nv, nh]
        soft = F.softplus(self._hidden_pre(v)).sum(1)
        if self._gaussian:
            return 0.5 * ((v - b) ** 2).sum(1) - soft
        return -(v @ b) - soft

    @torch.no_grad()
    def _reconstruction_error(self, v: torch.Tensor) -> torch.Tensor:
        return ((self._visible_mean(torch.sigmoid(self._hidden_pre(v))) - v) ** 2).mean()

    @torch.no_grad()
    def _pseudo_likelihood(self, v: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """scikit-learn's estimate: flip one random unit per row, ``nv * log sigmoid(F(v~) - F(v))``."""
        n, nv = v.shape
        idx = torch.randint(0, nv, (n,), generator=gen, device=gen.device).to(v.device)
        rows = torch.arange(n, device=v.device)
        flipped = v.clone()
        flipped[rows, idx] = 1.0 - flipped[rows, idx]
        return nv * F.logsigmoid(self._free_energy_t(flipped) - self._free_energy_t(v))

    # ---- the public transformer / density API ------------------------------------------------
    @torch.no_grad()
    def transform(self, X) -> np.ndarray:
        """Hidden-unit probabilities ``p(h = 1 | v)``, (n, n_hidden)."""
        v = self._to_model(self._init_units_for(self._prepare(X, fitting=False)))
        return torch.sigmoid(self._hidden_pre(v)).cpu().numpy()

    def _init_units_for(self, flat: np.ndarray) -> np.ndarray:
        return flat

    @torch.no_grad()
    def free_energy(self, X) -> np.ndarray:
        """``F(v) = -log sum_h exp(-E(v, h))`` per row (in the model's units)."""
        v = self._to_model(self._init_units_for(self._prepare(X, fitting=False)))
        return self._free_energy_t(v).double().cpu().numpy()

    def score_samples(self, X) -> np.ndarray:
        """Pseudo-log-likelihood per row, as scikit-learn's ``BernoulliRBM.score_samples``
        (one randomly chosen unit per row, drawn from ``seed``)."""
        v = self._to_model(self._prepare(X, fitting=False))
        gen = make_generator(self.seed, v.device)
        return self._pseudo_likelihood(v, gen).double().cpu().numpy()

    def score(self, X, y=None) -> float:
        return float(np.mean(self.score_samples(X)))

    def log_likelihood(self, X, method: str = "auto", **ais) -> float:
        """Mean log-likelihood per row: ``-F(v) - log Z`` with ``log Z`` from :meth:`log_partition`."""
        return float(np.mean(-self.free_energy(X)) - self.log_partition(method, **ais))

    def log_partition(self, method: str = "auto", *, n_chains: int = 100, n_betas: int = 10000, seed=None) -> float:
        """``log Z``: exact by enumeration (the smaller layer must have at most 20 units) or by
        annealed importance sampling from independent visible units (Salakhutdinov & Murray, 2008).
        ``"auto"`` is exact when possible. Results are cached per fitted model."""
        self._check_fitted()
        if method not in ("auto", "exact", "ais"):
            raise InputError(f"method must be one of 'auto', 'exact', 'ais'. Got {method!r} instead.")
        small = self._exact_size() <= _EXACT_LIMIT
        if method == "auto":
            method = "exact" if small else "ais"
        if method == "exact" and not small:
            raise InputError(
                f"The exact partition function enumerates 2^{self._exact_size()} states; it is limited to "
                f"{_EXACT_LIMIT} units on the smaller layer. Use method='ais'."
            )
        key = (method, n_chains, n_betas, seed)
        if key not in self._logz:
            with torch.no_grad(), one_thread():
                if method == "exact":
                    value = self._exact_log_z()
                else:
                    value = self._ais_log_z(n_chains, n_betas, self.seed if seed is None else seed)
            self._logz[key] = float(value)
        return self._logz[key]

    def _exact_size(self) -> int:
        return self.n_hidden if self._gaussian else min(self.n_hidden, self.n_features_in_)

    @torch.no_grad()
    def _exact_log_z(self) -> float:
        """Sum out one layer analytically and enumerate the other, in chunks of 2^16 states."""
        nv, nh = self.n_features_in_, self.n_hidden
        A = self.A_.double()
        W, b, c = A[:nv, :nh], A[:nv, nh], A[nv, :nh]
        enum_hidden = self._gaussian or nh <= nv
        m = nh if enum_hidden else nv
        bits = 2 ** torch.arange(m, device=A.device)
        parts = []
        for start in range(0, 2**m, 2**16):
            codes = torch.arange(start, min(2**m, start + 2**16), device=A.device)
            s = ((codes[:, None] & bits) > 0).double()  # (chunk, m) every state once
            if self._gaussian:  # int exp(-|v-b|^2/2 + v W h) dv = (2 pi)^(nv/2) exp(|b + W h|^2/2 - |b|^2/2)
                mean = b + s @ W.T
                parts.append(s @ c + 0.5 * (mean**2).sum(1) - 0.5 * (b**2).sum() + 0.5 * nv * math.log(2 * math.pi))
            elif enum_hidden:
                parts.append(s @ c + F.softplus(b + s @ W.T).sum(1))
            else:
                parts.append(s @ b + F.softplus(c + s @ W).sum(1))
        return float(torch.logsumexp(torch.cat(parts), 0))

    @torch.no_grad()
    def _ais_log_z(self, n_chains: int, n_betas: int, seed) -> float:
        """Anneal from independent visible units (biases ``base_bias_``, hidden weights 0) to the
        model along ``n_betas`` linearly spaced temperatures; average the importance weights."""
        nv, nh = self.n_features_in_, self.n_hidden
        A = self.A_
        W, b, c = A[:nv, :nh], A[:nv, nh], A[nv, :nh]
        bA = self.base_bias_
        gen = make_generator(seed, A.device)
        dev = A.device
        betas = torch.linspace(0, 1, n_betas + 1).tolist()
        # log f_beta(v) = (1 - beta) bA.v + beta b.v + sum_j softplus(beta (v W + c)_j)   [Bernoulli]
        # log f_beta(v) = -|v|^2/2 + ((1 - beta) bA + beta b).v + sum_j softplus(...)       [Gaussian]
        if self._gaussian:
            v = bA + torch.randn(n_chains, nv, generator=gen, device=dev)
            log_z0 = 0.5 * nv * math.log(2 * math.pi) + 0.5 * float((bA.double() ** 2).sum()) + nh * math.log(2)
        else:
            v = (torch.rand(n_chains, nv, generator=gen, device=dev) < torch.sigmoid(bA)).float()
            log_z0 = float(F.softplus(bA.double()).sum()) + nh * math.log(2)
        log_w = torch.zeros(n_chains, dtype=torch.float64, device=dev)
        db = b - bA
        for beta_prev, beta in zip(betas[:-1], betas[1:], strict=True):
            pre = torch.addmm(c, v, W)  # (chains, nh)
            # log f_beta(v) - log f_beta_prev(v): the visible term moves by (beta - beta_prev) db.v
            log_w += (
                (beta - beta_prev) * (v @ db) + (F.softplus(beta * pre) - F.softplus(beta_prev * pre)).sum(1)
            ).double()
            # one Gibbs sweep that leaves p_beta invariant
            h = (torch.rand(pre.shape, generator=gen, device=dev) < torch.sigmoid(beta * pre)).float()
            mean_pre = (1 - beta) * bA + beta * (b + h @ W.T)
            if self._gaussian:
                v = mean_pre + torch.randn(mean_pre.shape, generator=gen, device=dev)
            else:
                v = (torch.rand(mean_pre.shape, generator=gen, device=dev) < torch.sigmoid(mean_pre)).float()
        log_z = log_z0 + float(torch.logsumexp(log_w, 0)) - math.log(n_chains)
        if self._gaussian:  # f_1 lacks the constant -|b|^2/2 of the model's exp(-F)
            log_z -= 0.5 * float((b.double() ** 2).sum())
        return log_z

    @torch.no_grad()
    def sample(self, n_samples: int = 16, steps: int = 1000, *, probabilities: bool = False, seed=None) -> np.ndarray:
        """``n_samples`` rows from independent Gibbs chains run for ``steps`` sweeps from noise.

        ``probabilities=True`` returns the last ``p(v | h)`` (Bernoulli) or Gaussian mean instead of
        a sample: smoother pictures, and an unbiased estimate of the marginals all the same.
        Returned in the units of ``X`` and reshaped to its sample shape.
        """
        self._check_fitted()
        for name, value in (("n_samples", n_samples), ("steps", steps)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"{name} must be a positive int. Got {value!r} instead.")
        gen = make_generator(self.seed if seed is None else seed, self.A_.device)
        nv = self.n_features_in_
        dev = self.A_.device
        if self._gaussian:
            v = torch.randn(n_samples, nv, generator=gen, device=dev)
        else:
            v = (torch.rand(n_samples, nv, generator=gen, device=dev) < 0.5).float()
        with one_thread():
            v = self._gibbs(v, steps, probabilities, gen)
        out = self._from_model(v.cpu().numpy().astype(np.float64))
        return out.reshape((n_samples, *self.input_shape_))

    def _gibbs(self, v: torch.Tensor, steps: int, probabilities: bool, gen: torch.Generator) -> torch.Tensor:
        dev = v.device
        for step in range(steps):
            p = torch.sigmoid(self._hidden_pre(v))
            h = (torch.rand(p.shape, generator=gen, device=dev) < p).float()
            if step == steps - 1 and probabilities:
                v = self._visible_mean(h)
            else:
                v = self._sample_visible(h, gen)
        return v

    def _from_model(self, v: np.ndarray) -> np.ndarray:
        return v

    def filter_images(self) -> np.ndarray | None:
        """Each hidden unit's weights in the input's image shape, (n_hidden, H, W), or None."""
        W = self.components_  # (nh, nv)
        shape = self.input_shape_
        if len(shape) == 3 and shape[0] == 1:
            return W.reshape(len(W), shape[1], shape[2])
        return as_images(W)

    # ---- run directories: deepatlas train / sample ------------------------------------------
    def fit_dataset(self, ds, *, checkpoint_dir=None, resume: bool = False):
        """``deepatlas train``: fit on the training split (labels unused); draw the pictures
        (filters, Gibbs samples, per-epoch curves) into ``checkpoint_dir/plots``. Fitting takes
        seconds, so there is no checkpoint to resume from: ``resume`` refits."""
        self.fit(ds.X_train)
        if checkpoint_dir is not None:
            write_pictures(self, Path(checkpoint_dir) / "plots", title=f"{type(self).__name__} on {ds.name}")
        return self

    def dataset_metrics(self, ds) -> dict:
        """Test log-likelihood (exact or AIS), pseudo-likelihood, reconstruction error and, with
        labels, the test accuracy of logistic regression on the hidden features (a linear probe)."""
        out: dict[str, float] = {}
        method = "exact" if self._exact_size() <= _EXACT_LIMIT else "ais"
        out["test_log_likelihood"] = self.log_likelihood(ds.X_test, method)
        out["log_partition_method"] = method
        if not self._gaussian:
            out["test_pseudo_likelihood"] = self.score(ds.X_test)
        v = self._to_model(self._init_units_for(self._prepare(ds.X_test, fitting=False)))
        out["test_reconstruction_error"] = float(self._reconstruction_error(v))
        out.update(probe_accuracy(self, ds))
        return out

    def write_samples(self, out=None, *, n=None, prompt=None, label=None, temperature=1.0, seed=0) -> str:
        """``deepatlas sample``: a grid of ``n`` (default 64) Gibbs-chain samples as a PNG."""
        del prompt, label, temperature  # an RBM is unconditional
        n = 64 if n is None else n
        path = Path(out or "samples.png")
        images = self.sample(n, steps=1000, probabilities=True, seed=seed)
        save_samples(images, path, title=f"{type(self).__name__}: {n} Gibbs samples (1000 sweeps)")
        return f"wrote {n} samples to {path}"

    # ---- persistence ----------------------------------------------------------------------
    def _fitted_state(self):
        self._check_fitted()
        tensors = {"A_": self.A_.detach().cpu().contiguous(), "base_bias_": self.base_bias_.detach().cpu().contiguous()}
        meta = {
            "input_shape_": list(self.input_shape_),
            "n_features_in_": self.n_features_in_,
            "n_epochs_": self.n_epochs_,
        }
        return tensors, meta

    def _restore_state(self, tensors, meta):
        device = resolve_device(self.device)
        self.A_ = tensors["A_"].to(device)
        self.base_bias_ = tensors["base_bias_"].to(device)
        self.input_shape_ = tuple(meta["input_shape_"])
        self.n_features_in_ = int(meta["n_features_in_"])
        self.n_epochs_ = meta.get("n_epochs_")
        self._logz = {}


@register_model(
    "rbm",
    task="classification",
    description="Bernoulli restricted Boltzmann machine (CD-k / PCD)",
    smoke={"data": "digits", "params": {"n_hidden": 8, "epochs": 2}},
)
@register_model("rbm", task="generative", smoke={"data": "digits", "params": {"n_hidden": 8, "epochs": 2}})
@dataclass(eq=False, repr=False, kw_only=True)
class RBM(_RBMBase):
    """Bernoulli-Bernoulli RBM trained by CD-k or persistent CD, a scikit-learn transformer.

    Inputs must lie in [0, 1] (each value is read as a probability). ``transform`` gives hidden
    probabilities, ``score_samples`` the pseudo-log-likelihood (as scikit-learn's BernoulliRBM),
    ``log_likelihood`` the exact or AIS-estimated log-likelihood, ``sample`` Gibbs-chain samples.
    ``history_`` holds per-epoch reconstruction loss and pseudo-likelihood on up to 500 training
    rows (and the exact log-likelihood when the smaller layer has at most 12 units).

    >>> from deepatlas.data import load_dataset
    >>> ds = load_dataset("digits")
    >>> RBM(n_hidden=64, epochs=5).fit(ds.X_train).transform(ds.X_test).shape
    (360, 64)
    """


@register_model(
    "gaussian-rbm",
    task="generative",
    description="Gaussian-Bernoulli RBM for real-valued data (standardises itself)",
    smoke={"data": "ring8:n=256", "params": {"n_hidden": 8, "epochs": 2}},
)
@register_model("gaussian-rbm", task="classification", smoke={"data": "blobs", "params": {"n_hidden": 8, "epochs": 2}})
@register_model(
    "gaussian-rbm", task="regression", smoke={"data": "adding:T=5,n=60", "params": {"n_hidden": 8, "epochs": 2}}
)
@dataclass(eq=False, repr=False, kw_only=True)
class GaussianRBM(_RBMBase):
    """RBM with Gaussian visible units for real-valued data (no scaling to [0, 1] needed).

    The data are standardised with the training mean and standard deviation and divided by
    ``sigma`` (the visible units' standard deviation in standardised units); the model is then a
    unit-variance Gaussian-Bernoulli RBM, ``p(v | h) = N(b + W h, I)``, a mixture of ``2^n_hidden``
    Gaussians with shared weights. ``log_likelihood`` and ``sample`` are in the units of ``X``.

    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(500.0, 80.0, size=(400, 3))
    >>> GaussianRBM(n_hidden=8, epochs=5).fit(X).sample(4).shape
    (4, 3)
    """

    lr: float = 0.01
    sigma: float = 1.0
    """Standard deviation of the visible units, in units of the standardised data (which are divided by
    it before training)."""

    _parameter_constraints: ClassVar[dict] = {"sigma": Interval(float, 0, None, "neither")}
    _gaussian: ClassVar[bool] = True

    def _init_units(self, flat):
        self.mean_ = flat.mean(axis=0).astype(np.float32)
        std = flat.std(axis=0)
        self.scale_ = (np.where(std > 1e-8, std, 1.0) * self.sigma).astype(np.float32)
        return self._init_units_for(flat)

    def _init_units_for(self, flat):
        return ((flat - self.mean_) / self.scale_).astype(np.float32)

    def _initial_visible_bias(self, data):
        return data.mean(axis=0).astype(np.float32)

    def _set_identity_scaling(self):
        self.mean_ = np.zeros(self.n_features_in_, np.float32)
        self.scale_ = np.ones(self.n_features_in_, np.float32)

    def _from_model(self, v):
        return v * self.scale_ + self.mean_

    def score_samples(self, X) -> np.ndarray:
        """Log-likelihood per row in the units of ``X`` (log Z exact up to 20 hidden units, else AIS)."""
        method = "exact" if self._exact_size() <= _EXACT_LIMIT else "ais"
        return -self.free_energy(X) - self.log_partition(method) - float(np.log(self.scale_).sum())

    def log_likelihood(self, X, method: str = "auto", **ais) -> float:
        """Mean log-density per row in the units of ``X`` (the standardisation's Jacobian included)."""
        return super().log_likelihood(X, method, **ais) - float(np.log(self.scale_.astype(np.float64)).sum())

    def _fitted_state(self):
        tensors, meta = super()._fitted_state()
        tensors["mean_"] = torch.from_numpy(self.mean_)
        tensors["scale_"] = torch.from_numpy(self.scale_)
        return tensors, meta

    def _restore_state(self, tensors, meta):
        super()._restore_state(tensors, meta)
        self.mean_ = tensors["mean_"].numpy()
        self.scale_ = tensors["scale_"].numpy()


# ---- shared helpers: probes and pictures -------------------------------------------------------
def probe_accuracy(model, ds) -> dict:
    """Test accuracy of logistic regression on ``model.transform`` features (labelled data only)."""
    if ds.task != "classification" or ds.y_train is None:
        return {}
    # weak regularisation: the features are bounded probabilities (scikit-learn's RBM example uses C=6000)
    acc = linear_probe(
        model.transform(ds.X_train),
        ds.y_train,
        model.transform(ds.X_test),
        ds.y_test,
        standardize=False,
        C=1000.0,
        max_iter=3000,
    )
    return {"test_probe_accuracy": acc}


def save_samples(samples: np.ndarray, path: Path, *, title: str = "") -> Path:
    """An image grid for image-shaped samples, a scatter of the first two features otherwise."""
    from deepatlas.plotting import new_figure, save_figure

    images = as_images(samples)
    if images is None:
        fig, ax = new_figure(figsize=(4.5, 4.5))
        ax.scatter(samples[:, 0], samples[:, min(1, samples.shape[1] - 1)], s=6)
        ax.set_title(title, fontsize=9)
        return save_figure(fig, path)
    return save_figure(tile_figure(images, title), path)


def write_pictures(model, plots: Path, *, title: str = "") -> list[Path]:
    """Filters as image tiles, Gibbs-chain samples, and per-epoch curves of a fitted RBM-like model."""
    from deepatlas.plotting import new_figure, save_figure

    written = []
    filters = model.filter_images() if hasattr(model, "filter_images") else None
    if filters is not None:
        written.append(save_figure(tile_figure(filters[:64], f"{title}: filters"), plots / "filters.png"))
    try:
        samples = model.sample(64, steps=1000, probabilities=True)
    except InputError:  # e.g. a pooled convolutional DBN has no down pass
        samples = None
    if samples is not None:
        written.append(save_samples(samples, plots / "samples.png", title=f"{title}: Gibbs samples"))
    history = getattr(model, "history_", [])
    keys = [k for k in ("pseudo_likelihood", "log_likelihood") if history and k in history[0]]
    if keys:
        fig, axes = new_figure(1, len(keys), figsize=(4.5 * len(keys), 3.4), squeeze=False)
        for ax, key in zip(axes[0], keys, strict=True):
            ax.plot([h["epoch"] for h in history], [h[key] for h in history], marker="o", ms=3)
            ax.set_xlabel("epoch")
            ax.set_ylabel(key.replace("_", " "))
            ax.grid(alpha=0.3)
        fig.suptitle(title, fontsize=9)
        written.append(save_figure(fig, plots / "likelihood.png"))
    return written

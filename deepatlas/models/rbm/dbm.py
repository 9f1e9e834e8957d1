"""Deep Boltzmann machines: every layer undirected, inference by mean field.

A DBM over visible units ``v = h0`` and hidden layers ``h1 .. hL`` (L >= 2) has the energy
``E = -sum_l bias_l . h_l - sum_l h_l W_l h_(layer+1)``: an RBM per pair of adjacent layers, all
undirected. Unlike a DBN (whose lower layers are directed, so one bottom-up pass gives the
features), the posterior over layer 1 depends on layer 2 as well as on the data: a hidden layer
hears both neighbours, and the posterior is approximated by mean field (fixed-point updates of
factorised marginals ``mu_l``, odd layers then even layers, which never lowers the variational
bound).

Training follows Salakhutdinov & Hinton (2009):

1. Greedy pretraining with the doubled-input correction. The bottom RBM sees its visible input
   twice (bottom-up weights ``2 W``, top-down ``W``), the top RBM has its hidden layer twice
   (top-down ``2 W``), a middle RBM both: in the DBM each hidden layer gets input from below
   *and* above, so each module is trained to give half of it. A replicated unit is a binomial
   unit with two trials, which the Bernoulli kernel of ``rbm.py`` does not draw, so the modules
   have their own small persistent-CD loop (:func:`train_replicated`). A hidden layer's bias is
   the mean of the bias the module below gives it and the one the module above gives it.
2. Joint training of all weights at once: the data term from mean-field posteriors (initialised
   by a bottom-up pass with doubled weights), the model term from persistent Gibbs chains
   (odd layers given even ones, then even given odd).

A DBM is bipartite between its even layers (``v``, ``h2``, ...) and its odd layers (``h1``,
``h3``, ...), so it *is* an RBM between those two groups with a block-sparse weight matrix.
``log Z`` comes from that RBM (``rbm.RBM.from_params``): exact enumeration on small models, and
the RBM's annealed importance sampling over the odd layers with the even layers summed out (the
AIS of Salakhutdinov & Hinton, 2009, section 4). The test log-likelihood bound is the mean-field
variational bound ``E_q[-E(v, h)] + H(q) - log Z``.

``transform`` gives the top layer's mean-field posteriors (as ``DBN.transform`` gives its top
layer); :meth:`DBM.mean_field` returns every layer's.

References: Salakhutdinov & Hinton (2009), "Deep Boltzmann machines" (AISTATS); Salakhutdinov &
Hinton (2012), "An efficient learning procedure for deep Boltzmann machines" (Neural
Computation); Salakhutdinov & Murray (2008), "On the quantitative analysis of deep belief
networks"; Tieleman (2008), "Training restricted Boltzmann machines using approximations to the
likelihood gradient".
"""

from __future__ import annotations

import contextlib
import math
import numbers
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import TransformerMixin
from torch.nn import functional as F

from deepatlas._validation import Boolean, Interval, TupleOf
from deepatlas.device import make_generator, resolve_device
from deepatlas.errors import InputError, TrainingDiverged
from deepatlas.estimator import Estimator
from deepatlas.models.base import check_features
from deepatlas.models.common import as_images
from deepatlas.models.rbm.rbm import RBM, check_unit_interval, one_thread, probe_accuracy, save_samples, write_pictures
from deepatlas.registry import register_model

_EXACT_LIMIT = 20  # log Z by enumeration up to 2^20 states of the smaller (odd or even) group
_MONITOR_ROWS = 500


@dataclass(frozen=True)
class _Layers(TupleOf):
    """Hidden layer sizes of a DBM: at least two positive ints."""

    def accepts(self, value: Any) -> bool:
        return isinstance(value, (tuple, list)) and len(value) >= 2 and super().accepts(value)

    @property
    def description(self) -> str:
        return "a tuple of at least 2 positive ints"


# ---- kernels: inputs to a layer, mean field, Gibbs sweeps -------------------------------------------
def layer_input(states: list, layer: int, weights: list, biases: list) -> torch.Tensor:
    """Total input to layer number ``layer`` from its neighbours' states (or marginals): (n, n_l)."""
    x = biases[layer]
    if layer > 0:
        x = x + states[layer - 1] @ weights[layer - 1]
    if layer < len(weights):
        x = x + states[layer + 1] @ weights[layer].T
    return x


def mean_field(v: torch.Tensor, weights: list, biases: list, steps: int) -> list[torch.Tensor]:
    """Mean-field marginals ``[mu_1, ..., mu_L]`` of the hidden layers given data ``v`` (n, nv).

    Start from a bottom-up pass with doubled weights below the top layer (standing in for the
    missing top-down input), then ``steps`` sweeps of fixed-point updates, odd layers then even
    layers (each half-sweep maximises the bound over its layers exactly). A fixed number of
    sweeps: the same arithmetic is the exported graph.
    """
    L = len(weights)
    mu = [v]
    for layer in range(1, L + 1):
        scale = 2.0 if layer < L else 1.0
        mu.append(torch.sigmoid(scale * (mu[layer - 1] @ weights[layer - 1]) + biases[layer]))
    for _ in range(steps):
        for first in (1, 2):
            for layer in range(first, L + 1, 2):
                mu[layer] = torch.sigmoid(layer_input(mu, layer, weights, biases))
    return mu[1:]


def _bernoulli(p: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return (torch.rand(p.shape, generator=gen, device=p.device) < p).to(p.dtype)


def gibbs_sweep(states: list, weights: list, biases: list, gen: torch.Generator) -> dict[int, torch.Tensor]:
    """One block-Gibbs sweep in place: odd layers given even ones, then even layers (the visible
    one included) given odd ones. Returns the even layers' probabilities of the second half."""
    L = len(weights)
    for layer in range(1, L + 1, 2):
        states[layer] = _bernoulli(torch.sigmoid(layer_input(states, layer, weights, biases)), gen)
    probs = {}
    for layer in range(0, L + 1, 2):
        probs[layer] = torch.sigmoid(layer_input(states, layer, weights, biases))
        states[layer] = _bernoulli(probs[layer], gen)
    return probs


def _binomial(trials: int, p: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Sum of ``trials`` independent Bernoulli(p) draws: a unit replicated ``trials`` times."""
    out = _bernoulli(p, gen)
    for _ in range(trials - 1):
        out += _bernoulli(p, gen)
    return out


@torch.no_grad()
def train_replicated(
    X: torch.Tensor,
    n_hidden: int,
    *,
    up: int,
    down: int,
    lr: float,
    momentum: float,
    weight_decay: float,
    epochs: int,
    batch_size: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Persistent CD-1 for an RBM whose visible units appear ``up`` times and hidden units
    ``down`` times, with tied weights: ``p(h | v) = sigmoid(up * v W + c)``,
    ``p(v | h) = sigmoid(down * h W^T + b)`` in expectation. A replicated unit is a binomial unit;
    the gradient is that of the replicated model, ``<s t>_data - <s t>_model`` with ``s``, ``t``
    the replica sums. Returns ``W`` (nv, nh), the visible bias ``b`` and the hidden bias ``c``.
    """
    n, nv = X.shape
    dev, g = X.device, generator
    B = min(batch_size, n)
    W = torch.randn(nv, n_hidden, generator=g, device=dev) * 0.01
    p = X.mean(0).clamp(1e-3, 1 - 1e-3)
    b = torch.log(p / (1 - p))  # log-odds of the training means (Hinton, 2010)
    c = torch.zeros(n_hidden, device=dev)
    dW, db, dc = torch.zeros_like(W), torch.zeros_like(b), torch.zeros_like(c)
    chains = _binomial(up, X[torch.randint(0, n, (B,), generator=g, device=g.device).to(dev)], g)
    decay = 1.0 - lr * weight_decay
    for _ in range(epochs):
        order = torch.randperm(n, generator=g, device=g.device).to(dev)
        for i in range(0, (n // B) * B, B):
            x = X[order[i : i + B]]
            ph = torch.sigmoid(up * (x @ W) + c)  # the data's replica sum is up * x
            t = _binomial(down, torch.sigmoid(chains @ W + c), g)
            chains = _binomial(up, torch.sigmoid(t @ W.T + b), g)
            pn = torch.sigmoid(chains @ W + c)
            gW = (up * down) * (x.T @ ph) - down * (chains.T @ pn)
            gb = up * x.sum(0) - chains.sum(0)
            gc = down * (ph.sum(0) - pn.sum(0))
            for vel, grad, param in ((dW, gW, W), (db, gb, b), (dc, gc, c)):
                vel.mul_(momentum).add_(grad, alpha=lr / B)
                param.add_(vel)
            if weight_decay:
                W.mul_(decay)
    return W, b, c


# ---- the estimator ---------------------------------------------------------------------------------
@register_model(
    "dbm",
    task="generative",
    description="deep Boltzmann machine: doubled-input pretraining, mean-field + persistent-chain training, AIS",
    smoke={
        "data": "digits",
        "params": {"hidden_sizes": (8, 6), "pretrain_epochs": 1, "epochs": 1, "n_chains": 10, "mean_field_steps": 3},
    },
)
@dataclass(eq=False, repr=False, kw_only=True)
class DBM(TransformerMixin, Estimator):
    """Deep Boltzmann machine (Salakhutdinov & Hinton, 2009) on data in [0, 1].

    ``transform`` gives the top layer's mean-field posteriors, ``mean_field`` every hidden
    layer's; ``sample`` runs block-Gibbs chains; ``log_partition`` is exact on small models or
    AIS; ``log_likelihood_bound`` is the mean-field lower bound on the log-likelihood.
    ``history_`` holds per-epoch measures of the joint training (the exact bound when the model
    is small enough to enumerate).

    >>> from deepatlas.data import load_dataset
    >>> ds = load_dataset("digits")
    >>> DBM(hidden_sizes=(32, 16), pretrain_epochs=2, epochs=2).fit(ds.X_train).transform(ds.X_test).shape
    (360, 16)
    """

    hidden_sizes: tuple = (100, 100)
    """Units of each hidden layer, bottom first (two or more layers; all undirected)."""
    pretrain: bool = True
    """Initialise the weights by greedy pretraining of RBMs with the doubled-input correction; False starts
    joint training from small random weights."""
    pretrain_lr: float = 0.05
    """Step size of the pretraining RBMs' persistent-CD updates, averaged over the batch."""
    pretrain_epochs: int = 20
    """Passes over the data for each pretraining RBM."""
    lr: float = 0.01
    """Step size of joint training, averaged over the batch; it decays linearly to a tenth of this value over
    the epochs."""
    epochs: int = 30
    """Passes over the data of joint training (a fixed budget: no early stopping)."""
    batch_size: int = 10
    """Samples per update, in pretraining and joint training."""
    n_chains: int = 100
    """Persistent Gibbs chains (fantasy particles) that estimate the model term of joint training."""
    k: int = 1
    """Block-Gibbs sweeps of the persistent chains per joint-training update."""
    mean_field_steps: int = 20
    """Mean-field sweeps (odd layers, then even layers) after the doubled bottom-up pass, in training and in
    ``transform`` (a fixed count: the exported graph does the same)."""
    momentum: float = 0.5
    """Fraction of the previous update added to the next one, in pretraining and joint training; 0 turns it
    off."""
    weight_decay: float = 1e-4
    """Weight shrinkage per update: weights are multiplied by ``1 - lr * weight_decay`` (biases are not)."""

    _parameter_constraints: ClassVar[dict] = {
        "hidden_sizes": _Layers(),
        "pretrain": Boolean(),
        "pretrain_lr": Interval(float, 0, None, "neither"),
        "pretrain_epochs": Interval(int, 1, None),
        "lr": Interval(float, 0, None, "neither"),
        "epochs": Interval(int, 0, None),
        "batch_size": Interval(int, 1, None),
        "n_chains": Interval(int, 1, None),
        "k": Interval(int, 1, None),
        "mean_field_steps": Interval(int, 0, None),
        "momentum": Interval(float, 0, 1, "left"),
        "weight_decay": Interval(float, 0, None),
    }
    _fitted_attr: ClassVar[str] = "weights_"

    # ---- data ---------------------------------------------------------------------------------
    def _prepare(self, X, *, fitting: bool) -> np.ndarray:
        X = check_features(X, "DBM")
        flat = X.reshape(len(X), -1)
        if not fitting:
            self._check_fitted()
            if flat.shape[1] != self.n_features_in_:
                raise InputError(
                    f"X has {flat.shape[1]} features, but DBM is expecting {self.n_features_in_} features as input."
                )
        elif len(X) < 2:
            raise InputError(f"DBM needs at least 2 samples to fit. Got {len(X)} instead.")
        check_unit_interval(flat, "DBM", hint="(a DBM has Bernoulli visible units)")
        return flat

    def _tensor(self, X) -> torch.Tensor:
        flat = self._prepare(X, fitting=False)
        return torch.as_tensor(np.ascontiguousarray(flat, dtype=np.float32), device=self.weights_[0].device)

    # ---- fitting ------------------------------------------------------------------------------
    def fit(self, X, y=None):
        """Pretrain greedily (unless ``pretrain=False``), then train all layers jointly; labels are
        ignored. Returns ``self``."""
        self._validate_params()
        flat = self._prepare(X, fitting=True)
        device = resolve_device(self.device)
        gen = make_generator(self.seed, device)
        V = torch.as_tensor(np.ascontiguousarray(flat, dtype=np.float32), device=device)
        sizes = [V.shape[1], *(int(s) for s in self.hidden_sizes)]
        small = device.type == "cpu" and max(sizes) ** 2 * max(self.batch_size, self.n_chains) < 2**22
        start = time.perf_counter()
        with one_thread() if small else contextlib.nullcontext():
            weights, biases = self._pretrain(V, sizes, gen) if self.pretrain else self._random_init(V, sizes, gen)
            self.pretrain_seconds_ = time.perf_counter() - start
            self.history_ = []
            self._joint_training(V, weights, biases, gen)
            self.weights_, self.biases_ = weights, biases
            mu = mean_field(V, weights, biases, self.mean_field_steps)
            self.base_bias_ = self._base_from(mu)
        self.fit_seconds_ = time.perf_counter() - start
        self.input_shape_ = tuple(int(s) for s in np.shape(X)[1:])
        self.n_features_in_ = sizes[0]
        self.n_epochs_ = self.epochs
        self._logz = {}
        return self

    def _pretrain(self, V: torch.Tensor, sizes: list[int], gen) -> tuple[list, list]:
        """Greedy stack with the doubled-input correction; ``pretrained_`` keeps each module's
        ``(W, b, c, up, down)`` for inspection."""
        L = len(sizes) - 1
        weights, modules = [], []
        data = V
        for layer in range(L):
            up = 2 if layer == 0 or layer < L - 1 else 1  # the input is doubled below the top module
            down = 2 if layer > 0 else 1  # the hidden layer is doubled above the bottom module
            W, b, c = train_replicated(
                data,
                sizes[layer + 1],
                up=up,
                down=down,
                lr=self.pretrain_lr,
                momentum=self.momentum,
                weight_decay=self.weight_decay,
                epochs=self.pretrain_epochs,
                batch_size=self.batch_size,
                generator=gen,
            )
            modules.append((W, b, c, up, down))
            weights.append(W)
            data = torch.sigmoid(up * (data @ W) + c)  # the module's posterior: the next module's data
        biases = [modules[0][1]]
        for layer in range(1, L + 1):
            from_below = modules[layer - 1][2]
            biases.append(from_below if layer == L else 0.5 * (from_below + modules[layer][1]))
        self.pretrained_ = [tuple(t.clone() if torch.is_tensor(t) else t for t in m) for m in modules]
        return weights, biases

    def _random_init(self, V: torch.Tensor, sizes: list[int], gen) -> tuple[list, list]:
        dev = V.device
        weights = [torch.randn(a, b, generator=gen, device=dev) * 0.01 for a, b in zip(sizes[:-1], sizes[1:])]
        p = V.mean(0).clamp(1e-3, 1 - 1e-3)
        biases = [torch.log(p / (1 - p))] + [torch.zeros(s, device=dev) for s in sizes[1:]]
        self.pretrained_ = []
        return weights, biases

    @torch.no_grad()
    def _joint_training(self, V: torch.Tensor, weights: list, biases: list, gen) -> None:
        n = len(V)
        dev = V.device
        L = len(weights)
        B = min(self.batch_size, n)
        M = self.n_chains
        # chains start at data rows and their mean-field states, sampled
        rows = V[torch.randint(0, n, (M,), generator=gen, device=gen.device).to(dev)]
        chains = [_bernoulli(rows, gen)] + [_bernoulli(m, gen) for m in mean_field(rows, weights, biases, 0)]
        vel_w = [torch.zeros_like(W) for W in weights]
        vel_b = [torch.zeros_like(b) for b in biases]
        monitor = V[torch.randperm(n, generator=gen, device=gen.device)[:_MONITOR_ROWS].to(dev)]
        exact = self._exact_group(weights) <= 12
        steps = n // B
        for epoch in range(self.epochs):
            lr = self.lr * (1.0 - 0.9 * epoch / max(1, self.epochs - 1))
            decay = 1.0 - lr * self.weight_decay
            order = torch.randperm(n, generator=gen, device=gen.device).to(dev)
            for i in range(0, steps * B, B):
                v = V[order[i : i + B]]
                mu = [v, *mean_field(v, weights, biases, self.mean_field_steps)]
                for _ in range(self.k):
                    probs = gibbs_sweep(chains, weights, biases, gen)
                # model statistics: odd layers' samples with even layers' conditional probabilities
                model = [probs[layer] if layer % 2 == 0 else chains[layer] for layer in range(L + 1)]
                for layer in range(L):
                    grad = mu[layer].T @ mu[layer + 1] / B - model[layer].T @ model[layer + 1] / M
                    vel_w[layer].mul_(self.momentum).add_(grad, alpha=lr)
                    weights[layer].add_(vel_w[layer])
                    if self.weight_decay:
                        weights[layer].mul_(decay)
                for layer in range(L + 1):
                    vel_b[layer].mul_(self.momentum).add_(mu[layer].mean(0) - model[layer].mean(0), alpha=lr)
                    biases[layer].add_(vel_b[layer])
            self._log_epoch(epoch, monitor, weights, biases, exact)

    def _log_epoch(self, epoch: int, monitor, weights, biases, exact: bool) -> None:
        mu = mean_field(monitor, weights, biases, self.mean_field_steps)
        recon = torch.sigmoid(layer_input([monitor, *mu], 0, weights, biases))
        logs = {"epoch": epoch + 1, "reconstruction_loss": float(((recon - monitor) ** 2).mean())}
        if not math.isfinite(logs["reconstruction_loss"]):
            raise TrainingDiverged(
                f"Training diverged: the reconstruction loss became {logs['reconstruction_loss']} at epoch "
                f"{epoch + 1}. Try a lower learning rate (lr={self.lr:g} now)."
            )
        if exact:
            rbm = _block_rbm(weights, biases, self._base_from(mu), self.seed, monitor.device)
            logs["log_likelihood_bound"] = float(_energy_bound(monitor, mu, weights, biases).mean()) - float(
                rbm._exact_log_z()
            )
        self.history_.append(logs)
        if self.verbose:
            shown = ", ".join(f"{k} {v:.4g}" for k, v in logs.items() if k != "epoch")
            print(f"[DBM] epoch {epoch + 1}/{self.epochs}: {shown}", flush=True)

    @classmethod
    def from_params(cls, weights, biases, **params) -> DBM:
        """A fitted DBM with the given weights ``[(n_0, n_1), (n_1, n_2), ...]`` and biases
        ``[(n_0,), (n_1,), ...]`` (for tests and experiments with known parameters); the AIS base
        is uniform (zero biases)."""
        W = [torch.as_tensor(np.asarray(w, dtype=np.float32)) for w in weights]
        b = [torch.as_tensor(np.asarray(c, dtype=np.float32)) for c in biases]
        if len(W) < 2 or len(b) != len(W) + 1:
            raise InputError(f"from_params needs at least 2 weight matrices and one bias more. Got {len(W)}, {len(b)}.")
        est = cls(hidden_sizes=tuple(int(w.shape[1]) for w in W), **params)
        device = resolve_device(est.device)
        est.weights_, est.biases_ = [w.to(device) for w in W], [c.to(device) for c in b]
        est.base_bias_ = torch.zeros(sum(int(w.shape[1]) for w in W[0::2]), device=device)
        est.n_features_in_ = int(W[0].shape[0])
        est.input_shape_ = (est.n_features_in_,)
        est.history_, est.pretrained_, est.n_epochs_, est._logz = [], [], 0, {}
        return est

    @staticmethod
    def _base_from(mu: list) -> torch.Tensor:
        """AIS base biases for the odd layers: log-odds of their mean posteriors on the data."""
        p = torch.cat([m.mean(0) for m in mu[0::2]]).clamp(1e-3, 1 - 1e-3)
        return torch.log(p / (1 - p))

    @staticmethod
    def _exact_group(weights: list) -> int:
        sizes = [weights[0].shape[0]] + [W.shape[1] for W in weights]
        return min(sum(sizes[1::2]), sum(sizes[0::2]))

    # ---- inference ----------------------------------------------------------------------------
    @torch.no_grad()
    def mean_field(self, X) -> list[np.ndarray]:
        """Mean-field posteriors of every hidden layer, bottom first: ``[(n, h1), (n, h2), ...]``."""
        v = self._tensor(X)
        return [m.cpu().numpy() for m in mean_field(v, self.weights_, self.biases_, self.mean_field_steps)]

    def transform(self, X) -> np.ndarray:
        """Top-layer mean-field posteriors, (n, hidden_sizes[-1])."""
        return self.mean_field(X)[-1]

    @torch.no_grad()
    def sample(self, n_samples: int = 16, steps: int = 1000, *, probabilities: bool = False, seed=None) -> np.ndarray:
        """``n_samples`` visible vectors from independent block-Gibbs chains run ``steps`` sweeps
        from uniform noise; ``probabilities=True`` returns the last ``p(v | h1)`` instead of a
        sample. Reshaped to the sample shape of ``X``."""
        self._check_fitted()
        for name, value in (("n_samples", n_samples), ("steps", steps)):
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
                raise InputError(f"{name} must be a positive int. Got {value!r} instead.")
        dev = self.weights_[0].device
        gen = make_generator(self.seed if seed is None else seed, dev)
        sizes = [self.n_features_in_, *(W.shape[1] for W in self.weights_)]
        states = [_bernoulli(torch.full((n_samples, s), 0.5, device=dev), gen) for s in sizes]
        with one_thread():
            for _ in range(steps):
                probs = gibbs_sweep(states, self.weights_, self.biases_, gen)
        v = probs[0] if probabilities else states[0]
        return v.cpu().numpy().astype(np.float64).reshape((n_samples, *self.input_shape_))

    # ---- likelihood ---------------------------------------------------------------------------
    def as_rbm(self) -> RBM:
        """The same model as an RBM between the odd layers ("visible": h1, h3, ...) and the even
        layers ("hidden": v, h2, ...), with a block-sparse weight matrix."""
        self._check_fitted()
        return _block_rbm(self.weights_, self.biases_, self.base_bias_, self.seed, self.weights_[0].device)

    def log_partition(self, method: str = "auto", *, n_chains: int = 100, n_betas: int = 10000, seed=None) -> float:
        """``log Z``: exact by enumerating the smaller of the odd and even groups (at most 20 units),
        or by annealed importance sampling over the odd layers with the even ones summed out.
        ``"auto"`` is exact when possible. Cached per fitted model."""
        self._check_fitted()
        if method not in ("auto", "exact", "ais"):
            raise InputError(f"method must be one of 'auto', 'exact', 'ais'. Got {method!r} instead.")
        size = self._exact_group(self.weights_)
        if method == "auto":
            method = "exact" if size <= _EXACT_LIMIT else "ais"
        if method == "exact" and size > _EXACT_LIMIT:
            raise InputError(
                f"The exact partition function enumerates 2^{size} states (the smaller of the odd and even layer "
                f"groups); it is limited to {_EXACT_LIMIT} units. Use method='ais'."
            )
        key = (method, n_chains, n_betas, seed)
        if key not in self._logz:
            self._logz[key] = self.as_rbm().log_partition(method, n_chains=n_chains, n_betas=n_betas, seed=seed)
        return self._logz[key]

    @torch.no_grad()
    def log_likelihood_bound_samples(self, X, method: str = "auto", **ais) -> np.ndarray:
        """Per row, the mean-field lower bound ``E_q[-E(v, h)] + H(q) - log Z`` on ``log p(v)``
        (nats). With an AIS ``log Z`` it is an estimate: AIS tends to underestimate ``log Z``."""
        v = self._tensor(X)
        mu = mean_field(v, self.weights_, self.biases_, self.mean_field_steps)
        bound = _energy_bound(v, mu, self.weights_, self.biases_).double().cpu().numpy()
        return bound - self.log_partition(method, **ais)

    def log_likelihood_bound(self, X, method: str = "auto", **ais) -> float:
        """Mean of :meth:`log_likelihood_bound_samples` over the rows of ``X``."""
        return float(np.mean(self.log_likelihood_bound_samples(X, method, **ais)))

    def score(self, X, y=None) -> float:
        """Mean log-likelihood lower bound per row (``log Z`` exact when possible, else AIS)."""
        return self.log_likelihood_bound(X)

    @torch.no_grad()
    def exact_log_likelihood(self, X) -> float:
        """Mean ``log p(v)`` by enumerating the odd hidden layers (h1, h3, ...; at most 20 units),
        the even hidden layers summed out: for checking the bound on small models."""
        v = self._tensor(X).double()
        W = [w.double() for w in self.weights_]
        b = [c.double() for c in self.biases_]
        L = len(W)
        odd = [layer for layer in range(1, L + 1, 2)]
        m = sum(W[layer - 1].shape[1] for layer in odd)
        if m > _EXACT_LIMIT:
            raise InputError(
                f"exact_log_likelihood enumerates 2^{m} odd-layer states; it is limited to {_EXACT_LIMIT}."
            )
        codes = torch.arange(2**m, device=v.device)
        S = ((codes[:, None] >> torch.arange(m, device=v.device)) & 1).double()  # (2^m, m)
        parts, at = {}, 0
        for layer in odd:
            parts[layer] = S[:, at : at + W[layer - 1].shape[1]]
            at += W[layer - 1].shape[1]
        # -E(v, odd) after summing out the even hidden layers: (n, 2^m)
        total = (v @ b[0])[:, None] + v @ W[0] @ parts[1].T
        for layer in odd:
            total = total + (parts[layer] @ b[layer])[None, :]
        for layer in range(2, L + 1, 2):
            pre = b[layer] + parts[layer - 1] @ W[layer - 1]
            if layer < L:
                pre = pre + parts[layer + 1] @ W[layer].T
            total = total + F.softplus(pre).sum(1)[None, :]
        log_z = self.log_partition("exact") if self._exact_group(self.weights_) <= _EXACT_LIMIT else None
        if log_z is None:
            raise InputError("exact_log_likelihood needs an exact log Z: the model is too large.")
        return float(torch.logsumexp(total, 1).mean()) - log_z

    def filter_images(self):
        """The first layer's weights as images, (h1, H, W), or None."""
        W = self.weights_[0].T.cpu().numpy()
        shape = self.input_shape_
        if len(shape) == 3 and shape[0] == 1:
            return W.reshape(len(W), shape[1], shape[2])
        return as_images(W)

    # ---- run directories ----------------------------------------------------------------------
    def fit_dataset(self, ds, *, checkpoint_dir=None, resume: bool = False):
        """``deepatlas train``: fit on the training split (labels unused); pictures go to
        ``checkpoint_dir/plots``. Fitting takes seconds, so ``resume`` refits."""
        self.fit(ds.X_train)
        if checkpoint_dir is not None:
            write_pictures(self, Path(checkpoint_dir) / "plots", title=f"DBM on {ds.name}")
        return self

    def dataset_metrics(self, ds) -> dict:
        """Test log-likelihood lower bound (mean field; log Z exact or AIS) and, with labels, a
        linear probe's test accuracy on the top-layer posteriors."""
        method = "exact" if self._exact_group(self.weights_) <= _EXACT_LIMIT else "ais"
        out: dict[str, Any] = {
            "test_log_likelihood_bound": self.log_likelihood_bound(ds.X_test, method),
            "log_partition_method": method,
        }
        out.update(probe_accuracy(self, ds))
        return out

    def write_samples(self, out=None, *, n=None, prompt=None, label=None, temperature=1.0, seed=0) -> str:
        """``deepatlas sample``: a grid of ``n`` (default 64) block-Gibbs samples as a PNG."""
        del prompt, label, temperature
        n = 64 if n is None else n
        path = Path(out or "samples.png")
        save_samples(self.sample(n, 1000, probabilities=True, seed=seed), path, title=f"DBM: {n} Gibbs samples")
        return f"wrote {n} samples to {path}"

    # ---- persistence ----------------------------------------------------------------------
    def _fitted_state(self):
        self._check_fitted()
        tensors = {f"W{layer}": W.detach().cpu().contiguous() for layer, W in enumerate(self.weights_)}
        tensors.update({f"bias{layer}": b.detach().cpu().contiguous() for layer, b in enumerate(self.biases_)})
        tensors["base_bias_"] = self.base_bias_.detach().cpu().contiguous()
        meta = {
            "input_shape_": list(self.input_shape_),
            "n_features_in_": self.n_features_in_,
            "n_epochs_": self.n_epochs_,
        }
        return tensors, meta

    def _restore_state(self, tensors, meta):
        device = resolve_device(self.device)
        L = sum(1 for k in tensors if k.startswith("W"))
        self.biases_ = [tensors[f"bias{layer}"].to(device) for layer in range(L + 1)]
        self.base_bias_ = tensors["base_bias_"].to(device)
        self.input_shape_ = tuple(meta["input_shape_"])
        self.n_features_in_ = int(meta["n_features_in_"])
        self.n_epochs_ = meta.get("n_epochs_")
        self._logz = {}
        self.weights_ = [tensors[f"W{layer}"].to(device) for layer in range(L)]


def _energy_bound(v, mu: list, weights: list, biases: list) -> torch.Tensor:
    """``E_q[-E(v, h)] + H(q)`` per row for factorised ``q`` with marginals ``mu`` (float64)."""
    states = [v.double(), *(m.double() for m in mu)]
    out = states[0] @ biases[0].double()
    for layer in range(1, len(states)):
        m = states[layer]
        out = out + m @ biases[layer].double() + ((states[layer - 1] @ weights[layer - 1].double()) * m).sum(1)
        p = m.clamp(1e-12, 1 - 1e-12)
        out = out - (p * p.log() + (1 - p) * (1 - p).log()).sum(1)
    return out


def _block_rbm(weights: list, biases: list, base_bias: torch.Tensor, seed, device) -> RBM:
    """The DBM as an RBM: visible = odd layers, hidden = even layers (v first)."""
    L = len(weights)
    sizes = [weights[0].shape[0]] + [W.shape[1] for W in weights]
    odd, even = list(range(1, L + 1, 2)), list(range(0, L + 1, 2))
    off_o = {layer: sum(sizes[j] for j in odd if j < layer) for layer in odd}
    off_e = {layer: sum(sizes[j] for j in even if j < layer) for layer in even}
    big = torch.zeros(sum(sizes[layer] for layer in odd), sum(sizes[layer] for layer in even), dtype=torch.float32)
    for layer, W in enumerate(weights):  # W_l couples layer layer and layer + 1: one odd, one even
        Wc = W.detach().float().cpu()
        if layer % 2 == 0:  # layer even, layer + 1 odd: block (odd layer+1, even layer) = W_l^T
            big[off_o[layer + 1] : off_o[layer + 1] + sizes[layer + 1], off_e[layer] : off_e[layer] + sizes[layer]] = (
                Wc.T
            )
        else:
            big[off_o[layer] : off_o[layer] + sizes[layer], off_e[layer + 1] : off_e[layer + 1] + sizes[layer + 1]] = Wc
    b_odd = torch.cat([biases[layer].detach().float().cpu() for layer in odd])
    b_even = torch.cat([biases[layer].detach().float().cpu() for layer in even])
    device = str(device)
    rbm = RBM.from_params(big.numpy(), b_odd.numpy(), b_even.numpy(), seed=seed, device=device)
    rbm.base_bias_ = base_bias.detach().float().to(rbm.A_.device).clone()
    return rbm

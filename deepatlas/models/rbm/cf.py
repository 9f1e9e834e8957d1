"""The RBM for collaborative filtering (Salakhutdinov, Mnih & Hinton, 2007).

Each user is an RBM whose visible units are the items that user rated, one K-way softmax unit
per rated item (K rating levels); unrated items have no unit at all. Every user's RBM has the
same number of binary hidden units and shares the weights: item ``i`` at level ``k`` meets hidden
unit ``j`` through ``W[i, k, j]`` in every RBM that has item ``i``. So

    p(v_i = k | h) = softmax_k(b[i, k] + sum_j h_j W[i, k, j])     (rated items only)
    p(h_j = 1 | V) = sigmoid(c_j + sum_{i rated} W[i, v_i, j])

Training is CD-k over mini-batches of users, written as dense tensors with a mask: a batch's
ratings are one-hot ``(B, M, K)`` with all-zero rows for unrated items, so the hidden inputs are
one matrix product ``(B, M*K) @ (M*K, F)``; the negative phase samples every item's softmax and
multiplies by the mask, which keeps exactly the user's own visible units. The paper's tricks are
parameters: momentum, weight decay on ``W``, and the number of Gibbs steps raised over training
(``k_schedule``, the paper's T = 1, 3, 5, 9). Visible biases start at the log-frequencies of each
item's levels in the training ratings.

Prediction is the paper's one mean-field pass: ``p_j = p(h_j = 1 | V)`` from the user's training
ratings, then ``p(v_q = k | p)`` and the expected rating ``sum_k level_k p(v_q = k)`` for the query
item ``q``. A pair with a user or an item that ``fit`` never saw has no RBM or no weights: it gets
the user + item bias baseline of the same training ratings (the global mean plus the biases that
are known), with a warning that counts such pairs. A new user's ratings go through
:meth:`RBMCF.predict_ratings` (and the exported graph), which needs no refit.

References: Salakhutdinov, Mnih & Hinton (2007), "Restricted Boltzmann machines for collaborative
filtering", ICML; Hinton (2002), "Training products of experts by minimizing contrastive
divergence"; Koren (2008), "Factorization meets the neighborhood" (the biased baseline).
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch.nn import functional as F

from deepatlas._validation import Constraint, Interval, NoneOr, TupleOf
from deepatlas.device import make_generator, resolve_device
from deepatlas.errors import InputError, TrainingDiverged
from deepatlas.estimator import Estimator
from deepatlas.models.rbm.rbm import one_thread
from deepatlas.registry import register_model

_MAX_LEVELS = 20
_CHUNK = 256  # users per inference batch


# ---- the bias baseline (also the fallback for unseen users and items) ---------------------------
def fit_biases(users, items, ratings, n_users: int, n_items: int, reg: float = 5.0, sweeps: int = 10):
    """Regularised user and item biases, ``r ~ mu + b_u + b_i``, by alternating ridge updates.

    ``users``/``items`` are indices in ``[0, n_users)`` / ``[0, n_items)``. Returns
    ``(mu, b_user (n_users,), b_item (n_items,))``."""
    r = np.asarray(ratings, np.float64)
    mu = float(r.mean())
    bu, bi = np.zeros(n_users), np.zeros(n_items)
    nu = np.bincount(users, minlength=n_users) + reg
    ni = np.bincount(items, minlength=n_items) + reg
    for _ in range(sweeps):
        bi = np.bincount(items, r - mu - bu[users], minlength=n_items) / ni
        bu = np.bincount(users, r - mu - bi[items], minlength=n_users) / nu
    return mu, bu, bi


# ---- the CD-k step ------------------------------------------------------------------------------
def one_hot(codes: torch.Tensor, K: int) -> torch.Tensor:
    """Level indices (B, M) with -1 for unrated -> one-hot (B, M, K), all-zero rows for unrated."""
    return F.one_hot((codes.long() + 1).clamp_min(0), K + 1)[..., 1:].to(torch.float32)


def hidden_probs(V: torch.Tensor, W: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """p(h = 1 | V): V (B, M, K), W (M, K, F), c (F,) -> (B, F)."""
    B = V.shape[0]
    return torch.sigmoid(torch.addmm(c, V.reshape(B, -1), W.reshape(-1, W.shape[-1])))


def visible_probs(h: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """p(v_i = k | h) for every item: h (B, F) -> (B, M, K)."""
    M, K, Fh = W.shape
    logits = (h @ W.reshape(M * K, Fh).T).reshape(-1, M, K) + b
    return torch.softmax(logits, dim=-1)


def sample_softmax(P: torch.Tensor, mask: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One draw per (user, item) from P (B, M, K), kept only where ``mask`` (B, M) is set."""
    u = torch.rand(P.shape[:-1] + (1,), generator=gen, device=P.device)
    idx = (u > P.cumsum(-1)).sum(-1).clamp_max(P.shape[-1] - 1)  # inverse CDF
    return F.one_hot(idx, P.shape[-1]).to(P.dtype) * mask.unsqueeze(-1)


def cd_gradients(V, mask, W, b, c, k: int, gen: torch.Generator):
    """The CD-k estimates of the log-likelihood gradient for ``W``, ``b``, ``c`` summed over the
    batch: ``<v h>_data - <v h>_k`` with the data term's hidden probabilities, k Gibbs sweeps from
    the data for the model term (sampled hidden states, the last one's probabilities)."""
    B = V.shape[0]
    h_data = hidden_probs(V, W, c)  # (B, F)
    h = h_data
    for _ in range(k):
        hs = (torch.rand(h.shape, generator=gen, device=h.device) < h).to(h.dtype)
        Vn = sample_softmax(visible_probs(hs, W, b), mask, gen)  # (B, M, K), the user's items only
        h = hidden_probs(Vn, W, c)
    dW = (V.reshape(B, -1).T @ h_data - Vn.reshape(B, -1).T @ h).reshape(W.shape)
    return dW, (V - Vn).sum(0), (h_data - h).sum(0)


@dataclass(frozen=True)
class Levels(Constraint):
    """A rating scale: a tuple or list of 2 to 20 distinct finite numbers."""

    description = "a tuple of 2 to 20 distinct numbers"

    def accepts(self, value) -> bool:
        if not isinstance(value, (tuple, list)) or not 2 <= len(value) <= _MAX_LEVELS:
            return False
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value):
            return False
        return len(set(value)) == len(value)


# ---- the estimator ------------------------------------------------------------------------------
@register_model(
    "rbm-cf",
    task="ratings",
    description="RBM for collaborative filtering: softmax units per rated item, shared weights (Salakhutdinov et al. 2007)",
    smoke={"data": "ratings:n_users=60,n_items=40,ratings_per_user=10", "params": {"n_hidden": 8, "epochs": 2}},
)
@dataclass(eq=False, repr=False, kw_only=True)
class RBMCF(Estimator):
    """Restricted Boltzmann machine for collaborative filtering.

    ``fit(X, y)`` takes ``X`` of (user, item) ids, shape (n, 2), and their ratings ``y`` (or
    (user, item, rating) triples as one (n, 3) array); ``predict(X)`` gives the expected rating of
    each (user, item) pair from the user's training ratings; ``predict_ratings(R)`` gives every
    item's expected rating for rating vectors ``R`` (n, n_items) with NaN for unrated items (a new
    user included). Unseen users or items fall back to the user + item bias baseline, with a
    warning.

    >>> from deepatlas.data import load_dataset
    >>> ds = load_dataset("ratings")
    >>> model = RBMCF().fit(ds.X_train, ds.y_train)
    >>> round(model.score(ds.X_test, ds.y_test), 2) > 0   # doctest: +SKIP
    True
    """

    n_hidden: int = 100
    """Binary hidden units shared by every user's RBM (the paper's F = 100)."""
    rating_levels: tuple | None = None
    """The rating scale, e.g. ``(1, 2, 3, 4, 5)``: one softmax level per value, ratings outside it are an
    error; ``None`` takes the distinct ratings of the training data (at most 20)."""
    k_schedule: tuple = (1, 3, 5, 9)
    """Gibbs steps of CD-k, raised over training: the epochs are cut into as many equal stages as there are
    entries, stage s using ``k_schedule[s]`` (the paper's T = 1, 3, 5, 9)."""
    lr: float = 0.05
    """Step size of the CD update (the gradient is averaged over the users of a batch)."""
    momentum: float = 0.9
    """Fraction of the previous update added to the next; 0 turns momentum off."""
    weight_decay: float = 0.001
    """L2 penalty on the weights (biases are not decayed); 0 turns it off."""
    epochs: int = 60
    """Passes over the training users (a fixed budget: no early stopping)."""
    batch_size: int = 50
    """Users per CD update."""
    bias_reg: float = 5.0
    """Ridge penalty of the user + item bias baseline (the fallback for unseen users and items, and the
    ``test_rmse_bias_baseline`` metric), in ratings' worth of shrinkage towards zero."""

    _parameter_constraints: ClassVar[dict] = {
        "n_hidden": Interval(int, 1, None),
        "rating_levels": NoneOr(Levels()),
        "k_schedule": TupleOf(),
        "lr": Interval(float, 0, None, "neither"),
        "momentum": Interval(float, 0, 1, "left"),
        "weight_decay": Interval(float, 0, None),
        "epochs": Interval(int, 1, None),
        "batch_size": Interval(int, 1, None),
        "bias_reg": Interval(float, 0, None),
    }
    _fitted_attr: ClassVar[str] = "W_"

    # ---- input checks -------------------------------------------------------------------------
    def _pairs(self, X, *, what: str = "X") -> np.ndarray:
        """(n, 2) integer ids from ``X``; one-line errors."""
        try:
            arr = np.asarray(X)
        except Exception as exc:
            raise InputError(f"{what} could not be read as an array: {exc}.") from None
        if arr.ndim != 2 or arr.shape[1] != 2:
            raise InputError(
                f"{type(self).__name__} expects {what} of (user, item) pairs, shape (n, 2). Got shape {arr.shape} instead."
            )
        if not np.issubdtype(arr.dtype, np.integer):
            try:
                f = arr.astype(np.float64)
            except (TypeError, ValueError):
                raise InputError(
                    f"{what} must hold integer user and item ids. Got dtype {arr.dtype} instead."
                ) from None
            if not np.all(np.isfinite(f)) or not np.all(f == np.round(f)):
                raise InputError(f"{what} must hold integer user and item ids; it holds non-integer values.")
            arr = f
        return arr.astype(np.int64)

    def _triples(self, X, y):
        if y is None:
            arr = np.asarray(X)
            if arr.ndim != 2 or arr.shape[1] != 3:
                raise InputError(
                    f"{type(self).__name__}.fit takes (user, item) pairs X (n, 2) with ratings y, or (user, item, "
                    f"rating) triples X (n, 3). Got shape {arr.shape} without y."
                )
            X, y = arr[:, :2], arr[:, 2]
        pairs = self._pairs(X)
        try:
            r = np.asarray(y, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise InputError("y must hold numeric ratings.") from None
        if len(r) != len(pairs):
            raise InputError(f"X has {len(pairs)} pairs but y has {len(r)} ratings.")
        if len(r) < 2:
            raise InputError(f"{type(self).__name__} needs at least 2 ratings to fit. Got {len(r)} instead.")
        if not np.all(np.isfinite(r)):
            raise InputError("y contains NaN or infinite ratings.")
        return pairs, r

    def _scale(self, r: np.ndarray) -> np.ndarray:
        if self.rating_levels is None:
            levels = np.unique(r)
            if len(levels) > _MAX_LEVELS:
                raise InputError(
                    f"y holds {len(levels)} distinct ratings, but a rating scale has at most {_MAX_LEVELS} levels; "
                    "round the ratings or declare rating_levels."
                )
            return levels
        levels = np.asarray(self.rating_levels, np.float64)
        bad = ~np.isin(r, levels)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise InputError(
                f"y has {int(bad.sum())} ratings outside the declared scale rating_levels={tuple(self.rating_levels)}, "
                f"e.g. {r[row]:g} in row {row}."
            )
        return np.unique(levels)

    # ---- fitting ------------------------------------------------------------------------------
    def fit(self, X, y=None, validation_data=None):
        """Learn from (user, item) pairs ``X`` and ratings ``y`` (or triples ``X``); returns ``self``.

        ``validation_data=(X_val, y_val)`` adds a per-epoch validation RMSE to ``history_`` (no
        early stopping: the budget is ``epochs``)."""
        self._validate_params()
        pairs, r = self._triples(X, y)
        levels = self._scale(r)
        users, u_idx = np.unique(pairs[:, 0], return_inverse=True)
        items, i_idx = np.unique(pairs[:, 1], return_inverse=True)
        key = u_idx.astype(np.int64) * len(items) + i_idx
        uniq, counts = np.unique(key, return_counts=True)
        if (counts > 1).any():
            rows = np.flatnonzero(key == uniq[counts > 1][0])
            u, i = pairs[rows[0]]
            raise InputError(
                f"X has the (user, item) pair ({u}, {i}) {len(rows)} times (rows {rows[0]} and {rows[1]}); "
                "keep one rating per user and item."
            )
        U, M, K = len(users), len(items), len(levels)
        device = resolve_device(self.device)
        gen = make_generator(self.seed, device)
        codes = np.full((U, M), -1, np.int8)  # level index per (user, item); -1 = unrated
        codes[u_idx, i_idx] = np.searchsorted(levels, r)
        self.levels_ = levels
        self.users_, self.items_ = users, items
        self.global_mean_, self.user_bias_, self.item_bias_ = fit_biases(u_idx, i_idx, r, U, M, self.bias_reg)
        codes_t = torch.as_tensor(codes, device=device)
        # Visible biases: log-frequency of each level among the item's ratings (add-one smoothed).
        freq = np.ones((M, K))
        np.add.at(freq, (i_idx, codes[u_idx, i_idx]), 1.0)
        b = torch.as_tensor(np.log(freq / freq.sum(1, keepdims=True)), dtype=torch.float32, device=device)
        W = 0.01 * torch.randn(M, K, self.n_hidden, generator=gen, device=device)
        c = torch.zeros(self.n_hidden, device=device)
        self.codes_ = codes_t
        self.b_, self.c_ = b, c
        val = None
        if validation_data is not None:
            Xv, yv = validation_data
            val = (self._pairs(Xv, what="validation X"), np.asarray(yv, np.float64))
        self.history_ = []
        start = time.perf_counter()
        stages = list(self.k_schedule)
        with (
            torch.no_grad(),
            one_thread() if device.type == "cpu" and M * K * self.n_hidden < 2**18 else contextlib.nullcontext(),
        ):
            vW, vb, vc = torch.zeros_like(W), torch.zeros_like(b), torch.zeros_like(c)
            B = min(self.batch_size, U)
            for epoch in range(self.epochs):
                k = stages[min(epoch * len(stages) // self.epochs, len(stages) - 1)]
                perm = torch.randperm(U, generator=gen, device=gen.device).to(device)
                for s in range(0, U, B):
                    batch = codes_t[perm[s : s + B]]  # (B, M)
                    V, mask = one_hot(batch, K), (batch >= 0).to(torch.float32)
                    dW, db, dc = cd_gradients(V, mask, W, b, c, k, gen)
                    n = len(batch)
                    vW.mul_(self.momentum).add_(dW / n - self.weight_decay * W, alpha=self.lr)
                    vb.mul_(self.momentum).add_(db / n, alpha=self.lr)
                    vc.mul_(self.momentum).add_(dc / n, alpha=self.lr)
                    W += vW
                    b += vb
                    c += vc
                self.W_ = W
                logs = {"epoch": epoch + 1, "k": k}
                if val is not None:
                    logs["val_rmse"] = float(np.sqrt(np.mean((self._predict_pairs(val[0], warn=False) - val[1]) ** 2)))
                    if not math.isfinite(logs["val_rmse"]):
                        raise TrainingDiverged(
                            f"Training diverged: the validation RMSE became {logs['val_rmse']} at epoch {epoch + 1}. "
                            f"Try a lower learning rate (lr={self.lr:g} now)."
                        )
                self.history_.append(logs)
                if self.verbose:
                    shown = ", ".join(f"{key} {v:.4g}" for key, v in logs.items() if key != "epoch")
                    print(f"[RBMCF] epoch {epoch + 1}/{self.epochs}: {shown}", flush=True)
        if not torch.isfinite(W).all():
            raise TrainingDiverged(
                f"Training diverged: the weights are not finite. Try a lower learning rate (lr={self.lr:g} now)."
            )
        self.W_ = W
        self.n_features_in_ = 2
        self.n_epochs_ = self.epochs
        self.fit_seconds_ = time.perf_counter() - start
        return self

    # ---- inference ----------------------------------------------------------------------------
    @torch.no_grad()
    def _expected(self, codes: torch.Tensor) -> torch.Tensor:
        """Level codes (B, M) -> expected rating of every item (B, M), one mean-field pass."""
        levels = torch.as_tensor(self.levels_, dtype=torch.float32, device=self.W_.device)
        K = len(self.levels_)
        out = []
        for s in range(0, len(codes), _CHUNK):
            h = hidden_probs(one_hot(codes[s : s + _CHUNK], K), self.W_, self.c_)
            out.append(visible_probs(h, self.W_, self.b_) @ levels)
        return torch.cat(out) if out else torch.zeros(0, len(self.items_), device=self.W_.device)

    def _predict_pairs(self, pairs: np.ndarray, *, warn: bool = True) -> np.ndarray:
        u = np.searchsorted(self.users_, pairs[:, 0]).clip(max=len(self.users_) - 1)
        i = np.searchsorted(self.items_, pairs[:, 1]).clip(max=len(self.items_) - 1)
        known_u = self.users_[u] == pairs[:, 0]
        known_i = self.items_[i] == pairs[:, 1]
        both = known_u & known_i
        out = (
            self.global_mean_ + np.where(known_u, self.user_bias_[u], 0.0) + np.where(known_i, self.item_bias_[i], 0.0)
        )
        if both.any():
            rows, inverse = np.unique(u[both], return_inverse=True)
            E = self._expected(self.codes_[torch.as_tensor(rows, device=self.codes_.device)]).cpu().numpy()
            out[both] = E[inverse, i[both]]
        if warn and not both.all():
            warnings.warn(
                f"{int((~both).sum())} of {len(pairs)} (user, item) pairs have a user or item that fit never saw; "
                "they get the user + item bias baseline (the global mean plus the known biases).",
                UserWarning,
                stacklevel=3,
            )
        return out

    def predict(self, X) -> np.ndarray:
        """Expected rating of each (user, item) pair ``X`` (n, 2), from the user's training ratings."""
        self._check_fitted()
        return self._predict_pairs(self._pairs(X))

    def score(self, X, y) -> float:
        """Negative RMSE of ``predict(X)`` against ``y`` (larger is better, as scikit-learn scorers)."""
        pred = self.predict(X)
        return -float(np.sqrt(np.mean((pred - np.asarray(y, np.float64)) ** 2)))

    def rating_vectors(self, users) -> np.ndarray:
        """Training ratings of known ``users`` as rows (n, n_items) over ``items_``, NaN where unrated."""
        self._check_fitted()
        ids = np.asarray(users, np.int64).reshape(-1)
        u = np.searchsorted(self.users_, ids).clip(max=len(self.users_) - 1)
        if not np.all(self.users_[u] == ids):
            missing = ids[self.users_[u] != ids][0]
            raise InputError(f"User {missing} has no training ratings in this {type(self).__name__}.")
        codes = self.codes_[torch.as_tensor(u, device=self.codes_.device)].cpu().numpy()
        return np.where(codes >= 0, self.levels_[np.maximum(codes, 0)], np.nan)

    def predict_ratings(self, R) -> np.ndarray:
        """Expected rating of every item (columns ordered as ``items_``) for rating vectors ``R``
        (n, n_items), NaN where unrated; a value not on the scale counts as unrated. Works for
        users that ``fit`` never saw."""
        self._check_fitted()
        R = np.asarray(R, np.float64)
        if R.ndim != 2 or R.shape[1] != len(self.items_):
            raise InputError(
                f"R must be rating vectors of shape (n, {len(self.items_)}) (one column per item in items_). "
                f"Got shape {R.shape} instead."
            )
        codes = np.full(R.shape, -1, np.int8)
        for k, level in enumerate(self.levels_):
            codes[R == level] = k
        return self._expected(torch.as_tensor(codes, device=self.W_.device)).cpu().numpy().astype(np.float64)

    # ---- run directories: deepatlas train ----------------------------------------------------
    def dataset_metrics(self, ds) -> dict:
        """RMSE and MAE on the held-out ratings of known users, beside the user + item bias baseline and
        the global mean fitted on the same training ratings."""
        pred = self.predict(ds.X_test)
        y = np.asarray(ds.y_test, np.float64)
        base = bias_predict(ds.X_train, ds.y_train, ds.X_test, reg=self.bias_reg)
        mean = float(np.mean(ds.y_train))
        out = {
            "test_rmse": rmse(pred, y),
            "test_mae": float(np.mean(np.abs(pred - y))),
            "test_rmse_bias_baseline": rmse(base, y),
            "test_mae_bias_baseline": float(np.mean(np.abs(base - y))),
            "test_rmse_global_mean": rmse(np.full_like(y, mean), y),
            "test_ratings": len(y),
        }
        if ds.X_val is not None and len(ds.X_val):
            out["val_rmse"] = rmse(self._predict_pairs(self._pairs(ds.X_val), warn=False), ds.y_val)
        return out

    # ---- persistence ----------------------------------------------------------------------
    def _fitted_state(self):
        self._check_fitted()
        cpu = {
            "W_": self.W_,
            "b_": self.b_,
            "c_": self.c_,
            "codes_": self.codes_,
        }
        tensors = {k: v.detach().cpu().contiguous() for k, v in cpu.items()}
        for key in ("levels_", "user_bias_", "item_bias_"):
            tensors[key] = torch.as_tensor(np.asarray(getattr(self, key), np.float64))
        tensors["users_"] = torch.as_tensor(self.users_, dtype=torch.int64)
        tensors["items_"] = torch.as_tensor(self.items_, dtype=torch.int64)
        meta = {"global_mean_": self.global_mean_, "n_epochs_": self.n_epochs_}
        return tensors, meta

    def _restore_state(self, tensors, meta):
        device = resolve_device(self.device)
        for key in ("W_", "b_", "c_", "codes_"):
            setattr(self, key, tensors[key].to(device))
        for key in ("levels_", "user_bias_", "item_bias_", "users_", "items_"):
            setattr(self, key, tensors[key].numpy())
        self.global_mean_ = float(meta["global_mean_"])
        self.n_epochs_ = meta.get("n_epochs_")
        self.n_features_in_ = 2


def rmse(pred, y) -> float:
    return float(np.sqrt(np.mean((np.asarray(pred, np.float64) - np.asarray(y, np.float64)) ** 2)))


def bias_predict(X_train, y_train, X, *, reg: float = 5.0) -> np.ndarray:
    """The user + item bias baseline fitted on ``(X_train, y_train)``, predicted at pairs ``X``
    (unknown users or items contribute no bias)."""
    X_train, X = np.asarray(X_train, np.int64), np.asarray(X, np.int64)
    users, u_idx = np.unique(X_train[:, 0], return_inverse=True)
    items, i_idx = np.unique(X_train[:, 1], return_inverse=True)
    mu, bu, bi = fit_biases(u_idx, i_idx, y_train, len(users), len(items), reg)
    u = np.searchsorted(users, X[:, 0]).clip(max=len(users) - 1)
    i = np.searchsorted(items, X[:, 1]).clip(max=len(items) - 1)
    return mu + np.where(users[u] == X[:, 0], bu[u], 0.0) + np.where(items[i] == X[:, 1], bi[i], 0.0)

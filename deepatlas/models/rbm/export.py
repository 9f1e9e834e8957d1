"""Inference paths of the Boltzmann family: data -> ``hidden`` probabilities (the up pass for a
DBN; reference ``transform``); the DBN classifier is a plain network on standardised inputs
(``logits``, ``probabilities``; reference ``predict_proba``).

Reference: Hinton, Osindero & Teh (2006), "A fast learning algorithm for deep belief nets".
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from deepatlas.export.adapters import (
    input_shape_of,
    preprocessing_of,
    supervised_spec,
    transform_spec,
    unit_interval,
)
from deepatlas.export.protocol import ExportSpec, register_exporter


# ---- RBMs and DBNs: hidden probabilities -------------------------------------------------------
class HiddenProbabilities(nn.Module):
    """Data (B, *S) -> ``sigmoid(x W_1 + c_1)`` ... through each layer: (B, n_hidden_last)."""

    def __init__(self, affines: list[tuple[torch.Tensor, torch.Tensor]]):
        super().__init__()
        self.layers = nn.ModuleList()
        for W, c in affines:  # W (n_in, n_out), c (n_out,)
            linear = nn.Linear(W.shape[0], W.shape[1])
            with torch.no_grad():
                linear.weight.copy_(W.T)
                linear.bias.copy_(c)
            self.layers.append(linear)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1)  # (B, n_visible)
        for layer in self.layers:
            h = torch.sigmoid(layer(h))
        return h


class ConvHiddenProbabilities(nn.Module):
    """Images (B, C, H, W) -> per layer ``max_pool(sigmoid(conv(v, W) + c))`` -> flattened."""

    def __init__(self, layers: list[tuple[torch.Tensor, torch.Tensor]], pools: list[int]):
        super().__init__()
        self.pools = list(pools)
        self.weights = nn.ParameterList(
            [nn.Parameter(W.detach().cpu().clone(), requires_grad=False) for W, _ in layers]
        )
        self.biases = nn.ParameterList([nn.Parameter(c.detach().cpu().clone(), requires_grad=False) for _, c in layers])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for W, c, pool in zip(self.weights, self.biases, self.pools):
            h = torch.sigmoid(F.conv2d(h, W, c))  # (B, K, H', W')
            if pool > 1:
                h = F.max_pool2d(h, pool, ceil_mode=True)
        return h.flatten(1)


def rbm_spec(est, part=None) -> ExportSpec:
    from deepatlas.models.rbm.dbn import hidden_affine  # folds a Gaussian RBM's standardisation in

    est._check_fitted()
    shape = input_shape_of(est)
    meta = {"output": "p(h = 1 | v)"}
    if type(est).__name__ == "GaussianRBM":
        sigma = float(est.sigma)
        mean = np.asarray(est.mean_, np.float32).reshape(shape)
        std = (np.asarray(est.scale_, np.float32) / sigma).reshape(shape)
        meta["preprocessing"] = preprocessing_of(est)

        def random_input(rng, n):
            return (mean + std * rng.standard_normal((n, *shape))).astype(np.float32)

    else:
        random_input = unit_interval(shape)
    return transform_spec(est, HiddenProbabilities([hidden_affine(est)]), random_input, meta)


def dbn_spec(est, part=None) -> ExportSpec:
    from deepatlas.models.rbm.dbn import hidden_affine

    est._check_fitted()
    shape = input_shape_of(est)
    first = est.layers_[0]
    if type(first).__name__ == "GaussianRBM":
        mean = np.asarray(first.mean_, np.float32).reshape(shape)
        std = (np.asarray(first.scale_, np.float32) / float(first.sigma)).reshape(shape)

        def random_input(rng, n):
            return (mean + std * rng.standard_normal((n, *shape))).astype(np.float32)

    else:
        random_input = unit_interval(shape)
    module = HiddenProbabilities([hidden_affine(layer) for layer in est.layers_])
    return transform_spec(est, module, random_input, {"output": "top-layer p(h = 1 | v) after one up pass"})


def conv_rbm_spec(est, part=None) -> ExportSpec:
    est._check_fitted()
    if type(est).__name__ == "ConvRBM":
        layers, pools = [(est.W_, est.c_)], [int(est.pool_size)]
    else:  # ConvDBN: each layer's maps are pooled by the stack's pool_size
        layers = [(layer.W_, layer.c_) for layer in est.layers_]
        pools = [int(est.pool_size)] * len(layers)
    shape = input_shape_of(est)  # (C, H, W)
    module = ConvHiddenProbabilities(layers, pools)
    return transform_spec(est, module, unit_interval(shape), {"output": "pooled hidden probability maps, flattened"})


# ---- RBM for collaborative filtering: a user's rating vector -> expected ratings ------------------
class ExpectedRatings(nn.Module):
    """Rating vectors (B, M), NaN where unrated -> every item's expected rating (B, M): one-hot
    levels (a NaN or off-scale value matches none), ``p(h | V)``, then ``sum_k level_k p(v_i = k | h)``."""

    def __init__(self, W: torch.Tensor, b: torch.Tensor, c: torch.Tensor, levels):
        super().__init__()
        M, K, n_hidden = W.shape
        self.register_buffer("up", W.detach().cpu().reshape(M * K, n_hidden).clone())  # (M*K, F)
        self.register_buffer("b", b.detach().cpu().clone())  # (M, K)
        self.register_buffer("c", c.detach().cpu().clone())  # (F,)
        self.register_buffer("levels", torch.as_tensor(np.asarray(levels, np.float32)))  # (K,)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        M, K = self.b.shape
        V = (r.unsqueeze(-1) == self.levels).to(r.dtype)  # (B, M, K)
        h = torch.sigmoid(V.reshape(-1, M * K) @ self.up + self.c)  # (B, F)
        p = torch.softmax((h @ self.up.T).reshape(-1, M, K) + self.b, dim=-1)
        return p @ self.levels


def rbm_cf_spec(est, part=None) -> ExportSpec:
    est._check_fitted()
    levels = np.asarray(est.levels_, np.float32)
    M = len(est.items_)

    def random_input(rng, n):  # about a fifth of the items rated, on the scale
        r = levels[rng.integers(0, len(levels), (n, M))]
        return np.where(rng.random((n, M)) < 0.2, r, np.nan).astype(np.float32)

    def held_out(X, label):  # the run's test pairs -> their (known) users' training rating vectors
        if X is None:
            return None
        users = np.unique(np.asarray(X, np.int64)[:, 0])
        users = users[np.isin(users, est.users_)]
        return (
            (est.rating_vectors(users).astype(np.float32), f"{label}: its users' training ratings")
            if len(users)
            else None
        )

    return ExportSpec(
        module=ExpectedRatings(est.W_, est.b_, est.c_, levels).eval(),
        example_input=torch.as_tensor(random_input(np.random.default_rng(0), 2)),
        output_names=("ratings",),
        metadata={
            "kind": "regressor",
            "input": "rating vector per user, one column per item (items in run order), NaN where unrated",
            "items": [int(i) for i in est.items_],
            "levels": levels.tolist(),
            "output": "expected rating of every item",
        },
        reference=lambda R: {"ratings": est.predict_ratings(R)},
        random_input=random_input,
        held_out=held_out,
    )


# ---- deep Boltzmann machine: a fixed number of mean-field sweeps ------------------------------
class MeanFieldPosteriors(nn.Module):
    """Data (B, *S) -> a DBM's top-layer mean-field posteriors (B, h_L): the doubled bottom-up
    pass, then ``steps`` sweeps of odd- and even-layer updates (``dbm.mean_field``, unrolled)."""

    def __init__(self, weights: list[torch.Tensor], biases: list[torch.Tensor], steps: int):
        super().__init__()
        self.steps = int(steps)
        self.weights = nn.ParameterList([nn.Parameter(W.detach().cpu().clone(), requires_grad=False) for W in weights])
        self.biases = nn.ParameterList([nn.Parameter(b.detach().cpu().clone(), requires_grad=False) for b in biases])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mean_field(x.flatten(1), list(self.weights), list(self.biases), self.steps)[-1]


def dbm_spec(est, part=None) -> ExportSpec:
    est._check_fitted()
    module = MeanFieldPosteriors(est.weights_, est.biases_, est.mean_field_steps)
    meta = {"output": f"top-layer mean-field posteriors after {est.mean_field_steps} sweeps"}
    return transform_spec(est, module, unit_interval(input_shape_of(est)), meta)


from deepatlas.models.rbm.cf import RBMCF  # noqa: E402
from deepatlas.models.rbm.conv_rbm import ConvRBM  # noqa: E402
from deepatlas.models.rbm.dbm import DBM, mean_field  # noqa: E402
from deepatlas.models.rbm.dbn import DBN, ConvDBN, DBNClassifier  # noqa: E402
from deepatlas.models.rbm.rbm import _RBMBase  # noqa: E402

register_exporter(_RBMBase)(rbm_spec)
register_exporter(DBN)(dbn_spec)
register_exporter(DBM)(dbm_spec)  # mean field with a fixed number of sweeps
register_exporter(ConvRBM)(conv_rbm_spec)
register_exporter(ConvDBN)(conv_rbm_spec)
register_exporter(RBMCF)(rbm_cf_spec)  # predictions from a user's rating vector
register_exporter(DBNClassifier)(supervised_spec)  # a plain Sequential on standardised inputs

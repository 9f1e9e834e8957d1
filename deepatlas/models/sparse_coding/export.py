"""Inference path of LISTA: signal -> sparse ``code`` (reference ``transform``). The iterative
coders stop at a tolerance, so they have no fixed graph and are not exported.

Reference: Gregor & LeCun (2010), "Learning fast approximations of sparse coding".
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from deepatlas.export.adapters import (
    cpu_copy,
    example_batch,
    input_shape_of,
)
from deepatlas.export.protocol import ExportSpec, register_exporter


# ---- LISTA ---------------------------------------------------------------------------------------
class FlatCoder(nn.Module):
    """Signals (B, *S) -> codes (B, K) through the unrolled network."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


def lista_spec(est, part=None) -> ExportSpec:
    est._check_fitted()
    shape = input_shape_of(est)
    D = np.asarray(est.components_, np.float32)  # (K, F) atoms
    K = len(D)

    def random_input(rng, n):  # signals on the data's scale: sparse mixtures of the atoms, plus noise
        codes = rng.standard_normal((n, K)) * (rng.random((n, K)) < max(3 / K, 0.1))
        X = codes @ D + 0.05 * rng.standard_normal((n, D.shape[1]))
        return X.reshape(n, *shape).astype(np.float32)

    return ExportSpec(
        module=FlatCoder(cpu_copy(est.module_)).eval(),
        example_input=example_batch(random_input),
        output_names=("code",),
        metadata={"kind": "transform", "n_atoms": K, "n_layers": int(est.n_layers)},
        reference=lambda X: {"code": est.transform(X)},
        random_input=random_input,
    )


from deepatlas.models.sparse_coding.coders import LISTA  # noqa: E402

register_exporter(LISTA)(lista_spec)

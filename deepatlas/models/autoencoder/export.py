"""Inference paths of the autoencoders and the VAE: ``encoder`` (data -> ``code``; the VAE's
posterior mean; reference ``transform``) and ``decoder`` (code -> ``reconstruction`` in the data's
shape and units; reference ``inverse_transform``).

References: Hinton & Salakhutdinov (2006), "Reducing the dimensionality of data with neural
networks"; Kingma & Welling (2014), "Auto-encoding variational Bayes".
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from deepatlas.export.adapters import (
    cpu_copy,
    example_batch,
    input_shape_of,
    preprocessing_of,
)
from deepatlas.export.protocol import ExportSpec, register_exporter


# ---- autoencoders and the VAE: encoder and decoder ---------------------------------------------
class Encode(nn.Module):
    """Data (B, *S) -> code (B, K): the network's own ``encode`` (standardisation included)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.encode(x)


class Decode(Encode):
    """Code (B, K) -> reconstruction (B, *S) in the data's units: the network's own ``decode``."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net.decode(z)


def _autoencoder_data_sampler(est):
    """Random inputs on the data's scale: the saved standardisation when there is one, [0, 1]
    for a Bernoulli VAE or a sigmoid output, else a standard normal."""
    shape = input_shape_of(est)
    if getattr(est, "standardize", False):
        mean = np.asarray(est.mean_, np.float32).reshape(shape)
        scale = np.asarray(est.scale_, np.float32).reshape(shape)
        return lambda rng, n: (mean + scale * rng.standard_normal((n, *shape))).astype(np.float32)
    if getattr(est, "likelihood", None) == "bernoulli" or getattr(est, "output_activation", None) == "sigmoid":
        return lambda rng, n: rng.random((n, *shape), dtype=np.float32)
    return lambda rng, n: rng.standard_normal((n, *shape)).astype(np.float32)


def autoencoder_spec(est, part: str) -> ExportSpec:
    est._check_fitted()
    net = cpu_copy(est.module_)
    vae = type(est).__name__ == "VAE"
    meta = {"part": part, "code_size": int(est.code_size)}
    if getattr(est, "standardize", False):
        meta["preprocessing"] = preprocessing_of(est)
    if part == "encoder":
        random_input = _autoencoder_data_sampler(est)
        meta.update(kind="encoder", code="posterior mean" if vae else "code")
        return ExportSpec(
            module=Encode(net).eval(),
            example_input=example_batch(random_input),
            output_names=("code",),
            metadata=meta,
            reference=lambda X: {"code": est.transform(X)},
            random_input=random_input,
        )
    K = int(est.code_size)

    def random_codes(rng, n):  # the VAE's prior; a plain autoencoder's codes have no fixed scale
        return rng.standard_normal((n, K)).astype(np.float32)

    def codes_of_data(X, label):
        return None if X is None else (np.asarray(est.transform(X), np.float32), f"{label}, encoded")

    meta.update(kind="decoder", output_shape=list(input_shape_of(est)))
    if vae:
        meta.update(prior="standard normal", generator="sample(n) = decoder(z), z ~ N(0, I)")
    return ExportSpec(
        module=Decode(net).eval(),
        example_input=example_batch(random_codes),
        output_names=("reconstruction",),
        metadata=meta,
        reference=lambda Z: {"reconstruction": est.inverse_transform(Z)},
        random_input=random_codes,
        held_out=codes_of_data,
    )


from deepatlas.models.autoencoder.autoencoder import AutoencoderBase  # noqa: E402

register_exporter(AutoencoderBase, parts=("encoder", "decoder"))(autoencoder_spec)

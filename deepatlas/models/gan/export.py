"""Inference path of the GANs: ``generator`` maps (z [, one-hot label or InfoGAN codes]) to
``samples`` in the data's units; reference ``sample(n, seed=s)`` on the codes it draws.

Reference: Goodfellow et al. (2014), "Generative adversarial nets".
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from deepatlas.export.adapters import (
    HELD_OUT_ROWS,
    as_buffer,
    cpu_copy,
    example_batch,
    input_shape_of,
)
from deepatlas.export.protocol import ExportSpec, register_exporter


# ---- GAN generators ----------------------------------------------------------------------------
class Generate(nn.Module):
    """Generator input (B, latent [+ codes]) -> samples (B, *S) in the data's units."""

    def __init__(self, generator: nn.Module, center, scale, shape):
        super().__init__()
        self.generator = generator
        self.register_buffer("center", as_buffer(center))
        self.register_buffer("scale", as_buffer(scale))
        self.shape = tuple(shape)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self._generate(z)  # (B, F), in the training scaling
        return (out * self.scale + self.center).unflatten(1, self.shape)  # (B, *S)

    def _generate(self, z: torch.Tensor) -> torch.Tensor:
        # The generators' own forward reshapes with len(z), which the TorchScript exporter would
        # freeze to the example's batch size; the same layers, reshaped by axis 1 only:
        G = self.generator
        if hasattr(G, "project") and hasattr(G, "up"):  # DCGAN: (B, latent) -> (B, C, H, W)
            return G.up(G.project(z).unflatten(1, G.start)).flatten(1)
        if hasattr(G, "net") and hasattr(G, "bounded"):  # MLP generator: (B, latent) -> (B, F)
            out = G.net(z)
            return torch.tanh(out) if G.bounded else out
        return G(z).flatten(1)


def _gan_layout(est) -> list[dict]:
    """What each column block of the generator's input means."""
    layout = [{"name": "z", "size": int(est.latent_dim), "distribution": "standard normal"}]
    name = type(est).__name__
    if name == "CGAN":
        classes = est.classes_.tolist()
        layout.append({"name": "label_onehot", "size": len(classes), "classes": classes})
    elif name == "InfoGAN":
        layout.append({"name": "category_onehot", "size": int(est.n_categories)})
        if est.n_continuous:
            layout.append({"name": "continuous", "size": int(est.n_continuous), "distribution": "uniform(-1, 1)"})
    return layout


def gan_spec(est, part=None) -> ExportSpec:
    from deepatlas.device import make_generator

    est._check_fitted()
    shape = input_shape_of(est)
    module = Generate(cpu_copy(est.module_.generator), est.center_, est.scale_, shape).eval()
    layout = _gan_layout(est)

    def random_codes(rng, n):
        blocks = [rng.standard_normal((n, layout[0]["size"]))]
        for block in layout[1:]:
            if block["name"].endswith("onehot"):
                blocks.append(np.eye(block["size"])[rng.integers(0, block["size"], n)])
            else:
                blocks.append(rng.uniform(-1, 1, (n, block["size"])))
        return np.concatenate(blocks, axis=1).astype(np.float32)

    # The held-out check uses the very codes ``sample(n, seed=s)`` draws, so the reference is the
    # public ``sample`` itself; on other inputs it is the estimator's generator called directly.
    seed = int(est.seed or 0)
    device = next(est.module_.parameters()).device
    with torch.no_grad():
        drawn = est._sample_codes(HELD_OUT_ROWS, None, make_generator(seed, device))["z"]
    drawn = np.ascontiguousarray(drawn.float().cpu().numpy())

    def reference(Z):
        if Z.shape == drawn.shape and np.array_equal(Z, drawn):
            return {"samples": est.sample(len(Z), seed=seed)}
        G = est.module_.generator.eval()
        with torch.no_grad():
            out = G(torch.as_tensor(Z, device=device)).float().cpu().numpy()
        return {"samples": est._unscale(out)}

    return ExportSpec(
        module=module,
        example_input=example_batch(random_codes),
        input_name="z",
        output_names=("samples",),
        metadata={"kind": "generator", "input_layout": layout, "output_shape": list(shape)},
        reference=reference,
        random_input=random_codes,
        held_out=lambda X, label: (drawn, f"the codes sample({HELD_OUT_ROWS}, seed={seed}) draws"),
    )


from deepatlas.models.gan.gan import GANBase  # noqa: E402

register_exporter(GANBase)(gan_spec)

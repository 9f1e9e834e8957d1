"""Network pieces the agents share: the hidden-layer activations, an MLP builder and Adam."""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


def mlp(n_in: int, hidden_sizes, n_out: int, activation: str = "relu") -> nn.Sequential:
    """``[Linear -> act] * len(hidden_sizes) -> Linear``; (B, n_in) -> (B, n_out)."""
    layers: list[nn.Module] = []
    width = n_in
    for h in hidden_sizes:
        layers += [nn.Linear(width, h), ACTIVATIONS[activation]()]
        width = h
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


def adam(params, device: torch.device, **kwargs) -> torch.optim.Adam:
    """Adam, with the fused kernel where the device has one (CPU and CUDA)."""
    fused = {"fused": True} if device.type in ("cpu", "cuda") else {}
    return torch.optim.Adam(params, **kwargs, **fused)

"""Network pieces the agents share: the hidden-layer activations, an MLP builder and Adam."""

from __future__ import annotations

import torch
from torch import nn

from deepatlas.models.layers import ACTIVATIONS as LAYER_ACTIVATIONS
from deepatlas.models.layers import mlp_stack
from deepatlas.training import optim

# The agents' hidden layers take the shared table's two classic choices.
ACTIVATIONS = {name: LAYER_ACTIVATIONS[name] for name in ("relu", "tanh")}


def mlp(n_in: int, hidden_sizes, n_out: int, activation: str = "relu") -> nn.Sequential:
    """``[Linear -> act] * len(hidden_sizes) -> Linear``; (B, n_in) -> (B, n_out)."""
    return mlp_stack(n_in, hidden_sizes, n_out, activation, flatten=False)


def adam(params, device: torch.device, **kwargs) -> torch.optim.Adam:
    """Adam, with the fused kernel where the device has one (CPU and CUDA)."""
    fused = {"fused": True} if device.type in ("cpu", "cuda") else {}
    return optim.Adam(params, **kwargs, **fused)

"""Network pieces every family builds from: the activation table and the dense stack.

One table and one builder, shared by the MLP, the autoencoders, the VAE, the GAN players and the
RL agents' networks, so that an activation name means the same module everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),  # the slope of DCGAN's critics (Radford et al., 2016)
}


def mlp_stack(
    n_in: int,
    hidden_sizes: Sequence[int],
    n_out: int,
    activation: str = "relu",
    dropout: float = 0.0,
    *,
    flatten: bool = True,
) -> nn.Sequential:
    """``[Flatten ->] [Linear -> act [-> Dropout]] * len(hidden_sizes) -> Linear``: (B, *) -> (B, n_out).

    ``flatten=False`` leaves out the leading ``Flatten`` for inputs that are already (B, n_in)
    (the layer indices, and so the saved weights' names, start at 0 then)."""
    layers: list[nn.Module] = [nn.Flatten()] if flatten else []
    width = n_in
    for h in hidden_sizes:
        layers += [nn.Linear(width, h), ACTIVATIONS[activation]()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = h
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)

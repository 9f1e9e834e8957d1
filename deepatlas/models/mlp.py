"""Multilayer perceptron: stacked affine layers with a non-linearity between them.

References: Rumelhart, Hinton & Williams (1986), "Learning representations by back-propagating
errors"; Glorot & Bengio (2010) and He et al. (2015) for the initialisations torch uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from deepatlas._params import SPACE_BATCH, SPACE_DROPOUT
from deepatlas._validation import Boolean, Interval, Options, TupleOf
from deepatlas.models.base import SupervisedClassifier, SupervisedRegressor
from deepatlas.models.layers import ACTIVATIONS, mlp_stack  # noqa: F401  (mlp_stack: re-exported)
from deepatlas.registry import register_model

# The default search space of `deepatlas tune mlp` (``width`` and ``depth`` build ``hidden_sizes``).
# On MNIST-1D (20-epoch cap) the best networks of the former space (width 32..512, depth 1..3, lr up
# to 3e-2, weight decay) sat at its widest and deepest corner, and no good one used a learning rate
# above 1e-2 or weight decay; the space now holds the optimum inside it, with one dimension fewer
# (docs/results-tuning-transfer.md).
TUNING_SPACE = {
    "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
    "batch_size": SPACE_BATCH,
    "width": {"type": "int", "low": 64, "high": 1024, "log": True},
    "depth": {"type": "int", "low": 1, "high": 4},
    "dropout": SPACE_DROPOUT,
}


class _MLPMixin:
    _parameter_constraints: ClassVar[dict] = {
        "hidden_sizes": TupleOf(),
        "activation": Options(tuple(ACTIVATIONS)),
        "dropout": Interval(float, 0, 1, "left"),
    }

    def _build_module(self, sample_shape, n_outputs):
        n_in = 1
        for s in sample_shape:
            n_in *= s
        hidden = (self.hidden_sizes,) if isinstance(self.hidden_sizes, int) else tuple(self.hidden_sizes)
        return mlp_stack(n_in, hidden, n_outputs, self.activation, self.dropout)


def _use_fast_step(est, module) -> bool:
    from deepatlas.training import distributed
    from deepatlas.training.fast_mlp import plain_mlp_layers

    return (
        est.fast_step
        and est.precision == "fp32"
        and distributed.world_size() == 1
        and plain_mlp_layers(module) is not None
    )


@register_model(
    "mlp",
    task="classification",
    description="multilayer perceptron (dense layers, softmax output)",
    smoke={"data": "digits", "params": {"hidden_sizes": (8,), "epochs": 2}},
    tuning_space=TUNING_SPACE,
)
@dataclass(eq=False, repr=False, kw_only=True)
class MLPClassifier(_MLPMixin, SupervisedClassifier):
    """Multilayer perceptron classifier.

    Any input shape is flattened, so images work as they are.

    >>> from deepatlas.data import load_dataset
    >>> ds = load_dataset("digits")
    >>> MLPClassifier(hidden_sizes=(100,)).fit(ds.X_train, ds.y_train).score(ds.X_test, ds.y_test) > 0.9
    True
    """

    hidden_sizes: tuple = (256, 256)
    """Units of each hidden layer, input side first; ``(256, 256)`` is two hidden layers of 256."""
    activation: str = "relu"
    """Non-linearity after every hidden layer."""
    dropout: float = 0.3
    """Probability of zeroing each hidden unit during training (0 turns dropout off)."""
    epochs: int = 200
    batch_size: int = 64
    patience: int = 20
    fast_step: bool = True
    """Train with the autograd-free step of ``training/fast_mlp.py`` when the network allows it (any
    activation of the table, with or without dropout; fp32; one process): the same update, several times
    faster on a CPU. Otherwise, or when False, the ordinary autograd step."""

    _parameter_constraints: ClassVar[dict] = {"fast_step": Boolean()}

    def _loop_class_for(self, module):
        if not _use_fast_step(self, module):
            return super()._loop_class_for(module)
        from deepatlas.training.fast_mlp import FastMLPLoop

        return FastMLPLoop


@register_model(
    "mlp",
    task="regression",
    smoke={"data": "adding:T=5,n=60", "params": {"hidden_sizes": (8,), "epochs": 2}},
    tuning_space=TUNING_SPACE,
)
@dataclass(eq=False, repr=False, kw_only=True)
class MLPRegressor(_MLPMixin, SupervisedRegressor):
    """Multilayer perceptron regressor (mean squared error on standardised targets)."""

    hidden_sizes: tuple = (256, 256)
    """Units of each hidden layer, input side first; ``(256, 256)`` is two hidden layers of 256."""
    activation: str = "relu"
    """Non-linearity after every hidden layer."""
    dropout: float = 0.3
    """Probability of zeroing each hidden unit during training (0 turns dropout off)."""
    epochs: int = 200
    batch_size: int = 64
    patience: int = 20

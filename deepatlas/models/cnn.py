"""Convolutional networks for 1-D signals and 2-D images, with global pooling at the end.

Blocks of ``Conv -> BatchNorm -> ReLU -> MaxPool(2)`` learn local filters shared across
positions (LeCun et al., 1998); a global average pool makes the head independent of the input
size, so one trained network takes signals or images of any length or size (Lin et al., 2014,
"Network in Network"). Batch norm: Ioffe & Szegedy (2015).

Input shapes: ``(n, L)`` is read as one-channel signals, ``(n, C, L)`` as C-channel signals,
``(n, C, H, W)`` as images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from deepatlas._params import SPACE_BATCH, SPACE_DROPOUT, SPACE_LR
from deepatlas._validation import Boolean, Interval, NoneOr, TupleOf
from deepatlas.errors import InputError
from deepatlas.models.base import (
    SupervisedClassifier,
    SupervisedRegressor,
    check_features,
    column_statistics,
    is_torch_data,
)
from deepatlas.registry import register_model
from deepatlas.training import distributed


def conv_stack(
    sample_shape, channels, kernel_size: int, n_out: int, dropout: float, pool: bool = True
) -> nn.Sequential:
    """(B, C, *spatial) -> (B, n_out). A 1-D sample shape ``(L,)`` gets a channel axis first."""
    spatial = len(sample_shape) - 1 if len(sample_shape) > 1 else 1
    conv, norm, pool_layer, gpool = (
        (nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d, nn.AdaptiveAvgPool1d)
        if spatial == 1
        else (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d)
    )
    layers: list[nn.Module] = []
    if len(sample_shape) == 1:
        layers.append(nn.Unflatten(1, (1, sample_shape[0])))  # (B, L) -> (B, 1, L)
    c_in = 1 if len(sample_shape) == 1 else sample_shape[0]
    for c in channels:
        layers += [conv(c_in, c, kernel_size, padding=kernel_size // 2), norm(c), nn.ReLU()]
        if pool:
            layers.append(pool_layer(2, ceil_mode=True))
        c_in = c
    layers += [gpool(1), nn.Flatten()]  # (B, C, *) -> (B, C): any input size works
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(c_in, n_out))
    return nn.Sequential(*layers)


class _CNNMixin:
    _parameter_constraints: ClassVar[dict] = {
        "channels": TupleOf(),
        "kernel_size": Interval(int, 1, None),
        "dropout": Interval(float, 0, 1, "left"),
        "pool": Boolean(),
    }

    def _build_module(self, sample_shape, n_outputs):
        if len(sample_shape) > 3:
            raise InputError(
                f"{type(self).__name__} takes (n, L), (n, C, L) or (n, C, H, W) inputs. Got sample shape {sample_shape} instead."
            )
        channels = (self.channels,) if isinstance(self.channels, int) else tuple(self.channels)
        module = conv_stack(sample_shape, channels, self.kernel_size, n_outputs, self.dropout, self.pool)
        if len(sample_shape) == 3:
            # Image weights in channels-last (NHWC) order: oneDNN's CPU convolutions then run in
            # that layout (1.5-1.7x fewer CPU seconds per Fashion-MNIST step, measured), and so do
            # cuDNN's under mixed precision. Same network, same state dict (saved contiguous).
            module = module.to(memory_format=torch.channels_last)
        return module

    def _check_input(self, X):
        """2-D tables must match the training width; signals and images may be any size, since
        global pooling makes the network size-independent (only channels must match)."""
        self._check_fitted()
        arr = check_features(X, type(self).__name__)
        if arr.ndim == len(self.input_shape_) + 1 and arr.ndim >= 3:
            if arr.shape[1] != self.input_shape_[0]:
                raise InputError(
                    f"X has {arr.shape[1]} channels, but {type(self).__name__} was trained on {self.input_shape_[0]}."
                )
            return arr
        return super()._check_input(arr)

    def _input_statistics(self, X):
        """Mean and scale per channel, over samples and positions, repeated for every position.

        Per-position statistics (what an MLP uses) are estimated from few samples each; with 31
        training images of digits they put rarely inked pixels at tens of standard deviations and
        cost a CNN trained from scratch 5 points (0.853 -> 0.903 without standardisation,
        docs/results-tuning-transfer.md). Per-channel statistics are the convention for images
        and keep the network's translation equivariance; they also apply at any input size."""
        c = self._n_channels(X.shape[1:])
        per_channel = X.reshape(len(X), c, -1)  # (n, C, positions)
        mean, scale = column_statistics(per_channel.transpose(0, 2, 1).reshape(-1, c))
        positions = per_channel.shape[2]
        return np.repeat(mean, positions), np.repeat(scale, positions)

    @staticmethod
    def _n_channels(sample_shape) -> int:
        return 1 if len(sample_shape) == 1 else int(sample_shape[0])

    def _standardized(self, X):
        if tuple(X.shape[1:]) == tuple(self.input_shape_):
            return super()._standardized(X)
        # Another size: the statistics per channel apply at every position (runs saved before they
        # were per channel held per-position values; their channel averages stand in).
        c = self._n_channels(self.input_shape_)
        mean = self.mean_.reshape(c, -1).mean(axis=1)
        scale = self.scale_.reshape(c, -1).mean(axis=1)
        shape = (1, c) + (1,) * (X.ndim - 2)  # (n, L) inputs have c = 1
        return ((X - mean.reshape(shape)) / scale.reshape(shape)).astype(np.float32)


# The default search space of `deepatlas tune cnn` (``base_channels`` and ``depth`` build ``channels``).
TUNING_SPACE = {
    "lr": SPACE_LR,
    "batch_size": SPACE_BATCH,
    "base_channels": {"type": "int", "low": 8, "high": 64, "log": True},
    "depth": {"type": "int", "low": 1, "high": 3},
    "kernel_size": {"type": "categorical", "choices": [3, 5, 7]},
    "dropout": SPACE_DROPOUT,
}


# The classifier's schedule when ``epochs`` and ``batch_size`` are left to the defaults (None).
DEFAULT_EPOCHS, DEFAULT_BATCH_SIZE = 8, 64
MIN_STEPS, MIN_BATCH_SIZE = 300, 8


def small_data_schedule(
    n_train: int, epochs: int = DEFAULT_EPOCHS, batch_size: int = DEFAULT_BATCH_SIZE
) -> tuple[int, int]:
    """``(epochs, batch_size)`` that give at least :data:`MIN_STEPS` optimiser steps on ``n_train`` samples.

    The batch is halved (64, 32, 16, 8) until ``epochs`` passes make :data:`MIN_STEPS` steps; this costs no
    more computation, only more, smaller steps. Where batches of 8 still fall short, the epochs grow until
    they do (the total is then about ``MIN_STEPS`` steps of 8 samples, whatever the size). Data large enough
    for the defaults keeps them: 4,000 samples or more (63 batches of 64 a pass) reach 300 steps in 8 passes.
    """
    n_batches = lambda b: -(-max(n_train, 1) // b)  # noqa: E731
    while batch_size > MIN_BATCH_SIZE and epochs * n_batches(batch_size) < MIN_STEPS:
        batch_size = max(batch_size // 2, MIN_BATCH_SIZE)
    if epochs * n_batches(batch_size) < MIN_STEPS:
        epochs = -(-MIN_STEPS // n_batches(batch_size))
    return epochs, batch_size


@register_model(
    "cnn",
    task="classification",
    description="convolutional network (1-D or 2-D, global pooling)",
    smoke={"data": "digits", "params": {"channels": (4,), "epochs": 2}},
    tuning_space=TUNING_SPACE,
)
@dataclass(eq=False, repr=False, kw_only=True)
class CNNClassifier(_CNNMixin, SupervisedClassifier):
    """Convolutional classifier for signals ``(n, L)``/``(n, C, L)`` and images ``(n, C, H, W)``."""

    channels: tuple = (32, 64, 128)
    """Output channels of each ``Conv -> BatchNorm -> ReLU -> MaxPool`` block, input side first; one block per
    entry."""
    kernel_size: int = 3
    """Length (and height, for images) of every convolution kernel; the padding keeps the size."""
    dropout: float = 0.0
    """Dropout rate on the pooled features before the output layer (0 turns it off)."""
    pool: bool = True
    """Halve the length (or height and width) after each block with a max pool of 2; False keeps the full
    resolution until the global average pool."""
    epochs: int | None = None
    """Passes over the training data. With the one-cycle schedule the rate anneals to zero at the last epoch,
    so this sets the whole schedule. None: 8, with batches of 64 (Fashion-MNIST 0.926 test accuracy in 321 CPU
    s, docs/results-vision.md, target 0.92 within 10 minutes on 2 cores; MNIST-1D 0.977 in 3.6 CPU s, seed 0,
    against 0.974 in 14.4 CPU s with the earlier default, 60 epochs at a fixed rate), except on small data:
    when both ``epochs`` and ``batch_size`` are None and 8 passes would make fewer than 300 optimiser steps,
    the batch is halved down to 8 and then the epochs grow until they make 300
    (:func:`small_data_schedule`; digits' 1,293 training images: batches of 32, 0.992 test accuracy as with
    64, in 1.6 CPU s against 1.1; ``lfw-faces``' 115 per fold: 20 epochs of batches of 8, 0.994 against
    HOG + SVM's 0.950, where 8 epochs of 64 (16 steps) left the CNN at 0.606: docs/results-recognition.md).
    The values used are ``epochs_`` and
    ``batch_size_`` after ``fit`` (saved with the run); setting either parameter turns the rule off."""
    batch_size: int | None = None
    """Samples per gradient step. None: 64, or less on small data (see ``epochs``)."""
    scheduler: str | None = "onecycle"
    """The classifier's default is the one-cycle schedule (Smith & Topin, 2019: warm-up to 10x ``lr``, then
    annealing, stepped per batch); None keeps ``lr`` fixed, as the other families do by default."""

    _parameter_constraints: ClassVar[dict] = {
        "epochs": NoneOr(Interval(int, 1, None)),
        "batch_size": NoneOr(Interval(int, 1, None)),
    }

    def resolved_schedule(self, n_train: int | None) -> tuple[int, int]:
        """``(epochs, batch_size)`` a fit on ``n_train`` training samples (after the validation hold-out)
        runs: the parameters where set, else :func:`small_data_schedule` (the defaults when ``n_train`` is
        None, unknown)."""
        if self.epochs is not None or self.batch_size is not None or n_train is None:
            return (
                DEFAULT_EPOCHS if self.epochs is None else self.epochs,
                DEFAULT_BATCH_SIZE if self.batch_size is None else self.batch_size,
            )
        return small_data_schedule(n_train // max(distributed.world_size(), 1))

    def _n_train(self, X, validation_data) -> int | None:
        """Training samples the fit will step through: ``X``'s rows less the hold-out the shared fit takes
        (``validation_fraction``, rounded up, as scikit-learn's split does) without ``validation_data``."""
        if isinstance(X, torch.utils.data.DataLoader):
            return None  # its own batches: the defaults
        try:
            n = len(X)
        except TypeError:
            return None  # not sized: the shared fit reports what is wrong with X
        if validation_data is None and self.early_stopping and not is_torch_data(X) and n >= 20:
            n -= int(np.ceil(self.validation_fraction * n))
        return n

    def fit(
        self,
        X,
        y=None,
        sample_weight=None,
        *,
        validation_data=None,
        callbacks=(),
        checkpoint_dir=None,
        resume: bool = False,
    ):
        """The shared :meth:`~deepatlas.models.base.TorchEstimator.fit` with ``epochs`` and ``batch_size``
        resolved first (:meth:`resolved_schedule`); they are back to what the caller set afterwards."""
        self._validate_params()
        given = self.epochs, self.batch_size
        self.epochs_, self.batch_size_ = self.resolved_schedule(self._n_train(X, validation_data))
        self.epochs, self.batch_size = self.epochs_, self.batch_size_
        try:
            super().fit(
                X,
                y,
                sample_weight,
                validation_data=validation_data,
                callbacks=callbacks,
                checkpoint_dir=checkpoint_dir,
                resume=resume,
            )
        finally:
            self.epochs, self.batch_size = given
        return self

    def _fitted_state(self):
        tensors, meta = super()._fitted_state()
        meta["epochs_"], meta["batch_size_"] = self.epochs_, self.batch_size_
        return tensors, meta

    def _restore_state(self, tensors, meta):
        super()._restore_state(tensors, meta)
        # Runs saved before the small-data rule ran the parameters as set (8 and 64 by default).
        self.epochs_ = meta.get("epochs_", DEFAULT_EPOCHS if self.epochs is None else self.epochs)
        self.batch_size_ = meta.get("batch_size_", DEFAULT_BATCH_SIZE if self.batch_size is None else self.batch_size)


@register_model(
    "cnn",
    task="regression",
    smoke={"data": "adding:T=5,n=60", "params": {"channels": (4,), "epochs": 2}},
    tuning_space=TUNING_SPACE,
)
@dataclass(eq=False, repr=False, kw_only=True)
class CNNRegressor(_CNNMixin, SupervisedRegressor):
    """Convolutional regressor (same network, mean squared error)."""

    channels: tuple = (32, 64, 128)
    """Output channels of each ``Conv -> BatchNorm -> ReLU -> MaxPool`` block, input side first; one block per
    entry."""
    kernel_size: int = 3
    """Length (and height, for images) of every convolution kernel; the padding keeps the size."""
    dropout: float = 0.0
    """Dropout rate on the pooled features before the output layer (0 turns it off)."""
    pool: bool = True
    """Halve the length (or height and width) after each block with a max pool of 2; False keeps the full
    resolution until the global average pool."""
    epochs: int = 60
    batch_size: int = 64

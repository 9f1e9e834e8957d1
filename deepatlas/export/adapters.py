"""Building blocks of the export adapters that each family registers for its classes (in
``deepatlas/models/<family>/export.py``): standardisation inside the graph, classifier and
regressor heads, example inputs on the data's scale, and the supervised spec most networks share.

Each module takes raw inputs ``(B, *input_shape_)``, applies the saved standardisation
``(x - mean_) / scale_`` inside the graph and returns what the estimator's public methods return:
classifiers give ``logits`` and ``probabilities`` (softmax, as ``predict_proba``), regressors give
``prediction`` in the original target units (as ``predict``), the perceptron gives ``scores``
(as ``decision_function``).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from deepatlas.export.protocol import ExportSpec

EXAMPLE_STEPS = 8  # time steps of a sequence model's example input (the time axis is dynamic)


class Standardize(nn.Module):
    """``(x - mean) / scale`` per flattened feature; (B, *S) -> (B, *S)."""

    def __init__(self, mean, scale):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(np.asarray(mean, np.float32)))
        self.register_buffer("scale", torch.as_tensor(np.asarray(scale, np.float32)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x.flatten(1) - self.mean) / self.scale).view_as(x)


class ChannelStandardize(nn.Module):
    """``(x - mean[c]) / scale[c]`` per channel, at any size; (B, C, *spatial) -> same.

    ``spatial`` is the number of axes after the channel axis (1 for signals, 2 for images)."""

    def __init__(self, mean, scale, spatial: int):
        super().__init__()
        shape = (1, -1) + (1,) * spatial
        self.register_buffer("mean", torch.as_tensor(np.asarray(mean, np.float32)).view(shape))
        self.register_buffer("scale", torch.as_tensor(np.asarray(scale, np.float32)).view(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.scale


class GlobalMean(nn.Module):
    """(B, C, *spatial) -> (B, C): the mean over every position.

    The same numbers as ``AdaptiveAvgPool{1,2}d(1)`` followed by ``Flatten``, which ATen computes as
    this mean, but traced as one ``ReduceMean``: the pool and flatten of a channels-last tensor
    reach the dynamo ONNX graph as ~10 shape ops (Reshape, Range, Gather...)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=tuple(range(2, x.ndim)))


class MaxPool1dAs2d(nn.Module):
    """``MaxPool1d`` computed as a 2-D max pool over a height of 1: the same maxima, but the dynamo
    exporter keeps the length dynamic (torch 2.13 specialises ``max_pool1d`` to the example's length)."""

    def __init__(self, pool: nn.MaxPool1d):
        super().__init__()
        one = lambda v: v if isinstance(v, int) else v[0]  # noqa: E731
        self.kernel = (1, one(pool.kernel_size))
        self.stride = (1, one(pool.stride if pool.stride is not None else pool.kernel_size))
        self.padding, self.dilation = (0, one(pool.padding)), (1, one(pool.dilation))
        self.ceil_mode = pool.ceil_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = nn.functional.max_pool2d(
            x.unsqueeze(2), self.kernel, self.stride, self.padding, self.dilation, self.ceil_mode
        )
        return y.squeeze(2)


def traceable(net: nn.Module) -> nn.Module:
    """``net`` with the layers that trace badly swapped for equal ones, in place, at the same indices
    (so the same state dict; none of them holds weights): each ``AdaptiveAvgPool{1,2}d(1), Flatten()``
    pair of a ``Sequential`` becomes :class:`GlobalMean`, ``Identity``, and each ``MaxPool1d`` (without
    indices) :class:`MaxPool1dAs2d`."""
    if not isinstance(net, nn.Sequential):
        return net
    for i, layer in enumerate(net):
        if isinstance(layer, nn.MaxPool1d) and not layer.return_indices:
            net[i] = MaxPool1dAs2d(layer)
    pools = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)
    for i in range(len(net) - 1):
        pool, flat = net[i], net[i + 1]
        size = getattr(pool, "output_size", None)
        if (
            isinstance(pool, pools)
            and size in (1, (1,), (1, 1))
            and isinstance(flat, nn.Flatten)
            and (flat.start_dim, flat.end_dim) == (1, -1)
        ):
            net[i], net[i + 1] = GlobalMean(), nn.Identity()
    return net


class FeatureStandardize(Standardize):
    """``(x - mean) / scale`` over the last axis (per feature of every time step); (B, T, F) -> same."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.scale


class ClassifierModule(nn.Module):
    """Raw input -> (logits (B, K), probabilities (B, K))."""

    def __init__(self, net: nn.Module, mean, scale, standardize: nn.Module | None = None):
        super().__init__()
        self.standardize = standardize if standardize is not None else Standardize(mean, scale)
        self.net = net

    def forward(self, x: torch.Tensor):
        logits = self.net(self.standardize(x))  # (B, K)
        return logits, torch.softmax(logits, dim=1)


class RegressorModule(nn.Module):
    """Raw input -> prediction in target units, (B,) for a 1-D target else (B, n_outputs)."""

    def __init__(self, net: nn.Module, mean, scale, y_mean, y_scale, squeeze: bool, standardize=None):
        super().__init__()
        self.standardize = standardize if standardize is not None else Standardize(mean, scale)
        self.net = net
        self.register_buffer("y_mean", torch.as_tensor(np.asarray(y_mean, np.float32)))
        self.register_buffer("y_scale", torch.as_tensor(np.asarray(y_scale, np.float32)))
        self.squeeze = squeeze

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net(self.standardize(x)) * self.y_scale + self.y_mean  # (B, n_outputs)
        return y.flatten() if self.squeeze else y


class PerceptronModule(nn.Module):
    """Raw input -> scores: (B,) for two classes (positive means ``classes[1]``), else (B, K)."""

    def __init__(self, W: np.ndarray, mean, scale, fit_intercept: bool):
        super().__init__()
        self.standardize = Standardize(mean, scale)
        W = np.asarray(W, np.float32)
        self.linear = nn.Linear(W.shape[1] - int(fit_intercept), W.shape[0], bias=fit_intercept)
        with torch.no_grad():
            self.linear.weight.copy_(torch.from_numpy(W[:, :-1] if fit_intercept else W))
            if fit_intercept:
                self.linear.bias.copy_(torch.from_numpy(W[:, -1]))
        self.binary = W.shape[0] == 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = self.linear(self.standardize(x))  # (B, rows)
        return scores.flatten() if self.binary else scores


def preprocessing_of(est) -> dict:
    return {
        "in_graph": True,
        "standardize": bool(getattr(est, "standardize", True)),
        "mean": np.asarray(est.mean_, np.float64).ravel().tolist(),
        "scale": np.asarray(est.scale_, np.float64).ravel().tolist(),
    }


def example_and_random(est, shape, per_feature: bool = False):
    """A fixed example batch and a sampler of raw inputs on the training data's scale."""
    stat_shape = shape[-1:] if per_feature else shape
    mean = np.asarray(est.mean_, np.float32).reshape(stat_shape)
    scale = np.asarray(est.scale_, np.float32).reshape(stat_shape)

    def random_input(rng: np.random.Generator, n: int, grow: int = 0) -> np.ndarray:
        full = (shape[0] + grow, *shape[1:]) if per_feature else shape
        return (mean + scale * rng.standard_normal((n, *full))).astype(np.float32)

    return torch.from_numpy(random_input(np.random.default_rng(0), 4)), random_input


def require_fitted(est) -> None:
    if not hasattr(est, "mean_"):
        from sklearn.exceptions import NotFittedError

        raise NotFittedError(f"This {type(est).__name__} instance is not fitted yet; fit it before exporting.")


SPATIAL_AXES = {1: {2: "length"}, 2: {2: "height", 3: "width"}}  # a signal's or an image's axes after the channel


def channel_sampler(mean, scale, shape):
    """A fixed example batch and a sampler of raw ``(n, C, *spatial)`` inputs from per-channel
    statistics; ``grow`` lengthens every spatial axis (the check at another input size)."""
    stat_shape = (1, -1) + (1,) * (len(shape) - 1)
    mean = np.asarray(mean, np.float32).reshape(stat_shape)
    scale = np.asarray(scale, np.float32).reshape(stat_shape)

    def random_input(rng: np.random.Generator, n: int, grow: int = 0) -> np.ndarray:
        size = (shape[0], *(s + grow for s in shape[1:]))
        return (mean + scale * rng.standard_normal((n, *size))).astype(np.float32)

    return torch.from_numpy(random_input(np.random.default_rng(0), 4)), random_input


def supervised_spec(est, part=None, *, sequence: bool = False, channels=None) -> ExportSpec:
    """Any :class:`~deepatlas.models.base.SupervisedClassifier`/``Regressor`` whose network takes
    the standardised input as it is (the MLP, and the CNN at the training input size).

    ``channels``: ``(mean, scale)`` per channel for ``(n, C, L)`` signals and ``(n, C, H, W)`` images
    (a CNN whose statistics are per channel): the standardisation broadcasts them over the
    positions and the spatial axes are dynamic (``length``, or ``height`` and ``width``), the
    training size kept as the example's shape and recorded as ``metadata.training_shape``."""
    est._check_fitted()
    net = traceable(copy.deepcopy(est.module_).cpu().eval())
    meta = {"preprocessing": preprocessing_of(est)}
    standardize = None
    axes = {0: "batch"}
    if sequence:
        shape = (EXAMPLE_STEPS, int(est.n_features_in_))
        standardize = FeatureStandardize(est.mean_, est.scale_)
        example, random_input = example_and_random(est, shape, per_feature=True)
        meta["preprocessing"]["per"] = "feature"
        axes[1] = "time"
    elif channels is not None:
        shape = input_shape_of(est)
        mean, scale = (np.asarray(v, np.float32).ravel() for v in channels)
        standardize = ChannelStandardize(mean, scale, len(shape) - 1)
        example, random_input = channel_sampler(mean, scale, shape)
        meta["preprocessing"].update(per="channel", mean=mean.tolist(), scale=scale.tolist())
        meta["training_shape"] = list(shape)
        axes.update(SPATIAL_AXES[len(shape) - 1])
    else:
        shape = input_shape_of(est)
        example, random_input = example_and_random(est, shape)
    if hasattr(est, "classes_"):
        module = ClassifierModule(net, est.mean_, est.scale_, standardize).eval()
        meta.update(kind="classifier", classes=est.classes_.tolist(), decision="argmax")
        names = ("logits", "probabilities")

        def reference(X):
            return {"probabilities": est.predict_proba(X)}

    else:
        squeeze = int(est.y_ndim_) == 1
        module = RegressorModule(net, est.mean_, est.scale_, est.y_mean_, est.y_scale_, squeeze, standardize).eval()
        meta.update(kind="regressor")
        names = ("prediction",)

        def reference(X):
            return {"prediction": est.predict(X)}

    return ExportSpec(
        module=module,
        example_input=example,
        output_names=names,
        metadata=meta,
        dynamic_axes=axes,
        reference=reference,
        random_input=random_input,
        resizable=channels is not None,
    )


HELD_OUT_ROWS = 256  # codes drawn for a generator's held-out check


def cpu_copy(module: nn.Module) -> nn.Module:
    """A CPU copy in evaluation mode (the estimator keeps its own module where it is)."""
    return copy.deepcopy(module).cpu().eval()


def as_buffer(values) -> torch.Tensor:
    return torch.as_tensor(np.asarray(values, np.float32))


def example_batch(random_input) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(random_input(np.random.default_rng(0), 4)))


def input_shape_of(est) -> tuple[int, ...]:
    return tuple(int(s) for s in est.input_shape_)


def unit_interval(shape):
    return lambda rng, n: rng.random((n, *shape), dtype=np.float32)


def transform_spec(est, module, random_input, meta) -> ExportSpec:
    return ExportSpec(
        module=module.eval(),
        example_input=example_batch(random_input),
        output_names=("hidden",),
        metadata={"kind": "transform", **meta},
        reference=lambda X: {"hidden": est.transform(X)},
        random_input=random_input,
    )

"""Inference paths of the spine: the perceptron (``scores``, as ``decision_function``) and the
MLP and CNN classifiers and regressors (``logits`` and ``probabilities``, or ``prediction`` in the
target's units), with the saved standardisation inside the graph.

A CNN on ``(n, C, L)`` signals or ``(n, C, H, W)`` images takes any length or size (its global
pooling; Lin et al., 2014), and so does its graph: the standardisation per channel broadcasts over
the positions and the spatial axes are dynamic. Two CNNs keep their training size: one on ``(n, L)``
inputs (a 2-D array is read as a table, whose width ``predict`` checks), and a run saved when
its statistics were per position (``predict`` uses the per-position values at the training size
and their channel averages at any other, which one graph cannot do)."""

from __future__ import annotations

import numpy as np

from deepatlas.export.adapters import (
    PerceptronModule,
    example_and_random,
    input_shape_of,
    preprocessing_of,
    require_fitted,
    supervised_spec,
)
from deepatlas.export.protocol import ExportSpec, register_exporter


def perceptron_spec(est, part=None) -> ExportSpec:
    require_fitted(est)
    shape = (int(est.n_features_in_),)
    module = PerceptronModule(est._W, est.mean_, est.scale_, est.fit_intercept).eval()
    example, random_input = example_and_random(est, shape)
    binary = len(est.classes_) == 2
    return ExportSpec(
        module=module,
        example_input=example,
        output_names=("scores",),
        metadata={
            "kind": "classifier",
            "classes": est.classes_.tolist(),
            "decision": "sign" if binary else "argmax",
            "preprocessing": preprocessing_of(est),
        },
        reference=lambda X: {"scores": est.decision_function(X)},
        random_input=random_input,
    )


def channel_statistics(est) -> tuple[np.ndarray, np.ndarray] | None:
    """A CNN's ``(mean, scale)`` per channel, or None where its graph keeps the training size: inputs
    ``(n, L)``, or statistics that differ between the positions of a channel (runs saved before
    they were per channel)."""
    shape = input_shape_of(est)
    if len(shape) < 2:
        return None
    mean = np.asarray(est.mean_, np.float32).reshape(shape[0], -1)
    scale = np.asarray(est.scale_, np.float32).reshape(shape[0], -1)
    if (mean != mean[:, :1]).any() or (scale != scale[:, :1]).any():
        return None
    return mean[:, 0], scale[:, 0]


def spine_spec(est, part=None) -> ExportSpec:
    """The MLP's and CNN's spec (:func:`~deepatlas.export.adapters.supervised_spec`); a CNN's spatial
    axes are dynamic where :func:`channel_statistics` allows."""
    if isinstance(est, (CNNClassifier, CNNRegressor)):
        est._check_fitted()
        return supervised_spec(est, part, channels=channel_statistics(est))
    return supervised_spec(est, part)


from deepatlas.models.base import SupervisedClassifier, SupervisedRegressor  # noqa: E402
from deepatlas.models.cnn import CNNClassifier, CNNRegressor  # noqa: E402
from deepatlas.models.perceptron import Perceptron  # noqa: E402

register_exporter(Perceptron)(perceptron_spec)
register_exporter(SupervisedClassifier)(spine_spec)
register_exporter(SupervisedRegressor)(spine_spec)

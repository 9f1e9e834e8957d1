"""Inference paths of the spine: the perceptron (``scores``, as ``decision_function``) and the
MLP and CNN classifiers and regressors (``logits`` and ``probabilities``, or ``prediction`` in the
target's units), with the saved standardisation inside the graph."""

from __future__ import annotations

from deepatlas.export.adapters import (
    PerceptronModule,
    example_and_random,
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


from deepatlas.models.base import SupervisedClassifier, SupervisedRegressor  # noqa: E402
from deepatlas.models.perceptron import Perceptron  # noqa: E402

register_exporter(Perceptron)(perceptron_spec)
register_exporter(SupervisedClassifier)(supervised_spec)
register_exporter(SupervisedRegressor)(supervised_spec)

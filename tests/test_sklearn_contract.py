"""scikit-learn's own estimator checks over the spine's estimators.

Small budgets keep the checks fast; the behaviour they test does not depend on the budget.
"""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from deepatlas.models.cnn import CNNClassifier, CNNRegressor
from deepatlas.models.mlp import MLPClassifier, MLPRegressor
from deepatlas.models.perceptron import Perceptron

FAST = dict(epochs=30, batch_size=32, early_stopping=False, device="cpu")

ESTIMATORS = [
    Perceptron(),
    MLPClassifier(hidden_sizes=(32,), dropout=0.0, lr=1e-2, **FAST),
    MLPRegressor(hidden_sizes=(32,), dropout=0.0, lr=1e-2, **FAST),
    CNNClassifier(channels=(8,), lr=1e-2, **FAST),
    CNNRegressor(channels=(8,), lr=1e-2, **FAST),
]

# Checks these estimators cannot pass, with the reason. Nothing else is excused.
_WEIGHTS = (
    "mini-batch training: a sample of weight 2 enters one batch with twice the loss, a repeated sample two "
    "batches (other batch mates, other steps), so the fits differ"
)
EXPECTED_FAILURES = {
    "CNNRegressor": {
        "check_regressors_train": "a 30-epoch CNN on 2-D tabular data is not a good regressor; the check wants R^2 > 0.5",
        "check_sample_weight_equivalence_on_dense_data": _WEIGHTS,
    },
    **{
        name: {"check_sample_weight_equivalence_on_dense_data": _WEIGHTS}
        for name in ("MLPClassifier", "MLPRegressor", "CNNClassifier")
    },
}


def _expected_failed_checks(estimator):
    return EXPECTED_FAILURES.get(type(estimator).__name__, {})


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failed_checks)
def test_sklearn_compatible(estimator, check):
    check(estimator)

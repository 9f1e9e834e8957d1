"""Rosenblatt's perceptron, trained by the perceptron learning rule (not by gradient descent).

On each misclassified example the weights move toward it: ``w += lr * y * x`` (binary labels
±1), or, with several classes, toward the true class's row and away from the predicted one
(the multi-class perceptron of Collins, 2002). Training stops after the first pass with no
mistake: then the data were separated, which Novikoff (1962) shows happens after at most
``(R / gamma)^2`` updates on linearly separable data.

References: Rosenblatt (1958), "The perceptron: a probabilistic model for information storage
and organization in the brain"; Novikoff (1962), "On convergence proofs for perceptrons".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from sklearn.base import ClassifierMixin

from deepatlas._validation import Boolean, Interval, Options
from deepatlas.errors import InputError
from deepatlas.estimator import Estimator
from deepatlas.models.base import check_class_labels, check_features
from deepatlas.registry import register_model
from deepatlas.saving import shaped

_CHUNK = 64  # samples scored at once while looking for the next mistake


@register_model(
    "perceptron",
    task="classification",
    description="Rosenblatt's perceptron (mistake-driven learning rule)",
    smoke={"data": "blobs", "params": {"epochs": 5}},
    tuning_space={
        "lr": {"type": "float", "low": 1e-3, "high": 10.0, "log": True},
        "epochs": {"type": "int", "low": 5, "high": 100, "log": True},
    },
)
@dataclass(eq=False, repr=False, kw_only=True)
class Perceptron(ClassifierMixin, Estimator):
    """Linear classifier trained by the perceptron rule.

    Attributes after ``fit``: ``coef_`` (one row per class, or one row for two classes),
    ``intercept_``, ``n_updates_`` (weight changes made), ``n_epochs_`` (passes over the data),
    ``converged_`` (a full pass made no mistake), ``history_`` (mistakes per pass).

    >>> from deepatlas.data import load_dataset
    >>> ds = load_dataset("blobs")
    >>> Perceptron().fit(ds.X_train, ds.y_train).converged_
    True
    """

    epochs: int = 100
    """Most passes over the training data; training stops after the first pass without a mistake."""
    lr: float = 1.0
    """Size of each update (``w += lr * y * x``). From zero weights it only scales them, so it changes the
    predictions only with ``init='random'``."""
    fit_intercept: bool = True
    """Learn a bias (a constant input of 1 appended to every sample)."""
    shuffle: bool = True
    """Visit the samples in a fresh random order (drawn from ``seed``) each pass; False keeps the given order."""
    init: str = "zeros"
    """Starting weights: ``zeros``, or ``random`` draws from a normal distribution with standard deviation
    0.1."""
    standardize: bool = True
    """Shift and scale each feature to zero mean and unit variance with the training statistics, saved with
    the model and applied in ``predict``."""

    device: str = "auto"
    """The rule runs in NumPy on the CPU: ``auto`` and ``cpu`` are accepted, a GPU is refused."""

    _parameter_constraints: ClassVar[dict] = {
        "device": Options(("auto", "cpu")),
        "epochs": Interval(int, 1, None),
        "lr": Interval(float, 0, None, "neither"),
        "fit_intercept": Boolean(),
        "shuffle": Boolean(),
        "init": Options(("zeros", "random")),
        "standardize": Boolean(),
    }

    _fitted_attr: ClassVar[str] = "_W"

    def fit(self, X, y):
        self._validate_params()
        X = check_features(X, "Perceptron")
        X = X.reshape(len(X), -1).astype(np.float64)
        y = check_class_labels(y, "Perceptron")
        if len(y) != len(X):
            raise InputError(f"X and y have inconsistent numbers of samples: X has {len(X)}, y has {len(y)}.")
        self.classes_ = np.unique(y)
        self.n_features_in_ = X.shape[1]
        self.input_shape_ = (X.shape[1],)
        self.mean_ = X.mean(axis=0) if self.standardize else np.zeros(X.shape[1])
        scale = X.std(axis=0) if self.standardize else np.ones(X.shape[1])
        self.scale_ = np.where(scale > 1e-12, scale, 1.0)
        Z = self._augment((X - self.mean_) / self.scale_)
        target = np.searchsorted(self.classes_, y)
        rng = np.random.default_rng(self.seed)
        binary = len(self.classes_) == 2
        rows = 1 if binary else len(self.classes_)
        W = rng.normal(0, 0.1, size=(rows, Z.shape[1])) if self.init == "random" else np.zeros((rows, Z.shape[1]))
        sign = np.where(target == 1, 1.0, -1.0)

        self.history_, self.n_updates_, self.converged_ = [], 0, False
        for _ in range(self.epochs):
            order = rng.permutation(len(Z)) if self.shuffle else np.arange(len(Z))
            mistakes = self._epoch(W, Z, target, sign, order, binary)
            self.n_updates_ += mistakes
            self.history_.append({"epoch": len(self.history_) + 1, "mistakes": mistakes})
            if mistakes == 0:
                self.converged_ = True
                break
        self.n_epochs_ = len(self.history_)
        self._W = W
        self.coef_ = W[:, :-1] if self.fit_intercept else W
        self.intercept_ = W[:, -1] if self.fit_intercept else np.zeros(rows)
        return self

    def _epoch(self, W, Z, target, sign, order, binary) -> int:
        """One pass in ``order``; exactly the sequential rule, but scoring a chunk of upcoming
        samples at once and jumping to the first mistake, so clean stretches cost one matmul."""
        mistakes, i, n = 0, 0, len(order)
        while i < n:
            idx = order[i : i + _CHUNK]
            scores = Z[idx] @ W.T  # (chunk, rows)
            if binary:
                wrong = sign[idx] * scores[:, 0] <= 0
            else:
                wrong = scores.argmax(axis=1) != target[idx]
            hits = np.flatnonzero(wrong)
            if len(hits) == 0:
                i += len(idx)
                continue
            j = idx[hits[0]]
            if binary:
                W[0] += self.lr * sign[j] * Z[j]
            else:
                W[target[j]] += self.lr * Z[j]
                W[scores[hits[0]].argmax()] -= self.lr * Z[j]
            mistakes += 1
            i += hits[0] + 1
        return mistakes

    def _augment(self, Z: np.ndarray) -> np.ndarray:
        return np.hstack([Z, np.ones((len(Z), 1))]) if self.fit_intercept else Z

    def decision_function(self, X) -> np.ndarray:
        self._check_fitted()
        X = check_features(X, "Perceptron")
        X = X.reshape(len(X), -1).astype(np.float64)
        if X.shape[1] != self.n_features_in_:
            raise InputError(
                f"X has {X.shape[1]} features, but Perceptron is expecting {self.n_features_in_} features as input."
            )
        scores = self._augment((X - self.mean_) / self.scale_) @ self._W.T
        return scores[:, 0] if scores.shape[1] == 1 else scores

    def predict(self, X) -> np.ndarray:
        scores = self.decision_function(X)
        idx = (scores > 0).astype(int) if scores.ndim == 1 else scores.argmax(axis=1)
        return self.classes_[idx]

    # ---- persistence (same interface as TorchEstimator) --------------------------------------
    def _fitted_state(self):
        tensors = {
            "W": torch.from_numpy(np.ascontiguousarray(self._W)),
            "mean_": torch.from_numpy(self.mean_),
            "scale_": torch.from_numpy(self.scale_),
        }
        meta = {
            "classes_": self.classes_.tolist(),
            "n_features_in_": int(self.n_features_in_),
            "n_updates_": int(self.n_updates_),
            "n_epochs_": int(self.n_epochs_),
            "converged_": bool(self.converged_),
        }
        return tensors, meta

    def _restore_state(self, tensors, meta):
        self.classes_ = np.array(meta["classes_"])
        self.n_features_in_ = int(meta["n_features_in_"])
        rows = 1 if len(self.classes_) == 2 else len(self.classes_)
        self._W = shaped(tensors, "W", (rows, self.n_features_in_ + self.fit_intercept)).numpy().astype(np.float64)
        self.mean_ = shaped(tensors, "mean_", (self.n_features_in_,)).numpy()
        self.scale_ = shaped(tensors, "scale_", (self.n_features_in_,)).numpy()
        self.input_shape_ = (self.n_features_in_,)
        self.n_updates_, self.n_epochs_, self.converged_ = meta["n_updates_"], meta["n_epochs_"], meta["converged_"]
        self.coef_ = self._W[:, :-1] if self.fit_intercept else self._W
        self.intercept_ = self._W[:, -1] if self.fit_intercept else np.zeros(len(self._W))
        self.history_ = []

"""The classical face detector's classifier: histograms of oriented gradients (Dalal & Triggs,
2005) from scikit-image, standardised, then a linear support vector machine from scikit-learn
(``LinearSVC``). It is the baseline the CNN is compared with on ``lfw-faces``::

    deepatlas compare cnn hog-svm --data lfw-faces --folds 5
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from sklearn.base import ClassifierMixin

from deepatlas._optional import require
from deepatlas._validation import Interval
from deepatlas.errors import InputError
from deepatlas.estimator import Estimator
from deepatlas.models.base import check_class_labels, check_features
from deepatlas.registry import register_model
from deepatlas.saving import shaped


@register_model(
    "hog-svm",
    task="classification",
    description="HOG features (scikit-image) and a linear SVM (scikit-learn): the classical image classifier",
    smoke={"data": "digits", "params": {"pixels_per_cell": 4}},
)
@dataclass(eq=False, repr=False, kw_only=True)
class HOGSVM(ClassifierMixin, Estimator):
    """HOG descriptors of grey images ``(n, 1, H, W)`` (colour images are averaged to grey), then a
    linear SVM on the standardised descriptors."""

    orientations: int = 9
    """Orientation bins of each cell's gradient histogram (Dalal & Triggs use 9 over 0-180 degrees)."""
    pixels_per_cell: int = 5
    """Side of a HOG cell in pixels (5 gives 5x5 cells on a 25x25 face)."""
    cells_per_block: int = 2
    """Side of a normalisation block in cells (L2-Hys, blocks overlap by all but one cell)."""
    C: float = 0.1
    """Inverse regularisation strength of the linear SVM."""

    _parameter_constraints: ClassVar[dict] = {
        "orientations": Interval(int, 1, None),
        "pixels_per_cell": Interval(int, 1, None),
        "cells_per_block": Interval(int, 1, None),
        "C": Interval(float, 0, None, "neither"),
    }
    _fitted_attr: ClassVar[str] = "coef_"

    def _features(self, X) -> np.ndarray:
        feature = require("recognition", f"{type(self).__name__}", "skimage.feature")
        X = check_features(X, type(self).__name__)
        if X.ndim == 3:
            X = X[:, None]
        if X.ndim != 4:
            raise InputError(
                f"{type(self).__name__} takes images of shape (n, channels, height, width). Got X of shape {X.shape} instead."
            )
        side = self.pixels_per_cell * self.cells_per_block
        if min(X.shape[2:]) < side:
            raise InputError(
                f"{type(self).__name__}: images of {X.shape[3]}x{X.shape[2]} are smaller than one HOG block "
                f"({side}x{side} pixels: pixels_per_cell x cells_per_block)."
            )
        grey = X.mean(axis=1)
        cell, block = (self.pixels_per_cell,) * 2, (self.cells_per_block,) * 2
        return np.stack(
            [feature.hog(g, self.orientations, cell, block, block_norm="L2-Hys", feature_vector=True) for g in grey]
        ).astype(np.float32)

    def fit(self, X, y):
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import LinearSVC

        self._validate_params()
        H = self._features(X)
        y = check_class_labels(y, type(self).__name__)
        if len(y) != len(H):
            raise InputError(f"X and y have inconsistent numbers of samples: X has {len(H)}, y has {len(y)}.")
        self.input_shape_ = tuple(int(s) for s in np.shape(X)[1:])
        self.n_features_in_ = int(np.prod(self.input_shape_))
        scaler = StandardScaler().fit(H)
        svm = LinearSVC(C=self.C, random_state=self.seed, max_iter=20_000).fit(scaler.transform(H), y)
        self.classes_ = svm.classes_
        self.mean_, self.scale_ = scaler.mean_.astype(np.float32), scaler.scale_.astype(np.float32)
        self.intercept_ = svm.intercept_.astype(np.float32)
        self.coef_ = svm.coef_.astype(np.float32)
        return self

    def decision_function(self, X) -> np.ndarray:
        self._check_fitted()
        H = (self._features(X) - self.mean_) / self.scale_
        if H.shape[1] != self.coef_.shape[1]:
            raise InputError(
                f"X gives {H.shape[1]} HOG features, but {type(self).__name__} was fitted on images of "
                f"{'x'.join(map(str, self.input_shape_))} ({self.coef_.shape[1]} features)."
            )
        scores = H @ self.coef_.T + self.intercept_
        return scores.ravel() if scores.shape[1] == 1 else scores

    def predict(self, X) -> np.ndarray:
        scores = self.decision_function(X)
        idx = (scores > 0).astype(int) if scores.ndim == 1 else scores.argmax(axis=1)
        return self.classes_[idx]

    def _fitted_state(self):
        self._check_fitted()
        tensors = {k: torch.from_numpy(getattr(self, k)) for k in ("coef_", "intercept_", "mean_", "scale_")}
        meta = {"input_shape_": list(self.input_shape_), "classes_": self.classes_.tolist()}
        return tensors, meta

    def _restore_state(self, tensors, meta):
        self.input_shape_ = tuple(int(s) for s in meta["input_shape_"])
        self.n_features_in_ = int(np.prod(self.input_shape_))
        self.classes_ = np.array(meta["classes_"])
        rows, width = tensors["coef_"].shape
        self.coef_ = shaped(tensors, "coef_", (rows, width)).numpy()
        self.intercept_ = shaped(tensors, "intercept_", (rows,)).numpy()
        self.mean_ = shaped(tensors, "mean_", (width,)).numpy()
        self.scale_ = shaped(tensors, "scale_", (width,)).numpy()

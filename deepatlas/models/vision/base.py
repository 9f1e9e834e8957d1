"""What the segmenter and the detector share: image input checks, per-channel standardisation
that applies at any image size, and the per-channel export wrapper."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from deepatlas._validation import TupleOf
from deepatlas.data.scenes import check_targets
from deepatlas.errors import InputError
from deepatlas.models.base import TorchEstimator, check_features, column_statistics


@dataclass(eq=False, repr=False, kw_only=True)
class VisionEstimator(TorchEstimator):
    """Images ``(n, C, H, W)`` in; the targets are the ``scenes`` masks ``(n, 2, H, W)``."""

    channels: tuple = (16, 32, 64, 128)
    """Output channels of the encoder's blocks (two 3x3 convolutions each), full resolution first; a 2x2 max
    pool between blocks, so images need a height and width divisible by ``2 ** (len(channels) - 1)``."""

    _parameter_constraints: ClassVar[dict] = {"channels": TupleOf()}
    _task: ClassVar[str] = "scenes"

    @property
    def _multiple(self) -> int:
        return 2 ** (len(self._channels) - 1)

    @property
    def _channels(self) -> tuple[int, ...]:
        return (self.channels,) if isinstance(self.channels, int) else tuple(int(c) for c in self.channels)

    def _check_images(self, X, what: str = "X") -> np.ndarray:
        name = type(self).__name__
        X = check_features(X, name)
        if X.ndim != 4:
            raise InputError(
                f"{name} takes images of shape (n, channels, height, width). Got {what} of shape {X.shape} instead."
            )
        m = self._multiple
        if X.shape[2] % m or X.shape[3] % m:
            raise InputError(
                f"{name} with {len(self._channels)} encoder blocks needs a height and width divisible by {m}. "
                f"Got {what} of size {X.shape[2]}x{X.shape[3]} instead."
            )
        return X

    def _check_targets(self, y, n: int, size, what: str) -> np.ndarray:
        """The targets of ``n`` images of ``size``: the ``scenes`` masks here (the keypoint
        estimator of the recognition family checks joint coordinates instead)."""
        return check_targets(y, n, size, type(self).__name__)

    def _prepare_images(self, X, y, validation_data):
        """Checked images and masks (training and validation), with ``input_shape_`` set."""
        X = self._check_images(X)
        y = self._check_targets(y, len(X), X.shape[2:], "y")
        X_val = y_val = None
        if validation_data is not None:
            X_val = self._check_images(validation_data[0], "validation X")
            if X_val.shape[1:] != X.shape[1:]:
                raise InputError(
                    f"validation X has shape {X_val.shape[1:]} per image, but the training X has {X.shape[1:]}."
                )
            y_val = self._check_targets(validation_data[1], len(X_val), X_val.shape[2:], "validation y")
        self.input_shape_ = tuple(int(s) for s in X.shape[1:])
        self.n_features_in_ = int(np.prod(self.input_shape_))
        return X, y, X_val, y_val

    def fit_dataset(self, ds, *, checkpoint_dir=None, resume: bool = False):
        """Fit on a dataset's training split, stopping early on its validation split; keeps the
        class names (saved with the model) and, for ``deepatlas train``, the run directory, where
        :meth:`dataset_metrics` writes ``evaluation.json``."""
        self.class_names_ = [str(c) for c in ds.meta.get("class_names") or []]
        self.run_dir_ = checkpoint_dir
        return self.fit(
            ds.X_train, ds.y_train, validation_data=(ds.X_val, ds.y_val), checkpoint_dir=checkpoint_dir, resume=resume
        )

    def class_name(self, label: int) -> str:
        names = getattr(self, "class_names_", None) or []
        return names[label] if 0 <= label < len(names) else str(label)

    def _fitted_state(self):
        tensors, meta = super()._fitted_state()
        meta["class_names_"] = list(getattr(self, "class_names_", None) or [])
        return tensors, meta

    def _restore_state(self, tensors, meta):
        super()._restore_state(tensors, meta)
        self.class_names_ = list(meta.get("class_names_") or [])

    def _check_input(self, X) -> np.ndarray:
        """Images with the training channel count; any height and width the network divides."""
        self._check_fitted()
        X = self._check_images(X)
        if X.shape[1] != self.input_shape_[0]:
            raise InputError(
                f"X has {X.shape[1]} channels, but {type(self).__name__} was trained on {self.input_shape_[0]}."
            )
        return X

    # per-channel statistics: they mean the same at every image size
    def _input_statistics(self, X):
        c = X.shape[1]
        return column_statistics(X.transpose(0, 2, 3, 1).reshape(-1, c))

    def _fit_statistics(self, X) -> None:
        if self.standardize:
            self.mean_, self.scale_ = self._input_statistics(X)
        else:
            self.mean_, self.scale_ = np.zeros(X.shape[1], np.float32), np.ones(X.shape[1], np.float32)

    def _standardized(self, X):
        shape = (1, -1, 1, 1)
        return ((X - self.mean_.reshape(shape)) / self.scale_.reshape(shape)).astype(np.float32)

    def _example_and_random(self):
        """An example batch and a sampler of images on the data's scale; ``grow`` adds 32 pixels to
        the height and width (a 64x64 model is checked at 96x96 too)."""
        c, h, w = self.input_shape_
        mean, scale = self.mean_.reshape(1, -1, 1, 1), self.scale_.reshape(1, -1, 1, 1)

        def random_input(rng: np.random.Generator, n: int, grow: int = 0) -> np.ndarray:
            extra = 32 if grow else 0
            return (mean + scale * rng.standard_normal((n, c, h + extra, w + extra))).astype(np.float32)

        return torch.from_numpy(random_input(np.random.default_rng(0), 2)), random_input

"""Shallow bases that own fitting for the gradient-trained supervised models.

A family leaf is a dataclass that declares its hyperparameters and overrides
:meth:`TorchEstimator._build_module`; fitting, validation, standardisation, seeding, the device,
the training loop, saving and loading live here once.

The estimators are dataclasses so that one declaration gives scikit-learn an explicit
``__init__`` signature (``get_params``, ``clone``, ``GridSearchCV`` work), gives the CLI its
parameter list, and gives ``config.json`` its content.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import ClassifierMixin, RegressorMixin
from torch import nn
from torch.nn import functional as F

from deepatlas._validation import Boolean, Interval, Options
from deepatlas.device import make_generator, resolve_device, seeded
from deepatlas.errors import InputError, InputTypeError
from deepatlas.estimator import Estimator
from deepatlas.training import Checkpoint, EarlyStopping, ProgressBar, TrainingLoop, distributed, make_optimizer
from deepatlas.training.callbacks import restore_checkpoint


def check_features(X, owner: str, *, allow_nd: bool = True) -> np.ndarray:
    """Numeric, finite, at least 2-D float32 array; one-line errors that name ``X``."""
    if hasattr(X, "toarray") or type(X).__module__.startswith("scipy.sparse"):
        raise InputError(f"{owner} does not accept sparse input X; convert it with X.toarray().")
    try:
        arr = np.asarray(X)
    except Exception as exc:
        raise InputError(f"X could not be read as an array: {exc}.") from None
    if arr.dtype == object:
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise InputTypeError(
                "X must hold numbers: argument must be a string or a number convertible to float."
            ) from None
    if np.iscomplexobj(arr):
        raise InputError("Complex data not supported: X must be real-valued.")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise InputError(f"X must hold numbers. Got dtype {arr.dtype} instead.")
    if arr.ndim < 2:
        raise InputError(
            f"Expected a 2-D array X of shape (n_samples, n_features), got a {arr.ndim}-D array. "
            "Reshape your data with X.reshape(-1, 1) for one feature or X.reshape(1, -1) for one sample."
        )
    if arr.ndim > 2 and not allow_nd:
        raise InputError(f"{owner} expects a 2-D X. Got an array of shape {arr.shape} instead.")
    if arr.shape[0] == 0:
        raise InputError(f"Found array X with 0 sample(s) (shape={arr.shape}) while a minimum of 1 is required.")
    if arr.shape[1] == 0:
        raise InputError(f"Found array X with 0 feature(s) (shape={arr.shape}) while a minimum of 1 is required.")
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        raise InputError("X contains NaN or inf values; remove or impute them before fitting or predicting.")
    return arr


def check_class_labels(y, owner: str) -> np.ndarray:
    """1-D discrete class labels (ints, strings, bools, integral floats) with at least 2 classes."""
    from sklearn.utils.multiclass import type_of_target
    from sklearn.utils.validation import column_or_1d

    if y is None:
        raise InputError(f"{owner} requires y to be passed, but the target y is None.")
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = column_or_1d(y, warn=True)  # DataConversionWarning, as scikit-learn estimators do
    if y.ndim != 1:
        raise InputError(f"y must be 1-D class labels for {owner}. Got shape {y.shape} instead.")
    if np.issubdtype(y.dtype, np.floating) and not np.isfinite(y).all():
        raise InputError("y contains NaN or inf values.")
    kind = type_of_target(y)
    if kind not in ("binary", "multiclass"):
        raise InputError(
            f"Unknown label type: {kind}. {owner} needs class labels; for a numeric target use a regressor."
        )
    classes = np.unique(y)
    if len(classes) < 2:
        raise InputError(f"{owner} needs at least 2 classes in y; got 1 class ({classes[0]!r}).")
    return y


def column_statistics(columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each column of a 2-D array, as float32; a constant column
    gets scale 1 so that standardising leaves it at zero."""
    scale = columns.std(axis=0)
    return columns.mean(axis=0).astype(np.float32), np.where(scale > 1e-8, scale, 1.0).astype(np.float32)


@dataclass
class FitData:
    """What a family's :meth:`TorchEstimator._prepare_fit` makes of the caller's data: training
    inputs and targets as arrays, the validation pair (``None`` before the holdout), and the
    number of network outputs."""

    X: Any
    targets: Any
    X_val: Any = None
    y_val: Any = None
    n_outputs: int = 0


@dataclass(eq=False, repr=False, kw_only=True)
class TorchEstimator(Estimator):
    """Common hyperparameters and the one fit of every gradient-trained estimator.

    :meth:`fit` is the same for every family: validate the parameters, let the family turn the
    data into arrays (:meth:`_prepare_fit`: labels, the input itself, text windows, sparse codes,
    padded sequences), hold out a validation split, fit the input statistics, then, on the chosen
    device, in the process group under torchrun and under the seed, build the network and run
    the shared :class:`~deepatlas.training.TrainingLoop` with one set of arguments (precision and
    gradient clipping included) and one rank-gated set of default callbacks.
    """

    epochs: int = 100
    """Most passes over the training data; early stopping may end the fit sooner."""
    batch_size: int = 64
    """Samples per gradient step."""
    lr: float = 1e-3
    """Learning rate of the optimiser."""
    optimizer: str = "adam"
    """``adam``, ``adamw`` (weight decay decoupled from the gradient) or ``sgd`` (Nesterov momentum 0.9)."""
    weight_decay: float = 0.0
    """Weight-decay (L2) coefficient of the optimiser; 0 turns it off."""
    early_stopping: bool = True
    """Stop once the validation score has not improved for ``patience`` epochs and keep the best epoch's
    weights. Without ``validation_data``, a ``validation_fraction`` of the training set (20 samples or
    more) is held out for it."""
    patience: int = 10
    """Epochs without a better validation score before early stopping ends the fit."""
    validation_fraction: float = 0.1
    """Share of the training samples held out for early stopping when no ``validation_data`` is given
    (stratified by class for classifiers)."""
    standardize: bool = True
    """Shift and scale the inputs to zero mean and unit variance with statistics of the training data (per
    feature; per channel in the CNN); they are saved with the model and applied in ``predict``."""
    precision: str = "fp32"
    """``bf16`` runs forward passes under bfloat16 autocast (faster on recent CPUs and GPUs); ``fp32`` keeps
    full precision."""

    _parameter_constraints: ClassVar[dict] = {
        "epochs": Interval(int, 1, None),
        "batch_size": Interval(int, 1, None),
        "lr": Interval(float, 0, None, "neither"),
        "optimizer": Options(("adam", "adamw", "sgd")),
        "weight_decay": Interval(float, 0, None),
        "early_stopping": Boolean(),
        "patience": Interval(int, 1, None),
        "validation_fraction": Interval(float, 0, 1, "neither"),
        "standardize": Boolean(),
        "precision": Options(("fp32", "bf16")),
    }
    _data_parallel: ClassVar[bool] = True
    _task: ClassVar[str] = "classification"
    _monitor: ClassVar[tuple[str, str]] = ("val_loss", "min")
    _val_metrics: ClassVar[dict] = {}
    _loop_class: ClassVar[type] = TrainingLoop

    # ---- hooks a family overrides -------------------------------------------------------------
    def _build_module(self, sample_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
        raise NotImplementedError

    def _loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _encode_targets(self, y) -> tuple[np.ndarray, int]:
        """Validate ``y`` and turn it into training targets; returns (targets, n_outputs)."""
        raise NotImplementedError

    def _prepare_fit(self, X, y, validation_data) -> FitData:
        """Validate the caller's data and turn it into arrays; sets ``input_shape_`` and
        ``n_features_in_``. The default: feature arrays and encoded targets."""
        name = type(self).__name__
        X = check_features(X, name)
        targets, n_outputs = self._encode_targets(self._check_y(y, len(X)))
        X_val = y_val = None
        if validation_data is not None:
            X_val = check_features(validation_data[0], name)
            if X_val[0].size != X[0].size:
                raise InputError(f"validation_data X has {X_val[0].size} features, but the training X has {X[0].size}.")
            X_val = X_val.reshape(len(X_val), *X.shape[1:])
            y_val = self._encode_more(self._check_y(validation_data[1], len(X_val)))
        self.input_shape_ = tuple(int(s) for s in X.shape[1:])
        self.n_features_in_ = int(np.prod(self.input_shape_))
        return FitData(X, targets, X_val, y_val, n_outputs)

    def _fit_statistics(self, X: np.ndarray) -> None:
        """``mean_``/``scale_`` from the training inputs (zeros and ones without ``standardize``)."""
        if self.standardize:
            self.mean_, self.scale_ = self._input_statistics(X)
        else:
            self.mean_ = np.zeros(self.n_features_in_, np.float32)
            self.scale_ = np.ones(self.n_features_in_, np.float32)

    def _fit_tensors(self, data: FitData, device) -> tuple:
        """``(X, y, X_val, y_val)`` tensors on ``device`` for the loop."""
        to_t = self._to_tensor
        Xv = to_t(self._standardized(data.X_val), device) if data.X_val is not None else None
        yv = self._target_tensor(data.y_val, device) if data.y_val is not None else None
        return to_t(self._standardized(data.X), device), self._target_tensor(data.targets, device), Xv, yv

    def _loop_kwargs(self) -> dict:
        """The loop's arguments beyond module, loss and optimiser (callbacks and generator aside)."""
        return {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr_for_messages": self.lr,
            "val_metrics": self._val_metrics,
            "precision": self.precision,
            "clip_norm": getattr(self, "clip_norm", None),
        }

    @contextlib.contextmanager
    def _fitting(self, data: FitData, device):
        """Entered under the seed before the network is built and left after training: a family
        prepares there what the network starts from (a DBN pretrains its RBMs) or how it runs."""
        yield

    def _after_fit(self) -> None:
        """Called once training ends (e.g. a sequence model forgets its padded training length)."""

    # ---- fitting ----------------------------------------------------------------------------
    def fit(self, X, y=None, *, validation_data=None, callbacks=(), checkpoint_dir=None, resume: bool = False):
        """Train on ``(X, y)``.

        Parameters
        ----------
        validation_data : optional ``(X_val, y_val)``; otherwise, with ``early_stopping``, a
            stratified ``validation_fraction`` of ``X`` is held out.
        callbacks : extra :class:`~deepatlas.training.Callback` objects (e.g. tuner pruning).
        checkpoint_dir : write a checkpoint there after every epoch.
        resume : continue from the checkpoint in ``checkpoint_dir`` if there is one.
        """
        self._validate_params()
        data = self._prepare_fit(X, y, validation_data)
        if data.X_val is None and self.early_stopping and len(data.X) >= 20:
            data.X, data.targets, data.X_val, data.y_val = self._holdout(data.X, data.targets)
        self._fit_statistics(data.X)
        self.n_outputs_ = data.n_outputs

        device = distributed.local_device(resolve_device(self.device))
        distributed.ensure_initialized(device)  # under torchrun: join the process group
        self.device_ = device
        # Everything random from here on (initial weights, dropout masks, batch order) is drawn
        # under the seed, without touching the caller's global RNG.
        with seeded(self.seed), self._fitting(data, device):
            module = self._build_module(self.input_shape_, data.n_outputs).to(device)
            self.module_ = module
            tensors = self._fit_tensors(data, device)
            loop = self._make_loop(module, callbacks, checkpoint_dir, has_validation=tensors[2] is not None)
            if resume and checkpoint_dir is not None:
                restore_checkpoint(checkpoint_dir, loop)
            start = time.perf_counter()
            self.history_ = loop.run(*tensors)
            self.fit_seconds_ = time.perf_counter() - start
        self.n_epochs_ = len(self.history_)
        self.best_epoch_ = getattr(loop, "best_epoch", self.n_epochs_)
        module.eval()
        self._after_fit()
        return self

    def _make_loop(self, module, callbacks=(), checkpoint_dir=None, *, has_validation: bool = True) -> TrainingLoop:
        """The loop with the optimiser and the default callbacks: early stopping when there is
        validation data, then (on rank 0 only) a checkpoint per epoch and the progress bar."""
        opt = self._make_optimizer(module)
        cbs = list(callbacks)
        if self.early_stopping and has_validation:
            cbs.append(EarlyStopping(self.patience, *self._monitor))
        main = distributed.is_main_process()  # only rank 0 writes files and prints
        if checkpoint_dir is not None and main:
            cbs.append(Checkpoint(checkpoint_dir))
        cbs.append(ProgressBar(type(self).__name__, enabled=(None if self.verbose else False) if main else False))
        loop_class = self._loop_class_for(module)
        return loop_class(
            module, self._loss, opt, generator=make_generator(self.seed, "cpu"), callbacks=cbs, **self._loop_kwargs()
        )

    def _make_optimizer(self, module) -> torch.optim.Optimizer:
        return make_optimizer(self.optimizer, module.parameters(), self.lr, self.weight_decay)

    def _loop_class_for(self, module) -> type:
        return self._loop_class

    def _holdout(self, X, targets):
        from sklearn.model_selection import train_test_split

        strat = None
        if self._task == "classification":
            _, counts = np.unique(targets, return_counts=True)
            n_val = int(round(self.validation_fraction * len(X)))
            if counts.min() >= 2 and n_val >= len(counts):
                strat = targets
        tr, va = train_test_split(
            np.arange(len(X)), test_size=self.validation_fraction, random_state=self.seed, stratify=strat
        )
        return X[tr], targets[tr], X[va], targets[va]

    def _check_y(self, y, n: int) -> np.ndarray:
        if y is None:
            raise InputError(f"{type(self).__name__} requires y to be passed, but the target y is None.")
        y = np.asarray(y)
        if len(y) != n:
            raise InputError(f"X and y have inconsistent numbers of samples: X has {n}, y has {len(y)}.")
        return y

    def _encode_more(self, y):
        return self._encode_targets(y)[0]

    # ---- inference ----------------------------------------------------------------------------
    @staticmethod
    def _to_tensor(X: np.ndarray, device) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(X, dtype=np.float32), device=device)

    def _check_input(self, X) -> np.ndarray:
        self._check_fitted()
        X = check_features(X, type(self).__name__)
        n_features = int(np.prod(X.shape[1:]))
        if n_features != self.n_features_in_:
            raise InputError(
                f"X has {n_features} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )
        return X.reshape((len(X), *self.input_shape_))

    def _input_statistics(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and scale per flattened feature."""
        return column_statistics(X.reshape(len(X), -1))

    def _standardized(self, X: np.ndarray) -> np.ndarray:
        flat = X.reshape(len(X), -1)
        return ((flat - self.mean_) / self.scale_).reshape(X.shape).astype(np.float32)

    @torch.no_grad()
    def _forward(self, X, batch_size: int = 4096) -> np.ndarray:
        """Raw network outputs for ``X`` (validated, standardised), batched, as NumPy."""
        X = self._standardized(self._check_input(X))
        self.module_.eval()
        device = next(self.module_.parameters()).device
        outs = [self.module_(self._to_tensor(X[i : i + batch_size], device)) for i in range(0, len(X), batch_size)]
        return torch.cat(outs).float().cpu().numpy()

    def _target_tensor(self, targets: np.ndarray, device) -> torch.Tensor:
        return torch.as_tensor(targets, device=device)

    # ---- persistence --------------------------------------------------------------------------
    def _fitted_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Tensors (weights, preprocessing) and JSON metadata that rebuild this fitted model."""
        self._check_fitted()
        tensors = {f"module.{k}": v.detach().cpu().contiguous() for k, v in self.module_.state_dict().items()}
        tensors["mean_"] = torch.from_numpy(self.mean_)
        tensors["scale_"] = torch.from_numpy(self.scale_)
        meta = {"input_shape_": list(self.input_shape_), "n_outputs_": self.n_outputs_, "n_epochs_": self.n_epochs_}
        return tensors, meta

    def _restore_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        self.input_shape_ = tuple(meta["input_shape_"])
        self.n_features_in_ = int(np.prod(self.input_shape_))
        self.n_outputs_ = int(meta["n_outputs_"])
        self.n_epochs_ = meta.get("n_epochs_")
        self.mean_ = tensors["mean_"].numpy()
        self.scale_ = tensors["scale_"].numpy()
        device = resolve_device(self.device)
        self.device_ = device
        with seeded(self.seed):
            self.module_ = self._build_module(self.input_shape_, self.n_outputs_)
        self.module_.load_state_dict({k[7:]: v for k, v in tensors.items() if k.startswith("module.")})
        self.module_.to(device).eval()


def _correct(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Number of correct arg-max predictions in a batch (the loop divides by the total)."""
    return (output.argmax(dim=1) == target).sum()


class SupervisedClassifier(ClassifierMixin, TorchEstimator):
    """Softmax classifier over any labels (ints, strings); ``classes_`` keeps them in order."""

    _task: ClassVar[str] = "classification"
    # Validation loss starts rising (over-confidence) while accuracy still improves; stopping on
    # accuracy keeps the better model.
    _monitor: ClassVar[tuple[str, str]] = ("val_accuracy", "max")
    _val_metrics: ClassVar[dict] = {"val_accuracy": _correct}

    def _encode_targets(self, y):
        y = check_class_labels(y, type(self).__name__)
        classes = np.unique(y)
        self.classes_ = classes
        return np.searchsorted(classes, y).astype(np.int64), len(classes)

    def _encode_more(self, y):
        unknown = np.setdiff1d(np.unique(y), self.classes_)
        if len(unknown):
            raise InputError(f"validation labels {list(unknown)[:5]} do not occur in the training labels.")
        return np.searchsorted(self.classes_, y).astype(np.int64)

    def _loss(self, output, target):
        return F.cross_entropy(output, target)

    def _target_tensor(self, targets, device):
        return torch.as_tensor(targets, dtype=torch.long, device=device)

    def decision_function(self, X) -> np.ndarray:
        logits = self._forward(X)
        return logits[:, 1] - logits[:, 0] if logits.shape[1] == 2 else logits

    def predict_proba(self, X) -> np.ndarray:
        logits = torch.from_numpy(self._forward(X)).double()  # rows sum to 1 in float64
        return torch.softmax(logits, dim=1).numpy()

    def predict_log_proba(self, X) -> np.ndarray:
        return torch.log_softmax(torch.from_numpy(self._forward(X)), dim=1).numpy().astype(np.float64)

    def predict(self, X) -> np.ndarray:
        scores = self._forward(X)  # checks fitted state first
        return self.classes_[scores.argmax(axis=1)]

    def _fitted_state(self):
        tensors, meta = super()._fitted_state()
        meta["classes_"] = self.classes_.tolist()
        return tensors, meta

    def _restore_state(self, tensors, meta):
        super()._restore_state(tensors, meta)
        self.classes_ = np.array(meta["classes_"])


class SupervisedRegressor(RegressorMixin, TorchEstimator):
    """Mean-squared-error regression; targets are standardised for training and mapped back."""

    _task: ClassVar[str] = "regression"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True  # y of shape (n, k) trains k outputs
        return tags

    def _encode_targets(self, y):
        y = np.asarray(y)
        if y.dtype == object:
            try:
                y = y.astype(np.float64)
            except (TypeError, ValueError):
                raise InputError(f"Unknown label type: {type(self).__name__} needs a numeric target y.") from None
        if not np.issubdtype(y.dtype, np.number):
            raise InputError(f"y must be numeric for {type(self).__name__}. Got dtype {y.dtype} instead.")
        y = y.astype(np.float32)
        if not np.isfinite(y).all():
            raise InputError("y contains NaN or inf values.")
        self.y_ndim_ = y.ndim
        Y = y.reshape(len(y), -1)
        self.y_mean_ = Y.mean(axis=0).astype(np.float32)
        std = Y.std(axis=0)
        self.y_scale_ = np.where(std > 1e-8, std, 1.0).astype(np.float32)
        return (Y - self.y_mean_) / self.y_scale_, Y.shape[1]

    def _encode_more(self, y):
        Y = np.asarray(y, dtype=np.float32).reshape(len(y), -1)
        return (Y - self.y_mean_) / self.y_scale_

    def _loss(self, output, target):
        return F.mse_loss(output, target)

    def _target_tensor(self, targets, device):
        return torch.as_tensor(np.asarray(targets, dtype=np.float32), device=device)

    def predict(self, X) -> np.ndarray:
        Y = self._forward(X) * self.y_scale_ + self.y_mean_
        return Y.ravel().astype(np.float64) if self.y_ndim_ == 1 else Y.astype(np.float64)

    def _fitted_state(self):
        tensors, meta = super()._fitted_state()
        tensors["y_mean_"] = torch.from_numpy(self.y_mean_)
        tensors["y_scale_"] = torch.from_numpy(self.y_scale_)
        meta["y_ndim_"] = self.y_ndim_
        return tensors, meta

    def _restore_state(self, tensors, meta):
        super()._restore_state(tensors, meta)
        self.y_mean_ = tensors["y_mean_"].numpy()
        self.y_scale_ = tensors["y_scale_"].numpy()
        self.y_ndim_ = int(meta["y_ndim_"])

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

from deepatlas._validation import Boolean, Constraint, Interval, NonEmptyString, NoneOr, Options
from deepatlas.device import make_generator, resolve_device, seeded
from deepatlas.errors import InputError, InputTypeError
from deepatlas.estimator import Estimator
from deepatlas.training import Checkpoint, EarlyStopping, ProgressBar, TrainingLoop, distributed, make_optimizer
from deepatlas.training.callbacks import epoch_logger, restore_checkpoint
from deepatlas.training.loop import SCHEDULERS, make_scheduler


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


def is_torch_data(X) -> bool:
    """True for a torch ``Dataset`` or ``DataLoader``."""
    from torch.utils.data import DataLoader, Dataset

    return isinstance(X, (Dataset, DataLoader))


def _refuse_loader(X, owner: str, where: str = "") -> None:
    """A torch ``Dataset``/``DataLoader`` where arrays are expected: one line naming ``X``."""
    if is_torch_data(X):
        raise InputTypeError(
            f"X is a torch {type(X).__name__}, which {owner}{where} does not take (the MLP, CNN and other "
            "feature-array classifiers and regressors do); pass arrays, e.g. X, y = map(np.stack, zip(*dataset))."
        )


STATISTICS_SAMPLES = 10_000
"""How many samples of a torch Dataset/DataLoader the input statistics are computed from."""


class LoaderSource:
    """Training batches from a torch ``Dataset`` (batched and shuffled here, with the loop's
    seeded generator, so a resumed run draws the same order) or a ``DataLoader`` (used as it
    is: its own order), each batch standardised and encoded by the estimator on the way."""

    def __init__(self, data, estimator: TorchEstimator, device) -> None:
        self.data, self.est, self.device = data, estimator, device

    def __len__(self) -> int:  # samples per epoch
        from torch.utils.data import DataLoader

        return len(self.data.dataset) if isinstance(self.data, DataLoader) else len(self.data)

    def n_batches(self) -> int:
        from torch.utils.data import DataLoader

        if isinstance(self.data, DataLoader):
            return len(self.data)
        return -(-len(self.data) // self.est.batch_size)

    def batches(self, generator: torch.Generator):
        from torch.utils.data import DataLoader

        loader = self.data
        if not isinstance(loader, DataLoader):
            loader = DataLoader(loader, batch_size=self.est.batch_size, shuffle=True, generator=generator)
        est = self.est
        for item in loader:
            xb, yb = _pair(item)
            xb = np.asarray(xb, dtype=np.float32).reshape(len(xb), *est.input_shape_)
            yield (
                est._to_tensor(est._standardized(xb), self.device),
                est._target_tensor(est._encode_more(np.asarray(yb)), self.device),
            )


def _pair(item):
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise InputError(
            "each item of a torch Dataset (or batch of a DataLoader) passed as X must be a pair (x, y); "
            f"got {type(item).__name__}{f' of {len(item)}' if isinstance(item, (tuple, list)) else ''}."
        )
    return item


def _scan(data, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """One pass over a Dataset/DataLoader: every target, and the first samples for statistics."""
    from torch.utils.data import DataLoader

    loader = data if isinstance(data, DataLoader) else DataLoader(data, batch_size=max(batch_size, 256))
    xs, ys, n = [], [], 0
    for item in loader:
        xb, yb = _pair(item)
        ys.append(np.asarray(yb))
        if n < STATISTICS_SAMPLES:
            xs.append(np.asarray(xb))
            n += len(xs[-1])
    if not ys:
        raise InputError("X is an empty torch Dataset/DataLoader: no sample to train on.")
    return np.concatenate(xs)[:STATISTICS_SAMPLES], np.concatenate(ys)


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
    scheduler: str | None = None
    """Learning-rate schedule from ``torch.optim.lr_scheduler``: ``cosine`` (annealed to 0 over ``epochs``),
    ``step`` (times 0.1 after each third of the epochs), ``plateau`` (halved after 5 epochs without a better
    ``monitor`` score), ``onecycle`` (warm-up to 10x ``lr``, then annealing; stepped per batch); None keeps
    ``lr`` fixed. Its state is in the checkpoint, so ``--resume`` stays exact."""
    monitor: str | None = None
    """What early stopping (and the ``plateau`` schedule) watches: ``val_loss``, ``loss`` (the training loss)
    or a validation score the family logs (``val_accuracy`` for classifiers); a name with ``loss`` is
    minimised, any other maximised. None: the family's choice (classifiers ``val_accuracy``, others
    ``val_loss``)."""
    warm_start: bool = False
    """A second ``fit`` continues from the fitted network (and keeps its input statistics and classes)
    instead of starting afresh; the optimiser starts afresh."""
    log: str | None = None
    """Per-epoch log of losses, scores and the learning rate: ``csv`` (``log.csv``) or ``tensorboard``
    (event files with weight histograms too; needs the ``tensorboard`` extra), written to ``log_dir``."""
    log_dir: str | None = None
    """Folder of the ``log``: None means the run directory under ``deepatlas train`` (the checkpoint
    folder), else ``deepatlas-logs/<class name>``."""

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
        "scheduler": Options((None, *SCHEDULERS)),
        "monitor": NoneOr(NonEmptyString()),
        "warm_start": Boolean(),
        "log": Options((None, "csv", "tensorboard")),
        "log_dir": NoneOr(NonEmptyString()),
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

    def _sample_loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-sample losses (for ``sample_weight`` and ``class_weight``); None: not supported."""
        return None

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

    def _monitor_pair(self) -> tuple[str, str]:
        """``(name, "min"|"max")`` that early stopping watches: ``monitor`` or the family's choice."""
        if self.monitor is None:
            return self._monitor
        allowed = ["loss", "val_loss", *self._loop_kwargs().get("val_metrics", {})]
        if self.monitor not in allowed:
            raise InputError(
                f"The 'monitor' parameter of {type(self).__name__} must be one of "
                f"{', '.join(map(repr, allowed))}. Got {self.monitor!r} instead."
            )
        return self.monitor, "min" if "loss" in self.monitor else "max"

    @contextlib.contextmanager
    def _fitting(self, data: FitData, device):
        """Entered under the seed before the network is built and left after training: a family
        prepares there what the network starts from (a DBN pretrains its RBMs) or how it runs."""
        yield

    def _after_fit(self) -> None:
        """Called once training ends (e.g. a sequence model forgets its padded training length)."""

    # ---- fitting ----------------------------------------------------------------------------
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
        """Train on ``(X, y)``.

        Parameters
        ----------
        sample_weight : optional weight of each sample (non-negative); the batch loss is the mean
            of weight times loss (Keras's convention), so weights that average 1 keep ``lr``'s scale.
            Classifiers multiply it by their ``class_weight``. Validation scores are unweighted.
        validation_data : optional ``(X_val, y_val)``; otherwise, with ``early_stopping``, a
            stratified ``validation_fraction`` of ``X`` is held out.
        callbacks : extra :class:`~deepatlas.training.Callback` objects (e.g. tuner pruning).
        checkpoint_dir : write a checkpoint there after every epoch.
        resume : continue from the checkpoint in ``checkpoint_dir`` if there is one.
        """
        self._validate_params()
        loader = is_torch_data(X)
        if loader:
            data, weights, warm = self._prepare_loader(X, y, sample_weight, validation_data), None, None
        else:
            warm = self._warm_state()
            data = self._prepare_fit(X, y, validation_data)
            weights = self._sample_weights(sample_weight, data)
            if data.X_val is None and self.early_stopping and len(data.X) >= 20:
                data.X, data.targets, data.X_val, data.y_val, weights = self._holdout_weighted(data, weights)
            if warm is None:
                self._fit_statistics(data.X)
            else:
                data = self._continue_from(warm, data)
        self.n_outputs_ = data.n_outputs

        device = distributed.local_device(resolve_device(self.device))
        distributed.ensure_initialized(device)  # under torchrun: join the process group
        self.device_ = device
        # Everything random from here on (initial weights, dropout masks, batch order) is drawn
        # under the seed, without touching the caller's global RNG.
        with seeded(self.seed), self._fitting(data, device):
            if warm is None:
                module = self._build_module(self.input_shape_, data.n_outputs).to(device)
            else:
                module = warm["module_"].to(device)
            self.module_ = module
            if loader:
                source = LoaderSource(X, self, device)
                Xv, yv = self._fit_tensors(data, device)[2:] if data.X_val is not None else (None, None)
                tensors = (source, None, Xv, yv)
            else:
                tensors = self._fit_tensors(data, device)
            w = None if weights is None else torch.as_tensor(weights, dtype=torch.float32, device=device)
            loop = self._make_loop(
                module,
                callbacks,
                checkpoint_dir,
                has_validation=tensors[2] is not None,
                n_train=len(tensors[0]),
                n_batches=tensors[0].n_batches() if loader else None,
                weighted=w is not None,
            )
            if resume and checkpoint_dir is not None:
                restore_checkpoint(checkpoint_dir, loop)
            start = time.perf_counter()
            self.history_ = loop.run(*tensors, sample_weight=w)
            self.fit_seconds_ = time.perf_counter() - start
        self.n_epochs_ = len(self.history_)
        self.best_epoch_ = getattr(loop, "best_epoch", self.n_epochs_)
        self.stopped_early_ = bool(loop.stop_training)
        module.eval()
        self._after_fit()
        return self

    def _make_loop(
        self,
        module,
        callbacks=(),
        checkpoint_dir=None,
        *,
        has_validation: bool = True,
        n_train: int = 0,
        weighted: bool = False,
        n_batches: int | None = None,
    ) -> TrainingLoop:
        """The loop with the optimiser, its schedule and the default callbacks: early stopping when
        there is validation data (or it watches the training loss), then (on rank 0 only) the
        per-epoch log, a checkpoint per epoch and the progress bar."""
        opt = self._make_optimizer(module)
        monitor, mode = self._monitor_pair()
        cbs = list(callbacks)
        if self.early_stopping and (has_validation or not monitor.startswith("val_")):
            cbs.append(EarlyStopping(self.patience, monitor, mode))
        main = distributed.is_main_process()  # only rank 0 writes files and prints
        if self.log is not None and main:
            cbs.append(
                epoch_logger(self.log, self.log_dir or checkpoint_dir or f"deepatlas-logs/{type(self).__name__}")
            )
        if checkpoint_dir is not None and main:
            cbs.append(Checkpoint(checkpoint_dir))
        cbs.append(ProgressBar(type(self).__name__, enabled=(None if self.verbose else False) if main else False))
        loop_class = self._loop_class_for(module)
        if (weighted or self._custom_loss_needed()) and not loop_class.custom_loss:
            loop_class = TrainingLoop  # a hand-written step knows only the plain loss
        world = distributed.world_size()
        n_rank = n_train // world if world > 1 else n_train
        steps = n_batches or -(-n_rank // max(min(self.batch_size, max(n_rank, 1)), 1))
        scheduler, per_batch = make_scheduler(self.scheduler, opt, epochs=self.epochs, steps_per_epoch=steps, mode=mode)
        return loop_class(
            module,
            self._loss,
            opt,
            generator=make_generator(self.seed, "cpu"),
            callbacks=cbs,
            sample_loss_fn=self._sample_loss if weighted else None,
            scheduler=scheduler,
            scheduler_per_batch=per_batch,
            scheduler_monitor=monitor,
            **self._loop_kwargs(),
        )

    def _custom_loss_needed(self) -> bool:
        """True when the loss is not the family's plain one (multi-label targets)."""
        return False

    def _prepare_loader(self, X, y, sample_weight, validation_data) -> FitData:
        """Targets, input shape and statistics from one pass over a torch Dataset/DataLoader."""
        name = type(self).__name__
        if type(self)._prepare_fit is not TorchEstimator._prepare_fit:
            _refuse_loader(X, name)
        for what, given in (
            ("y", y is not None),
            ("sample_weight", sample_weight is not None),
            ("class_weight", getattr(self, "class_weight", None) is not None),
            ("warm_start", self.warm_start),
        ):
            if given:
                raise InputError(
                    f"{name}.fit on a torch {type(X).__name__} takes no {what} (its items are (x, y) pairs; "
                    "weights and warm starts need arrays)."
                )
        if distributed.world_size() > 1:
            raise InputError(f"{name}.fit on a torch {type(X).__name__} runs in one process (not under torchrun).")
        sample, targets = _scan(X, self.batch_size)
        data = self._prepare_fit(sample, targets[: len(sample)], validation_data)
        _, data.n_outputs = self._encode_targets(self._check_y(targets, len(targets)))  # every label
        if validation_data is not None:
            data.y_val = self._encode_more(self._check_y(validation_data[1], len(data.X_val)))
        self._fit_statistics(data.X)
        return data

    # ---- sample weights and warm start ------------------------------------------------------
    def _sample_weights(self, sample_weight, data: FitData) -> np.ndarray | None:
        """One float weight per training sample (``sample_weight`` times any class weight), or None."""
        name = type(self).__name__
        w = None
        if sample_weight is not None:
            try:
                w = np.asarray(sample_weight, dtype=np.float64)
            except (TypeError, ValueError):
                raise InputTypeError(f"sample_weight must hold numbers for {name}.") from None
            if w.ndim != 1 or len(w) != len(data.X):
                raise InputError(
                    f"sample_weight must be 1-D with one weight per sample ({len(data.X)}); got shape {w.shape}."
                )
            if not np.isfinite(w).all() or (w < 0).any() or not w.any():
                raise InputError("sample_weight must be finite and non-negative, and not all zero.")
        cw = self._class_weights(data)
        if cw is not None:
            w = cw if w is None else w * cw
        if w is None:
            return None
        if not self._supports_sample_weight():
            raise InputError(f"{name} does not support sample_weight (its loss is not a per-sample loss).")
        return w.astype(np.float32)

    def _supports_sample_weight(self) -> bool:
        return type(self)._sample_loss is not TorchEstimator._sample_loss

    def _class_weights(self, data: FitData) -> np.ndarray | None:
        """Per-sample weights from ``class_weight`` (classifiers), or None."""
        return None

    def _holdout_weighted(self, data: FitData, weights):
        if weights is None:
            return (*self._holdout(data.X, data.targets), None)
        # The same split as without weights: the weights follow their samples by index.
        tr, _, va, _ = self._holdout(np.arange(len(data.X)).reshape(-1, 1), data.targets)
        tr, va = tr.ravel(), va.ravel()
        return data.X[tr], data.targets[tr], data.X[va], data.targets[va], weights[tr]

    def _warm_state(self) -> dict | None:
        """With ``warm_start`` and a fitted model: what the next fit continues from."""
        if not self.warm_start or not hasattr(self, "module_"):
            return None
        keep = ("module_", "mean_", "scale_", "input_shape_", "n_features_in_", "n_outputs_", "classes_")
        keep += ("multilabel_", "y_mean_", "y_scale_", "y_ndim_")
        return {k: getattr(self, k) for k in keep if hasattr(self, k)}

    def _continue_from(self, warm: dict, data: FitData) -> FitData:
        """Check that the new data fits the warm network and keep the earlier statistics."""
        name = type(self).__name__
        problem = None
        if "classes_" in warm and not np.array_equal(np.asarray(self.classes_), np.asarray(warm["classes_"])):
            problem = (
                f"warm_start: the classes {np.asarray(self.classes_).tolist()} differ from the fitted ones "
                f"{np.asarray(warm['classes_']).tolist()}."
            )
        elif tuple(self.input_shape_) != tuple(warm["input_shape_"]) or data.n_outputs != warm["n_outputs_"]:
            problem = (
                f"warm_start: {name} was fitted on inputs of shape {tuple(warm['input_shape_'])} with "
                f"{warm['n_outputs_']} outputs; this data has shape {tuple(data.X.shape[1:])} and {data.n_outputs}."
            )
        if problem:
            for k, v in warm.items():  # the fitted model stays as it was
                setattr(self, k, v)
            raise InputError(problem)
        if "y_mean_" in warm:  # targets re-expressed in the first fit's units
            new_mean, new_scale = self.y_mean_, self.y_scale_

            def recode(t):
                return None if t is None else ((t * new_scale + new_mean - warm["y_mean_"]) / warm["y_scale_"])

            data.targets, data.y_val = recode(data.targets), recode(data.y_val)
        for k, v in warm.items():
            if k != "module_":
                setattr(self, k, v)
        return data

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
    """Number of correct arg-max predictions in a batch (the loop divides by the total); for
    multi-label targets (a float 0/1 matrix), the share of labels right in each sample, summed."""
    if target.is_floating_point():
        return ((output > 0) == (target > 0.5)).float().mean(dim=1).sum()
    return (output.argmax(dim=1) == target).sum()


def _label_correct(j: int):
    def correct(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ((output[:, j] > 0) == (target[:, j] > 0.5)).sum()

    return correct


class ClassWeight(Constraint):
    """``None``, ``"balanced"`` or a dict from class label to a non-negative weight."""

    description = "None, 'balanced' or a dict {class label: weight >= 0}"

    def accepts(self, value) -> bool:
        if value is None or value == "balanced":
            return True
        return isinstance(value, dict) and all(
            isinstance(w, (int, float)) and not isinstance(w, bool) and np.isfinite(w) and w >= 0
            for w in value.values()
        )


@dataclass(eq=False, repr=False, kw_only=True)
class SupervisedClassifier(ClassifierMixin, TorchEstimator):
    """Softmax classifier over any labels (ints, strings); ``classes_`` keeps them in order.

    A 0/1 indicator matrix ``y`` of shape (n_samples, n_labels) trains a multi-label classifier
    instead: one sigmoid output per label and binary cross-entropy; ``predict`` gives the 0/1
    matrix, ``predict_proba`` each label's probability, the history each label's validation
    accuracy (``val_accuracy_<j>``) and ``val_accuracy`` their mean.
    """

    class_weight: dict | str | None = None
    """Weight of each class in the loss: ``balanced`` gives class c the weight n_samples / (n_classes *
    count(c)) (scikit-learn's rule), a dict names a weight per class (others 1), None weighs all alike.
    Multiplies ``fit``'s ``sample_weight``."""

    _parameter_constraints: ClassVar[dict] = {"class_weight": ClassWeight()}
    _task: ClassVar[str] = "classification"
    # Validation loss starts rising (over-confidence) while accuracy still improves; stopping on
    # accuracy keeps the better model.
    _monitor: ClassVar[tuple[str, str]] = ("val_accuracy", "max")
    _val_metrics: ClassVar[dict] = {"val_accuracy": _correct}

    @property
    def _multilabel(self) -> bool:
        return bool(getattr(self, "multilabel_", False))

    def _encode_targets(self, y):
        from sklearn.utils.multiclass import type_of_target

        arr = np.asarray(y) if y is not None else None
        if arr is not None and arr.ndim == 2 and arr.shape[1] > 1 and type_of_target(arr) == "multilabel-indicator":
            self.multilabel_ = True
            self.classes_ = np.arange(arr.shape[1])
            return arr.astype(np.float32), arr.shape[1]
        self.multilabel_ = False
        y = check_class_labels(y, type(self).__name__)
        classes = np.unique(y)
        self.classes_ = classes
        return np.searchsorted(classes, y).astype(np.int64), len(classes)

    def _encode_more(self, y):
        if self._multilabel:
            y = np.asarray(y)
            if y.ndim != 2 or y.shape[1] != len(self.classes_):
                raise InputError(f"validation y must be a 0/1 matrix with {len(self.classes_)} columns; got {y.shape}.")
            return y.astype(np.float32)
        unknown = np.setdiff1d(np.unique(y), self.classes_)
        if len(unknown):
            raise InputError(f"validation labels {list(unknown)[:5]} do not occur in the training labels.")
        return np.searchsorted(self.classes_, y).astype(np.int64)

    def _class_weights(self, data: FitData) -> np.ndarray | None:
        if self.class_weight is None:
            return None
        if self._multilabel:
            raise InputError("The 'class_weight' parameter applies to single-label classes, not to a multi-label y.")
        counts = np.bincount(data.targets, minlength=len(self.classes_)).astype(np.float64)
        if self.class_weight == "balanced":
            per_class = len(data.targets) / (len(self.classes_) * np.maximum(counts, 1))
        else:
            known = {str(c): i for i, c in enumerate(self.classes_)}
            per_class = np.ones(len(self.classes_))
            for label, weight in self.class_weight.items():
                if str(label) not in known:
                    raise InputError(
                        f"The 'class_weight' parameter names class {label!r}, which is not in y "
                        f"(classes: {list(self.classes_)[:10]})."
                    )
                per_class[known[str(label)]] = float(weight)
        return per_class[data.targets]

    def _loop_kwargs(self) -> dict:
        kwargs = super()._loop_kwargs()
        if self._multilabel and len(self.classes_) <= 32:  # per-label validation accuracy
            kwargs["val_metrics"] = {
                **kwargs["val_metrics"],
                **{f"val_accuracy_{j}": _label_correct(j) for j in range(len(self.classes_))},
            }
        return kwargs

    def _custom_loss_needed(self) -> bool:
        return self._multilabel

    def _loss(self, output, target):
        if target.is_floating_point():
            return F.binary_cross_entropy_with_logits(output, target)
        return F.cross_entropy(output, target)

    def _sample_loss(self, output, target):
        if target.is_floating_point():
            return F.binary_cross_entropy_with_logits(output, target, reduction="none").mean(dim=1)
        return F.cross_entropy(output, target, reduction="none")

    def _target_tensor(self, targets, device):
        dtype = torch.float32 if self._multilabel else torch.long
        return torch.as_tensor(targets, dtype=dtype, device=device)

    def decision_function(self, X) -> np.ndarray:
        logits = self._forward(X)
        if self._multilabel:
            return logits
        return logits[:, 1] - logits[:, 0] if logits.shape[1] == 2 else logits

    def predict_proba(self, X) -> np.ndarray:
        logits = torch.from_numpy(self._forward(X)).double()  # rows sum to 1 in float64
        if self._multilabel:
            return torch.sigmoid(logits).numpy()
        return torch.softmax(logits, dim=1).numpy()

    def predict_log_proba(self, X) -> np.ndarray:
        logits = torch.from_numpy(self._forward(X))
        if self._multilabel:
            return F.logsigmoid(logits).numpy().astype(np.float64)
        return torch.log_softmax(logits, dim=1).numpy().astype(np.float64)

    def predict(self, X) -> np.ndarray:
        scores = self._forward(X)  # checks fitted state first
        if self._multilabel:
            return (scores > 0).astype(np.int64)
        return self.classes_[scores.argmax(axis=1)]

    def _fitted_state(self):
        tensors, meta = super()._fitted_state()
        meta["classes_"] = self.classes_.tolist()
        if self._multilabel:
            meta["multilabel_"] = True
        return tensors, meta

    def _restore_state(self, tensors, meta):
        super()._restore_state(tensors, meta)
        self.classes_ = np.array(meta["classes_"])
        self.multilabel_ = bool(meta.get("multilabel_", False))


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

    def _sample_loss(self, output, target):
        return F.mse_loss(output, target, reduction="none").flatten(1).mean(dim=1)

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


class TokenInput:
    """Mixin for estimators whose inputs are integer token (character, word or id) indices.

    Token ids are never standardised: ``mean_``/``scale_`` are a single zero and one (kept so that
    saving and export find the same attributes as on every other estimator), ``_standardized`` is
    the identity, and the tensors handed to the network are ``long``. Put it before the estimator
    base in the class's bases so these overrides win.
    """

    def _fit_statistics(self, X) -> None:
        self.mean_ = np.zeros(1, np.float32)
        self.scale_ = np.ones(1, np.float32)

    def _standardized(self, X):
        return X

    @staticmethod
    def _to_tensor(X, device) -> torch.Tensor:
        return torch.as_tensor(X, dtype=torch.long, device=device)

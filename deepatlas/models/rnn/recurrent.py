"""Recurrent networks for sequences: a classifier, a regressor and a tagger (one label per step).

``cell`` picks the recurrence: ``"rnn"`` (tanh; Elman, 1990), ``"gru"`` (Cho et al., 2014),
``"lstm"`` (Hochreiter & Schmidhuber, 1997) — torch's fused ``nn.RNN``/``nn.GRU``/``nn.LSTM`` — or
``"peephole-lstm"`` (Gers & Schmidhuber, 2000; our own cell, see :mod:`deepatlas.models.rnn.cells`).
``bidirectional=True`` reads each sequence both ways (Schuster & Paliwal, 1997). Training
clips the gradient norm (``clip_norm``; Pascanu, Mikolov & Bengio, 2013, "On the difficulty of
training recurrent neural networks"), which keeps the tanh RNN from exploding.

Input: an array ``(n, T, features)``, an array ``(n, T)`` read as one feature per step (so
``mnist1d`` is a sequence of 40 values), or a list of ``(T_i, features)`` arrays of different
lengths. Ragged batches are padded; a mask channel carries the lengths into the network, which
packs them for the fused cells. Standardisation is per feature, over all steps, from the training
data only.

Registry names ``rnn``, ``gru``, ``lstm``, ``peephole-lstm`` and ``bilstm`` each stand for a
classifier, a regressor and a tagger; the dataset's task picks one, so
``deepatlas train lstm --data adding:T=200`` trains an :class:`RNNRegressor` with ``cell="lstm"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from deepatlas._validation import Boolean, Interval, NoneOr, Options
from deepatlas.errors import InputError
from deepatlas.models.base import (
    FitData,
    SupervisedClassifier,
    SupervisedRegressor,
    TorchEstimator,
    check_features,
    column_statistics,
)
from deepatlas.models.rnn.cells import CELLS, RecurrentEncoder
from deepatlas.registry import register_model

IGNORE = -100  # label of padded steps; cross-entropy skips it


# ---- input handling -----------------------------------------------------------------------------
def _is_text(X) -> bool:
    if isinstance(X, str):
        return True
    if isinstance(X, np.ndarray):
        return X.dtype.kind in "US" or (X.dtype == object and X.size > 0 and isinstance(X.flat[0], str))
    return isinstance(X, (list, tuple)) and len(X) > 0 and isinstance(X[0], str)


def as_sequences(X, owner: str) -> tuple[np.ndarray, np.ndarray | None]:
    """``(padded (n, T, F) float32, lengths (n,) or None)``; ``None`` means all have length T."""
    if _is_text(X):
        raise InputError(
            f"{owner} takes numeric sequences, but X holds text; train the 'text-rnn' model on text "
            "(deepatlas train text-rnn --data FILE.csv --text COLUMN)."
        )
    if isinstance(X, (list, tuple)) or (isinstance(X, np.ndarray) and X.dtype == object):
        seqs = [np.asarray(s) for s in X]
        if len(seqs) == 0:
            raise InputError("X has 0 sequences; at least 1 is required.")
        if len({s.shape for s in seqs}) > 1 or any(s.dtype == object for s in seqs):
            return _pad_ragged(seqs)
        X = np.stack(seqs)
    arr = np.asarray(X)
    if arr.ndim in (2, 3) and arr.shape[0] > 0 and arr.shape[1] == 0:
        raise InputError(f"X holds empty sequences (shape {arr.shape}); every sequence needs at least one step.")
    arr = check_features(arr, owner)
    if arr.ndim == 2:
        arr = arr[:, :, None]  # (n, T) -> (n, T, 1): one value per step
    if arr.ndim != 3:
        raise InputError(
            f"{owner} expects sequences of shape (n, steps) or (n, steps, features). Got shape {arr.shape} instead."
        )
    return arr, None


def _pad_ragged(seqs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    width = None
    rows = []
    for i, s in enumerate(seqs):
        try:
            s = np.asarray(s, dtype=np.float32)
        except (TypeError, ValueError):
            raise InputError(f"Sequence {i} of X must hold numbers.") from None
        if s.ndim == 1:
            s = s[:, None]
        if s.ndim != 2:
            raise InputError(f"Sequence {i} of X has shape {s.shape}; each must be (steps,) or (steps, features).")
        if len(s) == 0:
            raise InputError(f"Sequence {i} of X is empty (0 steps); every sequence needs at least one step.")
        if width is None:
            width = s.shape[1]
        elif s.shape[1] != width:
            raise InputError(
                f"Sequence {i} of X has {s.shape[1]} features per step, but sequence 0 has {width}; "
                "all sequences need the same feature size."
            )
        if not np.isfinite(s).all():
            raise InputError(f"Sequence {i} of X contains NaN or inf values.")
        rows.append(s)
    lengths = np.array([len(s) for s in rows], dtype=np.int64)
    padded = np.zeros((len(rows), int(lengths.max()), width), dtype=np.float32)
    for i, s in enumerate(rows):
        padded[i, : len(s)] = s
    return padded, lengths


def _steps(padded: np.ndarray, lengths: np.ndarray | None) -> np.ndarray:
    return np.full(len(padded), padded.shape[1]) if lengths is None else lengths


def _with_mask(padded: np.ndarray, lengths: np.ndarray | None, T: int) -> np.ndarray:
    """(n, T_x, F) -> (n, T, F + 1): zero-padded to T, last channel 1 on real steps."""
    n, T_x, n_feat = padded.shape
    out = np.zeros((n, T, n_feat + 1), dtype=np.float32)
    out[:, :T_x, :n_feat] = padded
    lengths = np.full(n, T_x) if lengths is None else lengths
    out[:, :, n_feat] = np.arange(T)[None, :] < lengths[:, None]
    return out


# ---- network ------------------------------------------------------------------------------------
class SequenceNet(nn.Module):
    """Recurrent encoder and a linear head: (B, T, F[+1]) -> (B, n_out), or (B, T, n_out) per step.

    With ``masked`` the last input channel marks real steps; the lengths come from its sum."""

    def __init__(self, n_features: int, n_outputs: int, *, masked: bool, per_step: bool, dropout: float, **rnn):
        super().__init__()
        self.masked, self.per_step = masked, per_step
        self.encoder = RecurrentEncoder(n_features, dropout=dropout, **rnn)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Linear(self.encoder.output_size, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lengths = None
        if self.masked:
            lengths = x[..., -1].sum(1).long()  # (B,)
            x = x[..., :-1]
        out, last = self.encoder(x, lengths)  # (B, T, D*H), (B, D*H)
        return self.head(self.drop(out if self.per_step else last))


# ---- the shared estimator part ------------------------------------------------------------------
@dataclass(eq=False, repr=False, kw_only=True)
class _RNNMixin:
    """Sequence input, per-feature standardisation, the recurrent network and clipping."""

    cell: str = "rnn"
    """The recurrence: ``rnn`` (tanh), ``gru``, ``lstm`` (torch's fused cells) or ``peephole-lstm`` (an LSTM
    whose gates also read the cell state)."""
    hidden_size: int = 64
    """Units in each recurrent layer, per direction."""
    num_layers: int = 1
    """Recurrent layers stacked on each other; each reads the outputs of the one below."""
    bidirectional: bool = False
    """Also read every sequence backwards and join both directions' states (twice the features for the output
    layer)."""
    dropout: float = 0.0
    """Dropout rate between stacked recurrent layers (when ``num_layers > 1``) and on the features that reach
    the output layer."""
    clip_norm: float | None = 1.0
    """Rescale the gradients before each step so their global norm is at most this value (keeps the tanh RNN
    from exploding); ``None`` does not clip."""
    lr: float = 3e-3
    patience: int = 20  # long plateaus (the adding problem) end in a sudden drop

    _parameter_constraints: ClassVar[dict] = {
        "cell": Options(CELLS),
        "hidden_size": Interval(int, 1, None),
        "num_layers": Interval(int, 1, None),
        "bidirectional": Boolean(),
        "dropout": Interval(float, 0, 1, "left"),
        "clip_norm": NoneOr(Interval(float, 0, None, "neither")),
    }
    _per_step: ClassVar[bool] = False
    _input_kind: ClassVar[str] = "sequences"  # how `deepatlas predict` reads a file (deepatlas/predict.py)

    def _build_module(self, sample_shape, n_outputs):
        return SequenceNet(
            self.n_features_in_,
            n_outputs,
            masked=self.masked_,
            per_step=self._per_step,
            dropout=self.dropout,
            cell=self.cell,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            bidirectional=self.bidirectional,
        )

    # -- targets of a tagger are sequences too; other tasks leave them as they are
    def _align_targets(self, targets, steps, T):
        """Targets matched to sequences of ``steps`` (n,) real steps, padded to ``T``."""
        return targets

    def _prepare_fit(self, X, y, validation_data) -> FitData:
        """Sequences padded to one length (with a mask channel once lengths differ) and targets
        aligned to them."""
        name = type(self).__name__
        X, lengths = as_sequences(X, name)
        targets, n_outputs = self._encode_targets(self._check_y(y, len(X)))
        Xv = lv = yv = None
        if validation_data is not None:
            Xv, lv = as_sequences(validation_data[0], name)
            if Xv.shape[2] != X.shape[2]:
                raise InputError(
                    f"Validation X has {Xv.shape[2]} features per step, but the training X has {X.shape[2]}."
                )
            yv = self._encode_more(self._check_y(validation_data[1], len(Xv)))
        # One padded length for training and validation; a mask is needed once lengths differ.
        T = max(X.shape[1], Xv.shape[1] if Xv is not None else 0)
        self.masked_ = lengths is not None or lv is not None or (Xv is not None and Xv.shape[1] != X.shape[1])
        self.n_features_in_ = int(X.shape[2])
        targets = self._align_targets(targets, _steps(X, lengths), T)
        X = _with_mask(X, lengths, T) if self.masked_ else X
        if Xv is not None:
            yv = self._align_targets(yv, _steps(Xv, lv), T)
            Xv = _with_mask(Xv, lv, T) if self.masked_ else Xv
        self.input_shape_ = tuple(X.shape[1:])  # the padded shape, while training
        return FitData(X, targets, Xv, yv, n_outputs)

    def _after_fit(self) -> None:
        self.input_shape_ = (self.n_features_in_,)  # any length works from now on

    def _fit_statistics(self, X: np.ndarray) -> None:
        n_feat = self.n_features_in_
        if not self.standardize:
            self.mean_, self.scale_ = np.zeros(n_feat, np.float32), np.ones(n_feat, np.float32)
            return
        values = X[..., :n_feat].reshape(-1, n_feat)
        if self.masked_:
            values = values[X[..., -1].reshape(-1) > 0]  # real steps only
        self.mean_, self.scale_ = column_statistics(values)

    def _standardized(self, X: np.ndarray) -> np.ndarray:
        n_feat = self.n_features_in_
        out = X.astype(np.float32, copy=True)
        out[..., :n_feat] = (X[..., :n_feat] - self.mean_) / self.scale_
        if X.shape[-1] > n_feat:  # keep padded steps at zero
            out[..., :n_feat] *= X[..., n_feat:]
        return out

    @torch.no_grad()
    def _run(self, X, batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray | None]:
        """Network outputs for ``X`` and the sequence lengths (``None`` when all are equal).

        An unmasked network (trained on equal lengths) reads a ragged batch one length at a time."""
        self._check_fitted()
        name = type(self).__name__
        padded, lengths = as_sequences(X, name)
        if padded.shape[2] != self.n_features_in_:
            raise InputError(
                f"X has {padded.shape[2]} features per step, but {name} was trained on {self.n_features_in_}."
            )
        self.module_.eval()
        device = next(self.module_.parameters()).device
        if self.masked_:
            groups = [(np.arange(len(padded)), _with_mask(padded, lengths, padded.shape[1]))]
        elif lengths is None:
            groups = [(np.arange(len(padded)), padded)]
        else:
            groups = [(idx, padded[idx, :L]) for L in np.unique(lengths) for idx in [np.flatnonzero(lengths == L)]]
        result = None
        for idx, xs in groups:
            xs = self._standardized(xs)
            chunks = [
                self.module_(self._to_tensor(xs[i : i + batch_size], device)) for i in range(0, len(xs), batch_size)
            ]
            out = torch.cat(chunks).float().cpu().numpy()  # (b, n_out) or (b, T_group, n_out)
            if result is None:  # per step: padded to the longest sequence
                shape = (len(padded), padded.shape[1], out.shape[2]) if self._per_step else (len(padded), out.shape[1])
                result = np.zeros(shape, np.float32)
            if self._per_step:
                result[idx, : out.shape[1]] = out
            else:
                result[idx] = out
        return result, lengths

    def _forward(self, X, batch_size: int = 1024) -> np.ndarray:
        return self._run(X, batch_size)[0]

    def _check_input(self, X):
        return as_sequences(X, type(self).__name__)[0]

    def _fitted_state(self):
        tensors, meta = super()._fitted_state()
        meta["masked_"] = bool(self.masked_)
        return tensors, meta

    def _restore_state(self, tensors, meta):
        self.masked_ = bool(meta["masked_"])
        super()._restore_state(tensors, meta)


# ---- the three estimators -------------------------------------------------------------------------
@dataclass(eq=False, repr=False, kw_only=True)
class RNNClassifier(_RNNMixin, SupervisedClassifier):
    """Recurrent sequence classifier: the final state(s) of the top layer feed a softmax.

    >>> from deepatlas.data import load_dataset
    >>> ds = load_dataset("mnist1d")
    >>> RNNClassifier(cell="gru", epochs=3).fit(ds.X_train, ds.y_train).score(ds.X_test, ds.y_test) > 0.2
    True
    """


@dataclass(eq=False, repr=False, kw_only=True)
class RNNRegressor(_RNNMixin, SupervisedRegressor):
    """Recurrent sequence regressor (mean squared error on standardised targets).

    >>> from deepatlas.data import load_dataset
    >>> ds = load_dataset("adding:T=20,n=2000")
    >>> RNNRegressor(cell="lstm", epochs=2).fit(ds.X_train, ds.y_train).predict(ds.X_test).shape
    (400,)
    """


def _step_accuracy(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sum over the batch of each sequence's share of correctly labelled real steps."""
    valid = target != IGNORE
    correct = ((output.argmax(-1) == target) & valid).sum(1).float()
    return (correct / valid.sum(1).clamp(min=1)).sum()


@dataclass(eq=False, repr=False, kw_only=True)
class SequenceTagger(_RNNMixin, TorchEstimator):
    """One label per step: ``y`` is ``(n, T)`` (or a list of label sequences matching ``X``).

    ``predict`` returns an ``(n, T)`` array, or a list of arrays when the lengths differ;
    ``score`` is the share of correctly labelled steps.
    """

    _task: ClassVar[str] = "tagging"
    _per_step: ClassVar[bool] = True
    _monitor: ClassVar[tuple[str, str]] = ("val_accuracy", "max")
    _val_metrics: ClassVar[dict] = {"val_accuracy": _step_accuracy}

    def _check_y(self, y, n):
        if y is None:
            raise InputError(f"{type(self).__name__} requires y to be passed, but the target y is None.")
        if isinstance(y, np.ndarray) and y.dtype != object:
            if y.ndim != 2:
                raise InputError(
                    f"y must hold one label per step, shape (n, steps), for {type(self).__name__}. "
                    f"Got shape {y.shape} instead."
                )
            seqs = list(y)
        else:
            seqs = [np.asarray(s).ravel() for s in y]
        if len(seqs) != n:
            raise InputError(f"X and y have inconsistent numbers of samples: X has {n}, y has {len(seqs)}.")
        return seqs

    def _encode_targets(self, seqs):
        flat = np.concatenate(seqs)
        classes = np.unique(flat)
        if len(classes) < 2:
            raise InputError(f"{type(self).__name__} needs at least 2 step labels in y; got 1 ({classes[0]!r}).")
        self.classes_ = classes
        return self._encode_more(seqs), len(classes)

    def _encode_more(self, seqs):
        unknown = np.setdiff1d(np.unique(np.concatenate(seqs)), self.classes_)
        if len(unknown):
            raise InputError(f"validation labels {list(unknown)[:5]} do not occur in the training labels.")
        T = max(len(s) for s in seqs)
        out = np.full((len(seqs), T), IGNORE, dtype=np.int64)
        for i, s in enumerate(seqs):
            out[i, : len(s)] = np.searchsorted(self.classes_, s)
        return out

    def _align_targets(self, targets, steps, T):
        real = (targets != IGNORE).sum(1)
        bad = np.flatnonzero(real != steps)
        if len(bad):
            i = int(bad[0])
            raise InputError(f"y[{i}] has {int(real[i])} labels, but sequence {i} of X has {int(steps[i])} steps.")
        out = np.full((len(targets), T), IGNORE, dtype=np.int64)
        out[:, : targets.shape[1]] = targets
        return out

    def _loss(self, output, target):
        return F.cross_entropy(output.transpose(1, 2), target, ignore_index=IGNORE)  # (B, C, T) vs (B, T)

    def _target_tensor(self, targets, device):
        return torch.as_tensor(targets, dtype=torch.long, device=device)

    def predict_proba(self, X):
        logits, lengths = self._run(X)
        proba = torch.softmax(torch.from_numpy(logits), dim=-1).numpy().astype(np.float64)
        return proba if lengths is None else [p[:L] for p, L in zip(proba, lengths)]

    def predict(self, X):
        logits, lengths = self._run(X)
        labels = self.classes_[logits.argmax(-1)]  # (n, T)
        return labels if lengths is None else [row[:L] for row, L in zip(labels, lengths)]

    def score(self, X, y) -> float:
        """Share of correctly labelled steps."""
        pred = self.predict(X)
        return float(np.mean(np.concatenate([np.asarray(p) == np.asarray(t) for p, t in zip(pred, y)])))

    def dataset_metrics(self, ds) -> dict[str, float]:
        out = {}
        for split_name, X, y in (
            ("train", ds.X_train, ds.y_train),
            ("val", ds.X_val, ds.y_val),
            ("test", ds.X_test, ds.y_test),
        ):
            pred = self.predict(X)
            hits = [np.asarray(p) == np.asarray(t) for p, t in zip(pred, y)]
            out[f"{split_name}_accuracy"] = float(np.mean(np.concatenate(hits)))
            out[f"{split_name}_sequence_accuracy"] = float(np.mean([h.all() for h in hits]))
        return out

    def _fitted_state(self):
        tensors, meta = super()._fitted_state()
        meta["classes_"] = self.classes_.tolist()
        return tensors, meta

    def _restore_state(self, tensors, meta):
        super()._restore_state(tensors, meta)
        self.classes_ = np.array(meta["classes_"])


# ---- registered variants: one name, three tasks ------------------------------------------------------
_VARIANTS = {
    "rnn": ({}, "tanh (Elman) recurrent network"),
    "gru": ({"cell": "gru"}, "gated recurrent unit network (fused nn.GRU)"),
    "lstm": ({"cell": "lstm"}, "long short-term memory network (fused nn.LSTM)"),
    "peephole-lstm": ({"cell": "peephole-lstm"}, "LSTM with peephole connections (Gers & Schmidhuber, 2000)"),
    "bilstm": ({"cell": "lstm", "bidirectional": True}, "bidirectional LSTM (reads each sequence both ways)"),
}
# A variant is the same estimator with other defaults: `create_model("gru")` is `RNNClassifier(cell="gru")`.
_SMOKE = {"hidden_size": 8, "epochs": 2}
for _name, (_defaults, _description) in _VARIANTS.items():
    register_model(
        _name,
        task="classification",
        description=_description,
        defaults=_defaults,
        smoke={"data": "mnist1d", "params": _SMOKE},
    )(RNNClassifier)
    register_model(_name, task="regression", defaults=_defaults, smoke={"data": "adding:T=5,n=60", "params": _SMOKE})(
        RNNRegressor
    )
    register_model(_name, task="tagging", defaults=_defaults, smoke={"data": "copy:T=3,n=60", "params": _SMOKE})(
        SequenceTagger
    )

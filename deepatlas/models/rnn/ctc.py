"""Unsegmented sequence transcription with Connectionist Temporal Classification.

A (bidirectional) recurrent network emits, at every step, a distribution over the alphabet plus a
"blank". CTC (Graves, Fernández, Gomez & Schmidhuber, 2006, "Connectionist temporal
classification: labelling unsegmented sequence data with recurrent neural networks") sums the
probability of every alignment that collapses — merge repeats, then drop blanks — to the target
string, so training needs only the string, not where each character sits. Decoding is greedy
(best path) or prefix beam search (Graves, 2012, "Supervised sequence labelling with recurrent
neural networks", ch. 7; Hannun et al., 2014, "First-pass large vocabulary continuous speech
recognition using bi-directional recurrent DNNs").

Padded steps of a ragged batch are forced to emit blank with probability 1: an alignment that
ends in blanks collapses to the same string, so the CTC probability of each sequence is exactly
its unpadded one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch.nn import functional as F

from deepatlas._validation import Interval, NonEmptyString, NoneOr, Options
from deepatlas.errors import InputError
from deepatlas.models.base import TorchEstimator
from deepatlas.models.rnn.recurrent import SequenceNet, _RNNMixin
from deepatlas.registry import register_model

BLANK = 0


class CTCNet(SequenceNet):
    """(B, T, F[+mask]) -> per-step log-probabilities (B, T, 1 + alphabet); index 0 is the blank."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = super().forward(x)  # (B, T, C)
        if self.masked:  # padded steps: blank with probability 1
            pad = (x[..., -1] == 0).unsqueeze(-1)  # (B, T, 1)
            blank_only = torch.full_like(logits, -1e4)
            blank_only[..., BLANK] = 0.0
            logits = torch.where(pad, blank_only, logits)
        return logits.log_softmax(-1)


def greedy_paths(log_probs: torch.Tensor) -> torch.Tensor:
    """Best-path decoding: (B, T, C) -> (B, T) label indices, left-aligned and zero-padded."""
    best = log_probs.argmax(-1)  # (B, T)
    prev = F.pad(best, (1, 0), value=BLANK)[:, :-1]
    keep = (best != BLANK) & (best != prev)  # a new non-blank symbol starts here
    T = best.shape[1]
    pos = torch.where(keep, keep.long().cumsum(1) - 1, torch.full_like(best, T))  # dropped ones -> column T
    out = torch.zeros(best.shape[0], T + 1, dtype=best.dtype, device=best.device)
    out.scatter_(1, pos, torch.where(keep, best, torch.zeros_like(best)))
    return out[:, :T]


def _string_correct(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Number of sequences whose greedy transcription equals the target exactly."""
    decoded = greedy_paths(output)  # (B, T)
    T, S = decoded.shape[1], target.shape[1]
    target = F.pad(target, (0, T - S)) if T >= S else target[:, :T]
    return (decoded == target).all(1).sum()


def _logsumexp(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    m = max(a, b)
    return m + math.log(math.exp(a - m) + math.exp(b - m))


def _adder(beams: dict):
    """``add(prefix, blank=, symbol=)``: accumulate log-probabilities of a prefix in ``beams``."""

    def add(prefix, blank=-math.inf, symbol=-math.inf):
        b, s = beams.get(prefix, (-math.inf, -math.inf))
        beams[prefix] = (_logsumexp(b, blank), _logsumexp(s, symbol))

    return add


def prefix_beam_search(log_probs: np.ndarray, beam_width: int = 8) -> tuple[int, ...]:
    """The most probable labelling of one sequence's (T, C) log-probabilities under CTC, searched
    over prefixes; each prefix keeps the log-probability of ending in a blank and in a symbol."""
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, -math.inf)}  # prefix -> (blank, symbol)
    n_classes = log_probs.shape[1]
    for t in range(len(log_probs)):
        lp = log_probs[t]
        nxt: dict[tuple[int, ...], tuple[float, float]] = {}
        add = _adder(nxt)

        # Only symbols with a real chance can change the ranking; skip the rest.
        candidates = [c for c in range(n_classes) if c != BLANK and lp[c] > -12.0]
        for prefix, (p_b, p_s) in beams.items():
            total = _logsumexp(p_b, p_s)
            add(prefix, blank=total + lp[BLANK])
            for c in candidates:
                if prefix and prefix[-1] == c:
                    add(prefix, symbol=p_s + lp[c])  # a repeat without a blank merges
                    add(prefix + (c,), symbol=p_b + lp[c])  # a blank between keeps both
                else:
                    add(prefix + (c,), symbol=total + lp[c])
        beams = dict(sorted(nxt.items(), key=lambda kv: -_logsumexp(*kv[1]))[:beam_width])
    return max(beams.items(), key=lambda kv: _logsumexp(*kv[1]))[0]


def edit_distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


@register_model(
    "lstm-ctc",
    task="sequence",
    description="bidirectional LSTM trained with CTC (Graves et al., 2006)",
    smoke={"data": "digit-strings:n=60", "params": {"hidden_size": 8, "epochs": 2}},
)
@dataclass(eq=False, repr=False, kw_only=True)
class CTCRecognizer(_RNNMixin, TorchEstimator):
    """Transcribe sequences (e.g. images read column by column) into strings with CTC.

    ``X``: ``(n, T, features)`` or a list of ``(T_i, features)`` arrays; ``y``: strings.
    ``alphabet``: the allowed characters (default: those in the training labels).
    ``decoder``: ``"greedy"`` (best path) or ``"beam"`` (prefix beam search of ``beam_width``).

    >>> from deepatlas.data import load_dataset
    >>> ds = load_dataset("digit-strings:n=300")
    >>> CTCRecognizer(epochs=1).fit(ds.X_train, ds.y_train).predict(ds.X_test[:2]).shape
    (2,)
    """

    cell: str = "lstm"  # the fields below the mixin's (deepatlas/models/rnn/recurrent.py) change defaults only
    hidden_size: int = 128
    bidirectional: bool = True
    alphabet: str | None = None
    """The characters the model can write, in a fixed order; ``None`` takes those found in the training
    labels."""
    decoder: str = "greedy"
    """How per-step outputs become a string: ``greedy`` keeps the likeliest symbol of each step (best path);
    ``beam`` runs a prefix beam search."""
    beam_width: int = 8
    """Prefixes the beam decoder keeps at each step."""
    epochs: int = 60
    patience: int = 10  # the shared loop's default (the mixin's 20 is for the adding problem's plateaus)

    _parameter_constraints: ClassVar[dict] = {
        "alphabet": NoneOr(NonEmptyString()),
        "decoder": Options(("greedy", "beam")),
        "beam_width": Interval(int, 1, None),
    }
    _task: ClassVar[str] = "sequence"
    _per_step: ClassVar[bool] = True
    _monitor: ClassVar[tuple[str, str]] = ("val_string_accuracy", "max")
    _val_metrics: ClassVar[dict] = {"val_string_accuracy": _string_correct}

    _net_class: ClassVar[type[torch.nn.Module]] = CTCNet
    """The network :meth:`_build_module` makes; a subclass may swap in a :class:`CTCNet` subclass."""

    def _net_kwargs(self) -> dict:
        """Extra keyword arguments for :attr:`_net_class` (none here)."""
        return {}

    def _build_module(self, sample_shape, n_outputs):
        return self._net_class(
            self.n_features_in_,
            n_outputs,
            masked=self.masked_,
            per_step=True,
            dropout=self.dropout,
            cell=self.cell,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            bidirectional=self.bidirectional,
            **self._net_kwargs(),
        )

    # ---- targets: strings -> (n, S) indices into the alphabet, 1-based, 0-padded
    def _check_y(self, y, n):
        if y is None:
            raise InputError(f"{type(self).__name__} requires y to be passed, but the target y is None.")
        labels = [
            str(v) if isinstance(v, (int, np.integer)) else v for v in (y.tolist() if hasattr(y, "tolist") else y)
        ]
        for i, v in enumerate(labels):
            if not isinstance(v, str):
                raise InputError(f"y must hold strings (transcriptions) for {type(self).__name__}; y[{i}] is {v!r}.")
        if len(labels) != n:
            raise InputError(f"X and y have inconsistent numbers of samples: X has {n}, y has {len(labels)}.")
        return labels

    def _encode_targets(self, labels):
        if self.alphabet is not None and (not isinstance(self.alphabet, str) or not self.alphabet):
            raise InputError(
                f"The 'alphabet' parameter of {type(self).__name__} must be None or a non-empty str. "
                f"Got {self.alphabet!r} instead."
            )
        self.alphabet_ = self.alphabet if self.alphabet is not None else "".join(sorted(set("".join(labels))))
        if not self.alphabet_:
            raise InputError("y holds only empty strings; there is nothing to transcribe.")
        return self._encode_more(labels), len(self.alphabet_) + 1  # + the blank

    def _encode_more(self, labels):
        index = {ch: k + 1 for k, ch in enumerate(self.alphabet_)}
        out = np.zeros((len(labels), max(1, max(len(s) for s in labels))), dtype=np.int64)
        for i, s in enumerate(labels):
            for j, ch in enumerate(s):
                if ch not in index:
                    raise InputError(f"y[{i}] = {s!r} has {ch!r}, which is not in the alphabet {self.alphabet_!r}.")
                out[i, j] = index[ch]
        return out

    def _align_targets(self, targets, steps, T):
        repeats = ((targets[:, 1:] == targets[:, :-1]) & (targets[:, 1:] > 0)).sum(1)  # each needs a blank between
        needed = (targets > 0).sum(1) + repeats
        bad = np.flatnonzero(needed > steps)
        if len(bad):
            i = int(bad[0])
            raise InputError(
                f"y[{i}] needs at least {int(needed[i])} steps for CTC, but sequence {i} of X has {int(steps[i])}."
            )
        return targets

    def _loss(self, output, target):
        B, T, _ = output.shape
        target_lengths = (target > 0).sum(1)
        input_lengths = torch.full((B,), T, dtype=torch.long, device=output.device)
        return F.ctc_loss(
            output.transpose(0, 1), target, input_lengths, target_lengths, blank=BLANK, zero_infinity=True
        )  # (T, B, C) log-probs

    def _target_tensor(self, targets, device):
        return torch.as_tensor(targets, dtype=torch.long, device=device)

    # ---- inference
    def predict_log_proba(self, X):
        """Per-step log-probabilities ``(n, T, 1 + len(alphabet_))``; column 0 is the blank."""
        return self._run(X)[0]

    def predict(self, X, *, decoder: str | None = None) -> np.ndarray:
        decoder = decoder or self.decoder
        if decoder not in ("greedy", "beam"):
            raise InputError(f"decoder must be 'greedy' or 'beam'. Got {decoder!r} instead.")
        log_probs, lengths = self._run(X)
        steps = _steps_of(log_probs, lengths)
        if decoder == "greedy":
            paths = greedy_paths(torch.from_numpy(log_probs)).numpy()
            return np.array(["".join(self.alphabet_[k - 1] for k in row if k) for row in paths], dtype=object)
        out = []
        for lp, L in zip(log_probs, steps):
            out.append("".join(self.alphabet_[k - 1] for k in prefix_beam_search(lp[:L], self.beam_width)))
        return np.array(out, dtype=object)

    def score(self, X, y) -> float:
        """Whole-string accuracy."""
        return float(np.mean(self.predict(X) == np.asarray(self._check_y(y, len(y)), dtype=object)))

    def dataset_metrics(self, ds) -> dict[str, float]:
        out = {}
        for split_name, X, y in (("val", ds.X_val, ds.y_val), ("test", ds.X_test, ds.y_test)):
            pred = self.predict(X)
            truth = [str(s) for s in y]
            out[f"{split_name}_string_accuracy"] = float(np.mean([p == t for p, t in zip(pred, truth)]))
            errors = sum(edit_distance(p, t) for p, t in zip(pred, truth))
            out[f"{split_name}_char_error_rate"] = errors / max(1, sum(len(t) for t in truth))
        return out

    def _fitted_state(self):
        tensors, meta = super()._fitted_state()
        meta["alphabet_"] = self.alphabet_
        return tensors, meta

    def _restore_state(self, tensors, meta):
        super()._restore_state(tensors, meta)
        self.alphabet_ = meta["alphabet_"]


def _steps_of(log_probs: np.ndarray, lengths: np.ndarray | None) -> np.ndarray:
    return np.full(len(log_probs), log_probs.shape[1]) if lengths is None else lengths

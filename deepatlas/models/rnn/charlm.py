"""Character-level recurrent models of text: a language model and a text classifier.

``CharLM`` predicts the next character from the ones before it (Elman, 1990; Sutskever, Martens &
Hinton, 2011, "Generating text with recurrent neural networks"; Graves, 2013, "Generating
sequences with recurrent neural networks"), reports bits per character on held-out text next to a
unigram baseline, and samples text at a temperature. By default it trains on ``pydoc-text``, the
help pages every Python install carries; ``--data FILE --text -`` reads any UTF-8 text file.

``TextClassifier`` reads each document character by character (embedding -> recurrent encoder ->
softmax). Its vocabulary comes from the training split only; characters it never saw map to one
"unknown" symbol.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from deepatlas._validation import Interval, NoneOr, Options
from deepatlas.device import make_generator
from deepatlas.errors import InputError
from deepatlas.models.base import FitData, SupervisedClassifier, TokenInput, TorchEstimator
from deepatlas.models.rnn.cells import RecurrentEncoder
from deepatlas.models.rnn.recurrent import _RNNMixin
from deepatlas.registry import register_model

PAD, UNK = 0, 1  # reserved indices; real characters start at 2


def build_vocabulary(texts) -> list[str]:
    """Characters of the training texts, most frequent first (ties by character)."""
    counts = Counter()
    for t in texts:
        counts.update(t)
    return [ch for ch, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def encode(text: str, index: dict[str, int]) -> np.ndarray:
    return np.fromiter((index.get(ch, UNK) for ch in text), dtype=np.int64, count=len(text))


# ---- the language model ---------------------------------------------------------------------------
def ngram_bits_per_char(train_text: str, text: str, order: int = 5) -> float:
    """Bits per character of ``text`` (each character after the first, as :meth:`CharLM.bits_per_char`
    counts them) under a character ``order``-gram model of ``train_text`` with interpolated
    Witten-Bell smoothing (Witten & Bell, 1991; Chen & Goodman, 1999, "An empirical study of smoothing
    techniques for language modeling"): the classical language model a recurrent one should beat.

    Each context ``h`` mixes its own counts with the estimate of the context one character shorter,
    weighting the latter by the number of distinct characters seen after ``h``; the empty context backs
    off to a uniform choice over the training characters plus one unknown symbol, which stands for every
    character of ``text`` never seen in training.
    """
    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise InputError(f"order must be an int >= 1. Got {order!r} instead.")
    train_text, text = _as_text(train_text, "train_text"), _as_text(text, "text")
    if len(text) < 2:
        raise InputError("text must have at least 2 characters to measure bits per character.")
    vocabulary = set(train_text)
    grams, contexts = [], []  # grams[k]: counts of (k+1)-character strings; contexts[k][h]: (count, distinct next)
    for k in range(order):
        g = Counter(train_text[i - k : i + 1] for i in range(k, len(train_text)))
        ctx: dict[str, list[int]] = {}
        for gram, c in g.items():
            entry = ctx.setdefault(gram[:-1], [0, 0])
            entry[0] += c
            entry[1] += 1
        grams.append(g)
        contexts.append(ctx)
    uniform = 1.0 / (len(vocabulary) + 1)
    bits = 0.0
    for i in range(1, len(text)):
        ch, p = text[i], uniform
        for k in range(min(order, i + 1)):
            h = text[i - k : i]
            seen = contexts[k].get(h)
            if seen is None:
                break  # a longer context containing this one is unseen too
            n, distinct = seen
            p = (grams[k].get(h + ch, 0) + distinct * p) / (n + distinct)
        bits -= math.log2(p)
    return bits / (len(text) - 1)


class CharRNN(nn.Module):
    """Embedding -> fused RNN/GRU/LSTM -> next-character logits; carries state when asked."""

    def __init__(self, vocab_size: int, embedding_size: int, cell: str, hidden_size: int, num_layers: int, dropout):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embedding_size)
        kind = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[cell]
        self.rnn = kind(
            embedding_size, hidden_size, num_layers, batch_first=True, dropout=dropout if num_layers > 1 else 0
        )
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, vocab_size)

    def step(self, x: torch.Tensor, state=None):
        out, state = self.rnn(self.embed(x), state)  # (B, T, H)
        return self.head(self.drop(out)), state  # (B, T, V)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.step(x)[0]


@register_model(
    "charlm",
    task="text",
    description="character-level recurrent language model (bits per character)",
    smoke={
        "data": "pydoc-text",
        "params": {"hidden_size": 8, "embedding_size": 4, "seq_len": 16, "max_chars": 2000, "epochs": 1},
    },
)
@dataclass(eq=False, repr=False, kw_only=True)
class CharLM(TokenInput, TorchEstimator):
    """Character-level language model.

    ``fit(text)`` takes a string (or a list of strings, joined by newlines);
    ``bits_per_char(text)`` measures held-out text; ``sample(n, prompt=..., temperature=...)``
    writes new text.

    >>> from deepatlas.data.sequences import pydoc_corpus
    >>> text = pydoc_corpus()[:20000]
    >>> lm = CharLM(hidden_size=64, epochs=1).fit(text[:18000])
    >>> lm.bits_per_char(text[18000:]) < 6
    True
    """

    cell: str = "lstm"
    """The recurrence: ``rnn`` (tanh), ``gru`` or ``lstm``."""
    hidden_size: int = 256
    """Units in each recurrent layer."""
    num_layers: int = 1
    """Recurrent layers stacked on each other."""
    embedding_size: int = 64
    """Length of the learned vector that stands for each character."""
    dropout: float = 0.1
    """Dropout rate on the recurrent outputs before the output layer, and between stacked layers."""
    seq_len: int = 128
    """Characters per training window; gradients flow back through at most this many steps."""
    clip_norm: float | None = 1.0
    """Rescale the gradients before each step so their global norm is at most this value; ``None`` does not
    clip."""
    max_chars: int | None = None
    """Train on the first this many characters of the text only; ``None`` reads all of it."""
    epochs: int = 10
    batch_size: int = 64
    lr: float = 3e-3
    patience: int = 3
    standardize: bool = False
    """Unused: the inputs are character indices, which are not standardised."""

    _parameter_constraints: ClassVar[dict] = {
        "cell": Options(("rnn", "gru", "lstm")),
        "hidden_size": Interval(int, 1, None),
        "num_layers": Interval(int, 1, None),
        "embedding_size": Interval(int, 1, None),
        "dropout": Interval(float, 0, 1, "left"),
        "seq_len": Interval(int, 2, None),
        "clip_norm": NoneOr(Interval(float, 0, None, "neither")),
        "max_chars": NoneOr(Interval(int, 100, None)),
    }
    _task: ClassVar[str] = "text"
    default_data: ClassVar[str] = "pydoc-text"  # `deepatlas train charlm` without --data
    _input_kind: ClassVar[str] = "corpus"  # `deepatlas predict` refuses it and points to `deepatlas sample`

    # ---- fitting through the shared machinery: windows of characters as (n, seq_len) ints
    def _build_module(self, sample_shape, n_outputs):
        return CharRNN(n_outputs, self.embedding_size, self.cell, self.hidden_size, self.num_layers, self.dropout)

    def _loss(self, output, target):
        return F.cross_entropy(output.reshape(-1, output.shape[-1]), target.reshape(-1))  # (B*T, V) vs (B*T,)

    def _target_tensor(self, targets, device):
        return torch.as_tensor(targets, dtype=torch.long, device=device)

    def _windows(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Non-overlapping windows: inputs ``ids[k : k+L]``, targets shifted by one."""
        L = self.seq_len
        n = (len(ids) - 1) // L
        if n < 1:
            raise InputError(f"The text has {len(ids)} characters; {type(self).__name__} needs more than seq_len={L}.")
        X = ids[: n * L].reshape(n, L)
        y = ids[1 : n * L + 1].reshape(n, L)
        return X, y

    def _prepare_fit(self, X, y, validation_data) -> FitData:
        """The text ``X`` (a str, or strings joined by newlines) as windows of characters, (n,
        seq_len) ints, the targets shifted by one; ``validation_data`` is held-out text (default:
        the last ``validation_fraction`` of ``X``)."""
        text = _as_text(X, "X")
        if self.max_chars is not None:
            text = text[: self.max_chars]
        if validation_data is not None:
            val_text = _as_text(
                validation_data[0] if isinstance(validation_data, tuple) else validation_data, "validation text"
            )
        else:
            cut = int(len(text) * (1 - self.validation_fraction))
            text, val_text = text[:cut], text[cut:]
        self.vocabulary_ = build_vocabulary([text])
        index = self._index()
        Xw, yw = self._windows(encode(text, index))
        Xv = yv = None
        if len(val_text) > self.seq_len + 1:
            Xv, yv = self._windows(encode(val_text, index))
        n_outputs = len(self.vocabulary_) + 2
        self.input_shape_ = (self.seq_len,)
        self.n_features_in_ = self.seq_len
        counts = np.bincount(encode(text, index), minlength=n_outputs).astype(np.float64)
        self.unigram_ = ((counts + 1) / (counts.sum() + len(counts))).astype(np.float32)  # add-one smoothing
        return FitData(Xw, yw, Xv, yv, n_outputs)

    def _holdout(self, X, targets):
        return X, targets, None, None  # the held-out text is the end of the corpus (see _prepare_fit)

    def fit_dataset(self, ds, *, checkpoint_dir=None, resume: bool = False):
        self._check_corpus(ds)
        return self.fit(
            str(ds.X_train[0]), validation_data=(str(ds.X_val[0]),), checkpoint_dir=checkpoint_dir, resume=resume
        )

    def _check_corpus(self, ds):
        if ds.task != "text" or not ds.meta.get("corpus"):
            raise InputError(
                f"{type(self).__name__} trains on a text corpus (e.g. pydoc-text). Got {ds.task} data {ds.name!r} instead."
            )

    def _index(self) -> dict[str, int]:
        return {ch: k + 2 for k, ch in enumerate(self.vocabulary_)}

    # ---- measuring
    @torch.no_grad()
    def bits_per_char(self, text: str, streams: int = 32) -> float:
        """Mean -log2 p(next character) over ``text``, reading it as ``streams`` contiguous pieces
        with the state carried from window to window."""
        self._check_fitted()
        ids = encode(_as_text(text, "text"), self._index())
        if len(ids) < 2:
            raise InputError("text must have at least 2 characters to measure bits per character.")
        streams = max(1, min(streams, (len(ids) - 1) // (4 * self.seq_len)))  # short texts: fewer cold starts
        per = (len(ids) - 1) // streams
        device = next(self.module_.parameters()).device
        data = torch.as_tensor(ids[: streams * per + 1], device=device)
        xs = torch.stack([data[k * per : (k + 1) * per] for k in range(streams)])  # (S, per)
        ys = torch.stack([data[k * per + 1 : (k + 1) * per + 1] for k in range(streams)])
        self.module_.eval()
        state, total = None, 0.0
        for i in range(0, per, self.seq_len):
            logits, state = self.module_.step(xs[:, i : i + self.seq_len], state)
            total += float(
                F.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]), ys[:, i : i + self.seq_len].reshape(-1), reduction="sum"
                )
            )
        return total / (streams * per) / math.log(2)

    def unigram_bits_per_char(self, text: str) -> float:
        """The same measure for a model that ignores context: training character frequencies."""
        self._check_fitted()
        ids = encode(_as_text(text, "text"), self._index())[1:]
        return float(-np.mean(np.log2(self.unigram_[ids])))

    def dataset_metrics(self, ds) -> dict[str, float]:
        test, val = str(ds.X_test[0]), str(ds.X_val[0])
        bpc, unigram = self.bits_per_char(test), self.unigram_bits_per_char(test)
        return {
            "val_bits_per_char": self.bits_per_char(val),
            "test_bits_per_char": bpc,
            "test_unigram_bits_per_char": unigram,
            "test_bits_below_unigram": unigram - bpc,
            # the classical model to beat: a character 5-gram of the training text (Witten-Bell smoothing)
            "test_ngram5_bits_per_char": ngram_bits_per_char(str(ds.X_train[0]), test, order=5),
        }

    # ---- sampling
    @torch.no_grad()
    def sample(self, n: int = 300, *, prompt: str | None = None, temperature: float = 1.0, seed: int | None = 0) -> str:
        """``prompt`` followed by ``n`` sampled characters; lower ``temperature`` is more conservative."""
        self._check_fitted()
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise InputError(f"n must be a positive int (characters to generate). Got {n!r} instead.")
        if not isinstance(temperature, (int, float)) or not temperature > 0 or not math.isfinite(temperature):
            raise InputError(f"temperature must be a float > 0. Got {temperature!r} instead.")
        index = self._index()
        prompt = prompt or ""
        unknown = sorted({ch for ch in prompt if ch not in index})
        if unknown:
            raise InputError(f"prompt has characters never seen in training: {''.join(unknown)!r}.")
        device = next(self.module_.parameters()).device
        gen = make_generator(seed, device)
        start = encode(prompt, index) if prompt else np.array([index.get("\n", 2)])
        self.module_.eval()
        logits, state = self.module_.step(torch.as_tensor(start, device=device)[None], None)
        out = []
        for _ in range(n):
            weights = torch.softmax(logits[0, -1, 2:] / temperature, dim=-1)  # never PAD or UNK
            nxt = int(torch.multinomial(weights, 1, generator=gen)) + 2
            out.append(self.vocabulary_[nxt - 2])
            logits, state = self.module_.step(torch.tensor([[nxt]], device=device), state)
        return prompt + "".join(out)

    def write_samples(self, out=None, *, n=None, prompt=None, label=None, temperature=1.0, seed=0) -> str:
        """For ``deepatlas sample RUN``: ``n`` characters after ``prompt``; printed, or written to ``out``."""
        if label is not None:
            raise InputError(f"{type(self).__name__} is not conditioned on labels; drop --label.")
        text = self.sample(300 if n is None else n, prompt=prompt, temperature=temperature, seed=seed)
        if out is None:
            return text
        from deepatlas._io import atomic_write_text

        atomic_write_text(out, text)
        return f"wrote {len(text)} characters to {out}"

    # ---- persistence
    def _fitted_state(self):
        tensors, meta = super()._fitted_state()
        tensors["unigram_"] = torch.from_numpy(self.unigram_)
        meta["vocabulary_"] = self.vocabulary_
        return tensors, meta

    def _restore_state(self, tensors, meta):
        self.vocabulary_ = list(meta["vocabulary_"])
        self.unigram_ = tensors["unigram_"].numpy()
        super()._restore_state(tensors, meta)


def _as_text(X, what: str) -> str:
    if isinstance(X, Path):
        from deepatlas.data.sequences import read_text

        return read_text(X)
    if isinstance(X, str):
        return X
    if isinstance(X, np.ndarray) and X.dtype.kind == "U":
        X = X.tolist()
    if isinstance(X, (list, tuple)) and all(isinstance(t, str) for t in X):
        return "\n".join(X)
    raise InputError(f"{what} must be text (a str or a list of str). Got {type(X).__name__} instead.")


# ---- text classification ----------------------------------------------------------------------------
class TextNet(nn.Module):
    """(B, T) character ids, 0-padded -> embedding -> recurrent encoder over each real length -> logits."""

    def __init__(self, vocab_size: int, embedding_size: int, n_outputs: int, dropout: float, **rnn):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embedding_size, padding_idx=PAD)
        self.encoder = RecurrentEncoder(embedding_size, dropout=dropout, **rnn)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Linear(self.encoder.output_size, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lengths = (x != PAD).sum(1).clamp(min=1)  # an empty document reads one padding step
        _, last = self.encoder(self.embed(x), lengths)  # (B, D*H)
        return self.head(self.drop(last))


@register_model(
    "text-rnn",
    task="classification",
    description="character-level recurrent text classifier",
    smoke={"data": "reviews:n=80", "params": {"hidden_size": 8, "embedding_size": 4, "epochs": 2}},
)
@dataclass(eq=False, repr=False, kw_only=True)
class TextClassifier(TokenInput, SupervisedClassifier):
    """Classify documents (strings) read character by character; at most ``max_length`` characters
    of each are read. Train from the CLI with ``--data FILE.csv --text COLUMN --target COLUMN``."""

    cell: str = "gru"
    """The recurrence: ``rnn`` (tanh), ``gru``, ``lstm`` or ``peephole-lstm``."""
    hidden_size: int = 64
    """Units in each recurrent layer, per direction."""
    num_layers: int = 1
    """Recurrent layers stacked on each other."""
    bidirectional: bool = True
    """Also read every document backwards and join both directions' final states."""
    embedding_size: int = 32
    """Length of the learned vector that stands for each character."""
    dropout: float = 0.0
    """Dropout rate between stacked recurrent layers (when ``num_layers > 1``) and on the final state before
    the output layer."""
    clip_norm: float | None = 1.0
    """Rescale the gradients before each step so their global norm is at most this value; ``None`` does not
    clip."""
    max_length: int = 300
    """Characters read from the start of each document; the rest is ignored."""
    epochs: int = 30
    standardize: bool = False
    """Unused: the inputs are character indices, which are not standardised."""

    _parameter_constraints: ClassVar[dict] = {
        **_RNNMixin._parameter_constraints,
        "embedding_size": Interval(int, 1, None),
        "max_length": Interval(int, 1, None),
    }
    _input_kind: ClassVar[str] = "text"  # `deepatlas predict` reads the training text column of a CSV

    def _build_module(self, sample_shape, n_outputs):
        return TextNet(
            len(self.vocabulary_) + 2,
            self.embedding_size,
            n_outputs,
            self.dropout,
            cell=self.cell,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            bidirectional=self.bidirectional,
        )

    def _documents(self, X) -> list[str]:
        if isinstance(X, str):
            raise InputError("X must be a list or 1-D array of documents (strings), not one string.")
        docs = list(X.tolist() if isinstance(X, np.ndarray) else X)
        if not docs:
            raise InputError("X has 0 documents; at least 1 is required.")
        for i, d in enumerate(docs):
            if not isinstance(d, str):
                raise InputError(f"X must hold documents (strings) for {type(self).__name__}; X[{i}] is {d!r}.")
        return docs

    def _encode_docs(self, docs: list[str]) -> np.ndarray:
        index = {ch: k + 2 for k, ch in enumerate(self.vocabulary_)}
        out = np.zeros((len(docs), self.length_), dtype=np.int64)  # (n, T), 0-padded
        for i, d in enumerate(docs):
            ids = encode(d[: self.length_], index)
            out[i, : len(ids)] = ids
        return out

    def _prepare_fit(self, X, y, validation_data) -> FitData:
        """Documents as 0-padded character ids over a vocabulary of the training split only."""
        docs = self._documents(X)
        self.vocabulary_ = build_vocabulary(docs)
        self.length_ = max(1, min(self.max_length, max(len(d) for d in docs)))
        if validation_data is not None:
            validation_data = (self._encode_docs(self._documents(validation_data[0])), validation_data[1])
        return super()._prepare_fit(self._encode_docs(docs), y, validation_data)

    def _check_input(self, X):
        self._check_fitted()
        return self._encode_docs(self._documents(X))

    def _fitted_state(self):
        tensors, meta = super()._fitted_state()
        meta.update(vocabulary_=self.vocabulary_, length_=self.length_)
        return tensors, meta

    def _restore_state(self, tensors, meta):
        self.vocabulary_ = list(meta["vocabulary_"])
        self.length_ = int(meta["length_"])
        super()._restore_state(tensors, meta)

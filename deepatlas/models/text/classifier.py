"""Word-level text classification: a bidirectional GRU/LSTM with attention pooling (Bahdanau, Cho
and Bengio, 2015; the word-level attention of Yang et al., 2016, "Hierarchical attention networks
for document classification"), or a 1-D CNN over word embeddings with max-over-time pooling
(Kim, 2014, "Convolutional neural networks for sentence classification"), ``arch="cnn"``.

Documents are split by :func:`deepatlas.data.text.tokenize` and read through a
:class:`~deepatlas.data.text.Vocabulary` fitted on the training documents only (lower-cased,
words seen fewer than ``min_freq`` times unknown). The word embeddings are learned; ``embeddings``
names a ``deepatlas train word2vec`` run whose vectors initialise the known words. Beside the
network's own scores, :meth:`dataset_metrics` reports the classical baseline on the same split:
TF-IDF of words and word pairs + logistic regression (scikit-learn).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from deepatlas._validation import Interval, NonEmptyString, NoneOr, Options, TupleOf
from deepatlas.data.text import PAD, Vocabulary, check_documents, tokenize
from deepatlas.errors import InputError
from deepatlas.models.base import FitData, SupervisedClassifier, TokenInput
from deepatlas.models.text.ner import bidirectional
from deepatlas.registry import register_model


class WordNet(nn.Module):
    """(B, L) word ids, 0-padded on the right -> (B, K) logits."""

    def __init__(self, n_words, n_outputs, *, dim, arch, cell, hidden, filters, widths, dropout):
        super().__init__()
        self.embed = nn.Embedding(n_words, dim, padding_idx=PAD)
        self.arch = arch
        self.drop = nn.Dropout(dropout)
        if arch == "cnn":
            self.convs = nn.ModuleList(nn.Conv1d(dim, filters, w, padding=w // 2) for w in widths)
            size = filters * len(widths)
        else:
            rnn = nn.GRU if cell == "gru" else nn.LSTM
            self.fwd, self.bwd = rnn(dim, hidden, batch_first=True), rnn(dim, hidden, batch_first=True)
            self.score = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1, bias=False))
            size = 2 * hidden
        self.head = nn.Linear(size, n_outputs)

    def pooled(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The document vector (B, D) and, for the recurrent network, the attention weights (B, L)."""
        real = ids != PAD
        real = real | (torch.arange(ids.shape[1], device=ids.device) == 0)  # an empty document reads one pad
        x = self.drop(self.embed(ids))
        if self.arch == "cnn":
            L = ids.shape[1]
            outs = [torch.relu(conv(x.transpose(1, 2)))[..., :L] for conv in self.convs]  # (B, F, L)
            return torch.cat([o.masked_fill(~real.unsqueeze(1), 0).amax(2) for o in outs], 1), None
        h = bidirectional(self.fwd, self.bwd, x, real.sum(1))  # (B, L, 2H)
        att = torch.softmax(self.score(h).squeeze(2).masked_fill(~real, -1e4), dim=1)
        return (att.unsqueeze(2) * h).sum(1), att

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.pooled(ids)[0]))


@register_model(
    "text-classifier",
    task="classification",
    description="word-level BiGRU with attention pooling (arch=cnn: 1-D CNN); TF-IDF + logistic regression baseline",
    smoke={"data": "reviews:n=80", "params": {"dim": 8, "hidden": 8, "filters": 4, "epochs": 2, "min_freq": 1}},
    tuning_space={
        "lr": {"type": "float", "low": 3e-4, "high": 1e-2, "log": True},
        "dropout": {"type": "float", "low": 0.0, "high": 0.6},
    },
)
@dataclass(eq=False, repr=False, kw_only=True)
class WordTextClassifier(TokenInput, SupervisedClassifier):
    """Classify documents (strings) read word by word. From the CLI: ``--data fine-foods``, or
    ``--data FILE.csv --text COLUMN --target COLUMN``."""

    arch: str = "rnn"
    """``rnn``: a bidirectional recurrent encoder with attention pooling over the words; ``cnn``: convolutions
    of several widths over the words, max-pooled over the document."""
    cell: str = "gru"
    """The recurrence of ``arch="rnn"``: ``gru`` or ``lstm``."""
    dim: int = 100
    """Length of the learned vector of each word."""
    hidden: int = 64
    """Units of the recurrent encoder in each direction."""
    filters: int = 100
    """Convolution filters of each width (``arch="cnn"``)."""
    widths: tuple[int, ...] = (3, 4, 5)
    """Convolution widths in words (``arch="cnn"``)."""
    dropout: float = 0.5
    """Dropout on the word vectors and on the document vector."""
    min_freq: int = 2
    """Words seen fewer times in the training documents read as unknown."""
    max_length: int = 128
    """Words read from the start of each document (the fine-food reviews have a median of 51)."""
    embeddings: str | None = None
    """A ``deepatlas train word2vec`` run directory whose word vectors initialise the embedding of every word
    they know (their dimension replaces ``dim``); ``None`` starts from random vectors."""
    epochs: int = 20
    patience: int = 4
    clip_norm: float | None = 5.0
    """Rescale the gradients before each step so their global norm is at most this value; ``None`` does not
    clip."""
    standardize: bool = False
    """Unused: the inputs are word ids, which are not standardised."""

    _parameter_constraints: ClassVar[dict] = {
        **SupervisedClassifier._parameter_constraints,
        "arch": Options(("rnn", "cnn")),
        "cell": Options(("gru", "lstm")),
        "dim": Interval(int, 1, None),
        "hidden": Interval(int, 1, None),
        "filters": Interval(int, 1, None),
        "widths": TupleOf(),
        "dropout": Interval(float, 0, 1, "left"),
        "min_freq": Interval(int, 1, None),
        "max_length": Interval(int, 1, None),
        "embeddings": NoneOr(NonEmptyString()),
        "clip_norm": NoneOr(Interval(float, 0, None, "neither")),
    }
    _input_kind: ClassVar[str] = "text"  # `deepatlas predict` reads the training text column of a CSV

    def _encode_docs(self, docs: list[str]) -> np.ndarray:
        ids = [self.vocabulary_.encode(tokenize(d)) for d in docs]
        return self.vocabulary_.pad(ids, self.length_)

    def _prepare_fit(self, X, y, validation_data) -> FitData:
        """Documents as 0-padded word ids over a vocabulary of the training documents only."""
        docs = check_documents(X, type(self).__name__)
        self.vocabulary_ = Vocabulary.fit(docs, lower=True, min_freq=self.min_freq)
        self.length_ = max(1, min(self.max_length, max(len(tokenize(d)) for d in docs)))
        self.vectors_ = self._pretrained() if self.embeddings is not None else None
        if validation_data is not None:
            vd = check_documents(validation_data[0], type(self).__name__)
            validation_data = (self._encode_docs(vd), validation_data[1])
        return super()._prepare_fit(self._encode_docs(docs), y, validation_data)

    def _pretrained(self) -> np.ndarray:
        """Rows of the embedding matrix from a word2vec run (unknown words: NaN, drawn at random later)."""
        from deepatlas.saving import load

        w2v = load(self.embeddings)
        if not hasattr(w2v, "word_vectors"):
            raise InputError(f"embeddings={self.embeddings!r} is a {type(w2v).__name__} run, not a word2vec run.")
        vectors = w2v.word_vectors()
        dim = next(iter(vectors.values())).shape[0] if vectors else self.dim
        out = np.full((len(self.vocabulary_), dim), np.nan, np.float32)
        for k, word in enumerate(self.vocabulary_.tokens):
            if word in vectors:
                out[k + 2] = vectors[word]
        self.pretrained_hits_ = int(np.isfinite(out[:, 0]).sum())
        return out

    def _build_module(self, sample_shape, n_outputs):
        vectors = getattr(self, "vectors_", None)
        dim = vectors.shape[1] if vectors is not None else self.dim
        net = WordNet(
            len(self.vocabulary_),
            n_outputs,
            dim=dim,
            arch=self.arch,
            cell=self.cell,
            hidden=self.hidden,
            filters=self.filters,
            widths=tuple(self.widths),
            dropout=self.dropout,
        )
        if vectors is not None:
            with torch.no_grad():
                known = torch.from_numpy(np.isfinite(vectors[:, 0]))
                net.embed.weight[known] = torch.from_numpy(vectors[known.numpy()])
        return net

    def _check_input(self, X):
        self._check_fitted()
        return self._encode_docs(check_documents(X, type(self).__name__))

    @torch.no_grad()
    def predict_proba_ids(self, ids: np.ndarray) -> np.ndarray:
        """Class probabilities of encoded documents (n, L) word ids (what the export computes)."""
        self._check_fitted()
        self.module_.eval()
        logits = self.module_(self._to_tensor(ids, next(self.module_.parameters()).device))
        return torch.softmax(logits.float(), dim=1).cpu().numpy().astype(np.float64)

    def attention(self, X) -> list[list[tuple[str, float]]]:
        """Each document's words with their attention weights (``arch="rnn"``)."""
        if self.arch != "rnn":
            raise InputError("attention weights exist only for arch='rnn'.")
        ids = self._check_input(X)
        with torch.no_grad():
            self.module_.eval()
            att = self.module_.pooled(self._to_tensor(ids, next(self.module_.parameters()).device))[1]
        out = []
        for row, w in zip(ids, att.cpu().numpy()):
            n = max(1, int((row != PAD).sum()))
            out.append(list(zip(self.vocabulary_.decode(row[:n]) or ["<pad>"], w[:n].tolist())))
        return out

    def dataset_metrics(self, ds) -> dict[str, float]:
        """Accuracy, macro F1 and (two classes) ROC AUC per split, and the same on the test split
        for TF-IDF + logistic regression trained on the same training documents."""
        out: dict[str, float] = {}
        for split_name in ("train", "val", "test"):
            X, y = getattr(ds, f"X_{split_name}"), getattr(ds, f"y_{split_name}")
            out.update(classification_scores(y, self.predict_proba(X), self.classes_, f"{split_name}_"))
        proba, classes = tfidf_logreg_proba(ds.X_train, ds.y_train, ds.X_test, seed=self.seed)
        out.update(classification_scores(ds.y_test, proba, classes, "baseline_tfidf_logreg_test_"))
        return out

    def _fitted_state(self):
        tensors, meta = super()._fitted_state()
        meta.update(vocabulary_=self.vocabulary_.to_json(), length_=self.length_)
        return tensors, meta

    def _restore_state(self, tensors, meta):
        self.vocabulary_ = Vocabulary.from_json(meta["vocabulary_"])
        self.length_ = int(meta["length_"])
        self.vectors_ = None
        dim = tensors["module.embed.weight"].shape[1]
        if dim != self.dim:
            self.vectors_ = np.full((len(self.vocabulary_), dim), np.nan, np.float32)  # the shape only
        super()._restore_state(tensors, meta)


def classification_scores(y, proba: np.ndarray, classes, prefix: str) -> dict[str, float]:
    """Accuracy, macro F1 and, for two classes, ROC AUC (scikit-learn)."""
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    y = np.asarray(y)
    pred = np.asarray(classes)[np.asarray(proba).argmax(1)]
    out = {
        f"{prefix}accuracy": float(accuracy_score(y, pred)),
        f"{prefix}macro_f1": float(f1_score(y, pred, average="macro")),
    }
    if len(classes) == 2 and len(np.unique(y)) == 2:
        out[f"{prefix}roc_auc"] = float(roc_auc_score(y == classes[1], np.asarray(proba)[:, 1]))
    return out


def tfidf_logreg_proba(X_train, y_train, X, seed: int = 0):
    """TF-IDF of words and word pairs (sublinear counts, words seen twice or more) + logistic
    regression, fitted on the training documents: (probabilities for ``X``, classes)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(
        TfidfVectorizer(
            tokenizer=lambda d: tokenize(d, lower=True),
            token_pattern=None,
            lowercase=False,
            ngram_range=(1, 2),
            min_df=2,
            sublinear_tf=True,
        ),  # fmt: skip
        LogisticRegression(C=10.0, max_iter=2000, random_state=seed),
    )
    model.fit(list(X_train), list(y_train))
    return model.predict_proba(list(X)), model.classes_

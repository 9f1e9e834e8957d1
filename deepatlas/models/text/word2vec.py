"""Word embeddings by skip-gram with negative sampling (Mikolov et al., 2013, "Distributed
representations of words and phrases and their compositionality").

Each word of the training text predicts the words within ``window`` places of it: the pair
(centre, context) should score high, ``negatives`` words drawn from the unigram distribution
raised to the 3/4 power should score low (a logistic loss on the dot product of the centre's input
vector and the other word's output vector). Frequent words are subsampled (kept with probability
``sqrt(t / f)`` for a word of frequency ``f`` above ``t = subsample``) once per fit, under the seed.
The pairs go through the shared training loop (the loss of each pair is the network's output), so
early stopping on held-out text, checkpoints and data-parallel training work as for every model.

``deepatlas train word2vec --data pydoc-text`` (or any text file) trains on a corpus;
:meth:`Word2Vec.neighbours` and :meth:`Word2Vec.analogy` read the vectors (cosine similarity), a
run writes ``neighbours.txt`` with both, and ``transform(docs)`` gives each document the mean of
its words' vectors. ``deepatlas train text-classifier --set embeddings=RUN`` starts from them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from deepatlas._validation import Interval
from deepatlas.data.text import PAD, Vocabulary, check_documents, tokenize
from deepatlas.errors import InputError
from deepatlas.models.base import FitData, TokenInput, TorchEstimator
from deepatlas.registry import register_model

PROBES = ("the", "is", "function", "list", "file", "string", "return", "class", "error", "number", "good", "bad")
ANALOGIES = (("list", "lists", "string"), ("read", "reading", "write"), ("good", "great", "bad"))


class SkipGram(nn.Module):
    """(B, 2) int64 pairs (centre, context) -> (B,) negative-sampling loss of each pair."""

    def __init__(self, n_words: int, dim: int, noise: np.ndarray, negatives: int):
        super().__init__()
        self.inp = nn.Embedding(n_words, dim)
        self.out = nn.Embedding(n_words, dim)
        nn.init.uniform_(self.inp.weight, -0.5 / dim, 0.5 / dim)
        nn.init.zeros_(self.out.weight)
        self.register_buffer("noise", torch.as_tensor(noise, dtype=torch.float32))
        self.negatives = negatives

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        centre = self.inp(pairs[:, 0])  # (B, D)
        pos = (centre * self.out(pairs[:, 1])).sum(1)
        neg_ids = torch.multinomial(self.noise, pairs.shape[0] * self.negatives, replacement=True)
        neg = torch.bmm(self.out(neg_ids.view(pairs.shape[0], self.negatives)), centre.unsqueeze(2)).squeeze(2)
        return -F.logsigmoid(pos) - F.logsigmoid(-neg).sum(1)


class DocumentVector(nn.Module):
    """(B, L) word ids, 0-padded -> (B, D) mean of the known words' input vectors (zeros if none)."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.embed = nn.Embedding.from_pretrained(weight.clone(), freeze=True, padding_idx=PAD)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        known = (ids > 1).unsqueeze(2).float()  # padding and unknown words do not count
        return (self.embed(ids) * known).sum(1) / known.sum(1).clamp(min=1)


def _corpus(X, owner: str) -> list[list[str]]:
    if isinstance(X, str):
        X = X.splitlines()
    return [tokenize(d, lower=True) for d in check_documents(X, owner)]


@register_model(
    "word2vec",
    task="transform",
    description="skip-gram word embeddings with negative sampling; neighbours and analogies",
    smoke={"data": "reviews:n=80", "params": {"dim": 8, "epochs": 2, "min_freq": 1}},
)
@dataclass(eq=False, repr=False, kw_only=True)
class Word2Vec(TokenInput, TorchEstimator):
    """``fit(text)``: a string (read line by line) or a list of documents; labels are ignored."""

    dim: int = 100
    """Length of each word vector."""
    window: int = 5
    """Context words on each side of the centre word."""
    negatives: int = 5
    """Noise words drawn per (centre, context) pair."""
    min_freq: int = 5
    """Words seen fewer times are dropped from the vocabulary (and from the pairs)."""
    subsample: float = 1e-3
    """Frequency above which words are randomly dropped from the text (0 keeps every word)."""
    max_pairs: int = 2_000_000
    """Most (centre, context) pairs kept from the training text (a seeded sample beyond it)."""
    epochs: int = 5
    batch_size: int = 1024
    lr: float = 1e-2
    patience: int = 2
    standardize: bool = False
    """Unused: the inputs are word ids, which are not standardised."""

    _parameter_constraints: ClassVar[dict] = {
        **TorchEstimator._parameter_constraints,
        "dim": Interval(int, 1, None),
        "window": Interval(int, 1, None),
        "negatives": Interval(int, 1, None),
        "min_freq": Interval(int, 1, None),
        "subsample": Interval(float, 0, None),
        "max_pairs": Interval(int, 1, None),
    }
    _task: ClassVar[str] = "transform"
    _reads_corpus: ClassVar[bool] = True  # `deepatlas train word2vec --data pydoc-text` (a plain-text corpus)
    _input_kind: ClassVar[str] = "text"

    # ---- data -----------------------------------------------------------------------------------
    def _pairs(self, docs: list[list[str]], rng: np.random.Generator) -> np.ndarray:
        vocab = self.vocabulary_
        total = max(1, sum(self.counts_))
        keep_p = None
        if self.subsample > 0:
            f = np.asarray(self.counts_, np.float64) / total
            keep_p = np.minimum(1.0, np.sqrt(self.subsample / np.maximum(f, 1e-12)))
        out = []
        for doc in docs:
            ids = np.array([i for i in vocab.encode(doc) if i > 1], dtype=np.int64)
            if keep_p is not None and len(ids):
                ids = ids[rng.random(len(ids)) < keep_p[ids - 2]]
            for d in range(1, self.window + 1):
                if len(ids) > d:
                    out.append(np.stack([ids[:-d], ids[d:]], 1))
                    out.append(np.stack([ids[d:], ids[:-d]], 1))
        pairs = np.concatenate(out) if out else np.zeros((0, 2), np.int64)
        if len(pairs) > self.max_pairs:
            pairs = pairs[rng.choice(len(pairs), self.max_pairs, replace=False)]
        return pairs

    def _prepare_fit(self, X, y, validation_data) -> FitData:
        """(centre, context) pairs of the training text, over its own vocabulary; held-out pairs
        from ``validation_data`` (text) or from a ``validation_fraction`` of the documents."""
        docs = _corpus(X, type(self).__name__)
        rng = np.random.default_rng(self.seed)
        val_docs = None
        if validation_data is not None:
            val_docs = _corpus(
                validation_data[0] if isinstance(validation_data, tuple) else validation_data, "validation"
            )
        elif self.early_stopping and len(docs) >= 20:
            order = rng.permutation(len(docs))
            cut = int(len(docs) * (1 - self.validation_fraction))
            docs, val_docs = [docs[i] for i in order[:cut]], [docs[i] for i in order[cut:]]
        self.vocabulary_ = Vocabulary.fit(docs, lower=True, min_freq=self.min_freq)
        if len(self.vocabulary_.tokens) < 2:
            raise InputError(
                f"The training text has {len(self.vocabulary_.tokens)} words seen at least min_freq={self.min_freq} "
                "times; word2vec needs at least 2 (a longer text, or a smaller min_freq)."
            )
        counts = Counter(w for d in docs for w in d)
        self.counts_ = [counts[w] for w in self.vocabulary_.tokens]
        pairs = self._pairs(docs, rng)
        if not len(pairs):
            raise InputError(f"The training text gives no word pairs within window={self.window}.")
        Xv = self._pairs(val_docs, rng) if val_docs else None
        if Xv is not None and not len(Xv):
            Xv = None
        self.input_shape_, self.n_features_in_ = (2,), 2
        dummy = np.zeros(len(pairs), np.float32)
        return FitData(pairs, dummy, Xv, None if Xv is None else np.zeros(len(Xv), np.float32), 0)

    def _holdout(self, X, targets):
        return X, targets, None, None  # held-out documents were set aside in _prepare_fit

    def _target_tensor(self, targets, device):
        return torch.as_tensor(targets, dtype=torch.float32, device=device)

    def _build_module(self, sample_shape, n_outputs):
        noise = np.zeros(len(self.vocabulary_), np.float64)
        noise[2:] = np.asarray(self.counts_, np.float64) ** 0.75
        return SkipGram(len(self.vocabulary_), self.dim, noise / noise.sum(), self.negatives)

    def _loss(self, output, target):
        return output.float().mean()

    def fit_dataset(self, ds, *, checkpoint_dir=None, resume: bool = False):
        """A corpus (``pydoc-text``, a text file): its training text, the validation text held out;
        a table of documents: its training documents (labels ignored)."""
        return self.fit(ds.X_train, validation_data=(ds.X_val, None), checkpoint_dir=checkpoint_dir, resume=resume)

    # ---- reading the vectors --------------------------------------------------------------------
    def vectors(self) -> np.ndarray:
        """(V, dim) input vectors of the known words, in ``vocabulary_.tokens`` order."""
        self._check_fitted()
        return self.module_.inp.weight.detach().cpu().numpy()[2:]

    def word_vectors(self) -> dict[str, np.ndarray]:
        return dict(zip(self.vocabulary_.tokens, self.vectors()))

    def _unit(self) -> np.ndarray:
        v = self.vectors()
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)

    def _row(self, word: str) -> int:
        i = self.vocabulary_.id(word)
        if i < 2:
            raise InputError(f"{word!r} is not in the word2vec vocabulary ({len(self.vocabulary_.tokens)} words).")
        return i - 2

    def neighbours(self, word: str, k: int = 8) -> list[tuple[str, float]]:
        """The ``k`` words with the most similar vectors (cosine)."""
        u = self._unit()
        sims = u @ u[self._row(word)]
        sims[self._row(word)] = -np.inf
        top = np.argsort(-sims, kind="stable")[:k]
        return [(self.vocabulary_.tokens[i], float(sims[i])) for i in top]

    def analogy(self, a: str, b: str, c: str, k: int = 5) -> list[tuple[str, float]]:
        """``a`` is to ``b`` as ``c`` is to ...: nearest to ``b - a + c`` (the three excluded)."""
        u = self._unit()
        q = u[self._row(b)] - u[self._row(a)] + u[self._row(c)]
        sims = u @ (q / max(np.linalg.norm(q), 1e-12))
        for w in (a, b, c):
            sims[self._row(w)] = -np.inf
        top = np.argsort(-sims, kind="stable")[:k]
        return [(self.vocabulary_.tokens[i], float(sims[i])) for i in top]

    def report(self, probes=PROBES, analogies=ANALOGIES) -> str:
        """Nearest neighbours of the probe words and the analogies that the vocabulary covers."""
        lines = ["nearest neighbours (cosine):"]
        for w in probes:
            if self.vocabulary_.id(w) > 1:
                lines.append(f"  {w}: " + ", ".join(f"{n} {s:.2f}" for n, s in self.neighbours(w, 6)))
        lines.append("analogies (a : b :: c : ?):")
        for a, b, c in analogies:
            if all(self.vocabulary_.id(w) > 1 for w in (a, b, c)):
                lines.append(f"  {a} : {b} :: {c} : " + ", ".join(f"{n} {s:.2f}" for n, s in self.analogy(a, b, c, 3)))
        return "\n".join(lines) + "\n"

    def transform(self, X) -> np.ndarray:
        """Each document's mean word vector (known words only; zeros when it has none)."""
        self._check_fitted()
        docs = check_documents(X, type(self).__name__)
        ids = [self.vocabulary_.encode(tokenize(d)) for d in docs]
        L = max(1, max(len(i) for i in ids))
        with torch.no_grad():
            net = DocumentVector(self.module_.inp.weight.detach().cpu())
            return net(torch.from_numpy(self.vocabulary_.pad(ids, L))).numpy()

    def dataset_metrics(self, ds) -> dict[str, float]:
        """The held-out negative-sampling loss per pair; the words and pairs trained on."""
        out: dict[str, float] = {"vocabulary_size": float(len(self.vocabulary_.tokens))}
        if self.history_ and "val_loss" in self.history_[-1]:
            out["val_loss"] = float(min(h["val_loss"] for h in self.history_ if "val_loss" in h))
        out["train_loss"] = float(self.history_[-1]["loss"]) if self.history_ else float("nan")
        return out

    def write_run_plots(self, ds, plots_dir) -> None:
        """``neighbours.txt`` beside the plots (printed too when verbose)."""
        from pathlib import Path

        from deepatlas._io import atomic_write_text

        text = self.report()
        atomic_write_text(Path(plots_dir).parent / "neighbours.txt", text)
        if self.verbose:
            print(text, end="")

    # ---- persistence ----------------------------------------------------------------------------
    def _fitted_state(self):
        tensors, meta = super()._fitted_state()
        meta.update(vocabulary_=self.vocabulary_.to_json(), counts_=list(map(int, self.counts_)))
        return tensors, meta

    def _restore_state(self, tensors, meta):
        self.vocabulary_ = Vocabulary.from_json(meta["vocabulary_"])
        self.counts_ = list(meta["counts_"])
        super()._restore_state(tensors, meta)

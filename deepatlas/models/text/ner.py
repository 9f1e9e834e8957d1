"""Named-entity recognition: a BiLSTM over word embeddings and character features with a
linear-chain CRF output (Huang, Xu and Yu, 2015, "Bidirectional LSTM-CRF models for sequence
tagging"; Lample et al., 2016, "Neural architectures for named entity recognition"; Ma and Hovy,
2016, "End-to-end sequence labeling via bi-directional LSTM-CNNs-CRF"), and its classical baselines.

Each token is read twice: as a lower-cased word (an embedding over a vocabulary of the training
sentences only; during training a share ``word_dropout`` of the known words is replaced by the
unknown word, so the network learns to tag words it has never seen, as every test name of
``ner-synth`` is) and as its characters, case kept (a character CNN with max-pooling, or a
character BiLSTM, ``char_encoder``). A bidirectional LSTM reads the sentence; a linear layer gives
each token one score per tag; the CRF (``output="crf"``, :mod:`deepatlas.models.text.crf`) scores
whole tag paths and decodes with Viterbi, the ablation ``output="softmax"`` picks each token's tag
alone. Metrics are entity-level, from ``seqeval`` (an entity counts only when its type and both
boundaries are right): ``test_entity_f1`` (micro) and per-type precision, recall and F1.

Baselines on the same split (:func:`gazetteer_tags`, :func:`logreg_tags`): a gazetteer of the
training entities (longest match, the type seen most often) and a token-level logistic regression
(scikit-learn) over hand-made features of the token and its neighbours (word, affixes, shape).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from deepatlas._validation import Interval, NoneOr, Options
from deepatlas.data.ner import as_objects, entity_spans
from deepatlas.data.text import PAD, UNK, Vocabulary, encode_tokens, tokenize
from deepatlas.errors import InputError
from deepatlas.models.base import FitData, TokenInput, TorchEstimator
from deepatlas.models.rnn.cells import reverse_padded
from deepatlas.models.text.crf import CRF
from deepatlas.registry import register_model

IGNORE = -100  # the target of a padded token


def flip_index(lengths: torch.Tensor, T: int) -> torch.Tensor:
    """(B, T) positions that reverse each sequence within its own length (padding stays in place)."""
    t = torch.arange(T, device=lengths.device).unsqueeze(0)
    L = lengths.unsqueeze(1)
    return torch.where(t < L, L - 1 - t, t)


def take_steps(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x`` (B, T, F) reordered along time by ``index`` (B, T). The index's time axis comes from
    the input ids, so an exported graph keeps it dynamic (an LSTM's output shape may not)."""
    return x.gather(1, index.unsqueeze(2).expand(-1, -1, x.shape[2]))


def bidirectional(fwd: nn.Module, bwd: nn.Module, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Two one-direction recurrent layers, the second reading each sequence reversed within its
    length: (B, T, F) -> (B, T, 2H), exact whatever the padding after each sequence."""
    index = flip_index(lengths, x.shape[1])
    return torch.cat([fwd(x)[0], take_steps(bwd(take_steps(x, index))[0], index)], 2)


class CharFeatures(nn.Module):
    """(N, C) character ids of N words -> (N, F): a CNN with max-pooling over the characters
    (Ma and Hovy, 2016), or the last states of a BiLSTM over them (Lample et al., 2016)."""

    def __init__(self, n_chars: int, char_dim: int, size: int, encoder: str):
        super().__init__()
        self.embed = nn.Embedding(n_chars, char_dim, padding_idx=PAD)
        self.encoder = encoder
        if encoder == "cnn":
            self.conv = nn.Conv1d(char_dim, size, kernel_size=3, padding=1)
            self.size = size
        else:
            self.fwd = nn.LSTM(char_dim, size // 2, batch_first=True)
            self.bwd = nn.LSTM(char_dim, size // 2, batch_first=True)
            self.size = 2 * (size // 2)

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        real = chars != PAD  # (N, C)
        x = self.embed(chars)  # (N, C, E)
        if self.encoder == "cnn":
            h = self.conv(x.transpose(1, 2))  # (N, F, C)
            h = h.masked_fill(~real.unsqueeze(1), -1e4)
            return h.max(2).values.clamp(min=-1e3) * real.any(1, keepdim=True)  # a padded word reads zeros
        lengths = real.sum(1).clamp(min=1)
        last = (lengths - 1).view(-1, 1, 1)
        f = self.fwd(x)[0]
        b = self.bwd(reverse_padded(x, lengths))[0]
        f = f.gather(1, last.expand(-1, 1, f.shape[2])).squeeze(1)
        b = b.gather(1, last.expand(-1, 1, b.shape[2])).squeeze(1)
        return torch.cat([f, b], 1) * real.any(1, keepdim=True)


WINDOW = 5  # tokens the window encoder reads: the token and two on each side


class NERNet(nn.Module):
    """(B, T, 1 + C) int64: word id, then character ids of each token (0-padded) -> (B, T, K) tag scores.

    The sentence BiLSTM is two one-direction LSTMs, the backward one reading each sentence
    reversed within its own length, so padding never reaches a real token in either direction
    (exact for any padding, and exportable without packed sequences)."""

    def __init__(self, n_words, n_chars, n_tags, *, word_dim, char_dim, char_size, char_encoder, hidden, dropout,
                 word_dropout, crf, encoder="bilstm"):  # fmt: skip
        super().__init__()
        self.words = nn.Embedding(n_words, word_dim, padding_idx=PAD)
        self.chars = CharFeatures(n_chars, char_dim, char_size, char_encoder)
        self.encoder = encoder
        if encoder == "window":  # Collobert et al. (2011)'s window approach: no recurrence
            self.window = nn.Conv1d(word_dim + self.chars.size, 2 * hidden, WINDOW, padding=WINDOW // 2)
        else:
            self.fwd = nn.LSTM(word_dim + self.chars.size, hidden, batch_first=True)
            self.bwd = nn.LSTM(word_dim + self.chars.size, hidden, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.word_dropout = word_dropout
        self.out = nn.Linear(2 * hidden, n_tags)
        self.crf = CRF(n_tags) if crf else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        words, chars = x[..., 0], x[..., 1:]
        if self.training and self.word_dropout > 0:
            drop = (torch.rand(words.shape, device=words.device) < self.word_dropout) & (words > UNK)
            words = torch.where(drop, torch.full_like(words, UNK), words)
        lengths = (words != PAD).sum(1).clamp(min=1)
        B, T, C = chars.shape
        h = torch.cat([self.words(words), self.chars(chars.reshape(B * T, C)).view(B, T, -1)], 2)
        if self.encoder == "window":
            # padding tokens are zeroed, so a token next to the end reads the same zeros as the convolution's own
            # padding: the output does not depend on how far a sentence was padded
            h = self.drop(h) * (words != PAD).unsqueeze(-1).to(h.dtype)
            h = torch.tanh(self.window(h.transpose(1, 2)).transpose(1, 2))
        else:
            h = bidirectional(self.fwd, self.bwd, self.drop(h), lengths)
        return self.out(self.drop(h))


def _sentences(X, owner: str) -> list[list[str]]:
    """Token lists from token lists, or from strings (split by the word tokenizer)."""
    if isinstance(X, str):
        raise InputError(f"X must be a list of sentences (token lists or strings) for {owner}, not one string.")
    sents = list(X.tolist() if isinstance(X, np.ndarray) and X.dtype == object else X)
    if not sents:
        raise InputError(f"X has 0 sentences; {owner} needs at least 1.")
    out = []
    for i, s in enumerate(sents):
        if isinstance(s, str):
            s = tokenize(s)
        elif isinstance(s, list | tuple | np.ndarray) and all(isinstance(t, str) for t in s):
            s = [str(t) for t in s]
        else:
            raise InputError(f"X[{i}] must be a sentence (a list of token strings, or a string); got {s!r}.")
        if not s:
            raise InputError(f"X[{i}] is an empty sentence; every sentence needs at least one token.")
        out.append(s)
    return out


def _step_accuracy(output, target):
    mask = target != IGNORE
    hits = ((output.argmax(-1) == target) & mask).sum(1).float()
    return (hits / mask.sum(1).clamp(min=1)).sum()


@register_model(
    "ner",
    task="tagging",
    description="BiLSTM-CRF named-entity tagger (word + character features); seqeval entity F1",
    smoke={
        "data": "ner-synth:n=200",
        "params": {"hidden": 8, "word_dim": 8, "char_dim": 4, "char_size": 8, "epochs": 2},
    },
    tuning_space={
        "lr": {"type": "float", "low": 3e-4, "high": 1e-2, "log": True},
        "hidden": {"type": "int", "low": 32, "high": 256, "log": True},
        "dropout": {"type": "float", "low": 0.0, "high": 0.6},
    },
)
@dataclass(eq=False, repr=False, kw_only=True)
class NERTagger(TokenInput, TorchEstimator):
    """Tag sentences with entity labels (BIO or BIOES, as in ``y``).

    ``fit(X, y)``: ``X`` a list of sentences (token lists, or strings split by
    :func:`deepatlas.data.text.tokenize`), ``y`` their tag lists. ``predict(X)`` returns a tag list
    per sentence, ``predict_spans(X)`` the entities as ``(type, text, start, end)``.

    >>> from deepatlas import load_dataset
    >>> ds = load_dataset("ner-synth:n=300")
    >>> tagger = NERTagger(epochs=2).fit(ds.X_train, ds.y_train)
    >>> len(tagger.predict(["Anna Schmidt moved to Berlin ."])[0])
    6
    """

    output: str = "crf"
    """``crf``: a linear-chain CRF scores whole tag paths (Viterbi decoding); ``softmax``: each token's tag
    is chosen alone (the ablation)."""
    char_encoder: str = "cnn"
    """Character features of each token: ``cnn`` (convolution, width 3, max-pooled) or ``lstm`` (a BiLSTM's
    last states)."""
    word_dim: int = 64
    """Length of the learned vector of each (lower-cased) word."""
    char_dim: int = 32
    """Length of the learned vector of each character."""
    char_size: int = 64
    """Character features per token (CNN filters, or the BiLSTM's two directions together)."""
    encoder: str = "bilstm"
    """How each token reads its sentence: ``bilstm`` (two LSTMs, one per direction, over the whole sentence) or
    ``window`` (no recurrence: a convolution over the token and two words on each side, the window approach of
    Collobert et al., 2011, "Natural language processing (almost) from scratch"; the ablation)."""
    hidden: int = 128
    """Units of the sentence LSTM in each direction (``window``: the convolution has twice as many)."""
    dropout: float = 0.3
    """Dropout rate on the token features and on the BiLSTM's outputs."""
    word_dropout: float = 0.2
    """Share of known words replaced by the unknown word during training, so that the tagger learns to
    read unseen names from their characters and context."""
    min_freq: int = 1
    """Words seen fewer times in the training sentences read as unknown."""
    max_word_chars: int = 20
    """Characters read from the start of each token."""
    clip_norm: float | None = 5.0
    """Rescale the gradients before each step so their global norm is at most this value; ``None`` does not
    clip."""
    epochs: int = 30
    batch_size: int = 32
    lr: float = 2e-3
    patience: int = 5
    standardize: bool = False
    """Unused: the inputs are word and character ids, which are not standardised."""

    _parameter_constraints: ClassVar[dict] = {
        **TorchEstimator._parameter_constraints,
        "output": Options(("crf", "softmax")),
        "char_encoder": Options(("cnn", "lstm")),
        "encoder": Options(("bilstm", "window")),
        "word_dim": Interval(int, 1, None),
        "char_dim": Interval(int, 1, None),
        "char_size": Interval(int, 2, None),
        "hidden": Interval(int, 1, None),
        "dropout": Interval(float, 0, 1, "left"),
        "word_dropout": Interval(float, 0, 1, "left"),
        "min_freq": Interval(int, 1, None),
        "max_word_chars": Interval(int, 1, None),
        "clip_norm": NoneOr(Interval(float, 0, None, "neither")),
    }
    _task: ClassVar[str] = "tagging"
    _input_kind: ClassVar[str] = "text"  # `deepatlas predict` reads one sentence per line
    _monitor: ClassVar[tuple[str, str]] = ("val_accuracy", "max")
    _val_metrics: ClassVar[dict] = {"val_accuracy": _step_accuracy}

    # ---- data -----------------------------------------------------------------------------------
    def _encode(self, sents: list[list[str]], T: int | None = None) -> np.ndarray:
        return encode_tokens(sents, self.vocabulary_, self.char_index_, self.max_word_chars, T)

    def _tags(self, y, sents, what: str) -> np.ndarray:
        if y is None:
            raise InputError(f"{type(self).__name__} requires y (a tag list per sentence), but y is None.")
        tags = list(y.tolist() if isinstance(y, np.ndarray) and y.dtype == object else y)
        if len(tags) != len(sents):
            raise InputError(f"{what} has {len(sents)} sentences but {len(tags)} tag lists.")
        T = max(len(s) for s in sents)
        out = np.full((len(sents), T), IGNORE, dtype=np.int64)
        index = {c: k for k, c in enumerate(self.classes_)}
        for i, (s, t) in enumerate(zip(sents, tags)):
            t = list(t)
            if len(t) != len(s):
                raise InputError(f"{what}: sentence {i} has {len(s)} tokens but {len(t)} tags.")
            unknown = [g for g in t if g not in index]
            if unknown:
                raise InputError(f"{what}: sentence {i} has tag {unknown[0]!r}, which the training tags do not have.")
            out[i, : len(t)] = [index[g] for g in t]
        return out

    def _prepare_fit(self, X, y, validation_data) -> FitData:
        """Word and character vocabularies and the tag set from the training sentences only."""
        name = type(self).__name__
        sents = _sentences(X, name)
        if y is None:
            raise InputError(f"{name} requires y (a tag list per sentence), but y is None.")
        tag_lists = list(y.tolist() if isinstance(y, np.ndarray) and y.dtype == object else y)
        self.classes_ = np.array(sorted({str(g) for t in tag_lists for g in t}))
        if len(self.classes_) < 2:
            raise InputError(f"{name} needs at least 2 tags in y; got {list(self.classes_)}.")
        self.vocabulary_ = Vocabulary.fit(sents, lower=True, min_freq=self.min_freq)
        counts = Counter(ch for s in sents for tok in s for ch in tok[: self.max_word_chars])
        self.chars_ = sorted(counts, key=lambda c: (-counts[c], c))
        self.char_index_ = {c: k + 2 for k, c in enumerate(self.chars_)}
        targets = self._tags(y, sents, "y")
        Xv = yv = None
        if validation_data is not None:
            vs = _sentences(validation_data[0], name)
            Xv, yv = self._encode(vs), self._tags(validation_data[1], vs, "validation_data")
        self.input_shape_ = (1 + self.max_word_chars,)
        self.n_features_in_ = 1 + self.max_word_chars
        return FitData(self._encode(sents), targets, Xv, yv, len(self.classes_))

    def _target_tensor(self, targets, device):
        return torch.as_tensor(targets, dtype=torch.long, device=device)

    # ---- network --------------------------------------------------------------------------------
    def _build_module(self, sample_shape, n_outputs):
        return NERNet(
            len(self.vocabulary_),
            len(self.chars_) + 2,
            n_outputs,
            word_dim=self.word_dim,
            char_dim=self.char_dim,
            char_size=self.char_size,
            char_encoder=self.char_encoder,
            hidden=self.hidden,
            dropout=self.dropout,
            word_dropout=self.word_dropout,
            crf=self.output == "crf",
            encoder=self.encoder,
        )

    def _loss(self, output, target):
        if self.output == "crf":
            mask = target != IGNORE
            return self.module_.crf.nll(output, target.clamp(min=0), mask)
        return F.cross_entropy(output.float().transpose(1, 2), target, ignore_index=IGNORE)

    # ---- inference ------------------------------------------------------------------------------
    @torch.no_grad()
    def _tag_ids(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Encoded sentences (n, T, 1 + C) -> (tag scores (n, T, K), best tag ids (n, T)): the
        network's scores, then Viterbi (CRF) or each token's best tag (softmax)."""
        self.module_.eval()
        device = next(self.module_.parameters()).device
        x = self._to_tensor(ids, device)
        em = self.module_(x)
        best = self.module_.crf.decode(em, x[..., 0] != PAD) if self.output == "crf" else em.argmax(-1)
        return em.float().cpu().numpy(), best.cpu().numpy()

    def _decode_ids(self, X, batch_size: int = 256) -> list[np.ndarray]:
        self._check_fitted()
        sents = _sentences(X, type(self).__name__)
        order = np.argsort([len(s) for s in sents], kind="stable")  # similar lengths batched together
        out: list[np.ndarray] = [None] * len(sents)  # type: ignore[list-item]
        for i in range(0, len(sents), batch_size):
            idx = order[i : i + batch_size]
            batch = [sents[j] for j in idx]
            best = self._tag_ids(self._encode(batch))[1]
            for j, row, s in zip(idx, best, batch):
                out[j] = row[: len(s)]
        return out

    def predict(self, X) -> np.ndarray:
        """A tag list per sentence (a 1-D object array of lists)."""
        return as_objects([list(self.classes_[ids]) for ids in self._decode_ids(X)])

    def predict_spans(self, X) -> list[list[tuple[str, str, int, int]]]:
        """Entities per sentence: ``(type, text, start, end)`` with token positions, end exclusive."""
        sents = _sentences(X, type(self).__name__)
        return [
            [(kind, " ".join(s[a:b]), a, b) for kind, a, b in entity_spans(tags)]
            for s, tags in zip(sents, self.predict(sents))
        ]

    def describe_predictions(self, X) -> str:
        """What ``deepatlas predict`` prints: each sentence with its entities marked ``[text]TYPE``."""
        sents = _sentences(X, type(self).__name__)
        lines = []
        for s, spans in zip(sents, self.predict_spans(sents)):
            words = list(s)
            for kind, _, a, b in reversed(spans):
                words[a:b] = [f"[{' '.join(words[a:b])}]{kind}"]
            lines.append(" ".join(words))
        return "\n".join(lines) + "\n"

    def score(self, X, y) -> float:
        """Entity-level micro F1 (seqeval)."""
        from seqeval.metrics import f1_score

        return float(f1_score([list(t) for t in y], list(self.predict(X))))

    def dataset_metrics(self, ds) -> dict[str, float]:
        """Entity F1 (micro) and token accuracy per split, per-type test F1, and the baselines'
        test entity F1 on the same split."""
        from seqeval.metrics import f1_score

        out: dict[str, float] = {}
        for split_name in ("train", "val", "test"):
            X, y = getattr(ds, f"X_{split_name}"), getattr(ds, f"y_{split_name}")
            gold, pred = [list(t) for t in y], list(self.predict(X))
            out[f"{split_name}_entity_f1"] = float(f1_score(gold, pred))
            out[f"{split_name}_token_accuracy"] = float(
                np.mean([g == p for a, b in zip(gold, pred) for g, p in zip(a, b)])
            )
        report = self.dataset_evaluation(ds)
        for kind, row in report["per_type"].items():
            out[f"test_f1_{kind}"] = row["f1"]
        out["test_entity_precision"] = report["metrics"]["entity_precision"]
        out["test_entity_recall"] = report["metrics"]["entity_recall"]
        for name, fn in (("gazetteer", gazetteer_tags), ("logreg", logreg_tags)):
            pred = fn(list(ds.X_train), list(ds.y_train), list(ds.X_test))
            out[f"baseline_{name}_test_entity_f1"] = float(f1_score([list(t) for t in ds.y_test], pred))
        return out

    def dataset_evaluation(self, ds, split: str = "test") -> dict:
        """seqeval's report on one split: micro/macro P/R/F1 and per type (``evaluation.json``)."""
        from seqeval.metrics import classification_report

        gold = [list(t) for t in getattr(ds, f"y_{split}")]
        pred = list(self.predict(getattr(ds, f"X_{split}")))
        rep = classification_report(gold, pred, output_dict=True, zero_division=0)

        def row(r):  # seqeval's 'f1-score' as 'f1', the support as an int
            return {"precision": float(r["precision"]), "recall": float(r["recall"]), "f1": float(r["f1-score"]),
                    "support": int(r["support"])}  # fmt: skip

        per_type = {k: (row(v)) for k, v in rep.items() if k not in ("micro avg", "macro avg", "weighted avg")}
        micro, macro = (row(rep["micro avg"])), (row(rep["macro avg"]))
        return {
            "task": "tagging",
            "split": split,
            "n_samples": len(gold),
            "metrics": {
                "entity_f1": micro["f1"],
                "entity_precision": micro["precision"],
                "entity_recall": micro["recall"],
                "macro_entity_f1": macro["f1"],
            },
            "notes": ["seqeval, entity level (an entity counts when its type and both boundaries are right)"],
            "per_type": per_type,
            "per_class": per_type,  # the report's table of per-class rows
        }

    # ---- persistence ----------------------------------------------------------------------------
    def _fitted_state(self):
        tensors, meta = super()._fitted_state()
        meta.update(vocabulary_=self.vocabulary_.to_json(), chars_=self.chars_, classes_=self.classes_.tolist())
        return tensors, meta

    def _restore_state(self, tensors, meta):
        self.vocabulary_ = Vocabulary.from_json(meta["vocabulary_"])
        self.chars_ = list(meta["chars_"])
        self.char_index_ = {c: k + 2 for k, c in enumerate(self.chars_)}
        self.classes_ = np.array(meta["classes_"])
        super()._restore_state(tensors, meta)


# ---- baselines ------------------------------------------------------------------------------------------
def gazetteer_tags(train_X, train_y, X) -> list[list[str]]:
    """Tag ``X`` by the longest match (case-insensitive) against the training entities, each with
    the type it had most often in training; everything else ``O`` (IOB2)."""
    votes: dict[tuple[str, ...], Counter] = {}
    for s, t in zip(train_X, train_y):
        for kind, a, b in entity_spans(list(t)):
            votes.setdefault(tuple(w.lower() for w in s[a:b]), Counter())[kind] += 1
    names = {k: c.most_common(1)[0][0] for k, c in votes.items()}
    longest = max((len(k) for k in names), default=0)
    out = []
    for s in X:
        low = [w.lower() for w in s]
        tags = ["O"] * len(s)
        i = 0
        while i < len(s):
            for n in range(min(longest, len(s) - i), 0, -1):
                kind = names.get(tuple(low[i : i + n]))
                if kind:
                    tags[i : i + n] = [f"B-{kind}"] + [f"I-{kind}"] * (n - 1)
                    i += n
                    break
            else:
                i += 1
        out.append(tags)
    return out


def _shape(w: str) -> str:
    s = "".join("X" if c.isupper() else "x" if c.islower() else "d" if c.isdigit() else c for c in w)
    return "".join(c for i, c in enumerate(s) if i == 0 or c != s[i - 1])  # runs collapsed: Xxxx -> Xx


def token_features(s: list[str], i: int) -> dict:
    """Hand features of token ``i`` of sentence ``s`` and its neighbours (for :func:`logreg_tags`)."""
    w = s[i]
    f = {"bias": 1.0, "w=" + w.lower(): 1.0, "shape=" + _shape(w): 1.0, "title": float(w.istitle())}
    f.update({"upper": float(w.isupper()), "digit": float(w.isdigit()), "first": float(i == 0)})
    for k in (2, 3):
        f[f"pre{k}=" + w[:k].lower()] = 1.0
        f[f"suf{k}=" + w[-k:].lower()] = 1.0
    for d in (-2, -1, 1, 2):
        j = i + d
        v = s[j] if 0 <= j < len(s) else "<s>" if j < 0 else "</s>"
        f[f"{d}w=" + v.lower()] = 1.0
        f[f"{d}shape=" + _shape(v)] = 1.0
    return f


def logreg_tags(train_X, train_y, X, seed: int = 0) -> list[list[str]]:
    """A token-level logistic regression (scikit-learn) on :func:`token_features`."""
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = DictVectorizer()
    A = vec.fit_transform([token_features(list(s), i) for s in train_X for i in range(len(s))])
    labels = [g for t in train_y for g in t]
    clf = LogisticRegression(max_iter=300, C=1.0, random_state=seed).fit(A, labels)
    pred = clf.predict(vec.transform([token_features(list(s), i) for s in X for i in range(len(s))]))
    out, k = [], 0
    for s in X:
        out.append(list(pred[k : k + len(s)]))
        k += len(s)
    return out

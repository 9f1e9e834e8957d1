"""Inference paths of the language family for ONNX export and serving.

The text classifier exports word ids ``(B, L)`` -> ``(logits, probabilities)`` and word2vec
its document vectors ``(B, L)`` -> ``vector`` (the mean of the known words' vectors), both with a
dynamic ``words`` axis and the tokenizer and vocabulary in the sidecar's ``preprocessing``.

The NER tagger exports its network: word and character ids ``(B, T, 1 + C)`` int64 with a dynamic
``time`` axis -> tag ``scores`` ``(B, T, K)``. What is not a fixed graph stays outside it, in the
sidecar: the tokenizer, the word vocabulary and the characters (``preprocessing``, applied by
:func:`deepatlas.data.text.encode_with_preprocessing` in both ``predict`` and ``serve``), and the
CRF's transition, start and end scores for Viterbi decoding (``crf``; its loop over time would be
unrolled at the example's length in ONNX). Parity is checked on sentences of random lengths, at
two padded lengths, and on the run's test sentences.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from deepatlas.data.text import token_preprocessing, tokenize, word_preprocessing
from deepatlas.export.adapters import cpu_copy
from deepatlas.export.protocol import ExportSpec, register_exporter
from deepatlas.models.text.classifier import WordTextClassifier
from deepatlas.models.text.ner import NERTagger, _sentences
from deepatlas.models.text.word2vec import Word2Vec


class TagScores(nn.Module):
    """(B, T, 1 + C) ids -> (B, T, K) tag scores (the CRF's emissions, or the softmax's logits)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.net(ids)


def crf_decode(scores: np.ndarray, lengths, transitions, start, end) -> list[list[int]]:
    """Viterbi over exported scores (NumPy), as :meth:`deepatlas.models.text.crf.CRF.decode` does."""
    trans, start, end = (np.asarray(a, np.float64) for a in (transitions, start, end))
    out = []
    for em, L in zip(np.asarray(scores, np.float64), lengths):
        delta, back = start + em[0], []
        for t in range(1, int(L)):
            cand = delta[:, None] + trans
            back.append(cand.argmax(0))
            delta = cand.max(0) + em[t]
        tag = int((delta + end).argmax())
        path = [tag]
        for arg in reversed(back):
            tag = int(arg[tag])
            path.append(tag)
        out.append(path[::-1])
    return out


def ner_spec(est: NERTagger, part=None) -> ExportSpec:
    est._check_fitted()
    C = int(est.max_word_chars)
    V, A = len(est.vocabulary_), len(est.chars_) + 2

    def random_input(rng, n, grow=0):  # sentences of random lengths, 0 after each one's end
        T = 12 + grow
        lengths = rng.integers(1, T + 1, (n, 1))
        words = np.where(np.arange(T) < lengths, rng.integers(1, V, (n, T)), 0)
        wlen = rng.integers(1, C + 1, (n, T, 1))
        chars = np.where((np.arange(C) < wlen) & (words[..., None] > 0), rng.integers(1, A, (n, T, C)), 0)
        return np.concatenate([words[..., None], chars], axis=2).astype(np.int64)

    def held_out(X, label):
        if X is None or not len(X) or isinstance(X[0], str | float):
            return None
        return est._encode(_sentences(X, "held-out data")), f"{label}, encoded"

    meta = {
        "kind": "tagger",
        "classes": est.classes_.tolist(),
        "decision": "viterbi (crf, outside the graph)" if est.output == "crf" else "argmax per token",
        "preprocessing": token_preprocessing(est.vocabulary_, est.chars_, C),
        "input": f"per token: word id, then {C} character ids; 0-padded after each sentence's end",
    }
    if est.output == "crf":
        crf = est.module_.crf
        meta["crf"] = {k: getattr(crf, k).detach().cpu().double().tolist() for k in ("transitions", "start", "end")}
    return ExportSpec(
        module=TagScores(cpu_copy(est.module_)).eval(),
        example_input=torch.from_numpy(random_input(np.random.default_rng(0), 4)),
        input_name="ids",
        output_names=("scores",),
        metadata=meta,
        dynamic_axes={0: "batch", 1: "time"},
        reference=lambda ids: {"scores": est._tag_ids(np.asarray(ids))[0]},
        random_input=random_input,
        held_out=held_out,
    )


register_exporter(NERTagger)(ner_spec)


# ---- word-id models: the text classifier and word2vec's document vectors ---------------------------------
def _random_ids(V: int, L: int):
    def random_input(rng, n, grow=0):  # documents of random lengths, 0 after each one's end
        T = L + grow
        ids = rng.integers(1, V, (n, T), dtype=np.int64)
        return np.where(np.arange(T) < rng.integers(1, T + 1, (n, 1)), ids, 0)

    return random_input


def _encoded_docs(est):
    def held_out(X, label):
        if X is None or not len(X) or not isinstance(X[0], str):
            return None
        return est._check_input(X) if hasattr(est, "length_") else _pad_docs(est, X), f"{label}, encoded"

    return held_out


def _pad_docs(est, X):
    ids = [est.vocabulary_.encode(tokenize(d)) for d in X]
    return est.vocabulary_.pad(ids, max(1, max(len(i) for i in ids)))


class ClassLogits(nn.Module):
    """(B, L) word ids -> (logits, probabilities) (B, K)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, ids: torch.Tensor):
        logits = self.net(ids)
        return logits, torch.softmax(logits, dim=1)


def text_classifier_spec(est: WordTextClassifier, part=None) -> ExportSpec:
    est._check_fitted()
    random_input = _random_ids(len(est.vocabulary_), min(int(est.length_), 24))
    return ExportSpec(
        module=ClassLogits(cpu_copy(est.module_)).eval(),
        example_input=torch.from_numpy(random_input(np.random.default_rng(0), 4)),
        input_name="ids",
        output_names=("logits", "probabilities"),
        metadata={
            "kind": "classifier",
            "classes": est.classes_.tolist(),
            "decision": "argmax",
            "preprocessing": word_preprocessing(est.vocabulary_, int(est.length_)),
            "input": f"word ids, left-aligned, 0-padded (the model reads the first {int(est.length_)} words)",
        },
        dynamic_axes={0: "batch", 1: "words"},
        reference=lambda ids: {"probabilities": est.predict_proba_ids(np.asarray(ids))},
        random_input=random_input,
        held_out=_encoded_docs(est),
    )


def word2vec_spec(est: Word2Vec, part=None) -> ExportSpec:
    from deepatlas.models.text.word2vec import DocumentVector

    est._check_fitted()
    random_input = _random_ids(len(est.vocabulary_), 16)

    def reference(ids):
        with torch.no_grad():
            return {"vector": DocumentVector(est.module_.inp.weight.detach().cpu())(torch.from_numpy(ids)).numpy()}

    return ExportSpec(
        module=DocumentVector(est.module_.inp.weight.detach().cpu()).eval(),
        example_input=torch.from_numpy(random_input(np.random.default_rng(0), 4)),
        input_name="ids",
        output_names=("vector",),
        metadata={"kind": "transform", "preprocessing": word_preprocessing(est.vocabulary_, None)},
        dynamic_axes={0: "batch", 1: "words"},
        reference=reference,
        random_input=random_input,
        held_out=_encoded_docs(est),
    )


register_exporter(WordTextClassifier)(text_classifier_spec)
register_exporter(Word2Vec)(word2vec_spec)


def tagged_spans(info: dict, scores: np.ndarray, tokens: list[list[str]]) -> list[dict]:
    """A served tagger's answer per sentence: its tokens, tags and entities, decoded from the
    exported scores with the sidecar's CRF (Viterbi) or per token (softmax)."""
    classes = info["classes"]
    crf = (info.get("metadata") or {}).get("crf")
    lengths = [len(t) for t in tokens]
    if crf:
        paths = crf_decode(scores, lengths, crf["transitions"], crf["start"], crf["end"])
    else:
        paths = [np.asarray(s)[:L].argmax(-1).tolist() for s, L in zip(scores, lengths)]
    from deepatlas.data.ner import entity_spans

    out = []
    for toks, path in zip(tokens, paths):
        tags = [classes[k] for k in path]
        ents = [{"type": k, "text": " ".join(toks[a:b]), "start": a, "end": b} for k, a, b in entity_spans(tags)]
        out.append({"tokens": toks, "tags": tags, "entities": ents})
    return out

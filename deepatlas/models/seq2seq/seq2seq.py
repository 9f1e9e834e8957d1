"""``seq2seq``: an encoder-decoder with attention that translates strings into strings.

Reads a source string character by character (or word by word) with a bidirectional GRU or LSTM
and writes the target one token at a time, attending over the source (Bahdanau et al., 2015;
Luong et al., 2015), or not at all (``attention="none"`` or ``None``, Cho et al., 2014; Sutskever, Vinyals &
Le, 2014, "Sequence to sequence learning with neural networks"). Trained with teacher forcing
(Williams & Zipser, 1989); decoded greedily or with beam search and length normalisation. The
network and the decoders live in :mod:`deepatlas.models.seq2seq.network`.

Characters (or words) never seen in training map to ``<unk>``; :meth:`Seq2Seq.translate` counts
them per input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch.nn import functional as F

from deepatlas._validation import Boolean, Interval, NoneOr, Options
from deepatlas.errors import InputError
from deepatlas.models.base import FitData, TokenInput, TorchEstimator
from deepatlas.models.seq2seq.network import (
    BOS,
    EOS,
    PAD,
    SPECIALS,
    UNK,
    Seq2SeqNet,
    beam_decode,
    greedy_decode,
)
from deepatlas.registry import register_model

_WORD = re.compile(r"\w+|[^\w\s]")


def tokenize(text: str, level: str) -> list[str]:
    return list(text) if level == "char" else _WORD.findall(text)


_NO_SPACE_BEFORE = set(",.;:!?)]}%-'’")
_NO_SPACE_AFTER = set("([{-'’")


def detokenize(tokens: list[str], level: str) -> str:
    """Characters joined as they are; words joined by spaces, except before closing punctuation
    and around hyphens and apostrophes ("vingt - deux" -> "vingt-deux")."""
    if level == "char":
        return "".join(tokens)
    out = []
    for i, t in enumerate(tokens):
        if i and t not in _NO_SPACE_BEFORE and tokens[i - 1] not in _NO_SPACE_AFTER:
            out.append(" ")
        out.append(t)
    return "".join(out)


def _vocabulary(token_lists) -> list[str]:
    """The special symbols, then the tokens of the training split, most frequent first."""
    from collections import Counter

    counts = Counter(t for toks in token_lists for t in toks)
    return list(SPECIALS) + [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def texts_of(X, what: str = "X") -> list[str]:
    """A list or 1-D array of strings, checked; one line naming the first bad entry."""
    if isinstance(X, str):
        raise InputError(f"{what} must be a list or 1-D array of strings, not one string.")
    items = list(X.tolist() if isinstance(X, np.ndarray) else X)
    if not items:
        raise InputError(f"{what} has 0 strings; at least 1 is required.")
    for i, s in enumerate(items):
        if not isinstance(s, str):
            raise InputError(f"{what} must hold strings; {what}[{i}] is {s!r}.")
    return items


def _sequences_correct(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Targets whose every token is the arg-max under teacher forcing (a per-batch count)."""
    ok = (output.argmax(-1) == target) | (target == PAD)
    return ok.all(1).sum()


def _token_accuracy(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Each target's share of tokens that are the arg-max under teacher forcing, summed over the batch."""
    real = target != PAD
    hits = ((output.argmax(-1) == target) & real).sum(1).float()
    return (hits / real.sum(1).clamp(min=1)).sum()


@register_model(
    "seq2seq",
    task="translation",
    description="GRU/LSTM encoder-decoder with additive or multiplicative attention, beam search",
    smoke={"data": "dates:n=200", "params": {"hidden_size": 8, "embedding_size": 4, "epochs": 2}},
)
@dataclass(eq=False, repr=False, kw_only=True)
class Seq2Seq(TokenInput, TorchEstimator):
    """Translate strings: ``fit(X, y)`` with ``X`` the sources and ``y`` the targets (lists or 1-D
    arrays of str); ``predict(X)`` writes the translations.

    >>> from deepatlas.data import load_dataset
    >>> ds = load_dataset("dates:n=400")
    >>> Seq2Seq(epochs=1, hidden_size=16).fit(ds.X_train, ds.y_train).predict(ds.X_test[:2]).shape
    (2,)
    """

    cell: str = "gru"
    """The recurrence of encoder and decoder: ``gru`` or ``lstm``."""
    attention: str | None = "additive"
    """How the decoder reads the source: ``additive`` (Bahdanau), ``multiplicative`` (Luong's general score,
    with input feeding) or ``none`` (the encoder's final states only: the ablation). ``None`` means ``none``, as
    scikit-learn's ``None`` turns a part off, so ``--set attention=none`` works on the command line."""
    hidden_size: int = 128
    """Units of the decoder and of each encoder direction."""
    embedding_size: int = 32
    """Length of the learned vector of each source and target token."""
    bidirectional: bool = True
    """Read the source in both directions."""
    level: str = "char"
    """Tokens: ``char`` (characters) or ``word`` (words and punctuation marks)."""
    dropout: float = 0.0
    """Dropout on the decoder's token embeddings and on its attentional state."""
    teacher_forcing: float = 1.0
    """Probability, at each training step, of feeding the true previous token; otherwise the model's own
    guess is fed (scheduled sampling, Bengio et al., 2015)."""
    beam_size: int = 1
    """Hypotheses kept by the decoder; 1 is greedy decoding."""
    length_penalty: float = 1.0
    """Beam search ranks finished hypotheses by ``log p / length ** length_penalty``; 0 ranks by ``log p``."""
    max_length: int = 100
    """Source tokens read; the rest of a longer input is dropped."""
    max_output_length: int | None = None
    """Most tokens written per input; ``None``: twice the longest training target."""
    clip_norm: float | None = 1.0
    """Rescale the gradients before each step so their global norm is at most this value; ``None`` does not
    clip."""
    epochs: int = 20
    lr: float = 2e-3
    patience: int = 3
    standardize: bool = False
    """Unused: the inputs are token indices, which are not standardised."""

    _parameter_constraints: ClassVar[dict] = {
        "cell": Options(("gru", "lstm")),
        "attention": NoneOr(Options(("additive", "multiplicative", "none"))),
        "hidden_size": Interval(int, 1, None),
        "embedding_size": Interval(int, 1, None),
        "bidirectional": Boolean(),
        "level": Options(("char", "word")),
        "dropout": Interval(float, 0, 1, "left"),
        "teacher_forcing": Interval(float, 0, 1, "both"),
        "beam_size": Interval(int, 1, None),
        "length_penalty": Interval(float, 0, None),
        "max_length": Interval(int, 1, None),
        "max_output_length": NoneOr(Interval(int, 1, None)),
        "clip_norm": NoneOr(Interval(float, 0, None, "neither")),
    }
    _task: ClassVar[str] = "translation"
    _input_kind: ClassVar[str] = "text"
    # Early stopping on the teacher-forced token accuracy: it saturates on a synthetic task (the fit
    # stops) and keeps rising on real text, where whole sentences are rarely all right.
    _monitor: ClassVar[tuple[str, str]] = ("val_token_accuracy", "max")
    _val_metrics: ClassVar[dict] = {"val_token_accuracy": _token_accuracy, "val_sequence_accuracy": _sequences_correct}

    @property
    def attention_kind(self) -> str:
        """``attention`` as one of ``additive``, ``multiplicative``, ``none`` (``None`` read as ``none``)."""
        return "none" if self.attention is None else self.attention

    # ---- data -> ids
    def _ids(self, texts: list[str], vocab_index: dict, width: int, *, eos: bool = False):
        """(n, width) ids, 0-padded, and the number of unknown tokens of each text."""
        out = np.zeros((len(texts), width), dtype=np.int64)
        unknown = np.zeros(len(texts), dtype=np.int64)
        for i, s in enumerate(texts):
            toks = tokenize(s, self.level)[: width - int(eos)]
            ids = [vocab_index.get(t, UNK) for t in toks] + ([EOS] if eos else [])
            out[i, : len(ids)] = ids
            unknown[i] = sum(1 for t in toks if t not in vocab_index)
        return out, unknown

    def _pack(self, sources: list[str], targets: list[str]):
        """The network's training input ``[source | <s> target]`` and the target ``target </s>``."""
        src, _ = self._ids(sources, self.src_index_, self.src_len_)
        tgt, _ = self._ids(targets, self.tgt_index_, self.tgt_len_, eos=True)
        decoder_in = np.concatenate([np.full((len(tgt), 1), BOS), tgt[:, :-1]], axis=1)
        decoder_in[decoder_in == EOS] = PAD  # the step after </s> reads padding
        return np.concatenate([src, decoder_in], axis=1), tgt

    def _prepare_fit(self, X, y, validation_data) -> FitData:
        """Vocabularies of the training split, then fixed-width id arrays."""
        sources = texts_of(X)
        if y is None:
            raise InputError(f"{type(self).__name__} requires y (the target strings), but y is None.")
        targets = texts_of(y, "y")
        if len(targets) != len(sources):
            raise InputError(
                f"X and y have inconsistent numbers of samples: X has {len(sources)}, y has {len(targets)}."
            )
        src_tokens = [tokenize(s, self.level) for s in sources]
        tgt_tokens = [tokenize(s, self.level) for s in targets]
        empty = next((i for i, t in enumerate(tgt_tokens) if not t), None)
        if empty is not None:
            raise InputError(f"y[{empty}] is empty; every target needs at least one token.")
        self.src_vocab_ = _vocabulary(src_tokens)
        self.tgt_vocab_ = _vocabulary(tgt_tokens)
        self._index()
        self.src_len_ = max(1, min(self.max_length, max(len(t) for t in src_tokens)))
        self.tgt_len_ = max(len(t) for t in tgt_tokens) + 1  # + </s>
        X_ids, targets_ids = self._pack(sources, targets)
        X_val = y_val = None
        if validation_data is not None:
            vs, vt = texts_of(validation_data[0], "validation X"), texts_of(validation_data[1], "validation y")
            X_val, y_val = self._pack(vs, vt)
        self.input_shape_ = (int(X_ids.shape[1]),)
        self.n_features_in_ = int(X_ids.shape[1])
        return FitData(X_ids, targets_ids, X_val, y_val, len(self.tgt_vocab_))

    def _index(self):
        self.src_index_ = {t: i for i, t in enumerate(self.src_vocab_) if i >= len(SPECIALS)}
        self.tgt_index_ = {t: i for i, t in enumerate(self.tgt_vocab_) if i >= len(SPECIALS)}

    def _target_tensor(self, targets, device):
        return torch.as_tensor(targets, dtype=torch.long, device=device)

    def _build_module(self, sample_shape, n_outputs):
        return Seq2SeqNet(
            len(self.src_vocab_),
            len(self.tgt_vocab_),
            embedding_size=self.embedding_size,
            hidden_size=self.hidden_size,
            cell=self.cell,
            attention=self.attention_kind,
            bidirectional=self.bidirectional,
            dropout=self.dropout,
            src_len=self.src_len_,
            teacher_forcing=self.teacher_forcing,
        )

    def _loss(self, output, target):
        return F.nll_loss(output.flatten(0, 1).float(), target.flatten(), ignore_index=PAD)

    # ---- inference
    def _output_limit(self) -> int:
        return self.max_output_length if self.max_output_length is not None else 2 * self.tgt_len_

    def encode_sources(self, X) -> tuple[np.ndarray, np.ndarray]:
        """Source ids (n, S) at the batch's own width (at most ``max_length``) and the number of
        unknown tokens in each source."""
        texts = texts_of(X)
        width = max(1, min(self.max_length, max(len(tokenize(s, self.level)) for s in texts)))
        return self._ids(texts, self.src_index_, width)

    def _decode_ids(self, row) -> str:
        toks = []
        for k in row.tolist():
            if k in (EOS, PAD):
                break
            toks.append(self.tgt_vocab_[k] if k >= len(SPECIALS) else SPECIALS[k])
        return detokenize(toks, self.level)

    @torch.no_grad()
    def translate(self, X, *, beam_size: int | None = None, batch_size: int = 512, attention: bool = False) -> dict:
        """``{"translations": [...], "unknown": [count per input], "attention": [(L, S) arrays]}``
        (the attention only with ``attention=True``, from greedy decoding)."""
        self._check_fitted()
        beam = self.beam_size if beam_size is None else beam_size
        if not isinstance(beam, int) or isinstance(beam, bool) or beam < 1:
            raise InputError(f"beam_size must be an int >= 1. Got {beam!r} instead.")
        src, unknown = self.encode_sources(X)
        net = self.module_.eval()
        device = next(net.parameters()).device
        out, maps = [], []
        limit = self._output_limit()
        for i in range(0, len(src), batch_size):
            chunk = src[i : i + batch_size]
            chunk = chunk[:, : max(1, int((chunk != PAD).sum(1).max()))]
            batch = torch.as_tensor(chunk, device=device)
            if beam == 1 or attention:
                ids, weights = greedy_decode(net, batch, limit)
                if attention:
                    lengths = (chunk != PAD).sum(1)
                    for row, w, L in zip(ids.cpu().numpy(), weights.cpu().numpy(), lengths):
                        steps = next((j + 1 for j, k in enumerate(row) if k in (EOS, PAD)), len(row))
                        maps.append(w[:steps, : max(1, int(L))])
            else:
                ids = beam_decode(net, batch, limit, beam, self.length_penalty)
            out.extend(self._decode_ids(row) for row in ids.cpu().numpy())
        result = {"translations": out, "unknown": unknown.tolist()}
        if attention:
            result["attention"] = maps
        return result

    def predict(self, X, *, beam_size: int | None = None) -> np.ndarray:
        """The translation of each source string (greedy, or beam search with ``beam_size`` > 1)."""
        self._check_fitted()
        return np.array(self.translate(X, beam_size=beam_size)["translations"], dtype=object)

    def describe_predictions(self, X) -> str:
        """``deepatlas predict``'s output: a CSV of each source's translation and its number of
        unknown tokens (mapped to ``<unk>``, counted, never an error)."""
        import csv
        import io

        found = self.translate(X)
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["source", "translation", "unknown"])
        writer.writerows(zip(texts_of(X), found["translations"], found["unknown"]))
        return buf.getvalue()

    def score(self, X, y) -> float:
        """Exact-match accuracy."""
        return float(np.mean(self.predict(X) == np.asarray(texts_of(y, "y"), dtype=object)))

    def dataset_metrics(self, ds) -> dict[str, float]:
        """``{val,test}_exact_match``, ``_bleu`` and ``_chrf`` (sacrebleu, corpus level), the exact
        match of the test sources in the top quarter of lengths (``test_exact_match_longest``: the
        last of :meth:`length_buckets`), and
        for real text (not ``meta["synthetic"]``) ``test_dictionary_bleu``/``_chrf`` of a
        word-by-word dictionary built from the training pairs."""
        out: dict[str, float] = {}
        for name, X, y in (("val", ds.X_val, ds.y_val), ("test", ds.X_test, ds.y_test)):
            out.update(translation_metrics(self.predict(X), list(y), name))
            if name == "test":
                buckets = self.length_buckets(X, y)
                out["test_exact_match_longest"] = buckets[-1]["exact_match"]
                out["test_unknown_tokens"] = int(sum(self.encode_sources(X)[1]))
                if not ds.meta.get("synthetic", True):  # real text: against a word-by-word dictionary
                    from deepatlas.data.translation import dictionary_translate

                    words = dictionary_translate(ds.X_train, ds.y_train, X, lambda s: tokenize(s, "word"))
                    base = translation_metrics(words, list(y), "test_dictionary")
                    out.update({k: v for k, v in base.items() if not k.endswith("exact_match")})
        return out

    def length_buckets(self, X, y) -> list[dict]:
        """Exact match by source length: :func:`exact_match_by_length` of the translations of ``X``."""
        sources = texts_of(X)
        lengths = [len(tokenize(s, self.level)) for s in sources]
        return exact_match_by_length(self.predict(sources), texts_of(y, "y"), lengths)

    def dataset_evaluation(self, ds) -> dict:
        """``evaluation.json``: the test exact match in each quarter of source lengths, so that the
        attention models and the no-attention ablation can be compared on the longest inputs (where a
        fixed-length encoding degrades, Bahdanau et al., 2015, fig. 2)."""
        buckets = self.length_buckets(ds.X_test, ds.y_test)
        unit = "characters" if self.level == "char" else "words"
        metrics = {
            f"exact_match, {b['min_length']}-{b['max_length']} {unit} (n={b['n']})": b["exact_match"] for b in buckets
        }
        return {
            "split": "test",
            "n_samples": len(ds.X_test),
            "attention": self.attention_kind,
            "length_unit": unit,
            "length_buckets": buckets,
            "metrics": metrics,
            "notes": [
                "Buckets: the quarters of the test sources' lengths (a bucket holds the lengths above one "
                "quartile up to and including the next; ties at a quartile make a bucket larger or smaller, and "
                "empty ones are left out). The last bucket is test_exact_match_longest of metrics.json."
            ],
        }

    def write_run_plots(self, ds, plots_dir) -> list:
        """Exact match by source length (``exact_match_by_length.png``) and, with attention, the
        attention heat maps of three test sources (the shortest, a middle one, the longest)."""
        from deepatlas.models.seq2seq.plots import attention_heatmaps, length_buckets_plot

        label = f"attention={self.attention_kind}"
        paths = [
            length_buckets_plot(
                {label: self.length_buckets(ds.X_test, ds.y_test)},
                plots_dir / "exact_match_by_length.png",
                unit="characters" if self.level == "char" else "words",
            )
        ]
        if self.attention_kind == "none":
            return paths
        X = list(ds.X_test)
        order = np.argsort([len(s) for s in X], kind="stable")
        picks = [X[order[0]], X[order[len(order) // 2]], X[order[-1]]]
        found = self.translate(picks, attention=True, beam_size=1)
        return paths + [attention_heatmaps(self, picks, found, plots_dir / "attention.png")]

    # ---- persistence
    def _fitted_state(self):
        tensors, meta = super()._fitted_state()
        meta.update(
            src_vocab_=self.src_vocab_, tgt_vocab_=self.tgt_vocab_, src_len_=self.src_len_, tgt_len_=self.tgt_len_
        )
        return tensors, meta

    def _restore_state(self, tensors, meta):
        self.src_vocab_, self.tgt_vocab_ = list(meta["src_vocab_"]), list(meta["tgt_vocab_"])
        self.src_len_, self.tgt_len_ = int(meta["src_len_"]), int(meta["tgt_len_"])
        self._index()
        super()._restore_state(tensors, meta)


def translation_metrics(predictions, references, prefix: str) -> dict[str, float]:
    """Exact match, corpus BLEU and chrF (sacrebleu) of ``predictions`` against ``references``."""
    from deepatlas._optional import require

    sacrebleu = require("nlp", "BLEU and chrF", "sacrebleu")
    hyps, refs = [str(p) for p in predictions], [str(r) for r in references]
    return {
        f"{prefix}_exact_match": float(np.mean([h == r for h, r in zip(hyps, refs)])),
        f"{prefix}_bleu": float(sacrebleu.corpus_bleu(hyps, [refs]).score),
        f"{prefix}_chrf": float(sacrebleu.corpus_chrf(hyps, [refs]).score),
    }


def exact_match_by_length(predictions, references, lengths, n_buckets: int = 4) -> list[dict]:
    """Exact match in each of ``n_buckets`` length buckets cut at the quantiles of ``lengths``:
    ``[{"min_length", "max_length", "n", "exact_match"}, ...]``, shortest first. A bucket holds the
    lengths above one cut up to and including the next (the first: up to the lowest cut; the last:
    above the top cut), so the last is the longest ``1 / n_buckets`` of the inputs or fewer where
    lengths tie at the top cut; empty buckets are left out."""
    lengths = np.asarray(lengths)
    if not (len(predictions) == len(references) == len(lengths)) or len(lengths) == 0:
        raise InputError(
            f"predictions, references and lengths must have the same non-zero length; got "
            f"{len(predictions)}, {len(references)} and {len(lengths)}."
        )
    hits = np.array([str(p) == str(r) for p, r in zip(predictions, references)])
    cuts = np.quantile(lengths, np.arange(1, n_buckets) / n_buckets)
    which = np.searchsorted(cuts, lengths, side="left")
    out = []
    for b in range(n_buckets):
        inside = which == b
        if inside.any():
            out.append(
                {
                    "min_length": int(lengths[inside].min()),
                    "max_length": int(lengths[inside].max()),
                    "n": int(inside.sum()),
                    "exact_match": float(hits[inside].mean()),
                }
            )
    return out


def paired_comparison(correct_a, correct_b) -> dict:
    """Two models scored on the same examples (``correct_a[i]``, ``correct_b[i]``: was example ``i``
    right): each one's errors, the share of B's errors that A removes (``error_reduction``:
    ``1 - errors_a / errors_b``, ``None`` when B makes none) and the exact McNemar test (McNemar, 1947),
    the two-sided binomial test of the discordant examples, ``only_a_right`` of
    ``only_a_right + only_b_right`` at one half (``mcnemar_p``; 1.0 when none is discordant)."""
    from scipy.stats import binomtest

    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise InputError(
            f"correct_a and correct_b must be 1-D with the same non-zero length; got shapes {a.shape} and {b.shape}."
        )
    only_a, only_b = int((a & ~b).sum()), int((b & ~a).sum())
    errors_a, errors_b = int((~a).sum()), int((~b).sum())
    return {
        "n": int(a.size),
        "errors_a": errors_a,
        "errors_b": errors_b,
        "error_reduction": 1 - errors_a / errors_b if errors_b else None,
        "only_a_right": only_a,
        "only_b_right": only_b,
        "mcnemar_p": float(binomtest(only_a, only_a + only_b, 0.5).pvalue) if only_a + only_b else 1.0,
    }

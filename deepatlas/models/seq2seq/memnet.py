"""``memnet``: an end-to-end memory network that answers a question about a story, and
``lstm-reader``, an LSTM that reads the whole story and the question, its baseline.

Sukhbaatar, Szlam, Weston & Fergus (2015), "End-to-end memory networks": each story sentence is
stored twice, as a key ``m_i = sum_j l_j * A x_ij + T_A(i)`` and as a value ``c_i`` (with ``C`` and
``T_C``); the question ``u = sum_j l_j * B q_j`` attends ``p = softmax(u . m_i)`` over the sentences,
reads ``o = sum_i p_i c_i``, and ``u + o`` asks again, ``hops`` times; the answer is
``softmax(W (u + o))``. Here:

- position encoding ``l_kj = (1 - j/J) - (k/d)(1 - 2j/J)`` (section 4.1), so word order counts;
- temporal encoding ``T_A``, ``T_C`` indexed by how recent a sentence is (section 4.1), with random
  noise: 10 % empty time slots inserted while training (section 4.1);
- adjacent weight tying ``A^{k+1} = C^k``, ``B = A^1`` and ``W^T = C^K`` (section 2.2).

A sample ``X[i]`` is a bAbI-style story (see :mod:`deepatlas.data.babi`): numbered lines, the last
one the question. The network reads ``(B, 1 + M, J)`` word ids: the question in row 0, the story's
``M`` most recent sentences after it, the most recent first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from deepatlas._validation import Interval, NoneOr
from deepatlas.data.babi import parse_story
from deepatlas.errors import InputError
from deepatlas.models.base import FitData, SupervisedClassifier, TokenInput
from deepatlas.registry import register_model
from deepatlas.training import Callback, EarlyStopping

PAD, UNK = 0, 1
_WORD = re.compile(r"[a-z]+")


def words(sentence: str) -> list[str]:
    return _WORD.findall(sentence.lower())


def position_encoding(J: int, d: int) -> torch.Tensor:
    """``l_kj`` of the paper, (J, d): the weight of embedding dimension ``k`` for word ``j``."""
    j = torch.arange(1, J + 1, dtype=torch.float32).unsqueeze(1) / J
    k = torch.arange(1, d + 1, dtype=torch.float32).unsqueeze(0) / d
    return (1 - j) - k * (1 - 2 * j)


class MemN2N(nn.Module):
    """(B, 1 + M, J) word ids -> answer logits (B, K); :meth:`hops` also gives the attention.
    ``answer_ids`` (K,) are the vocabulary ids of the answer words: with ``W^T = C^K`` the answer
    scores are ``u . C^K[answer]``."""

    def __init__(self, vocab: int, answer_ids, d: int, hops: int, memory: int, words_per_sentence: int):
        super().__init__()
        # hops + 1 embeddings: A^1 = B, C^k = A^{k+1}, W^T = C^K (adjacent tying).
        self.embeddings = nn.ModuleList(nn.Embedding(vocab, d, padding_idx=PAD) for _ in range(hops + 1))
        self.temporal = nn.Parameter(torch.randn(hops + 1, memory, d) * 0.1)
        self.register_buffer("answer_ids", torch.as_tensor(answer_ids, dtype=torch.long), persistent=False)
        self.register_buffer("encoding", position_encoding(words_per_sentence, d), persistent=False)
        self.n_hops = hops
        self.linear = False  # linear start: no softmax over the memory while True
        for emb in self.embeddings:
            nn.init.normal_(emb.weight, std=0.1)
            with torch.no_grad():
                emb.weight[PAD].zero_()

    def _bag(self, k: int, ids: torch.Tensor) -> torch.Tensor:
        return (self.embeddings[k](ids) * self.encoding[: ids.shape[-1]]).sum(-2)  # (..., d)

    def hops(self, x: torch.Tensor):
        """x -> (answer logits (B, K), attention of each hop over the memory slots (B, hops, M))."""
        q, story = x[:, 0], x[:, 1:]  # (B, J), (B, M, J)
        filled = (story != PAD).any(-1)  # (B, M): real sentences (and no noise slot)
        M = story.shape[1]
        u = self._bag(0, q)
        weights = []
        for k in range(self.n_hops):
            m = self._bag(k, story) + self.temporal[k, :M]
            c = self._bag(k + 1, story) + self.temporal[k + 1, :M]
            scores = torch.einsum("bmd,bd->bm", m, u).masked_fill(~filled, -1e9)
            if self.linear:
                p = scores.masked_fill(~filled, 0.0)
            else:
                p = torch.softmax(scores, dim=-1) * filled.any(-1, keepdim=True)
            weights.append(p)
            u = u + torch.einsum("bm,bmd->bd", p, c)
        logits = u @ self.embeddings[-1].weight[self.answer_ids].T  # W^T = C^K
        return logits, torch.stack(weights, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.hops(x)[0]


class ReaderNet(nn.Module):
    """The baseline: (B, 1 + M, J) ids -> the story's words in order, then the question's, read by
    an LSTM; its state after the last real word -> answer logits (B, K)."""

    def __init__(self, vocab: int, n_answers: int, embedding_size: int, hidden_size: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, embedding_size, padding_idx=PAD)
        self.rnn = nn.LSTM(embedding_size, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, n_answers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B = x.shape[0]
        story = x[:, 1:].flip(1)  # oldest sentence first
        seq = torch.cat([story.reshape(B, -1), x[:, 0]], dim=1)  # (B, M*J + J)
        real = seq != PAD
        # Left-align the real words (each moved to its rank among the real ones), so that the LSTM
        # reads them in order and padding only follows.
        L = seq.shape[1]
        pos = torch.where(real, real.long().cumsum(1) - 1, torch.full_like(seq, L))  # padding -> spare column L
        seq = torch.zeros(seq.shape[0], L + 1, dtype=seq.dtype, device=seq.device).scatter(1, pos, seq)[:, :L]
        lengths = real.sum(1).clamp(min=1)
        out, _ = self.rnn(self.embed(seq))
        last = out.gather(1, (lengths - 1).view(-1, 1, 1).expand(-1, 1, out.shape[2])).squeeze(1)
        return self.head(last)


@dataclass(eq=False, repr=False, kw_only=True)
class _StoryReader(TokenInput, SupervisedClassifier):
    """What the memory network and the LSTM reader share: stories (strings) in, one-word answers out."""

    memory_size: int = 50
    """Most recent story sentences kept (the paper's 50)."""
    epochs: int = 100
    batch_size: int = 32
    lr: float = 1e-2
    patience: int = 25
    standardize: bool = False
    """Unused: the inputs are word indices, which are not standardised."""

    _parameter_constraints: ClassVar[dict] = {"memory_size": Interval(int, 1, None)}
    _input_kind: ClassVar[str] = "text"
    _task: ClassVar[str] = "qa"

    def _stories(self, X, what: str = "X"):
        if isinstance(X, str):
            raise InputError(f"{what} must be a list or 1-D array of stories, not one string.")
        items = list(X.tolist() if isinstance(X, np.ndarray) else X)
        if not items:
            raise InputError(f"{what} has 0 stories; at least 1 is required.")
        return [parse_story(s, f"{what}[{i}]") for i, s in enumerate(items)]

    def _encode(self, stories) -> np.ndarray:
        """(n, 1 + M, J) ids: the question, then the most recent sentences first; unknown words -> 1."""
        index = self.word_index_
        M, J = self.memory_size_, self.sentence_length_
        out = np.zeros((len(stories), 1 + M, J), dtype=np.int64)
        for i, (sentences, question) in enumerate(stories):
            rows = [question, *reversed(sentences[-M:])]
            for r, sentence in enumerate(rows):
                ids = [index.get(w, UNK) for w in words(sentence)][:J]
                out[i, r, : len(ids)] = ids
        return out

    def _prepare_fit(self, X, y, validation_data) -> FitData:
        stories = self._stories(X)
        answers = [str(a) for a in (y.tolist() if isinstance(y, np.ndarray) else (y or []))]
        vocab = sorted({w for s, q in stories for t in (*s, q) for w in words(t)} | set(answers))
        self.vocabulary_ = ["<pad>", "<unk>", *vocab]
        self.word_index_ = {w: i + 2 for i, w in enumerate(vocab)}
        self.memory_size_ = min(self.memory_size, max(1, max(len(s) for s, _ in stories)))
        self.sentence_length_ = max(len(words(t)) for s, q in stories for t in (*s, q))
        if validation_data is not None:
            validation_data = (self._encode(self._stories(validation_data[0], "validation X")), validation_data[1])
        return super()._prepare_fit(self._encode(stories), y, validation_data)

    def _check_input(self, X):
        self._check_fitted()
        return self._encode(self._stories(X))

    def dataset_metrics(self, ds) -> dict[str, float]:
        out = {}
        for name, X, y in (
            ("train", ds.X_train, ds.y_train),
            ("val", ds.X_val, ds.y_val),
            ("test", ds.X_test, ds.y_test),
        ):
            out[f"{name}_accuracy"] = float(np.mean(self.predict(X) == np.asarray(y).astype(str)))
        return out

    def _fitted_state(self):
        tensors, meta = super()._fitted_state()
        meta.update(
            vocabulary_=self.vocabulary_, memory_size_=self.memory_size_, sentence_length_=self.sentence_length_
        )
        return tensors, meta

    def _restore_state(self, tensors, meta):
        self.classes_ = np.array(meta["classes_"])  # the memory network's answer words, before it is built
        self.vocabulary_ = list(meta["vocabulary_"])
        self.word_index_ = {w: i for i, w in enumerate(self.vocabulary_) if i >= 2}
        self.memory_size_, self.sentence_length_ = int(meta["memory_size_"]), int(meta["sentence_length_"])
        super()._restore_state(tensors, meta)


class _LinearStart(Callback):
    """Linear start (Sukhbaatar et al., 2015, section 4.2): the memory reads without a softmax for
    the first ``epochs`` epochs, then with it. Early stopping forgets the linear epochs at the switch,
    so the weights it keeps are of the network as it predicts."""

    def __init__(self, epochs: int, net: MemN2N, stopper):
        self.epochs, self.net, self.stopper = epochs, net, stopper

    def on_train_begin(self, loop) -> None:
        self.net.linear = loop.start_epoch < self.epochs

    def on_epoch_end(self, loop, epoch, logs) -> None:
        if epoch + 1 == self.epochs:
            self.net.linear = False
            if self.stopper is not None:
                self.stopper.best, self.stopper.best_epoch, self.stopper.wait = float("inf"), -1, 0
                self.stopper.best_state = None

    def on_train_end(self, loop) -> None:
        self.net.linear = False


class _Noisy(nn.Module):
    """Training-time random noise of the paper (section 4.1): each memory slot is shifted back by
    the number of empty slots drawn before it (10 % each), so the temporal encoding cannot
    overfit exact positions. Evaluation passes through unchanged."""

    def __init__(self, net: MemN2N, rate: float):
        super().__init__()
        self.net, self.rate = net, rate

    def forward(self, x):
        if self.training and self.rate > 0:
            story = x[:, 1:]
            M = story.shape[1]
            gaps = (torch.rand(story.shape[:2], device=x.device) < self.rate).long().cumsum(1)  # (B, M)
            slots = (torch.arange(M, device=x.device) + gaps).clamp(max=M - 1)
            shifted = torch.zeros_like(story)
            shifted.scatter_(1, slots.unsqueeze(-1).expand_as(story), story)
            x = torch.cat([x[:, :1], shifted], dim=1)
        return self.net(x)

    def hops(self, x):
        return self.net.hops(x)


@register_model(
    "memnet",
    task="qa",
    description="end-to-end memory network (Sukhbaatar et al., 2015): hops, position and temporal encoding",
    smoke={"data": "babi:task=1,n_train=100,n_test=40", "params": {"embedding_size": 8, "epochs": 2}},
)
@dataclass(eq=False, repr=False, kw_only=True)
class MemNet(_StoryReader):
    """Answer a question about a story with ``hops`` reads of a memory of its sentences.

    >>> from deepatlas.data import load_dataset
    >>> ds = load_dataset("babi:task=1,n_train=200,n_test=50")
    >>> MemNet(epochs=2).fit(ds.X_train, ds.y_train).predict(ds.X_test[:2]).shape
    (2,)
    """

    hops: int = 3
    """Reads of the memory; each read's output is added to the question for the next."""
    embedding_size: int = 20
    """Dimension ``d`` of the word embeddings (the paper's 20 for 1k examples)."""
    random_noise: float = 0.1
    """Share of empty memory slots inserted while training (random noise, the paper's 10 %)."""
    linear_start: int = 20
    """Epochs trained without the softmax over the memory before it is put in (linear start); 0 turns it
    off."""

    _parameter_constraints: ClassVar[dict] = {
        **_StoryReader._parameter_constraints,
        "hops": Interval(int, 1, None),
        "embedding_size": Interval(int, 1, None),
        "random_noise": Interval(float, 0, 1, "left"),
        "linear_start": Interval(int, 0, None),
    }

    def _make_loop(self, module, *args, **kwargs):
        loop = super()._make_loop(module, *args, **kwargs)
        if self.linear_start:
            stopper = next((cb for cb in loop.callbacks if isinstance(cb, EarlyStopping)), None)
            at = loop.callbacks.index(stopper) + 1 if stopper is not None else len(loop.callbacks)
            loop.callbacks.insert(at, _LinearStart(self.linear_start, module.net, stopper))
        return loop

    def _build_module(self, sample_shape, n_outputs):
        answer_ids = [self.word_index_.get(str(c), UNK) for c in self.classes_]
        net = MemN2N(
            len(self.vocabulary_), answer_ids, self.embedding_size, self.hops, self.memory_size_, self.sentence_length_
        )
        return _Noisy(net, self.random_noise)

    @torch.no_grad()
    def hop_attention(self, X) -> np.ndarray:
        """(n, hops, M) attention of each hop over the memory slots, oldest sentence first (slot
        ``i`` is story sentence ``i + 1`` when the story has at most ``memory_size_`` sentences)."""
        ids = self._check_input(X)
        self.module_.eval()
        device = next(self.module_.parameters()).device
        _, w = self.module_.hops(torch.as_tensor(ids, device=device))
        w = w.cpu().numpy()  # most recent first
        out = np.zeros_like(w)
        for i, (sentences, _) in enumerate(self._stories(X)):
            m = min(len(sentences), self.memory_size_)
            out[i, :, :m] = w[i, :, :m][:, ::-1]
        return out

    def write_run_plots(self, ds, plots_dir) -> list:
        """Hop attention over the sentences of three test stories, supporting facts marked."""
        from deepatlas.models.seq2seq.plots import hop_attention

        picks = list(range(min(3, len(ds.X_test))))
        X = [ds.X_test[i] for i in picks]
        stories = self._stories(X)
        supports = ds.meta.get("supports", {}).get("test", [[] for _ in ds.X_test])
        path = plots_dir / "hop_attention.png"
        hop_attention(
            [s for s, _ in stories], [q for _, q in stories], self.hop_attention(X), [supports[i] for i in picks], path
        )
        return [path]


@register_model(
    "lstm-reader",
    task="qa",
    description="LSTM that reads the whole story, then the question (the memory network's baseline)",
    smoke={"data": "babi:task=1,n_train=100,n_test=40", "params": {"hidden_size": 8, "embedding_size": 4, "epochs": 2}},
)
@dataclass(eq=False, repr=False, kw_only=True)
class LSTMReader(_StoryReader):
    """Answer a question by reading the story and the question as one word sequence with an LSTM
    (the baseline of Weston et al., 2015, and Sukhbaatar et al., 2015)."""

    hidden_size: int = 64
    """Units of the LSTM."""
    embedding_size: int = 32
    """Length of each word's learned vector."""
    lr: float = 3e-3
    clip_norm: float | None = 1.0
    """Rescale the gradients before each step so their global norm is at most this value; ``None`` does not
    clip."""

    _parameter_constraints: ClassVar[dict] = {
        **_StoryReader._parameter_constraints,
        "hidden_size": Interval(int, 1, None),
        "embedding_size": Interval(int, 1, None),
        "clip_norm": NoneOr(Interval(float, 0, None, "neither")),
    }

    def _build_module(self, sample_shape, n_outputs):
        return ReaderNet(len(self.vocabulary_), n_outputs, self.embedding_size, self.hidden_size)

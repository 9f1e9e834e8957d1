"""Inference paths of the seq2seq family, registered for their classes.

=============  =========================================  ============================================
model          part: input -> outputs                     how it is used
=============  =========================================  ============================================
Seq2Seq        ``encoder``: source ids (B, S) int64 ->    once per input
               ``memory``, ``keys``, ``mask``, ``h``,
               ``c``, ``feed`` (the decoder's start)
               ``step``: one packed float tensor           once per written token: greedy (or beam)
               (B, 1 + S, F) -> ``log_probs``, ``h``,      decoding loops outside the graph
               ``c``, ``feed``, ``weights``
MemNet,        story ids (B, 1 + M, J) int64 ->           one call per question
LSTMReader     ``logits``, ``probabilities``
=============  =========================================  ============================================

The export protocol gives a path one input, so the decoder step reads its state packed in one
tensor (:func:`pack_step`): row 0 holds the previous token and the state ``[token, h, c, feed]``,
rows ``1..S`` the encoder's ``[memory, keys, mask]`` of each source position. :func:`onnx_greedy`
decodes with two onnxruntime sessions exactly as :func:`~deepatlas.models.seq2seq.network.greedy_decode`
does with the network.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from deepatlas.export.adapters import cpu_copy
from deepatlas.export.protocol import ExportSpec, register_exporter
from deepatlas.models.seq2seq.network import BOS, EOS, PAD, Seq2SeqNet, greedy_decode


def _sizes(net: Seq2SeqNet) -> tuple[int, int, int]:
    """(H, D, K): decoder units, encoder state width, key width."""
    H, D = net.hidden_size, net.encoder.output_size
    return H, D, (D if net.attention == "none" else H)


def step_width(net: Seq2SeqNet) -> int:
    H, D, K = _sizes(net)
    return max(1 + 3 * H, D + K + 1)


def pack_step(net: Seq2SeqNet, token, h, c, feed, memory, keys, mask) -> torch.Tensor:
    """The decoder step's inputs as one float tensor (B, 1 + S, F); ``h``/``c``: (B, H)."""
    B, S, _ = memory.shape
    F_ = step_width(net)
    if keys.shape[1] != S:  # no attention: the summary, repeated at every position
        keys = keys.expand(-1, S, -1)
    head = torch.cat([token.float().unsqueeze(1), h, c, feed], 1)
    rows = torch.cat([memory, keys, mask.float().unsqueeze(-1)], 2)
    head = nn.functional.pad(head, (0, F_ - head.shape[1])).unsqueeze(1)
    rows = nn.functional.pad(rows, (0, F_ - rows.shape[2]))
    return torch.cat([head, rows], 1)


class EncoderPart(nn.Module):
    """Source ids (B, S) -> the decoder's start: memory, keys, mask (float), h, c, feed (B, H)."""

    def __init__(self, net: Seq2SeqNet):
        super().__init__()
        self.net = net

    def forward(self, ids: torch.Tensor):
        memory, keys, mask, h, c, feed = self.net.encode(ids)
        if keys.shape[1] != memory.shape[1]:
            keys = keys.expand(-1, memory.shape[1], -1)
        return memory, keys, mask.float(), h[0], c[0], feed


class StepPart(nn.Module):
    """Packed (B, 1 + S, F) -> log_probs (B, V), h, c, feed (B, H), weights (B, S)."""

    def __init__(self, net: Seq2SeqNet):
        super().__init__()
        self.net = net
        self.H, self.D, self.K = _sizes(net)

    def forward(self, packed: torch.Tensor):
        H, D, K = self.H, self.D, self.K
        head, rows = packed[:, 0], packed[:, 1:]
        token = head[:, 0].round().long()
        h, c, feed = head[:, 1 : 1 + H], head[:, 1 + H : 1 + 2 * H], head[:, 1 + 2 * H : 1 + 3 * H]
        memory, keys, mask = rows[..., :D], rows[..., D : D + K], rows[..., D + K] > 0.5
        log_probs, h, c, feed, weights = self.net.step(token, h.unsqueeze(0), c.unsqueeze(0), feed, memory, keys, mask)
        return log_probs, h[0], c[0], feed, weights


def seq2seq_spec(est, part=None) -> ExportSpec:
    est._check_fitted()
    net = cpu_copy(est.module_)
    V_src, V_tgt = len(est.src_vocab_), len(est.tgt_vocab_)
    S = int(est.src_len_)
    device = next(est.module_.parameters()).device

    def random_ids(rng, n, grow=0):  # sources of random lengths, PAD (0) after each one's end
        L = S + grow
        ids = rng.integers(4, V_src, (n, L), dtype=np.int64) if V_src > 4 else np.full((n, L), 1, np.int64)
        return np.where(np.arange(L) < rng.integers(1, L + 1, (n, 1)), ids, PAD)

    def encoded(X, label):
        if X is None or not len(X) or not isinstance(X[0], str):
            return None
        return est.encode_sources(list(X)[:256])[0], f"{label}, encoded"

    meta = {
        "source_vocabulary": est.src_vocab_,
        "target_vocabulary": est.tgt_vocab_,
        "level": est.level,
        "specials": {"pad": PAD, "unk": 1, "bos": BOS, "eos": EOS},
        "max_output_length": est._output_limit(),
        "attention": est.attention_kind,
        "cell": est.cell,
    }
    if part == "translate":
        limit = est._output_limit()

        def reference(ids):
            with torch.no_grad():
                found, _ = greedy_decode(est.module_.eval(), torch.as_tensor(ids, device=device), limit)
            found = found.cpu().numpy()
            return {"written": np.pad(found, ((0, 0), (0, limit - found.shape[1])))}

        return ExportSpec(
            module=TranslatePart(net, limit).eval(),
            example_input=torch.from_numpy(random_ids(np.random.default_rng(0), 4)),
            input_name="ids",
            output_names=("written",),
            dynamic_axes={0: "batch", 1: "time"},
            metadata={"kind": "translator", "max_length": int(est.max_length), **meta},
            reference=reference,
            random_input=random_ids,
            held_out=encoded,
        )
    if part in (None, "encoder"):

        def reference(ids):
            with torch.no_grad():
                outs = EncoderPart(est.module_.eval())(torch.as_tensor(ids, device=device))
            return dict(zip(("memory", "keys", "mask", "h", "c", "feed"), (o.cpu().numpy() for o in outs)))

        return ExportSpec(
            module=EncoderPart(net).eval(),
            example_input=torch.from_numpy(random_ids(np.random.default_rng(0), 4)),
            input_name="ids",
            output_names=("memory", "keys", "mask", "h", "c", "feed"),
            dynamic_axes={0: "batch", 1: "time"},
            metadata={"kind": "seq2seq-encoder", **meta},
            reference=reference,
            random_input=random_ids,
            held_out=encoded,
        )

    encoder = EncoderPart(net).eval()

    def random_packed(rng, n, grow=0):
        ids = torch.as_tensor(random_ids(rng, n, grow))
        with torch.no_grad():
            memory, keys, mask, h, c, feed = encoder(ids)
            token = torch.as_tensor(rng.integers(0, V_tgt, n))
            noise = lambda t: t + torch.as_tensor(rng.normal(0, 0.3, tuple(t.shape)), dtype=t.dtype)  # noqa: E731
            return pack_step(net, token, noise(h), noise(c), noise(feed), memory, keys, mask > 0.5).numpy()

    def reference(packed):
        with torch.no_grad():
            outs = StepPart(est.module_.eval())(torch.as_tensor(packed, device=device))
        return dict(zip(("log_probs", "h", "c", "feed", "weights"), (o.cpu().numpy() for o in outs)))

    def held_out_steps(X, label):
        found = encoded(X, label)
        if found is None:
            return None
        ids = torch.as_tensor(found[0][:64])
        with torch.no_grad():
            memory, keys, mask, h, c, feed = encoder(ids)
            token = torch.full((len(ids),), BOS, dtype=torch.long)
            return pack_step(net, token, h, c, feed, memory, keys, mask > 0.5).numpy(), f"{label}, first step"

    return ExportSpec(
        module=StepPart(net).eval(),
        example_input=torch.from_numpy(random_packed(np.random.default_rng(0), 4)),
        input_name="state",
        output_names=("log_probs", "h", "c", "feed", "weights"),
        dynamic_axes={0: "batch", 1: "time"},
        metadata={
            "kind": "seq2seq-step",
            "packing": "row 0: [token, h, c, feed]; rows 1..S: [memory, keys, mask]",
            **meta,
        },
        reference=reference,
        random_input=random_packed,
        held_out=held_out_steps,
    )


class TranslatePart(nn.Module):
    """Source ids (B, S) -> written ids (B, L): greedy decoding unrolled to the model's output limit
    ``L`` (``max_output_length``), ``</s>`` then padding; what ``deepatlas serve`` runs to translate."""

    def __init__(self, net: Seq2SeqNet, max_len: int):
        super().__init__()
        self.net, self.max_len = net, max_len

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        memory, keys, mask, h, c, feed = self.net.encode(ids)
        token = torch.full_like(ids[:, 0], BOS)
        done = token == EOS  # all False
        out = []
        for _ in range(self.max_len):
            log_probs, h, c, feed, _ = self.net.step(token, h, c, feed, memory, keys, mask)
            token = log_probs.argmax(-1).masked_fill(done, PAD)
            out.append(token)
            done = done | (token == EOS)
        return torch.stack(out, 1)


def encode_texts(meta: dict, texts: list[str]) -> tuple[np.ndarray, list[int]]:
    """Texts -> (source ids (n, S), unknown tokens per text) from an export's metadata (its source
    vocabulary and level), as :meth:`~deepatlas.models.seq2seq.seq2seq.Seq2Seq.encode_sources` does."""
    from deepatlas.models.seq2seq.seq2seq import tokenize

    index = {t: i for i, t in enumerate(meta["source_vocabulary"]) if i >= 4}
    toks = [tokenize(t, meta["level"])[: int(meta["max_length"])] for t in texts]
    ids = np.zeros((len(texts), max(1, max(len(t) for t in toks))), dtype=np.int64)
    for i, t in enumerate(toks):
        ids[i, : len(t)] = [index.get(w, 1) for w in t]
    return ids, [sum(w not in index for w in t) for t in toks]


def decode_ids(meta: dict, ids: np.ndarray) -> list[str]:
    """Written ids -> strings, up to each row's ``</s>``."""
    from deepatlas.models.seq2seq.seq2seq import detokenize

    vocab, out = meta["target_vocabulary"], []
    for row in np.asarray(ids).tolist():
        words = []
        for k in row:
            if k in (EOS, PAD):
                break
            words.append(vocab[k])
        out.append(detokenize(words, meta["level"]))
    return out


def onnx_greedy(encoder_session, step_session, ids: np.ndarray, max_len: int) -> np.ndarray:
    """Greedy decoding with two onnxruntime sessions (``encoder`` and ``step`` parts): (B, S) ids ->
    (B, L) written ids, as :func:`~deepatlas.models.seq2seq.network.greedy_decode` writes them."""
    memory, keys, mask, h, c, feed = encoder_session.run(None, {"ids": ids.astype(np.int64)})
    B, S, _ = memory.shape
    width = int(step_session.get_inputs()[0].shape[2])
    rows = np.concatenate([memory, keys, mask[..., None]], axis=2)
    rows = np.pad(rows, ((0, 0), (0, 0), (0, width - rows.shape[2])))
    token = np.full(B, BOS, dtype=np.int64)
    done = np.zeros(B, dtype=bool)
    out = []
    for _ in range(max_len):
        head = np.concatenate([token[:, None].astype(np.float32), h, c, feed], axis=1)
        head = np.pad(head, ((0, 0), (0, width - head.shape[1])))[:, None]
        log_probs, h, c, feed, _ = step_session.run(None, {"state": np.concatenate([head, rows], 1).astype(np.float32)})
        token = np.where(done, PAD, log_probs.argmax(-1))
        out.append(token)
        done |= token == EOS
        if done.all():
            break
    return np.stack(out, 1)


# ---- the story readers ---------------------------------------------------------------------------------
class StoryLogits(nn.Module):
    """Story ids (B, 1 + M, J) -> (logits, probabilities) (B, K)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, ids: torch.Tensor):
        logits = self.net(ids)
        return logits, torch.softmax(logits, dim=1)


def reader_spec(est, part=None) -> ExportSpec:
    est._check_fitted()
    net = getattr(est.module_, "net", est.module_)  # the memory network without its training noise
    M, J, V = int(est.memory_size_), int(est.sentence_length_), len(est.vocabulary_)
    device = next(est.module_.parameters()).device

    def random_input(rng, n):  # stories of random lengths, sentences of random lengths
        ids = rng.integers(2, V, (n, 1 + M, J), dtype=np.int64)
        words = np.arange(J) < rng.integers(1, J + 1, (n, 1 + M, 1))
        rows = np.arange(1 + M)[None, :, None] <= rng.integers(1, M + 1, (n, 1, 1))
        return np.where(words & rows, ids, PAD)

    def encoded(X, label):
        if X is None or not len(X) or not isinstance(X[0], str):
            return None
        return est._encode(est._stories(list(X)[:256])), f"{label}, encoded"

    def reference(ids):
        with torch.no_grad():
            logits = est.module_.eval()(torch.as_tensor(ids, device=device))
        return {"probabilities": torch.softmax(logits.double(), 1).cpu().numpy()}

    return ExportSpec(
        module=StoryLogits(cpu_copy(net)).eval(),
        example_input=torch.from_numpy(random_input(np.random.default_rng(0), 4)),
        input_name="ids",
        output_names=("logits", "probabilities"),
        dynamic_axes={0: "batch"},  # the memory has M slots (the temporal encoding's length)
        metadata={
            "kind": "classifier",
            "classes": est.classes_.tolist(),
            "decision": "argmax",
            "vocabulary": est.vocabulary_,
            "input": f"row 0 the question, then up to {M} story sentences, most recent first; {J} word ids each",
        },
        reference=reference,
        random_input=random_input,
        held_out=encoded,
    )


from deepatlas.models.seq2seq.memnet import LSTMReader, MemNet  # noqa: E402
from deepatlas.models.seq2seq.seq2seq import Seq2Seq  # noqa: E402

register_exporter(Seq2Seq, parts=("translate", "encoder", "step"))(seq2seq_spec)
register_exporter(MemNet)(reader_spec)
register_exporter(LSTMReader)(reader_spec)

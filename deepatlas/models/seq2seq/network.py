"""The encoder-decoder network with attention, and its greedy and beam-search decoders.

- Encoder: embedding, then a (bidirectional) GRU or LSTM. The backward direction reads each
  sequence reversed within its own length (a gather, not packing), so padding never reaches a real
  position and the graph exports to ONNX at any length.
- Attention over the encoder states, masked at padding (scores of padded positions are -inf before
  the softmax, so their weights are exactly 0 and each row sums to 1):
  ``additive`` (Bahdanau, Cho & Bengio, 2015, "Neural machine translation by jointly learning to
  align and translate"): ``e_j = v^T tanh(W s_{t-1} + U h_j)``, the context enters the recurrent
  step; ``multiplicative`` (Luong, Pham & Manning, 2015, "Effective approaches to attention-based
  neural machine translation", the *general* score ``s_t^T W h_j`` with input feeding): the context
  is read after the recurrent step; ``none``: the encoder's final states summarise the source and
  feed every step (Cho et al., 2014, "Learning phrase representations using RNN encoder-decoder").
- One decoder step has one signature for every variant, ``step(token, h, c, feed, memory, keys,
  mask) -> (log_probs, h, c, feed, weights)``, which is what the ONNX export of a step needs; a
  GRU carries a ``c`` it never reads.
- Beam search keeps ``beam_size`` hypotheses per source; a finished one carries on with padding at
  no cost, and the winner maximises ``log p / length ** length_penalty`` (Wu et al., 2016, "Google's
  neural machine translation system", length normalisation). With one beam it is greedy decoding.
"""

from __future__ import annotations

import torch
from torch import nn

PAD, UNK, BOS, EOS = 0, 1, 2, 3
SPECIALS = ("<pad>", "<unk>", "<s>", "</s>")


def reverse_within_length(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each row of ``x`` (B, S, ...) over its first ``lengths[b]`` positions; the padding
    stays in place at the end."""
    S = x.shape[1]
    pos = torch.arange(S, device=x.device).unsqueeze(0)  # (1, S)
    idx = torch.where(pos < lengths.unsqueeze(1), lengths.unsqueeze(1) - 1 - pos, pos)  # (B, S)
    if x.dim() == 3:
        idx = idx.unsqueeze(-1).expand(-1, -1, x.shape[2])
    return x.gather(1, idx)


class Encoder(nn.Module):
    """ids (B, S), 0-padded -> states (B, S, D*H), summary (B, D*H): the forward direction's last
    real state joined with the backward direction's state at the first position."""

    def __init__(self, vocab: int, embedding_size: int, hidden_size: int, cell: str, bidirectional: bool):
        super().__init__()
        self.embed = nn.Embedding(vocab, embedding_size, padding_idx=PAD)
        kind = {"gru": nn.GRU, "lstm": nn.LSTM}[cell]
        self.forward_rnn = kind(embedding_size, hidden_size, batch_first=True)
        self.backward_rnn = kind(embedding_size, hidden_size, batch_first=True) if bidirectional else None
        self.output_size = hidden_size * (2 if bidirectional else 1)

    def forward(self, ids: torch.Tensor):
        mask = ids != PAD
        lengths = mask.sum(1).clamp(min=1)
        e = self.embed(ids)
        out, _ = self.forward_rnn(e)  # (B, S, H): causal, so padding at the end changes no real state
        last = out.gather(1, (lengths - 1).view(-1, 1, 1).expand(-1, 1, out.shape[2])).squeeze(1)
        if self.backward_rnn is not None:
            back, _ = self.backward_rnn(reverse_within_length(e, lengths))
            back = reverse_within_length(back, lengths)
            out = torch.cat([out, back], dim=2)
            last = torch.cat([last, back[:, 0]], dim=1)
        return out * mask.unsqueeze(-1), last, mask


class Seq2SeqNet(nn.Module):
    """Encoder, attention and decoder; ``forward`` is the teacher-forced training pass."""

    def __init__(
        self,
        src_vocab: int,
        tgt_vocab: int,
        *,
        embedding_size: int,
        hidden_size: int,
        cell: str,
        attention: str,
        bidirectional: bool,
        dropout: float,
        src_len: int,
        teacher_forcing: float = 1.0,
    ):
        super().__init__()
        self.cell, self.attention, self.hidden_size = cell, attention, hidden_size
        self.src_len, self.teacher_forcing = src_len, teacher_forcing
        self.encoder = Encoder(src_vocab, embedding_size, hidden_size, cell, bidirectional)
        D = self.encoder.output_size
        self.init_h = nn.Linear(D, hidden_size)
        self.init_c = nn.Linear(D, hidden_size) if cell == "lstm" else None
        self.embed = nn.Embedding(tgt_vocab, embedding_size, padding_idx=PAD)
        # What the recurrent step reads besides the previous token: the context (additive), the
        # previous attentional state (multiplicative, input feeding) or the source summary (none).
        extra = hidden_size if attention == "multiplicative" else D
        kind = {"gru": nn.GRU, "lstm": nn.LSTM}[cell]
        self.rnn = kind(embedding_size + extra, hidden_size, batch_first=True)
        if attention == "additive":
            self.query = nn.Linear(hidden_size, hidden_size, bias=False)
            self.key = nn.Linear(D, hidden_size)
            self.v = nn.Linear(hidden_size, 1, bias=False)
        elif attention == "multiplicative":
            self.key = nn.Linear(D, hidden_size, bias=False)  # s^T W h = s . (W h)
        self.combine = nn.Linear(hidden_size + D, hidden_size)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.out = nn.Linear(hidden_size, tgt_vocab)

    # ---- the pieces that decoding and export share
    def encode(self, src: torch.Tensor):
        """src ids (B, S) -> (memory (B, S, D), keys (B, S, H'), mask (B, S), h0 (1, B, H), c0, feed0)."""
        memory, summary, mask = self.encoder(src)
        h0 = torch.tanh(self.init_h(summary)).unsqueeze(0)
        c0 = torch.tanh(self.init_c(summary)).unsqueeze(0) if self.init_c is not None else torch.zeros_like(h0)
        if self.attention == "none":
            keys = summary.unsqueeze(1)  # (B, 1, D): the fixed context of every step
        else:
            keys = self.key(memory)
        feed = torch.zeros_like(h0[0])  # (B, H): the previous attentional state (multiplicative only)
        return memory, keys, mask, h0, c0, feed

    def attend(self, query: torch.Tensor, memory, keys, mask):
        """query (B, H) -> (context (B, D), weights (B, S)); padded positions get weight 0."""
        if self.attention == "additive":
            scores = self.v(torch.tanh(self.query(query).unsqueeze(1) + keys)).squeeze(-1)
        else:
            scores = torch.bmm(keys, query.unsqueeze(-1)).squeeze(-1)
        scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        return torch.bmm(weights.unsqueeze(1), memory).squeeze(1), weights

    def step(self, token, h, c, feed, memory, keys, mask):
        """One decoder step: previous token (B,) -> (log-probabilities (B, V), h, c, feed, weights (B, S))."""
        e = self.drop(self.embed(token))  # (B, E)
        state = (h, c) if self.cell == "lstm" else h
        if self.attention == "additive":
            context, weights = self.attend(h[-1], memory, keys, mask)
            out, state = self.rnn(torch.cat([e, context], 1).unsqueeze(1), state)
            s = out[:, 0]
        elif self.attention == "multiplicative":
            out, state = self.rnn(torch.cat([e, feed], 1).unsqueeze(1), state)
            s = out[:, 0]
            context, weights = self.attend(s, memory, keys, mask)
        else:
            context = keys[:, 0]
            out, state = self.rnn(torch.cat([e, context], 1).unsqueeze(1), state)
            s = out[:, 0]
            weights = mask.float() / mask.float().sum(1, keepdim=True)  # no attention: uniform, for shape only
        attentional = torch.tanh(self.combine(torch.cat([s, context], 1)))
        log_probs = torch.log_softmax(self.out(self.drop(attentional)), dim=-1)
        h, c = state if self.cell == "lstm" else (state, c)
        return log_probs, h, c, attentional, weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, S + T): the source ids, then the decoder's inputs (``<s>`` and the target shifted
        right) -> log-probabilities (B, T, V). With ``teacher_forcing < 1`` each step feeds the
        model's own previous guess instead, with probability ``1 - teacher_forcing``, in training."""
        src, tgt_in = x[:, : self.src_len], x[:, self.src_len :]
        memory, keys, mask, h, c, feed = self.encode(src)
        outs = []
        token = tgt_in[:, 0]
        for t in range(tgt_in.shape[1]):
            log_probs, h, c, feed, _ = self.step(token, h, c, feed, memory, keys, mask)
            outs.append(log_probs)
            if t + 1 < tgt_in.shape[1]:
                token = tgt_in[:, t + 1]
                if self.training and self.teacher_forcing < 1.0:
                    own = log_probs.argmax(-1)
                    use_own = torch.rand(token.shape, device=token.device) >= self.teacher_forcing
                    token = torch.where(use_own & (token != PAD), own, token)
        return torch.stack(outs, 1)


@torch.no_grad()
def greedy_decode(net: Seq2SeqNet, src: torch.Tensor, max_len: int):
    """src (B, S) -> (token ids (B, L) ending at ``</s>`` then 0-padded, attention (B, L, S))."""
    memory, keys, mask, h, c, feed = net.encode(src)
    B = src.shape[0]
    token = torch.full((B,), BOS, dtype=torch.long, device=src.device)
    done = torch.zeros(B, dtype=torch.bool, device=src.device)
    ids, attn = [], []
    for _ in range(max_len):
        log_probs, h, c, feed, weights = net.step(token, h, c, feed, memory, keys, mask)
        token = log_probs.argmax(-1).masked_fill(done, PAD)
        ids.append(token)
        attn.append(weights)
        done = done | (token == EOS)
        if bool(done.all()):
            break
    return torch.stack(ids, 1), torch.stack(attn, 1)


@torch.no_grad()
def beam_decode(net: Seq2SeqNet, src: torch.Tensor, max_len: int, beam_size: int, length_penalty: float):
    """src (B, S) -> token ids (B, L) of the best hypothesis per source under length normalisation."""
    B, k = src.shape[0], beam_size
    memory, keys, mask, h, c, feed = net.encode(src)

    def tile(t, dim=0):
        return t.repeat_interleave(k, dim=dim)

    memory, keys, mask, feed = tile(memory), tile(keys), tile(mask), tile(feed)
    h, c = tile(h, 1), tile(c, 1)
    scores = torch.full((B, k), float("-inf"), device=src.device)
    scores[:, 0] = 0.0  # one live hypothesis at the start: no duplicates in the first top-k
    lengths = torch.zeros(B, k, device=src.device)
    finished = torch.zeros(B, k, dtype=torch.bool, device=src.device)
    history = torch.zeros(B, k, 0, dtype=torch.long, device=src.device)
    token = torch.full((B * k,), BOS, dtype=torch.long, device=src.device)
    rows = torch.arange(B, device=src.device).unsqueeze(1)
    for _ in range(max_len):
        log_probs, h, c, feed, _ = net.step(token, h, c, feed, memory, keys, mask)
        V = log_probs.shape[-1]
        cand = log_probs.view(B, k, V)
        # A finished hypothesis continues only with padding, at no cost.
        pad_only = torch.full_like(cand, float("-inf"))
        pad_only[..., PAD] = 0.0
        cand = torch.where(finished.unsqueeze(-1), pad_only, cand) + scores.unsqueeze(-1)
        scores, flat = cand.view(B, k * V).topk(k, dim=1)
        parent, token2 = flat // V, flat % V
        was_finished = finished.gather(1, parent)
        lengths = lengths.gather(1, parent) + (~was_finished).float()
        finished = was_finished | (token2 == EOS)
        history = torch.cat([history[rows, parent], token2.unsqueeze(-1)], dim=2)
        gather = (rows * k + parent).view(-1)
        h, c, feed = h[:, gather], c[:, gather], feed[gather]
        token = token2.view(-1)
        if bool(finished.all()):
            break
    normalised = scores / lengths.clamp(min=1) ** length_penalty
    best = normalised.argmax(1)
    return history[torch.arange(B, device=src.device), best]

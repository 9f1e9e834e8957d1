"""Recurrent layers: torch's fused RNN / GRU / LSTM, our peephole LSTM, and one encoder over both.

The peephole LSTM (Gers & Schmidhuber, 2000, "Recurrent nets that time and count"; Gers,
Schraudolph & Schmidhuber, 2002, "Learning precise timing with LSTM recurrent networks") lets the
gates look at the cell state: the input and forget gates see ``c_{t-1}``, the output gate sees
``c_t``. Its weights use ``nn.LSTM``'s layout (gates ordered i, f, g, o), so with the peephole
weights at zero it computes exactly what ``nn.LSTM`` computes. The loop over time is the only
Python loop; each step is one ``addmm`` for the whole batch.

Plain tanh RNN: Elman (1990), "Finding structure in time". GRU: Cho et al. (2014), "Learning phrase
representations using RNN encoder-decoder". LSTM: Hochreiter & Schmidhuber (1997). Bidirectional
RNNs: Schuster & Paliwal (1997).

Variable lengths: an encoder takes padded ``(B, T, F)`` input and optional ``lengths``; fused cells
get a packed sequence, the peephole cell freezes each sequence's state after its last step.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

CELLS = ("rnn", "gru", "lstm", "peephole-lstm")


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """Reverse each sequence of ``x`` (B, T, *) within its own length; padding stays in place."""
    if lengths is None:
        return x.flip(1)
    T = x.shape[1]
    t = torch.arange(T, device=x.device).unsqueeze(0)  # (1, T)
    lengths = lengths.to(x.device).unsqueeze(1)  # (B, 1)
    idx = torch.where(t < lengths, lengths - 1 - t, t)  # (B, T)
    idx = idx.view(*idx.shape, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(1, idx)


class PeepholeLSTM(nn.Module):
    """A (multi-layer, optionally bidirectional) LSTM with peephole connections.

    Same call signature as ``nn.LSTM(batch_first=True)``: ``forward(x (B, T, F), lengths=None)``
    returns ``output (B, T, D*H)`` and ``(h_n, c_n)`` each ``(num_layers*D, B, H)``; ``h_n`` is the
    state after each sequence's last step.
    """

    def __init__(
        self, input_size: int, hidden_size: int, num_layers: int = 1, bidirectional: bool = False, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bidirectional, self.dropout = bidirectional, dropout
        H, D = hidden_size, 2 if bidirectional else 1
        for layer in range(num_layers):
            n_in = input_size if layer == 0 else D * H
            for suffix in ("", "_reverse")[:D]:
                name = f"l{layer}{suffix}"
                self.register_parameter(f"weight_ih_{name}", nn.Parameter(torch.empty(4 * H, n_in)))
                self.register_parameter(f"weight_hh_{name}", nn.Parameter(torch.empty(4 * H, H)))
                self.register_parameter(f"bias_ih_{name}", nn.Parameter(torch.empty(4 * H)))
                self.register_parameter(f"bias_hh_{name}", nn.Parameter(torch.empty(4 * H)))
                # Peephole weights are diagonal: one per cell for each of the i, f, o gates.
                self.register_parameter(f"weight_peep_{name}", nn.Parameter(torch.empty(3, H)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)  # nn.LSTM's initialisation
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def _direction(self, x: torch.Tensor, name: str, mask: torch.Tensor | None):
        """One direction of one layer over ``x`` (B, T, F); returns (B, T, H), h (B, H), c (B, H)."""
        w_ih, w_hh = getattr(self, f"weight_ih_{name}"), getattr(self, f"weight_hh_{name}")
        bias = getattr(self, f"bias_ih_{name}") + getattr(self, f"bias_hh_{name}")
        p_i, p_f, p_o = getattr(self, f"weight_peep_{name}")  # (H,) each
        B, T, _ = x.shape
        H = self.hidden_size
        xw = torch.addmm(bias, x.reshape(B * T, -1), w_ih.t()).view(B, T, 4 * H)  # all steps at once
        w_hh_t = w_hh.t()
        h = x.new_zeros(B, H)
        c = x.new_zeros(B, H)
        outs = []
        for t in range(T):
            gates = torch.addmm(xw[:, t], h, w_hh_t)  # (B, 4H)
            i, f, g, o = gates.chunk(4, dim=1)
            i = torch.sigmoid(i + p_i * c)
            f = torch.sigmoid(f + p_f * c)
            c_new = f * c + i * torch.tanh(g)
            o = torch.sigmoid(o + p_o * c_new)
            h_new = o * torch.tanh(c_new)
            if mask is not None:  # past a sequence's end its state stays as it was
                m = mask[:, t : t + 1]  # (B, 1)
                h_new = torch.where(m, h_new, h)
                c_new = torch.where(m, c_new, c)
            h, c = h_new, c_new
            outs.append(h)
        return torch.stack(outs, dim=1), h, c

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None):
        mask = None
        if lengths is not None:
            mask = torch.arange(x.shape[1], device=x.device).unsqueeze(0) < lengths.to(x.device).unsqueeze(1)
        hs, cs = [], []
        for layer in range(self.num_layers):
            out, h, c = self._direction(x, f"l{layer}", mask)
            outputs = [out]
            hs.append(h)
            cs.append(c)
            if self.bidirectional:
                out_r, h_r, c_r = self._direction(reverse_padded(x, lengths), f"l{layer}_reverse", mask)
                outputs.append(reverse_padded(out_r, lengths))
                hs.append(h_r)
                cs.append(c_r)
            x = torch.cat(outputs, dim=2) if self.bidirectional else out  # (B, T, D*H)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                x = nn.functional.dropout(x, self.dropout, training=True)
        return x, (torch.stack(hs), torch.stack(cs))


class RecurrentEncoder(nn.Module):
    """A recurrent stack over padded batches.

    ``forward(x (B, T, F), lengths (B,) or None) -> (outputs (B, T, D*H), last (B, D*H))`` where
    ``last`` joins the final states of the top layer's directions (for the backward direction, the
    state after reading the whole sequence back to its first step).
    """

    def __init__(
        self,
        input_size: int,
        cell: str = "lstm",
        hidden_size: int = 64,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.cell, self.num_directions = cell, 2 if bidirectional else 1
        self.output_size = self.num_directions * hidden_size
        drop = dropout if num_layers > 1 else 0.0
        if cell == "peephole-lstm":
            self.rnn = PeepholeLSTM(input_size, hidden_size, num_layers, bidirectional, drop)
        else:
            kind = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[cell]
            extra = {"nonlinearity": "tanh"} if cell == "rnn" else {}
            self.rnn = kind(
                input_size,
                hidden_size,
                num_layers=num_layers,
                bidirectional=bidirectional,
                dropout=drop,
                batch_first=True,
                **extra,
            )

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None):
        T = x.shape[1]
        if self.cell == "peephole-lstm":
            out, state = self.rnn(x, lengths)
        elif lengths is None:
            out, state = self.rnn(x)
        else:
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, state = self.rnn(packed)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=T)  # (B, T, D*H)
        h_n = state[0] if isinstance(state, tuple) else state  # (layers*D, B, H)
        last = h_n[-1] if self.num_directions == 1 else torch.cat([h_n[-2], h_n[-1]], dim=1)  # (B, D*H)
        return out, last

"""A linear-chain conditional random field over per-token scores (Lafferty, McCallum and Pereira,
2001), as the output layer of a BiLSTM tagger (Huang, Xu and Yu, 2015; Lample et al., 2016).

The score of a tag path ``y`` for emissions ``e`` (B, T, K) is
``start[y_0] + sum_t e[t, y_t] + sum_t trans[y_{t-1}, y_t] + end[y_last]``; the loss is the
negative log-likelihood ``log Z - score(gold)``, with ``log Z`` from the forward algorithm, and
decoding is Viterbi's dynamic programme. Sequences are left-aligned; ``mask`` (B, T) marks the
real tokens (the first token of each sequence must be real). Everything runs in float32 (the
emissions are cast), so bf16 autocast does not touch the recursions. ``tests/test_text.py``
checks both recursions against brute-force enumeration of every path.
"""

from __future__ import annotations

import torch
from torch import nn


class CRF(nn.Module):
    def __init__(self, n_tags: int):
        super().__init__()
        self.transitions = nn.Parameter(torch.zeros(n_tags, n_tags))  # [i, j]: score of tag i followed by j
        self.start = nn.Parameter(torch.zeros(n_tags))
        self.end = nn.Parameter(torch.zeros(n_tags))

    def path_score(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B,) score of the given tag paths (entries of ``tags`` under ``mask == False`` are ignored)."""
        em, m = emissions.float(), mask.to(emissions.device)
        tags = torch.where(m, tags, torch.zeros_like(tags))
        score = self.start[tags[:, 0]] + em.gather(2, tags.unsqueeze(2)).squeeze(2).mul(m).sum(1)
        steps = self.transitions[tags[:, :-1], tags[:, 1:]] * m[:, 1:]
        last = tags.gather(1, (m.sum(1, keepdim=True) - 1).clamp(min=0)).squeeze(1)
        return score + steps.sum(1) + self.end[last]

    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B,) log of the sum of exp(score) over every tag path (the forward algorithm)."""
        em = emissions.float()
        alpha = self.start + em[:, 0]  # (B, K)
        for t in range(1, em.shape[1]):
            step = torch.logsumexp(alpha.unsqueeze(2) + self.transitions + em[:, t].unsqueeze(1), dim=1)
            alpha = torch.where(mask[:, t].unsqueeze(1), step, alpha)
        return torch.logsumexp(alpha + self.end, dim=1)

    def nll(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood of the gold paths over the batch."""
        return (self.log_partition(emissions, mask) - self.path_score(emissions, tags, mask)).mean()

    @torch.no_grad()
    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T) the highest-scoring tag path of each sequence (Viterbi); 0 after each sequence's end."""
        em = emissions.float()
        B, T, K = em.shape
        delta = self.start + em[:, 0]
        back = []
        for t in range(1, T):
            cand = delta.unsqueeze(2) + self.transitions  # (B, K_prev, K)
            best, arg = cand.max(1)
            step = best + em[:, t]
            keep = mask[:, t].unsqueeze(1)
            delta = torch.where(keep, step, delta)
            # past a sequence's end, each tag points to itself, so the backtrace passes through unchanged
            back.append(torch.where(keep, arg, torch.arange(K, device=em.device).expand(B, K)))
        tag = (delta + self.end).argmax(1)  # (B,)
        path = [tag]
        for arg in reversed(back):
            tag = arg.gather(1, tag.unsqueeze(1)).squeeze(1)
            path.append(tag)
        out = torch.stack(path[::-1], dim=1)
        return torch.where(mask, out, torch.zeros_like(out))

"""Inference paths of the recurrent family (sequence classifiers, regressors and taggers, CTC,
the character LM and the text classifier), registered for their classes.

===================  ======================================  =====================================
family               module: raw input -> outputs            reference
===================  ======================================  =====================================
sequence taggers     (B, T, F) -> per-step ``logits``,        ``predict_proba``
                     ``probabilities``, dynamic ``time``
CTC recognizer       (B, T, F) -> per-step ``log_probs``      ``predict_log_proba``
                     (decoding stays outside the graph)
CharLM               character ids (B, T) -> next-character   the network called directly (no
                     ``log_probs``, dynamic ``time``          public per-step method)
TextClassifier       character ids (B, L), 0-padded ->        ``predict_proba`` of the documents
                     ``logits``, ``probabilities``            the ids spell
===================  ======================================  =====================================

References: Graves et al. (2006), "Connectionist temporal classification: labelling unsegmented
sequence data with recurrent neural networks"; Cho et al. (2014), "Learning phrase
representations using RNN encoder-decoder for statistical machine translation" (the GRU).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from deepatlas.errors import InputError
from deepatlas.export.adapters import (
    EXAMPLE_STEPS,
    FeatureStandardize,
    cpu_copy,
    example_and_random,
    preprocessing_of,
    supervised_spec,
)
from deepatlas.export.protocol import ExportSpec, register_exporter


# ---- sequence taggers and the CTC recognizer: per-step outputs, dynamic time -----------------------
class PerStep(nn.Module):
    """(B, T, F) raw -> per-step outputs: ``(logits, probabilities)`` (B, T, C) for a tagger, the
    network's own ``log_probs`` (B, T, C) for the CTC recognizer."""

    def __init__(self, net: nn.Module, mean, scale, log_probs: bool):
        super().__init__()
        self.standardize = FeatureStandardize(mean, scale)
        self.net = net
        self.log_probs = log_probs

    def forward(self, x: torch.Tensor):
        out = self.net(self.standardize(x))  # (B, T, C)
        return out if self.log_probs else (out, torch.softmax(out, dim=-1))


def check_static_graph(est) -> None:
    """Refuse what has no graph valid at every length: a masked network (it packs sequences by
    length) and the peephole LSTM (its Python time loop would be unrolled at the example's length,
    and onnxruntime would then ignore every step past it without a word)."""
    name = type(est).__name__
    if getattr(est, "cell", None) == "peephole-lstm":
        raise InputError(
            f"{name} with cell='peephole-lstm' does not export: its time loop runs in Python and ONNX would "
            "fix it at one sequence length. Serve the run with the torch backend, or train cell='lstm'."
        )
    if getattr(est, "masked_", False):
        raise InputError(
            f"{name} was trained on sequences of different lengths (a masked network); "
            "only networks trained on equal-length sequences export."
        )


def per_step_spec(est, part=None) -> ExportSpec:
    est._check_fitted()
    check_static_graph(est)
    ctc = type(est).__name__ == "CTCRecognizer"
    example, random_input = example_and_random(est, (EXAMPLE_STEPS, int(est.n_features_in_)), per_feature=True)
    module = PerStep(cpu_copy(est.module_), est.mean_, est.scale_, log_probs=ctc).eval()
    meta = {"preprocessing": dict(preprocessing_of(est), per="feature")}
    if ctc:
        meta.update(kind="sequence", blank=0, alphabet=est.alphabet_, decoding="outside the graph (greedy or beam)")
        names = ("log_probs",)

        def reference(X):
            return {"log_probs": est.predict_log_proba(X)}

    else:
        meta.update(kind="tagger", classes=est.classes_.tolist(), decision="argmax per step")
        names = ("logits", "probabilities")

        def reference(X):
            return {"probabilities": np.asarray(est.predict_proba(X))}

    return ExportSpec(
        module=module,
        example_input=example,
        output_names=names,
        metadata=meta,
        dynamic_axes={0: "batch", 1: "time"},
        reference=reference,
        random_input=random_input,
    )


# ---- the character language model: next-character log-probabilities --------------------------------
class NextCharacter(nn.Module):
    """Character ids (B, T) int64 -> ``log_probs`` (B, T, V) of the next character at each step,
    from a zero state (as ``bits_per_char`` starts each stream)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.net(ids), dim=-1)


def charlm_spec(est, part=None) -> ExportSpec:
    from deepatlas.models.rnn.charlm import encode

    est._check_fitted()
    V = int(est.n_outputs_)
    L = min(int(est.seq_len), 32)

    def random_input(rng, n, grow=0):  # real characters only (PAD and UNK are 0 and 1)
        return rng.integers(2, V, (n, L + grow), dtype=np.int64)

    def windows_of_text(X, label):  # the run's test text, in windows of seq_len characters
        if X is None or not len(X) or not isinstance(X[0], str):
            return None
        ids = encode(str(X[0]), est._index())
        n = min((len(ids) - 1) // est.seq_len, 16)
        return (ids[: n * est.seq_len].reshape(n, est.seq_len), f"{label}, {n} windows") if n else None

    device = next(est.module_.parameters()).device

    def reference(ids):  # no public per-step method: the estimator's network, on its device
        est.module_.eval()
        with torch.no_grad():
            return {"log_probs": torch.log_softmax(est.module_(torch.as_tensor(ids, device=device)), -1).cpu().numpy()}

    return ExportSpec(
        module=NextCharacter(cpu_copy(est.module_)).eval(),
        example_input=torch.from_numpy(random_input(np.random.default_rng(0), 4)),
        input_name="ids",
        output_names=("log_probs",),
        dynamic_axes={0: "batch", 1: "time"},
        metadata={"kind": "language_model", "vocabulary": ["<pad>", "<unk>", *est.vocabulary_], "state": "zero"},
        reference=reference,
        random_input=random_input,
        held_out=windows_of_text,
    )


# ---- the character-level text classifier: packed sequences as static ops ---------------------------
class LengthAwareRecurrent(nn.Module):
    """A fused RNN/GRU/LSTM stack read over each sequence's real length without packing, so that
    it exports: every layer and direction becomes a one-direction fused module. The forward
    direction reads left-aligned sequences as they are; the backward one reads each sequence
    reversed within its length (``reverse_padded``). Padded steps come after the real ones in
    both, so they never reach a real step's output; ``last`` takes the output at step length - 1.
    (B, T, F), lengths (B,) -> last (B, D*H), as ``RecurrentEncoder`` with packing returns."""

    def __init__(self, rnn: nn.RNNBase):
        super().__init__()
        self.num_layers, self.bidirectional = rnn.num_layers, rnn.bidirectional
        kind = type(rnn)
        extra = {"nonlinearity": rnn.nonlinearity} if isinstance(rnn, nn.RNN) else {}
        self.cells = nn.ModuleList()
        for layer in range(rnn.num_layers):
            for suffix in ("", "_reverse") if rnn.bidirectional else ("",):
                W_ih = getattr(rnn, f"weight_ih_l{layer}{suffix}")
                cell = kind(W_ih.shape[1], rnn.hidden_size, batch_first=True, bias=rnn.bias, **extra)
                with torch.no_grad():
                    for name in ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if rnn.bias else ()):
                        getattr(cell, f"{name}_l0").copy_(getattr(rnn, f"{name}_l{layer}{suffix}"))
                self.cells.append(cell)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        from deepatlas.models.rnn.cells import reverse_padded

        index = (lengths - 1).view(-1, 1, 1)  # (B, 1, 1): each sequence's last real step
        D = 2 if self.bidirectional else 1
        lasts: list[torch.Tensor] = []
        for layer in range(self.num_layers):
            outs, lasts = [], []
            for d in range(D):
                seq = x if d == 0 else reverse_padded(x, lengths)
                out = self.cells[layer * D + d](seq)[0]  # (B, T, H)
                lasts.append(out.gather(1, index.expand(-1, 1, out.shape[2])).squeeze(1))  # (B, H)
                outs.append(out if d == 0 else reverse_padded(out, lengths))
            x = torch.cat(outs, dim=2)  # (B, T, D*H)
        return torch.cat(lasts, dim=1)  # (B, D*H)


class TextLogits(nn.Module):
    """Character ids (B, L) int64, 0-padded on the right -> (logits, probabilities) (B, K)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.embed, self.head = net.embed, net.head
        rnn = net.encoder.rnn
        self.peephole = not isinstance(rnn, nn.RNNBase)
        self.encoder = net.encoder if self.peephole else LengthAwareRecurrent(rnn)

    def forward(self, ids: torch.Tensor):
        lengths = (ids != 0).sum(1).clamp(min=1)  # (B,): an empty document reads one padding step
        x = self.embed(ids)  # (B, L, E)
        last = self.encoder(x, lengths)[1] if self.peephole else self.encoder(x, lengths)
        logits = self.head(last)  # (B, K)
        return logits, torch.softmax(logits, dim=1)


def text_classifier_spec(est, part=None) -> ExportSpec:
    est._check_fitted()
    L, V = int(est.length_), len(est.vocabulary_) + 2
    unknown = next(chr(c) for c in range(0x2400, 0x2500) if chr(c) not in est.vocabulary_)  # reads as UNK

    def random_input(rng, n):  # documents of random lengths, PAD (0) after each one's end
        ids = rng.integers(1, V, (n, L), dtype=np.int64)
        return np.where(np.arange(L) < rng.integers(1, L + 1, (n, 1)), ids, 0)

    def documents(ids) -> list[str]:  # the inverse of the estimator's encoding
        chars = [unknown, *est.vocabulary_]
        return ["".join(chars[i - 1] for i in row[: int((row != 0).sum())]) for row in np.asarray(ids)]

    def encoded(X, label):
        return None if X is None else (est._encode_docs(est._documents(X)), f"{label}, encoded")

    return ExportSpec(
        module=TextLogits(cpu_copy(est.module_)).eval(),
        example_input=torch.from_numpy(random_input(np.random.default_rng(0), 4)),
        input_name="ids",
        output_names=("logits", "probabilities"),
        metadata={
            "kind": "classifier",
            "classes": est.classes_.tolist(),
            "decision": "argmax",
            "vocabulary": ["<pad>", "<unk>", *est.vocabulary_],
            "input": f"character ids, left-aligned, 0-padded to {L} (longer documents: the first {L})",
        },
        reference=lambda ids: {"probabilities": est.predict_proba(documents(ids))},
        random_input=random_input,
        held_out=encoded,
    )


def sequence_spec(est, part=None) -> ExportSpec:
    """Recurrent classifiers and regressors: (B, T, F) with a dynamic ``time`` axis and per-feature
    standardisation. Only networks trained on equal-length sequences (no mask channel): a masked
    network packs sequences by length, which has no static graph. (Until the recurrent family
    defines its own ``_export_module``, which takes precedence.)"""
    est._check_fitted()
    check_static_graph(est)
    return supervised_spec(est, part, sequence=True)


from deepatlas.models.rnn.charlm import CharLM, TextClassifier  # noqa: E402
from deepatlas.models.rnn.ctc import CTCRecognizer  # noqa: E402
from deepatlas.models.rnn.recurrent import RNNClassifier, RNNRegressor, SequenceTagger  # noqa: E402

register_exporter(SequenceTagger)(per_step_spec)
register_exporter(CTCRecognizer)(per_step_spec)
register_exporter(CharLM)(charlm_spec)
register_exporter(TextClassifier)(text_classifier_spec)
register_exporter(RNNClassifier)(sequence_spec)
register_exporter(RNNRegressor)(sequence_spec)

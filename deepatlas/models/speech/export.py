"""Inference paths of the speech models, waveform in, with the audio features inside the graph
(``torch.stft`` exports as ONNX's STFT):

==============  ==============================================  ==========================
model           module: raw input -> outputs                    reference
==============  ==============================================  ==========================
SpeechCNN       waveforms (B, clip samples) -> ``logits``,       ``predict_proba``
                ``probabilities``
SpeechCTC       waveforms (B, N), dynamic ``time`` ->            ``predict_log_proba``
                per-frame ``log_probs`` (decoding outside)
==============  ==============================================  ==========================
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from deepatlas.export.adapters import FeatureStandardize, cpu_copy, preprocessing_of
from deepatlas.export.protocol import ExportSpec, register_exporter
from deepatlas.models.rnn.export import check_static_graph
from deepatlas.models.speech.ctc import SpeechCTC
from deepatlas.models.speech.features import SAMPLE_RATE
from deepatlas.models.speech.kws import SpeechCNN, clip_waves

HELD_OUT = 32  # test utterances checked


class WaveformModel(nn.Module):
    """Waveforms -> features -> standardised -> network; ``(logits, probabilities)`` or ``log_probs``."""

    def __init__(self, front: nn.Module, mean, scale, net: nn.Module, log_probs: bool):
        super().__init__()
        self.front, self.standardize, self.net, self.log_probs = front, FeatureStandardize(mean, scale), net, log_probs

    def forward(self, wave: torch.Tensor):
        out = self.net(self.standardize(self.front(wave)))
        return out if self.log_probs else (out, torch.softmax(out, dim=-1))


def _audio_meta(est, extra: dict) -> dict:
    pre = dict(preprocessing_of(est), per="feature")
    pre["audio"] = {
        "sample_rate": SAMPLE_RATE,
        "features": est.features,
        "n_mels": est.n_mels,
        "n_mfcc": est.n_mfcc,
        "hop_ms": est.hop_ms,
        **extra,
    }
    return {"preprocessing": pre, "input": f"mono waveform, float32 samples in [-1, 1] at {SAMPLE_RATE} Hz"}


def _noise(length: int, hop: int):
    def random_input(rng: np.random.Generator, n: int, grow: int = 0) -> np.ndarray:
        return (0.1 * rng.standard_normal((n, length + grow * hop))).astype(np.float32)

    return random_input


@register_exporter(SpeechCNN)
def keyword_spec(est, part=None) -> ExportSpec:
    est._check_fitted()
    F = est.n_features_in_ // est.input_shape_[0]
    mean, scale = np.asarray(est.mean_)[:F], np.asarray(est.scale_)[:F]
    module = WaveformModel(est._front_end().eval(), mean, scale, cpu_copy(est.module_), log_probs=False).eval()
    random_input = _noise(est.clip_samples_, 0)
    meta = _audio_meta(est, {"clip_samples": est.clip_samples_})
    meta.update(kind="classifier", classes=est.classes_.tolist(), decision="argmax")
    meta["preprocessing"].update(mean=mean.tolist(), scale=scale.tolist())
    return ExportSpec(
        module=module,
        example_input=torch.from_numpy(random_input(np.random.default_rng(0), 4)),
        output_names=("logits", "probabilities"),
        metadata=meta,
        reference=lambda X: {"probabilities": est.predict_proba(X)},
        random_input=random_input,
        held_out=lambda X, label: None if X is None else (clip_waves(list(X[:HELD_OUT]), est.clip_samples_), label),
    )


def _padded(X) -> np.ndarray:
    waves = [np.asarray(w, np.float32) for w in X[:HELD_OUT]]
    return clip_waves(waves, max(len(w) for w in waves))


@register_exporter(SpeechCTC)
def transcriber_spec(est, part=None) -> ExportSpec:
    est._check_fitted()
    check_static_graph(est)
    front = est._front_end().eval()
    module = WaveformModel(front, est.mean_, est.scale_, cpu_copy(est.module_), log_probs=True).eval()
    random_input = _noise(SAMPLE_RATE, front.hop)
    meta = _audio_meta(est, {})
    meta.update(kind="sequence", blank=0, alphabet=est.alphabet_, decoding="outside the graph (greedy or beam)")
    return ExportSpec(
        module=module,
        example_input=torch.from_numpy(random_input(np.random.default_rng(0), 4)),
        output_names=("log_probs",),
        metadata=meta,
        dynamic_axes={0: "batch", 1: "time"},
        reference=lambda X: {"log_probs": est.predict_log_proba(X)},
        random_input=random_input,
        held_out=lambda X, label: None if X is None else (_padded(X), label),
    )

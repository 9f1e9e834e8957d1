"""Digit strings from audio: the project's bidirectional LSTM trained with CTC
(:class:`deepatlas.models.rnn.ctc.CTCRecognizer`, Graves et al., 2006) reading log-mel frames,
with SpecAugment (Park et al., 2019) on the training frames; greedy or prefix-beam decoding. By
default a strided convolution halves the frame rate before two bidirectional LSTM layers (one
output step per 40 ms), which costs about what one layer at the full rate did.

Each utterance's frames are computed on its own samples; a batch is padded with the frame of
digital silence (what zeros appended to the waveform give), so the network needs no mask, runs
the same at any length and exports with a dynamic time axis (Graves & Jaitly, 2014, "Towards
end-to-end speech recognition with recurrent neural networks", trained such networks on
spectrogram frames).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from deepatlas._validation import Interval
from deepatlas.errors import InputError
from deepatlas.models.base import column_statistics
from deepatlas.models.rnn.ctc import CTCNet, CTCRecognizer
from deepatlas.models.speech.features import AudioMixin, as_waveforms, frames_of, pad_frames
from deepatlas.registry import register_model


class ConvSubsample(nn.Module):
    """(B, T, F) -> (B, ceil(T / stride), channels): a 1-D convolution over time of
    ``2 * stride + 1`` frames at ``stride``, then ReLU. Fewer steps make the LSTM above it cheaper
    per epoch (Amodei et al., 2016, "Deep Speech 2", strided convolutions before the recurrent
    layers; Sak et al., 2015, "Fast and accurate recurrent neural network acoustic models for speech
    recognition", lower frame rates for CTC)."""

    def __init__(self, n_features: int, channels: int, stride: int):
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv1d(n_features, channels, 2 * stride + 1, stride=stride, padding=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x.transpose(1, 2))).transpose(1, 2)


def subsampled_steps(steps, stride: int):
    """Output steps of :class:`ConvSubsample` for ``steps`` input frames: ``ceil(steps / stride)``."""
    return -(-np.asarray(steps) // stride)


class AugmentedCTCNet(CTCNet):
    """:class:`CTCNet` with SpecAugment on its (standardised) input frames while training and,
    with ``stride`` > 1, a :class:`ConvSubsample` of ``channels`` between them and the LSTM."""

    def __init__(self, n_features: int, *args, augment, stride: int = 1, channels: int = 0, **kwargs):
        super().__init__(channels if stride > 1 else n_features, *args, **kwargs)
        self.augment = augment
        self.stride = stride
        self.subsample = ConvSubsample(n_features, channels, stride) if stride > 1 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.subsample(self.augment(x)))


def transcript_metrics(predictions, references) -> dict[str, float]:
    """``cer`` (characters), ``wer`` (digits as words) and ``string_accuracy`` (whole strings)."""
    import jiwer

    refs, hyps = [str(r) for r in references], [str(p) for p in predictions]
    words_ref = [" ".join(r) for r in refs]
    words_hyp = [" ".join(h) for h in hyps]
    chars = jiwer.process_characters(refs, hyps)
    words = jiwer.process_words(words_ref, words_hyp)
    return {
        "cer": float(chars.cer),
        "wer": float(words.wer),
        "string_accuracy": float(np.mean([r == h for r, h in zip(refs, hyps)])),
    }


@register_model(
    "speech-ctc",
    task="sequence",
    description="strided conv + lstm-ctc on log-mel frames with SpecAugment: digit strings from audio",
    smoke={"data": "spoken-digits:kind=strings,n=60", "params": {"hidden_size": 8, "epochs": 2, "n_mels": 16}},
)
@dataclass(eq=False, repr=False, kw_only=True)
class SpeechCTC(AudioMixin, CTCRecognizer):
    """Transcribe utterances (``X``: waveforms at 16 kHz, a list or ``(n, samples)``) into strings.

    >>> from deepatlas.data import load_dataset                    # doctest: +SKIP
    >>> ds = load_dataset("spoken-digits:kind=strings")             # doctest: +SKIP
    >>> SpeechCTC().fit(ds.X_train, ds.y_train).predict(ds.X_test[:2])  # doctest: +SKIP
    """

    hop_ms: int = 20
    n_mels: int = 32
    hidden_size: int = 64
    num_layers: int = 2  # two bidirectional layers of 64 over 40 ms steps (stride 2): docs/results-speech.md
    epochs: int = 20
    batch_size: int = 32
    lr: float = 3e-3
    patience: int = 5
    time_width: int = 4  # 80 ms at the 20 ms hop: a short digit is never wiped out
    stride: int = 2
    """Frames per LSTM step: with ``stride`` > 1 a strided convolution of ``conv_channels``
    (:class:`ConvSubsample`) shortens the sequence the LSTM reads by this factor (1: frames go
    straight to the LSTM)."""
    conv_channels: int = 64
    """Output channels of the subsampling convolution (unused when ``stride`` is 1)."""

    _parameter_constraints: ClassVar[dict] = {
        "stride": Interval(int, 1, 8),
        "conv_channels": Interval(int, 1, None),
    }

    def _frame_list(self, X) -> list[np.ndarray]:
        return frames_of(self._front_end(), as_waveforms(X, type(self).__name__))

    def _prepare_fit(self, X, y, validation_data):
        frames = self._frame_list(X)
        vframes = self._frame_list(validation_data[0]) if validation_data is not None else []
        T = max(len(f) for f in frames + vframes)
        silence = self._front_end().silence()
        self._check_lengths(frames, y)
        self._real_frames = np.concatenate(frames)  # the statistics skip the padding
        val = None if validation_data is None else (pad_frames(vframes, T, silence), validation_data[1])
        return super()._prepare_fit(pad_frames(frames, T, silence), y, val)

    def _check_lengths(self, frames, y) -> None:
        """CTC needs an output step per character, and a blank between two equal ones: an utterance
        shorter than that (after the ``stride``) cannot be aligned to its transcript."""
        labels = self._check_y(y, len(frames))
        steps = subsampled_steps([len(f) for f in frames], self.stride)
        for i, (label, n) in enumerate(zip(labels, steps)):
            needed = len(label) + sum(a == b for a, b in zip(label, label[1:]))
            if needed > n:
                raise InputError(
                    f"y[{i}] = {label!r} needs at least {needed} CTC steps, but utterance {i} of X gives "
                    f"{int(n)} ({len(frames[i])} frames of {self.hop_ms} ms, stride {self.stride}); "
                    "use a longer recording, a smaller stride or a smaller hop_ms."
                )

    def _fit_statistics(self, X):
        super()._fit_statistics(X)
        if self.standardize:
            self.mean_, self.scale_ = column_statistics(self._real_frames)
        del self._real_frames

    _net_class = AugmentedCTCNet

    def _net_kwargs(self) -> dict:
        return {"augment": self._augment(), "stride": self.stride, "channels": self.conv_channels}

    def _run(self, X, batch_size: int = 1024):
        log_probs, lengths = super()._run(self._frame_list(X), batch_size)
        stride = getattr(self.module_, "stride", 1)  # another network (a subclass's) keeps every frame
        if stride == 1:
            return log_probs, lengths
        frames = np.full(len(log_probs), log_probs.shape[1]) if lengths is None else lengths
        steps = subsampled_steps(frames, stride)
        T = int(steps.max())
        out = log_probs[:, :T].copy()  # each row's steps beyond its own length: blank for certain
        beyond = np.arange(T)[None, :] >= steps[:, None]
        out[beyond] = -1e4
        out[..., 0][beyond] = 0.0
        return out, None if lengths is None else steps

    def _check_input(self, X):
        return super()._check_input(self._frame_list(X))

    def _restore_state(self, tensors, meta):
        if self.stride > 1 and "module.subsample.conv.weight" not in tensors:
            self.stride = 1  # a run saved before the subsampling convolution existed read every frame
        super()._restore_state(tensors, meta)

    def dataset_metrics(self, ds) -> dict[str, float]:
        """``val_``/``test_`` ``cer``, ``wer`` and ``string_accuracy`` with greedy and beam decoding
        (the beam's under ``*_beam``)."""
        out = {}
        for split_name, X, y in (("val", ds.X_val, ds.y_val), ("test", ds.X_test, ds.y_test)):
            for decoder, suffix in (("greedy", ""), ("beam", "_beam")):
                for key, value in transcript_metrics(self.predict(X, decoder=decoder), y).items():
                    out[f"{split_name}_{key}{suffix}"] = value
        return out

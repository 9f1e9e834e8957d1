"""Keyword spotting: one spoken word (a digit) per clip, classified by the project's CNN
(:func:`deepatlas.models.cnn.conv_stack`) reading a log-mel spectrogram as a one-channel image.

Small convolutional networks on log-mel spectrograms are the standard keyword spotter (Sainath &
Parada, 2015, "Convolutional neural networks for small-footprint keyword spotting"); SpecAugment
masking (Park et al., 2019) regularises them. Waveforms are padded with silence (or cropped) to
the longest training clip, so every spectrogram has the same size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from deepatlas._validation import Interval, TupleOf
from deepatlas.errors import InputError
from deepatlas.models.base import SupervisedClassifier, column_statistics
from deepatlas.models.cnn import conv_stack
from deepatlas.models.speech.features import AudioMixin, as_waveforms, frames_of, pad_frames
from deepatlas.registry import register_model


class SpectrogramCNN(nn.Module):
    """Standardised frames (B, T, F) -> class logits: SpecAugment (training only), then the CNN on
    the (1, F, T) image."""

    def __init__(self, frames: int, n_features: int, channels, kernel_size: int, n_out: int, dropout: float, augment):
        super().__init__()
        self.augment = augment
        self.cnn = conv_stack((1, n_features, frames), channels, kernel_size, n_out, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cnn(self.augment(x).transpose(1, 2).unsqueeze(1))


def clip_waves(waves: list[np.ndarray], samples: int) -> np.ndarray:
    """(n, samples): each waveform padded with zeros (silence) or cropped at the end."""
    out = np.zeros((len(waves), samples), np.float32)
    for i, w in enumerate(waves):
        out[i, : min(samples, len(w))] = w[:samples]
    return out


@register_model(
    "speech-cnn",
    task="classification",
    description="keyword spotting: CNN on log-mel spectrograms with SpecAugment (spoken digits)",
    smoke={"data": "spoken-digits:n=60", "params": {"channels": (4,), "epochs": 2, "n_mels": 16}},
)
@dataclass(eq=False, repr=False, kw_only=True)
class SpeechCNN(AudioMixin, SupervisedClassifier):
    """Classify short utterances (``X``: waveforms at 16 kHz, a list or ``(n, samples)``) into words.

    >>> from deepatlas.data import load_dataset                    # doctest: +SKIP
    >>> ds = load_dataset("spoken-digits")                          # doctest: +SKIP
    >>> SpeechCNN().fit(ds.X_train, ds.y_train).score(ds.X_test, ds.y_test)  # doctest: +SKIP
    """

    channels: tuple = (16, 32, 32)
    """Output channels of each ``Conv -> BatchNorm -> ReLU -> MaxPool`` block of the CNN, input side first."""
    kernel_size: int = 3
    """Height (features) and width (frames) of every convolution kernel."""
    dropout: float = 0.1
    """Dropout rate on the pooled features before the output layer."""
    hop_ms: int = 20  # 76 frames for the longest digit: a small network, minutes on 2 cores
    n_mels: int = 32
    freq_masks: int = 0  # SpecAugment off by default: seed 0, 15 epochs, unseen voices at 20 dB gave 0.930
    time_masks: int = 0  # with 2 bands (<= 6) and 2 spans (<= 8 frames), 0.965 without (docs/results-speech.md)
    epochs: int = 15
    batch_size: int = 32
    lr: float = 3e-3
    patience: int = 5

    _parameter_constraints: ClassVar[dict] = {
        "channels": TupleOf(),
        "kernel_size": Interval(int, 1, None),
        "dropout": Interval(float, 0, 1, "left"),
    }

    def _frames(self, X, samples: int) -> np.ndarray:
        waves = as_waveforms(X, type(self).__name__)
        front = self._front_end()
        frames = frames_of(front, [clip_waves([w], samples)[0] for w in waves])
        return pad_frames(frames, frames[0].shape[0], front.silence())

    def _prepare_fit(self, X, y, validation_data):
        waves = as_waveforms(X, type(self).__name__)
        self.clip_samples_ = int(max(len(w) for w in waves))
        feats = self._frames(waves, self.clip_samples_)
        val = None
        if validation_data is not None:
            val = (self._frames(validation_data[0], self.clip_samples_), validation_data[1])
        return super()._prepare_fit(feats, y, val)

    def _input_statistics(self, X):
        """Mean and scale per feature (mel band), over samples and frames, repeated for every frame."""
        n, T, F = X.shape
        mean, scale = column_statistics(X.reshape(-1, F))
        return np.tile(mean, T), np.tile(scale, T)

    def _build_module(self, sample_shape, n_outputs):
        if len(sample_shape) != 2:
            raise InputError(f"{type(self).__name__} builds its network for (frames, features) inputs.")
        channels = (self.channels,) if isinstance(self.channels, int) else tuple(self.channels)
        return SpectrogramCNN(
            sample_shape[0], sample_shape[1], channels, self.kernel_size, n_outputs, self.dropout, self._augment()
        )

    def _check_input(self, X):
        self._check_fitted()
        return self._frames(X, self.clip_samples_)

    def _fitted_state(self):
        tensors, meta = super()._fitted_state()
        meta["clip_samples_"] = int(self.clip_samples_)
        return tensors, meta

    def _restore_state(self, tensors, meta):
        self.clip_samples_ = int(meta["clip_samples_"])
        super()._restore_state(tensors, meta)

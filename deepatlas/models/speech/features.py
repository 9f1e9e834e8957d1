"""Audio features computed inside the network's graph: a short-time Fourier transform, a mel
filterbank, the logarithm and, for MFCC, a type-II DCT.

The mel filterbank is librosa's (``librosa.filters.mel``, Slaney's mel scale and area
normalisation) and the DCT matrix SciPy's (``scipy.fft.dct``, orthonormal). ``torchaudio`` would
be the natural home of both, but no torchaudio wheel works with the pinned torch 2.13 CPU build
(the newest on the index, 2.11.1, is a CUDA build whose extension fails to load against it), so
the transforms are written here on torch: the STFT as a strided 1-D convolution with the windowed
DFT basis (equal to ``torch.stft`` to float precision; a test compares them), because the
complex ``torch.stft`` exports with the dynamo exporter only and not with the TorchScript one.
So the features sit inside the exported graph, waveform in.

References: Davis & Mermelstein (1980), "Comparison of parametric representations for
monosyllabic word recognition in continuously spoken sentences" (MFCC); Park et al. (2019),
"SpecAugment: a simple data augmentation method for automatic speech recognition".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from deepatlas._validation import Interval, Options
from deepatlas.errors import InputError

SAMPLE_RATE = 16000
MIN_SAMPLES = 400  # one window: shorter waveforms are padded with zeros
LOG_FLOOR = 1e-6  # added to the mel power before the log: digital silence maps to log(1e-6)


def mel_filterbank(n_mels: int, n_fft: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular filters from librosa."""
    try:
        from librosa.filters import mel
    except ImportError:
        from deepatlas._optional import MissingExtra

        raise MissingExtra("audio features need librosa: pip install 'deepatlas[speech]'") from None
    return mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=20.0, fmax=sample_rate / 2).astype(np.float32)


def dct_matrix(n_mfcc: int, n_mels: int) -> np.ndarray:
    """(n_mfcc, n_mels): the first ``n_mfcc`` rows of the orthonormal DCT-II."""
    from scipy.fft import dct

    return dct(np.eye(n_mels), type=2, norm="ortho", axis=0)[:n_mfcc].astype(np.float32)


def dft_basis(n_fft: int, window: torch.Tensor) -> torch.Tensor:
    """(2 * (n_fft // 2 + 1), 1, n_fft): the windowed cosines and negated sines of the one-sided
    DFT, the window centred in ``n_fft`` as ``torch.stft`` places it. Convolving a reflect-padded
    waveform with them at stride ``hop`` gives ``torch.stft(..., center=True)``'s real and
    imaginary parts (tested); unlike the complex STFT, this exports with both ONNX exporters."""
    w = torch.zeros(n_fft, dtype=torch.float64)
    start = (n_fft - len(window)) // 2
    w[start : start + len(window)] = window.double()
    k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]
    n = torch.arange(n_fft, dtype=torch.float64)[None, :]
    angle = 2 * np.pi * k * n / n_fft
    return torch.cat([torch.cos(angle) * w, -torch.sin(angle) * w]).float().unsqueeze(1)


class AudioFeatures(nn.Module):
    """Waveforms (B, N) at 16 kHz -> frames (B, T, F): log-mel energies, or MFCC (their DCT).

    Frames are centred (``T = 1 + N // hop``; the waveform reflected at both ends, as
    ``torch.stft(center=True)`` does), 25 ms Hann windows in a 512-point FFT. A waveform needs at
    least 257 samples (:func:`as_waveforms` pads shorter ones with zeros)."""

    def __init__(self, kind: str = "logmel", n_mels: int = 40, n_mfcc: int = 13, hop: int = 160):
        super().__init__()
        self.kind, self.hop, self.n_fft, self.win = kind, hop, 512, 400
        self.register_buffer("window", torch.hann_window(self.win), persistent=False)
        self.register_buffer("basis", dft_basis(self.n_fft, self.window), persistent=False)
        self.register_buffer("mel", torch.from_numpy(mel_filterbank(n_mels, self.n_fft)), persistent=False)
        dct = dct_matrix(n_mfcc, n_mels) if kind == "mfcc" else np.eye(n_mels, dtype=np.float32)
        self.register_buffer("dct", torch.from_numpy(dct), persistent=False)

    @property
    def n_features(self) -> int:
        return int(self.dct.shape[0])

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        padded = nn.functional.pad(wave.unsqueeze(1), (self.n_fft // 2, self.n_fft // 2), mode="reflect")
        parts = nn.functional.conv1d(padded, self.basis, stride=self.hop)  # (B, 2 * bins, T)
        bins = self.n_fft // 2 + 1
        power = parts[:, :bins] ** 2 + parts[:, bins:] ** 2  # (B, bins, T): |torch.stft(...)|^2
        logmel = torch.log(torch.matmul(self.mel, power) + LOG_FLOOR)  # (B, n_mels, T)
        return torch.matmul(self.dct, logmel).transpose(1, 2)  # (B, T, F)

    def silence(self) -> np.ndarray:
        """The frame of digital silence (F,): what padding a waveform with zeros gives."""
        return (self.dct @ torch.full((self.mel.shape[0],), float(np.log(LOG_FLOOR)))).numpy()


def spec_augment(x: torch.Tensor, freq_masks: int, freq_width: int, time_masks: int, time_width: int) -> torch.Tensor:
    """SpecAugment's frequency and time masking of standardised frames ``x`` (B, T, F): each sample
    gets ``freq_masks`` bands of up to ``freq_width`` features and ``time_masks`` spans of up to
    ``time_width`` frames set to 0 (the training mean). Drawn from torch's RNG (seeded in fit)."""
    B, T, F = x.shape
    keep = torch.ones(B, T, F, dtype=torch.bool, device=x.device)
    for n, width, size, axis in ((freq_masks, freq_width, F, 2), (time_masks, time_width, T, 1)):
        if width <= 0:
            continue
        pos = torch.arange(size, device=x.device)
        for _ in range(n):
            w = torch.randint(0, width + 1, (B, 1), device=x.device)
            start = (torch.rand(B, 1, device=x.device) * (size - w + 1).clamp(min=1)).long()
            band = (pos >= start) & (pos < start + w)  # (B, size)
            keep &= ~(band.unsqueeze(1) if axis == 2 else band.unsqueeze(2))
    return x * keep


class SpecAugment(nn.Module):
    """:func:`spec_augment` in training mode, the identity in evaluation mode (and in export)."""

    def __init__(self, freq_masks: int, freq_width: int, time_masks: int, time_width: int):
        super().__init__()
        self.args = (freq_masks, freq_width, time_masks, time_width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return spec_augment(x, *self.args) if self.training else x


def as_waveforms(X, owner: str) -> list[np.ndarray]:
    """Waveforms as a list of 1-D float32 arrays: from a list or object array of 1-D arrays, or a
    2-D array ``(n, samples)``; each must be non-empty and finite."""
    if isinstance(X, np.ndarray) and X.dtype != object:
        if X.ndim == 1 and len(X) and np.issubdtype(X.dtype, np.number):
            X = X[None, :]
        if X.ndim != 2:
            raise InputError(
                f"{owner} takes waveforms: (n, samples) or a list of 1-D arrays at {SAMPLE_RATE} Hz. "
                f"Got an array of shape {X.shape} instead."
            )
    try:
        waves = [np.asarray(w, dtype=np.float32) for w in X]
    except (TypeError, ValueError):
        raise InputError(f"{owner} takes waveforms of numbers; X holds something else.") from None
    if not waves:
        raise InputError("X has 0 waveforms; at least 1 is required.")
    for i, w in enumerate(waves):
        if w.ndim != 1:
            raise InputError(f"Waveform {i} of X has shape {w.shape}; each must be 1-D (mono samples).")
        if len(w) == 0:
            raise InputError(f"Waveform {i} of X is empty (zero length); an utterance needs samples.")
        if not np.isfinite(w).all():
            raise InputError(f"Waveform {i} of X contains NaN or infinite samples.")
    return [w if len(w) >= MIN_SAMPLES else np.pad(w, (0, MIN_SAMPLES - len(w))) for w in waves]


@torch.no_grad()
def frames_of(front: AudioFeatures, waves: list[np.ndarray]) -> list[np.ndarray]:
    """Each waveform's frames (T_i, F), one at a time (so a frame never sees another's samples),
    on one torch thread: these small transforms only wait on a second thread (on the loaded
    2-core machine, minutes instead of seconds for 3000 clips)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return [front(torch.from_numpy(w)[None])[0].numpy() for w in waves]
    finally:
        torch.set_num_threads(threads)


def pad_frames(frames: list[np.ndarray], T: int, silence: np.ndarray) -> np.ndarray:
    """(n, T, F): each cropped or padded with silent frames to ``T``."""
    out = np.tile(silence.astype(np.float32), (len(frames), T, 1))
    for i, f in enumerate(frames):
        out[i, : min(T, len(f))] = f[:T]
    return out


@dataclass(eq=False, repr=False, kw_only=True)
class AudioMixin:
    """The audio front end's settings and SpecAugment's, shared by the speech estimators."""

    features: str = "logmel"
    """``logmel`` (log mel-filterbank energies) or ``mfcc`` (their DCT, ``n_mfcc`` coefficients)."""
    n_mels: int = 40
    """Mel filters between 20 Hz and 8 kHz."""
    n_mfcc: int = 13
    """Cepstral coefficients kept when ``features="mfcc"``."""
    hop_ms: int = 10
    """Milliseconds between frames (25 ms windows)."""
    freq_masks: int = 2
    """SpecAugment: frequency bands masked in each training sample (0 turns frequency masking off)."""
    freq_width: int = 6
    """SpecAugment: the widest frequency band masked, in features."""
    time_masks: int = 2
    """SpecAugment: time spans masked in each training sample (0 turns time masking off)."""
    time_width: int = 8
    """SpecAugment: the longest time span masked, in frames."""

    _parameter_constraints: ClassVar[dict] = {
        "features": Options(("logmel", "mfcc")),
        "n_mels": Interval(int, 8, 128),
        "n_mfcc": Interval(int, 1, 128),
        "hop_ms": Interval(int, 5, 50),
        "freq_masks": Interval(int, 0, None),
        "freq_width": Interval(int, 0, None),
        "time_masks": Interval(int, 0, None),
        "time_width": Interval(int, 0, None),
    }
    _input_kind: ClassVar[str] = "audio"  # `deepatlas predict` reads WAV files (deepatlas/predict.py)
    sample_rate_: ClassVar[int] = SAMPLE_RATE

    def _front_end(self) -> AudioFeatures:
        if self.features == "mfcc" and self.n_mfcc > self.n_mels:
            raise InputError(f"n_mfcc ({self.n_mfcc}) must not exceed n_mels ({self.n_mels}).")
        return AudioFeatures(self.features, self.n_mels, self.n_mfcc, SAMPLE_RATE * self.hop_ms // 1000)

    def _augment(self) -> SpecAugment:
        return SpecAugment(self.freq_masks, self.freq_width, self.time_masks, self.time_width)

"""Digit strings from audio: the project's bidirectional LSTM trained with CTC
(:class:`deepatlas.models.rnn.ctc.CTCRecognizer`, Graves et al., 2006) reading log-mel frames,
with SpecAugment (Park et al., 2019) on the training frames; greedy or prefix-beam decoding.

Each utterance's frames are computed on its own samples; a batch is padded with the frame of
digital silence (what zeros appended to the waveform give), so the network needs no mask, runs
the same at any length and exports with a dynamic time axis (Graves & Jaitly, 2014, "Towards
end-to-end speech recognition with recurrent neural networks", trained such networks on
spectrogram frames).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from deepatlas.models.base import column_statistics
from deepatlas.models.rnn.ctc import CTCNet, CTCRecognizer
from deepatlas.models.speech.features import AudioMixin, as_waveforms, frames_of, pad_frames
from deepatlas.registry import register_model


class AugmentedCTCNet(CTCNet):
    """:class:`CTCNet` with SpecAugment on its (standardised) input frames while training."""

    def __init__(self, *args, augment, **kwargs):
        super().__init__(*args, **kwargs)
        self.augment = augment

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.augment(x))


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
    description="lstm-ctc on log-mel frames with SpecAugment: digit strings from audio",
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
    hidden_size: int = 64  # one bidirectional layer of 64: 15 epochs fit in minutes on 2 cores
    num_layers: int = 1
    epochs: int = 15
    batch_size: int = 32
    lr: float = 3e-3
    patience: int = 5
    time_width: int = 4  # 80 ms at the 20 ms hop: a short digit is never wiped out

    def _frame_list(self, X) -> list[np.ndarray]:
        return frames_of(self._front_end(), as_waveforms(X, type(self).__name__))

    def _prepare_fit(self, X, y, validation_data):
        frames = self._frame_list(X)
        vframes = self._frame_list(validation_data[0]) if validation_data is not None else []
        T = max(len(f) for f in frames + vframes)
        silence = self._front_end().silence()
        self._real_frames = np.concatenate(frames)  # the statistics skip the padding
        val = None if validation_data is None else (pad_frames(vframes, T, silence), validation_data[1])
        return super()._prepare_fit(pad_frames(frames, T, silence), y, val)

    def _fit_statistics(self, X):
        super()._fit_statistics(X)
        if self.standardize:
            self.mean_, self.scale_ = column_statistics(self._real_frames)
        del self._real_frames

    _net_class = AugmentedCTCNet

    def _net_kwargs(self) -> dict:
        return {"augment": self._augment()}

    def _run(self, X, batch_size: int = 1024):
        return super()._run(self._frame_list(X), batch_size)

    def _check_input(self, X):
        return super()._check_input(self._frame_list(X))

    def dataset_metrics(self, ds) -> dict[str, float]:
        """``val_``/``test_`` ``cer``, ``wer`` and ``string_accuracy`` with greedy and beam decoding
        (the beam's under ``*_beam``)."""
        out = {}
        for split_name, X, y in (("val", ds.X_val, ds.y_val), ("test", ds.X_test, ds.y_test)):
            for decoder, suffix in (("greedy", ""), ("beam", "_beam")):
                for key, value in transcript_metrics(self.predict(X, decoder=decoder), y).items():
                    out[f"{split_name}_{key}{suffix}"] = value
        return out

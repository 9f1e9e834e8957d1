"""The classical keyword-spotting baseline: each clip's MFCC averaged over time (13 numbers), then
scikit-learn's standardisation and multinomial logistic regression. Averaging throws away the
order of the sounds, which is what the CNN on the whole spectrogram can use."""

from __future__ import annotations

import numpy as np

from deepatlas.models.speech.features import AudioFeatures, as_waveforms, frames_of


def mfcc_means(X, n_mfcc: int = 13, n_mels: int = 40) -> np.ndarray:
    """(n, n_mfcc): the time average of each waveform's MFCC."""
    front = AudioFeatures("mfcc", n_mels, n_mfcc)
    return np.stack([f.mean(axis=0) for f in frames_of(front, as_waveforms(X, "mfcc_means"))])


def mfcc_logistic_baseline(X_train, y_train, X_test, y_test, seed: int = 0) -> dict[str, float]:
    """Train on MFCC means, score on the test clips: ``{"train_accuracy", "test_accuracy"}``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    model.fit(mfcc_means(X_train), np.asarray(y_train))
    return {
        "train_accuracy": float(model.score(mfcc_means(X_train), np.asarray(y_train))),
        "test_accuracy": float(model.score(mfcc_means(X_test), np.asarray(y_test))),
    }

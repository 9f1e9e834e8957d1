"""The CNN classifier's small-data rule (issue #20: ``lfw-faces``' 115 training images per fold got
16 optimiser steps from 8 epochs of 64): with ``epochs`` and ``batch_size`` left to None, a fit
that 8 passes of 64 would give fewer than 300 steps halves the batch down to 8, then adds epochs.
Exact resolved values, on small and large data, recorded with the run; a set parameter turns it off."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deepatlas.models.cnn import CNNClassifier, small_data_schedule
from deepatlas.saving import load, save_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize(
    "n_train, expected",
    [
        (54_000, (8, 64)),  # Fashion-MNIST: 844 batches a pass, 6,752 steps
        (3_600, (8, 64)),  # MNIST-1D: 57 x 8 = 456 steps
        (2_400, (8, 64)),  # 38 x 8 = 304: just above the floor
        (2_300, (8, 32)),  # 36 x 8 = 288 with 64; 72 x 8 = 576 with 32
        (1_293, (8, 32)),  # digits' training split: 21 x 8 = 168 with 64, 41 x 8 = 328 with 32
        (144, (17, 8)),  # lfw-faces' training split: 18 batches of 8, 17 epochs = 306 steps
        (115, (20, 8)),  # one lfw-faces fold of `deepatlas compare` after the 10 % hold-out
        (1, (300, 8)),
    ],
)
def test_small_data_schedule_exact_values(n_train, expected):
    assert small_data_schedule(n_train) == expected
    epochs, batch = expected
    assert epochs * -(-n_train // batch) >= 300


def _images(n, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.normal(size=(n, 1, 4, 4)).astype(np.float32) + y[:, None, None, None]
    return X, y


def test_rule_applies_on_small_data_and_is_saved(tmp_path):
    X, y = _images(40)
    model = CNNClassifier(channels=(4,), seed=0, verbose=False).fit(X, y)  # 40 - 4 held out = 36
    assert (model.epochs_, model.batch_size_) == (60, 8)  # 5 batches of 8 a pass, 300 steps
    assert model.n_epochs_ <= 60
    assert (model.epochs, model.batch_size) == (None, None)  # the parameters are left as set
    save_model(model, tmp_path / "run")
    fitted = json.loads((tmp_path / "run" / "config.json").read_text())["fitted"]
    assert (fitted["epochs_"], fitted["batch_size_"]) == (60, 8)
    again = load(tmp_path / "run")
    assert (again.epochs_, again.batch_size_, again.epochs) == (60, 8, None)


def test_rule_leaves_large_data_and_set_parameters_alone():
    X, y = _images(2_400)
    Xv, yv = _images(100, seed=1)
    model = CNNClassifier(channels=(4,), seed=0, verbose=False).fit(X, y, validation_data=(Xv, yv))
    assert (model.epochs_, model.batch_size_, model.n_epochs_) == (8, 64, 8)
    small, ys = _images(40)
    assert (CNNClassifier(epochs=2).resolved_schedule(36), CNNClassifier(batch_size=16).resolved_schedule(36)) == (
        (2, 64),
        (8, 16),
    )
    set_epochs = CNNClassifier(channels=(4,), epochs=2, seed=0, verbose=False).fit(small, ys)
    assert (set_epochs.epochs_, set_epochs.batch_size_, set_epochs.n_epochs_) == (2, 64, 2)

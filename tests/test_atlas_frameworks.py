"""K.frameworks (deepatlas/atlas/experiments/frameworks.py): pending with one line when Keras is
missing; with Keras 3 installed (the ``bench`` extra), the quick run trains the MLP through Keras on
its PyTorch backend and gets the text-error verdict."""

from __future__ import annotations

import sys

import pytest

from deepatlas.atlas.runner import run_report


def test_without_keras_the_claim_is_pending(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "keras", None)  # `import keras` raises ImportError
    (entry,) = run_report(tmp_path, quick=True, only="K.frameworks", progress=False)
    assert entry["verdict"] == "pending"
    assert entry["summary"] == "Pending: K.frameworks needs Keras 3: pip install 'deepatlas[bench]'."


def test_keras_on_another_backend_is_pending(monkeypatch):
    from deepatlas._optional import MissingExtra
    from deepatlas.atlas.experiments.frameworks import keras_on_torch

    fake = type(sys)("keras")
    fake.backend = type(sys)("keras.backend")
    fake.backend.backend = lambda: "jax"
    monkeypatch.setitem(sys.modules, "keras", fake)
    with pytest.raises(MissingExtra, match="this process imported Keras on 'jax'"):
        keras_on_torch()


@pytest.mark.slow
def test_quick_run_through_keras_on_torch(tmp_path):
    import importlib.util

    if importlib.util.find_spec("keras") is None:  # not imported here: without KERAS_BACKEND it would pick TensorFlow
        pytest.skip("Keras 3 is in the bench extra (pip install 'deepatlas[bench]')")
    (entry,) = run_report(tmp_path, quick=True, only="K.frameworks", progress=False)
    assert entry["verdict"] == "text error", entry["reason"]
    assert entry["numbers"]["keras_backend"] == "torch"
    assert entry["numbers"]["keras_test_acc"] > 0.85 and entry["numbers"]["deepatlas_test_acc"] > 0.85

"""A battery of wrong Python API calls (issue #28, point 11): each raises ``ValueError`` or
``TypeError`` with one line that names the argument at fault, never an ``AssertionError``, an
``AttributeError`` or an error from deep inside torch or NumPy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from deepatlas import create_model, load

RNG = np.random.default_rng(0)
X = RNG.normal(size=(40, 4)).astype(np.float32)
Y = np.array([0, 1] * 20)
PAIRS = TensorDataset(torch.as_tensor(X), torch.as_tensor(Y))


def mlp(**params):
    return create_model("mlp", epochs=1, hidden_sizes=(4,), **params)


CASES = [
    # (id, call, words that must appear in the message)
    ("unknown model", lambda: create_model("mlpp"), ["'mlpp'"]),
    ("unknown parameter", lambda: create_model("mlp", hiden_sizes=(4,)), ["hiden_sizes", "hidden_sizes"]),
    (
        "cuda on a CPU-only torch",
        lambda: mlp(device="cuda").fit(X, Y),
        ["device", "'cuda'"] if not torch.cuda.is_available() else None,
    ),
    ("device name", lambda: mlp(device="gpu").fit(X, Y), ["'device'", "'gpu'"]),
    ("threads zero", lambda: mlp(threads=0).fit(X, Y), ["'threads'"]),
    ("threads text", lambda: mlp(threads="two").fit(X, Y), ["'threads'"]),
    ("scheduler typo", lambda: mlp(scheduler="cosin").fit(X, Y), ["'scheduler'", "'cosine'"]),
    ("monitor unknown", lambda: mlp(monitor="val_acc").fit(X, Y), ["'monitor'", "val_accuracy"]),
    ("log kind", lambda: mlp(log="json").fit(X, Y), ["'log'"]),
    ("warm_start not a bool", lambda: mlp(warm_start="yes").fit(X, Y), ["'warm_start'"]),
    ("class_weight word", lambda: mlp(class_weight="balance").fit(X, Y), ["'class_weight'"]),
    ("class_weight unknown class", lambda: mlp(class_weight={5: 2.0}).fit(X, Y), ["'class_weight'", "5"]),
    ("class_weight negative", lambda: mlp(class_weight={0: -1.0}).fit(X, Y), ["'class_weight'"]),
    ("sample_weight length", lambda: mlp().fit(X, Y, sample_weight=np.ones(3)), ["sample_weight"]),
    ("sample_weight text", lambda: mlp().fit(X, Y, sample_weight=["x"] * 40), ["sample_weight"]),
    ("sample_weight negative", lambda: mlp().fit(X, Y, sample_weight=-np.ones(40)), ["sample_weight"]),
    (
        "sample_weight to the perceptron",
        lambda: create_model("perceptron").fit(X, Y, sample_weight=Y),
        ["sample_weight"],
    ),
    (
        "sample_weight to an autoencoder",
        lambda: create_model("ae", epochs=1).fit(X, sample_weight=Y),
        ["sample_weight"],
    ),
    ("y missing", lambda: mlp().fit(X), ["y"]),
    ("y length", lambda: mlp().fit(X, Y[:5]), ["X and y", "40", "5"]),
    ("X text", lambda: mlp().fit(np.array([["a"] * 4] * 40), Y), ["X"]),
    ("X 1-D", lambda: mlp().fit(np.ones(40), Y), ["X", "2-D"]),
    ("X with NaN", lambda: mlp().fit(np.where(X > 2, np.nan, X), Y), ["X", "NaN"]),
    ("X sparse", lambda: mlp().fit(__import__("scipy.sparse").sparse.csr_matrix(X), Y), ["X", "sparse"]),
    ("validation width", lambda: mlp().fit(X, Y, validation_data=(X[:, :2], Y)), ["validation_data"]),
    ("validation unknown label", lambda: mlp().fit(X, Y, validation_data=(X, Y + 5)), ["validation labels"]),
    ("DataLoader of single tensors", lambda: mlp().fit(DataLoader(TensorDataset(torch.as_tensor(X)))), ["X", "pair"]),
    ("DataLoader with y", lambda: mlp().fit(DataLoader(PAIRS), Y), ["y", "DataLoader"]),
    ("DataLoader with class_weight", lambda: mlp(class_weight="balanced").fit(PAIRS), ["class_weight"]),
    ("Dataset into a family without it", lambda: create_model("ae", epochs=1).fit(PAIRS), ["X", "TensorDataset"]),
    ("DataLoader into the perceptron", lambda: create_model("perceptron").fit(DataLoader(PAIRS), Y), ["X"]),
    ("predict width", lambda: mlp().fit(X, Y).predict(X[:, :3]), ["X", "3 features", "4"]),
    ("warm start on other classes", lambda: mlp(warm_start=True).fit(X, Y).fit(X, Y + 1), ["warm_start", "classes"]),
    ("load a missing run", lambda: load("/nonexistent/run"), ["/nonexistent/run"]),
    ("set_params unknown", lambda: mlp().set_params(hidden=3), ["hidden"]),
]


@pytest.mark.parametrize("call,words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_wrong_call_raises_one_line_naming_the_argument(call, words):
    if words is None:
        pytest.skip("this torch has CUDA")
    try:
        call()
    except (AssertionError, AttributeError) as exc:  # never these
        pytest.fail(f"{type(exc).__name__}: {exc}")
    except (ValueError, TypeError) as exc:
        message = str(exc)
        assert "\n" not in message.strip(), message
        missing = [w for w in words if w not in message]
        assert not missing, f"{missing} not in: {message}"
    else:
        pytest.fail("no error raised")

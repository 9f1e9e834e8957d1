"""Atlas: K.frameworks ("Keras runs on TensorFlow, Theano and CNTK; PyTorch builds dynamic graphs
and trains and deploys at scale").

The Keras half is a text error today: Theano's development ended in 2017 and CNTK's in 2019, and
Keras 3 (Chollet et al., 2023, "Keras 3.0") runs on TensorFlow, JAX and PyTorch. The experiment
shows the part that replaced them: the same MLP (the digits setting of ``benchmarks/bench_peers.py``:
64 -> 100 -> 10, ReLU, dropout 0.3, Adam lr 1e-3, batch 200) trained through Keras 3 on its PyTorch
backend (``KERAS_BACKEND=torch``) and through deepatlas, with each one's test accuracy and fit time.
The statistic is Keras's test accuracy as a share of deepatlas's: at 0.97 or more (every seed),
Keras on PyTorch trains the network as well as PyTorch itself does, which is the evidence for the
text-error verdict; short of it the measurement disagrees with the argument (conditional). The
PyTorch half is shown by the project itself (dynamic graphs throughout, torchrun in
docs/results-distributed.md, export in K.deploy).

Keras is not a dependency of deepatlas (it is in the ``bench`` extra): without it, or in a process
that already imported Keras on another backend, the claim stays pending with one line saying why.
Quick mode: 10 epochs, one seed (a few seconds once Keras is imported).
"""

from __future__ import annotations

import os
import time

import numpy as np

from deepatlas.atlas import Result, Rule, experiment
from deepatlas.atlas.experiments._common import CHEAP, r

RULE = Rule(
    "Keras 3 (PyTorch backend) test accuracy on digits as a share of deepatlas's, same MLP and budget "
    "(the text-error argument needs Keras to run on PyTorch and train the network as well)",
    supported=0.97,
    refuted=0.97,
    verdict="text error",
    higher=True,
)
HIDDEN, DROPOUT, BATCH, LR = 100, 0.3, 200, 1e-3


def keras_on_torch():
    """Keras 3 imported on its PyTorch backend, or MissingExtra (pending) saying why not."""
    from deepatlas._optional import MissingExtra

    already = "keras" in __import__("sys").modules
    previous = os.environ.get("KERAS_BACKEND")
    if not already:
        os.environ["KERAS_BACKEND"] = "torch"
    try:
        import keras
    except ImportError:
        raise MissingExtra("K.frameworks needs Keras 3: pip install 'deepatlas[bench]'") from None
    finally:
        if not already:
            if previous is None:
                os.environ.pop("KERAS_BACKEND", None)
            else:
                os.environ["KERAS_BACKEND"] = previous
    backend = keras.backend.backend()
    if backend != "torch":
        raise MissingExtra(
            f"K.frameworks needs Keras on its PyTorch backend; this process imported Keras on {backend!r} "
            "(run the report in a fresh process, or with KERAS_BACKEND=torch)"
        )
    return keras


def _data(seed: int):
    from deepatlas.data import load_dataset

    ds = load_dataset("digits")
    X = np.concatenate([ds.X_train, ds.X_val]).reshape(-1, 64)
    y = np.concatenate([ds.y_train, ds.y_val])
    Xt = ds.X_test.reshape(-1, 64)
    mean, std = X.mean(0), np.where(X.std(0) > 1e-8, X.std(0), 1.0)
    return X, y, Xt, ds.y_test, ((X - mean) / std).astype(np.float32), ((Xt - mean) / std).astype(np.float32)


@experiment("K.frameworks", rule=RULE, **CHEAP, requires=("mlp",), full_seconds=30)
def k_frameworks(ctx):
    keras = keras_on_torch()
    import torch

    from deepatlas.models.mlp import MLPClassifier

    epochs = ctx.pick(10, 50)  # full: 50 a seed, five seeds (it never ran in full at 200 epochs)
    X, y, Xt, yt, Xs, Xts = _data(ctx.seed)
    threads = torch.get_num_threads()
    start = time.perf_counter()
    ours = MLPClassifier(
        hidden_sizes=(HIDDEN,), dropout=DROPOUT, epochs=epochs, batch_size=BATCH, lr=LR, early_stopping=False,
        device="cpu", seed=ctx.seed,
    ).fit(X, y)  # fmt: skip
    ours_s = time.perf_counter() - start
    ours_acc = float(ours.score(Xt, yt))

    keras.utils.set_random_seed(ctx.seed)
    start = time.perf_counter()
    net = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(HIDDEN, activation="relu"),
            keras.layers.Dropout(DROPOUT),
            keras.layers.Dense(10),
        ]
    )
    net.compile(
        optimizer=keras.optimizers.Adam(LR, epsilon=1e-8),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    net.fit(Xs, y, batch_size=BATCH, epochs=epochs, shuffle=True, verbose=0)
    keras_s = time.perf_counter() - start
    keras_acc = float((np.asarray(net.predict(Xts, batch_size=1024, verbose=0)).argmax(1) == yt).mean())
    torch.set_num_threads(threads)  # Keras may change torch's threads; leave them as found

    share = keras_acc / ours_acc
    fig, axes = ctx.figure(1, 2, figsize=(7, 3))
    axes[0].bar(["deepatlas", "Keras 3 (torch)"], [ours_acc, keras_acc])
    axes[0].set(ylabel="test accuracy", ylim=(min(ours_acc, keras_acc) - 0.05, 1.0))
    axes[1].bar(["deepatlas", "Keras 3 (torch)"], [ours_s, keras_s])
    axes[1].set(ylabel="fit seconds")
    return Result(
        share,
        f"Keras {keras.__version__} runs on PyTorch (backend {keras.backend.backend()!r}; Keras 3's backends are "
        f"TensorFlow, JAX and PyTorch, Theano and CNTK are gone): the same digits MLP ({epochs} epochs) reaches "
        f"{keras_acc:.1%} test accuracy in {keras_s:.2f} s through Keras against {ours_acc:.1%} in {ours_s:.2f} s "
        "through deepatlas.",
        {
            "keras_version": keras.__version__,
            "keras_backend": keras.backend.backend(),
            "epochs": epochs,
            "keras_test_acc": r(keras_acc),
            "deepatlas_test_acc": r(ours_acc),
            "keras_fit_s": r(keras_s, 3),
            "deepatlas_fit_s": r(ours_s, 3),
            "keras_over_deepatlas_time": r(keras_s / ours_s, 2),
        },
        ctx.save(fig),
    )

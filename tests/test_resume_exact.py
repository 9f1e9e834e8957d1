"""Exact resume at any kill point (issue #29, point 2).

A run is killed (``KeyboardInterrupt``, as Ctrl-C) right after the checkpoint of a chosen epoch —
before, at and after the best epoch and after the last one — or in the middle of writing a
checkpoint (the final one included); a fresh estimator then resumes from what is on disk. Its
weights, history, best epoch and predictions must equal the uninterrupted run's, bit for bit:
early stopping's state (best score, best weights, patience counter) and every callback's state
travel in the checkpoint, and the checkpoint is one file renamed into place, so a kill while it
is written leaves the previous one.

Reinforcement-learning agents keep no checkpoint (``learn`` has no ``checkpoint_dir``), so they
have no resume to test.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import safetensors.torch
import torch
from safetensors.torch import load_file, save_file

from deepatlas import create_model
from deepatlas.data import load_dataset
from deepatlas.training import callbacks


class Killed(KeyboardInterrupt):
    pass


def _kill_after_checkpoint(monkeypatch, stop: int) -> None:
    save = callbacks.save_checkpoint

    def save_then_stop(directory, loop, epoch):
        save(directory, loop, epoch)
        if epoch == stop:
            raise Killed

    monkeypatch.setattr(callbacks, "save_checkpoint", save_then_stop)


def _kill_inside_checkpoint(monkeypatch, stop: int) -> None:
    """The ``stop``-th checkpoint write dies halfway: half a file on disk, then the interrupt."""
    write, calls = safetensors.torch.save_file, [0]

    def half_then_stop(tensors, filename, metadata=None):
        calls[0] += 1
        if calls[0] != stop:
            return write(tensors, filename, metadata=metadata)
        write(tensors, filename, metadata=metadata)
        with open(filename, "r+b") as f:
            f.truncate(len(f.read()) // 2)
        raise Killed

    monkeypatch.setattr(safetensors.torch, "save_file", half_then_stop)


def _fit(make, fit, tmp_path=None, resume=False):
    model = make()
    kwargs = {} if tmp_path is None else {"checkpoint_dir": tmp_path, "resume": resume}
    return fit(model, **kwargs)


def _same(full, resumed, predict) -> None:
    assert resumed.history_ == full.history_
    assert resumed.n_epochs_ == full.n_epochs_
    assert getattr(resumed, "best_epoch_", None) == getattr(full, "best_epoch_", None)
    a, b = full.module_.state_dict(), resumed.module_.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    np.testing.assert_array_equal(predict(full), predict(resumed))


def _kill_and_resume(monkeypatch, tmp_path, make, fit, predict, full, kill, stop) -> None:
    out = tmp_path / f"{kill.__name__}-{stop}"
    with monkeypatch.context() as m:
        kill(m, stop)
        with pytest.raises(Killed):
            _fit(make, fit, out)
    before = {p.name for p in out.iterdir()}
    assert before == {"checkpoint.safetensors"}  # one file; no half-written temporary left behind
    _same(full, _fit(make, fit, out, resume=True), predict)


# ---- the MLP with early stopping, on the default (autograd-free, fused Adam) step ----------------
def _mlp_data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(240, 6)).astype(np.float32)
    y = (X[:, 0] + 0.5 * rng.normal(size=240) > 0).astype(np.int64)  # noisy: validation loss turns
    return X, y


def _mlp():
    return create_model("mlp", hidden_sizes=(32,), lr=0.003, batch_size=32, epochs=40, patience=3, seed=2)


def _mlp_fit(model, **kw):
    X, y = _mlp_data()
    return model.fit(X, y, **kw)


def _mlp_predict(model):
    return model.predict_proba(_mlp_data()[0])


@pytest.fixture(scope="module")
def mlp_full():
    full = _fit(_mlp, _mlp_fit)
    best, n = full.best_epoch_, full.n_epochs_
    assert 3 <= best and best + 3 == n < 40, (best, n)  # early stopping ended it, three epochs after the best
    return full


@pytest.mark.parametrize("offset", [-1, 0, 1, 3])  # before, at, after the best epoch; the last one
def test_mlp_killed_after_a_checkpoint(monkeypatch, tmp_path, mlp_full, offset):
    stop = mlp_full.best_epoch_ + offset
    _kill_and_resume(monkeypatch, tmp_path, _mlp, _mlp_fit, _mlp_predict, mlp_full, _kill_after_checkpoint, stop)


@pytest.mark.parametrize("where", ["best", "last"])
def test_mlp_killed_inside_a_checkpoint(monkeypatch, tmp_path, mlp_full, where):
    stop = mlp_full.best_epoch_ if where == "best" else mlp_full.n_epochs_
    _kill_and_resume(monkeypatch, tmp_path, _mlp, _mlp_fit, _mlp_predict, mlp_full, _kill_inside_checkpoint, stop)


def test_uninterrupted_checkpointed_run_is_the_plain_run(tmp_path, mlp_full):
    _same(mlp_full, _fit(_mlp, _mlp_fit, tmp_path), _mlp_predict)
    meta = json.loads(
        safetensors.safe_open(tmp_path / "checkpoint.safetensors", "pt").metadata()["deepatlas.checkpoint"]
    )
    assert meta["epoch"] == mlp_full.n_epochs_ and meta["stopped"]
    [(name, state)] = meta["callbacks"].items()
    assert name == "EarlyStopping.0"
    assert state["values"]["best_epoch"] == mlp_full.best_epoch_ - 1 and state["values"]["wait"] == 3


def test_older_two_file_checkpoint_still_resumes(monkeypatch, tmp_path):
    """A checkpoint written before the metadata moved into the file (``checkpoint.json`` beside
    the tensors, no callback state) resumes as before; early stopping off, so nothing is lost."""

    def make():
        return create_model("mlp", hidden_sizes=(16,), batch_size=32, epochs=5, early_stopping=False, seed=1)

    full = _fit(make, _mlp_fit)
    with monkeypatch.context() as m:
        _kill_after_checkpoint(m, 2)
        with pytest.raises(Killed):
            _fit(make, _mlp_fit, tmp_path)
    path = tmp_path / "checkpoint.safetensors"
    tensors, meta = callbacks.read_checkpoint(tmp_path)
    del meta["callbacks"], meta["stopped"]
    save_file(tensors, path)  # no metadata
    (tmp_path / "checkpoint.json").write_text(json.dumps(meta))
    resumed = _fit(make, _mlp_fit, tmp_path, resume=True)
    _same(full, resumed, _mlp_predict)
    assert not (tmp_path / "checkpoint.json").exists()  # the new checkpoint replaced both files
    assert "deepatlas.checkpoint" in safetensors.safe_open(path, "pt").metadata()
    assert load_file(path).keys() >= tensors.keys()


# ---- a GRU with early stopping (autograd step) ----------------------------------------------------
def _gru_data():
    return load_dataset("adding:T=6,n=300")


def _gru():
    return create_model("gru", task="regression", hidden_size=8, lr=0.1, batch_size=32, epochs=15, patience=1, seed=0)


def _gru_fit(model, **kw):
    ds = _gru_data()
    return model.fit(ds.X_train, ds.y_train, validation_data=(ds.X_val, ds.y_val), **kw)


def _gru_predict(model):
    return model.predict(_gru_data().X_test)


@pytest.fixture(scope="module")
def gru_full():
    return _fit(_gru, _gru_fit)


@pytest.mark.parametrize("kill", ["at-best", "inside-last"])
def test_gru_killed_and_resumed(monkeypatch, tmp_path, gru_full, kill):
    assert gru_full.best_epoch_ < gru_full.n_epochs_ < 15  # early stopping ended it
    if kill == "at-best":
        stop, how = gru_full.best_epoch_, _kill_after_checkpoint
    else:
        stop, how = gru_full.n_epochs_, _kill_inside_checkpoint
    _kill_and_resume(monkeypatch, tmp_path, _gru, _gru_fit, _gru_predict, gru_full, how, stop)


# ---- a GAN on ring8 (two players, two optimisers, noise from the loop's generator) --------------
def _gan_data():
    return load_dataset("ring8:n=512").X_train


def _gan(**kw):
    return create_model("gan", hidden_sizes=(16, 16), batch_size=64, epochs=4, seed=0, **kw)


def _gan_fit(model, **kw):
    return model.fit(_gan_data(), **kw)


def _gan_predict(model):
    return model.sample(64, seed=3)


@pytest.fixture(scope="module")
def gan_full():
    return _fit(_gan, _gan_fit)


@pytest.mark.parametrize("kill", ["after-2", "inside-last", "after-last"])
def test_gan_killed_and_resumed(monkeypatch, tmp_path, gan_full, kill):
    how = _kill_inside_checkpoint if kill.startswith("inside") else _kill_after_checkpoint
    stop = 2 if kill == "after-2" else gan_full.n_epochs_
    _kill_and_resume(monkeypatch, tmp_path, _gan, _gan_fit, _gan_predict, gan_full, how, stop)


@pytest.mark.slow
def test_gan_with_several_critic_steps_resumes_its_logged_generator_loss(monkeypatch, tmp_path):
    """With ``n_critic`` > 1 an epoch's first batches log the generator loss of the epoch before
    (the loop's own state, in the checkpoint)."""

    def make():
        return _gan(n_critic=3, lr_schedule="linear")

    full = _fit(make, _gan_fit)
    _kill_and_resume(monkeypatch, tmp_path, make, _gan_fit, _gan_predict, full, _kill_after_checkpoint, 2)

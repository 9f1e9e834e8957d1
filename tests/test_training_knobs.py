"""The knobs people expect from scikit-learn, Keras and Lightning (issue #28, points 3, 6 and 7):
``threads``, ``class_weight`` and ``sample_weight``, learning-rate schedules (exact resume
included), ``warm_start``, multi-label targets, ``monitor``, per-epoch logs (CSV, TensorBoard),
plain progress lines when stderr is not a terminal, and torch ``Dataset``/``DataLoader`` input."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from deepatlas import create_model, load
from deepatlas.data import load_dataset
from deepatlas.training import Callback, callbacks


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _flat(X):
    return X.reshape(len(X), -1)


class _Record(Callback):
    def __init__(self):
        self.threads, self.lrs = [], []

    def on_epoch_end(self, loop, epoch, logs):
        self.threads.append(torch.get_num_threads())
        self.lrs.append(loop.optimizer.param_groups[0]["lr"])


# ---- threads (point 3) ---------------------------------------------------------------------
def test_threads_are_set_for_the_fit_and_restored(digits):
    before = torch.get_num_threads()
    for threads, expected in (("auto", 1), (2, 2)):
        rec = _Record()
        create_model("mlp", epochs=2, hidden_sizes=(8,), threads=threads, early_stopping=False).fit(
            digits.X_train[:300], digits.y_train[:300], callbacks=[rec]
        )
        assert rec.threads == [expected, expected]
        assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match=r"The 'threads' parameter of MLPClassifier must be one of 'auto' or an int"):
        create_model("mlp", threads=0).fit(digits.X_train, digits.y_train)
    assert torch.get_num_threads() == before


# ---- class and sample weights (point 7) ----------------------------------------------------
def _imbalanced(digits):
    """Digits 0 against the rest, keeping one 0 in eight: a rare positive class."""
    X, y = _flat(digits.X_train), (digits.y_train == 0).astype(int)
    keep = (y == 0) | (np.cumsum(y) % 8 == 0)
    return X[keep], y[keep]


def test_class_weight_balanced_raises_the_rare_class_recall():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 1, (950, 2)), rng.normal(1.2, 1, (50, 2))])
    y = np.array([0] * 950 + [1] * 50)
    common = {"hidden_sizes": (16,), "epochs": 30, "early_stopping": False}
    plain = create_model("mlp", **common).fit(X, y)
    balanced = create_model("mlp", class_weight="balanced", **common).fit(X, y)
    recall = [float((m.predict(X[y == 1]) == 1).mean()) for m in (plain, balanced)]
    assert recall[0] < 0.3 and recall[1] > 0.7, recall
    by_dict = create_model("mlp", class_weight={0: 1.0, 1: 19.0}, **common).fit(X, y)
    assert float((by_dict.predict(X[y == 1]) == 1).mean()) > 0.7
    with pytest.raises(ValueError, match=r"'class_weight' parameter names class 7, which is not in y"):
        create_model("mlp", class_weight={7: 2.0}, **common).fit(X, y)


def test_sample_weight_zero_drops_a_class_and_bad_weights_are_refused(digits):
    X, y = _flat(digits.X_train), digits.y_train
    w = np.where(y == 3, 0.0, 1.0)
    # dropout 0: a network the autograd-free step could train, which must step aside for weights
    m = create_model("mlp", hidden_sizes=(32,), dropout=0.0, epochs=20, early_stopping=False)
    m.fit(X, y, sample_weight=w)
    Xt, yt = _flat(digits.X_test), digits.y_test
    assert float((m.predict(Xt[yt == 3]) == 3).mean()) < 0.2  # never rewarded for a 3
    assert float((m.predict(Xt[yt != 3]) == yt[yt != 3]).mean()) > 0.9
    for bad, words in (
        (np.ones(5), "sample_weight must be 1-D with one weight per sample"),
        (-np.ones(len(y)), "sample_weight must be finite and non-negative"),
        (["a"] * len(y), "sample_weight must hold numbers"),
    ):
        with pytest.raises((ValueError, TypeError), match=words):
            create_model("mlp", epochs=1).fit(X, y, sample_weight=bad)


# ---- learning-rate schedules and exact resume ----------------------------------------------
def test_schedules_change_the_learning_rate_as_documented(digits):
    epochs = 6
    seen = {}
    for name in ("cosine", "step", "onecycle", "plateau"):
        rec = _Record()
        create_model("mlp", hidden_sizes=(8,), epochs=epochs, scheduler=name, early_stopping=False, lr=1e-3).fit(
            digits.X_train, digits.y_train, callbacks=[rec]
        )
        seen[name] = rec.lrs
    assert seen["cosine"][-1] == pytest.approx(0.0, abs=1e-12)
    assert seen["cosine"][2] == pytest.approx(1e-3 * (1 + np.cos(np.pi * 3 / 6)) / 2)
    assert seen["step"] == pytest.approx([1e-3, 1e-4, 1e-4, 1e-5, 1e-5, 1e-6])
    assert max(seen["onecycle"]) > 1e-3 and seen["onecycle"][-1] < 1e-4
    assert seen["plateau"] == pytest.approx([1e-3] * 6)  # improves every epoch: no cut


class Killed(KeyboardInterrupt):
    pass


@pytest.mark.parametrize(
    "params",
    [{"scheduler": "onecycle", "class_weight": "balanced"}, {"scheduler": "plateau", "monitor": "val_loss"}],
    ids=["onecycle-balanced", "plateau-val_loss"],
)
def test_a_scheduled_run_resumes_bit_for_bit(digits, tmp_path, monkeypatch, params):
    X, y = digits.X_train[:600], digits.y_train[:600]

    def make():
        return create_model("mlp", hidden_sizes=(16,), epochs=8, patience=3, log="csv", **params)

    full = make().fit(X, y, checkpoint_dir=tmp_path / "full")
    save = callbacks.save_checkpoint

    def save_then_stop(directory, loop, epoch):
        save(directory, loop, epoch)
        if epoch == 4:
            raise Killed

    monkeypatch.setattr(callbacks, "save_checkpoint", save_then_stop)
    with pytest.raises(Killed):
        make().fit(X, y, checkpoint_dir=tmp_path / "cut")
    monkeypatch.setattr(callbacks, "save_checkpoint", save)
    resumed = make().fit(X, y, checkpoint_dir=tmp_path / "cut", resume=True)
    assert resumed.history_ == full.history_
    for k, v in full.module_.state_dict().items():
        assert torch.equal(v, resumed.module_.state_dict()[k]), k
    rows = [list(csv.reader(open(d / "log.csv"))) for d in (tmp_path / "full", tmp_path / "cut")]
    assert rows[0] == rows[1] and len(rows[0]) == len(full.history_) + 1 and "lr" in rows[0][0]


# ---- warm start, monitor --------------------------------------------------------------------
def test_warm_start_continues_and_refuses_other_classes(digits):
    X, y = digits.X_train, digits.y_train
    m = create_model("mlp", hidden_sizes=(16,), epochs=2, early_stopping=False, warm_start=True).fit(X, y)
    first = m.module_
    loss_after_2 = m.history_[-1]["loss"]
    m.fit(X, y)
    assert m.module_ is first and m.history_[0]["loss"] < loss_after_2 * 1.05
    cold = create_model("mlp", hidden_sizes=(16,), epochs=2, early_stopping=False).fit(X, y)
    assert m.history_[0]["loss"] < cold.history_[0]["loss"] * 0.9 and m.history_[0]["loss"] < loss_after_2
    with pytest.raises(ValueError, match=r"warm_start: the classes \[0, 1\] differ from the fitted ones"):
        m.fit(X[y < 2], y[y < 2])
    assert m.module_ is first  # the fitted model is kept


def test_monitor_is_checked_and_used(digits):
    with pytest.raises(ValueError, match=r"The 'monitor' parameter of MLPClassifier must be one of 'loss', 'val_loss'"):
        create_model("mlp", monitor="val_acc").fit(digits.X_train, digits.y_train)
    m = create_model("mlp", hidden_sizes=(16,), monitor="loss", patience=2, epochs=300).fit(
        digits.X_train, digits.y_train
    )
    losses = [h["loss"] for h in m.history_]
    assert m.best_epoch_ == int(np.argmin(losses)) + 1


# ---- multi-label ----------------------------------------------------------------------------
def test_multilabel_targets_train_sigmoid_outputs(digits, tmp_path):
    def labels(y):
        return np.stack([y % 2, y >= 5, y == 0], axis=1).astype(int)

    Y = labels(digits.y_train)
    m = create_model("mlp", hidden_sizes=(32,), dropout=0.0).fit(digits.X_train, Y)  # not the softmax step
    P = m.predict_proba(digits.X_test)
    pred = m.predict(digits.X_test)
    assert pred.shape == P.shape == (len(digits.X_test), 3) and set(np.unique(pred)) <= {0, 1}
    assert ((P >= 0) & (P <= 1)).all() and not np.allclose(P.sum(axis=1), 1)
    per_label = (pred == labels(digits.y_test)).mean(axis=0)
    assert (per_label > 0.9).all(), per_label
    assert {"val_accuracy_0", "val_accuracy_1", "val_accuracy_2"} <= set(m.history_[-1])
    from deepatlas import save_model

    save_model(m, tmp_path / "ml")
    np.testing.assert_array_equal(load(tmp_path / "ml").predict(digits.X_test), pred)


# ---- logs and progress (point 6) ------------------------------------------------------------
def test_progress_prints_one_line_per_epoch_when_stderr_is_not_a_terminal(digits, capsys):
    create_model("mlp", hidden_sizes=(8,), epochs=3, early_stopping=False, verbose=True).fit(
        digits.X_train, digits.y_train
    )
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(" loss ")[0] for line in lines] == [f"MLPClassifier epoch {e}/3" for e in (1, 2, 3)]


def test_tensorboard_log_has_scalars_lr_and_histograms(digits, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    create_model("mlp", hidden_sizes=(8,), epochs=3, log="tensorboard", log_dir=str(tmp_path)).fit(
        digits.X_train, digits.y_train
    )
    acc = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"histograms": 0}).Reload()
    tags = acc.Tags()
    assert {"loss", "val_loss", "val_accuracy", "lr"} <= set(tags["scalars"])
    assert "1.weight" in tags["histograms"] and len(acc.Scalars("loss")) == 3


# ---- torch Dataset / DataLoader --------------------------------------------------------------
def test_fit_takes_a_torch_dataset_or_dataloader(digits):
    from torch.utils.data import DataLoader, TensorDataset

    X, y = torch.as_tensor(digits.X_train), torch.as_tensor(digits.y_train)
    ds = TensorDataset(X, y)
    params = {"hidden_sizes": (32,), "epochs": 15, "early_stopping": False}
    from_arrays = create_model("mlp", **params).fit(digits.X_train, digits.y_train)
    from_ds = create_model("mlp", **params).fit(ds)
    from_loader = create_model("mlp", **params).fit(DataLoader(ds, batch_size=64, shuffle=True))
    scores = [m.score(digits.X_test, digits.y_test) for m in (from_arrays, from_ds, from_loader)]
    # measured 0.925 / 0.928 / 0.928 (arrays take the fast step with its bulk dropout masks, the
    # dataset and the loader the autograd step): the three paths must train alike, and well
    assert min(scores) > 0.91 and max(scores) - min(scores) < 0.03, scores
    with_val = create_model("mlp", hidden_sizes=(32,), epochs=50, patience=3).fit(
        ds, validation_data=(digits.X_val, digits.y_val)
    )
    assert with_val.n_epochs_ < 50 and "val_accuracy" in with_val.history_[-1]


# ---- the command line ----------------------------------------------------------------------
def test_train_cli_logs_summarises_and_takes_threads(tmp_path, capsys):
    from deepatlas.cli import main

    out = tmp_path / "run"
    argv = ["train", "mlp", "--data", "digits", "--epochs", "3", "--set", "hidden_sizes=(8,)", "--log", "csv"]
    assert main([*argv, "--threads", "1", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    summary = captured.out.strip().splitlines()[-1]
    assert summary.startswith("mlp on digits: test_accuracy ") and "; best epoch " in summary and " of 3 " in summary
    assert [line.split(" loss ")[0] for line in captured.err.splitlines() if " epoch " in line] == [
        f"MLPClassifier epoch {e}/3" for e in (1, 2, 3)
    ]
    rows = list(csv.DictReader(open(out / "log.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"] and float(rows[0]["lr"]) == 1e-3
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--threads", "0", "--out", str(tmp_path / "x")])
    assert exit_.value.code == 2
    assert "argument --threads: must be 'auto' or an int >= 1. Got 0 instead." in capsys.readouterr().err


def test_a_gan_run_ends_with_its_own_measures(tmp_path, capsys):
    from deepatlas.cli import main

    assert main(["train", "gan", "--data", "ring8", "--epochs", "1", "--out", str(tmp_path / "g")]) == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith("gan on ring8: modes_captured ") and "high_quality_share" in summary


# ---- defaults that work (point 8) -----------------------------------------------------------
@pytest.mark.slow
def test_sparse_coding_default_codes_classify_at_least_as_well_as_raw_pixels(digits):
    from deepatlas.models.common import linear_probe

    raw = linear_probe(_flat(digits.X_train), digits.y_train, _flat(digits.X_test), digits.y_test)
    coder = create_model("sparse-coding").fit(digits.X_train)  # learned, 256 atoms, alpha 0.05
    codes = linear_probe(coder.transform(digits.X_train), digits.y_train, coder.transform(digits.X_test), digits.y_test)
    assert coder.components_.shape == (256, 64)
    assert codes >= raw, (codes, raw)  # measured 0.975 against 0.972

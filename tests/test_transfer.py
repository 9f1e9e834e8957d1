"""Transfer learning: freezing policies, the new head, label subsets, scratch comparison, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from deepatlas.data import load_dataset
from deepatlas.errors import InputError
from deepatlas.models.cnn import conv_stack
from deepatlas.models.mlp import MLPClassifier, mlp_stack
from deepatlas.transfer import frozen_layers, label_subset, transfer


@pytest.fixture(scope="module")
def mnist1d_source():
    ds = load_dataset("mnist1d-0to4")
    model = MLPClassifier(epochs=30, patience=10, seed=0)  # the default architecture, 256 x 256
    return model.fit(ds.X_train, ds.y_train, validation_data=(ds.X_val, ds.y_val))


def test_frozen_layers_per_policy():
    mlp = mlp_stack(64, (32, 32, 32), 5, dropout=0.1)  # Flatten, (Linear, ReLU, Dropout) x3, Linear
    assert frozen_layers(mlp, "none") == []
    assert frozen_layers(mlp, "features") == [1, 4]  # the last hidden Linear (7) is fine-tuned
    assert frozen_layers(mlp, "all-but-head") == [1, 4, 7]
    cnn = conv_stack((1, 8, 8), (8, 16), 3, 5, dropout=0.0)  # (Conv, BN, ReLU, Pool) x2, GAP, Flatten, Linear
    assert frozen_layers(cnn, "features") == [0, 1]  # the last conv block (4, 5) is fine-tuned
    assert frozen_layers(cnn, "all-but-head") == [0, 1, 4, 5]


def test_label_subset_is_stratified_and_checked():
    y = np.repeat(np.arange(5), [100, 100, 100, 100, 3])
    idx = label_subset(y, 0.05, seed=0)
    assert np.bincount(y[idx]).tolist() == [5, 5, 5, 5, 1]  # every class keeps at least one label
    assert np.array_equal(idx, label_subset(y, 0.05, seed=0))
    with pytest.raises(InputError) as exc:
        label_subset(y, 0.0)
    assert str(exc.value) == "--labels-fraction must be a number in (0, 1]. Got 0.0 instead."


def test_all_but_head_trains_only_the_new_head(mnist1d_source):
    target = load_dataset("mnist1d-5to9")
    tuned, scratch, m = transfer(
        mnist1d_source, target, freeze="all-but-head", labels_fraction=0.05, params={"epochs": 5}
    )
    src = mnist1d_source.module_
    for i in (1, 4):  # reused hidden layers are exactly the source's
        assert torch.equal(tuned.module_[i].weight, src[i].weight)
    assert tuned.module_[-1].weight.shape == (5, 256)  # new head, five new classes
    assert tuned.classes_.tolist() == [5, 6, 7, 8, 9]
    assert not torch.equal(scratch.module_[1].weight, src[1].weight)
    assert m["n_train_labels"] == sum(max(1, round(0.05 * c)) for c in np.bincount(target.y_train)[5:])
    assert set(m) >= {"transfer_test_accuracy", "scratch_test_accuracy", "gain_test_accuracy"}


def test_fine_tuning_moves_reused_layers_at_the_lower_rate(mnist1d_source):
    target = load_dataset("mnist1d-5to9")
    tuned, _, _ = transfer(
        mnist1d_source, target, freeze="none", labels_fraction=0.05, reuse_lr_factor=0.1, params={"epochs": 3}
    )
    src = mnist1d_source.module_
    first = (tuned.module_[1].weight - src[1].weight).abs().max().item()
    assert 0 < first < 3 * 3 * 1e-4 * 1.5  # moved, but at most ~epochs x steps x 0.1 lr per weight


def test_transfer_beats_scratch_with_5_percent_labels_on_mnist1d(mnist1d_source):
    """The built-in scenario on MNIST-1D: pre-trained on classes 0-4, 5 % of the labels of 5-9."""
    target, params = load_dataset("mnist1d-5to9"), {"epochs": 100, "patience": 20}
    _, _, m = transfer(mnist1d_source, target, freeze="features", labels_fraction=0.05, params=params)
    # measured (freeze features, reuse factor 1): 0.479 vs 0.396 (seed 0), 0.560 vs 0.387 (seed 1).
    # The default policy (none since issue #19's Fashion-MNIST cells) gains only +0.4 here from
    # this 30-epoch source: the one cell of six where freezing wins (docs/results-tuning-transfer.md).
    assert m["transfer_test_accuracy"] >= m["scratch_test_accuracy"] + 0.05, m
    _, _, default = transfer(mnist1d_source, target, labels_fraction=0.05, params={"epochs": 1})
    assert default["freeze"] == "none" and default["frozen_layers"] == []
    # train accuracy is scored on the labelled rows the models were fitted on (5 %), not on the whole split
    keep = label_subset(target.y_train, 0.05, 0)
    assert m["n_train_labels"] == len(keep) < len(target.y_train) // 10
    assert m["scratch_train_accuracy"] > m["scratch_test_accuracy"] + 0.2, m  # it fits its few labels


def test_fine_tuning_on_digits_is_no_longer_far_below_scratch():
    """digits 0-4 -> 5-9 with 31 labels: one optimiser step an epoch, so reused layers trained at
    0.1 x lr hardly move and the transfer fell 16-19 points below scratch; at the default factor 1
    it is level with scratch (the +5-point target is not met on digits: see the results page)."""
    src_ds, target = load_dataset("digits-0to4"), load_dataset("digits-5to9")
    source = MLPClassifier(epochs=30, patience=10).fit(src_ds.X_train, src_ds.y_train)
    params = {"epochs": 100, "patience": 20}
    _, _, full = transfer(source, target, freeze="none", labels_fraction=0.05, params=params)
    _, _, slow = transfer(source, target, freeze="none", labels_fraction=0.05, reuse_lr_factor=0.1, params=params)
    assert full["n_train_labels"] == 31
    # measured: 0.839 at factor 1, 0.567 at 0.1, 0.872 from scratch
    assert full["transfer_test_accuracy"] >= max(0.8, slow["transfer_test_accuracy"] + 0.1), (full, slow)
    assert full["transfer_test_accuracy"] >= full["scratch_test_accuracy"] - 0.05, full


def test_bad_input(mnist1d_source):
    with pytest.raises(InputError) as exc:
        transfer(mnist1d_source, load_dataset("digits-5to9"))
    assert str(exc.value) == "--data samples have shape (1, 8, 8), but the source model was trained on (40,)."
    with pytest.raises(InputError) as exc:
        transfer(mnist1d_source, load_dataset("mnist1d-5to9"), freeze="top")
    assert str(exc.value) == "--freeze must be one of none, features, all-but-head. Got 'top' instead."


def test_cli_writes_a_loadable_run_with_both_scores(cli, tmp_path):
    from deepatlas.runs import load, train_run

    src = tmp_path / "src"
    ds = load_dataset("digits-0to4")
    train_run(MLPClassifier(hidden_sizes=(32,), epochs=10), ds, src, data_spec="digits-0to4", quiet=True)
    out = tmp_path / "tr"
    r = cli("transfer", "--from", str(src), "--data", "digits-5to9", "--labels-fraction", "0.2", "--epochs", "10", "--lr", "0.01",
            "--freeze", "all-but-head", "--out", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["freeze"] == "all-but-head" and metrics["frozen_layers"] == [1]
    assert 0 <= metrics["scratch_test_accuracy"] <= 1 and metrics["transfer_test_accuracy"] >= 0.5  # measured 0.63
    assert (out / "plots" / "transfer-vs-scratch.png").stat().st_size > 1000
    model = load(out)
    assert type(model).__name__ == "MLPClassifier"
    assert set(model.predict(load_dataset("digits-5to9").X_test).tolist()) <= {5, 6, 7, 8, 9}
    r = cli("transfer", "--from", str(tmp_path / "nothing"), "--data", "digits-5to9")
    assert r.returncode == 2 and "does not exist" in r.stderr

"""Hyperparameter tuning: search spaces, pruning, storage errors, two workers, a killed worker."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time

import optuna
import pytest

from deepatlas import tuning
from deepatlas.data import load_dataset
from deepatlas.errors import InputError
from deepatlas.registry import cards
from deepatlas.training import Callback

TINY_SPACE = {
    "lr": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True},
    "width": {"type": "int", "low": 8, "high": 32},
}


def _trials(db, name):
    storage = tuning.open_storage(f"sqlite:///{db}")
    return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)


# ---- search spaces ---------------------------------------------------------------------------
def test_default_spaces_are_valid_and_compose():
    declared = [card for card in cards() if card.tuning_space is not None]
    for card in declared:
        assert tuning.check_space(tuning.default_space(card.name, card.task), card.name, card.task)
    params = tuning.compose_params("mlp", {"width": 64, "depth": 3, "lr": 0.01}, {"epochs": 5})
    assert params == {"hidden_sizes": (64, 64, 64), "lr": 0.01, "epochs": 5}
    assert tuning.compose_params("cnn", {"base_channels": 8, "depth": 3})["channels"] == (8, 16, 32)
    # every registered model has a space: its declared one, a generic one, or a clear error
    assert {"mlp", "cnn", "perceptron"} <= {card.name for card in declared}
    assert set(tuning.default_space("rnn")) >= {"lr", "batch_size"}
    # the spaces moved from a table in tuning.py to the cards without changing a number
    assert tuning.default_space("perceptron") == {
        "lr": {"type": "float", "low": 1e-3, "high": 10.0, "log": True},
        "epochs": {"type": "int", "low": 5, "high": 100, "log": True},
    }
    assert (
        tuning.default_space("mlp", "regression")
        == tuning.default_space("mlp")
        == {
            "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
            "batch_size": {"type": "categorical", "choices": [32, 64, 128, 256]},
            "width": {"type": "int", "low": 64, "high": 1024, "log": True},
            "depth": {"type": "int", "low": 1, "high": 4},
            "dropout": {"type": "float", "low": 0.0, "high": 0.5},
        }
    )
    assert tuning.default_space("cnn")["lr"] == {"type": "float", "low": 1e-4, "high": 3e-2, "log": True}
    assert tuning.default_space("cnn")["kernel_size"] == {"type": "categorical", "choices": [3, 5, 7]}


def test_space_file_errors(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("lr: {type: float, low: 0.1, high: 0.1}\n")
    with pytest.raises(InputError) as exc:
        tuning.check_space(tuning.read_space_file(path), "mlp")
    assert str(exc.value) == "Search space: 'lr' has an empty range: low=0.1 must be below high=0.1."
    path.write_text('{"lrr": {"type": "float", "low": 0.001, "high": 0.1}}')
    with pytest.raises(InputError, match=r"^Search space: unknown parameter 'lrr' for model 'mlp'\. Did you mean 'lr'"):
        tuning.check_space(tuning.read_space_file(path), "mlp")
    with pytest.raises(InputError) as exc:
        tuning.check_space({"batch_size": {"type": "categorical", "choices": []}}, "mlp")
    assert str(exc.value) == "Search space: 'batch_size' needs a non-empty list of choices. Got [] instead."
    with pytest.raises(InputError, match="^--space file .* does not exist"):
        tuning.read_space_file(tmp_path / "missing.yaml")


def test_storage_that_cannot_be_opened(tmp_path):
    url = f"sqlite:///{tmp_path}/no/such/dir/study.db"
    with pytest.raises(InputError, match=r"^--storage 'sqlite:///.*/no/such/dir/study\.db' cannot be opened: "):
        tuning.open_storage(url)
    with pytest.raises(InputError) as exc:
        tuning.open_storage("study.db")
    assert str(exc.value) == "--storage must be an SQLAlchemy URL such as sqlite:///study.db. Got 'study.db' instead."


def test_cli_bad_input(cli, tmp_path):
    r = cli("tune", "mlp", "--data", "blobs", "--trials", "0", "--out", str(tmp_path / "t"))
    assert r.returncode == 2
    assert r.stderr.strip() == "deepatlas tune: error: --trials must be a positive int. Got 0 instead."


# ---- pruning ---------------------------------------------------------------------------------
def test_pruning_callback_stops_the_fit_and_records_epochs():
    from deepatlas.registry import build_model

    ds = load_dataset("blobs")
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=1.5))
    trial = study.ask()
    seen = []

    class Spy(Callback):
        def on_epoch_end(self, loop, epoch, logs):
            seen.append(logs["val_accuracy"])

    model = build_model("mlp", "classification", {"epochs": 50, "hidden_sizes": (8,)})
    cb = tuning.PruningCallback(trial)
    with pytest.raises(optuna.TrialPruned, match="pruned at epoch 1"):
        model.fit(ds.X_train, ds.y_train, validation_data=(ds.X_val, ds.y_val), callbacks=[Spy(), cb])
    assert len(seen) == 1 and trial.user_attrs["epochs"] == 1
    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    assert study.trials[0].intermediate_values == {0: seen[0]}


def test_default_pruner_halves_at_epoch_5_and_keeps_the_top_third():
    """Successive halving: no decision before epoch 5; there a trial goes on only when its score
    is in the top third of all scores seen at that epoch (the best one while fewer than 3)."""
    study = optuna.create_study(direction="maximize", pruner=tuning.make_pruner())
    assert isinstance(study.pruner, optuna.pruners.SuccessiveHalvingPruner)

    def run(level: float) -> int | None:
        trial = study.ask()
        for step in range(20):
            trial.report(level + 0.001 * step, step)
            if trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                return step + 1  # the epoch it stopped at
        study.tell(trial, level)
        return None

    assert [run(level) for level in (0.5, 0.6, 0.7)] == [None, None, None]  # each the best so far
    assert run(0.1) == 5  # worst of four at epoch 5
    assert [run(level) for level in (0.65, 0.8)] == [5, None]  # top 5 // 3 = 1 of 5, top 2 of 6
    with pytest.raises(InputError) as exc:
        tuning.make_pruner("hyperband")
    assert str(exc.value) == "--pruner must be one of halving, median, none. Got 'hyperband' instead."


# ---- workers and reliability -----------------------------------------------------------------
def test_two_workers_share_one_study_then_train(cli, tmp_path):
    space = tmp_path / "space.json"
    space.write_text(json.dumps(TINY_SPACE))
    out = tmp_path / "study"
    r = cli(
        "tune", "mlp", "--data", "blobs", "--trials", "6", "--workers", "2", "--space", str(space),
        "--epochs", "3", "--set", "hidden_sizes=(8,)", "--out", str(out), "--then-train",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    trials = _trials(out / "study.db", "mlp-blobs")
    assert sorted(t.number for t in trials) == list(range(6))  # none lost, none run twice
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    assert len({t.user_attrs["pid"] for t in trials}) == 2  # both workers ran trials
    reported = re.findall(r"\] (?:worker 1: )?trial (\d+) (?:complete|pruned) ", r.stdout)
    assert sorted(int(n) for n in reported) == list(range(6)), r.stdout  # one progress line per trial
    rows = (out / "trials.csv").read_text().splitlines()
    assert rows[0].startswith("number,state,value,duration_s,lr,width") and len(rows) == 7
    best = json.loads((out / "best.json").read_text())
    assert best["best_params"]["hidden_sizes"] == [best["best_sampled"]["width"]]  # depth from --set
    assert best["best_value"] >= 0.9  # blobs are linearly separable
    assert (out / "plots" / "optimization_history.png").stat().st_size > 1000
    metrics = json.loads((out / "best-run" / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.9


def test_killed_worker_leaves_a_failed_trial_and_the_study_continues(tmp_path):
    db = tmp_path / "study.db"
    url = f"sqlite:///{db}"
    config = dict(
        model="mlp", data="blobs", storage_url=url, study_name="kill", trials=3, space=TINY_SPACE,
        fixed={"epochs": 100000, "patience": 100000, "hidden_sizes": [8]}, quota=1,
    )  # fmt: skip
    (tmp_path / "w.json").write_text(json.dumps(config))
    proc = subprocess.Popen([sys.executable, "-m", "deepatlas.tuning", str(tmp_path / "w.json")])
    try:
        deadline = time.monotonic() + 90
        running = []
        while not running and time.monotonic() < deadline:  # wait for the worker to start its trial
            time.sleep(0.5)
            if db.exists():
                try:
                    with sqlite3.connect(db) as con:
                        running = con.execute(  # running, with a heartbeat written (else never stale)
                            "select t.trial_id from trials t join trial_heartbeats h on t.trial_id = h.trial_id "
                            "where t.state = 'RUNNING'"
                        ).fetchall()
                except sqlite3.OperationalError:
                    pass
        assert running, "the worker never started a trial"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    time.sleep(tuning.GRACE_S + 1)  # the heartbeat goes stale
    ran = tuning.run_worker(**dict(config, fixed={"epochs": 2, "hidden_sizes": [8]}, quota=None))
    trials = _trials(db, "kill")
    states = [t.state.name for t in trials]
    assert states[0] == "FAIL" and ran == 3
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert states[1:] == ["COMPLETE"] * 3  # 2 epochs: no pruning decision before epoch 5


def test_trial_orphaned_before_its_first_heartbeat_is_failed_and_not_counted(tmp_path, monkeypatch):
    # A worker killed between Optuna creating its trial and the first heartbeat leaves a RUNNING
    # trial that fail_stale_trials never sees; it must not hold a slot of the study forever.
    storage = tuning.open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    study = tuning.load_study(storage, "orphans")
    with pytest.warns(UserWarning, match="Heartbeat"):  # ask() runs no heartbeat thread, as wanted here
        orphan = study.ask()  # RUNNING, no heartbeat, never reached the objective (no pid)
        live = study.ask()
    live.set_user_attr("pid", os.getpid())  # reached the objective: left to the heartbeat rule
    assert not tuning._claim(study, 2)  # both hold a slot while younger than ORPHAN_S
    monkeypatch.setattr(tuning, "ORPHAN_S", 0)
    assert tuning._claim(study, 2)  # the orphan's slot is freed ...
    states = {t.number: t.state.name for t in study.get_trials(deepcopy=False)}
    assert states == {orphan.number: "FAIL", live.number: "RUNNING"}  # ... and only the orphan's
    assert tuning.fail_orphans(study) == []

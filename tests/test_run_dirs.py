"""A run directory is never overwritten by accident (issue #29, point 1): ``deepatlas train --out``
refuses a non-empty folder that is not this run's own, ``--overwrite`` moves it aside first, and
``--resume`` needs a checkpoint of an unfinished run with the same settings (more epochs allowed)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

ERR = "deepatlas train: error: "
BASE = ["train", "mlp", "--data", "xor", "--epochs", "4", "--set", "early_stopping=False", "--quiet"]

# A run killed after the checkpoint of epoch STOP (KeyboardInterrupt, as Ctrl-C would).
_INTERRUPT = """
import sys
from deepatlas.training import callbacks
from deepatlas.cli import main
save, stop = callbacks.save_checkpoint, int(sys.argv[1])
def save_then_stop(directory, loop, epoch):
    save(directory, loop, epoch)
    if epoch == stop:
        raise KeyboardInterrupt
callbacks.save_checkpoint = save_then_stop
sys.exit(main(sys.argv[2:]))
"""


def _interrupted(out, stop: int, *extra: str):
    proc = subprocess.run(
        [sys.executable, "-c", _INTERRUPT, str(stop), *BASE, "--out", str(out), *extra], capture_output=True, text=True
    )
    assert proc.returncode == 130, proc.stderr
    assert (out / "checkpoint.safetensors").exists() and not (out / "metrics.json").exists()


def _snapshot(folder) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _refused(proc, expected: str):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [ERR + expected]


@pytest.fixture
def user_folder(tmp_path):
    out = tmp_path / "mine"
    (out / "sub").mkdir(parents=True)
    (out / "notes.txt").write_text("my notes\n")
    (out / "config.json").write_text('{"not": "a run"}\n')
    (out / "sub" / "data.bin").write_bytes(bytes(range(256)))
    return out


def test_non_empty_folder_is_refused_untouched(cli, user_folder):
    before = _snapshot(user_folder)
    _refused(
        cli(*BASE, "--out", str(user_folder)),
        f"--out {str(user_folder)!r} is a non-empty folder that holds no checkpoint of an unfinished run; "
        "choose another directory, or pass --overwrite to move its files aside and start again.",
    )
    assert _snapshot(user_folder) == before


def test_out_naming_a_file_is_refused(cli, tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("keep me")
    _refused(
        cli(*BASE, "--out", str(target)),
        f"--out {str(target)!r} is a file; expected a run directory (new, empty, or the run to resume).",
    )
    assert target.read_text() == "keep me"


def test_overwrite_moves_the_old_folder_aside(cli, user_folder):
    before = _snapshot(user_folder)
    proc = cli(*BASE, "--out", str(user_folder), "--overwrite")
    assert proc.returncode == 0, proc.stderr
    moved = [p for p in user_folder.parent.iterdir() if p.name.startswith("mine.old-")]
    assert len(moved) == 1 and _snapshot(moved[0]) == before
    assert f"--overwrite: moved the old contents of --out {str(user_folder)!r} to {str(moved[0])!r}" in proc.stderr
    assert (user_folder / "metrics.json").exists() and not (user_folder / "notes.txt").exists()
    assert json.loads((user_folder / "config.json").read_text())["model"] == "mlp"


def test_finished_run_is_refused_without_overwrite_and_with_resume(cli, tmp_path):
    out = tmp_path / "run"
    assert cli(*BASE, "--out", str(out)).returncode == 0
    before = _snapshot(out)
    _refused(
        cli(*BASE, "--out", str(out)),
        f"--out {str(out)!r} already holds a finished run; choose another directory, "
        "or pass --overwrite to move it aside and start again.",
    )
    _refused(
        cli(*BASE, "--out", str(out), "--resume"),
        f"--resume: --out {str(out)!r} holds a finished run (metrics.json); there is nothing to continue. "
        "Train into another directory, or pass --overwrite instead to move it aside and start again.",
    )
    _refused(
        cli(*BASE, "--out", str(out), "--resume", "--overwrite"),
        "--resume and --overwrite exclude each other: --resume continues the run in --out, "
        "--overwrite moves it aside and starts again.",
    )
    assert _snapshot(out) == before


def test_resume_needs_a_checkpoint(cli, tmp_path, user_folder):
    before = _snapshot(user_folder)
    _refused(
        cli(*BASE, "--out", str(user_folder), "--resume"),
        f"--resume: --out {str(user_folder)!r} holds no checkpoint (checkpoint.safetensors) to continue from.",
    )
    assert _snapshot(user_folder) == before
    missing = tmp_path / "nowhere"
    _refused(
        cli(*BASE, "--out", str(missing), "--resume"),
        f"--resume: --out {str(missing)!r} does not exist; expected the directory of an interrupted run.",
    )
    assert not missing.exists()


def test_resume_refuses_changed_settings_naming_each(cli, tmp_path):
    out = tmp_path / "run"
    _interrupted(out, 2)
    before = _snapshot(out)
    changed = ["train", "mlp", "--data", "spirals", "--epochs", "4", "--set", "early_stopping=False", "--quiet"]
    _refused(
        cli(*changed, "--out", str(out), "--resume", "--lr", "0.5", "--set", "hidden_sizes=(7,)", "--seed", "3"),
        f"--resume: the run in --out {str(out)!r} was started with other settings: data 'xor' (now 'spirals'); "
        "seed 0 (now 3); hidden_sizes [256, 256] (now [7]); lr 0.001 (now 0.5). "
        "Resume with the same settings (only --epochs may grow).",
    )
    _refused(
        cli(*BASE[:4], "--epochs", "3", *BASE[6:], "--out", str(out), "--resume"),
        f"--resume: the run in --out {str(out)!r} was started with other settings: epochs 4 (now 3). "
        "Resume with the same settings (only --epochs may grow).",
    )
    assert _snapshot(out) == before


def test_resume_refuses_a_damaged_checkpoint(cli, tmp_path):
    out = tmp_path / "run"
    _interrupted(out, 2)
    weights = out / "checkpoint.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    before = _snapshot(out)
    proc = cli(*BASE, "--out", str(out), "--resume")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith(
        f"{ERR}--resume: the checkpoint in --out {str(out)!r} is damaged: checkpoint.safetensors cannot be read ("
    )
    assert line.endswith(
        "). Train into another directory, or pass --overwrite instead to move it aside and start again."
    )
    save_file({"rng": torch.zeros(1)}, weights, metadata={"deepatlas.checkpoint": '{"epoch": 2'})
    before = _snapshot(out)
    _refused(
        cli(*BASE, "--out", str(out), "--resume"),
        f"--resume: the checkpoint in --out {str(out)!r} is damaged: checkpoint.safetensors (its metadata) cannot "
        "be read (JSONDecodeError). Train into another directory, or pass --overwrite instead to move it aside and "
        "start again.",
    )
    assert _snapshot(out) == before


def test_resume_of_an_interrupted_run_matches_the_uninterrupted_run(cli, tmp_path):
    full, out = tmp_path / "full", tmp_path / "run"
    assert cli(*BASE, "--out", str(full)).returncode == 0
    _interrupted(out, 2)
    proc = cli(*BASE, "--out", str(out), "--resume")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "history.json").read_text()) == json.loads((full / "history.json").read_text())
    a, b = load_file(full / "model.safetensors"), load_file(out / "model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


def test_resume_with_more_epochs_continues_and_records_them(cli, tmp_path):
    out = tmp_path / "run"
    _interrupted(out, 2)
    proc = cli(*BASE[:4], "--epochs", "6", *BASE[6:], "--out", str(out), "--resume")
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads((out / "history.json").read_text())) == 6
    assert json.loads((out / "config.json").read_text())["params"]["epochs"] == 6
    assert json.loads((out / "metrics.json").read_text())["epochs_run"] == 6


def test_own_unfinished_run_starts_again_and_other_settings_are_refused(cli, tmp_path):
    out = tmp_path / "run"
    _interrupted(out, 2)
    before = _snapshot(out)
    _refused(
        cli(*BASE, "--out", str(out), "--lr", "0.5"),
        f"--out {str(out)!r} holds an unfinished run of other settings (lr 0.001 (now 0.5)); "
        "choose another directory, or pass --overwrite to move it aside and start again.",
    )
    assert _snapshot(out) == before
    proc = cli(*BASE, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert f"--out {str(out)!r} holds an unfinished run of these settings; starting it again" in proc.stderr
    assert len(json.loads((out / "history.json").read_text())) == 4


# The commands that write one result folder (cv, compare, learning-curve) follow the same rule:
# a non-empty --out is refused before any work, --overwrite moves it aside first.
_REPORTS = {
    "cv": (["cv", "perceptron", "--data", "blobs", "--folds", "2"], "the cross-validation report"),
    "compare": (["compare", "perceptron", "perceptron", "--data", "blobs", "--folds", "2"], "the comparison report"),
    "learning-curve": (
        ["learning-curve", "perceptron", "--data", "blobs", "--folds", "2", "--sizes", "0.5,1.0"],
        "the learning-curve report",
    ),
}


@pytest.mark.parametrize("command", sorted(_REPORTS))
def test_report_commands_refuse_a_non_empty_out_and_overwrite_moves_it_aside(cli, user_folder, command):
    argv, what = _REPORTS[command]
    before = _snapshot(user_folder)
    proc = cli(*argv, "--out", str(user_folder))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"deepatlas {command}: error: --out {str(user_folder)!r} is a non-empty folder; {what} goes into a new or "
        "empty one. Choose another directory, or pass --overwrite to move its files aside first."
    ]
    assert _snapshot(user_folder) == before
    proc = cli(*argv, "--out", str(user_folder), "--overwrite")
    assert proc.returncode == 0, proc.stderr
    moved = [p for p in user_folder.parent.iterdir() if p.name.startswith("mine.old-")]
    assert len(moved) == 1 and _snapshot(moved[0]) == before
    assert (user_folder / "report.html").exists() and not (user_folder / "notes.txt").exists()

"""Data-parallel training under torchrun on CPU (gloo): same quality as one process, one run
directory, clean exit; a failing rank ends the job instead of hanging."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

COMMON = ["--data", "digits", "--quiet", "--set", "early_stopping=False", "--set", "dropout=0.0", "--epochs", "30"]


def test_two_processes_match_one(cli, tmp_path):
    one = cli("train", "mlp", *COMMON, "--batch-size", "64", "--out", str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr
    # Two ranks of 32 make the same global batch of 64.
    two = cli(
        "train", "mlp", *COMMON, "--batch-size", "32", "--nproc", "2", "--out", str(tmp_path / "two"), timeout=300
    )
    assert two.returncode == 0, two.stderr
    assert two.stdout.strip().splitlines() == [str(tmp_path / "two")]  # rank 0 alone prints
    acc_one = json.loads((tmp_path / "one" / "metrics.json").read_text())["test_accuracy"]
    acc_two = json.loads((tmp_path / "two" / "metrics.json").read_text())["test_accuracy"]
    assert abs(acc_one - acc_two) <= 0.01, (acc_one, acc_two)
    names = sorted(p.name for p in (tmp_path / "two").iterdir())
    assert names == ["config.json", "history.json", "metrics.json", "model.safetensors", "plots", "report.html"]
    assert not list(tmp_path.glob("two*/.*tmp*"))


def test_failing_rank_stops_the_job(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(
        textwrap.dedent(
            """
            import os
            from deepatlas.data import load_dataset
            from deepatlas.models.mlp import MLPClassifier
            from deepatlas.training import Callback

            class FailOnRankOne(Callback):
                def on_epoch_end(self, loop, epoch, logs):
                    if loop.rank == 1 and epoch == 1:
                        raise RuntimeError("rank 1 failed on purpose")

            ds = load_dataset("digits")
            MLPClassifier(epochs=50, early_stopping=False).fit(ds.X_train, ds.y_train, callbacks=[FailOnRankOne()])
            print("finished")
            """
        )
    )
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(script)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "finished" not in proc.stdout
    assert output.count("RuntimeError: rank 1 failed on purpose") == 1


# One real two-process run per data-parallel family beyond the MLP (above): the same global batch
# (two ranks of half the batch), no early stopping, the same test score within a point.
FAMILIES = {
    "cnn": (["cnn", "--data", "digits", "--epochs", "8", "--set", "channels=(8,16)"], "test_accuracy"),
    "gru": (["gru", "--data", "mnist1d", "--epochs", "4", "--set", "hidden_size=16"], "test_accuracy"),
    "text-rnn": (["text-rnn", "--data", "reviews", "--epochs", "6", "--set", "hidden_size=8"], "test_accuracy"),
    "ae": (["ae", "--data", "digits", "--epochs", "20", "--set", "hidden_sizes=(32,)"], "test_mse"),
}


@pytest.mark.slow
@pytest.mark.parametrize("family", list(FAMILIES))
def test_two_processes_match_one_per_family(family, cli, tmp_path):
    args, metric = FAMILIES[family]
    common = [*args, "--quiet", "--set", "early_stopping=False"]
    one = cli("train", *common, "--batch-size", "64", "--out", str(tmp_path / "one"), timeout=300)
    assert one.returncode == 0, one.stderr
    two = cli("train", *common, "--batch-size", "32", "--nproc", "2", "--out", str(tmp_path / "two"), timeout=300)
    assert two.returncode == 0, two.stderr
    score_one = json.loads((tmp_path / "one" / "metrics.json").read_text())[metric]
    score_two = json.loads((tmp_path / "two" / "metrics.json").read_text())[metric]
    if metric == "test_mse":  # a reconstruction error: within one per cent of it
        assert abs(score_one - score_two) <= 0.01 * score_one, (score_one, score_two)
    else:
        assert abs(score_one - score_two) <= 0.01, (score_one, score_two)


def test_user_error_in_the_ranks_is_one_line(cli, tmp_path):
    """A user mistake that only the ranks meet (a CSV with one class: fit refuses it) ends with
    rank 0's one line and exit 2, without torchrun's traceback or failure report."""
    data = tmp_path / "one-class.csv"
    data.write_text("a,b,y\n" + "".join(f"{i % 7},{i % 5},1\n" for i in range(40)))  # no ID-like column (a note)
    proc = cli("train", "mlp", "--data", str(data), "--nproc", "2", "--epochs", "1", "--out", str(tmp_path / "run"))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "deepatlas train: error: MLPClassifier needs at least 2 classes in y; got 1 class (np.int64(1))."
    ]


def test_a_rank_leaves_its_user_error_for_the_launcher(tmp_path, monkeypatch, capsys):
    """Under ``--nproc`` a rank does not print its user error (torchrun may kill rank 0 before it
    prints, when another rank exits first): it leaves the line in the launcher's folder."""
    from deepatlas.cli import main

    monkeypatch.setenv("DEEPATLAS_RANK_ERRORS", str(tmp_path))
    monkeypatch.setenv("RANK", "1")
    assert main(["train", "no-such-model", "--data", "digits", "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == ""
    line = (tmp_path / "rank1.txt").read_text()
    assert line.startswith("deepatlas train: error: ") and line.endswith("\n") and line.count("\n") == 1
    assert not (tmp_path / "run").exists()

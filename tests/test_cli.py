"""The `deepatlas` command end to end, in subprocesses: success paths and user errors."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from deepatlas.data import load_dataset


def _one_error_line(proc, expected: str):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [expected]


def test_list(cli):
    proc = cli("list")
    assert proc.returncode == 0
    for name in ("perceptron", "mlp", "cnn", "digits", "mnist1d", "spirals"):
        assert f"  {name} " in proc.stdout


def test_train_and_predict_on_csv_with_text_labels(cli, tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    labels = np.where(X[:, 0] + X[:, 1] > 0, "up", "down")
    with open(tmp_path / "train.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["f1", "f2", "f3", "direction"])
        w.writerows([[*map(float, row), lab] for row, lab in zip(X, labels)])
    out = tmp_path / "run"
    proc = cli(
        "train",
        "mlp",
        "--data",
        str(tmp_path / "train.csv"),
        "--out",
        str(out),
        "--epochs",
        "100",
        "--lr",
        "0.01",
        "--set",
        "hidden_sizes=(16,)",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("mlp on ")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.9 and metrics["fit_seconds"] > 0
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "mlp" and config["params"]["hidden_sizes"] == [16] and config["params"]["epochs"] == 100
    assert (out / "plots" / "loss.png").stat().st_size > 1000
    assert len(json.loads((out / "history.json").read_text())) >= 1
    # predict on a file whose columns are shuffled and which still holds the target column
    with open(tmp_path / "new.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["direction", "f3", "f2", "f1"])
        w.writerows([["?", row[2], row[1], row[0]] for row in X[:20]])
    pred = cli("predict", str(out), "--input", str(tmp_path / "new.csv"), "--output", str(tmp_path / "p.csv"))
    assert pred.returncode == 0, pred.stderr
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert list(rows[0]) == ["prediction", "proba_down", "proba_up"]
    assert np.mean([r["prediction"] == lab for r, lab in zip(rows, labels[:20])]) >= 0.9
    assert all(abs(float(r["proba_down"]) + float(r["proba_up"]) - 1) < 1e-5 for r in rows)


def test_train_cnn_on_digits_and_predict_flat_csv(cli, tmp_path):
    out = tmp_path / "cnn"
    proc = cli(
        "train", "cnn", "--data", "digits", "--out", str(out), "--epochs", "3", "--set", "channels=(8,)", "--quiet"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out)
    ds = load_dataset("digits")
    np.savetxt(
        tmp_path / "x.csv",
        ds.X_test[:7].reshape(7, -1),
        delimiter=",",
        header=",".join(f"p{i}" for i in range(64)),
        comments="",
    )
    pred = cli("predict", str(out), "--input", str(tmp_path / "x.csv"))
    assert pred.returncode == 0, pred.stderr
    lines = pred.stdout.strip().splitlines()
    assert lines[0].split(",")[:2] == ["prediction", "proba_0"] and len(lines) == 8


def test_resume_from_checkpoint(cli, tmp_path):
    out = tmp_path / "r"
    first = cli("train", "mlp", "--data", "xor", "--out", str(out), "--epochs", "4", "--quiet")
    assert first.returncode == 0
    again = cli("train", "mlp", "--data", "xor", "--out", str(out), "--epochs", "4", "--quiet")
    _one_error_line(
        again,
        f"deepatlas train: error: --out {str(out)!r} already holds a finished run; choose another directory, "
        "or pass --overwrite to move it aside and start again.",
    )


@pytest.mark.parametrize(
    "args, expected",
    [
        (["train", "mlpp", "--data", "digits"], "deepatlas train: error: Unknown model 'mlpp'. Did you mean 'mlp'?"),
        (
            ["train", "mlp", "--data", "digitz"],
            "deepatlas train: error: Unknown dataset 'digitz', and no file of that name exists. Did you mean 'digits'?",
        ),
        (
            ["train", "mlp", "--data", "digits", "--set", "hiden_sizes=(4,)"],
            "deepatlas train: error: Unknown parameter 'hiden_sizes' for model 'mlp' (MLPClassifier). Did you mean 'hidden_sizes'?",
        ),
        (
            ["train", "mlp", "--data", "digits", "--lr", "0"],
            "deepatlas train: error: The 'lr' parameter of MLPClassifier must be a float in the range (0, inf). Got 0.0 instead.",
        ),
        (
            ["train", "mlp", "--data", "digits", "--epochs", "0"],
            "deepatlas train: error: The 'epochs' parameter of MLPClassifier must be an int in the range [1, inf). Got 0 instead.",
        ),
        (
            ["train", "mlp", "--data", "digits", "--set", "hidden_sizes=(-3,)"],
            "deepatlas train: error: The 'hidden_sizes' parameter of MLPClassifier must be a tuple of positive ints. Got (-3,) instead.",
        ),
        (["train", "mlp", "--data", "missing.csv"], "deepatlas train: error: Data file 'missing.csv' does not exist."),
        (
            ["train", "mlp", "--data", "digits", "--set", "lr"],
            "deepatlas train: error: --set expects name=value, e.g. --set hidden_sizes=(128,64). Got 'lr' instead.",
        ),
        (["train", "mlp"], "deepatlas train: error: the following arguments are required: --data"),
    ],
)
def test_user_errors_exit_2_with_one_line(cli, tmp_path, args, expected):
    out = tmp_path / "run"
    proc = cli(*args, "--out", str(out)) if args[0] == "train" and "--data" in args else cli(*args)
    _one_error_line(proc, expected)
    assert not (out / "metrics.json").exists()


def test_file_errors(cli, tmp_path):
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "text.csv").write_text("a,b,y\n" + "".join(f"{i},w{i},{i % 2}\n" for i in range(20)))
    (tmp_path / "nan.csv").write_text("a,b,y\n1,inf,0\n")
    (tmp_path / "ok.csv").write_text("a,b,y\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(30)))
    cases = [
        (["--data", str(tmp_path / "empty.csv")], f"Data file '{tmp_path / 'empty.csv'}' is empty."),
        (
            ["--data", str(tmp_path / "text.csv")],
            f"Data file '{tmp_path / 'text.csv'}' has 1 problem: column 'b' holds text with a different value in "
            "every row (an identifier?): --drop b.",
        ),
        (
            ["--data", str(tmp_path / "nan.csv")],
            f"Data file '{tmp_path / 'nan.csv'}': column 'b' has a non-finite value (inf) in row 2.",
        ),
        (
            ["--data", str(tmp_path / "ok.csv"), "--target", "z"],
            f"Data file '{tmp_path / 'ok.csv'}' has no column 'z'; its columns are: a, b, y.",
        ),
    ]
    for args, message in cases:
        out = tmp_path / "run"
        _one_error_line(cli("train", "mlp", *args, "--out", str(out)), f"deepatlas train: error: {message}")
        assert not (out / "metrics.json").exists()


def test_predict_with_wrong_feature_count(cli, tmp_path):
    out = tmp_path / "run"
    assert cli("train", "perceptron", "--data", "blobs", "--out", str(out), "--quiet").returncode == 0
    (tmp_path / "x.csv").write_text("a,b,c\n1,2,3\n")
    _one_error_line(
        cli("predict", str(out), "--input", str(tmp_path / "x.csv")),
        f"deepatlas predict: error: --input file {str(tmp_path / 'x.csv')!r} has 3 columns, but the run reads 2 "
        "(it records no column names, so columns are taken by position).",
    )
    _one_error_line(
        cli("predict", str(tmp_path / "nope"), "--input", str(tmp_path / "x.csv")),
        f"deepatlas predict: error: Run directory '{tmp_path / 'nope'}' does not exist.",
    )


def test_diverging_run_leaves_no_metrics(cli, tmp_path):
    rng = np.random.default_rng(0)
    rows = "".join(f"{a},{b},{a + b}\n" for a, b in rng.normal(size=(60, 2)))
    (tmp_path / "wild.csv").write_text("a,b,y\n" + rows)
    out = tmp_path / "run"
    proc = cli(
        "train",
        "mlp",
        "--data",
        str(tmp_path / "wild.csv"),
        "--task",
        "regression",
        "--lr",
        "1e6",
        "--set",
        "optimizer='sgd'",
        "--set",
        "standardize=False",
        "--out",
        str(out),
        "--quiet",
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "Training diverged" in proc.stderr and "Try a lower learning rate" in proc.stderr
    assert not (out / "metrics.json").exists()

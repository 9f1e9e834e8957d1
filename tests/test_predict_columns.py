"""`deepatlas predict` matches CSV columns by header name (issue #29, point 4): a reordered header
gives the same predictions, the training target column may be present and is ignored, any other
difference is one line naming the missing and the unexpected columns (exit status 2); position is
used only for a file without a header row of exactly the training width, or for a run that records
no column names (here: trained on an ``.npz``), and says so in one note on stderr.

Runs are trained in-process through ``deepatlas.cli.main``, as in tests/test_rnn_cli.py."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from deepatlas.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: see conftest.py

NAMES = ["f1", "f2", "f3"]


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _error(capsys, *argv: str) -> str:
    code, out, err = _run(capsys, "predict", *argv)
    assert code == 2 and out == "" and len(err.splitlines()) == 1, (code, err)
    assert err.startswith("deepatlas predict: error: ") and "Traceback" not in err
    return err.strip()[len("deepatlas predict: error: ") :]


def _write(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        if header:
            w.writerow(header)
        w.writerows(rows)
    return str(path)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3)).round(4)
    y = np.where(X[:, 0] + 2 * X[:, 1] - X[:, 2] > 0, "up", "down")
    return X, y


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data):
    """One run trained on a CSV (it records f1, f2, f3 and the target 'direction'), one on an .npz
    (no column names)."""
    X, y = data
    root = tmp_path_factory.mktemp("runs")
    _write(root / "train.csv", [*NAMES, "direction"], [[*row, lab] for row, lab in zip(X, y)])
    np.savez(root / "train.npz", X=X.astype(np.float32), y=(y == "up").astype(np.int64))
    for name, data_file in (("named", "train.csv"), ("unnamed", "train.npz")):
        argv = ["train", "mlp", "--data", str(root / data_file), "--out", str(root / name)]
        assert main([*argv, "--epochs", "3", "--set", "hidden_sizes=(8,)", "--quiet"]) == 0
    return root


def test_a_reordered_header_gives_the_training_order_predictions(runs, data, tmp_path, capsys):
    X, _ = data
    same = _write(tmp_path / "same.csv", NAMES, X[:20])
    code, expected, err = _run(capsys, "predict", str(runs / "named"), "--input", same)
    assert code == 0 and err == ""
    # another order, and the training target column (any values) among them: matched by name, target ignored
    order = [2, 0, 1]
    moved = _write(tmp_path / "moved.csv", ["f3", "direction", "f1", "f2"], [[r[2], "?", r[0], r[1]] for r in X[:20]])
    code, out, err = _run(capsys, "predict", str(runs / "named"), "--input", moved)
    assert code == 0 and err == "" and out == expected
    assert len(out.splitlines()) == 21 and out.splitlines()[0] == "prediction,proba_down,proba_up"
    # the same file without the target column, columns reordered only
    only = _write(tmp_path / "only.csv", [NAMES[j] for j in order], X[:20, order])
    assert _run(capsys, "predict", str(runs / "named"), "--input", only) == (0, expected, "")


def test_a_missing_column_is_named(runs, data, tmp_path, capsys):
    X, _ = data
    path = _write(tmp_path / "x.csv", ["f1", "f2"], X[:5, :2])
    assert _error(capsys, str(runs / "named"), "--input", path) == (
        f"--input file {path!r} does not have the training columns: missing 'f3' (columns are matched by name; "
        "the run was trained on f1, f2, f3; its target column 'direction' may be present and is ignored)."
    )


def test_an_unexpected_column_is_named_and_so_is_a_renamed_one(runs, data, tmp_path, capsys):
    X, _ = data
    path = _write(tmp_path / "x.csv", ["id", *NAMES], [[i, *row] for i, row in enumerate(X[:5])])
    assert _error(capsys, str(runs / "named"), "--input", path) == (
        f"--input file {path!r} does not have the training columns: unexpected 'id' (columns are matched by name; "
        "the run was trained on f1, f2, f3; its target column 'direction' may be present and is ignored)."
    )
    path = _write(tmp_path / "y.csv", ["f1", "F2", "f3"], X[:5])
    assert _error(capsys, str(runs / "named"), "--input", path) == (
        f"--input file {path!r} does not have the training columns: missing 'f2'; unexpected 'F2' (columns are "
        "matched by name; the run was trained on f1, f2, f3; its target column 'direction' may be present and is "
        "ignored)."
    )


def test_a_headerless_file_of_the_training_width_is_read_by_position_with_a_note(runs, data, tmp_path, capsys):
    X, _ = data
    code, expected, _ = _run(
        capsys, "predict", str(runs / "named"), "--input", _write(tmp_path / "h.csv", NAMES, X[:9])
    )
    path = _write(tmp_path / "x.csv", None, X[:9])
    code, out, err = _run(capsys, "predict", str(runs / "named"), "--input", path)
    assert code == 0 and out == expected
    assert err.splitlines() == [
        f"note: --input file {path!r} has no header row; its 3 columns are taken by position as f1, f2, f3."
    ]


def test_a_headerless_file_of_another_width_is_refused(runs, data, tmp_path, capsys):
    X, _ = data
    path = _write(tmp_path / "x.csv", None, X[:5, :2])
    assert _error(capsys, str(runs / "named"), "--input", path) == (
        f"--input file {path!r} has no header row and 2 columns, but the run was trained on 3 (f1, f2, f3); "
        "add a header row naming them, or give exactly those columns in that order."
    )


def test_a_run_without_column_names_reads_by_width_with_a_note(runs, data, tmp_path, capsys):
    X, _ = data
    run = str(runs / "unnamed")
    npz = tmp_path / "x.npz"
    np.savez(npz, X=X[:9].astype(np.float32))
    code, expected, err = _run(capsys, "predict", run, "--input", str(npz))
    assert code == 0 and err == ""
    for path in (_write(tmp_path / "h.csv", ["a", "b", "c"], X[:9]), _write(tmp_path / "n.csv", None, X[:9])):
        code, out, err = _run(capsys, "predict", run, "--input", path)
        assert code == 0 and out == expected
        assert err.splitlines() == [
            f"note: the run records no column names; the 3 columns of --input file {path!r} are taken by position."
        ]
    path = _write(tmp_path / "w.csv", ["a", "b"], X[:5, :2])
    assert _error(capsys, run, "--input", path) == (
        f"--input file {path!r} has 2 columns, but the run reads 3 (it records no column names, "
        "so columns are taken by position)."
    )

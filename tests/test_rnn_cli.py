"""Sequence and text models from the command line: `deepatlas predict` on text, per-step tags and
sequences (ragged ones through an ``lengths`` array), plain-text files as corpora, and the bad
inputs of issue #4 (point 8) as one-line errors with exit status 2.

Runs are trained in-process through ``deepatlas.cli.main`` (the same code as the console command,
without paying for a fresh interpreter each time); one test runs the real console command."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from deepatlas.cli import main
from deepatlas.data import load_dataset
from deepatlas.models.rnn.charlm import UNK
from deepatlas.runs import load

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: see conftest.py


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _error(capsys, command: str, *argv: str) -> str:
    """The one stderr line of a user error (exit status 2), without the 'deepatlas X: error: ' prefix."""
    code, _, err = _run(capsys, command, *argv)
    lines = err.splitlines()
    assert code == 2 and len(lines) == 1, (code, err)
    prefix = f"deepatlas {command}: error: "
    assert lines[0].startswith(prefix), lines[0]
    return lines[0][len(prefix) :]


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _reviews_csv(path, n=120, seed=0):
    rng = np.random.default_rng(seed)
    good, bad = ["great", "lovely", "fine"], ["awful", "boring", "poor"]
    labels = rng.integers(0, 2, n)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "review", "label"])
        for i, k in enumerate(labels):
            w.writerow(
                [
                    i,
                    f"it was {rng.choice(good if k else bad)}, and {rng.choice(['long', 'short'])}",
                    "pos" if k else "neg",
                ]
            )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tiny runs trained through the CLI: a text classifier, a tagger, a sequence regressor."""
    root = tmp_path_factory.mktemp("rnn_cli")
    _reviews_csv(root / "reviews.csv")
    argv = {
        "text": ["text-rnn", "--data", str(root / "reviews.csv"), "--text", "review", "--target", "label"],
        "tagger": ["gru", "--data", "copy:T=2,n=100"],
        "adding": ["lstm", "--data", "adding:T=6,n=100"],
    }
    for name, args in argv.items():
        code = main(["train", *args, "--epochs", "1", "--set", "hidden_size=4", "--out", str(root / name), "--quiet"])
        assert code == 0
    return root


# ---- text classification: the training column, the training vocabulary ----------------------------
def test_console_predict_reads_the_text_column_and_writes_probabilities(runs, tmp_path, cli, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    docs = ["it was great, and long", "it was awful; Zq \u20ac unseen", ""]
    with open(tmp_path / "new.csv", "w", newline="", encoding="utf-8") as f:  # other column order, no label
        w = csv.writer(f)
        w.writerow(["review", "id"])
        w.writerows([d, i] for i, d in enumerate(docs))
    done = cli("predict", str(runs / "text"), "--input", str(tmp_path / "new.csv"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "prediction,proba_neg,proba_pos"
    rows = _rows(done.stdout)
    model = load(runs / "text")
    assert [r["prediction"] for r in rows] == list(model.predict(docs))
    proba = np.array([[float(r["proba_neg"]), float(r["proba_pos"])] for r in rows])
    np.testing.assert_allclose(proba, model.predict_proba(docs), atol=1e-5)
    # Characters never seen in training read as the one "unknown" id.
    assert "Z" not in model.vocabulary_ and model._encode_docs(["Zq\u20ac"])[0, :3].tolist() == [UNK] * 3


def test_text_predict_takes_one_document_per_line_and_refuses_bad_files(runs, tmp_path, capsys):
    (tmp_path / "docs.txt").write_text("it was great\nit was poor, and short\n", encoding="utf-8")
    code, out, _ = _run(capsys, "predict", str(runs / "text"), "--input", str(tmp_path / "docs.txt"))
    assert code == 0 and len(_rows(out)) == 2
    assert [r["prediction"] for r in _rows(out)] == list(
        load(runs / "text").predict(["it was great", "it was poor, and short"])
    )
    (tmp_path / "body.csv").write_text("body,id\nnice,1\n", encoding="utf-8")
    assert _error(capsys, "predict", str(runs / "text"), "--input", str(tmp_path / "body.csv")) == (
        f"--input file {str(tmp_path / 'body.csv')!r} needs the text column 'review' that the model was trained on; "
        "its columns are: body, id."
    )
    np.savez(tmp_path / "x.npz", X=np.zeros((2, 3)))
    assert _error(capsys, "predict", str(runs / "text"), "--input", str(tmp_path / "x.npz")) == (
        f"--input file {str(tmp_path / 'x.npz')!r} is an .npz, but a text model reads documents: a .csv with the "
        "text column it was trained on, or a .txt file with one document per line."
    )
    (tmp_path / "latin1.csv").write_bytes("review\ncaf\xe9\n".encode("latin-1"))
    assert _error(capsys, "predict", str(runs / "text"), "--input", str(tmp_path / "latin1.csv")) == (
        f"--input file {str(tmp_path / 'latin1.csv')!r} is not UTF-8 text (byte 10 cannot be decoded)."
    )


# ---- a tagger: one row per real step ---------------------------------------------------------------
def test_tagger_predictions_are_one_row_per_step(runs, tmp_path, capsys):
    X = load_dataset("copy:T=2,n=100").X_test[:3]  # (3, 22, 10)
    np.savez(tmp_path / "x.npz", X=X, lengths=np.array([22, 5, 3]))
    code, out, _ = _run(capsys, "predict", str(runs / "tagger"), "--input", str(tmp_path / "x.npz"))
    assert code == 0
    model = load(runs / "tagger")
    header = out.splitlines()[0].split(",")
    assert header == ["sequence", "step", "prediction"] + [f"proba_{c}" for c in model.classes_]
    rows = _rows(out)
    assert [(int(r["sequence"]), int(r["step"])) for r in rows] == [
        (i, t) for i, L in enumerate((22, 5, 3)) for t in range(L)
    ]
    expected = np.concatenate(model.predict([X[0], X[1, :5], X[2, :3]]))
    assert [int(r["prediction"]) for r in rows] == expected.tolist()
    sums = [sum(float(r[f"proba_{c}"]) for c in model.classes_) for r in rows]
    np.testing.assert_allclose(sums, 1.0, atol=1e-4)


# ---- classifiers and regressors on sequences: .npz, ragged .npz, flattened CSV ---------------------
def test_sequence_regressor_predicts_from_npz_ragged_npz_and_csv(runs, tmp_path, capsys):
    X = load_dataset("adding:T=6,n=100").X_test[:4]  # (4, 6, 2)
    model = load(runs / "adding")
    np.savez(tmp_path / "x.npz", X=X)
    with open(tmp_path / "x.csv", "w", newline="") as f:  # each row one sequence, step by step
        w = csv.writer(f)
        w.writerow([f"s{t}_{c}" for t in range(6) for c in ("value", "mark")])
        w.writerows(X.reshape(4, 12).tolist())
    np.savez(tmp_path / "ragged.npz", X=X, lengths=np.array([6, 4, 2, 5]))
    for name, expected in (
        ("x.npz", model.predict(X)),
        ("x.csv", model.predict(X)),
        ("ragged.npz", model.predict([X[0], X[1, :4], X[2, :2], X[3, :5]])),
    ):
        code, out, _ = _run(capsys, "predict", str(runs / "adding"), "--input", str(tmp_path / name))
        assert code == 0 and out.splitlines()[0] == "prediction"
        np.testing.assert_allclose([float(r["prediction"]) for r in _rows(out)], expected, rtol=1e-5, err_msg=name)


# ---- training from .npz files of sequences: ragged (lengths) and one label per step -------------
def test_ragged_and_per_step_npz_files_train_from_the_cli(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 6, 2)).astype(np.float32)
    lengths = rng.integers(1, 7, 40)
    np.savez(tmp_path / "ragged.npz", X=X, y=(X[:, 0, 0] > 0).astype(np.int64), lengths=lengths)
    np.savez(tmp_path / "steps.npz", X=X, y=np.where(X[..., 0] > 0, "up", "down"), lengths=lengths)
    ds = load_dataset(str(tmp_path / "steps.npz"))
    assert ds.task == "tagging" and [len(s) for s in ds.X_train] == [len(t) for t in ds.y_train]
    for name, cls in (("ragged", "RNNClassifier"), ("steps", "SequenceTagger")):
        run = tmp_path / name
        code, _, _ = _run(
            capsys, "train", "lstm", "--data", str(tmp_path / f"{name}.npz"), "--epochs", "1", "--set", "hidden_size=4",
            "--out", str(run), "--quiet",
        )  # fmt: skip
        model = load(run)
        assert code == 0 and type(model).__name__ == cls and model.masked_
        code, out, _ = _run(capsys, "predict", str(run), "--input", str(tmp_path / f"{name}.npz"))
        assert code == 0 and len(_rows(out)) == (40 if name == "ragged" else int(lengths.sum()))


# ---- plain-text files are corpora ------------------------------------------------------------------
def test_a_txt_file_trains_a_language_model_and_nothing_else(tmp_path, capsys):
    book = tmp_path / "book.txt"
    book.write_text("the cat sat on the mat. " * 20, encoding="utf-8")
    ds = load_dataset(str(book))
    assert ds.task == "text" and ds.meta["corpus"]
    run = tmp_path / "lm"
    code, out, _ = _run(
        capsys, "train", "charlm", "--data", str(book), "--epochs", "1", "--set", "hidden_size=4", "--set", "seq_len=16",
        "--out", str(run), "--quiet",
    )  # fmt: skip
    assert code == 0 and out.strip() == str(run)
    assert _error(capsys, "train", "lstm", "--data", str(book), "--out", str(tmp_path / "x")) == (
        f"--data {str(book)!r} is a text corpus, which only a language model (charlm) trains on; 'lstm' needs a "
        "table: a .csv with a header row (text in a column: --text COLUMN), an .npz with X and y, or a built-in dataset."
    )
    assert _error(capsys, "predict", str(run), "--input", str(book)) == (
        f"Run {str(run)!r} holds a CharLM language model, which predicts no labels; "
        f"generate text with 'deepatlas sample {run} --prompt TEXT'."
    )


# ---- issue #4, point 8: bad input, from the command line ------------------------------------------
def test_inconsistent_feature_sizes_are_one_line_errors(runs, tmp_path, capsys):
    np.savez(tmp_path / "three.npz", X=np.zeros((2, 6, 3), np.float32))
    assert _error(capsys, "predict", str(runs / "adding"), "--input", str(tmp_path / "three.npz")) == (
        "X has 3 features per step, but RNNRegressor was trained on 2."
    )
    (tmp_path / "odd.csv").write_text("a,b,c\n1,2,3\n")
    assert _error(capsys, "predict", str(runs / "adding"), "--input", str(tmp_path / "odd.csv")) == (
        f"--input file {str(tmp_path / 'odd.csv')!r} has 3 feature columns, which is not a whole number of steps "
        "of 2 features each (the model reads 2 features per step)."
    )


def test_empty_sequences_are_one_line_errors(runs, tmp_path, capsys):
    np.savez(tmp_path / "empty.npz", X=np.zeros((20, 0, 2), np.float32), y=np.zeros(20, np.float32))
    assert _error(capsys, "train", "lstm", "--data", str(tmp_path / "empty.npz"), "--out", str(tmp_path / "r")) == (
        "X holds empty sequences (shape (14, 0, 2)); every sequence needs at least one step."
    )
    np.savez(tmp_path / "zero.npz", X=np.zeros((12, 6, 2), np.float32), y=np.zeros(12), lengths=np.arange(12) % 7)
    assert _error(capsys, "train", "lstm", "--data", str(tmp_path / "zero.npz"), "--out", str(tmp_path / "r")) == (
        f"Data file {str(tmp_path / 'zero.npz')!r}: lengths[0] is 0; each length must be between 1 and 6 "
        "(the steps in X)."
    )
    assert _error(capsys, "predict", str(runs / "adding"), "--input", str(tmp_path / "zero.npz")) == (
        f"--input file {str(tmp_path / 'zero.npz')!r}: lengths[0] is 0; each length must be between 1 and 6 "
        "(the steps in X)."
    )


def test_ctc_labels_outside_the_alphabet_are_a_one_line_error(tmp_path, capsys):
    args = ["lstm-ctc", "--data", "digit-strings:n=100,max_digits=2", "--epochs", "1", "--out", str(tmp_path / "r")]
    assert _error(capsys, "train", *args, "--set", "alphabet=0123") == (
        "y[0] = '55' has '5', which is not in the alphabet '0123'."
    )
    # The same from a user's file of transcriptions (--task sequence keeps them as strings: "007").
    ds = load_dataset("digit-strings:n=100,max_digits=2")
    np.savez(tmp_path / "x.npz", X=ds.X_train, y=np.array(["x" + s for s in ds.y_train]))
    np.savez(tmp_path / "ok.npz", X=ds.X_train, y=np.array(["007"] + list(ds.y_train[1:])))
    mine = load_dataset(str(tmp_path / "x.npz"), task="sequence")
    assert mine.task == "sequence" and mine.y_train.dtype.kind == "U"
    ok = load_dataset(str(tmp_path / "ok.npz"), task="sequence")
    assert "007" in np.concatenate([ok.y_train, ok.y_val, ok.y_test]).tolist()
    args = ["lstm-ctc", "--task", "sequence", "--epochs", "1", "--set", "hidden_size=4"]
    assert _error(
        capsys,
        "train",
        *args,
        "--data",
        str(tmp_path / "x.npz"),
        "--set",
        "alphabet=0123456789",
        "--out",
        str(tmp_path / "r"),
    ) == (f"y[0] = {str(mine.y_train[0])!r} has 'x', which is not in the alphabet '0123456789'.")
    code, _, _ = _run(
        capsys, "train", *args, "--data", str(tmp_path / "ok.npz"), "--out", str(tmp_path / "ok"), "--quiet"
    )
    assert code == 0 and load(tmp_path / "ok").alphabet_ == "0123456789"


def test_a_non_utf8_text_file_is_a_one_line_error(tmp_path, capsys):
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\xe9 au lait, ".encode("latin-1") * 20)
    assert _error(capsys, "train", "charlm", "--data", str(path), "--out", str(tmp_path / "r")) == (
        f"Text file {str(path)!r} is not UTF-8 text (byte 3 cannot be decoded)."
    )

"""Character language model, text classification, text data and their CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from deepatlas.data import load_dataset
from deepatlas.errors import InputError
from deepatlas.models.rnn.charlm import CharLM, TextClassifier, ngram_bits_per_char
from deepatlas.runs import load, save_model

PERIODIC = "the cat sat. " * 400  # every character is predictable from the two before it


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: see conftest.py


@pytest.fixture(scope="module")
def lm():
    model = CharLM(hidden_size=32, embedding_size=8, seq_len=32, epochs=20, batch_size=16, lr=1e-2, dropout=0.0)
    return model.fit(PERIODIC)


def test_lm_learns_periodic_text_far_below_unigram(lm):
    held_out = PERIODIC[5:600]
    assert lm.bits_per_char(held_out) < 0.3
    assert lm.unigram_bits_per_char(held_out) > 2.5


def test_sampling_is_seeded_and_follows_the_text(lm):
    a = lm.sample(40, prompt="the ", temperature=0.5, seed=1)
    assert a == lm.sample(40, prompt="the ", temperature=0.5, seed=1)
    assert a.startswith("the ") and len(a) == 44
    assert "cat" in a and "sat" in a


def test_sampling_errors(lm):
    with pytest.raises(InputError, match=r"^prompt has characters never seen in training: 'Zx'\.$"):
        lm.sample(5, prompt="xZ")
    with pytest.raises(InputError, match=r"^temperature must be a float > 0\. Got 0 instead\.$"):
        lm.sample(5, temperature=0)
    with pytest.raises(InputError, match=r"^CharLM is not conditioned on labels; drop --label\.$"):
        lm.write_samples(None, label="3")


def test_lm_save_and_load(lm, tmp_path):
    save_model(lm, tmp_path)
    again = load(tmp_path)
    assert again.vocabulary_ == lm.vocabulary_
    assert again.sample(20, prompt="cat", seed=4) == lm.sample(20, prompt="cat", seed=4)


def test_pydoc_text_splits_are_contiguous_and_disjoint():
    ds = load_dataset("pydoc-text")
    assert ds.task == "text" and ds.X_train.shape == (1,)
    lengths = [len(str(a[0])) for a in (ds.X_train, ds.X_val, ds.X_test)]
    assert sum(lengths) > 400_000 and lengths[0] == pytest.approx(8 * lengths[1], rel=0.01)


def test_non_utf8_text_file_is_refused(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\xe9 au lait".encode("latin-1"))
    with pytest.raises(InputError) as err:
        load_dataset(str(path), text="-")
    assert str(err.value) == f"Text file {str(path)!r} is not UTF-8 text (byte 3 cannot be decoded)."


def test_any_text_file_is_a_corpus(tmp_path):
    path = tmp_path / "book.txt"
    path.write_text(PERIODIC, encoding="utf-8")
    ds = load_dataset(str(path), text="-")
    assert ds.task == "text" and len(str(ds.X_train[0])) == int(0.8 * len(PERIODIC))


def _reviews(n=240, seed=0):
    rng = np.random.default_rng(seed)
    good, bad = ["great", "lovely", "fine"], ["awful", "boring", "poor"]
    labels = rng.integers(0, 2, n)
    docs = [f"it was {rng.choice(good if k else bad)} and {rng.choice(['long', 'short'])}" for k in labels]
    return docs, np.where(labels == 1, "pos", "neg")


def test_text_column_of_a_csv_is_classified(tmp_path):
    docs, labels = _reviews()
    path = tmp_path / "reviews.csv"
    rows = ["id,review,label"] + [f'{i},"{d}",{lab}' for i, (d, lab) in enumerate(zip(docs, labels))]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    ds = load_dataset(str(path), text="review", target="label")
    assert ds.task == "classification" and ds.X_train.dtype.kind == "U" and ds.feature_names == ["review"]
    model = TextClassifier(hidden_size=16, epochs=10, lr=1e-2, batch_size=32)
    model.fit(ds.X_train, ds.y_train, validation_data=(ds.X_val, ds.y_val))
    assert model.score(ds.X_test, ds.y_test) >= 0.9
    with pytest.raises(InputError, match=r"has no text column 'body'; its columns are: id, review, label\.$"):
        load_dataset(str(path), text="body")


def test_text_vocabulary_comes_from_the_training_split_only():
    docs, labels = _reviews(60)
    model = TextClassifier(hidden_size=4, epochs=1).fit(docs, labels)
    assert "Z" not in model.vocabulary_ and "q" not in model.vocabulary_
    assert model.predict(["Zqq unseen"]).shape == (1,)  # unknown characters map to one symbol


def test_cli_trains_a_language_model_and_samples(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the subprocess: one torch thread, as in the test workers
    run = tmp_path / "lm"
    done = cli(
        "train",
        "charlm",  # no --data: the language model's default corpus, pydoc-text
        "--epochs",
        "1",
        "--out",
        str(run),
        "--set",
        "max_chars=3000",
        "--set",
        "hidden_size=8",
        "--set",
        "seq_len=32",
    )
    assert done.returncode == 0, done.stderr
    assert json.loads((run / "config.json").read_text())["data"] == "pydoc-text"
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"test_bits_per_char", "test_unigram_bits_per_char", "test_bits_below_unigram"} <= set(metrics)
    assert 1.5 < metrics["test_ngram5_bits_per_char"] < 2.5  # the 5-gram of pydoc-text: 2.02 bits/char
    done = cli("sample", str(run), "--prompt", "The ", "-n", "30")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("The ") and len(done.stdout.rstrip("\n")) >= 34


@pytest.mark.slow
def test_lm_is_a_bit_per_character_below_unigram_on_pydoc():
    ds = load_dataset("pydoc-text")
    model = CharLM(epochs=5).fit_dataset(ds)
    assert model.dataset_metrics(ds)["test_bits_below_unigram"] >= 1.0


def test_ngram_baseline_matches_hand_computed_witten_bell_probabilities():
    # train "ab", order 2. Empty context: a 1, b 1 (2 seen, 2 distinct), uniform 1/3 over {a, b, unknown};
    # context "a": b 1 (1 seen, 1 distinct). P(b | a) = (1 + 1 * (1 + 2/3) / 4) / 2 = 17/24.
    assert ngram_bits_per_char("ab", "ab", order=2) == pytest.approx(-math.log2(17 / 24))
    # the probabilities of every next character after "a" (a, b and the unknown symbol) sum to one
    total = sum(2 ** -ngram_bits_per_char("ab", "a" + c, order=2) for c in "abz")
    assert total == pytest.approx(1.0)
    # order 1 ignores context: the unknown character "z" gets (0 + 2/3) / 4
    assert ngram_bits_per_char("ab", "az", order=1) == pytest.approx(-math.log2(1 / 6))


def test_ngram_baseline_refuses_a_bad_order():
    with pytest.raises(InputError, match=r"^order must be an int >= 1\. Got 0 instead\.$"):
        ngram_bits_per_char("ab", "ab", order=0)

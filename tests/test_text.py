"""The language family: word tokenizer and vocabulary, the CRF against brute force, seqeval on
hand cases, ner-synth and CoNLL files, and a small NER fit."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from deepatlas.data import load_dataset
from deepatlas.data.ner import check_tag_sequence, entity_spans, load_conll, read_conll
from deepatlas.data.text import PAD, UNK, Vocabulary, tokenize
from deepatlas.errors import InputError
from deepatlas.models.text.crf import CRF

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---- tokenizer and vocabulary -----------------------------------------------------------------------
def test_tokenizer_splits_words_and_punctuation():
    assert tokenize("Don't stop-gap, 3.5%!") == ["Don't", "stop-gap", ",", "3", ".", "5", "%", "!"]
    assert tokenize("Ünïcode  Straße\tok", lower=True) == ["ünïcode", "straße", "ok"]


def test_vocabulary_round_trips_tokens_and_json():
    docs = ["the cat sat", "The dog sat", "a bird"]
    vocab = Vocabulary.fit(docs, lower=True, min_freq=1)
    assert vocab.tokens[:2] == ["sat", "the"]  # most frequent first, ties in code-point order
    assert len(vocab) == len(vocab.tokens) + 2
    ids = vocab.encode_text("The cat sat on a mat")
    assert ids[3] == UNK and ids[5] == UNK and PAD not in ids
    assert vocab.decode(ids) == ["the", "cat", "sat", "<unk>", "a", "<unk>"]
    for doc in docs:  # every training token comes back, lower-cased
        assert vocab.decode(vocab.encode_text(doc)) == tokenize(doc, lower=True)
    again = Vocabulary.from_json(vocab.to_json())
    assert again.tokens == vocab.tokens and again.encode_text("a dog") == vocab.encode_text("a dog")
    rows = vocab.pad([vocab.encode_text("the cat"), vocab.encode_text("a")], 3)
    assert rows.tolist() == [[vocab.id("the"), vocab.id("cat"), 0], [vocab.id("a"), 0, 0]]


def test_vocabulary_min_freq_and_case():
    vocab = Vocabulary.fit(["x x y Y z"], lower=False, min_freq=2)
    assert vocab.tokens == ["x"] and vocab.id("y") == UNK and vocab.id("X") == UNK
    with pytest.raises(InputError, match="min_freq must be an int >= 1. Got 0 instead."):
        Vocabulary.fit(["a"], min_freq=0)
    with pytest.raises(InputError, match="is not a saved vocabulary"):
        Vocabulary.from_json({"tokens": "abc", "lower": True})


# ---- the CRF against brute force --------------------------------------------------------------------
@torch.no_grad()
def _brute(crf: CRF, em: torch.Tensor, length: int):
    K = em.shape[1]
    scores = {}
    for path in itertools.product(range(K), repeat=length):
        s = crf.start[path[0]] + crf.end[path[-1]] + sum(em[t, path[t]] for t in range(length))
        s = s + sum(crf.transitions[path[t - 1], path[t]] for t in range(1, length))
        scores[path] = float(s)
    return scores


def _crf_case(seed=0, B=5, T=5, K=3):
    g = torch.Generator().manual_seed(seed)
    crf = CRF(K)
    with torch.no_grad():
        for p in crf.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    em = torch.randn(B, T, K, generator=g)
    lengths = torch.tensor([5, 1, 3, 4, 2])[:B]
    mask = torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)
    return crf, em, lengths, mask


def test_viterbi_and_log_partition_equal_brute_force():
    crf, em, lengths, mask = _crf_case()
    logz = crf.log_partition(em, mask)
    best = crf.decode(em, mask)
    for b, L in enumerate(lengths.tolist()):
        scores = _brute(crf, em[b], L)
        top = max(scores, key=scores.get)
        assert best[b, :L].tolist() == list(top)
        assert best[b, L:].tolist() == [0] * (5 - L)
        assert float(logz[b]) == pytest.approx(float(np.logaddexp.reduce(list(scores.values()))), abs=1e-4)
        path = torch.tensor(list(top) + [0] * (5 - L)).unsqueeze(0)
        assert float(crf.path_score(em[b : b + 1], path, mask[b : b + 1])[0]) == pytest.approx(scores[top], abs=1e-4)


def test_crf_nll_is_positive_and_gradients_flow():
    crf, em, lengths, mask = _crf_case(seed=1)
    em.requires_grad_(True)
    tags = torch.randint(0, 3, (5, 5), generator=torch.Generator().manual_seed(2))
    nll = crf.nll(em, tags, mask)
    assert float(nll) > 0
    nll.backward()
    assert crf.transitions.grad is not None and em.grad[1, 1:].abs().max() == 0  # padding gets no gradient


# ---- seqeval on hand cases ---------------------------------------------------------------------------
def test_seqeval_entity_f1_on_hand_cases():
    from seqeval.metrics import f1_score, precision_score, recall_score

    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O"]]  # 2 of 3 entities right
    assert precision_score(gold, pred) == pytest.approx(2 / 3)
    assert recall_score(gold, pred) == pytest.approx(2 / 3)
    half = [["B-PER", "O", "O", "B-LOC"], ["O", "O"]]  # a boundary error counts as wrong
    assert precision_score(gold, half) == pytest.approx(1 / 2)
    assert recall_score(gold, half) == pytest.approx(1 / 3)
    assert f1_score(gold, half) == pytest.approx(2 * (1 / 2) * (1 / 3) / (1 / 2 + 1 / 3))
    assert entity_spans(["B-PER", "I-PER", "O", "S-LOC", "B-ORG", "E-ORG"]) == [
        ("PER", 0, 2),
        ("LOC", 3, 4),
        ("ORG", 4, 6),
    ]


# ---- data ----------------------------------------------------------------------------------------------
def test_ner_synth_is_seeded_and_test_names_are_unseen():
    ds = load_dataset("ner-synth:n=600")
    again = load_dataset("ner-synth:n=600")
    assert list(ds.X_test[0]) == list(again.X_test[0]) and len(ds.X_train) == 420 and len(ds.X_test) == 120

    def names(X, Y):
        return {" ".join(x[a:b]) for x, y in zip(X, Y) for _, a, b in entity_spans(list(y))}

    train = names(ds.X_train, ds.y_train)
    assert not train & names(ds.X_test, ds.y_test) and not train & names(ds.X_val, ds.y_val)
    kinds = {k for y in ds.y_train for k, _, _ in entity_spans(list(y))}
    assert kinds == {"PER", "ORG", "LOC", "DATE", "MISC"}
    for x, y in zip(ds.X_train, ds.y_train):
        assert len(x) == len(y)
        check_tag_sequence(list(y), "IOB2", "ner-synth")
    shared = load_dataset("ner-synth:n=600,unseen=false")
    assert names(shared.X_train, shared.y_train) & names(shared.X_test, shared.y_test)


CONLL = "-DOCSTART- -X- O O\n\nEU NNP B-ORG\nrejects VBZ O\nGerman JJ B-MISC\n\nPeter NNP B-PER\nBlackburn NNP I-PER\n"


def test_conll_reader_reads_iob2_and_bioes(tmp_path):
    f = tmp_path / "a.conll"
    f.write_text(CONLL)
    sents, tags, scheme = read_conll(f)
    assert sents == [["EU", "rejects", "German"], ["Peter", "Blackburn"]]
    assert tags == [["B-ORG", "O", "B-MISC"], ["B-PER", "I-PER"]] and scheme == "IOB2"
    g = tmp_path / "b.bioes"
    g.write_text("EU S-ORG\nsays O\n\nPeter B-PER\nvan I-PER\nBlack E-PER\n")
    assert read_conll(g)[2] == "BIOES"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("EU B-ORG\nrejects\n", "line 2 has 1 column ('rejects'); expected a token and its tag"),
        ("EU O\nUnion I-ORG\n", "line 2: tag 'I-ORG' follows 'O'; in IOB2 an entity starts with B-ORG."),
        ("EU B-ORG\nUnion I-LOC\n", "line 2: tag 'I-LOC' follows 'B-ORG'"),
        ("EU X-ORG\n", "line 1: tag 'X-ORG' is not one of O, B-TYPE, I-TYPE (IOB2)."),
        (
            "EU S-ORG\nbig B-ORG\nfirm O\n",
            "line 2: tag 'B-ORG' is followed by 'O'; in BIOES an entity ends with E-ORG.",
        ),
        ("\n\n-DOCSTART- O\n\n", "has no sentences (only blank or -DOCSTART- lines)."),
    ],
)
def test_conll_reader_names_the_bad_line(tmp_path, text, message):
    f = tmp_path / "bad.conll"
    f.write_text(text)
    with pytest.raises(InputError) as err:
        read_conll(f)
    assert message in str(err.value) and str(f) in str(err.value)


def test_conll_non_utf8_is_one_line(tmp_path):
    f = tmp_path / "bad.conll"
    f.write_bytes(b"EU B-ORG\nM\xfcnchen B-LOC\n")
    with pytest.raises(InputError, match=r"is not UTF-8 text \(byte 10 cannot be decoded\)"):
        read_conll(f)


def test_conll_files_load_with_val_and_test_or_a_seeded_split(tmp_path):
    body = "".join(f"Anna{i} B-PER\nlives O\nin O\nRome{i} B-LOC\n\n" for i in range(20))
    f = tmp_path / "train.conll"
    f.write_text(body)
    ds = load_dataset(str(f))
    assert ds.task == "tagging" and (len(ds.X_train), len(ds.X_val), len(ds.X_test)) == (14, 2, 4)
    v = tmp_path / "dev.conll"
    v.write_text("Bob B-PER\nruns O\n")
    ds2 = load_conll(f, val=str(v), test=str(v))
    assert len(ds2.X_train) == 20 and list(ds2.X_test[0]) == ["Bob", "runs"]


# ---- the tagger ------------------------------------------------------------------------------------------
@pytest.mark.slow  # 12 epochs of a small tagger: 80 s on the loaded 2-core machine
def test_ner_learns_unseen_names_and_saves(tmp_path):
    from deepatlas.models.text.ner import NERTagger, gazetteer_tags
    from deepatlas.saving import load, save_model

    ds = load_dataset("ner-synth:n=500")
    m = NERTagger(epochs=12, lr=5e-3, hidden=32, word_dim=16, char_size=16, char_dim=8, seed=0)
    m.fit(ds.X_train, ds.y_train, validation_data=(ds.X_val, ds.y_val))
    assert m.score(ds.X_test, ds.y_test) > 0.55  # 0.674 measured: a small model on 350 sentences
    test_only = {w.lower() for x in ds.X_test for w in x} - {w.lower() for x in ds.X_train for w in x}
    assert test_only and not test_only & set(m.vocabulary_.tokens)  # the vocabulary never saw test data
    gaz = gazetteer_tags(list(ds.X_train), list(ds.y_train), list(ds.X_train[:20]))
    assert [list(t) for t in ds.y_train[:20]] == gaz  # the gazetteer finds every training name again
    save_model(m, tmp_path)
    again = load(tmp_path)
    assert [list(t) for t in again.predict(ds.X_test)] == [list(t) for t in m.predict(ds.X_test)]
    line = again.describe_predictions(["Anna Schmidt moved to Berlin ."])
    assert line.endswith("\n") and line.count("\n") == 1
    with pytest.raises(InputError, match=r"X\[1\] is an empty sentence"):
        m.predict(["a b", ""])


@pytest.mark.parametrize("encoder", ["window", "bilstm"])
def test_ner_encoders_ignore_padding_and_the_window_reads_two_words_each_side(encoder):
    from deepatlas.models.text.ner import NERNet

    torch.manual_seed(0)
    net = NERNet(30, 12, 5, word_dim=4, char_dim=3, char_size=4, char_encoder="cnn", hidden=6, dropout=0.0,
                 word_dropout=0.0, crf=True, encoder=encoder).eval()  # fmt: skip
    x = torch.randint(2, 12, (1, 7, 4))  # 7 tokens: a word id, then three character ids each
    x[..., 0] = torch.randint(2, 30, (1, 7))
    with torch.no_grad():
        out = net(x)
        padded = net(torch.cat([x, torch.zeros(1, 3, 4, dtype=x.dtype)], 1))
        changed = x.clone()
        changed[0, 6, 0] = 2 if x[0, 6, 0] != 2 else 3  # another word at the last position
        moved = net(changed)
    assert out.shape == (1, 7, 5)
    torch.testing.assert_close(padded[:, :7], out, atol=1e-6, rtol=0)  # padding changes no real token's scores
    reach = (moved - out).abs().amax(-1)[0] > 1e-7  # which tokens' scores the last word changes
    if encoder == "window":
        assert reach.tolist() == [False, False, False, False, True, True, True]  # positions 4-6 only
    else:
        assert reach.all()  # the backward LSTM carries it to the first token


def test_ner_export_parity_and_the_sidecar_preprocessing_match_predict(tmp_path):
    from deepatlas.data.text import encode_with_preprocessing
    from deepatlas.export import export, read_sidecar
    from deepatlas.export import onnx as ox
    from deepatlas.models.text.export import crf_decode
    from deepatlas.models.text.ner import NERTagger

    ds = load_dataset("ner-synth:n=200")
    m = NERTagger(epochs=2, hidden=8, word_dim=8, char_size=8, char_dim=4, seed=0).fit(ds.X_train, ds.y_train)
    result = export(m, tmp_path / "ner.onnx", exporter="torchscript")
    assert {"reference", "random"} <= set(result.parity)
    side = read_sidecar(tmp_path / "ner.onnx")
    texts = ["Anna Schmidt moved to Berlin on 3 May 2020 .", "Hi", "The talks between Acme and Initech ended ."]
    ids, sents = encode_with_preprocessing(side["preprocessing"], texts)
    assert ids.shape[:2] == (3, 10) and ids[1, 1:].max() == 0
    session = ox.session(tmp_path / "ner.onnx")
    for rows in (ids, ids[1:2, :1], np.pad(ids, ((0, 0), (0, 5), (0, 0)))):  # lengths 10, 1 and 15
        scores = session.run(None, {"ids": rows})[0]
        np.testing.assert_allclose(scores, m._tag_ids(rows)[0], atol=1e-4)
    scores = session.run(None, {"ids": ids})[0]
    crf = side["metadata"]["crf"]
    paths = crf_decode(scores, [len(s) for s in sents], crf["transitions"], crf["start"], crf["end"])
    assert [[side["classes"][k] for k in p] for p in paths] == [list(t) for t in m.predict(texts)]


# ---- text classification and word2vec ---------------------------------------------------------------------
REVIEWS = [f"the food was {w} and the service {v}" for w in ("great", "lovely", "superb") for v in ("quick", "slow")]
REVIEWS += [f"the food was {w} and the service {v}" for w in ("awful", "dull", "poor") for v in ("quick", "slow")]


@pytest.mark.parametrize("arch", ["rnn", "cnn"])
def test_text_classifier_learns_the_sentiment_word(arch):
    from deepatlas.models.text.classifier import WordTextClassifier

    X = np.array(REVIEWS * 8)
    y = np.array((["pos"] * 6 + ["neg"] * 6) * 8)
    m = WordTextClassifier(arch=arch, dim=16, hidden=16, filters=8, epochs=12, lr=1e-2, min_freq=1, seed=0)
    m.fit(X, y, validation_data=(X[:12], y[:12]))
    docs = ["the food was superb and the service slow", "the food was poor and the service quick"]
    assert m.predict(docs).tolist() == ["pos", "neg"]
    assert "zebra" not in m.vocabulary_.tokens and m.vocabulary_.id("zebra") == UNK
    proba = m.predict_proba(["the food was great and the service slow", ""])  # an empty document still reads
    assert proba.shape == (2, 2) and np.allclose(proba.sum(1), 1)
    if arch == "rnn":
        words, weights = zip(*m.attention(["the food was great"])[0])
        assert words == ("the", "food", "was", "great") and sum(weights) == pytest.approx(1, abs=1e-5)


def test_text_baseline_scores_and_classification_scores():
    from deepatlas.models.text.classifier import classification_scores, tfidf_logreg_proba

    X = np.array(REVIEWS * 4)
    y = np.array((["pos"] * 6 + ["neg"] * 6) * 4)
    proba, classes = tfidf_logreg_proba(X, y, X)
    scores = classification_scores(y, proba, classes, "t_")
    assert scores == {"t_accuracy": 1.0, "t_macro_f1": 1.0, "t_roc_auc": 1.0}
    half = classification_scores(np.array(["a", "b", "a", "b"]), np.array([[0.9, 0.1]] * 4), np.array(["a", "b"]), "")
    assert half["accuracy"] == 0.5 and half["roc_auc"] == 0.5


def test_word2vec_neighbours_and_init_of_the_classifier(tmp_path):
    from deepatlas.models.text.classifier import WordTextClassifier
    from deepatlas.models.text.word2vec import Word2Vec
    from deepatlas.saving import save_model

    rng = np.random.default_rng(0)  # two topics: words of one topic occur together
    a, b = ["cat", "dog", "mouse", "horse"], ["red", "blue", "green", "yellow"]
    docs = [" ".join(rng.choice(a if i % 2 else b, 8)) for i in range(400)]
    w2v = Word2Vec(dim=8, window=3, min_freq=1, subsample=0.0, epochs=20, lr=1e-2, seed=0).fit(docs)
    near = [w for w, _ in w2v.neighbours("cat", 3)]
    assert set(near) == {"dog", "mouse", "horse"}
    assert "nearest neighbours" in w2v.report(probes=("cat",)) and w2v.transform(["cat dog", "zzz"]).shape == (2, 8)
    assert np.all(w2v.transform(["zzz"]) == 0)
    save_model(w2v, tmp_path / "w2v")
    clf = WordTextClassifier(embeddings=str(tmp_path / "w2v"), epochs=1, hidden=4, min_freq=1, seed=0)
    clf.fit(np.array(["cat dog", "red blue"] * 10), np.array(["animal", "colour"] * 10))
    assert clf.pretrained_hits_ == 4 and clf.module_.embed.weight.shape[1] == 8
    with pytest.raises(InputError, match="is not in the word2vec vocabulary"):
        w2v.neighbours("zebra")


@pytest.mark.slow  # two dynamo exports: ~95 s on the loaded 2-core machine
def test_serve_takes_raw_text_for_the_tagger_and_the_classifier(tmp_path):
    from fastapi.testclient import TestClient

    from deepatlas.models.text.classifier import WordTextClassifier
    from deepatlas.models.text.ner import NERTagger
    from deepatlas.saving import save_model
    from deepatlas.serving.app import create_app

    ds = load_dataset("ner-synth:n=200")
    ner = NERTagger(epochs=2, hidden=8, word_dim=8, char_size=8, char_dim=4, seed=0).fit(ds.X_train, ds.y_train)
    save_model(ner, tmp_path / "ner")
    client = TestClient(create_app(tmp_path / "ner"))
    texts = ["Anna Schmidt moved to Berlin on 3 May 2020 .", "Hi"]
    got = client.post("/v1/predict", json={"instances": texts}).json()["predictions"]
    assert [g["tags"] for g in got] == [list(t) for t in ner.predict(texts)]
    assert got[1]["tokens"] == ["Hi"] and all({"type", "text", "start", "end"} <= set(e) for e in got[0]["entities"])
    bad = client.post("/v1/predict", json={"instances": ["   "]})
    assert bad.status_code == 422 and "instance 0 has no words" in bad.json()["detail"]
    assert client.post("/v1/predict", json={"instances": [[1, 2]]}).status_code == 422

    clf = WordTextClassifier(dim=8, hidden=8, epochs=1, min_freq=1, seed=0)
    clf.fit(np.array(REVIEWS * 2), np.array((["pos"] * 6 + ["neg"] * 6) * 2))
    save_model(clf, tmp_path / "clf")
    client = TestClient(create_app(tmp_path / "clf"))
    docs = ["the food was great", "", "unseen words only"]
    got = client.post("/v1/predict", json={"instances": docs}).json()["predictions"]
    proba = clf.predict_proba(docs)
    assert [g["label"] for g in got] == clf.predict(docs).tolist()
    np.testing.assert_allclose([g["probabilities"]["pos"] for g in got], proba[:, 1], atol=1e-5)

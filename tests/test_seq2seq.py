"""The seq2seq family: its data (dates, numbers, the user's pairs), the attention encoder-decoder
(masks, beam search, unknown characters) and the bAbI-style generator with the memory network."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from deepatlas.data import load_dataset
from deepatlas.data.babi import PLACES, generate, parse_story
from deepatlas.data.translation import date_pairs
from deepatlas.errors import InputError
from deepatlas.models.seq2seq.network import PAD, Seq2SeqNet, beam_decode, greedy_decode
from deepatlas.models.seq2seq.seq2seq import Seq2Seq

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---- data -------------------------------------------------------------------------------------------
def test_dates_are_seeded_iso_and_unambiguous():
    src, tgt, kinds = date_pairs(3000, seed=0)
    assert date_pairs(50, seed=0) == date_pairs(50, seed=0) != date_pairs(50, seed=1)
    assert all(re.fullmatch(r"(19[5-9]\d|20[0-4]\d)-\d\d-\d\d", t) for t in tgt)
    answer = {}
    for s, t in zip(src, tgt):
        assert answer.setdefault(s, t) == t, f"{s!r} reads as {answer[s]} and {t}"
    assert len({k.split("\t")[1] for k in kinds}) == 4 and len({k.split("\t")[0] for k in kinds}) == 11
    lengths = [len(x) for x in src]
    assert min(lengths) <= 8 and max(lengths) >= 65  # "14.3.21" to a weekday, day and year in words
    ds = load_dataset("dates:n=400")
    assert (len(ds.X_train), len(ds.X_val), len(ds.X_test), ds.task) == (288, 32, 80, "translation")


def test_dates_written_in_the_issue_examples():
    import datetime

    from deepatlas.data.translation import write_date

    d = datetime.date(2021, 3, 14)
    assert write_date(d, "full", "fr_FR") == "dimanche 14 mars 2021"
    assert write_date(d, "d.M.yy", "de_DE") == "14.3.21"
    assert write_date(d, "ordinal", "en_US") == "March 14th, 2021"


def test_dates_in_words_are_seeded_and_parse_back_to_their_iso_label():
    import datetime

    from babel.dates import get_day_names, get_month_names
    from num2words import num2words

    from deepatlas.data.translation import write_date

    d = datetime.date(2021, 3, 14)
    assert write_date(d, "words", "fr_FR") == "dimanche quatorze mars deux mille vingt et un"
    assert write_date(d, "words", "en_US") == "Sunday, the fourteenth of March, twenty twenty-one"
    assert write_date(d, "words", "de_DE") == "Sonntag, der vierzehnte März zweitausendeinundzwanzig"
    assert write_date(d, "day words", "es_ES") == "catorce de marzo de dos mil veintiuno"
    assert (
        write_date(datetime.date(1999, 5, 1), "day words", "fr_FR")
        == "premier mai mille neuf cent quatre-vingt-dix-neuf"
    )
    src, tgt, kinds = date_pairs(4000, seed=3)
    assert (src, tgt, kinds) == date_pairs(4000, seed=3)
    words = [(s, t, k.split("\t")[1]) for s, t, k in zip(src, tgt, kinds) if "words" in k]
    assert len(words) > 800
    # A reader of its own: an optional weekday, the day, the month's name, the year; day and year are
    # looked up in tables of the locale's spoken numbers (1-31, 1950-2049), so each text names one date.
    for s, t, loc in words:
        lang = loc[:2]
        months = {v: k for k, v in get_month_names("wide", locale=loc).items()}
        weekdays = "|".join(get_day_names("wide", locale=loc).values())
        found = re.fullmatch(
            rf"(?:(?:{weekdays}),? )?(?:the |der )?(.+?)(?: of| de)? ({'|'.join(months)}),? (?:de )?(.+)", s
        )
        assert found, s
        to = "ordinal" if lang in ("en", "de") else "cardinal"
        days = {num2words(i, lang=lang, to=to): i for i in range(1, 32)} | {"premier": 1, "primero": 1}
        to = "year" if lang in ("en", "de") else "cardinal"
        years = {num2words(y, lang=lang, to=to): y for y in range(1950, 2050)}
        day, month, year = found.groups()
        assert datetime.date(years[year], months[month], days[day]).isoformat() == t, s


def test_numbers_in_words_to_digits_and_to_french():
    from num2words import num2words

    ds = load_dataset("numbers:n=200")
    assert all(num2words(int(t), lang="en") == s for s, t in zip(ds.X_train, ds.y_train))
    fr = load_dataset("numbers:n=200,target=fr")
    assert list(fr.X_train) == list(ds.X_train) and fr.y_train[0] == num2words(int(ds.y_train[0]), lang="fr")
    with pytest.raises(InputError, match="Dataset option 'target' of 'numbers' must be a language"):
        load_dataset("numbers:target=klingon")


def test_a_pairs_file_loads_and_its_bad_lines_are_named(tmp_path):
    good = tmp_path / "pairs.tsv"
    good.write_text("".join(f"word {i}\tpalabra {i}\n" for i in range(12)), encoding="utf-8")
    ds = load_dataset(str(good))
    assert ds.task == "translation" and len(ds.X_train) + len(ds.X_val) + len(ds.X_test) == 12
    cases = {
        "hello\thola\ncat gato\n": "line 2 has no tab; each line must be 'source<TAB>target'.",
        "hello\thola\n\t gato\n": "line 2 has an empty source (before the tab).",
        "hello\t \n": "line 1 has an empty target (after the tab).",
        "a\tb\n"
        + "x" * 1001
        + "\ty\n": "line 2 has 1003 characters, over the limit of 1000 for one pair; split or drop it.",
    }
    for text, message in cases.items():
        bad = tmp_path / "bad.tsv"
        bad.write_text(text, encoding="utf-8")
        with pytest.raises(InputError) as err:
            load_dataset(str(bad), task="translation")
        assert str(err.value) == f"Data file {str(bad)!r}: {message}"


# ---- the network: attention masks, decoding -----------------------------------------------------------
def _net(attention, cell="gru"):
    torch.manual_seed(0)
    return Seq2SeqNet(
        12,
        9,
        embedding_size=6,
        hidden_size=8,
        cell=cell,
        attention=attention,
        bidirectional=True,
        dropout=0.0,
        src_len=7,
    ).eval()


@pytest.mark.parametrize("attention", ["additive", "multiplicative"])
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_attention_weights_sum_to_one_and_ignore_padding(attention, cell):
    net = _net(attention, cell)
    src = torch.tensor([[4, 5, 6, 7, 8, 9, 10], [4, 5, 6, 0, 0, 0, 0]])
    _, weights = greedy_decode(net, src, 6)
    np.testing.assert_allclose(weights.sum(-1).numpy(), 1.0, atol=1e-6)
    assert torch.all(weights[1, :, 3:] == 0)
    # The short source gives the same weights and words alone as beside a longer one.
    alone_ids, alone_w = greedy_decode(net, src[1:, :3], 6)
    together_ids, _ = greedy_decode(net, src, 6)
    L = alone_ids.shape[1]
    assert torch.equal(alone_ids[0], together_ids[1, :L])
    torch.testing.assert_close(alone_w[0], weights[1, :L, :3], atol=1e-6, rtol=1e-5)


def test_beam_of_one_is_greedy_and_a_wider_beam_scores_no_worse():
    net = _net("additive")
    src = torch.randint(4, 12, (16, 7))
    src[::3, 4:] = PAD
    greedy, _ = greedy_decode(net, src, 10)
    beam = beam_decode(net, src, 10, beam_size=1, length_penalty=1.0)
    assert torch.equal(beam, greedy)


@pytest.fixture(scope="module")
def small_dates_model():
    ds = load_dataset("dates:n=600")
    est = Seq2Seq(hidden_size=16, embedding_size=8, epochs=3, device="cpu").fit(ds.X_train, ds.y_train)
    return est, ds


def test_predict_beam_one_equals_greedy_and_beams_write_strings(small_dates_model):
    est, ds = small_dates_model
    greedy = est.predict(ds.X_test)
    assert list(est.predict(ds.X_test, beam_size=1)) == list(greedy)
    wide = est.predict(ds.X_test[:20], beam_size=4)
    assert wide.shape == (20,) and all(isinstance(s, str) for s in wide)


def test_unknown_characters_are_counted_not_fatal(small_dates_model):
    est, _ = small_dates_model
    out = est.translate(["14 März 2021 ∑∑", "March 14th, 2021"])
    assert out["unknown"] == [2, 0] and len(out["translations"]) == 2
    with pytest.raises(InputError, match=r"X must hold strings; X\[1\] is 3\."):
        est.predict(["a", 3])


def test_exact_match_by_length_buckets_are_the_quarters_of_the_lengths():
    from deepatlas.models.seq2seq.seq2seq import exact_match_by_length

    lengths = [1, 2, 3, 4, 5, 6, 7, 8]
    pred = ["a", "b", "c", "d", "e", "x", "g", "x"]
    ref = ["a", "b", "c", "d", "e", "f", "g", "h"]
    got = exact_match_by_length(pred, ref, lengths)
    assert [(b["min_length"], b["max_length"], b["n"]) for b in got] == [(1, 2, 2), (3, 4, 2), (5, 6, 2), (7, 8, 2)]
    assert [b["exact_match"] for b in got] == [1.0, 1.0, 0.5, 0.5]
    tied = exact_match_by_length(["a"] * 5, ["a", "a", "a", "a", "b"], [3, 3, 3, 3, 9])
    assert [(b["min_length"], b["n"], b["exact_match"]) for b in tied] == [(3, 4, 1.0), (9, 1, 0.0)]
    with pytest.raises(InputError, match="must have the same non-zero length; got 2, 2 and 1"):
        exact_match_by_length(["a", "b"], ["a", "b"], [1])


def test_paired_comparison_counts_errors_and_gives_the_exact_mcnemar_p():
    from deepatlas.models.seq2seq.seq2seq import paired_comparison

    # 20 examples: A wrong on 1, B wrong on 10; 9 only A right, 0 only B right (both wrong on 1)
    a = [True] * 19 + [False]
    b = [True] * 10 + [False] * 10
    got = paired_comparison(a, b)
    assert (got["n"], got["errors_a"], got["errors_b"], got["only_a_right"], got["only_b_right"]) == (20, 1, 10, 9, 0)
    assert got["error_reduction"] == pytest.approx(0.9)
    assert got["mcnemar_p"] == pytest.approx(2 * 0.5**9)  # two-sided exact binomial, 9 of 9 discordant
    # 8 against 2 discordant: p = 2 * P(X <= 2 | n=10) = 112 / 1024, not significant
    a = [True] * 8 + [False] * 2 + [True] * 5
    b = [False] * 8 + [True] * 2 + [True] * 5
    got = paired_comparison(a, b)
    assert got["mcnemar_p"] == pytest.approx(112 / 1024) and got["error_reduction"] == pytest.approx(0.75)
    same = paired_comparison([True, False], [True, False])
    assert same["mcnemar_p"] == 1.0 and same["error_reduction"] == 0.0
    assert paired_comparison([True], [True])["error_reduction"] is None
    with pytest.raises(InputError, match=r"same non-zero length; got shapes \(2,\) and \(1,\)"):
        paired_comparison([True, True], [True])


def test_evaluation_reports_exact_match_by_source_length(small_dates_model, tmp_path):
    est, ds = small_dates_model
    ev = est.dataset_evaluation(ds)
    buckets = ev["length_buckets"]
    assert sum(b["n"] for b in buckets) == len(ds.X_test) == ev["n_samples"]
    lengths = sorted(len(s) for s in ds.X_test)
    assert buckets[0]["min_length"] == lengths[0] and buckets[-1]["max_length"] == lengths[-1]
    assert all(a["max_length"] < b["min_length"] for a, b in zip(buckets, buckets[1:]))
    longest = [i for i, s in enumerate(ds.X_test) if len(s) > np.quantile(lengths, 0.75)]
    hits = est.predict(ds.X_test[longest]) == ds.y_test[longest]
    assert buckets[-1]["exact_match"] == pytest.approx(hits.mean())
    assert est.dataset_metrics(ds)["test_exact_match_longest"] == buckets[-1]["exact_match"]
    assert len(ev["metrics"]) == len(buckets) and list(ev["metrics"])[-1].endswith(f"characters (n={len(longest)})")
    paths = est.write_run_plots(ds, tmp_path)
    assert [p.name for p in paths] == ["exact_match_by_length.png", "attention.png"]


def test_attention_none_written_as_none_on_the_command_line_is_the_ablation(tmp_path):
    """``--set attention=none`` reads as Python's None: the same no-attention network as ``"none"``."""
    from deepatlas.commands._args import params_from_set

    params = params_from_set(["attention=none"])
    assert params == {"attention": None}
    ds = load_dataset("dates:n=200")
    small = {"hidden_size": 8, "embedding_size": 4, "epochs": 1, "device": "cpu", "seed": 0}
    off = Seq2Seq(**params, **small).fit(ds.X_train, ds.y_train)
    named = Seq2Seq(attention="none", **small).fit(ds.X_train, ds.y_train)
    assert off.attention is None and off.attention_kind == "none" and off.get_params()["attention"] is None
    assert off.module_.attention == "none" and not hasattr(off.module_, "key")
    a, b = off.module_.state_dict(), named.module_.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert list(off.predict(ds.X_test)) == list(named.predict(ds.X_test))
    assert off.dataset_evaluation(ds)["attention"] == "none"
    assert [p.name for p in off.write_run_plots(ds, tmp_path)] == ["exact_match_by_length.png"]
    with pytest.raises(InputError, match=r"attention.*None or one of 'additive', 'multiplicative', 'none'.*'nothing'"):
        Seq2Seq(attention="nothing", **small).fit(ds.X_train, ds.y_train)


def test_attention_maps_have_one_row_per_written_token(small_dates_model):
    est, _ = small_dates_model
    out = est.translate(["14.3.21"], attention=True)
    w = out["attention"][0]
    written = len(out["translations"][0])  # a row per character, + </s> unless the output limit came first
    assert w.shape[1] == 7 and w.shape[0] == (written + 1 if written < est._output_limit() else written)
    np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-5)


# ---- bAbI-style stories ---------------------------------------------------------------------------------
_MOVE = re.compile(r"^(\w+) (?:moved|went|journeyed|travelled|went back) (?:to )?the (\w+)\.$")
_GRAB = re.compile(r"^(\w+) (?:picked up|got|grabbed|took) the (\w+)\.$")


def _answer_from_supports(task: int, question: str, facts: list[str]) -> str:
    """The answer deduced from the supporting facts alone (the generator's claim)."""
    moves = [m.groups() for f in facts if (m := _MOVE.match(f))]
    if task in (1, 6):
        ((person, place),) = moves
        if task == 1:
            assert question == f"Where is {person}?"
            return place
        asked = re.fullmatch(rf"Is {person} in the (\w+)\?", question).group(1)
        return "yes" if asked == place else "no"
    if task == 15:
        name, kind = next(re.fullmatch(r"(\w+) is a (\w+)\.", f).groups() for f in facts if " is a " in f)
        feared = next(re.fullmatch(r"(\w+) are afraid of (\w+)\.", f).groups() for f in facts if "afraid" in f)
        plural = {"mouse": "mice", "sheep": "sheep", "wolf": "wolves", "cat": "cats"}
        assert question == f"What is {name} afraid of?" and feared[0].lower() == plural[kind]
        return {v: k for k, v in plural.items()}[feared[1]]
    grabs = [m.groups() for f in facts if (m := _GRAB.match(f))]
    obj = re.search(r"the (\w+)", question).group(1)
    assert any(o == obj for _, o in grabs)
    if task == 2:
        return moves[-1][1]  # where the holder went last among the facts
    before = re.search(r"before the (\w+)\?", question).group(1)
    assert moves[-1][1] == before
    return moves[-2][1] if len(moves) > 1 else moves[0][1]


@pytest.mark.parametrize("task", [1, 2, 3, 6, 15])
def test_every_answer_follows_from_the_supporting_facts(task):
    texts, answers, supports = generate(task, 300, seed=0)
    for text, answer, support in zip(texts, answers, supports):
        story, question = parse_story(text)
        facts = [story[i - 1] for i in support]
        assert _answer_from_supports(task, question, facts) == answer, (text, support)
        if task in (2, 3):
            assert answer in PLACES and 2 <= len(support) <= 4


def test_babi_dataset_sizes_and_format():
    ds = load_dataset("babi:task=2")
    assert (len(ds.X_train), len(ds.X_val), len(ds.X_test), ds.task) == (900, 100, 1000, "qa")
    assert len(ds.meta["supports"]["test"]) == 1000
    first = ds.X_test[0].splitlines()
    assert first[0].startswith("1 ") and first[-1].endswith("?")


def test_a_story_without_a_question_is_refused():
    with pytest.raises(InputError) as err:
        parse_story("1 Mary went to the kitchen.\n2 John moved to the office.", "X[4]")
    assert str(err.value) == "X[4]: the story has no question; its last line must be the question, ending in '?'."


def test_memnet_hop_attention_is_a_distribution_over_the_story():
    from deepatlas.models.seq2seq.memnet import MemNet

    ds = load_dataset("babi:task=1,n_train=200,n_test=40")
    est = MemNet(epochs=2, device="cpu").fit(ds.X_train, ds.y_train)
    w = est.hop_attention(ds.X_test[:5])
    assert w.shape[:2] == (5, 3)
    for row, text in zip(w, ds.X_test[:5]):
        m = len(parse_story(text)[0])
        np.testing.assert_allclose(row.sum(1), 1.0, atol=1e-5)
        assert np.all(row[:, m:] == 0)
    with pytest.raises(InputError, match=r"X\[0\]: the story has no question"):
        est.predict(["1 Mary went to the kitchen."])


def test_greedy_decoding_in_onnxruntime_reproduces_torch(small_dates_model, tmp_path):
    from deepatlas.export import export
    from deepatlas.export.onnx import session
    from deepatlas.models.seq2seq.export import onnx_greedy

    est, ds = small_dates_model
    for part in ("encoder", "step"):
        result = export(est, tmp_path / f"{part}.onnx", part=part, exporter="torchscript")
        assert result.parity["random"]["max_scaled_diff"] <= 1e-4, (part, result.parity)
    ids, _ = est.encode_sources(ds.X_test[:40])  # 40 sources of many lengths, padded to the longest
    ours = onnx_greedy(session(tmp_path / "encoder.onnx"), session(tmp_path / "step.onnx"), ids, est._output_limit())
    theirs, _ = greedy_decode(est.module_, torch.as_tensor(ids), est._output_limit())
    np.testing.assert_array_equal(ours, theirs.numpy())
    assert [est._decode_ids(row) for row in ours] == list(est.predict(ds.X_test[:40]))


def test_serve_translates_text_and_counts_unknown_characters(small_dates_model, tmp_path):
    from fastapi.testclient import TestClient

    from deepatlas.saving import save_model
    from deepatlas.serving import create_app

    est, ds = small_dates_model
    save_model(est, tmp_path / "run")
    sources = [str(s) for s in ds.X_test[:6]] + ["14 März 2021 ∑"]
    client = TestClient(create_app(tmp_path / "run", backend="torch", max_batch=8))
    answer = client.post("/v1/predict", json={"instances": sources})
    assert answer.status_code == 200, answer.text
    found = answer.json()["predictions"]
    assert [p["translation"] for p in found] == list(est.predict(sources))
    assert [p["unknown"] for p in found] == [0] * 6 + [1]
    assert client.post("/v1/predict", json={"instances": [3]}).status_code == 422


def test_the_bible_without_its_debian_packages_is_one_line(tmp_path, monkeypatch):
    pytest.importorskip("pysword")
    from deepatlas.data import translation

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(translation, "SWORD_DIR", str(tmp_path / "sword"))
    (tmp_path / "sword").mkdir()
    with pytest.raises(InputError) as err:
        load_dataset("bible")
    assert str(err.value) == (
        f"The 'bible' dataset needs the SWORD modules engKJV2006eb, spaRV1909eb in {tmp_path / 'sword'}: "
        "apt-get install sword-text-kjv sword-text-sparv (Debian/Ubuntu)."
    )

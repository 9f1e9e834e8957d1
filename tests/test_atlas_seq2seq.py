"""The translation and QA parts of K.nlp (deepatlas/atlas/experiments/apps_seq2seq.py)."""

from __future__ import annotations

import pytest

from deepatlas.data.translation import dictionary_translate

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_dictionary_baseline_maps_each_word_to_its_most_associated_translation():
    src = ["red car", "red house", "blue car", "blue house", "big car"]
    tgt = ["voiture rouge", "maison rouge", "voiture bleue", "maison bleue", "grande voiture"]
    out = dictionary_translate(src, tgt, ["red house", "blue car", "green car"], str.split)
    assert out == ["rouge maison", "bleue voiture", "voiture"]  # word by word: no reordering, unknown words dropped


def test_k_nlp_rule_can_refute():
    from deepatlas.atlas import all_experiments

    exp = all_experiments()["K.nlp"]
    assert exp.rule.verdicts() == ("supported", "conditional", "refuted")


@pytest.mark.slow
def test_k_nlp_quick_is_supported(tmp_path):
    from deepatlas.atlas.runner import run_report

    results = run_report(tmp_path, quick=True, only="K.nlp", progress=False)
    (claim,) = results
    assert claim["verdict"] == "supported", claim
    assert claim["numbers"]["seq2seq_bleu"] > claim["numbers"]["dictionary_bleu"] + 50
    assert claim["numbers"]["memnet_accuracy"] > claim["numbers"]["lstm_reader_accuracy"]

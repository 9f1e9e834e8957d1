"""K.nlp: the translation and QA parts (apps_seq2seq.py) and the five-task experiment (apps_language.py)."""

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


@pytest.mark.parametrize(
    ("quick", "margins", "share"),
    [
        (
            False,
            {
                "translation": 0.9,
                "qa": 0.4,
                "language_model": -0.05,
                "ner": 0.04,
                "sentiment": -0.03,
                "embeddings": -0.02,
            },
            0.5,
        ),
        (
            False,
            {"translation": 0.9, "qa": 0.4, "language_model": 0.02, "ner": 0.04, "sentiment": 0.01, "embeddings": 0.3},
            1.0,
        ),
        (
            False,
            {"translation": 0.009, "qa": 0.0, "language_model": -0.5, "ner": 0.2, "sentiment": -0.1, "embeddings": 0.0},
            1 / 6,
        ),
        (True, {"translation": 0.9, "qa": -0.1}, 0.5),
    ],
)
def test_k_nlp_counts_the_tasks_the_deep_model_leads_by_one_point(tmp_path, monkeypatch, quick, margins, share):
    from deepatlas.atlas import CLAIMS, Context
    from deepatlas.atlas.experiments import apps_language

    called = []

    def part(name):
        def run(ctx):
            called.append(name)
            return margins[name], f"{name} measured", {f"{name}_score": 1.0}

        return run

    monkeypatch.setattr(apps_language, "PARTS", {name: part(name) for name in apps_language.PARTS})
    result = apps_language.k_nlp(Context(CLAIMS["K.nlp"], quick, (0,), tmp_path))
    assert called == list(margins)  # quick measures translation and QA only; full all six, in order
    assert result.value == pytest.approx(share)
    assert result.numbers["tasks"] == len(margins)
    assert result.numbers["tasks_led"] == round(share * len(margins))
    assert (tmp_path / "K_nlp.png").is_file()


@pytest.mark.parametrize(
    ("quick", "speech_gap", "ner_gap", "value"),
    [(False, 0.3, 0.01, 0.01), (False, 0.004, 0.05, 0.004), (False, float("nan"), 0.05, None), (True, 0.3, None, 0.3)],
)
def test_k_rnn_apps_takes_the_smaller_lead_and_quick_measures_speech_only(
    tmp_path, monkeypatch, quick, speech_gap, ner_gap, value
):
    import math

    from deepatlas.atlas import CLAIMS, Context, all_experiments
    from deepatlas.atlas.experiments import apps_language

    def speech(ctx):
        fig, _ = ctx.figure()
        return speech_gap, "speech measured", {"lstm_cer": 0.1}, fig

    ner_calls = []

    def ner(ctx):
        ner_calls.append(ctx.seed)
        return ner_gap, "ner measured", {"ner_bilstm_f1": 0.9}

    monkeypatch.setattr(apps_language, "speech_part", speech)
    monkeypatch.setattr(apps_language, "ner_recurrence_part", ner)
    result = apps_language.k_rnn_apps(Context(CLAIMS["K.rnn-apps"], quick, (0,), tmp_path))
    assert len(ner_calls) == (0 if quick else 1)
    assert math.isnan(result.value) if value is None else result.value == pytest.approx(value)
    assert all_experiments()["K.rnn-apps"].rule.verdicts() == ("supported", "conditional", "refuted")

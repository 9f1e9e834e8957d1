"""Atlas: ``K.nlp`` -- deep learning serves language models, NER, sentiment, translation and QA
(and, for issue #21, word embeddings).

The claim names five tasks; each is measured against the classical method a practitioner would
otherwise use, on data that loads offline:

- language model: the character LSTM (``charlm``) against a character 5-gram with interpolated
  Witten-Bell smoothing, both on the training part of ``pydoc-text``; margin = the bits per
  character saved on the test text, relative to the n-gram's;
- named entities: the BiLSTM-CRF (``ner``) against token logistic regression on hand features
  (word, shape, affixes, neighbours), on ``ner-synth`` whose test names never occur in training;
  margin = entity F1 difference (seqeval);
- sentiment: the BiGRU with attention pooling (``text-classifier``) against TF-IDF of words and
  pairs + logistic regression, on the Amazon ``fine-foods`` reviews; margin = accuracy difference;
- word embeddings: skip-gram word2vec against latent semantic analysis (TF-IDF -> SVD) of the same
  reviews, each as features for the same logistic regression on ``fine-foods``; margin = accuracy
  difference;
- translation and question answering: :func:`~deepatlas.atlas.experiments.apps_seq2seq.translation_part`
  and :func:`~deepatlas.atlas.experiments.apps_seq2seq.qa_part`.

The statistic is the share of the tasks on which the deep model leads by at least one point
(0.01 of its margin). The quick report runs translation and QA only (the other three take minutes
each on two cores), so its share is out of two tasks; the full report runs all five.
"""

from __future__ import annotations

import numpy as np

from deepatlas.atlas import Result, Rule, experiment
from deepatlas.atlas.experiments._common import HEAVY, r, shared_fit
from deepatlas.atlas.experiments.apps_seq2seq import qa_part, translation_part
from deepatlas.atlas.experiments.apps_speech import speech_part

LEAD = 0.01  # a task counts as led by the deep model when its margin is at least this
LM_CHARS = 120_000  # characters of pydoc-text's training part that both language models learn from

RULE = Rule(
    "share of the claim's language tasks on which the deep model leads its classical baseline by >= 1 point",
    supported=0.8,
    refuted=0.4,
    condition="deep models lead on some of the named tasks; the classical baseline holds on the others",
)


def language_model_part(ctx) -> tuple[float, str, dict]:
    from deepatlas.data import load_dataset
    from deepatlas.models.rnn.charlm import CharLM, ngram_bits_per_char

    ds = load_dataset("pydoc-text")
    train, test = str(ds.X_train[0]), str(ds.X_test[0])
    # Both models learn from the same LM_CHARS characters of the training text, a slice that moves with
    # the seed (was: all 372,000 characters and 3 epochs on one seed, LSTM 2.39 bits/char against the
    # 5-gram's 2.02); the test text is the whole test part.
    start = (ctx.seed * LM_CHARS // 2) % (len(train) - LM_CHARS)
    train = train[start : start + LM_CHARS]
    # Shorter windows and batches than the card's defaults (64 x 32 against 128 x 64 characters) give
    # the small budget more updates: about 175 in 3 epochs, where 2 default epochs of this slice gave about 30
    # (measured, seed 1: 3.66 bits/char against the 5-gram's 2.26, an untrained LSTM).
    model = CharLM(epochs=3, seq_len=64, batch_size=32, seed=ctx.seed)
    model.fit(train, validation_data=(str(ds.X_val[0]),))
    lstm, ngram = model.bits_per_char(test), ngram_bits_per_char(train, test, order=5)
    summary = f"character LM on pydoc-text: LSTM {lstm:.3f} bits/char, Witten-Bell 5-gram {ngram:.3f}"
    return (ngram - lstm) / ngram, summary, {"lstm_bits_per_char": r(lstm), "ngram5_bits_per_char": r(ngram)}


def _ner_fit(ctx, encoder: str):
    """``(ner-synth data, test entity F1)`` of the tagger with ``encoder``; the BiLSTM-CRF fit is shared
    by K.nlp and K.rnn-apps (:func:`shared_fit`)."""
    from seqeval.metrics import f1_score

    from deepatlas.data import load_dataset
    from deepatlas.models.text.ner import NERTagger

    ds = load_dataset(f"ner-synth:n={ctx.pick(400, 2000)},seed={ctx.seed}")
    model = NERTagger(encoder=encoder, epochs=ctx.pick(4, 8), seed=ctx.seed, verbose=False)
    model = shared_fit(ctx, model, ds.X_train, ds.y_train, validation_data=(ds.X_val, ds.y_val))
    return ds, float(f1_score([list(t) for t in ds.y_test], [list(t) for t in model.predict(ds.X_test)]))


def ner_part(ctx) -> tuple[float, str, dict]:
    from seqeval.metrics import f1_score

    from deepatlas.models.text.ner import logreg_tags

    ds, ours = _ner_fit(ctx, "bilstm")
    gold = [list(t) for t in ds.y_test]
    theirs = float(f1_score(gold, logreg_tags(ds.X_train, ds.y_train, ds.X_test, seed=ctx.seed)))
    summary = f"NER on unseen names: BiLSTM-CRF entity F1 {ours:.3f}, token logistic regression {theirs:.3f}"
    return ours - theirs, summary, {"ner_f1": r(ours), "logreg_ner_f1": r(theirs)}


def sentiment_part(ctx) -> tuple[float, str, dict]:
    from deepatlas.data import load_dataset
    from deepatlas.models.text.classifier import WordTextClassifier, tfidf_logreg_proba

    ds = load_dataset(f"fine-foods:seed={ctx.seed}")
    model = WordTextClassifier(epochs=2, seed=ctx.seed, verbose=False)  # seed 0: 0.705 (8 epochs: 0.766)
    model.fit(ds.X_train, ds.y_train, validation_data=(ds.X_val, ds.y_val))
    ours = float(np.mean(model.predict(ds.X_test) == ds.y_test))
    proba, classes = tfidf_logreg_proba(ds.X_train, ds.y_train, ds.X_test, seed=ctx.seed)
    theirs = float(np.mean(classes[proba.argmax(1)] == ds.y_test))
    summary = (
        f"review sentiment (fine-foods): BiGRU-attention accuracy {ours:.3f}, TF-IDF + logistic regression {theirs:.3f}"
    )
    return ours - theirs, summary, {"sentiment_accuracy": r(ours), "tfidf_sentiment_accuracy": r(theirs)}


def embedding_part(ctx) -> tuple[float, str, dict]:
    """Word vectors learned by skip-gram (``word2vec``) against latent semantic analysis (TF-IDF ->
    truncated SVD, Deerwester et al., 1990) of the same training reviews, both 100-dimensional; each
    review becomes the mean of its word vectors (LSA: its projection), read by the same logistic
    regression. Margin: the word2vec features' test accuracy minus LSA's."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from deepatlas.data import load_dataset
    from deepatlas.data.text import tokenize
    from deepatlas.models.text.word2vec import Word2Vec

    ds = load_dataset(f"fine-foods:seed={ctx.seed}")
    # 2 epochs in both modes: measured on seed 0, 2 epochs give the probe accuracies 5 gave (0.772 against
    # LSA's 0.767), in 25 CPU s for the whole part
    w2v = Word2Vec(dim=100, epochs=2, seed=ctx.seed, verbose=False).fit(list(ds.X_train))

    def probe(train, test) -> float:
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=ctx.seed))
        return float(clf.fit(train, ds.y_train).score(test, ds.y_test))

    ours = probe(w2v.transform(list(ds.X_train)), w2v.transform(list(ds.X_test)))
    lsa = make_pipeline(
        TfidfVectorizer(tokenizer=lambda d: tokenize(d, lower=True), token_pattern=None, lowercase=False, min_df=5),
        TruncatedSVD(100, random_state=ctx.seed),
    ).fit(list(ds.X_train))
    theirs = probe(lsa.transform(list(ds.X_train)), lsa.transform(list(ds.X_test)))
    summary = f"word embeddings (fine-foods reviews, 100 dimensions, same probe): word2vec accuracy {ours:.3f}, LSA {theirs:.3f}"
    return ours - theirs, summary, {"word2vec_probe_accuracy": r(ours), "lsa_probe_accuracy": r(theirs)}


PARTS = {
    "translation": translation_part,
    "qa": qa_part,
    "language_model": language_model_part,
    "ner": ner_part,
    "sentiment": sentiment_part,
    "embeddings": embedding_part,
}
QUICK_PARTS = ("translation", "qa")


@experiment(
    "K.nlp",
    rule=RULE,
    **HEAVY,
    requires=("seq2seq", "memnet", "lstm-reader", "charlm", "ner", "text-classifier", "word2vec"),
    full_seconds=550,
)
def k_nlp(ctx):
    """Heavy: five seeds in the full report, one in the quick one; the quick report measures translation
    and QA only. The full report's per-seed budgets were cut (one seed took 436 s at load 5):
    translation 2,000 pairs and 12 epochs (was 8,000 and 30; 5.6 CPU s), QA 30 epochs (was 100; 10.7
    CPU s), the character LMs 120,000 characters and 3 epochs of shorter windows (was 372,000 and 3 of
    the card's windows), sentiment 2 epochs (was 8; 25 CPU s with its baseline), word2vec 2 (was 5; 25
    CPU s); NER unchanged (31 CPU s, its BiLSTM-CRF fit shared with K.rnn-apps). About 110 CPU s a seed."""
    names = QUICK_PARTS if ctx.quick else tuple(PARTS)
    margins, summaries, numbers = {}, [], {}
    for name in names:
        margins[name], text, nums = PARTS[name](ctx)
        summaries.append(text)
        numbers.update(nums)
        numbers[f"{name}_margin"] = r(margins[name])
    led = [n for n in names if margins[n] >= LEAD]
    share = len(led) / len(names)
    fig, ax = ctx.figure(figsize=(5, 3))
    ax.barh(list(names), [margins[n] for n in names], color=["tab:blue" if n in led else "tab:gray" for n in names])
    ax.axvline(LEAD, color="black", lw=0.8, ls="--")
    ax.set(xlabel="deep model's margin over the classical baseline", title="K.nlp: one bar per task")
    lead_text = ", ".join(led) if led else "none"
    scope = " (quick: translation and QA only)" if ctx.quick else ""
    return Result(
        share,
        "; ".join(summaries) + f". The deep model leads on {len(led)} of {len(names)} tasks{scope}: {lead_text}.",
        {**numbers, "tasks": len(names), "tasks_led": len(led)},
        ctx.save(fig),
    )


# ---- K.rnn-apps: recurrence in language processing and speech recognition -------------------------------------
RNN_APPS_RULE = Rule(
    "the smaller of the recurrent model's two leads over a non-recurrent network of the same loss and features: "
    "entity F1 points in NER (BiLSTM-CRF vs window-CRF), CER points in speech (BiLSTM-CTC vs window-CTC)",
    supported=0.02,
    refuted=0.0,
    condition="recurrence leads in both, by less than two points in one of them",
)


def ner_recurrence_part(ctx) -> tuple[float, str, dict]:
    """The BiLSTM-CRF against the same tagger reading a five-word window (``encoder=window``)."""
    _, recurrent = _ner_fit(ctx, "bilstm")
    _, window = _ner_fit(ctx, "window")
    summary = f"NER on unseen names: BiLSTM-CRF entity F1 {recurrent:.3f}, five-word window CRF {window:.3f}"
    return recurrent - window, summary, {"ner_bilstm_f1": r(recurrent), "ner_window_f1": r(window)}


@experiment("K.rnn-apps", rule=RNN_APPS_RULE, **HEAVY, requires=("speech-ctc", "ner"), full_seconds=400)
def k_rnn_apps(ctx):
    """Heavy: five seeds in the full report (speech at a smaller per-seed budget, see
    :func:`~deepatlas.atlas.experiments.apps_speech.speech_part`; the BiLSTM-CRF fit is K.nlp's, shared),
    one in the quick one, which measures the speech part only (the NER part takes a minute a seed)."""
    gap, summary, numbers, fig = speech_part(ctx)
    numbers = {**numbers, "speech_cer_gap": r(gap)}
    if not ctx.quick:
        ner_gap, ner_summary, ner_numbers = ner_recurrence_part(ctx)
        numbers.update(ner_numbers, ner_f1_gap=r(ner_gap))
        summary = f"{ner_summary}. {summary}"
        gap = float("nan") if np.isnan(gap) else min(gap, ner_gap)
    else:
        summary += " (Quick: the speech part only.)"
    return Result(gap, summary, numbers, ctx.save(fig))

"""Language family: word-level models of text.

Modules: ``crf`` (a linear-chain conditional random field: forward algorithm and Viterbi),
``ner`` (the BiLSTM-CRF named-entity tagger and its classical baselines)."""

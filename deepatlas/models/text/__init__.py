"""Language family: word-level models of text.

Modules: ``crf`` (a linear-chain conditional random field: forward algorithm and Viterbi),
``ner`` (the BiLSTM-CRF named-entity tagger and its classical baselines), ``classifier`` (word
BiGRU with attention pooling or 1-D CNN; TF-IDF + logistic regression baseline), ``word2vec``
(skip-gram with negative sampling) and ``export`` (their inference paths; the tokenizer stays
outside the graph, in the sidecar's preprocessing)."""

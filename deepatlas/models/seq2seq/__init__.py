"""Sequence-to-sequence and question-answering family: the attention encoder-decoder
(``seq2seq``), the end-to-end memory network (``memnet``) and its LSTM-reader baseline.

Modules: ``network`` (encoder, attention, decoder step, greedy and beam decoding), ``seq2seq``
(the estimator), ``memnet`` (memory network and reader), ``plots`` (attention pictures) and
``export`` (their inference paths)."""

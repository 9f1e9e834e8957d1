"""Recurrent family: tanh RNN, GRU, LSTM, peephole LSTM and BiLSTM (classifiers, regressors,
taggers), LSTM-CTC, the character language model and the character text classifier.

Modules: ``cells`` (the peephole cell and the shared recurrent encoder), ``recurrent`` (the
sequence estimators), ``ctc``, ``charlm`` and ``export`` (their inference paths)."""

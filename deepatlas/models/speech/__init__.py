"""Speech: audio features (log-mel spectrograms, MFCC, SpecAugment) in front of the project's CNN
(keyword spotting) and its LSTM-CTC recognizer (digit strings), a classical MFCC baseline, and
their ONNX export with the features inside the graph."""

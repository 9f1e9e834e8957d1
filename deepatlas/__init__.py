"""deepatlas: the classic deep-learning map, runnable and measured.

Public API (imported lazily, so ``deepatlas --help`` does not pay for torch)::

    from deepatlas import create_model, list_models, load, load_dataset
    model = create_model("mlp", hidden_sizes=(128,)).fit(X, y)
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "create_model": "deepatlas.registry",
    "list_models": "deepatlas.registry",
    "register_model": "deepatlas.registry",
    "load_dataset": "deepatlas.data",
    "list_datasets": "deepatlas.data",
    "load": "deepatlas.saving",
    "save_model": "deepatlas.saving",
    "Perceptron": "deepatlas.models.perceptron",
    "MLPClassifier": "deepatlas.models.mlp",
    "MLPRegressor": "deepatlas.models.mlp",
    "CNNClassifier": "deepatlas.models.cnn",
    "CNNRegressor": "deepatlas.models.cnn",
    "Autoencoder": "deepatlas.models.autoencoder.autoencoder",
    "DenoisingAutoencoder": "deepatlas.models.autoencoder.autoencoder",
    "SparseAutoencoder": "deepatlas.models.autoencoder.autoencoder",
    "ConvAutoencoder": "deepatlas.models.autoencoder.autoencoder",
    "VAE": "deepatlas.models.autoencoder.vae",
    "SparseCoder": "deepatlas.models.sparse_coding.coders",
    "DictionaryLearning": "deepatlas.models.sparse_coding.coders",
    "LISTA": "deepatlas.models.sparse_coding.coders",
    "ConvSparseCoding": "deepatlas.models.sparse_coding.conv",
    "RNNClassifier": "deepatlas.models.rnn.recurrent",
    "RNNRegressor": "deepatlas.models.rnn.recurrent",
    "SequenceTagger": "deepatlas.models.rnn.recurrent",
    "CTCRecognizer": "deepatlas.models.rnn.ctc",
    "CharLM": "deepatlas.models.rnn.charlm",
    "TextClassifier": "deepatlas.models.rnn.charlm",
    "Seq2Seq": "deepatlas.models.seq2seq.seq2seq",
    "MemNet": "deepatlas.models.seq2seq.memnet",
    "LSTMReader": "deepatlas.models.seq2seq.memnet",
    "GAN": "deepatlas.models.gan.gan",
    "WGAN": "deepatlas.models.gan.gan",
    "WGANGP": "deepatlas.models.gan.gan",
    "DCGAN": "deepatlas.models.gan.variants",
    "CGAN": "deepatlas.models.gan.variants",
    "InfoGAN": "deepatlas.models.gan.variants",
    "RBM": "deepatlas.models.rbm.rbm",
    "GaussianRBM": "deepatlas.models.rbm.rbm",
    "ConvRBM": "deepatlas.models.rbm.conv_rbm",
    "DBN": "deepatlas.models.rbm.dbn",
    "DBNClassifier": "deepatlas.models.rbm.dbn",
    "DBM": "deepatlas.models.rbm.dbm",
    "ConvDBN": "deepatlas.models.rbm.dbn",
    "RBMCF": "deepatlas.models.rbm.cf",
    "RTRBM": "deepatlas.models.rbm.rtrbm",
    "NERTagger": "deepatlas.models.text.ner",
    "WordTextClassifier": "deepatlas.models.text.classifier",
    "Word2Vec": "deepatlas.models.text.word2vec",
    "SpeechCNN": "deepatlas.models.speech.kws",
    "SpeechCTC": "deepatlas.models.speech.ctc",
    "Segmenter": "deepatlas.models.vision.segmenter",
    "Detector": "deepatlas.models.vision.detector",
    "EmbeddingCNN": "deepatlas.models.recognition.embedding",
    "Eigenfaces": "deepatlas.models.recognition.embedding",
    "HOGSVM": "deepatlas.models.recognition.hog",
    "KeypointEstimator": "deepatlas.models.recognition.keypoints",
    "Estimator": "deepatlas.estimator",
    "TorchEstimator": "deepatlas.models.base",
    "cards": "deepatlas.registry",
    "get_card": "deepatlas.registry",
    "DQN": "deepatlas.rl.dqn",
    "PPO": "deepatlas.rl.ppo",
    "A2C": "deepatlas.rl.policy_gradient",
    "REINFORCE": "deepatlas.rl.policy_gradient",
    "SAC": "deepatlas.rl.sac",
    "TD3": "deepatlas.rl.td3",
    "DDPG": "deepatlas.rl.td3",
    "evaluate": "deepatlas.evaluation",
    "cross_validate": "deepatlas.evaluation",
    "compare": "deepatlas.evaluation",
    "learning_curve": "deepatlas.evaluation",
    "DeepAtlasError": "deepatlas.errors",
    "InputError": "deepatlas.errors",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    if name == "export":  # deepatlas.export(run) — the subpackage is itself callable
        return importlib.import_module("deepatlas.export")
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'deepatlas' has no attribute {name!r}")


def __dir__():
    return __all__

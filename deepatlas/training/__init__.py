"""The one training loop that every gradient-trained model shares, and its callbacks."""

from deepatlas.training.callbacks import Callback, Checkpoint, EarlyStopping, ProgressBar
from deepatlas.training.loop import TrainingLoop, make_optimizer

__all__ = ["TrainingLoop", "make_optimizer", "Callback", "EarlyStopping", "Checkpoint", "ProgressBar"]

"""The optional stacks and the one error that names the extra bringing each.

``pip install deepatlas`` brings the estimators; serving, export, reinforcement learning, tuning
and tuning studies on PostgreSQL come with extras. Each place that needs one calls :func:`require`
first, so that a missing package gives one line (exit status 2 from the CLI) instead of a traceback::

    deepatlas serve needs FastAPI and uvicorn: pip install 'deepatlas[serve]'
"""

from __future__ import annotations

import importlib
from types import ModuleType

from deepatlas.errors import DeepAtlasError

# extra -> (what it brings, in words; the modules it provides). pyproject.toml lists the same.
EXTRAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "serve": ("FastAPI and uvicorn", ("fastapi", "uvicorn")),
    "export": ("onnx, onnxruntime and onnxscript", ("onnx", "onnxruntime", "onnxscript")),
    "rl": ("Gymnasium", ("gymnasium",)),
    "rl-apps": ("MuJoCo, highway-env, Box2D and imageio", ("mujoco", "highway_env", "Box2D", "imageio")),
    "tune": ("Optuna", ("optuna",)),
    "tune-pg": ("psycopg, the PostgreSQL driver", ("psycopg",)),  # studies shared by workers on several machines
    "vision": ("pycocotools and torchmetrics", ("pycocotools", "torchmetrics")),  # COCO data and mAP, IoU
    "nlp": ("Babel, num2words and sacrebleu", ("babel", "num2words", "sacrebleu")),  # seq2seq data and BLEU
    "tensorboard": ("TensorBoard", ("tensorboard",)),  # --log tensorboard
    "speech": ("soundfile, librosa and jiwer", ("soundfile", "librosa", "jiwer")),  # spoken-digits, WAV, CER
    "recognition": ("scikit-image", ("skimage",)),  # lfw-faces, HOG features, the stick figures' drawing
}


class MissingExtra(DeepAtlasError, ImportError):
    """An optional stack is not installed; the message names the extra that brings it."""


def require(extra: str, what: str, *modules: str) -> ModuleType:
    """Import ``modules`` (default: every module of ``extra``) and return the first; raise
    :class:`MissingExtra` "<what> needs <stack>: pip install 'deepatlas[<extra>]'" when one is missing.

    >>> optuna = require("tune", "deepatlas tune")               # doctest: +SKIP
    """
    label, provided = EXTRAS[extra]
    loaded = []
    for name in modules or provided:
        try:
            loaded.append(importlib.import_module(name))
        except ImportError as exc:
            raise MissingExtra(f"{what} needs {label}: pip install 'deepatlas[{extra}]'") from exc
    return loaded[0]

"""Serve a run or an ONNX file over HTTP: :func:`create_app` builds the FastAPI app.

>>> from deepatlas.serving import create_app
>>> app = create_app("runs/mlp-digits")       # doctest: +SKIP

Imported lazily, so that ``deepatlas --help`` does not load FastAPI.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "create_app": "deepatlas.serving.app",
    "format_predictions": "deepatlas.serving.app",
    "load_source": "deepatlas.serving.backends",
    "BACKENDS": "deepatlas.serving.backends",
    "MAX_BATCH": "deepatlas.serving.limits",
    "MAX_BODY_BYTES": "deepatlas.serving.limits",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        if _LAZY[name] == "deepatlas.serving.app":
            from deepatlas._optional import require

            require("serve", "deepatlas.serving")
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'deepatlas.serving' has no attribute {name!r}")

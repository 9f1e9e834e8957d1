"""``deepatlas transform RUN --input FILE`` (codes) and ``deepatlas reconstruct RUN --input FILE``.

Generic over any run whose model is a transformer: ``transform`` writes ``model.transform(X)``
as CSV columns ``code_0 ...``; ``reconstruct`` writes ``model.reconstruct(X)`` when the model has
it, else ``model.inverse_transform(model.transform(X))``, one column per input value (the
training feature names when the run has them, else ``x0 ...``). Autoencoders, VAEs, RBMs and
sparse coders all fit. Input files are read as for ``deepatlas predict`` (.csv with a header row,
or .npz with an array ``X``); flat rows are reshaped to the training sample shape.
"""

from __future__ import annotations

import csv
import io
import sys

import numpy as np

from deepatlas.errors import InputError


def _load(run: str, needs: tuple[str, ...], command: str):
    from deepatlas.saving import load

    model = load(run)
    missing = [m for m in needs if not hasattr(model, m)]
    if missing:
        raise InputError(
            f"Run {run!r} holds a {type(model).__name__}, which has no {missing[0]}(); "
            f"'deepatlas {command}' needs a model that encodes data (an autoencoder, VAE, RBM or sparse coder)."
        )
    return model


def _read(model, path: str) -> np.ndarray:
    from deepatlas.predict import read_features

    config = getattr(model, "run_config_", {}) or {}
    X = read_features(path, config)
    shape = config.get("sample_shape")
    if shape and len(shape) > 1 and X.ndim == 2 and X.shape[1] == int(np.prod(shape)):
        X = X.reshape(len(X), *shape)
    return X


def _csv(header: list[str], rows: np.ndarray) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([f"{v:.6g}" for v in row] for row in rows)
    return buf.getvalue()


def transform_file(run: str, input_path: str) -> str:
    """CSV of the codes of the rows of ``input_path``."""
    model = _load(run, ("transform",), "transform")
    Z = np.asarray(model.transform(_read(model, input_path)))
    Z = Z.reshape(len(Z), -1)
    return _csv([f"code_{j}" for j in range(Z.shape[1])], Z)


def reconstruct_file(run: str, input_path: str) -> str:
    """CSV of the model's reconstructions of the rows of ``input_path``, flattened."""
    model = _load(run, ("transform",), "reconstruct")
    X = _read(model, input_path)
    if hasattr(model, "reconstruct"):
        R = model.reconstruct(X)
    elif hasattr(model, "inverse_transform"):
        R = model.inverse_transform(model.transform(X))
    else:
        raise InputError(
            f"Run {run!r} holds a {type(model).__name__}, which has no inverse_transform(); "
            "'deepatlas reconstruct' needs a model that can decode its codes."
        )
    R = np.asarray(R).reshape(len(X), -1)
    names = (getattr(model, "run_config_", {}) or {}).get("feature_names")
    header = list(names) if names and len(names) == R.shape[1] else [f"x{j}" for j in range(R.shape[1])]
    return _csv(header, R)


def _emit(text: str, output: str | None) -> None:
    if output:
        from deepatlas._io import atomic_write_text

        atomic_write_text(output, text)
    else:
        sys.stdout.write(text)


def cmd_transform(args) -> int:
    _emit(transform_file(args.run, args.input), args.output)
    return 0


def cmd_reconstruct(args) -> int:
    _emit(reconstruct_file(args.run, args.input), args.output)
    return 0


def add_parser(sub) -> None:
    for name, func, what in (
        (
            "transform",
            cmd_transform,
            "encode data with a trained autoencoder, RBM or sparse coder; writes codes as CSV",
        ),
        ("reconstruct", cmd_reconstruct, "encode and decode data with a trained model; writes reconstructions as CSV"),
    ):
        p = sub.add_parser(name, help=what)
        p.add_argument("run", help="run directory")
        p.add_argument("--input", required=True, metavar="FILE", help=".csv (header row) or .npz (array X)")
        p.add_argument("--output", metavar="FILE", help="CSV to write (default: standard output)")
        p.set_defaults(func=func)

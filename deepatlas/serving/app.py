"""The HTTP model server: FastAPI, the KServe v1 / TF-Serving ``{"instances": [...]}`` convention.

Endpoints::

    POST /v1/predict    {"instances": [x1, x2, ...]}  ->  {"predictions": [p1, p2, ...]}
    GET  /v1/health     {"status": "ok", ...}
    GET  /v1/metadata   input name, shape, dtype; kind; class labels; limits; versions
    GET  /openapi.json  the schema (and /docs)

Each instance is one sample in the model's sample shape (e.g. 64 numbers, or ``[[[...8]...8]]``
for a 1x8x8 image), or, for a fixed multi-axis shape, the same values flattened. A model trained
on a CSV's raw columns also takes named records, ``{"instances": [{"age": 41, "city": "lyon"}]}``,
encoded as in training (columns by name, ``null`` filled, unseen categories as all zeros; the
column names are in ``/v1/metadata``'s ``columns``). The request
schema is built from the model's input shape, so every request is checked before the model runs:
the shape, the type (JSON numbers only, no strings or booleans), finite values within float32's
range, the batch size (``max_batch``), the body size (``max_body_bytes``, 413 when larger) and
the compute budget (``max_elements`` input numbers per request, 413 above, refused before parsing).
A body must arrive within ``read_timeout`` seconds (408 and the connection closed); inference runs
in worker threads, ``max_inferences`` at once, so a long one does not stall ``/v1/health``.
Wrong requests get a 4xx with a message; no request names a file on the server.

A classifier's prediction is ``{"label": ..., "probabilities": {label: p, ...}}`` (a perceptron
gives ``scores``); a regressor's is ``{"value": ...}``; other models give their named outputs.
A reply may also hold ``warnings`` (sentences: inputs far outside the training data, named by
column for a table, see :func:`deepatlas.preprocessing.far_from_training`; missing values filled;
categories unseen in training) and, for named records, ``unseen``: ``{column: {category: count}}``.
"""

# No ``from __future__ import annotations``: FastAPI must see the request model built at run time.
from typing import Annotated, Any

import anyio
import numpy as np
from fastapi import FastAPI, HTTPException
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, Strict, StrictFloat, StrictInt, StrictStr, create_model

from deepatlas.serving.backends import Loaded, load_source
from deepatlas.serving.limits import (
    F32_MAX,
    MAX_BATCH,
    MAX_BODY_BYTES,
    MAX_DYNAMIC_LENGTH,
    MAX_ELEMENTS,
    MAX_HEADER_BYTES,
    MAX_INFERENCES,
    READ_TIMEOUT_S,
)


class BodySizeLimit:
    """ASGI middleware: read the body up to ``max_bytes`` within ``timeout`` seconds, before any
    parsing. Beyond the size, or a body with more than ``max_elements`` numbers (counted by its
    commas), answer 413; a body still incomplete after ``timeout`` s (shorter than its
    Content-Length, or trickled) gets 408 and the connection is closed."""

    def __init__(
        self,
        app,
        max_bytes: int,
        timeout: float = READ_TIMEOUT_S,
        max_elements: int | None = None,
        max_header_bytes: int = MAX_HEADER_BYTES,
    ):
        self.app = app
        self.max_bytes = int(max_bytes)
        self.timeout = float(timeout)
        self.max_elements = max_elements
        self.max_header_bytes = int(max_header_bytes)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers") or []
        size = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
        if size + sum(len(k) + len(v) + 4 for k, v in headers) > self.max_header_bytes:
            # h11 bounds only headers that arrive in pieces; this bounds the complete ones too
            detail = f"The request line and headers are larger than {self.max_header_bytes} bytes (--max-header-bytes)."
            await _send_error(send, 431, detail, close=True)
            return
        length = dict(headers).get(b"content-length")
        if length is not None:
            if not length.isdigit():
                await _send_error(send, 400, "Content-Length must be a non-negative integer.")
                return
            if int(length) > self.max_bytes:
                await _send_error(send, 413, self._message())
                return
        body = bytearray()
        with anyio.move_on_after(self.timeout) as scope_:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                body += message.get("body", b"")
                if len(body) > self.max_bytes:
                    await _send_error(send, 413, self._message())
                    return
                if not message.get("more_body", False):
                    break
        if scope_.cancelled_caught:
            detail = f"The request body did not arrive within {self.timeout:g} s (--read-timeout)."
            await _send_error(send, 408, detail, close=True)
            return
        if self.max_elements is not None and body.count(b",") >= self.max_elements:
            # n numbers in one JSON array take n - 1 commas: a cheap bound, before parsing
            await _send_error(send, 413, _budget_message(self.max_elements))
            return
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _message(self) -> str:
        return f"The request body is larger than the limit of {self.max_bytes} bytes (--max-body-bytes)."


def _budget_message(max_elements: int) -> str:
    return f"The request has more than {max_elements} input numbers, the limit per request (--max-elements)."


async def _send_error(send, status: int, detail: str, close: bool = False) -> None:
    import json

    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:  # the rest of the request may never come: the server closes the connection
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _leaf(dtype: str):
    if np.issubdtype(np.dtype(dtype), np.integer):
        info = np.iinfo(np.dtype(dtype))
        return Annotated[int, Strict(), Field(ge=int(info.min), le=int(info.max))]
    return Annotated[float, Strict(), Field(allow_inf_nan=False, ge=-F32_MAX, le=F32_MAX)]


def _nested(leaf, shape) -> Any:
    t = leaf
    for d in reversed(shape):
        if isinstance(d, int) and d > 0:
            t = Annotated[list[t], Field(min_length=d, max_length=d)]
        else:  # a dynamic axis (e.g. sequence length)
            t = Annotated[list[t], Field(min_length=1, max_length=MAX_DYNAMIC_LENGTH)]
    return t


def _fixed(shape) -> bool:
    return all(isinstance(d, int) and d > 0 for d in shape)


def request_model(
    sample_shape, dtype: str, max_batch: int, columns=None, audio: bool = False, flat_shape=None
) -> type[BaseModel]:
    """``{"instances": [...]}`` with each instance in ``sample_shape`` (or flattened); with
    ``columns`` (a model trained on a CSV's raw columns) an instance may also be a named record
    ``{"column": value, ...}`` holding those columns (a value: number, string or null)."""
    leaf = _leaf(dtype)
    instance = _nested(leaf, sample_shape)
    flat_shape = sample_shape if flat_shape is None else flat_shape
    if len(flat_shape) > 1 and _fixed(flat_shape):  # also flattened (a resizable CNN: at its training size)
        instance = instance | _nested(leaf, [int(np.prod(flat_shape))])
    if columns:
        instance = instance | dict[str, StrictFloat | StrictInt | StrictStr | None]
    if audio:  # a speech model also takes a WAV file's bytes, base64-encoded
        instance = instance | StrictStr
    return create_model(
        "PredictRequest",
        __config__=ConfigDict(extra="forbid"),
        instances=(
            Annotated[list[instance], Field(min_length=1, max_length=max_batch)],
            Field(description=f"one to {max_batch} samples, each of shape {list(sample_shape)} ({dtype})"),
        ),
    )


class PredictResponse(BaseModel):
    predictions: list[Any]
    warnings: list[str] | None = Field(
        default=None, description="what to know about this request's inputs (far from training, filled, unseen)"
    )
    unseen: dict[str, dict[str, int]] | None = Field(
        default=None, description="named records: categories unseen in training, counted per column"
    )


class Health(BaseModel):
    status: str
    model: str | None = None
    backend: str


def _labels(info: dict, n: int) -> list:
    classes = info.get("classes")
    return list(classes) if classes and len(classes) == n else list(range(n))


def format_predictions(info: dict, outputs: dict[str, np.ndarray], n: int) -> list[Any]:
    """Turn output arrays into one JSON-able prediction per instance."""
    kind = info.get("kind")
    if kind == "classifier" and "probabilities" in outputs:
        proba = np.asarray(outputs["probabilities"], np.float64).reshape(n, -1)
        labels = _labels(info, proba.shape[1])
        keys = [str(c) for c in labels]
        return [{"label": labels[int(row.argmax())], "probabilities": dict(zip(keys, row.tolist()))} for row in proba]
    if kind == "classifier" and "scores" in outputs:
        scores = np.asarray(outputs["scores"], np.float64)
        if info.get("decision") == "sign" or scores.ndim == 1:
            labels = _labels(info, 2)
            return [{"label": labels[int(s > 0)], "score": float(s)} for s in scores.reshape(n)]
        labels = _labels(info, scores.shape[1])
        keys = [str(c) for c in labels]
        return [{"label": labels[int(row.argmax())], "scores": dict(zip(keys, row.tolist()))} for row in scores]
    alphabet = (info.get("metadata") or {}).get("alphabet")
    if kind == "sequence" and alphabet and "log_probs" in outputs:  # CTC: best path, repeats merged, blanks dropped
        out = []
        for lp in np.asarray(outputs["log_probs"]):
            best = lp.argmax(-1)
            keep = (best != 0) & np.concatenate([[True], best[1:] != best[:-1]])
            out.append({"transcript": "".join(alphabet[k - 1] for k in best[keep])})
        return out
    if kind == "regressor" and len(outputs) == 1:
        (y,) = outputs.values()
        y = np.asarray(y, np.float64)
        return [{"value": v.tolist() if isinstance(v, np.ndarray) else float(v)} for v in y]
    return [{name: np.asarray(arr)[i].tolist() for name, arr in outputs.items()} for i in range(n)]


def create_app(
    source=None,
    *,
    backend: str = "onnxruntime",
    max_batch: int = MAX_BATCH,
    max_body_bytes: int = MAX_BODY_BYTES,
    max_elements: int = MAX_ELEMENTS,
    read_timeout: float = READ_TIMEOUT_S,
    max_header_bytes: int = MAX_HEADER_BYTES,
    max_inferences: int = MAX_INFERENCES,
    threads: int | None = None,
    loaded: Loaded | None = None,
    part: str | None = None,
) -> FastAPI:
    """The FastAPI app for ``source`` (a run directory or a .onnx file), or for ``loaded``.
    ``part`` picks an inference path of a run with several (an autoencoder's ``decoder``)."""
    from deepatlas import __version__
    from deepatlas.errors import DeepAtlasError, InputError

    ints = ("max_batch", max_batch), ("max_body_bytes", max_body_bytes), ("max_elements", max_elements)
    for name, value in (*ints, ("max_header_bytes", max_header_bytes), ("max_inferences", max_inferences)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"--{name.replace('_', '-')} must be a positive int. Got {value!r} instead.")
    if isinstance(read_timeout, bool) or not isinstance(read_timeout, int | float) or not 0 < read_timeout < 1e6:
        raise InputError(f"--read-timeout must be a positive number of seconds. Got {read_timeout!r} instead.")
    if loaded is None:
        loaded = load_source(source, backend=backend, threads=threads, part=part)
    info = loaded.info
    model_name = info.get("model") or info.get("class")
    dtype = (info.get("input") or {}).get("dtype", "float32")
    sample_shape = list(info.get("sample_shape") or [])
    tabular = loaded.tabular
    columns = list(tabular.feature_names_in_) if tabular is not None else None
    audio = (info.get("preprocessing") or {}).get("audio")  # speech models: waveform in
    # A file with dynamic height and width (a CNN) folds flattened instances at its training size.
    flat_shape = sample_shape if _fixed(sample_shape) else (info.get("metadata") or {}).get("training_shape")
    flat_shape = list(flat_shape or [])
    Request = request_model(sample_shape, dtype, max_batch, columns, audio=bool(audio), flat_shape=flat_shape)
    translator = info.get("kind") == "translator"  # a seq2seq export (part translate): texts in, texts out
    if translator:
        Request = create_model(
            "PredictRequest",
            __config__=ConfigDict(extra="forbid"),
            instances=(
                Annotated[
                    list[Annotated[StrictStr, Field(max_length=10_000)]], Field(min_length=1, max_length=max_batch)
                ],
                Field(description=f"one to {max_batch} texts (strings) to translate"),
            ),
        )
    n_flat = int(np.prod(flat_shape)) if flat_shape and _fixed(flat_shape) else None
    words = (info.get("preprocessing") or {}).get("kind") in ("word-ids", "word-and-char-ids")
    if words:  # a language model of deepatlas.models.text: raw strings in, tokenized by the sidecar
        Request = create_model(
            "PredictRequest",
            __config__=ConfigDict(extra="forbid"),
            instances=(
                Annotated[
                    list[Annotated[StrictStr, Field(max_length=100_000)]], Field(min_length=1, max_length=max_batch)
                ],
                Field(description=f"one to {max_batch} texts (strings)"),
            ),
        )

    app = FastAPI(
        title="deepatlas model server",
        version=__version__,
        description=f"Serves {model_name or 'a model'} ({info.get('kind')}) with {loaded.backend.name}.",
    )
    app.add_middleware(
        BodySizeLimit,
        max_bytes=max_body_bytes,
        timeout=read_timeout,
        max_elements=max_elements,
        max_header_bytes=max_header_bytes,
    )
    inferences = anyio.CapacityLimiter(max_inferences)  # worker threads; the event loop stays free

    @app.exception_handler(RequestValidationError)
    async def concise_validation_error(request, exc: RequestValidationError):
        # FastAPI's errors, without echoing the offending input back (it may be a whole batch).
        errors = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in exc.errors()[:10]
        ]
        return JSONResponse(status_code=422, content={"detail": errors})

    metadata = {
        "model": model_name,
        "class": info.get("class"),
        "kind": info.get("kind"),
        "task": info.get("task"),
        "backend": loaded.backend.name,
        "input": info.get("input"),
        "outputs": info.get("outputs"),
        "sample_shape": sample_shape,
        "classes": info.get("classes"),
        "decision": info.get("decision"),
        "columns": columns,  # named records {"column": value} are accepted when set (raw CSV columns)
        "preprocessing_in_graph": bool((info.get("preprocessing") or {}).get("in_graph")),
        "exported_with": info.get("exporter"),
        "weights_sha256": info.get("weights_sha256"),  # of the run's model.safetensors the file came from
        "package_version": info.get("package_version"),
        "server_version": __version__,
        "limits": {
            "max_batch": max_batch,
            "max_body_bytes": max_body_bytes,
            "max_elements": max_elements,
            "read_timeout_s": read_timeout,
            "max_header_bytes": max_header_bytes,
            "max_inferences": max_inferences,
        },
    }

    @app.get("/v1/health", response_model=Health, summary="Liveness: the model is loaded")
    def health() -> Health:
        return Health(status="ok", model=model_name, backend=loaded.backend.name)

    @app.get("/v1/metadata", summary="What the model takes and returns")
    def get_metadata() -> dict[str, Any]:
        return metadata

    @app.post(
        "/v1/predict",
        response_model=PredictResponse,
        response_model_exclude_none=True,  # warnings and unseen only when there are some
        summary="Predict a batch of instances",
        responses={
            408: {"description": "The body did not arrive within the read timeout"},
            413: {"description": "The request body is larger than the limit, or has more numbers than the budget"},
            422: {"description": "The instances do not fit the model's input (shape, type, finite values, batch size)"},
        },
    )
    async def predict(request: Request) -> PredictResponse:  # type: ignore[valid-type]
        # Validated on the event loop (bounded by --max-elements); converted and run in a worker
        # thread, at most --max-inferences at once, so /v1/health answers during a long inference.
        return await anyio.to_thread.run_sync(_predict, request.instances, limiter=inferences)

    def _records(instances) -> tuple[np.ndarray, dict]:
        """Named records through the run's own encoding (columns matched by name; a missing value,
        null, is filled as in training; an unseen category encodes as all zeros); returns the
        numbers and the report of what was filled and unseen."""
        import pandas as pd

        if not all(isinstance(r, dict) for r in instances):
            raise HTTPException(422, "A request holds either named records or arrays of numbers, not both.")
        ignored = set(tabular.dropped_)
        for i, record in enumerate(instances):
            missing = [c for c in columns if c not in record]
            unexpected = [k for k in record if k not in columns and k not in ignored]
            if missing or unexpected:
                parts = [
                    f"{what} {', '.join(map(repr, those[:8]))}"
                    for what, those in (("missing", missing), ("unexpected", unexpected))
                    if those
                ]
                raise HTTPException(
                    422, f"Instance {i} does not have the model's columns: {'; '.join(parts)} (expected {columns})."
                )
        frame = pd.DataFrame({c: pd.Series([r[c] for r in instances], dtype=object) for c in columns})
        try:
            return tabular.transform(frame, where="instances")
        except DeepAtlasError as exc:
            raise HTTPException(422, str(exc)) from None

    stats = info.get("preprocessing") or {}
    if not stats.get("standardize") or stats.get("per"):  # no training statistics, or per step of a sequence
        stats = {}

    def _warnings(X, report: dict | None) -> dict:
        """This request's ``warnings`` and ``unseen`` (the response's optional fields)."""
        from deepatlas.preprocessing import TabularPreprocessor, far_from_training

        lines = TabularPreprocessor.describe(report) if report else []
        if tabular is not None:
            far = far_from_training(
                X, stats.get("mean"), stats.get("scale"), tabular.feature_names_out_, range(len(tabular.numeric_))
            )
        else:
            far = far_from_training(X, stats.get("mean"), stats.get("scale"))
        lines += [far] if far else []
        out: dict[str, Any] = {"warnings": lines} if lines else {}
        if report and report.get("unseen"):
            out["unseen"] = report["unseen"]
        return out

    def _audio(instances) -> PredictResponse:
        """Base64 WAV files (or waveforms): decoded, resampled and mixed down to the model's
        rate, fitted to a keyword model's clip, and run one utterance at a time."""
        import base64
        import binascii

        from deepatlas.data.speech import decode_wav_bytes

        predictions = []
        for i, item in enumerate(instances):
            if isinstance(item, str):
                try:
                    data = base64.b64decode(item, validate=True)
                except (binascii.Error, ValueError):
                    raise HTTPException(422, f"Instance {i} is a string but not base64 (a WAV file's bytes).") from None
                try:
                    wave = decode_wav_bytes(data, int(audio.get("sample_rate", 16000)), name=f"Instance {i}")
                except DeepAtlasError as exc:
                    raise HTTPException(422, str(exc)) from None
            else:
                wave = np.asarray(item, np.float32)
            clip = audio.get("clip_samples")
            if clip:
                wave = np.pad(wave[:clip], (0, max(0, clip - len(wave))))
            if wave.size > max_elements:
                raise HTTPException(413, _budget_message(max_elements))
            outputs = loaded.backend.run(np.ascontiguousarray(wave[None], np.float32))
            predictions += format_predictions(info, outputs, 1)
        return PredictResponse(predictions=predictions)

    def _translate(instances) -> PredictResponse:
        """Texts -> translations with a seq2seq export: tokenized with the sidecar's source
        vocabulary (an unknown token maps to <unk> and is counted), decoded greedily in the graph."""
        from deepatlas.models.seq2seq.export import decode_ids, encode_texts

        meta = info.get("metadata") or {}
        X, unknown = encode_texts(meta, list(instances))
        if X.size > max_elements:
            raise HTTPException(413, _budget_message(max_elements))
        texts = decode_ids(meta, loaded.backend.run(np.ascontiguousarray(X))["written"])
        return PredictResponse(predictions=[{"translation": t, "unknown": k} for t, k in zip(texts, unknown)])

    def _text(instances) -> PredictResponse:
        """Raw texts: tokenized with the sidecar's preprocessing (the tokenizer and vocabulary that
        predict uses), run, and for a tagger decoded into entity spans (Viterbi for a CRF)."""
        from deepatlas.data.text import encode_with_preprocessing
        from deepatlas.models.text.export import tagged_spans

        try:
            X, tokens = encode_with_preprocessing(info["preprocessing"], list(instances))
        except DeepAtlasError as exc:
            raise HTTPException(422, str(exc)) from None
        if X.size > max_elements:
            raise HTTPException(413, _budget_message(max_elements))
        outputs = loaded.backend.run(np.ascontiguousarray(X))
        if info.get("kind") == "tagger":
            return PredictResponse(predictions=tagged_spans(info, outputs["scores"], tokens))
        return PredictResponse(predictions=format_predictions(info, outputs, len(X)))

    def _predict(instances) -> PredictResponse:
        if words:
            return _text(instances)
        if translator:
            return _translate(instances)
        if audio and any(isinstance(r, str) for r in instances):
            return _audio(instances)
        report = None
        if any(isinstance(r, dict) for r in instances):
            instances, report = _records(instances)
        try:
            X = np.asarray(instances, dtype=np.dtype(dtype))
        except (ValueError, TypeError):
            raise HTTPException(422, "All instances in a request must have the same shape.") from None
        if n_flat is not None and X.ndim == 2 and len(flat_shape) > 1:
            X = X.reshape(len(X), *flat_shape)
        if X.ndim != 1 + len(sample_shape):
            raise HTTPException(422, f"Each instance must have shape {sample_shape}. Got {list(X.shape[1:])}.")
        if X.size > max_elements:
            raise HTTPException(413, _budget_message(max_elements))
        n = len(X)
        try:
            outputs = loaded.backend.run(np.ascontiguousarray(X))
        except Exception as exc:  # e.g. a dynamic axis the model cannot take: the input's fault
            msg = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            raise HTTPException(422, f"The model cannot run on these instances: {msg}") from None
        if not all(np.isfinite(np.asarray(v, np.float64)).all() for v in outputs.values()):
            raise HTTPException(
                422, "The model's outputs are not finite for these instances (input values too large?)."
            )
        return PredictResponse(predictions=format_predictions(info, outputs, n), **_warnings(X, report))

    return app

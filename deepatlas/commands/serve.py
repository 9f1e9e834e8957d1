"""``deepatlas serve RUN|MODEL.onnx``: an HTTP model server (FastAPI on uvicorn).

Binds to 127.0.0.1 unless ``--host`` says otherwise. See :mod:`deepatlas.serving.app` for the
endpoints and the request checks.
"""

from __future__ import annotations

import errno
import ipaddress
import sys

from deepatlas._optional import require
from deepatlas.errors import InputError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_port(host: str, port: int) -> None:
    """Bind ``host:port`` once and let it go, so that a port in use (or an address that is not
    this machine's) is one line before the server says "serving on ..."."""
    import socket

    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise InputError(f"--host {host!r} is not an address of this machine: {exc}.") from None
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind(addr)
        except OSError as exc:
            why = exc.strerror or str(exc)
            hint = "; another program is serving there: pick another --port" if exc.errno == errno.EADDRINUSE else ""
            raise InputError(f"cannot listen on {host}:{port}: {why}{hint}.") from None


def cmd_serve(args) -> int:
    require("serve", "deepatlas serve")
    from deepatlas.serving import create_app

    if not 0 <= args.port <= 65535:
        raise InputError(f"--port must be an int in the range [0, 65535]. Got {args.port} instead.")
    if args.threads is not None and args.threads < 1:
        raise InputError(f"--threads must be a positive int. Got {args.threads} instead.")
    if args.max_header_bytes < 1024:
        raise InputError(f"--max-header-bytes must be an int >= 1024. Got {args.max_header_bytes} instead.")
    app = create_app(
        args.source,
        backend=args.backend,
        max_batch=args.max_batch,
        max_body_bytes=args.max_body_bytes,
        max_elements=args.max_elements,
        read_timeout=args.read_timeout,
        max_header_bytes=args.max_header_bytes,
        max_inferences=args.max_inferences,
        threads=args.threads,
        part=args.part,
    )
    check_port(args.host, args.port)  # before "serving on ...": a port in use is one line, exit 2
    if not _is_loopback(args.host):
        print(f"warning: --host {args.host} makes the model reachable from other machines", file=sys.stderr)
    from deepatlas.serving.server import run_server

    what = args.source if args.part is None else f"{args.source} ({args.part})"
    backend = "litert" if str(args.source).lower().endswith(".tflite") else args.backend  # a .tflite runs in LiteRT
    print(f"serving {what} with {backend} on http://{args.host}:{args.port}/v1/predict", flush=True)
    run_server(
        app,
        args.host,
        args.port,
        read_timeout=args.read_timeout,
        max_header_bytes=args.max_header_bytes,
        log_level=args.log_level,
        access_log=args.log_level == "debug",
    )
    return 0


def add_parser(sub) -> None:
    from deepatlas.serving import limits as lim
    from deepatlas.serving.limits import MAX_BATCH, MAX_BODY_BYTES

    p = sub.add_parser("serve", help="serve a run or an ONNX file over HTTP (POST /v1/predict)")
    p.add_argument("source", metavar="RUN|MODEL.onnx", help="run directory, or an exported .onnx or .tflite file")
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST}: this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    p.add_argument("--backend", choices=("onnxruntime", "torch"), default="onnxruntime", help="default onnxruntime")
    p.add_argument("--max-batch", type=int, default=MAX_BATCH, help=f"most instances per request ({MAX_BATCH})")
    p.add_argument(
        "--max-body-bytes", type=int, default=MAX_BODY_BYTES, help=f"largest request body ({MAX_BODY_BYTES})"
    )
    for flag, kind, default, what in (  # the limits against heavy and slow clients (issue #29)
        ("--max-elements", int, lim.MAX_ELEMENTS, "most input numbers per request, instances x sample size; 413 above"),
        (
            "--read-timeout",
            float,
            lim.READ_TIMEOUT_S,
            "seconds for a request's headers, then its body; else closed/408",
        ),
        ("--max-header-bytes", int, lim.MAX_HEADER_BYTES, "largest request line + headers; 431 above"),
        ("--max-inferences", int, lim.MAX_INFERENCES, "inferences run at once in worker threads; others wait"),
    ):
        p.add_argument(flag, type=kind, default=default, help=f"{what} ({default:g})")
    p.add_argument("--threads", type=int, help="threads for the model's runtime (default: the runtime's)")
    p.add_argument("--part", help="inference path of a run with several (e.g. an autoencoder's decoder)")
    p.add_argument("--log-level", default="warning", choices=("debug", "info", "warning", "error"))
    p.set_defaults(func=cmd_serve)

"""Model-server throughput and latency on loopback: ``deepatlas serve`` under a bounded load.

Trains a small MLP run on digits (or takes ``--run``), exports it, starts ``deepatlas serve`` on
127.0.0.1 at a free port in a subprocess, and sends ``POST /v1/predict`` requests (one digit
image each) from an asyncio load generator at concurrency 1 and 8. Each level is bounded in
requests (``--requests``) and in time (``--seconds``); the server is stopped at the end. Prints
throughput and p50 / p99 latency per backend and concurrency. Everything stays on this machine.

    python benchmarks/bench_server.py [--requests 400] [--seconds 20] [--backends onnxruntime torch]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

HOST = "127.0.0.1"  # loopback only


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _start(run: Path, backend: str, threads: int) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    cmd = [sys.executable, "-m", "deepatlas", "serve", str(run), "--host", HOST, "--port", str(port)]
    cmd += ["--backend", backend, "--threads", str(threads)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://{HOST}:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read()}")
        try:
            if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start within 120 s")


async def _load(url: str, bodies: list[bytes], concurrency: int, n_requests: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors = 0
    sent = 0
    stop_at = time.perf_counter() + seconds
    headers = {"content-type": "application/json"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:

        async def worker():
            nonlocal sent, errors
            while sent < n_requests and time.perf_counter() < stop_at:
                body = bodies[sent % len(bodies)]
                sent += 1
                t0 = time.perf_counter()
                r = await client.post("/v1/predict", content=body, headers=headers)
                latencies.append(time.perf_counter() - t0)
                errors += r.status_code != 200

        for _ in range(min(20, n_requests)):  # warm-up, not counted
            await client.post("/v1/predict", content=bodies[0], headers=headers)
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    lat = np.array(latencies) * 1e3
    return {
        "requests": len(lat),
        "errors": errors,
        "rps": len(lat) / wall,
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="run directory to serve (default: train a small MLP on digits)")
    parser.add_argument("--requests", type=int, default=400, help="most requests per level (default 400)")
    parser.add_argument("--seconds", type=float, default=20.0, help="most seconds per level (default 20)")
    parser.add_argument("--backends", nargs="+", default=["onnxruntime", "torch"])
    parser.add_argument("--threads", type=int, default=1, help="runtime threads in the server (default 1)")
    args = parser.parse_args()

    from deepatlas.data import load_dataset

    ds = load_dataset("digits")
    bodies = [f'{{"instances": [{x.tolist()}]}}'.encode() for x in ds.X_test[:64]]
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(args.run) if args.run else Path(tmp) / "mlp"
        if not args.run:
            from deepatlas.export import export
            from deepatlas.models.mlp import MLPClassifier
            from deepatlas.runs import train_run

            train_run(MLPClassifier(epochs=5, seed=0), ds, run, data_spec="digits")
            export(run)
        rows = []
        for backend in args.backends:
            proc, url = _start(run, backend, args.threads)
            try:
                for c in (1, 8):
                    res = asyncio.run(_load(url, bodies, c, args.requests, args.seconds))
                    rows.append({"backend": backend, "concurrency": c, **res})
            finally:
                proc.terminate()
                proc.wait(timeout=30)
    print(f"\nPOST /v1/predict, 1 instance (1x8x8) per request, loopback, {os.cpu_count()} cores")
    print(f"{'backend':<12} {'conc':>4} {'requests':>8} {'errors':>6} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for r in rows:
        print(
            f"{r['backend']:<12} {r['concurrency']:>4} {r['requests']:>8} {r['errors']:>6} "
            f"{r['rps']:>8.1f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f}"
        )


if __name__ == "__main__":
    main()

"""onnxruntime vs torch eager: inference latency of the exported MLP and CNN at batch 1 and 256.

Both run the same inference module (standardisation inside, softmax at the end) on the same
NumPy input, with the same number of threads; torch eager is the module called under
``torch.inference_mode()``. Medians over repeats, calls alternated between the runtimes so that
machine noise hits both; the ratio is onnxruntime / torch (below 1: onnxruntime is faster).

    python benchmarks/bench_export.py [--threads 1] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from deepatlas.data import load_dataset
from deepatlas.export import export, inference_spec
from deepatlas.export import onnx as ox
from deepatlas.models.cnn import CNNClassifier
from deepatlas.models.mlp import MLPClassifier


def _time(fn, n_calls: int) -> float:
    start = time.perf_counter()
    for _ in range(n_calls):
        fn()
    return (time.perf_counter() - start) / n_calls


def bench(name: str, est, ds, threads: int, repeats: int, workdir: Path) -> list[dict]:
    path = workdir / f"{name}.onnx"
    result = export(est, path, X=ds.X_test)
    spec = inference_spec(est)
    sess = ox.session(path, threads=threads)
    input_name = sess.get_inputs()[0].name
    module = spec.module.eval()
    rows = []
    for batch in (1, 256):
        X = np.ascontiguousarray(np.resize(ds.X_test, (batch, *ds.X_test.shape[1:])), dtype=np.float32)

        def run_ort(X=X):
            return sess.run(None, {input_name: X})

        def run_torch(X=X):
            with torch.inference_mode():
                return module(torch.from_numpy(X))

        calls = 300 if batch == 1 else 20
        for fn in (run_ort, run_torch):  # warm up
            _time(fn, calls // 4)
        ort_t, torch_t = [], []
        for _ in range(repeats):
            ort_t.append(_time(run_ort, calls))
            torch_t.append(_time(run_torch, calls))
        o, t = statistics.median(ort_t), statistics.median(torch_t)
        rows.append({"model": name, "batch": batch, "ort_us": o * 1e6, "torch_us": t * 1e6, "ratio": o / t})
    print(f"  {name}: exported with {result.exporter}; parity {result.parity['held_out']['max_abs_diff']:.2g}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="threads for both runtimes (default 1)")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ds = load_dataset("digits")
    models = {
        "mlp (64-256-256-10)": MLPClassifier(epochs=2, seed=0),
        "cnn (32-64-128, 1x8x8)": CNNClassifier(epochs=1, seed=0),
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, est in models.items():
            est.fit(ds.X_train, ds.y_train)
            rows += bench(name.split()[0], est, ds, args.threads, args.repeats, Path(tmp))
    print(f"\nthreads={args.threads}, torch {torch.__version__}, medians of {args.repeats} repeats")
    print(f"{'model':<6} {'batch':>5} {'onnxruntime':>14} {'torch eager':>14} {'ort/torch':>10}")
    for r in rows:
        print(f"{r['model']:<6} {r['batch']:>5} {r['ort_us']:>11.1f} us {r['torch_us']:>11.1f} us {r['ratio']:>10.2f}")


if __name__ == "__main__":
    main()

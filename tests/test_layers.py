"""The import structure: ``deepatlas --help`` (and every sub-command's parser) loads no heavy
stack; the direction of imports itself is checked by ``lint-imports`` (``make lint``, CI)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "sklearn", "matplotlib", "optuna", "onnx", "onnxruntime", "fastapi", "uvicorn", "gymnasium")

_PROBE = """
import sys
from deepatlas.cli import build_parser, main
parser = build_parser()
names = sorted(parser._subparsers._group_actions[0].choices)
for argv in (["--help"], *([n, "--help"] for n in names)):
    try:
        main(argv)
    except SystemExit as exc:
        assert exc.code == 0, (argv, exc.code)
print("NAMES=" + ",".join(names))
print("LOADED=" + ",".join(sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[1:]))))
"""


def test_help_imports_no_heavy_stack():
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, *HEAVY], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    found = dict(line.split("=", 1) for line in proc.stdout.splitlines() if line.startswith(("NAMES=", "LOADED=")))
    names, loaded = found["NAMES"], found["LOADED"]
    assert {"list", "train", "predict", "serve", "export", "tune", "rl"} <= set(names.split(","))
    assert loaded == "", f"deepatlas --help imported {loaded}"

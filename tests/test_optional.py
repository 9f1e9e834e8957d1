"""Optional stacks: without one, the command that needs it says which extra to install, in one
line with exit status 2 (the package is hidden by ``sys.modules[name] = None``)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from deepatlas._optional import EXTRAS, MissingExtra, require

_PROBE = """
import sys
for name in sys.argv[1].split(","):
    sys.modules[name] = None
from deepatlas.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize(
    "hidden, argv, expected",
    [
        (
            "fastapi",
            ["serve", "model.onnx"],
            "deepatlas serve: error: deepatlas serve needs FastAPI and uvicorn: pip install 'deepatlas[serve]'",
        ),
        (
            "uvicorn",
            ["serve", "model.onnx"],
            "deepatlas serve: error: deepatlas serve needs FastAPI and uvicorn: pip install 'deepatlas[serve]'",
        ),
        (
            "onnx",
            ["export", "runs/missing"],
            "deepatlas export: error: deepatlas export needs onnx, onnxruntime and onnxscript: "
            "pip install 'deepatlas[export]'",
        ),
        (
            "optuna",
            ["tune", "mlp", "--data", "xor", "--trials", "2"],
            "deepatlas tune: error: deepatlas tune needs Optuna: pip install 'deepatlas[tune]'",
        ),
        (
            "psycopg",
            ["tune", "mlp", "--data", "xor", "--trials", "2", "--storage", "postgresql+psycopg://u:pw@db:5432/tune"],
            "deepatlas tune: error: a PostgreSQL --storage needs psycopg, the PostgreSQL driver: "
            "pip install 'deepatlas[tune-pg]'",
        ),
        (
            "gymnasium",
            ["rl", "train", "ppo", "--env", "CartPole-v1"],
            "deepatlas rl: error: deepatlas rl needs Gymnasium: pip install 'deepatlas[rl]'",
        ),
        (
            "gymnasium",
            ["rl", "evaluate", "runs/missing"],
            "deepatlas rl: error: deepatlas rl needs Gymnasium: pip install 'deepatlas[rl]'",
        ),
    ],
)
def test_missing_stack_names_its_extra(hidden, argv, expected):
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, hidden, *argv], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [expected]


def test_require_in_python(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MissingExtra) as info:
        require("export", "running an ONNX model", "onnxruntime")
    assert str(info.value) == (
        "running an ONNX model needs onnx, onnxruntime and onnxscript: pip install 'deepatlas[export]'"
    )
    assert isinstance(info.value, ImportError)  # callers that catch ImportError still do
    assert require("tune", "tuning") is sys.modules["optuna"]


def test_extras_match_pyproject():
    import importlib.metadata
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    core = " ".join(project["dependencies"]).lower()
    distributions = importlib.metadata.packages_distributions()
    for extra, (_, modules) in EXTRAS.items():
        listed = " ".join(extras[extra]).lower()
        for module in modules:
            # the distributions that install the import name (skimage -> scikit-image, highway_env -> highway-env)
            names = {d.lower() for d in distributions.get(module, [])} or {module.lower().replace("_", "-")}
            assert any(n in listed for n in names) and not any(n in core for n in names), (extra, module, names)
    (everything,) = extras["all"]
    assert everything.startswith("deepatlas[") and set(everything[10:-1].split(",")) == set(EXTRAS)
    assert "deepatlas[all]" in extras["dev"]  # the README's commands install every stack


def test_atlas_experiment_without_its_stack_is_pending(monkeypatch, tmp_path):
    from deepatlas.atlas.runner import run_report

    monkeypatch.setitem(sys.modules, "optuna", None)
    (entry,) = run_report(tmp_path / "atlas", quick=True, only="K.tuning", progress=False)
    assert entry["verdict"] == "pending"
    assert entry["summary"].startswith("Pending: ") and "pip install 'deepatlas[tune]'" in entry["summary"]

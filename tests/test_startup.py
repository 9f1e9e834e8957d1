"""Start-up cost: ``deepatlas --help`` and ``deepatlas list`` import no torch (the card index),
``create_model`` imports only the modules that register the name, and a first fit does not import
``torch._dynamo`` (deepatlas.training.optim). Checked on ``sys.modules`` in fresh processes, not
on timings."""

from __future__ import annotations

import json
import subprocess
import sys

from deepatlas import registry


def _fresh(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON object last."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_card_index_matches_the_live_registry():
    stored = json.loads(registry._INDEX_FILE.read_text(encoding="utf-8"))
    live = registry.build_index()
    hint = "the card index is stale: run `python -m deepatlas.registry` and commit deepatlas/_cards.json"
    assert stored["models"] == live["models"], hint
    assert stored["sources"] == live["sources"], hint


def test_help_and_list_import_no_torch():
    out = _fresh(
        """
import contextlib, io, json, sys
from deepatlas.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main(["--help"])
    except SystemExit:
        pass
    after_help = "torch" in sys.modules
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["list", "models"])
print(json.dumps({"help": after_help, "list": "torch" in sys.modules, "code": code,
                  "lines": buf.getvalue().count("\\n")}))
"""
    )
    assert out == {"help": False, "list": False, "code": 0, "lines": 1 + len(registry.model_summaries())}


def test_list_falls_back_to_the_live_registry_when_the_index_is_stale(monkeypatch, tmp_path, capsys):
    from deepatlas.cli import main

    stale = json.loads(registry._INDEX_FILE.read_text(encoding="utf-8"))
    stale["sources"] = "0" * 20
    stale["models"] = stale["models"][:1]
    path = tmp_path / "_cards.json"
    path.write_text(json.dumps(stale))
    monkeypatch.setattr(registry, "_INDEX_FILE", path)
    registry._index.cache_clear()
    try:
        assert registry._index() is None
        assert main(["list", "models"]) == 0
    finally:
        registry._index.cache_clear()
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]]
    assert names == registry.list_models()


def test_create_model_imports_only_the_modules_of_its_name():
    out = _fresh(
        """
import json, sys
from deepatlas import create_model
mlp, gru = create_model("mlp", epochs=3), create_model("gru")
print(json.dumps({"mlp": type(mlp).__name__, "gru": [type(gru).__name__, gru.cell],
                  "gan": "deepatlas.models.gan.gan" in sys.modules,
                  "rbm": "deepatlas.models.rbm.rbm" in sys.modules}))
"""
    )
    assert out == {"mlp": "MLPClassifier", "gru": ["RNNClassifier", "gru"], "gan": False, "rbm": False}


def test_lazily_loaded_entry_keeps_its_task_order():
    summary = {m["name"]: m for m in registry.model_summaries()}["mlp"]
    assert list(registry.get_entry("mlp").cards) == summary["tasks"]
    assert summary["tasks"][0] == "classification"


def test_first_fit_does_not_import_dynamo():
    out = _fresh(
        """
import json, sys
import numpy as np
from deepatlas import create_model
rng = np.random.default_rng(0)
X = rng.normal(size=(120, 8)).astype("float32")
y = (X[:, 0] > 0).astype(int)
for name, params in (("mlp", {}), ("mlp", {"optimizer": "sgd", "dropout": 0.2}), ("cnn", {})):
    Xi = X.reshape(120, 2, 2, 2) if name == "cnn" else X
    create_model(name, epochs=2, seed=0, **params).fit(Xi, y)
print(json.dumps({"dynamo": "torch._dynamo" in sys.modules, "sympy": "sympy" in sys.modules}))
"""
    )
    assert out == {"dynamo": False, "sympy": False}


def test_eager_optimisers_step_exactly_as_torch():
    """The same weights, bit for bit, after five steps without dynamo (ours, run first) and with
    torch's own classes (which import it); the state dicts round-trip."""
    out = _fresh(
        """
import json, sys, torch
from deepatlas.training import optim

NAMES = ("Adam", "AdamW", "SGD", "RMSprop")

def run(cls):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
    kw = {"lr": 0.05, "weight_decay": 0.01} | ({"momentum": 0.9, "nesterov": True} if cls.__name__ == "SGD" else {})
    opt = cls(net.parameters(), **kw)
    X, y = torch.randn(32, 6), torch.randint(0, 3, (32,))
    for _ in range(5):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(X), y).backward()
        opt.step()
    opt.load_state_dict(opt.state_dict())
    return [p.detach().flatten().tolist() for p in net.parameters()]

ours = {n: run(getattr(optim, n)) for n in NAMES}
eager = "torch._dynamo" not in sys.modules
same = {n: ours[n] == run(getattr(torch.optim, n)) for n in NAMES}
subclass = all(issubclass(getattr(optim, n), getattr(torch.optim, n)) for n in NAMES)
print(json.dumps({"eager": eager, "same": same, "subclass": subclass}))
"""
    )
    assert out == {"eager": True, "same": dict.fromkeys(("Adam", "AdamW", "SGD", "RMSprop"), True), "subclass": True}

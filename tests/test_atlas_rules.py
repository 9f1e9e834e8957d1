"""The atlas's verdict rules: written as data, able to give every verdict the evidence allows,
applied by the runner (never by the experiment), and cached against the code they measure."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from deepatlas.atlas import CLAIMS, Result, Rule, all_experiments
from deepatlas.atlas.rules import apply, spread

ROOT = Path(__file__).resolve().parents[1]


def _probes(rule: Rule) -> dict[str, list[float]]:
    """Synthetic per-seed values: beyond each threshold, inside the band, and straddling one."""
    s = 1.0 if rule.higher_supports else -1.0
    step = max(abs(rule.supported), abs(rule.refuted), 1e-3) * 0.5
    sup, ref = rule.supported + s * step, rule.refuted - s * step
    probes = {"beyond supported": [sup, sup, sup], "beyond refuted": [ref, ref, ref], "straddle": [sup, ref, sup]}
    if rule.supported != rule.refuted:
        mid = (rule.supported + rule.refuted) / 2
        probes["band"] = [mid, mid, mid]
    return probes


def _rules():
    exps = all_experiments()
    return sorted((cid, exp.rule) for cid, exp in exps.items())


@pytest.mark.parametrize(("cid", "rule"), _rules(), ids=[cid for cid, _ in _rules()])
def test_every_rule_reaches_each_verdict_it_allows(cid, rule):
    """Every registered experiment (new modules included) has a rule; a testable claim's rule can
    say supported, refuted and conditional; a text-error / not-testable rule can say its verdict
    and conditional (the measurement disagreeing with the argument)."""
    assert isinstance(rule, Rule), f"{cid} has no Rule"
    assert rule.statistic.strip(), cid
    got = {name: apply(rule, values)[0] for name, values in _probes(rule).items()}
    if rule.verdict == "supported":
        assert got["beyond supported"] == "supported", (cid, got)
        assert got["beyond refuted"] == "refuted", (cid, got)
        assert got["straddle"] == "conditional", (cid, got)
        if "band" in got:
            assert got["band"] == "conditional", (cid, got)
    else:
        assert got["beyond supported"] == rule.verdict, (cid, got)
        assert got["beyond refuted"] == "conditional", (cid, got)
        assert got["straddle"] == "conditional", (cid, got)
    assert set(got.values()) == set(rule.verdicts()), (cid, got)


def test_every_experiment_module_imports():
    """A module written against an older API (a verdict string, no rule) fails here, not silently."""
    from deepatlas.atlas import BROKEN_MODULES

    all_experiments()
    assert BROKEN_MODULES == {}


def test_the_six_fixed_verdicts_now_rest_on_a_measurement():
    """M.parallel, C.fixed-size, S.header, M.interpretable, C.opaque and P.init were fixed strings;
    each now has a rule whose other outcome (conditional, or refuted for P.init) is reachable."""
    exps = all_experiments()
    for cid in ("M.parallel", "C.fixed-size", "S.header", "M.interpretable", "C.opaque", "P.init"):
        rule = exps[cid].rule
        assert "conditional" in rule.verdicts(), cid
    assert exps["P.init"].rule.verdict == "supported"  # testable: it can be refuted


def test_apply_interval_and_reasons():
    rule = Rule("gain", supported=0.05, refuted=0.0, condition="helps a little")
    assert apply(rule, [0.1, 0.2, 0.06]) == (
        "supported",
        "the seeds' range [0.06, 0.2] clears the supported threshold 0.05",
    )
    assert apply(rule, [-0.1, -0.01]) == ("refuted", "the seeds' range [-0.1, -0.01] is past the refuted threshold 0")
    verdict, reason = apply(rule, [0.1, 0.02])
    assert verdict == "conditional" and "straddles the supported threshold 0.05" in reason
    verdict, reason = apply(rule, [0.01, -0.02])
    assert verdict == "conditional" and "straddles the refuted threshold 0" in reason
    assert apply(rule, [0.02, 0.03]) == (
        "conditional",
        "the seeds' range [0.02, 0.03] lies between the thresholds: helps a little",
    )
    assert apply(rule, [0.1, math.nan])[0] == "conditional"  # a seed without a value is no evidence
    lower = Rule("error", supported=0.1, refuted=0.25, condition="loses some")
    assert apply(lower, [0.05])[0] == "supported" and apply(lower, [0.3])[0] == "refuted"
    assert spread([1.0, 2.0, 3.0]) == {"n": 3, "mean": 2.0, "sd": 1.0, "min": 1.0, "max": 3.0}


def test_rule_is_checked_when_written():
    with pytest.raises(ValueError, match="needs its condition"):
        Rule("x", supported=1.0, refuted=0.0)
    with pytest.raises(ValueError, match="equal thresholds need higher"):
        Rule("x", supported=1.0, refuted=1.0, verdict="text error")
    with pytest.raises(ValueError, match="contradicts"):
        Rule("x", supported=1.0, refuted=0.0, condition="c", higher=False)
    with pytest.raises(TypeError, match="experiments measure, and their Rule gives the verdict"):
        Result("supported", "a verdict string is not a measurement")


def test_no_experiment_names_a_verdict():
    """The experiment modules measure; no Result carries a verdict string."""
    src = ROOT / "deepatlas" / "atlas" / "experiments"
    for path in src.glob("*.py"):
        text = path.read_text()
        assert not re.search(r"Result\(\s*\"(supported|refuted|conditional|text error|not testable)\"", text), path


def test_cache_key_follows_the_code_the_experiment_imports(monkeypatch, tmp_path):
    from deepatlas.atlas import runner

    exp = all_experiments()["M.params"]
    closure = runner.module_closure(exp.fn.__module__)
    names = {str(Path(p).relative_to(ROOT)) for p in closure if p.startswith(str(ROOT))}
    assert {"deepatlas/atlas/experiments/mlp.py", "deepatlas/models/mlp.py", "deepatlas/models/cnn.py"} <= names
    assert "deepatlas/models/base.py" in names  # imported by the models, transitively
    # Changing any file in the closure changes the key.
    fake = tmp_path / "model.py"
    fake.write_text("A = 1\n")
    monkeypatch.setattr(runner, "module_closure", lambda module: [str(fake)])
    before = runner._cache_key(exp, quick=True)
    fake.write_text("A = 2\n")
    assert runner._cache_key(exp, quick=True) != before
    assert runner._cache_key(exp, quick=False) != runner._cache_key(exp, quick=True)


def test_seed_budgets_are_declared_and_several_where_cheap():
    """Full mode: at least 5 seeds for every experiment, the application claims included (issue #30
    point 2; they shrink their per-seed budgets instead); quick mode: the seeds used, 3 or more where
    the quick report's minute allows."""
    exps = all_experiments()
    for cid, exp in exps.items():
        assert exp.seeds_for(True) and exp.seeds_for(False), cid
        assert set(exp.seeds_for(True)) <= set(exp.seeds_for(False)) or not exp.each_seed, cid
    several_quick = sum(len(e.seeds_for(True)) >= 3 for e in exps.values())
    assert several_quick >= 39, several_quick
    fewer_full = sorted(cid for cid, e in exps.items() if len(e.seeds_for(False)) < 5)
    assert fewer_full == [], fewer_full
    for cid in ("K.tuning", "K.nlp", "K.rnn-apps", "K.cv-apps", "K.cnn-apps", "K.drl-apps"):
        assert exps[cid].seeds_for(False) == (0, 1, 2, 3, 4), cid


def _readme_table() -> dict[str, int]:
    text = (ROOT / "README.md").read_text()
    row = re.search(r"^\| \*\*all\*\* \|(.*)\|$", text, flags=re.M)
    assert row, "README has no verdict table"
    cells = [int(c.strip().strip("*") or 0) for c in row.group(1).split("|")]
    return dict(
        zip(("supported", "refuted", "conditional", "not testable", "text error", "pending"), cells, strict=True)
    )


def _counts(path: Path) -> dict[str, int]:
    saved = json.loads(path.read_text())
    counts = dict.fromkeys(("supported", "refuted", "conditional", "not testable", "text error", "pending"), 0)
    for c in saved["claims"]:
        counts[c["verdict"]] += 1
    return counts


def test_readme_totals_are_read_from_the_committed_results():
    """The README's verdict table is the committed quick report (docs/atlas-results-quick.json,
    with its date and machine); its full-report totals are the committed full report's
    (docs/atlas-results.json), or, until that exists for these rules, the README says so."""
    quick, full = ROOT / "docs" / "atlas-results-quick.json", ROOT / "docs" / "atlas-results.json"
    readme = (ROOT / "README.md").read_text()
    meta = json.loads(quick.read_text())["meta"]
    assert meta["mode"] == "quick" and meta["date"] and meta["machine"] and meta["only"] is None
    assert _readme_table() == _counts(quick)
    assert len(json.loads(quick.read_text())["claims"]) == len(CLAIMS)
    if not full.exists():
        assert "The full report has not been re-run under these rules yet" in readme
        return
    meta = json.loads(full.read_text())["meta"]
    assert meta["mode"] == "full" and meta["date"] and meta["machine"] and meta["only"] is None
    line = re.search(r"Totals of the full report \(docs/atlas-results\.json\): ([^.]*)\.", readme)
    assert line, "README does not state the full report's totals"
    found = re.findall(r"(\d+) (supported|refuted|conditional|not testable|text error|pending)", line.group(1))
    assert {v: int(n) for n, v in found} == {k: v for k, v in _counts(full).items() if v}
    full_ids = [c["id"] for c in json.loads(full.read_text())["claims"]]
    assert set(full_ids) <= set(CLAIMS), "the full report names a claim that no longer exists"
    missing = [cid for cid in CLAIMS if cid not in full_ids]  # claims added after the last full run
    if missing:
        line = re.search(r"Not in the full report yet \(added after it\): (.*?)\.(?:\s|$)", readme)
        assert line and sorted(re.findall(r"[A-Z]\.[a-z-]+", line.group(1))) == sorted(missing), missing


def test_shared_fit_is_the_same_fit_across_workers(tmp_path):
    """A fit shared between experiments (C.features, C.hierarchy, C.fixed-size) is filed under its
    class, parameters, data and code; another process loads it and gets the same predictions."""
    import numpy as np

    from deepatlas.atlas import Context
    from deepatlas.atlas.experiments import _common
    from deepatlas.models.cnn import CNNClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 1, 12)).astype(np.float32)
    y = (X[:, 0, :6].sum(axis=1) > 0).astype(int)
    ctx = Context(CLAIMS["C.features"], True, (0,), tmp_path / "figures")

    def make(seed=0):
        return CNNClassifier(channels=(4,), epochs=2, seed=seed)

    assert _common.fit_key(make(), X, y) == _common.fit_key(make(), X.copy(), y.copy())
    assert _common.fit_key(make(), X, y) != _common.fit_key(make(seed=1), X, y)
    assert _common.fit_key(make(), X, y) != _common.fit_key(make(), X[:, :, :11], y)
    first = _common.shared_fit(ctx, make(), X, y)
    assert _common.shared_fit(ctx, make(), X, y) is first  # this process: the same object
    _common._FITS.clear()  # another worker: loaded from the report's cache folder
    (entry,) = (tmp_path / "cache" / "fits").iterdir()
    loaded = _common.shared_fit(ctx, make(), X, y)
    assert loaded is not first and entry.name == _common.fit_key(make(), X, y)
    np.testing.assert_array_equal(loaded.predict_proba(X), first.predict_proba(X))
    # a lock left by a worker that died mid-fit does not hold the next one up
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    key = _common.fit_key(make(seed=2), X, y)
    (tmp_path / "cache" / "fits" / f"{key}.lock").write_text(str(dead.pid))
    _common.shared_fit(ctx, make(seed=2), X, y)
    assert (tmp_path / "cache" / "fits" / key / "config.json").exists()
    assert not (tmp_path / "cache" / "fits" / f"{key}.lock").exists()

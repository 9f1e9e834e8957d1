"""The atlas report: coverage of every claim, verdicts, caching, and the page in a real browser."""

from __future__ import annotations

import html
import json
import re
import subprocess
import tempfile
from pathlib import Path

import pytest

from deepatlas.atlas import CLAIMS, VERDICTS, all_experiments
from deepatlas.atlas.rules import apply

SPINE = "P.*"


def test_every_claim_of_claims_md_has_an_entry():
    shared = Path(__file__).resolve().parents[1].parent / "shared" / "CLAIMS.md"
    if shared.exists():  # the survey's claim list lives beside the repository
        ids = set(re.findall(r"^\| ([A-Z]\.[a-z-]+) \|", shared.read_text(), flags=re.M))
        # CLAIMS.md names two rows K.cv (cross-validation, and CV applications); the second is K.cv-apps here
        assert ids | {"K.cv-apps"} == set(CLAIMS)
    assert len(CLAIMS) == 78
    assert set(all_experiments()) <= set(CLAIMS)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from deepatlas.atlas.runner import run_report

    out = tmp_path_factory.mktemp("atlas")
    results = run_report(out, quick=True, only=SPINE, progress=False)
    return out, results


def test_report_files_and_verdicts(report):
    out, results = report
    saved = json.loads((out / "results.json").read_text())
    meta, saved = saved["meta"], saved["claims"]
    assert meta["mode"] == "quick" and meta["date"] and meta["machine"]
    assert meta["jobs"] == 1 and len(meta["load_before"]) == 3 and len(meta["load_after"]) == 3  # times need the load
    assert [e["id"] for e in saved] == [cid for cid in CLAIMS if cid.startswith("P.")]
    assert all(e["seconds"] > 0 for e in saved)  # per claim: what the next run orders by (longest first)
    exps = all_experiments()
    for entry in saved:
        assert entry["verdict"] in VERDICTS
        assert entry["verdict"] != "pending", entry["summary"]
        assert entry["figure"] and (out / "figures" / entry["figure"]).stat().st_size > 1000
        # the rule as an object, the seeds actually used, one value per seed (or one pooled value)
        rule = exps[entry["id"]].rule
        assert entry["rule"]["statistic"] == rule.statistic
        assert (entry["rule"]["supported"], entry["rule"]["refuted"]) == (rule.supported, rule.refuted)
        assert entry["seeds_used"] == list(exps[entry["id"]].seeds_for(True))
        assert len(entry["values"]) in (1, len(entry["seeds_used"]))
        assert entry["spread"]["n"] == len(entry["values"])
        # the verdict is the rule's, applied by the runner to the measured values
        assert (entry["verdict"], entry["reason"]) == apply(rule, entry["values"])
    by_id = {e["id"]: e for e in saved}
    assert by_id["P.linear-only"]["verdict"] == "supported"
    assert by_id["P.linear-only"]["numbers"]["xor"] <= 0.75
    assert len(by_id["P.linear-only"]["seeds_used"]) == 3 and len(by_id["P.init"]["seeds_used"]) == 5


def test_page_agrees_with_results_json(report):
    out, _ = report
    page = (out / "index.html").read_text()
    saved = json.loads((out / "results.json").read_text())["claims"]
    for entry in saved:
        block = page[page.index(f'id="{entry["id"]}"') :]
        block = block[: block.index("</article>")]
        assert f">{entry['verdict']}</span>" in block
        assert "<b>Rule</b> (fixed before the run)" in block and html.escape(entry["rule"]["statistic"]) in block
        seeds = entry["seeds_used"]
        assert f"quick mode, {len(seeds)} seeds used: {', '.join(map(str, seeds))}" in block
        assert f"range [{entry['spread']['min']:.4g}, {entry['spread']['max']:.4g}]" in block
    assert page.count("<img ") == sum(1 for e in saved if e["figure"])
    assert "data:image/png;base64," in page  # self-contained


def test_rerun_uses_the_cache(report):
    from deepatlas.atlas.runner import run_report

    out, first = report
    again = run_report(out, quick=True, only=SPINE, progress=False)
    assert all(e["cached"] for e in again)
    assert [e["verdict"] for e in again] == [e["verdict"] for e in first]


def test_longest_experiments_start_first(tmp_path, monkeypatch):
    """The runner hands out experiments by the time they took last run into the same folder."""
    from deepatlas._io import write_json
    from deepatlas.atlas import runner

    (tmp_path / "cache").mkdir()
    for cid, seconds in (("P.fast", 0.5), ("P.init", 9.0), ("P.small", 2.0)):
        write_json(tmp_path / "cache" / f"{cid}.json", {"key": "stale", "entry": {"seconds": seconds}})
    started = []
    monkeypatch.setattr(
        runner,
        "_run_one",
        lambda cid, *a, **k: (
            started.append(cid)
            or {"verdict": "pending", "summary": "", "numbers": {}, "figure": None, "error": "not run", "seconds": 0.0}
        ),
    )
    runner.run_report(tmp_path, quick=True, only="P.*", progress=False)
    assert started[:3] == ["P.init", "P.small", "P.fast"]
    assert runner.default_jobs() >= 1
    # A full report with no previous time for a claim orders it by its declared full_seconds (an
    # application claim never run in full must not start last), and by the longer of the two otherwise.
    exps = runner.all_experiments()
    monkeypatch.setattr(exps["P.fast"], "full_seconds", 5.0)
    monkeypatch.setattr(exps["P.overfit"], "full_seconds", 50.0)
    started.clear()
    runner.run_report(tmp_path / "full", quick=False, only="P.*", progress=False)
    assert started[0] == "P.overfit" and started.index("P.fast") < started.index("P.small"), started
    assert all(e.full_seconds >= 0 for e in exps.values())
    assert exps["K.cnn-apps"].full_seconds > exps["K.tuning"].full_seconds > 0


def test_claim_without_its_models_is_pending(tmp_path, monkeypatch):
    from deepatlas.atlas import Experiment, Result, Rule
    from deepatlas.atlas.runner import run_report

    rule = Rule("x", supported=1.0, refuted=0.0, condition="c")
    fake = Experiment("S.header", lambda ctx: Result(1.0, "never run"), (0,), ("no-such-model",), rule)
    monkeypatch.setitem(all_experiments(), "S.header", fake)
    results = run_report(tmp_path, quick=True, only="S.header", progress=False)
    assert [(r["id"], r["verdict"]) for r in results] == [("S.header", "pending")]
    assert results[0]["summary"] == "Pending: needs no-such-model, not built yet."


def test_page_renders_in_headless_chromium(chromium, report):
    """Every figure decodes (naturalWidth > 0) and the page raises no script errors."""
    out, _ = report
    page = (out / "index.html").read_text()
    probe = """<script>
    window.__errors = [];
    window.addEventListener('error', e => window.__errors.push(String(e.message || e)));
    window.addEventListener('load', () => {
      const imgs = [...document.images];
      const bad = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).length;
      document.body.setAttribute('data-probe', JSON.stringify({images: imgs.length, broken: bad, errors: window.__errors}));
    });
    </script>"""
    probe_page = out / "probe.html"
    probe_page.write_text(page.replace("</head>", probe + "</head>"))
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom", probe_page.as_uri()],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        shot = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--window-size=1200,1600", f"--screenshot={out / 'screenshot.png'}",
             (out / "index.html").as_uri()],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    match = re.search(r"data-probe=\"([^\"]*)\"", proc.stdout)
    assert match, proc.stderr[-2000:]
    probe_result = json.loads(match.group(1).replace("&quot;", '"'))
    assert probe_result["images"] == 5 and probe_result["broken"] == 0 and probe_result["errors"] == []
    assert shot.returncode == 0 and (out / "screenshot.png").stat().st_size > 10000

"""Merging a re-run of some claims (``deepatlas report --only ... --merge-into FILE``) into the
committed report: entries replaced in the registry's order, the rest and the meta kept, the re-run
recorded, modes never mixed. No experiment runs here (run_report is replaced)."""

from __future__ import annotations

import json

import pytest

from deepatlas.atlas import CLAIMS
from deepatlas.atlas.runner import merge_results
from deepatlas.cli import main
from deepatlas.errors import InputError

IDS = list(CLAIMS)[:4]


def _report(mode: str, verdicts: dict[str, str], date: str = "2026-12-06 12:07 UTC", only=None) -> dict:
    meta = {"mode": mode, "quick": mode == "quick", "date": date, "only": only, "jobs": 2, "seconds": 10.0}
    meta.update(load_before=[1.0, 1.0, 1.0], load_after=[2.0, 2.0, 2.0])
    return {"meta": meta, "claims": [{"id": cid, "verdict": v, "values": [0.5]} for cid, v in verdicts.items()]}


def test_merge_replaces_the_rerun_claims_and_keeps_the_rest(tmp_path):
    into = tmp_path / "atlas-results.json"
    into.write_text(json.dumps(_report("full", dict.fromkeys(IDS[:3], "conditional"))))
    new = _report("full", {IDS[3]: "refuted", IDS[1]: "supported"}, date="2026-12-06 17:00 UTC", only="X*")
    merged = merge_results(new, into)
    assert json.loads(into.read_text()) == merged
    assert [c["id"] for c in merged["claims"]] == IDS  # the registry's order, the new claim in its place
    assert [c["verdict"] for c in merged["claims"]] == ["conditional", "supported", "conditional", "refuted"]
    meta = merged["meta"]
    assert meta["date"] == "2026-12-06 12:07 UTC" and meta["only"] is None  # the main run's meta stays
    assert meta["rerun"] == [
        {
            "ids": [IDS[3], IDS[1]],
            "date": "2026-12-06 17:00 UTC",
            "only": "X*",
            "jobs": 2,
            "seconds": 10.0,
            "load_before": [1.0, 1.0, 1.0],
            "load_after": [2.0, 2.0, 2.0],
        }
    ]
    merge_results(_report("full", {IDS[0]: "supported"}, date="2026-12-06 17:30 UTC"), into, note="why")
    rerun = json.loads(into.read_text())["meta"]["rerun"]
    assert [r["ids"] for r in rerun] == [[IDS[3], IDS[1]], [IDS[0]]] and rerun[1]["note"] == "why"


def test_merge_refuses_another_mode_or_a_file_that_is_no_report(tmp_path):
    into = tmp_path / "atlas-results.json"
    into.write_text(json.dumps(_report("full", {IDS[0]: "supported"})))
    with pytest.raises(InputError, match=r"holds a full report, but this run is quick: merge reports of one mode\.$"):
        merge_results(_report("quick", {IDS[0]: "refuted"}), into)
    assert json.loads(into.read_text())["claims"][0]["verdict"] == "supported"  # untouched
    (tmp_path / "other.json").write_text('{"claims": []}')
    with pytest.raises(InputError, match=r"^--merge-into must be an atlas results\.json\. Could not read .*KeyError"):
        merge_results(_report("full", {IDS[0]: "refuted"}), tmp_path / "other.json")


def test_cli_checks_the_target_before_running_and_merges_after(tmp_path, monkeypatch, capsys):
    import deepatlas.atlas.runner as runner

    ran = []

    def fake_run(out, *, quick, only, jobs, progress):
        ran.append(only)
        report = _report("quick" if quick else "full", {IDS[2]: "refuted"}, only=only)
        report["claims"][0]["summary"] = "measured"
        (tmp_path / "out").mkdir(exist_ok=True)
        (tmp_path / "out" / "results.json").write_text(json.dumps(report))
        return [dict(c, cached=len(ran) > 1) for c in report["claims"]]  # the second run finds the cache

    monkeypatch.setattr(runner, "run_report", fake_run)
    into = tmp_path / "atlas-results.json"
    into.write_text(json.dumps(_report("full", dict.fromkeys(IDS[:3], "conditional"))))
    argv = ["report", "--only", IDS[2], "--out", str(tmp_path / "out"), "--jobs", "1", "--merge-into", str(into)]
    assert main([*argv, "--quick"]) == 2  # refused before any experiment runs
    assert ran == [] and "this run is quick: merge reports of one mode." in capsys.readouterr().err
    assert main(argv) == 0
    assert ran == [IDS[2]] and f"merged 1 claims into {into}" in capsys.readouterr().out
    merged = json.loads(into.read_text())
    assert [c["verdict"] for c in merged["claims"]] == ["conditional", "conditional", "refuted"]
    assert "cached" not in merged["meta"]["rerun"][0]
    assert main(argv) == 0
    assert json.loads(into.read_text())["meta"]["rerun"][1]["cached"] == [IDS[2]]

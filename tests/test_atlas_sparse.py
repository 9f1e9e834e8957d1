"""The sparse-coding atlas experiments run in quick mode and give measured, non-pending verdicts."""

from __future__ import annotations

import json

from deepatlas.atlas.runner import run_report


def test_s_header_and_basis_quick(tmp_path):
    header = run_report(tmp_path, quick=True, only="S.header", progress=False)
    assert [e["id"] for e in header] == ["S.header"]
    assert header[0]["verdict"] == "text error", header[0]["summary"]
    assert header[0]["numbers"]["dbn_estimators_used"] == 0
    assert "sparse-coding" in header[0]["numbers"]["estimators_used"]

    basis = run_report(tmp_path / "b", quick=True, only="S.basis", progress=False)[0]
    assert basis["verdict"] in ("supported", "refuted"), basis["summary"]
    errors = basis["numbers"]
    assert len(errors["error_learned"]) == len(errors["ks"])
    # more non-zeros never make OMP's reconstruction worse
    assert all(a >= b for a, b in zip(errors["error_learned"], errors["error_learned"][1:]))
    assert (tmp_path / "b" / "figures" / basis["figure"]).exists()
    saved = json.loads((tmp_path / "b" / "results.json").read_text())
    assert saved[0]["verdict"] == basis["verdict"]

"""The sparse-coding atlas experiments run in quick mode and give measured, non-pending verdicts."""

from __future__ import annotations

import json

import pytest

from deepatlas.atlas import all_experiments
from deepatlas.atlas.rules import apply
from deepatlas.atlas.runner import run_report


def test_s_header_and_basis_quick(tmp_path):
    header = run_report(tmp_path, quick=True, only="S.header", progress=False)
    assert [e["id"] for e in header] == ["S.header"]
    # the text error rests on a measurement: no DBN estimator among those the section's claims use
    assert header[0]["numbers"]["dbn_estimators_used"] == 0 and header[0]["values"] == [0.0, 0.0, 0.0]
    assert "sparse-coding" in header[0]["numbers"]["estimators_used"]
    assert header[0]["verdict"] == "text error", header[0]["summary"]
    rule = all_experiments()["S.header"].rule
    assert apply(rule, [0.5])[0] == "conditional"  # had a DBN estimator been used, the verdict would flip

    basis = run_report(tmp_path / "b", quick=True, only="S.basis", progress=False)[0]
    errors = basis["numbers"]
    # The statistic is the worse fixed basis's error over the learned dictionary's, at k = 4 (first seed's numbers)
    assert basis["values"][0] == pytest.approx(
        min(errors["dct_over_learned_k4"], errors["random_over_learned_k4"]), abs=1e-3
    )
    # Measured: random atoms reconstruct patches worse than a learned dictionary on every seed, and the
    # verdict is what the rule says of these values (the rule's own reachability is tested in test_atlas_rules)
    assert all(v > 1.0 for v in basis["values"]), basis["values"]
    assert errors["random_over_learned_k4"] > 1.3
    assert (basis["verdict"], basis["reason"]) == apply(all_experiments()["S.basis"].rule, basis["values"])
    assert len(errors["error_learned"]) == len(errors["ks"])
    # more non-zeros never make OMP's reconstruction worse
    assert all(a >= b for a, b in zip(errors["error_learned"], errors["error_learned"][1:]))
    assert (tmp_path / "b" / "figures" / basis["figure"]).exists()
    saved = json.loads((tmp_path / "b" / "results.json").read_text())["claims"]
    assert saved[0]["verdict"] == basis["verdict"] and saved[0]["seeds_used"] == [0, 1, 2]

"""K.transfer's verdict rule on hand-made accuracies: MNIST-1D and, in the full report, Fashion-MNIST
(issue #19, point 8). Cheap: no model is trained here."""

from __future__ import annotations

import pytest

from deepatlas.atlas import all_experiments
from deepatlas.atlas.experiments.knowledge import _fashion_part, error_reduction, transfer_statistic
from deepatlas.atlas.rules import apply


def _verdict(seeds: list[dict[str, tuple[float, float]]]) -> tuple[str, str]:
    rule = all_experiments()["K.transfer"].rule
    return apply(rule, [transfer_statistic(parts) for parts in seeds])


def test_error_reduction_is_the_share_of_scratch_errors_removed():
    assert error_reduction(0.95, 0.90) == pytest.approx(0.5)  # 10 errors in 100 -> 5
    assert error_reduction(0.40, 0.37) == pytest.approx(0.03 / 0.63)
    assert error_reduction(0.88, 0.90) == pytest.approx(-0.2)
    assert error_reduction(1.0, 1.0) == 0.0
    assert error_reduction(0.99, 1.0) == -1.0


def test_the_smaller_data_set_decides():
    parts = {"mnist1d": (0.60, 0.40), "fashion": (0.944, 0.929)}  # 1/3 and 0.211 of the errors removed
    assert transfer_statistic(parts) == pytest.approx(0.015 / 0.071)
    assert transfer_statistic({"mnist1d": (0.60, 0.40)}) == pytest.approx(1 / 3)


def test_supported_when_both_data_sets_lose_a_tenth_of_their_errors_on_every_seed():
    seeds = [{"mnist1d": (0.50 + i / 100, 0.37), "fashion": (0.944, 0.929)} for i in range(5)]
    verdict, reason = _verdict(seeds)
    assert verdict == "supported", reason


def test_refuted_when_transfer_trails_scratch_on_fashion_on_every_seed():
    # MNIST-1D far ahead, Fashion-MNIST behind on all five seeds: the general claim fails
    seeds = [{"mnist1d": (0.60, 0.37), "fashion": (0.925 - i / 1000, 0.930)} for i in range(5)]
    verdict, reason = _verdict(seeds)
    assert verdict == "refuted", reason
    assert "past the refuted threshold 0" in reason


def test_conditional_when_a_seed_gains_less_than_a_tenth():
    # session 8's MNIST-1D numbers at 2 % (seeds 0 and 4): 3.6 % and 26 % of scratch's errors removed
    seeds = [{"mnist1d": (0.3955, 0.3732), "fashion": (0.944, 0.929)}, {"mnist1d": (0.55, 0.3857)}]
    verdict, reason = _verdict(seeds)
    assert verdict == "conditional" and "straddles the supported threshold 0.1" in reason, reason
    seeds = [{"mnist1d": (0.60, 0.40), "fashion": (0.932, 0.929)}] * 5  # 4 % of Fashion's errors on every seed
    verdict, reason = _verdict(seeds)
    assert verdict == "conditional" and "between the thresholds" in reason, reason


def test_without_fashion_mnist_the_part_says_so(monkeypatch):
    import deepatlas.data.fashion

    monkeypatch.setattr(deepatlas.data.fashion, "available", lambda path=None: False)
    assert _fashion_part(None) == {
        "absent": "Fashion-MNIST's IDX files are not installed (Debian's dataset-fashion-mnist)"
    }

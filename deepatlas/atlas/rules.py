"""Verdict rules as data: what an experiment measures, and which values support or refute its claim.

A rule is written before the numbers, in the experiment's ``@experiment(..., rule=Rule(...))``;
the experiment only measures (one value of the statistic per seed) and :func:`apply` turns the
values into the verdict. The seeds' range is the interval: a claim is ``supported`` only when
every seed clears the supported threshold, ``refuted`` only when every seed clears the refuted
one; a range that straddles a threshold, or values in the band between the two thresholds, give
``conditional`` with that reason (the band's ``condition`` names what the claim then depends on).

``text error`` and ``not testable`` rules classify the claim's wording rather than test it: their
statistic is the evidence the classification rests on, ``supported`` is where that evidence holds
(every seed at or beyond it gives the rule's ``verdict``), and anything short of it turns the
verdict into ``conditional`` -- the measurement disagreed with the argument.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass

CLAIM_VERDICT = "supported"
LABEL_VERDICTS = ("text error", "not testable")


@dataclass(frozen=True)
class Rule:
    statistic: str  # what one seed's value is, in words, with its unit
    supported: float  # every seed at or beyond this (in the supporting direction): the claim holds
    refuted: float  # every seed at or beyond this (in the other direction): the claim fails
    condition: str = ""  # what a value between the two thresholds means, for `conditional`
    verdict: str = CLAIM_VERDICT  # "supported" for a testable claim; "text error"/"not testable" to classify
    higher: bool | None = None  # does a higher value support? (needed only when the thresholds are equal)

    def __post_init__(self) -> None:
        if self.verdict not in (CLAIM_VERDICT, *LABEL_VERDICTS):
            raise ValueError(f"Rule.verdict must be one of supported, text error, not testable. Got {self.verdict!r}.")
        if self.supported == self.refuted and self.higher is None:
            raise ValueError(f"Rule for {self.statistic!r}: equal thresholds need higher=True or False.")
        if (
            self.supported != self.refuted
            and self.higher is not None
            and self.higher != (self.supported > self.refuted)
        ):
            raise ValueError(f"Rule for {self.statistic!r}: higher={self.higher} contradicts the thresholds.")
        if self.supported != self.refuted and not self.condition:
            raise ValueError(f"Rule for {self.statistic!r}: a band between the thresholds needs its condition.")

    @property
    def higher_supports(self) -> bool:
        return self.higher if self.higher is not None else self.supported > self.refuted

    def verdicts(self) -> tuple[str, ...]:
        """Every verdict this rule can give."""
        if self.verdict != CLAIM_VERDICT:
            return (self.verdict, "conditional")
        return ("supported", "conditional", "refuted")

    def as_dict(self) -> dict:
        d = asdict(self)
        d["direction"] = "higher supports" if self.higher_supports else "lower supports"
        d.pop("higher")
        return d

    def describe(self) -> str:
        ge, le = ("≥", "≤") if self.higher_supports else ("≤", "≥")
        head = f"{self.statistic}: "
        if self.verdict != CLAIM_VERDICT:
            return head + f"{self.verdict} if every seed {ge} {self.supported:g}, otherwise conditional"
        band = f"; between them conditional ({self.condition})" if self.supported != self.refuted else ""
        return (
            head + f"supported if every seed {ge} {self.supported:g}, refuted if every seed {le} {self.refuted:g}{band}"
        )


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def apply(rule: Rule, values: list[float]) -> tuple[str, str]:
    """The verdict for these per-seed values under ``rule``, and the reason in one sentence."""
    if not values or any(v is None or not math.isfinite(v) for v in values):
        return "conditional", f"a seed gave no finite value of the statistic ({values})"
    s = 1.0 if rule.higher_supports else -1.0
    sup = [s * v >= s * rule.supported for v in values]
    ref = [s * v <= s * rule.refuted for v in values]
    lo, hi = min(values), max(values)
    span = f"{_fmt(lo)}" if lo == hi else f"the seeds' range [{_fmt(lo)}, {_fmt(hi)}]"
    if all(sup):
        return (
            rule.verdict,
            f"{span} clears the {'supported' if rule.verdict == CLAIM_VERDICT else rule.verdict} threshold {_fmt(rule.supported)}",
        )
    if rule.verdict != CLAIM_VERDICT:
        why = "straddles" if any(sup) else "falls short of"
        return (
            "conditional",
            f"{span} {why} the {rule.verdict} threshold {_fmt(rule.supported)}: the measurement disagrees with the argument",
        )
    if all(ref):
        return "refuted", f"{span} is past the refuted threshold {_fmt(rule.refuted)}"
    if any(sup):
        return "conditional", f"{span} straddles the supported threshold {_fmt(rule.supported)}"
    if any(ref):
        return "conditional", f"{span} straddles the refuted threshold {_fmt(rule.refuted)}"
    return "conditional", f"{span} lies between the thresholds: {rule.condition}"


def spread(values: list[float]) -> dict:
    """Mean, standard deviation and range of the per-seed values (for the page and results.json)."""
    vals = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return {"n": 0}
    return {
        "n": len(vals),
        "mean": round(statistics.fmean(vals), 4),
        "sd": round(statistics.stdev(vals), 4) if len(vals) > 1 else None,
        "min": round(min(vals), 4),
        "max": round(max(vals), 4),
    }

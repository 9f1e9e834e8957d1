"""The atlas: every claim of the survey as a seeded experiment with a measured verdict.

An experiment is a small function registered under its claim ID with the rule that will judge
it (see :mod:`deepatlas.atlas.runner` for the full recipe)::

    @experiment("P.linear-only", rule=Rule("XOR test accuracy", supported=0.75, refuted=0.9,
                                          higher=None, condition="..."), requires=("perceptron",))
    def _(ctx):
        ...train real estimators through the public API with seed=ctx.seed...
        return Result(value, "what was measured, in one sentence", numbers={...}, figure=ctx.save(fig))

The experiment measures; it never names a verdict. ``ctx.quick`` asks for the small version
(``deepatlas report --quick``, used by the tests). Modules in ``deepatlas/atlas/experiments/``
are discovered on first use, so a family adds its experiments by adding a file. Claims without an
experiment, or whose family is not built, show as ``pending``.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepatlas.atlas.claims import CLAIMS, FAMILIES, Claim
from deepatlas.atlas.rules import Rule

VERDICTS = ("supported", "refuted", "conditional", "not testable", "text error", "pending")


@dataclass
class Result:
    """What an experiment measured: ``value`` is the rule's statistic -- one number for the
    current seed (the default, ``each_seed=True``), or, for an experiment that loops over
    ``ctx.seeds`` itself, a list with one value per seed (or one value pooled over all of them)."""

    value: float | list[float]
    summary: str
    numbers: dict[str, Any] = field(default_factory=dict)
    figure: str | None = None  # file name inside the report's figures/ folder

    def __post_init__(self) -> None:
        if isinstance(self.value, str):
            raise TypeError(
                f"Result.value must be the rule's statistic (a number or a list of numbers). Got the string "
                f"{self.value!r}: experiments measure, and their Rule gives the verdict."
            )


@dataclass
class Experiment:
    claim_id: str
    fn: Callable[[Context], Result]
    seeds: tuple[int, ...]  # the full report's seeds
    requires: tuple[str, ...]  # registry names the experiment needs
    rule: Rule | None = None
    quick_seeds: tuple[int, ...] | None = None  # the quick report's seeds (default: the full ones)
    each_seed: bool = True  # the runner calls fn once per seed (ctx.seed); False: fn loops over ctx.seeds
    full_seconds: float = 0.0  # expected full-report CPU seconds (all seeds), to order a first run; 0: unknown

    def seeds_for(self, quick: bool) -> tuple[int, ...]:
        return tuple(self.quick_seeds) if quick and self.quick_seeds is not None else tuple(self.seeds)


class Context:
    """What an experiment gets: the mode, its seeds, and a place for its figure."""

    def __init__(self, claim: Claim, quick: bool, seeds: tuple[int, ...], figures_dir: Path) -> None:
        self.claim = claim
        self.quick = quick
        self.seeds = seeds
        self.seed = seeds[0] if seeds else 0  # the seed of this call (each_seed experiments)
        self.figures_dir = figures_dir
        self.draw = True  # False on the later seeds of an each_seed experiment: only the first saves its figure

    def pick(self, quick_value, full_value):
        """``quick_value`` under ``--quick``, else ``full_value``."""
        return quick_value if self.quick else full_value

    def figure(self, *args, **kwargs):
        from deepatlas.plotting import new_figure

        return new_figure(*args, **kwargs)

    def save(self, fig) -> str:
        from deepatlas.plotting import save_figure

        name = self.claim.id.replace(".", "_") + ".png"
        if not self.draw:
            import matplotlib.pyplot as plt

            plt.close(fig)
            return name
        save_figure(fig, self.figures_dir / name, dpi=90)
        return name


_EXPERIMENTS: dict[str, Experiment] = {}
_loaded = False


def experiment(
    claim_id: str,
    *,
    rule: Rule,
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4),
    quick_seeds: tuple[int, ...] | None = (0, 1, 2),
    each_seed: bool = True,
    requires: tuple[str, ...] = (),
    full_seconds: float = 0.0,
):
    """Register ``fn(ctx) -> Result`` as the experiment for ``claim_id``, judged by ``rule``."""
    if claim_id not in CLAIMS:
        raise KeyError(f"unknown claim ID {claim_id!r}")
    if not isinstance(rule, Rule):
        raise TypeError(f"experiment {claim_id}: rule must be a Rule. Got {type(rule).__name__} instead.")

    def decorate(fn):
        _EXPERIMENTS[claim_id] = Experiment(
            claim_id,
            fn,
            tuple(seeds),
            tuple(requires),
            rule,
            None if quick_seeds is None else tuple(quick_seeds),
            each_seed,
            float(full_seconds),
        )
        return fn

    return decorate


def all_experiments() -> dict[str, Experiment]:
    global _loaded
    if not _loaded:
        _loaded = True
        pkg = importlib.import_module("deepatlas.atlas.experiments")
        for info in pkgutil.iter_modules(pkg.__path__):
            if not info.name.startswith("_"):
                try:
                    importlib.import_module(f"{pkg.__name__}.{info.name}")
                except Exception as exc:  # one broken family must not take the whole atlas down
                    BROKEN_MODULES[info.name] = f"{type(exc).__name__}: {exc}"
    return _EXPERIMENTS


BROKEN_MODULES: dict[str, str] = {}


__all__ = ["CLAIMS", "FAMILIES", "Claim", "Context", "Result", "Rule", "VERDICTS", "experiment", "all_experiments"]

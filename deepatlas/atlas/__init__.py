"""The atlas: every claim of the survey as a seeded experiment with a measured verdict.

An experiment is a small function registered under its claim ID::

    @experiment("P.linear-only", seeds=(0,))
    def _(ctx):
        ...train real estimators through the public API...
        return Result("supported", "why, in one sentence", numbers={...}, figure=ctx.save(fig))

``ctx.quick`` asks for the small version (``deepatlas report --quick``, used by the tests).
Modules in ``deepatlas/atlas/experiments/`` are discovered on first use, so a family adds its
experiments by adding a file. Claims without an experiment, or whose family is not built, show
as ``pending``.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepatlas.atlas.claims import CLAIMS, FAMILIES, Claim

VERDICTS = ("supported", "refuted", "conditional", "not testable", "text error", "pending")


@dataclass
class Result:
    verdict: str
    summary: str
    numbers: dict[str, Any] = field(default_factory=dict)
    figure: str | None = None  # file name inside the report's figures/ folder

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}. Got {self.verdict!r} instead.")


@dataclass
class Experiment:
    claim_id: str
    fn: Callable[[Context], Result]
    seeds: tuple[int, ...]
    requires: tuple[str, ...]  # registry names the experiment needs


class Context:
    """What an experiment gets: the mode, its seeds, and a place for its figure."""

    def __init__(self, claim: Claim, quick: bool, seeds: tuple[int, ...], figures_dir: Path) -> None:
        self.claim = claim
        self.quick = quick
        self.seeds = seeds
        self.figures_dir = figures_dir

    def pick(self, quick_value, full_value):
        """``quick_value`` under ``--quick``, else ``full_value``."""
        return quick_value if self.quick else full_value

    def figure(self, *args, **kwargs):
        from deepatlas.plotting import new_figure

        return new_figure(*args, **kwargs)

    def save(self, fig) -> str:
        from deepatlas.plotting import save_figure

        name = self.claim.id.replace(".", "_") + ".png"
        save_figure(fig, self.figures_dir / name, dpi=90)
        return name


_EXPERIMENTS: dict[str, Experiment] = {}
_loaded = False


def experiment(claim_id: str, *, seeds: tuple[int, ...] = (0,), requires: tuple[str, ...] = ()):
    """Register ``fn(ctx) -> Result`` as the experiment for ``claim_id``."""
    if claim_id not in CLAIMS:
        raise KeyError(f"unknown claim ID {claim_id!r}")

    def decorate(fn):
        _EXPERIMENTS[claim_id] = Experiment(claim_id, fn, tuple(seeds), tuple(requires))
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


__all__ = ["CLAIMS", "FAMILIES", "Claim", "Context", "Result", "VERDICTS", "experiment", "all_experiments"]

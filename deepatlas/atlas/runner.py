"""Run the atlas experiments (cached, optionally in parallel) and write the report.

How to write an experiment with a rule
--------------------------------------
1. Write the rule first, as data, before looking at any number (``deepatlas.atlas.Rule``)::

       RULE = Rule(
           "test-accuracy gain of the CNN over the MLP (points)",  # the statistic, one value per seed
           supported=0.05,   # every seed at or above: supported
           refuted=0.0,      # every seed at or below: refuted (the claim is wrong, not just weak)
           condition="the CNN helps a little, within noise",  # what the band in between means
       )

   A lower-is-better statistic swaps the thresholds (``supported < refuted``). Equal thresholds
   need ``higher=True/False``. For a claim the atlas classifies as a ``text error`` or ``not
   testable``, set ``verdict="text error"``: the statistic is the evidence the classification
   rests on, and a measurement short of ``supported`` turns the verdict into ``conditional``.

2. Register the experiment with it, in a module of ``deepatlas/atlas/experiments/``::

       @experiment("C.features", rule=RULE, requires=("cnn", "mlp"),
                   seeds=(0, 1, 2, 3, 4), quick_seeds=(0, 1, 2))
       def c_features(ctx):
           ds = load_dataset("digits", seed=ctx.seed)
           cnn = CNNClassifier(epochs=ctx.pick(5, 30), seed=ctx.seed).fit(ds.X_train, ds.y_train)
           ...
           return Result(gain, f"CNN {a:.0%} vs MLP {b:.0%}", numbers={...}, figure=ctx.save(fig))

   By default (``each_seed=True``) the runner calls the function once per seed of the mode, with
   ``ctx.seed`` set; every model and split must take its seed from ``ctx.seed``. Only the first
   seed's figure is saved and its summary and numbers shown; the verdict uses every seed's value,
   so a later seed (``ctx.draw`` is False) may skip the fits that only feed the figure or the
   summary (A.limited, K.transfer). Two experiments that train the same network share the fit
   through ``experiments._common.shared_fit`` (keyed by class, parameters, data and code).
   An experiment whose statistic needs all seeds at once (a failure rate over restarts, a spread
   over resamplings) sets ``each_seed=False``, loops over ``ctx.seeds`` itself and returns a list
   of per-seed values (or one pooled value).

3. Never return a verdict: the runner applies the rule (``deepatlas.atlas.rules.apply``). The
   seeds' range is the interval, so every seed must clear a threshold; a range straddling one is
   ``conditional`` with that reason. Keep the quick mode cheap (the whole quick report should stay
   near a minute): give a heavy experiment ``quick_seeds=(0,)`` and say so in its docstring.
   ``tests/test_atlas.py`` feeds every registered rule synthetic values and checks that each of its
   verdicts is reachable.
"""

from __future__ import annotations

import ast
import fnmatch
import functools
import hashlib
import importlib.util
import json
import platform
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from datetime import UTC, datetime
from pathlib import Path

from deepatlas import __version__
from deepatlas._io import read_json, write_json
from deepatlas._optional import MissingExtra
from deepatlas.atlas import CLAIMS, Context, Result, all_experiments
from deepatlas.atlas.rules import apply, spread


@functools.cache
def _module_file(name: str) -> str | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    return spec.origin if spec and spec.origin and spec.origin.endswith(".py") else None


@functools.cache
def _imports(path: str) -> tuple[str, ...]:
    """The deepatlas modules a source file imports (anywhere in it, function bodies included)."""
    tree = ast.parse(Path(path).read_bytes())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)  # `from pkg import module`
    return tuple(sorted(n for n in names if n == "deepatlas" or n.startswith("deepatlas.")))


def module_closure(module: str) -> list[str]:
    """Files of ``module`` and of every deepatlas module it imports, transitively (each package's
    ``__init__`` included)."""
    seen: dict[str, str] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        path = _module_file(name)
        seen[name] = path or ""
        if path:
            todo.extend(_imports(path))
    return sorted({p for p in seen.values() if p})


def _model_modules(exp) -> list[str]:
    from deepatlas.registry import get_model_class

    mods = []
    for name in exp.requires:
        try:
            mods.append(get_model_class(name).__module__)
        except Exception:  # an unknown name: the entry is pending anyway
            continue
    return mods


def _cache_key(exp, quick: bool) -> str:
    """Changes whenever the experiment's source, any deepatlas module it or its required models
    import, its mode, seeds or rule, or the package version do."""
    files = set(module_closure(exp.fn.__module__))
    for mod in _model_modules(exp):
        files.update(module_closure(mod))
    digest = hashlib.sha256()
    meta = [
        exp.claim_id,
        exp.fn.__name__,
        quick,
        list(exp.seeds_for(quick)),
        exp.each_seed,
        repr(exp.rule),
        __version__,
    ]
    digest.update(json.dumps(meta).encode())
    for f in sorted(files):
        digest.update(f.encode() + b"\0" + Path(f).read_bytes())
    return digest.hexdigest()[:16]


def _missing_requirements(exp) -> list[str]:
    from deepatlas.registry import list_models

    known = set(list_models())
    return [name for name in exp.requires if name not in known]


def _run_one(claim_id: str, quick: bool, figures_dir: str, threads: int | None = None) -> dict:
    """Run one experiment in this process; never raises (a crash becomes a pending entry)."""
    import torch

    # Experiments train small models, where extra threads only spin; one thread each (restored).
    previous = torch.get_num_threads()
    torch.set_num_threads(threads or 1)
    try:
        return _run_one_inner(claim_id, quick, figures_dir)
    finally:
        torch.set_num_threads(previous)


def _measure(exp, ctx) -> Result:
    result = exp.fn(ctx)
    if not isinstance(result, Result):
        raise TypeError(f"experiment {exp.claim_id} returned {type(result).__name__}, not Result")
    return result


def _run_one_inner(claim_id: str, quick: bool, figures_dir: str) -> dict:
    exp = all_experiments()[claim_id]
    seeds = exp.seeds_for(quick)
    start = time.perf_counter()
    try:
        if exp.each_seed:
            values, first = [], None
            for i, seed in enumerate(seeds):
                ctx = Context(CLAIMS[claim_id], quick, (seed,), Path(figures_dir))
                ctx.draw = i == 0
                res = _measure(exp, ctx)
                if isinstance(res.value, (list, tuple)):
                    raise TypeError(f"experiment {claim_id} runs once per seed and must return one value, not a list")
                values.append(float(res.value))
                first = first or res
            result = first
        else:
            result = _measure(exp, Context(CLAIMS[claim_id], quick, seeds, Path(figures_dir)))
            raw = result.value if isinstance(result.value, (list, tuple)) else [result.value]
            values = [float(v) for v in raw]
            if len(values) not in (1, len(seeds)):
                raise ValueError(f"experiment {claim_id} returned {len(values)} values for {len(seeds)} seeds")
        verdict, reason = apply(exp.rule, values)
        entry = {
            "verdict": verdict,
            "reason": reason,
            "summary": result.summary,
            "numbers": result.numbers,
            "figure": result.figure,
            "values": [round(v, 6) for v in values],
            "spread": spread(values),
            # each_seed: the summary, numbers and figure are the first seed's; the verdict uses every seed
            "shown_seed": seeds[0] if exp.each_seed and len(seeds) > 1 else None,
        }
        entry["error"] = None
    except MissingExtra as exc:  # e.g. K.tuning without Optuna: pending, not failed (and not cached)
        entry = {"verdict": "pending", "summary": f"Pending: {exc}.", "numbers": {}, "figure": None, "error": str(exc)}
    except Exception as exc:  # an experiment bug must not sink the whole report
        entry = {
            "verdict": "pending",
            "summary": f"The experiment failed: {type(exc).__name__}: {exc}",
            "numbers": {},
            "figure": None,
            "error": traceback.format_exc(limit=5),
        }
    entry["seconds"] = round(time.perf_counter() - start, 2)
    return entry


def machine() -> str:
    """The machine in words, for results.json (CPU model and core count)."""
    import os

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


SAVED_KEYS = ("verdict", "reason", "summary", "numbers", "figure", "values", "spread", "shown_seed", "seconds")
RESULT_KEYS = (
    "id",
    "family",
    "verdict",
    "reason",
    "rule",
    "values",
    "spread",
    "seeds_used",
    "shown_seed",
    "summary",
    "numbers",
    "figure",
    "seconds",
)


def _previous_seconds(cache: Path, cid: str) -> float:
    """How long ``cid`` took the last time it ran into this folder (its cache entry, even a stale
    one), to start the longest experiments first; 0 when unknown."""
    try:
        return float(read_json(cache / f"{cid}.json")["entry"].get("seconds") or 0.0)
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


def _load() -> list[float] | None:
    import os

    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def default_jobs() -> int:
    """The CPUs this process may run on: ``deepatlas report``'s default ``--jobs``."""
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def run_report(
    out: str | Path, *, quick: bool = False, only: str | None = None, jobs: int = 1, progress: bool = True
) -> list[dict]:
    """Run every claim's experiment (or those whose ID matches ``only``), write
    ``out/results.json`` and ``out/index.html``; return the result entries."""
    from deepatlas.atlas.html import write_html

    out = Path(out)
    figures, cache = out / "figures", out / "cache"
    figures.mkdir(parents=True, exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    exps = all_experiments()
    from deepatlas.atlas import BROKEN_MODULES

    for name, error in BROKEN_MODULES.items():
        print(f"warning: atlas experiments module {name!r} failed to import: {error}", file=sys.stderr)
    ids = [cid for cid in CLAIMS if only is None or fnmatch.fnmatch(cid, only) or only in cid]
    entries: dict[str, dict] = {}
    todo: list[str] = []
    for cid in ids:
        claim = CLAIMS[cid]
        base = {"id": cid, "family": claim.family, "claim": claim.text, "experiment": claim.experiment}
        exp = exps.get(cid)
        missing = _missing_requirements(exp) if exp else []
        if exp is None or missing:
            why = f"needs {', '.join(missing)}, not built yet" if missing else "no experiment written yet"
            entries[cid] = {
                **base,
                "verdict": "pending",
                "summary": f"Pending: {why}.",
                "numbers": {},
                "figure": None,
                "seeds_used": [],
                "rule": None,
                "seconds": 0.0,
                "cached": False,
            }
            continue
        base["rule"] = exp.rule.as_dict() if exp.rule else None
        base["rule_text"] = exp.rule.describe() if exp.rule else ""
        base["seeds_used"] = list(exp.seeds_for(quick))
        key = _cache_key(exp, quick)
        cached = cache / f"{cid}.json"
        if cached.exists():
            saved = read_json(cached)
            figure = saved["entry"].get("figure")
            if saved.get("key") == key and (figure is None or (figures / figure).exists()):
                entries[cid] = {**base, **saved["entry"], "cached": True}
                continue
        entries[cid] = {**base, "key": key}
        todo.append(cid)

    # Longest first (the longer of the time measured by the previous run into this folder and, in the
    # full report, the experiment's declared full_seconds): with several workers the report then ends
    # when its longest experiment does, not one experiment later (an application claim never run in
    # full, or much grown since, would otherwise start last).
    def expected(cid: str) -> float:
        return max(_previous_seconds(cache, cid), 0.0 if quick else exps[cid].full_seconds)

    todo.sort(key=lambda cid: -expected(cid))
    load_before = _load()
    start = time.perf_counter()
    done = len(ids) - len(todo)

    def record(cid: str, entry: dict) -> None:
        nonlocal done
        done += 1
        key = entries[cid].pop("key")
        entries[cid].update(entry, cached=False)
        if entry.get("error") is None:
            write_json(
                cache / f"{cid}.json",
                {"key": key, "entry": {k: entry.get(k) for k in SAVED_KEYS}},
            )
        if progress:
            print(
                f"[{done:>2}/{len(ids)}] {cid:<20} {entry['verdict']:<13} {entry['seconds']:6.1f} s",
                file=sys.stderr,
                flush=True,
            )

    if jobs > 1 and len(todo) > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(_run_one, cid, quick, str(figures), 1): cid for cid in todo}
            for fut in as_completed(futures):  # cached as each finishes: an interrupted run keeps its work
                record(futures[fut], fut.result())
    else:
        for cid in todo:
            record(cid, _run_one(cid, quick, str(figures)))

    results = [entries[cid] for cid in ids]
    for e in results:
        e.pop("key", None)
    elapsed = time.perf_counter() - start
    meta = {
        "mode": "quick" if quick else "full",
        "quick": quick,
        "version": __version__,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "jobs": jobs,
        "seconds": round(elapsed, 1),
        "only": only,
        # 1-, 5- and 15-minute load averages before and after the run: times are only comparable
        # between runs on an equally loaded machine
        "load_before": load_before,
        "load_after": _load(),
    }
    write_json(out / "results.json", {"meta": meta, "claims": [{k: e.get(k) for k in RESULT_KEYS} for e in results]})
    write_html(out / "index.html", results, figures, meta)
    return results


def read_merge_target(into: str | Path, quick: bool) -> dict:
    """The committed report ``into`` that a run of this mode will be merged into, or one line
    saying why it cannot be (checked before the run, so that no run is wasted)."""
    from deepatlas.errors import InputError

    try:
        old = read_json(into)
        old["meta"]["mode"], old["claims"][0]["id"]  # noqa: B018 (the shape of a results.json)
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise InputError(
            f"--merge-into must be an atlas results.json. Could not read {str(into)!r}: {type(exc).__name__}: {exc}"
        ) from None
    if bool(old["meta"].get("quick")) != quick:
        raise InputError(
            f"--merge-into {str(into)!r} holds a {old['meta']['mode']} report, but this run is "
            f"{'quick' if quick else 'full'}: merge reports of one mode."
        )
    return old


def merge_results(new: dict, into: str | Path, note: str = "", cached: list[str] | tuple[str, ...] = ()) -> dict:
    """Put the claims of ``new`` (a report's results.json, usually of ``--only``) into the committed
    report ``into``, in the claim registry's order, and write it back: ``into`` keeps its own meta
    (the run most entries come from), and ``meta.rerun`` gains one entry naming the claims replaced,
    when, and the re-run's timing and load (each claim's own ``seconds`` stays in its entry). Both
    must be of one mode: a quick entry in a full report would mix budgets. ``cached`` names the
    claims the run took from its folder's cache (measured by an earlier run into that folder, whose
    date, timing and load the entry then does not give)."""
    old = read_merge_target(into, bool(new["meta"].get("quick")))
    by_id = {c["id"]: c for c in old["claims"]}
    replaced = [c["id"] for c in new["claims"]]
    by_id.update({c["id"]: c for c in new["claims"]})
    order = [cid for cid in CLAIMS if cid in by_id] + [cid for cid in by_id if cid not in CLAIMS]
    run = new["meta"]
    entry = {"ids": replaced, "date": run.get("date"), "only": run.get("only"), "jobs": run.get("jobs")}
    entry.update(seconds=run.get("seconds"), load_before=run.get("load_before"), load_after=run.get("load_after"))
    if cached:
        entry["cached"] = list(cached)
    if note:
        entry["note"] = note
    meta = dict(old["meta"], rerun=[*old["meta"].get("rerun", []), entry])
    merged = {"meta": meta, "claims": [by_id[cid] for cid in order]}
    write_json(into, merged)
    return merged

"""Run the atlas experiments (cached, optionally in parallel) and write the report."""

from __future__ import annotations

import fnmatch
import hashlib
import inspect
import json
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from deepatlas import __version__
from deepatlas._io import read_json, write_json
from deepatlas._optional import MissingExtra
from deepatlas.atlas import CLAIMS, Context, Result, all_experiments


def _cache_key(exp, quick: bool) -> str:
    """Changes whenever the experiment's module source, its mode, seeds or the package version do."""
    source = Path(inspect.getsourcefile(exp.fn)).read_bytes()
    blob = json.dumps([exp.claim_id, exp.fn.__name__, quick, list(exp.seeds), __version__]).encode() + source
    return hashlib.sha256(blob).hexdigest()[:16]


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


def _run_one_inner(claim_id: str, quick: bool, figures_dir: str) -> dict:
    exp = all_experiments()[claim_id]
    ctx = Context(CLAIMS[claim_id], quick, exp.seeds, Path(figures_dir))
    start = time.perf_counter()
    try:
        result = exp.fn(ctx)
        if not isinstance(result, Result):
            raise TypeError(f"experiment {claim_id} returned {type(result).__name__}, not Result")
        entry = {
            "verdict": result.verdict,
            "summary": result.summary,
            "numbers": result.numbers,
            "figure": result.figure,
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
                "seeds": [],
                "seconds": 0.0,
                "cached": False,
            }
            continue
        key = _cache_key(exp, quick)
        cached = cache / f"{cid}.json"
        if cached.exists():
            saved = read_json(cached)
            figure = saved["entry"].get("figure")
            if saved.get("key") == key and (figure is None or (figures / figure).exists()):
                entries[cid] = {**base, **saved["entry"], "seeds": list(exp.seeds), "cached": True}
                continue
        entries[cid] = {**base, "seeds": list(exp.seeds), "key": key}
        todo.append(cid)

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
                {"key": key, "entry": {k: entry[k] for k in ("verdict", "summary", "numbers", "figure", "seconds")}},
            )
        if progress:
            print(
                f"[{done:>2}/{len(ids)}] {cid:<20} {entry['verdict']:<13} {entry['seconds']:6.1f} s",
                file=sys.stderr,
                flush=True,
            )

    if jobs > 1 and len(todo) > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = {cid: pool.submit(_run_one, cid, quick, str(figures), 1) for cid in todo}
            for cid, fut in futures.items():
                record(cid, fut.result())
    else:
        for cid in todo:
            record(cid, _run_one(cid, quick, str(figures)))

    results = [entries[cid] for cid in ids]
    for e in results:
        e.pop("key", None)
    elapsed = time.perf_counter() - start
    meta = {"quick": quick, "version": __version__, "seconds": round(elapsed, 1)}
    write_json(
        out / "results.json",
        [{k: e.get(k) for k in ("id", "family", "verdict", "summary", "numbers", "figure", "seeds")} for e in results],
    )
    write_html(out / "index.html", results, figures, meta)
    return results

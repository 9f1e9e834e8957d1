"""The atlas page: one self-contained HTML file (figures embedded), a verdict table on top and a
section per family."""

from __future__ import annotations

import base64
import html
import json
from collections import Counter
from pathlib import Path

from deepatlas._io import atomic_write_text
from deepatlas.atlas import FAMILIES, VERDICTS

COLOURS = {
    "supported": "#2e7d32",
    "refuted": "#c62828",
    "conditional": "#ef6c00",
    "not testable": "#6a6a6a",
    "text error": "#6a1b9a",
    "pending": "#9e9e9e",
}

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1100px;padding:1.5em;color:#222;line-height:1.45}
h1{margin-bottom:.2em} .sub{color:#555;margin-top:0}
table.summary{border-collapse:collapse;margin:1em 0;font-size:.92em}
table.summary th,table.summary td{border:1px solid #ddd;padding:.3em .6em;text-align:center}
table.summary td:first-child,table.summary th:first-child{text-align:left}
.badge{display:inline-block;padding:.1em .55em;border-radius:.8em;color:#fff;font-size:.85em;font-weight:600}
section.family{margin-top:2.2em;border-top:2px solid #eee}
article.claim{display:grid;grid-template-columns:1fr 360px;gap:1em;padding:1em 0;border-bottom:1px solid #f0f0f0}
article.claim h3{margin:.1em 0 .3em;font-size:1.02em} .id{font-family:monospace;color:#555;margin-right:.4em}
.exp{color:#555;font-size:.92em} .numbers{font-family:monospace;font-size:.82em;color:#333;white-space:pre-wrap;background:#fafafa;padding:.4em;border-radius:4px}
article.claim img{max-width:360px;width:100%;border:1px solid #eee}
nav a{margin-right:.8em}
.rule{font-size:.86em;color:#333;background:#f5f7fb;border-left:3px solid #9db3d8;padding:.35em .6em;margin:.4em 0}
"""


def _badge(verdict: str) -> str:
    return f'<span class="badge" style="background:{COLOURS[verdict]}">{html.escape(verdict)}</span>'


def _img(figures: Path, name: str | None, alt: str) -> str:
    if not name or not (figures / name).exists():
        return ""
    data = base64.b64encode((figures / name).read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _numbers(numbers: dict) -> str:
    if not numbers:
        return ""
    text = json.dumps(numbers, indent=None, separators=(", ", ": "), default=str)
    return f'<div class="numbers">{html.escape(text)}</div>'


def _rule(r: dict, used: str, other: dict | None) -> str:
    """The rule beside the numbers: the statistic per seed, its spread, the thresholds and why."""
    parts = []
    if r.get("rule_text"):
        parts.append(f"<b>Rule</b> (fixed before the run): {html.escape(r['rule_text'])}.")
    sp = r.get("spread") or {}
    if sp.get("n"):
        vals = ", ".join(f"{v:.4g}" for v in r.get("values") or [])
        sd = f" ± {sp['sd']:.3g} (sd)" if sp.get("sd") is not None else ""
        parts.append(
            f"<b>Measured</b>: {html.escape(vals)} → mean {sp['mean']:.4g}{sd}, range [{sp['min']:.4g}, {sp['max']:.4g}]."
        )
    if r.get("reason"):
        parts.append(f"<b>Verdict</b> {html.escape(r['verdict'])}: {html.escape(r['reason'])}.")
    if used and r.get("shown_seed") is not None:
        used += f" (summary, numbers and figure: seed {r['shown_seed']}; the verdict uses every seed)"
    if used:
        if other and other.get("seeds_used"):
            o_seeds = other["seeds_used"]
            used += f"; the committed {other['mode']} report: {len(o_seeds)} used: {', '.join(map(str, o_seeds))}"
        parts.append(f"<b>Seeds</b>: {html.escape(used)}.")
    if other and other.get("verdict") != r["verdict"]:
        parts.append(
            f"<b>The {html.escape(other['mode'])} report says {html.escape(other['verdict'])}</b> "
            f"({html.escape(other.get('reason') or '')}; seeds {html.escape(', '.join(map(str, other.get('seeds_used') or [])))}): "
            "the two modes differ in budget (epochs, data, seeds)."
        )
    return f'<div class="rule">{"<br>".join(parts)}</div>' if parts else ""


def _other_mode(meta: dict) -> dict[str, dict]:
    """The committed report of the other mode (docs/atlas-results[-quick].json), by claim ID."""
    path = (
        Path(__file__).resolve().parents[2]
        / "docs"
        / ("atlas-results.json" if meta.get("quick") else "atlas-results-quick.json")
    )
    if not path.exists():
        return {}
    try:
        saved = json.loads(path.read_text())
        mode = saved["meta"]["mode"]
        return {c["id"]: {**c, "mode": mode} for c in saved["claims"]}
    except (ValueError, KeyError, TypeError):
        return {}


def _load_text(meta: dict) -> str:
    """`` with 2 workers at load 31-38`` (the 1-minute load average before and after the run): a
    time is only comparable with one measured at the same load."""
    jobs, before, after = meta.get("jobs"), meta.get("load_before"), meta.get("load_after")
    text = f" with {jobs} worker{'s' if jobs != 1 else ''}" if jobs else ""
    if before and after:
        low, high = sorted((before[0], after[0]))
        text += f" at load {low:.0f}" + (f"–{high:.0f}" if round(high) != round(low) else "")
    return text


def write_html(path: Path, results: list[dict], figures: Path, meta: dict) -> None:
    mode = "quick" if meta.get("quick") else "full"
    other = _other_mode(meta)
    families = [f for f in FAMILIES if any(r["family"] == f for r in results)]
    counts = {f: Counter(r["verdict"] for r in results if r["family"] == f) for f in families}
    total = Counter(r["verdict"] for r in results)
    head = "".join(f"<th>{_badge(v)}</th>" for v in VERDICTS)
    rows = "".join(
        f'<tr><td><a href="#{_anchor(f)}">{html.escape(f)}</a></td>'
        + "".join(f"<td>{counts[f].get(v, 0) or ''}</td>" for v in VERDICTS)
        + "</tr>"
        for f in families
    )
    rows += "<tr><th>all</th>" + "".join(f"<th>{total.get(v, 0)}</th>" for v in VERDICTS) + "</tr>"
    sections = []
    for f in families:
        items = []
        for r in (r for r in results if r["family"] == f):
            seeds = r.get("seeds_used") or []
            used = f"{mode} mode, {len(seeds)} seed{'s' if len(seeds) != 1 else ''} used: {', '.join(map(str, seeds))}"
            items.append(
                f'<article class="claim" id="{html.escape(r["id"])}"><div>'
                f'<h3><span class="id">{html.escape(r["id"])}</span>{html.escape(r["claim"])}</h3>'
                f"<p>{_badge(r['verdict'])} {html.escape(r['summary'])}</p>"
                f'<p class="exp">Experiment: {html.escape(r["experiment"])}</p>'
                f"{_rule(r, used if seeds else '', other.get(r['id']))}"
                f"{_numbers(r.get('numbers') or {})}</div>"
                f"<div>{_img(figures, r.get('figure'), r['id'])}</div></article>"
            )
        sections.append(
            f'<section class="family" id="{_anchor(f)}"><h2>{html.escape(f)}</h2>{"".join(items)}</section>'
        )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>deepatlas — the survey's claims, measured</title><style>{CSS}</style></head>
<body><h1>deepatlas: the survey's claims, measured</h1>
<p class="sub">{len(results)} claims, each tested by a seeded experiment on the real estimators ({mode} mode,
deepatlas {html.escape(str(meta.get("version")))}, experiments ran {meta.get("seconds")} s{_load_text(meta)},
{html.escape(str(meta.get("date")))}, on {html.escape(str(meta.get("machine")))}).
Each verdict comes from a rule fixed before the run: the statistic is measured on every seed, and a claim is supported
(or refuted) only when every seed clears that threshold; a seeds' range straddling a threshold is conditional.
Verdicts: supported, refuted, conditional (holds only under the stated conditions), not testable (an opinion), text error
(wrong on its face), pending (not built yet).</p>
<table class="summary"><tr><th>family</th>{head}</tr>{rows}</table>
{"".join(sections)}
</body></html>
"""
    atomic_write_text(path, page)


def _anchor(family: str) -> str:
    return family.lower().replace(" ", "-")

"""``deepatlas report``: run the atlas — every claim of the survey as an experiment — and write
one HTML page with the verdicts (the main job)."""

from __future__ import annotations

import time

from deepatlas.errors import InputError


def cmd_report(args) -> int:
    from deepatlas._io import read_json
    from deepatlas.atlas.runner import default_jobs, merge_results, read_merge_target, run_report

    if args.jobs is None:
        args.jobs = default_jobs()
    if args.jobs < 1:
        raise InputError(f"--jobs must be a positive int. Got {args.jobs} instead.")
    if args.merge_into is not None:
        read_merge_target(args.merge_into, args.quick)  # a target that cannot take the results: before the run
    start = time.perf_counter()
    results = run_report(args.out, quick=args.quick, only=args.only, jobs=args.jobs, progress=not args.quiet)
    if not results:
        raise InputError(f"--only {args.only!r} matches no claim ID (IDs look like 'P.fast', 'M.*', 'G.unstable').")
    counts: dict[str, int] = {}
    for r in results:
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    summary = ", ".join(f"{n} {v}" for v, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    print(f"{len(results)} claims: {summary}")
    print(f"report: {args.out}/index.html (total {time.perf_counter() - start:.0f} s)")
    failed = [r["id"] for r in results if r["summary"].startswith("The experiment failed")]
    if failed:
        print(f"experiments that failed (shown as pending): {', '.join(failed)}")
        if args.merge_into is not None:
            print(f"not merged into {args.merge_into}: an experiment failed")
        return 1
    pending = [r["id"] for r in results if r["verdict"] == "pending"]
    if args.merge_into is not None and pending:
        print(f"not merged into {args.merge_into}: pending {', '.join(pending)} would replace measured entries")
        return 1
    if args.merge_into is not None:
        cached = [r["id"] for r in results if r.get("cached")]
        merge_results(read_json(f"{args.out}/results.json"), args.merge_into, cached=cached)
        print(f"merged {len(results)} claims into {args.merge_into} (meta.rerun names them)")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="run the atlas of the survey's claims and write an HTML report (the main job)")
    p.add_argument(
        "--quick", action="store_true", help="small versions of every experiment (about a minute on 2 cores)"
    )
    p.add_argument("--only", metavar="PATTERN", help="claim IDs to run, e.g. 'P.*' or 'G.unstable'")
    p.add_argument("--out", default="atlas-report", metavar="DIR", help="output folder (default atlas-report)")
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="experiments to run in parallel processes (default: one per CPU this process may use)",
    )
    p.add_argument("--quiet", action="store_true", help="no per-experiment progress lines")
    p.add_argument(
        "--merge-into",
        metavar="FILE",
        help="also put this run's claims into the report FILE (a results.json of the same mode, e.g. "
        "docs/atlas-results.json), replacing their entries; its meta.rerun records the run",
    )
    p.set_defaults(func=cmd_report)

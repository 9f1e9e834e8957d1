"""Every shell command in the README pastes into bash and runs as written (issue #28, point 5).

Only fenced blocks tagged ``bash`` are read (a ```` ``` ```` block without a language shows output,
such as the error example). An HTML comment on the line right above a block's fence says how it
is checked; a block without one is run by the default test suite::

    <!-- readme-test: slow -->                  run only under ``pytest -m slow`` (trains models for minutes)
    <!-- readme-test: slow files=digits-csv --> the same, in a folder holding the example files named below
    <!-- readme-test: skip (why) -->            not run (a server, two machines, your own files, ...)

Every block, run or not, must parse (``bash -n``) and hold no ``<placeholder>`` outside a comment
(bash reads ``runs/x-<time>`` as two redirections). A block runs with ``bash -e`` in a fresh folder
where ``.venv`` points to this checkout's virtual environment, so ``.venv/bin/deepatlas`` works as
in a clone. A block that takes over ``DEFAULT_TIMEOUT`` seconds should be marked slow.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DEFAULT_TIMEOUT = 120
SLOW_TIMEOUT = 3600
MARKER = re.compile(r"<!--\s*readme-test:\s*(?P<kind>slow|skip)\b(?P<rest>[^>]*)-->")


def bash_blocks(text: str) -> list[dict]:
    """The ```bash blocks of ``text``: line number, code, kind (run/slow/skip) and fixture files."""
    blocks, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```bash":
            start = i
            j = i + 1
            while j < len(lines) and lines[j].strip() != "```":
                j += 1
            marker = MARKER.search(lines[start - 1]) if start else None
            kind = marker["kind"] if marker else "run"
            files = re.search(r"files=([\w-]+)", marker["rest"]) if marker else None
            blocks.append(
                {
                    "line": start + 1,
                    "code": "\n".join(lines[i + 1 : j]) + "\n",
                    "kind": kind,
                    "files": files and files[1],
                }
            )
            i = j
        i += 1
    return blocks


BLOCKS = bash_blocks(README.read_text(encoding="utf-8"))


def _without_comments(code: str) -> str:
    """The code with ``# ...`` comments and quoted strings blanked (a rough shell lexer, enough here)."""
    out, quote = [], None
    for line in code.splitlines():
        kept = []
        for k, ch in enumerate(line):
            if quote:
                if ch == quote:
                    quote = None
                kept.append(" ")
            elif ch in "'\"":
                quote = ch
                kept.append(" ")
            elif ch == "#" and (k == 0 or line[k - 1].isspace()):
                break
            else:
                kept.append(ch)
        out.append("".join(kept))
    return "\n".join(out)


def _ids(blocks):
    return [f"line{b['line']}-{b['kind']}" for b in blocks]


def test_the_readme_has_bash_blocks_of_each_kind():
    kinds = {b["kind"] for b in BLOCKS}
    assert {"run", "slow", "skip"} <= kinds, kinds


@pytest.mark.parametrize("block", BLOCKS, ids=_ids(BLOCKS))
def test_every_bash_block_parses_and_has_no_placeholders(block):
    res = subprocess.run(["bash", "-n"], input=block["code"], capture_output=True, text=True)
    assert res.returncode == 0, f"README line {block['line']}: bash cannot parse it: {res.stderr.strip()}"
    placeholders = re.findall(r"<[A-Za-z][\w.-]*>", _without_comments(block["code"]))
    assert not placeholders, f"README line {block['line']}: placeholder(s) {placeholders} would be read as redirections"


def test_the_checks_catch_what_they_are_for():
    (bad,) = bash_blocks("```bash\ndeepatlas train mlp --set hidden_sizes=(128,64)\n```\n")
    assert subprocess.run(["bash", "-n"], input=bad["code"], capture_output=True, text=True).returncode != 0
    assert re.findall(r"<[A-Za-z][\w.-]*>", _without_comments("deepatlas predict runs/x-<time> # <ok>\n")) == ["<time>"]
    marked = bash_blocks("<!-- readme-test: slow files=digits-csv -->\n```bash\ntrue\n```\n")
    assert marked[0]["kind"] == "slow" and marked[0]["files"] == "digits-csv"


def _fixtures(name: str | None, where: Path) -> None:
    """The example files a block names (``files=...``), made from the digits data."""
    if name is None:
        return
    if name != "digits-csv":
        raise AssertionError(f"unknown README fixture set {name!r}")
    from deepatlas.data import load_dataset

    ds = load_dataset("digits")
    X = ds.X_test.reshape(len(ds.X_test), -1)
    np.savetxt(where / "new.csv", X[:20], delimiter=",", fmt="%.4f")  # no header: taken by position
    header = ",".join([f"px{i}" for i in range(X.shape[1])] + ["label"])
    rows = np.column_stack([X, ds.y_test])
    np.savetxt(where / "mydata.csv", rows, delimiter=",", fmt="%.4f", header=header, comments="")


def _run(block, tmp_path: Path, timeout: int) -> None:
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    _fixtures(block["files"], tmp_path)
    env = {**os.environ, "PATH": f"{tmp_path / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
    try:
        res = subprocess.run(
            ["bash", "-e", "-o", "pipefail"],
            input=block["code"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"README line {block['line']} ran over {timeout} s: mark it <!-- readme-test: slow -->")
    assert res.returncode == 0, f"README line {block['line']} failed (exit {res.returncode}):\n{res.stderr[-3000:]}"


RUN = [b for b in BLOCKS if b["kind"] == "run"]
SLOW = [b for b in BLOCKS if b["kind"] == "slow"]


@pytest.mark.parametrize("block", RUN, ids=_ids(RUN))
def test_quick_readme_blocks_run_as_written(block, tmp_path):
    _run(block, tmp_path, DEFAULT_TIMEOUT)


@pytest.mark.slow
@pytest.mark.parametrize("block", SLOW, ids=_ids(SLOW))
def test_slow_readme_blocks_run_as_written(block, tmp_path):
    _run(block, tmp_path, SLOW_TIMEOUT)

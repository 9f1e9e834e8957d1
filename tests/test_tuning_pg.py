"""Tuning workers on a PostgreSQL study, as on several machines: a throw-away server owned by the
test, three ``deepatlas tune`` processes on one study, one killed with SIGKILL mid-trial and
restarted.

The server comes from Debian's ``postgresql`` package (``initdb``/``pg_ctl`` under
/usr/lib/postgresql/*/bin; ``.ci/run`` installs it) and the driver from the ``[tune-pg]`` extra.
Where either is missing the test is skipped with the reason, except under ``CI=true``, where it
fails (as the ``chromium`` fixture does)."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest

from deepatlas import tuning

TRIALS = 10
SPACE = {
    "lr": {"type": "float", "low": 1e-3, "high": 0.3, "log": True},
    "width": {"type": "int", "low": 4, "high": 32},
}


def _unavailable(reason: str):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI=true requires it")
    pytest.skip(reason)


def _server_bin() -> Path | None:
    """The directory holding initdb and pg_ctl: on the PATH, else Debian's newest version."""
    if shutil.which("pg_ctl") and shutil.which("initdb"):
        return Path(shutil.which("pg_ctl")).parent
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(re.sub(r"\D", "", d) or 0))
    return next((Path(d) for d in reversed(debian) if Path(d, "pg_ctl").exists() and Path(d, "initdb").exists()), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    """A PostgreSQL cluster in a temp dir on a free local port, stopped and removed afterwards;
    yields ``postgresql+psycopg://deepatlas:<password>@127.0.0.1:<port>/tuning``."""
    try:
        import psycopg
    except ImportError:
        _unavailable("psycopg not installed (the [tune-pg] extra; make setup installs it)")
    bindir = _server_bin()
    if bindir is None:
        _unavailable("PostgreSQL server not found (Debian package 'postgresql'; .ci/run installs it)")
    run_as: dict = {}
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            _unavailable("running as root and no 'postgres' user to run the PostgreSQL server as")
        run_as = {"user": "postgres", "group": "postgres", "extra_groups": []}
    root = Path(tempfile.mkdtemp(prefix="deepatlas-pg-"))
    if run_as:
        shutil.chown(root, "postgres", "postgres")
    password = secrets.token_hex(8)
    (root / "pw").write_text(password)
    if run_as:
        shutil.chown(root / "pw", "postgres", "postgres")

    def pg(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(bindir / args[0]), *args[1:]], cwd=root, capture_output=True, text=True, **run_as)

    def log_tail() -> str:
        log = root / "log"
        return " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:]) if log.exists() else ""

    port, started = None, False
    try:
        r = pg("initdb", "-D", "data", "-U", "deepatlas", "--pwfile", "pw", "--auth-local", "trust",
               "--auth-host", "scram-sha-256", "--encoding", "UTF8", "--locale", "C", "--no-sync")  # fmt: skip
        if r.returncode:
            _unavailable(f"initdb failed: {(r.stderr or r.stdout).strip().splitlines()[-1:]}")
        for _ in range(3):  # another process may take the free port before the server binds it
            port = _free_port()
            options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off"
            r = pg("pg_ctl", "-D", "data", "-l", "log", "-w", "-t", "30", "-o", options, "start")
            if r.returncode == 0:
                started = True
                break
        if not started:
            _unavailable(f"PostgreSQL server did not start: {log_tail()}")
        with psycopg.connect(
            host="127.0.0.1", port=port, user="deepatlas", password=password, dbname="postgres", autocommit=True
        ) as con:
            con.execute("CREATE DATABASE tuning")
        yield f"postgresql+psycopg://deepatlas:{password}@127.0.0.1:{port}/tuning"
    finally:
        if started:
            pg("pg_ctl", "-D", "data", "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def _running_trial_of(url: str, pid: int) -> int | None:
    """The number of the RUNNING trial that process ``pid`` has reached the objective of and
    sent a heartbeat for (only then can a stale heartbeat tell that its worker died)."""
    import psycopg

    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    with contextlib.suppress(psycopg.Error), psycopg.connect(conninfo) as con:
        row = con.execute(
            "select t.number from trials t join trial_heartbeats h on h.trial_id = t.trial_id "
            "join trial_user_attributes a on a.trial_id = t.trial_id "
            "where t.state = 'RUNNING' and a.key = 'pid' and a.value_json = %s",
            (json.dumps(pid),),
        ).fetchone()
        return None if row is None else row[0]
    return None


def test_three_workers_on_postgres_survive_a_killed_worker(postgres_url, tmp_path):
    space = tmp_path / "space.json"
    space.write_text(json.dumps(SPACE))
    common = ["tune", "mlp", "--data", "moons", "--trials", str(TRIALS), "--storage", postgres_url,
              "--study", "pg", "--space", str(space), "--set", "hidden_sizes=(8,)"]  # fmt: skip
    normal = [*common, "--epochs", "3"]  # no pruning decision before epoch 5
    endless = [*common, "--epochs", "100000", "--set", "patience=100000", "--pruner", "none"]
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")

    def start(name: str, args: list[str]) -> subprocess.Popen:
        with open(tmp_path / f"{name}.log", "w") as out:  # the child keeps its own copy
            return subprocess.Popen(
                [sys.executable, "-m", "deepatlas", *args, "--out", str(tmp_path / name)],
                stdout=out, stderr=subprocess.STDOUT, env=env, text=True,
            )  # fmt: skip

    # All three start together on the empty database: the first to take the schema lock creates
    # Optuna's tables (unlocked, the others failed on CREATE TYPE), then the study.
    workers = {"a": start("a", normal), "b": start("b", normal)}
    victim = start("victim", endless)  # its trial runs until it is killed
    try:
        deadline = time.monotonic() + 60
        killed_trial = None
        while killed_trial is None and time.monotonic() < deadline and victim.poll() is None:
            time.sleep(0.2)
            killed_trial = _running_trial_of(postgres_url, victim.pid)
        assert killed_trial is not None, (tmp_path / "victim.log").read_text()
        os.kill(victim.pid, signal.SIGKILL)
        assert victim.wait(10) == -signal.SIGKILL
        workers["restarted"] = start("restarted", [*normal, "--then-train"])
        for name, proc in workers.items():
            assert proc.wait(120) == 0, (tmp_path / f"{name}.log").read_text()
    finally:
        for proc in [victim, *workers.values()]:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    logs = {name: (tmp_path / f"{name}.log").read_text() for name in workers}
    assert not any("Traceback" in log for log in logs.values()), logs

    # The study, reloaded here: exactly TRIALS finished, none left RUNNING, the killed one FAIL.
    study = optuna.load_study(study_name="pg", storage=tuning.open_storage(postgres_url))
    trials = study.get_trials(deepcopy=False)
    by_state = {state: [t for t in trials if t.state.name == state] for state in ("COMPLETE", "PRUNED", "FAIL")}
    assert len(by_state["COMPLETE"]) + len(by_state["PRUNED"]) == TRIALS, [(t.number, t.state) for t in trials]
    assert not [t.number for t in trials if t.state.name == "RUNNING"]
    failed = {t.number: t.user_attrs for t in by_state["FAIL"]}
    assert failed.pop(killed_trial)["pid"] == victim.pid  # the killed trial, failed by its stale heartbeat
    assert all(attrs.get("surplus") for attrs in failed.values()), failed  # others: created for a taken slot
    pids = {t.user_attrs["pid"] for t in trials if t.state.name in ("COMPLETE", "PRUNED")}
    assert {workers["a"].pid, workers["b"].pid} <= pids <= {p.pid for p in workers.values()}
    best = study.best_trial

    # Each worker waited for the study to finish; its best.json names the study's best trial.
    for name in workers:
        summary = json.loads((tmp_path / name / "best.json").read_text())
        assert (summary["best_trial"], summary["best_value"]) == (best.number, best.value), name
        assert summary["trials"].get("complete", 0) + summary["trials"].get("pruned", 0) == TRIALS, name
        assert summary["trials"]["fail"] == 1, name  # the killed trial (a surplus one is counted apart)

    # The restarted worker loaded the study another process made, and trained its best trial.
    masked = postgres_url.replace(postgres_url.split(":")[2].split("@")[0], "***")  # the password hidden
    assert logs["restarted"].startswith("study 'pg': ")
    assert f" to run ({masked})\n" in logs["restarted"].splitlines(keepends=True)[0]
    assert "best configuration trained: test_accuracy " in logs["restarted"], logs["restarted"]
    config = json.loads((tmp_path / "restarted" / "best-run" / "config.json").read_text())
    assert config["params"]["lr"] == best.params["lr"]
    assert config["params"]["hidden_sizes"] == [best.params["width"]]
    assert config["params"]["epochs"] == 3
    assert (tmp_path / "restarted" / "best-run" / "metrics.json").exists()


def test_missing_driver_and_masked_password(monkeypatch):
    from deepatlas._optional import MissingExtra

    url = "postgresql+psycopg://deepatlas:s3cret@db.example:5432/tuning"
    assert tuning.shown_url(url) == "postgresql+psycopg://deepatlas:***@db.example:5432/tuning"
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(MissingExtra) as info:
        tuning.open_storage(url)
    assert str(info.value) == (
        "a PostgreSQL --storage needs psycopg, the PostgreSQL driver: pip install 'deepatlas[tune-pg]'"
    )
    tuning.check_storage_url("sqlite:///study.db")  # other back ends need no extra

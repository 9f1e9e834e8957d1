"""Two torchrun "nodes" on one machine: the README's multi-machine command, run twice on loopback
(c10d rendezvous, one process per node), observed from inside the ranks through
``DEEPATLAS_DDP_TRACE``: disjoint shards of every epoch, identical weights after every epoch,
one run directory written by one node, the accuracy of one process; a node that stops mid-run
ends the job with one line within ``DEEPATLAS_DIST_TIMEOUT``, not a hang."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"
RUN_FILES = ["config.json", "history.json", "metrics.json", "model.safetensors", "plots", "report.html"]
# Settings of tests/test_distributed.py: two ranks of 32 make the global batch of 64 of one process.
SETTINGS = {
    "mlp": ["--set", "dropout=0.0", "--epochs", "30"],
    "gru": ["--epochs", "4", "--set", "hidden_size=16"],
}
DATA = {"mlp": "digits", "gru": "mnist1d"}


def readme_command() -> tuple[list[str], list[str]]:
    """The README's multi-machine command: (the torchrun launcher's argv, the deepatlas argv)."""
    block = re.search(r"```bash\n(torchrun --nnodes.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert block, "README: the multi-machine torchrun block is missing"
    argv = shlex.split(block.group(1).replace("\\\n", " "))
    cut = argv.index("-m")
    assert argv[cut + 1] == "deepatlas", argv
    return argv[:cut], argv[cut + 2 :]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def node_argv(port: int, train_args: list[str]) -> list[str]:
    """The README's launcher line for this machine: HOST -> 127.0.0.1:PORT, one process per node."""
    launcher, deepatlas_args = readme_command()
    assert launcher[0] == "torchrun"
    assert deepatlas_args[:4] == ["train", "mlp", "--data", "digits"], deepatlas_args
    flags = launcher[1:]
    assert flags[flags.index("--nnodes") + 1] == "2"
    flags[flags.index("--nproc-per-node") + 1] = "1"
    endpoint = flags.index("--rdzv-endpoint") + 1
    assert flags[endpoint] == "HOST:29500"
    flags[endpoint] = f"127.0.0.1:{port}"
    return [sys.executable, "-m", "torch.distributed.run", *flags, "-m", "deepatlas", *train_args]


def start_nodes(tmp_path: Path, train_args: list[str], **env_extra: str) -> list[subprocess.Popen]:
    """Two launchers, each in its own directory and session (``--out`` relative: a node that
    writes the run leaves it in its own directory). The first hosts the rendezvous store."""
    port = free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", DEEPATLAS_DDP_TRACE=str(tmp_path / "trace"))
    env.update(env_extra)
    nodes = []
    for i in range(2):
        cwd = tmp_path / f"node{i}"
        cwd.mkdir()
        nodes.append(
            subprocess.Popen(
                node_argv(port, train_args),
                cwd=cwd,
                env=env,
                stdout=(cwd / "stdout").open("w"),
                stderr=(cwd / "stderr").open("w"),
                start_new_session=True,
            )
        )
        deadline = time.monotonic() + 60
        while i == 0 and not listening(port) and nodes[0].poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
    return nodes


def node_pids(pid: int) -> list[int]:
    """The launcher and every process below it (torchrun starts its workers in new sessions)."""
    pids = [pid]
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):  # a process that just ended
        for task in os.listdir(f"/proc/{pid}/task"):
            for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split():
                pids += node_pids(int(child))
    return pids


def signal_node(node: subprocess.Popen, sig: int) -> list[int]:
    pids = node_pids(node.pid) if node.poll() is None else []
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    return pids


def kill_all(nodes: list[subprocess.Popen]) -> None:
    for node in nodes:
        signal_node(node, signal.SIGKILL)
        node.wait()


def wait_all(nodes: list[subprocess.Popen], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    try:
        return [node.wait(timeout=max(1.0, deadline - time.monotonic())) for node in nodes]
    finally:
        kill_all(nodes)


def traces(tmp_path: Path) -> dict[tuple[int, int], dict]:
    return {
        (rec["rank"], rec["epoch"]): rec
        for rec in (json.loads(p.read_text()) for p in sorted((tmp_path / "trace").glob("rank*-epoch*.json")))
    }


@pytest.mark.parametrize("model", ["mlp", pytest.param("gru", marks=pytest.mark.slow)])
def test_two_nodes_share_every_epoch_and_match_one_process(model, cli, tmp_path):
    args = ["train", model, "--data", DATA[model], "--quiet", "--set", "early_stopping=False", *SETTINGS[model]]
    nodes = start_nodes(tmp_path, [*args, "--batch-size", "32", "--out", "run"])
    one = cli(*args, "--batch-size", "64", "--out", str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr
    codes = wait_all(nodes, timeout=300)
    stderr = [(tmp_path / f"node{i}" / "stderr").read_text() for i in range(2)]
    assert codes == [0, 0], stderr

    # One node, the one whose rank is 0, wrote the run (relative --out: into its own directory)
    # and printed its path; the other wrote and printed nothing.
    writers = [i for i in range(2) if (tmp_path / f"node{i}" / "run").exists()]
    assert len(writers) == 1, writers
    stdout = [(tmp_path / f"node{i}" / "stdout").read_text() for i in range(2)]
    assert stdout[writers[0]].strip() == "run" and stdout[1 - writers[0]] == ""
    run = tmp_path / f"node{writers[0]}" / "run"
    assert sorted(p.name for p in run.iterdir()) == RUN_FILES

    # Every epoch: two ranks of one world, disjoint equal shares of one fresh permutation, and the
    # same weights after the epoch's steps (gradients averaged), weights that changed since.
    rec = traces(tmp_path)
    epochs = json.loads((run / "metrics.json").read_text())["epochs_run"]
    assert sorted(rec) == [(r, e) for r in (0, 1) for e in range(1, epochs + 1)]
    for e in range(1, epochs + 1):
        a, b = rec[0, e], rec[1, e]
        assert a["world_size"] == b["world_size"] == 2
        assert len(a["indices"]) == len(b["indices"]) > 0
        assert not set(a["indices"]) & set(b["indices"]), f"epoch {e}: the ranks shared samples"
        assert len(set(a["indices"])) == len(a["indices"])
        assert a["weights_sha256"] == b["weights_sha256"], f"epoch {e}: the ranks' weights differ"
        if e > 1:
            assert a["weights_sha256"] != rec[0, e - 1]["weights_sha256"]
            assert set(a["indices"]) != set(rec[0, e - 1]["indices"]), "the shards were not reshuffled"
    # Together the shards cover the epoch: all n samples, or n - 1 when n is odd.
    for e in range(1, epochs + 1):
        seen = set(rec[0, e]["indices"]) | set(rec[1, e]["indices"])
        assert min(seen) >= 0 and max(seen) <= len(seen), (e, min(seen), max(seen), len(seen))

    acc_one = json.loads((tmp_path / "one" / "metrics.json").read_text())["test_accuracy"]
    acc_two = json.loads((run / "metrics.json").read_text())["test_accuracy"]
    assert abs(acc_one - acc_two) <= 0.01, (acc_one, acc_two)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGKILL", "SIGSTOP"])  # dies / falls silent (no reset sent)
def test_a_node_that_stops_mid_run_ends_the_job_in_one_line(how, tmp_path):
    args = ["train", "mlp", "--data", "digits", "--quiet", "--set", "early_stopping=False", "--epochs", "500"]
    nodes = start_nodes(tmp_path, [*args, "--out", "run"], DEEPATLAS_DIST_TIMEOUT="5")
    try:
        deadline = time.monotonic() + 120
        while not list((tmp_path / "trace").glob("rank*-epoch2.json")):
            assert time.monotonic() < deadline and all(n.poll() is None for n in nodes), "no epoch 2"
            time.sleep(0.1)
        stopped = time.monotonic()
        signal_node(nodes[1], getattr(signal, how))  # the node that does not host the rendezvous
        code = nodes[0].wait(timeout=60)
        took = time.monotonic() - stopped
    finally:
        kill_all(nodes)
    stderr = (tmp_path / "node0" / "stderr").read_text()
    assert code != 0
    assert took < 40, took  # the timeout is 5 s; process exit and torchrun's cleanup take the rest
    ours = [line for line in stderr.splitlines() if line.startswith("deepatlas train: error:")]
    assert len(ours) == 1, stderr
    assert re.fullmatch(
        r"deepatlas train: error: distributed training stopped on rank [01] of 2: another rank died or did "
        r"not answer within DEEPATLAS_DIST_TIMEOUT=5 s \(.*(Connection reset by peer|Connection closed by peer"
        r"|Timed out waiting 5000ms).*\)",
        ours[0],
    ), ours[0]
    assert not re.search(r"^\[rank\d\]: Traceback", stderr, re.M)  # the worker printed no traceback
    assert not (tmp_path / "node0" / "run" / "model.safetensors").exists()


def test_readme_slurm_script_is_valid_bash_with_the_two_node_flags():
    text = README.read_text(encoding="utf-8")
    block = re.search(r"```bash\n(#!/bin/bash\n#SBATCH.*?)```", text, re.S)
    assert block, "README: the SLURM batch script is missing"
    script = block.group(1)
    bash = shutil.which("bash")
    assert bash
    check = subprocess.run([bash, "-n"], input=script, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    # The same launcher flags as the tested two-node command, plus a per-job rendezvous id.
    launcher, deepatlas_args = readme_command()
    words = shlex.split(script.split("srun ", 1)[1].replace("\\\n", " "))
    cut = words.index("-m")
    for flag in ("--nnodes", "--nproc-per-node", "--rdzv-backend"):
        assert words[words.index(flag) + 1] == launcher[launcher.index(flag) + 1], flag
    assert words[words.index("--rdzv-id") + 1] == "$SLURM_JOB_ID"
    assert words[cut + 1 :] == ["deepatlas", *deepatlas_args]


def test_trace_records_each_epochs_indices_and_weights(tmp_path, monkeypatch):
    from deepatlas.data import load_dataset
    from deepatlas.models.mlp import MLPClassifier
    from deepatlas.training.distributed import weights_digest

    monkeypatch.setenv("DEEPATLAS_DDP_TRACE", str(tmp_path / "trace"))
    ds = load_dataset("digits")
    model = MLPClassifier(epochs=2, early_stopping=False, hidden_sizes=(8,)).fit(ds.X_train, ds.y_train)
    rec = traces(tmp_path)
    assert sorted(rec) == [(0, 1), (0, 2)]
    for r in rec.values():  # one process: every sample once per epoch, in a fresh order
        assert r["world_size"] == 1 and sorted(r["indices"]) == list(range(len(ds.X_train)))
    assert rec[0, 1]["indices"] != rec[0, 2]["indices"]
    assert rec[0, 1]["weights_sha256"] != rec[0, 2]["weights_sha256"]
    assert rec[0, 2]["weights_sha256"] == weights_digest(model.module_)


def test_trace_is_off_by_default(tmp_path, monkeypatch):
    from deepatlas.data import load_dataset
    from deepatlas.models.mlp import MLPClassifier

    monkeypatch.delenv("DEEPATLAS_DDP_TRACE", raising=False)
    monkeypatch.chdir(tmp_path)
    ds = load_dataset("digits")
    MLPClassifier(epochs=1, early_stopping=False, hidden_sizes=(8,)).fit(ds.X_train, ds.y_train)
    assert list(tmp_path.iterdir()) == []


def test_peer_failure_is_one_line_for_lost_peers_only(monkeypatch):
    from deepatlas.training.distributed import peer_failure

    gloo = RuntimeError(
        "[/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:537] Read error [127.0.0.1]:21640: Connection "
        "reset by peer. This is typically caused by a remote worker hanging or bugs in the application."
    )
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert peer_failure(gloo) is None  # not distributed: the traceback stays
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("DEEPATLAS_DIST_TIMEOUT", "30")
    assert peer_failure(gloo) == (
        "distributed training stopped on rank 1 of 2: another rank died or did not answer within "
        "DEEPATLAS_DIST_TIMEOUT=30 s (Read error [127.0.0.1]:21640: Connection reset by peer)"
    )
    timeout = RuntimeError("[../gloo/transport/tcp/unbound_buffer.cc:81] Timed out waiting 30000ms for recv")
    assert peer_failure(timeout).endswith("(Timed out waiting 30000ms for recv)")
    assert peer_failure(RuntimeError("rank 1 failed on purpose")) is None  # the rank's own error
    assert peer_failure(ValueError("bad input")) is None

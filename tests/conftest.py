"""Shared test helpers: run the CLI in a subprocess, small seeded datasets."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest


@pytest.fixture(autouse=True, scope="session")
def _quiet_threads():
    # Two cores on CI: keep torch from oversubscribing when pytest-xdist runs workers.
    import torch

    # Under pytest-xdist each worker gets one thread; alone, up to two.
    torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else max(1, min(2, os.cpu_count() or 1)))
    yield


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a test module of tiny models, restored afterwards.

    Small steps are dominated by waking and synchronising a second intra-op thread, and under
    ``pytest -n 2`` two workers with two threads each oversubscribe two cores. Measured on the
    loaded 2-core machine: a GAN ring test took ~1 min with one thread and over 15 min with two; a
    packed bidirectional GRU fitted 14x slower; an evaluation curve fit took 6.5 s of CPU instead of
    0.5 s. Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def chromium() -> str:
    """Headless Chromium, for the tests that render HTML reports. Where it is absent the test is
    skipped with that reason, except under ``CI=true``, where it fails: CI must run it (``.ci/run``
    installs Debian's ``chromium``)."""
    found = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    if found:
        return found
    reason = "headless Chromium not found (Debian package 'chromium'; .ci/run installs it)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI=true requires it")
    pytest.skip(reason)


def run_cli(*args: str, cwd=None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m deepatlas ARGS`` and capture text output."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, "-m", "deepatlas", *args], capture_output=True, text=True, cwd=cwd, timeout=timeout, env=env
    )


@pytest.fixture
def cli():
    return run_cli

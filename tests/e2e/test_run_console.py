"""``make run``'s script, run in a copy of the project: its processes allow local URLs,
and the block it prints says so."""

import os
import queue
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.e2e.harness import REPO_ROOT

pytestmark = pytest.mark.e2e
STARTUP_TIMEOUT = 120.0  # migrating a new SQLite database on a busy 2-core box
PROJECT = ["bin", "console", "integrations", "templates", "manage.py"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def project(tmp_path) -> Path:
    """A copy of the project (its own SQLite database and var/), with this virtualenv."""
    copy = tmp_path / "project"
    copy.mkdir()
    for name in PROJECT:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, copy / name)
    (copy / ".venv").symlink_to(REPO_ROOT / ".venv")
    return copy


def output_until(process: subprocess.Popen, marker: str) -> str:
    """The script's output up to the line holding ``marker`` (or until it exits)."""
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in process.stdout:
            lines.put(line)
        lines.put("")  # the script ended

    threading.Thread(target=read, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            continue
        seen.append(line)
        if not line or marker in line:
            break
    return "".join(seen)


def test_make_run_allows_local_urls_and_says_so(project):
    # Nothing of the test process's environment (its settings allow local URLs anyway).
    env = {"PATH": os.environ["PATH"], "HOME": str(project), "PORT": str(free_port())}
    process = subprocess.Popen(  # noqa: S603 (our own script)
        [str(project / "bin" / "run-console")],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output = output_until(process, "Worker running")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert "Worker running" in output, output
    assert "Local URLs:      allowed here (INTEGRATIONS_ALLOW_PRIVATE_URLS=true)" in output

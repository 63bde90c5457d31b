"""The console's web process as production runs it: gunicorn with ``console/gunicorn.conf.py``,
in its own process, on a free port of 127.0.0.1."""

import os
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.e2e.harness import REPO_ROOT
from tests.e2e.private_postgres import free_port

START_TIMEOUT = 60.0


def local_session() -> requests.Session:
    """A session for 127.0.0.1: no proxies from the environment."""
    http = requests.Session()
    http.trust_env = False
    return http


class WebProcess:
    def __init__(self, database_url: str, log_path: Path, *gunicorn_args: str) -> None:
        self.port = free_port()
        self.log_path = log_path
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "console.test_settings",
            "DATABASE_URL": database_url,
            "PYTHONUNBUFFERED": "1",
        }
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "console/gunicorn.conf.py",
            "--bind",
            f"127.0.0.1:{self.port}",
            *gunicorn_args,
        ]
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(  # noqa: S603 (our own command line)
                command,
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_until_serving()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        http = local_session()
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited at start:\n{self.output()}")
            try:
                http.get(f"{self.url}/admin/login/", timeout=5)
                return
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not answer within {START_TIMEOUT} s:\n{self.output()}")

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

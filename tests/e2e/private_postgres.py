"""A private PostgreSQL server for tests that restart their database.

The shared server is never restarted (other processes use it); this one lives in a
temporary directory, listens on a free port of 127.0.0.1, trusts local connections and
is thrown away at the end. As root (CI), the server runs as the ``postgres`` user, as
PostgreSQL refuses to run as root.
"""

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest


def server_binaries() -> Path | None:
    """The folder holding ``initdb``, ``pg_ctl`` and ``createdb``: Debian's (off the PATH),
    newest version first, else the one of ``pg_ctl`` on the PATH."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_version_key)
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("pg_ctl")
    return Path(found).resolve().parent if found else None


def _version_key(path: str) -> tuple[int, ...]:
    version = Path(path).parent.parent.name
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivatePostgres:
    """``initdb`` + ``pg_ctl`` in a temporary directory; ``url(name)`` for Django."""

    def __init__(self) -> None:
        binaries = server_binaries()
        if binaries is None:
            pytest.skip(
                "needs the PostgreSQL server binaries (initdb, pg_ctl; Debian: apt-get "
                "install postgresql) to run a private PostgreSQL it may restart"
            )
        self.bin = binaries
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        self.root = Path(tempfile.mkdtemp(prefix="console-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        if self.as_root:
            self.root.chmod(0o755)
            shutil.chown(self.root, user="postgres")
        self._run("initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-sync")  # fmt: skip
        self.options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
            # No fsync: an immediate restart kills the server, not the machine, so what was
            # written survives in the OS cache. Commits stay synchronous: an acknowledged
            # commit must survive the restart (these tests count on it).
            "-c fsync=off -c full_page_writes=off"
        )
        self.start()

    def _run(self, program: str, *args: object) -> None:
        command = [str(self.bin / program), *map(str, args)]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        # From a folder the postgres user can read (pg_ctl changes into it).
        result = subprocess.run(  # noqa: S603 (our own command line)
            command, cwd=self.root, capture_output=True, text=True, timeout=60, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{program} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}\n"
                f"{self.server_log()}"
            )

    def create_database(self, name: str) -> str:
        self._run("createdb", "-h", "127.0.0.1", "-p", self.port, "-U", "postgres", name)
        return self.url(name)

    def url(self, name: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def restart(self) -> None:
        """``pg_ctl restart -m immediate``: every connection is cut, as in a crash."""
        self._run("pg_ctl", "-D", self.data, "-l", self.log, "-m", "immediate", "-w", "restart")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")

    def start(self) -> None:
        self._run("pg_ctl", "-D", self.data, "-l", self.log, "-o", self.options, "-w", "start")

    def server_log(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def destroy(self) -> None:
        with contextlib.suppress(RuntimeError):  # already stopped
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

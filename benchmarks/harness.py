"""What delivery.py, end_to_end.py and prune.py share: the environment, the bench
database (ingest.py's safety checks, a workspace with integrations, cleanup), the
console under gunicorn (ingest.py's ``Server``), ``db_worker`` processes, CPU accounting
by group of processes, and the machine's description.

ingest.py is the model: its checks, server and CPU sampling are imported from it, not
copied.
"""

import argparse
import math
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.ingest import (
    BASE_DIR,
    CLOCK_TICKS,
    SLUG_PREFIX,
    VAR_DIR,
    BenchData,
    Refused,
    Server,
    _machine_ticks,
    _processes,
    _remove_sqlite,
    check_migrations_complete,
    check_not_real_data,
    check_schema_matches,
    cleanup,
    log,
    machine_busy,
    prepare_environment,
    redacted,
    wait_for_idle,
)
from benchmarks.loadgen import HOST

__all__ = [
    "HOST",
    "SLUG_PREFIX",
    "VAR_DIR",
    "BenchData",
    "CpuMeter",
    "IntegrationSpec",
    "Refused",
    "Server",
    "Workers",
    "cleanup",
    "console_server",
    "create_workspace",
    "describe_machine",
    "log",
    "machine_busy",
    "percentile",
    "prepare_environment",
    "redacted",
    "setup_database",
    "wait_for_idle",
]


def remove_throwaway(path: Path | None) -> None:
    if path is not None:
        _remove_sqlite(path)


def add_common_arguments(parser: argparse.ArgumentParser, leaves: str) -> None:
    """The options every benchmark that makes its own workspaces takes; ``leaves`` names
    what ``--keep`` leaves in place."""
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=30.0,
        help="wait up to this many seconds for other processes to leave the CPU idle (30)",
    )
    parser.add_argument("--keep", action="store_true", help=f"leave {leaves}")
    parser.add_argument(
        "--allow-existing-data",
        action="store_true",
        help="run even if the database holds non-benchmark workspaces",
    )


def clean_up(created: Sequence[BenchData], keep: bool, throwaway: Path | None = None) -> None:
    """Delete the bench workspaces (unless ``--keep``) and the throwaway SQLite file."""
    if created and keep:
        log(f"--keep: left {', '.join(data.slug for data in created)} in place")
    elif created:
        log("cleaning up the bench data ...")
        for data in created:
            cleanup(data)
    remove_throwaway(throwaway)


# --- The bench database ------------------------------------------------------------------


@dataclass(frozen=True)
class IntegrationSpec:
    kind: str
    name: str
    settings: dict[str, Any]
    api_base_url: str = ""
    paused: bool = False


def setup_database(allow_existing_data: bool) -> str:
    """Refuse a database that is not a benchmark one, migrate it; its version."""
    import django
    from django.core.management import call_command
    from django.db import connection

    django.setup()
    check_not_real_data(allow_existing_data)
    check_migrations_complete()
    log("migrating the database ...")
    call_command("migrate", interactive=False, verbosity=0)
    check_schema_matches()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SHOW server_version")
            return f"PostgreSQL {cursor.fetchone()[0]}"
        cursor.execute("SELECT sqlite_version()")
        return f"SQLite {cursor.fetchone()[0]}"


def create_workspace(specs: Sequence[IntegrationSpec], db_version: str) -> BenchData:
    """A workspace ``bench-<random>`` with a Segment source and these integrations."""
    from django.db import connection, transaction

    from integrations.models import Integration, Source, Workspace

    slug = f"{SLUG_PREFIX}{secrets.token_hex(4)}"
    ids = []
    with transaction.atomic():
        workspace = Workspace.objects.create(name=f"Benchmark {slug}", slug=slug)
        source = Source.objects.create(workspace=workspace, name="Benchmark source")
        for spec in specs:
            integration = Integration(
                workspace=workspace,
                name=spec.name,
                kind=spec.kind,
                api_base_url=spec.api_base_url,
                paused=spec.paused,
            )
            integration.set_settings(spec.settings)
            integration.save()
            ids.append(integration.pk)
    return BenchData(workspace.pk, slug, source.write_key, ids, connection.vendor, db_version)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of values sorted ascending (NaN for none)."""
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[rank]


# --- Processes -----------------------------------------------------------------------------


def console_server(port: int, workers: int) -> Server:
    """The console under gunicorn as ingest.py runs it (sync workers, DEBUG off)."""
    options = argparse.Namespace(workers=workers, worker_class="sync", threads=1, floor_mode="orm")
    return Server("console", options, port)


# As production runs them (README), their poll interval included.
WORKER_COMMAND = [sys.executable, "manage.py", "db_worker", "--no-reload", "--no-startup-delay"]


class Workers:
    """``manage.py db_worker`` processes started by us, each logging to var/bench/."""

    def __init__(self, count: int, name: str, env: dict[str, str] | None = None) -> None:
        self.count, self.name = count, name
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.processes: list[subprocess.Popen] = []
        self.logs = [VAR_DIR / f"{name}-worker-{n}.log" for n in range(count)]

    def start(self) -> "Workers":
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        for n, path in enumerate(self.logs):
            with open(path, "wb") as output:
                self.processes.append(
                    subprocess.Popen(
                        [*WORKER_COMMAND, "--worker-id", f"{self.name}-{n}"],
                        cwd=BASE_DIR,
                        env=self.env,
                        stdin=subprocess.DEVNULL,
                        stdout=output,
                        stderr=subprocess.STDOUT,
                    )
                )
        return self

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def check_alive(self) -> None:
        for process, path in zip(self.processes, self.logs, strict=False):
            if process.poll() is not None:
                raise SystemExit(f"a worker stopped (exit {process.returncode}):\n{tail(path)}")

    def stop(self) -> None:
        """SIGTERM (a worker finishes its task), SIGKILL after 20 s."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes = []

    def errors(self) -> str:
        """Lines of the workers' logs that report an error (empty when none)."""
        found = []
        for path in self.logs:
            try:
                lines = path.read_text(errors="replace").splitlines()
            except OSError:
                continue
            found += [f"{path.name}: {line}" for line in lines if "ERROR" in line]
        return "\n".join(found[:20])


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- CPU accounting by group ---------------------------------------------------------------


@dataclass
class CpuShare:
    """Average cores used during a window, by group, and the machine's idle cores."""

    groups: dict[str, float] = field(default_factory=dict)
    postgres: float = 0.0
    client: float = 0.0
    other: float = 0.0
    idle: float = 0.0
    seconds: float = 0.0

    def describe(self) -> str:
        parts = [f"{name} {cores:.2f}" for name, cores in self.groups.items()]
        parts += [
            f"postgres {self.postgres:.2f}",
            f"bench {self.client:.2f}",
            f"other {self.other:.2f}",
            f"idle {self.idle:.2f}",
        ]
        return ", ".join(parts)


class CpuMeter:
    """CPU used between ``start`` and ``stop`` by named groups of processes (each given
    by its root pids; their children count with them), PostgreSQL, this process (the
    load generator and the benchmark's own work) and everything else."""

    def __init__(self, groups: dict[str, Iterable[int]]) -> None:
        self.roots = {name: set(pids) for name, pids in groups.items()}
        self.start = self._sample()

    @staticmethod
    def _sample() -> tuple:
        return _machine_ticks(), _processes(), os.times(), time.monotonic()

    def _group_of(self, parents: dict[int, int], pid: int) -> str | None:
        for _ in range(64):  # up the parent chain to a root (or to init)
            for name, roots in self.roots.items():
                if pid in roots:
                    return name
            pid = parents.get(pid, 0)
            if not pid:
                return None
        return None

    def stop(self) -> CpuShare | None:
        machine0, procs0, times0, t0 = self.start
        machine1, procs1, times1, t1 = self._sample()
        if machine0 is None or machine1 is None:
            return None
        seconds = t1 - t0
        share = CpuShare(groups=dict.fromkeys(self.roots, 0.0), seconds=seconds)
        parents = {pid: ppid for (pid, _), (_, ppid, _) in procs1.items()}
        for key, (name, _, ticks) in procs1.items():
            used = (ticks - (procs0[key][2] if key in procs0 else 0)) / CLOCK_TICKS / seconds
            group = self._group_of(parents, key[0])
            if group is not None:
                share.groups[group] += used
            elif name == "postgres" or name.startswith("postgres:"):
                share.postgres += used
        share.client = (times1.user + times1.system - times0.user - times0.system) / seconds
        busy = (machine1[0] - machine0[0]) / CLOCK_TICKS / seconds
        steal = (machine1[1] - machine0[1]) / CLOCK_TICKS / seconds
        known = sum(share.groups.values()) + share.postgres + share.client
        share.other = max(busy - known, 0.0)
        share.idle = max((os.cpu_count() or 1) - busy - steal, 0.0)
        return share


# --- Reporting -----------------------------------------------------------------------------


def describe_machine(db_version: str, busy_before: float | None) -> list[str]:
    """The report's first lines: cores, versions, database, how busy the machine was."""
    import django

    lines = [
        f"  machine   : {os.cpu_count()} CPU cores, Python {sys.version.split()[0]}, "
        f"Django {django.__version__}",
        f"  database  : {db_version} ({redacted(os.environ['DATABASE_URL'])})",
    ]
    if busy_before is not None:
        lines.append(f"  before run: {busy_before:.2f} cores busy with other processes")
    return lines


# --- What the log stores -------------------------------------------------------------------


def log_tables() -> list[Any]:
    """The models of the delivery log: exchanges, deliveries, earlier attempts."""
    from integrations.models import Delivery, DeliveryAttempt, Exchange

    return [Exchange, Delivery, DeliveryAttempt]


def stored_log_bytes(integration_id: int) -> tuple[int, str]:
    """Bytes the delivery log stores for one integration's rows, and how they were
    counted: on PostgreSQL ``pg_column_size`` of each whole row (values TOAST-compressed
    at their compressed size; indexes and page overhead not counted), on SQLite the sum
    of ``length()`` of every column."""
    from django.db import connection

    from integrations.models import Delivery, DeliveryAttempt, Exchange

    delivery = Delivery._meta.db_table
    wheres = {
        Exchange: ("", "t.integration_id = %s"),
        Delivery: ("", "t.integration_id = %s"),
        DeliveryAttempt: (f"JOIN {delivery} d ON d.id = t.delivery_id", "d.integration_id = %s"),
    }
    total = 0
    with connection.cursor() as cursor:
        for model, (join, where) in wheres.items():
            table = model._meta.db_table
            if connection.vendor == "postgresql":
                size = "pg_column_size(t.*)"
            else:
                columns = [f.column for f in model._meta.local_concrete_fields]
                size = " + ".join(f'COALESCE(LENGTH(t."{c}"), 0)' for c in columns)
            cursor.execute(
                f"SELECT COALESCE(SUM({size}), 0) FROM {table} t {join} WHERE {where}",  # noqa: S608
                [integration_id],
            )
            total += int(cursor.fetchone()[0])
    how = (
        "pg_column_size of the rows (TOAST-compressed, indexes not counted)"
        if connection.vendor == "postgresql"
        else "sum of length() of every column (SQLite)"
    )
    return total, how


def relation_sizes(models: Iterable[Any]) -> dict[str, int]:
    """``pg_total_relation_size`` (table, TOAST and indexes) of each model's table, on
    PostgreSQL; empty on SQLite."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return {}
    sizes = {}
    with connection.cursor() as cursor:
        for model in models:
            table = model._meta.db_table
            cursor.execute("SELECT pg_total_relation_size(%s)", [table])
            sizes[table] = int(cursor.fetchone()[0])
    return sizes

#!/usr/bin/env python
"""Ingest throughput of the console's Segment-compatible API, beside a minimal Django floor.

Usage (from the repository root, with the project's virtualenv)::

    DATABASE_URL=postgres://console:console@127.0.0.1:5432/console_bench \\
        .venv/bin/python benchmarks/ingest.py [--duration 20] [--clients 16] [--workers N]
            [--worker-class sync|gthread] [--threads T] [--port 8765] [--warmup 3]
            [--scenarios batch,track] [--servers console,floor] [--floor-mode orm|sql]
            [--integrations webhook,customerio] [--wait-idle 120] [--keep]

Without ``DATABASE_URL`` it uses a throwaway SQLite file, var/bench/ingest.sqlite3, created
afresh and deleted at the end. ``--help`` lists every option.

What it does
    1. Refuses a database that looks like it holds real data: one with workspaces whose slug
       does not start with ``bench-``, or with tables but no ``django_migrations``
       (``--allow-existing-data`` overrides); refuses a working tree whose models are ahead
       of its migrations. Then runs ``migrate`` and creates a workspace ``bench-<random>``
       with one Segment source (and the ``--integrations`` listed, by kind, default none:
       ingest writes the same whatever they are — routing them is the workers' part, which
       ``benchmarks/end_to_end.py`` measures), plus the floor's table ``bench_floor_event``.
    2. Starts the console (``gunicorn console.wsgi``) on 127.0.0.1 with ``DEBUG`` off (DEBUG
       would keep every SQL query in memory), throwaway ``SECRET_KEY`` and
       ``SECRETS_ENCRYPTION_KEYS`` (unless set in the environment),
       ``ALLOWED_HOSTS=127.0.0.1``, ``SECURE_SSL_REDIRECT=false``, ``LOG_LEVEL=WARNING``.
       Default: sync workers, 2 x cores + 1 of them (see "Server" below).
    3. For each scenario, ``--clients`` concurrent clients (one asyncio loop in this
       process, each client one request at a time, keep-alive when the server allows it)
       POST for ``--warmup`` seconds (not measured) then ``--duration`` seconds:
         batch   /v1/batch, 100 track messages per request (~60 KB, as analytics-python)
         track   /v1/track, one track message per request
       Messages are realistic track calls (userId, anonymousId, event, properties,
       context, integrations, timestamp, sentAt) with a fresh uuid4 messageId each, sent
       with Basic auth (the source's write key as user name).
    4. Does the same against the floor (``gunicorn benchmarks.floor.wsgi``): same gunicorn
       options, same database and database options, same paths and bodies.
    5. Prints, per scenario and server: requests, events, events/s, p50/p99 latency of a
       request, errors (non-200 or no answer), and where the machine's CPU went (gunicorn,
       PostgreSQL, this load generator, other processes, idle); then the console/floor
       ratio per scenario and the goal; then checks that the rows stored equal the events
       acknowledged (``accepted`` in batch answers, one per non-duplicate track answer,
       warm-up included); then a Markdown table for the README.
    6. Stops the servers and deletes what it created (the bench workspace, its events,
       deliveries and queued tasks, the floor table; the throwaway SQLite file);
       ``--keep`` leaves them.

The floor, and why it is fair
    ``benchmarks/floor/`` is a Django project with no middleware and one view, served by
    the same gunicorn configuration on the same database with the same database options
    (its settings import the console's ``DATABASES``). It parses the body with
    ``json.loads`` (a batch must be parsed to be split into events) and writes one row per
    message, the message re-serialised with ``json.dumps``, into a JSON column (``jsonb``
    on PostgreSQL, JSON-checked text on SQLite, as the console's ``Event.payload``), in one
    multi-row ``INSERT`` in autocommit, then answers ``{"success": true, "accepted": n}``.
    No authentication, validation, normalisation, deduplication, typed columns, secondary
    indexes or fan-out: the least work with which Django can store every event durably,
    i.e. the floor this machine allows. ``--floor-mode orm`` (the default) uses
    ``RawEvent.objects.bulk_create`` instead, the idiomatic minimal view, which is the
    floor the goals are stated against: on PostgreSQL, /v1/batch at >= 80 % of it with no
    integration and >= 70 % with two (a webhook and Customer.io); on SQLite, >= 50 % of it
    with p99 under 200 ms at 8 clients.

Server
    ``--worker-class sync`` (default) with 2 x cores + 1 workers measured best for both
    servers on a 2-core machine; ``gthread`` is available to compare.

Measurement
    events/s counts the events of the requests started in the measured window that got a
    200, divided by the time from the window's start to the last of them finishing.
    Latency is per request, from writing it (connecting first when the server closed the
    previous connection, as sync workers do) to reading the whole answer. On a 2-core
    machine the load generator shares the CPU with the servers; its share is printed, as
    is the share of other processes (the script waits up to ``--wait-idle`` seconds for
    the machine to be quiet before each run, and warns when it is not). "CPU us/ev" is the
    CPU time of gunicorn and PostgreSQL per stored event: a cost that other processes
    hardly change, so the floor/console cost ratio stays meaningful on a shared machine
    where events/s does not. Nothing but
    127.0.0.1 is ever contacted; every request times out after 30 s and each run stops by
    itself after ``warmup + duration``.
"""

import argparse
import math
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var" / "bench"
SLUG_PREFIX = "bench-"

if str(BASE_DIR) not in sys.path:
    sys.path.insert(0, str(BASE_DIR))

from benchmarks.loadgen import HOST, LoadResult, Payloads, run_load  # noqa: E402

SCENARIOS = {"batch": "/v1/batch", "track": "/v1/track"}
SERVERS = {"console": "console.wsgi", "floor": "benchmarks.floor.wsgi"}
SETTINGS = {"console": "console.settings", "floor": "benchmarks.floor.settings"}
# Integrations of the bench workspace, by kind: never called (no worker runs here).
INTEGRATION_SETTINGS = {
    "webhook": {"url": f"http://{HOST}:9/bench"},
    "customerio": {"site_id": "bench", "api_key": "bench-key"},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    cpus = os.cpu_count() or 1
    parser = argparse.ArgumentParser(
        description="Ingest throughput of the console vs a minimal Django view (see docstring).",
    )
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds (20)")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds first (3)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (16)")
    parser.add_argument(
        "--workers", type=int, default=None, help=f"gunicorn workers (default {cpus * 2 + 1})"
    )
    parser.add_argument(
        "--worker-class", choices=("sync", "gthread"), default="sync", help="gunicorn (sync)"
    )
    parser.add_argument("--threads", type=int, default=4, help="threads per gthread worker (4)")
    parser.add_argument(
        "--port", type=int, default=8765, help="console port; the floor uses port+1 (8765)"
    )
    parser.add_argument("--batch-size", type=int, default=100, help="events per batch (100)")
    parser.add_argument("--scenarios", default="batch,track", help="batch,track")
    parser.add_argument("--servers", default="console,floor", help="console,floor")
    parser.add_argument(
        "--integrations",
        default="",
        help="kinds of the enabled integrations of the bench workspace, comma-separated "
        "(webhook, customerio); ingest writes one routing job per request whatever they "
        "are, and no worker runs to route them (none)",
    )
    parser.add_argument(
        "--floor-mode",
        choices=("sql", "orm"),
        default="orm",
        help="how the floor inserts: bulk_create (orm) or one multi-row INSERT (sql) (orm)",
    )
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=30.0,
        help="before each run, wait up to this many seconds for other processes to leave "
        "the CPU idle (other people's test runs skew the numbers) (30)",
    )
    parser.add_argument("--keep", action="store_true", help="leave the bench data in place")
    parser.add_argument(
        "--allow-existing-data",
        action="store_true",
        help="run even if the database holds non-benchmark workspaces",
    )
    args = parser.parse_args(argv)
    args.workers = args.workers or cpus * 2 + 1
    args.integrations = [k.strip() for k in args.integrations.split(",") if k.strip()]
    unknown = [k for k in args.integrations if k not in INTEGRATION_SETTINGS]
    if unknown:
        parser.error(f"--integrations: choose among {', '.join(INTEGRATION_SETTINGS)}")
    args.scenarios = _choices(parser, "--scenarios", args.scenarios, SCENARIOS)
    args.servers = _choices(parser, "--servers", args.servers, SERVERS)
    if args.worker_class == "sync":
        args.threads = 1
    if args.duration <= 0 or args.clients < 1 or args.batch_size < 1:
        parser.error("--duration, --clients and --batch-size must be positive")
    return args


def _choices(parser: argparse.ArgumentParser, flag: str, value: str, allowed: dict) -> list[str]:
    chosen = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in allowed]
    if unknown or not chosen:
        parser.error(f"{flag}: choose among {', '.join(allowed)}")
    return chosen


def redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def prepare_environment(script: str = "ingest") -> Path | None:
    """The environment of this process and of the servers and workers it starts; the
    throwaway SQLite file, ``var/bench/<script>.sqlite3`` made afresh, when ``DATABASE_URL``
    is not set (None otherwise)."""
    throwaway = None
    if not os.environ.get("DATABASE_URL"):
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        throwaway = VAR_DIR / f"{script}.sqlite3"
        _remove_sqlite(throwaway)
        os.environ["DATABASE_URL"] = f"sqlite:///{throwaway}"
    os.environ["DEBUG"] = "0"  # DEBUG keeps every SQL query in memory: not what we measure
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(40))
    if not os.environ.get("SECRETS_ENCRYPTION_KEYS"):
        from cryptography.fernet import Fernet

        os.environ["SECRETS_ENCRYPTION_KEYS"] = Fernet.generate_key().decode()
    os.environ["ALLOWED_HOSTS"] = HOST
    os.environ["SECURE_SSL_REDIRECT"] = "false"
    os.environ["INTEGRATIONS_ALLOW_PRIVATE_URLS"] = "true"  # the fake vendors are local
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS["console"]
    os.environ["PYTHONWARNINGS"] = "ignore:No directory at:UserWarning"  # WhiteNoise
    return throwaway


def _remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


# --- Database: safety check, setup, counts, cleanup ----------------------------------------


class Refused(SystemExit):
    pass


@dataclass
class BenchData:
    workspace_id: int
    slug: str
    write_key: str
    integration_ids: list[int]
    vendor: str
    db_version: str


def check_not_real_data(allow: bool) -> None:
    from django.db import connection

    tables = set(connection.introspection.table_names())
    if not tables:
        return
    if "django_migrations" not in tables:
        raise Refused(
            f"Refusing to run: the database holds {len(tables)} tables but no "
            "django_migrations table, so it is not a console database. Point DATABASE_URL "
            "at an empty, dedicated database (e.g. console_bench)."
        )
    if "integrations_workspace" not in tables:
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT slug FROM integrations_workspace")
        slugs = [row[0] for row in cursor.fetchall()]
    real = [s for s in slugs if not s.startswith(SLUG_PREFIX)]
    if real and not allow:
        shown = ", ".join(sorted(real)[:5]) + (" ..." if len(real) > 5 else "")
        raise Refused(
            f"Refusing to run: the database holds {len(real)} workspace(s) that are not "
            f"benchmark data ({shown}). The benchmark writes hundreds of thousands of events; "
            "point DATABASE_URL at a dedicated database (e.g. console_bench), or pass "
            "--allow-existing-data if this one really is disposable."
        )
    stale = [s for s in slugs if s.startswith(SLUG_PREFIX)]
    if stale:
        log(
            f"note: {len(stale)} workspace(s) left by earlier benchmark runs ({', '.join(stale)}); "
            "left alone (another run may be using them)."
        )


def check_migrations_complete() -> None:
    """Refuse a working tree whose models are ahead of its migrations (every request would
    fail on a missing column, which measures nothing)."""
    from django.core.management import call_command

    try:
        call_command("makemigrations", check=True, dry_run=True, verbosity=0)
    except SystemExit as exc:
        raise Refused(
            "Refusing to run: the models have changes that no migration covers (see "
            "`python manage.py makemigrations --dry-run`), so requests would fail on missing "
            "columns. Add the migration, or benchmark a clean checkout, e.g.:\n"
            "  git archive HEAD | tar -x -C var/bench-src && cp -r benchmarks var/bench-src/ && "
            "cd var/bench-src && ../../.venv/bin/python benchmarks/ingest.py"
        ) from exc


def check_schema_matches() -> None:
    """Refuse a database whose tables lack columns of the models although ``migrate`` has
    nothing left to apply: migrations were edited in place after this database applied
    them (it happens while a project is young)."""
    from django.apps import apps
    from django.db import connection

    missing = []
    with connection.cursor() as cursor:
        tables = set(connection.introspection.table_names(cursor))
        for model in apps.get_app_config("integrations").get_models():
            table = model._meta.db_table
            if table not in tables:
                missing.append(table)
                continue
            columns = {
                c.name for c in connection.introspection.get_table_description(cursor, table)
            }
            missing += [
                f"{table}.{f.column}"
                for f in model._meta.local_concrete_fields
                if f.column not in columns
            ]
    if missing:
        raise Refused(
            "Refusing to run: the database lacks "
            + ", ".join(missing[:5])
            + (" ..." if len(missing) > 5 else "")
            + " although every migration is applied, so the migrations were edited after it "
            "applied them. Recreate the benchmark database (e.g. dropdb console_bench && "
            "createdb -O console console_bench) and run again."
        )


def setup_database(args: argparse.Namespace) -> BenchData:
    import django
    from django.core.management import call_command
    from django.db import connection, transaction

    django.setup()
    check_not_real_data(args.allow_existing_data)
    check_migrations_complete()
    log("migrating the database ...")
    call_command("migrate", interactive=False, verbosity=0)
    check_schema_matches()

    from benchmarks.floor.schema import TABLE, create_table_sql
    from integrations.models import Integration, Source, Workspace

    with connection.cursor() as cursor:
        cursor.execute(create_table_sql(connection.vendor))
        cursor.execute(f"DELETE FROM {TABLE}")  # noqa: S608 (a constant)

    slug = f"{SLUG_PREFIX}{secrets.token_hex(4)}"
    integration_ids = []
    with transaction.atomic():  # all or nothing
        workspace = Workspace.objects.create(name=f"Benchmark {slug}", slug=slug)
        source = Source.objects.create(workspace=workspace, name="Benchmark source")
        for number, kind in enumerate(args.integrations):
            integration = Integration(workspace=workspace, name=f"Bench {kind} {number}", kind=kind)
            integration.set_settings(INTEGRATION_SETTINGS[kind])
            integration.save()
            integration_ids.append(integration.pk)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SHOW server_version")
            version = f"PostgreSQL {cursor.fetchone()[0]}"
        elif connection.vendor == "sqlite":
            cursor.execute("SELECT sqlite_version()")
            version = f"SQLite {cursor.fetchone()[0]}"
        else:
            version = connection.vendor
    data = BenchData(
        workspace.pk, slug, source.write_key, integration_ids, connection.vendor, version
    )
    connection.close()
    return data


def stored_counts(data: BenchData) -> dict[str, int]:
    from django.db import connection

    from benchmarks.floor.schema import TABLE
    from integrations.models import Event, RoutingJob

    try:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT COUNT(*) FROM {TABLE}")  # noqa: S608 (a constant)
            floor = cursor.fetchone()[0]
        return {
            "console": Event.objects.filter(workspace_id=data.workspace_id).count(),
            "routing_jobs": RoutingJob.objects.filter(workspace_id=data.workspace_id).count(),
            "floor": floor,
        }
    finally:
        connection.close()


def cleanup(data: BenchData) -> None:
    """Delete the bench data with set-based DELETEs (the ORM would load every event)."""
    from django.db import transaction
    from django_tasks_db.models import DBTaskResult

    from benchmarks.floor.schema import TABLE
    from integrations.models import (
        Delivery,
        DeliveryAttempt,
        Dispatch,
        Event,
        EventSearchEntry,
        Exchange,
        RoutingJob,
        Workspace,
    )

    ws, ids = data.workspace_id, data.integration_ids
    with transaction.atomic():
        for model, lookup in (
            (RoutingJob, {"workspace_id": ws}),
            (Dispatch, {"integration_id__in": ids}),
            (DeliveryAttempt, {"delivery__integration_id__in": ids}),
            (Delivery, {"integration_id__in": ids}),
            (Exchange, {"integration_id__in": ids}),
            (EventSearchEntry, {"event__workspace_id": ws}),
            (Event, {"workspace_id": ws}),
        ):
            model.objects.filter(**lookup)._raw_delete(model.objects.db)
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {TABLE}")
        DBTaskResult.objects.filter(task_path__startswith="integrations.").delete()
        Workspace.objects.filter(pk=ws).delete()
        _delete_history(ws, ids)
    connection.close()


def _delete_history(workspace_id: int, integration_ids: list[int]) -> None:
    """The configuration history (django-simple-history) of the bench objects, if any."""
    from django.apps import apps

    for model in apps.get_models():
        manager = getattr(model, "history", None)
        historical = getattr(manager, "model", None)
        if historical is None or historical is model:
            continue
        names = {f.name for f in historical._meta.fields} | {
            f.attname for f in historical._meta.fields
        }
        if model._meta.label == "integrations.Workspace":
            historical.objects.filter(id=workspace_id).delete()
        elif "workspace_id" in names:
            historical.objects.filter(workspace_id=workspace_id).delete()
        elif "integration_id" in names and integration_ids:
            historical.objects.filter(integration_id__in=integration_ids).delete()


# --- Servers ---------------------------------------------------------------------------------


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn does
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


class Server:
    """One gunicorn (master + workers) started by us, stopped by pid."""

    def __init__(self, name: str, args: argparse.Namespace, port: int) -> None:
        self.name = name
        self.args = args
        self.port = port
        self.log_path = VAR_DIR / f"gunicorn-{name}.log"
        self.process: subprocess.Popen | None = None

    @property
    def description(self) -> str:
        a = self.args
        if a.worker_class == "gthread":
            kind = f"gthread, {a.workers} workers x {a.threads} threads"
        else:
            kind = f"sync, {a.workers} workers"
        return f"gunicorn {SERVERS[self.name]} ({kind}) on {HOST}:{self.port}"

    def command(self) -> list[str]:
        a = self.args
        command = [
            sys.executable, "-m", "gunicorn", SERVERS[self.name],
            "--bind", f"{HOST}:{self.port}",
            "--workers", str(a.workers),
            "--worker-class", a.worker_class,
            "--backlog", "2048",
            "--timeout", "60",
            "--graceful-timeout", "10",
            "--log-level", "warning",
            "--error-logfile", str(self.log_path),
            "--chdir", str(BASE_DIR),
        ]  # fmt: skip
        if a.worker_class == "gthread":
            command += ["--threads", str(a.threads)]
        return command

    def start(self) -> None:
        if not port_free(self.port):
            raise SystemExit(f"Port {self.port} on {HOST} is in use; pick another with --port.")
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path.unlink(missing_ok=True)
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": SETTINGS[self.name],
            "BENCH_FLOOR_MODE": self.args.floor_mode,
            # WhiteNoise warns at every worker start that collectstatic has not been run.
            "PYTHONWARNINGS": "ignore:No directory at:UserWarning",
        }
        self.process = subprocess.Popen(self.command(), env=env, cwd=BASE_DIR)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} server exited at start:\n{self.log_tail()}")
            if self._answers():
                return
            time.sleep(0.2)
        self.stop()
        raise SystemExit(f"{self.name} server did not answer within 60 s:\n{self.log_tail()}")

    def _answers(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=5) as sock:
                sock.sendall(f"GET / HTTP/1.0\r\nHost: {HOST}\r\n\r\n".encode())
                return sock.recv(16).startswith(b"HTTP/")
        except OSError:
            return False

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("not started")
        return self.process.pid

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)  # gunicorn: graceful stop of its workers
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text().splitlines()[-lines:])
        except OSError:
            return "(no log)"


# --- CPU accounting (Linux /proc; absent elsewhere) ---------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _machine_ticks() -> tuple[int, int] | None:
    """(busy, steal) ticks of the whole machine since boot."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return user + nice + system + irq + softirq, steal


def _processes() -> dict[tuple[int, int], tuple[str, int, int]]:
    """{(pid, start time): (command name, parent pid, CPU ticks)} of every process."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat.rpartition(")")[2].split()
        ticks = int(fields[11]) + int(fields[12])  # utime + stime (all threads)
        found[(int(entry.name), int(fields[19]))] = (name, int(fields[1]), ticks)
    return found


@dataclass
class CpuShare:
    """Average cores used during a run, by whom."""

    server: float  # gunicorn master and workers
    postgres: float  # every process named postgres (the server's backends included)
    client: float  # this process: the load generator
    other: float  # everything else on the machine (other people's jobs...)
    idle: float
    steal: float  # taken by the hypervisor
    seconds: float  # length of the run


class CpuMeter:
    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.start = self._sample()

    def _sample(self) -> tuple:
        return _machine_ticks(), _processes(), os.times(), time.monotonic()

    def _groups(self, processes: dict) -> dict[str, set]:
        server, postgres = set(), set()
        for key, (name, ppid, _) in processes.items():
            if key[0] == self.server_pid or ppid == self.server_pid:
                server.add(key)
            elif name == "postgres" or name.startswith("postgres:"):
                postgres.add(key)
        return {"server": server, "postgres": postgres}

    def stop(self) -> CpuShare | None:
        machine0, procs0, times0, t0 = self.start
        machine1, procs1, times1, t1 = self._sample()
        if machine0 is None or machine1 is None:
            return None
        seconds = t1 - t0

        def used(keys: set) -> float:
            # Processes born during the run count from zero; those that died are lost.
            ticks = sum(procs1[k][2] - (procs0[k][2] if k in procs0 else 0) for k in keys)
            return ticks / CLOCK_TICKS / seconds

        groups = self._groups(procs1)
        server, postgres = used(groups["server"]), used(groups["postgres"])
        client = (times1.user + times1.system - times0.user - times0.system) / seconds
        busy = (machine1[0] - machine0[0]) / CLOCK_TICKS / seconds
        steal = (machine1[1] - machine0[1]) / CLOCK_TICKS / seconds
        cores = os.cpu_count() or 1
        return CpuShare(
            server=server,
            postgres=postgres,
            client=client,
            other=max(busy - server - postgres - client, 0.0),
            idle=max(cores - busy - steal, 0.0),
            steal=steal,
            seconds=seconds,
        )


def machine_busy(seconds: float = 1.0) -> float | None:
    """Cores busy (or stolen) right now, before the benchmark loads the machine."""
    before = _machine_ticks()
    time.sleep(seconds)
    after = _machine_ticks()
    if before is None or after is None:
        return None
    return (after[0] + after[1] - before[0] - before[1]) / CLOCK_TICKS / seconds


def wait_for_idle(limit: float, threshold: float = 0.3) -> None:
    """Wait (up to ``limit`` seconds) until other processes use less than ``threshold`` cores."""
    deadline = time.monotonic() + limit
    warned = False
    while True:
        busy = machine_busy(1.0)
        if busy is None or busy < threshold:
            return
        if time.monotonic() >= deadline:
            log(f"WARNING: still {busy:.2f} cores busy with other processes; running anyway.")
            return
        if not warned:
            log(f"waiting for other processes to finish ({busy:.2f} cores busy) ...")
            warned = True


# --- Running and reporting -------------------------------------------------------------------


@dataclass
class Outcome:
    scenario: str
    server: str
    requests: int
    events: int
    events_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    acknowledged: int
    acknowledged_in_window: int
    cpu: CpuShare | None
    error_detail: str

    @property
    def cpu_us_per_event(self) -> float:
        """CPU of gunicorn + PostgreSQL per stored event after the warm-up: unlike events/s,
        hardly affected by other processes competing for the CPU."""
        if self.cpu is None or not self.acknowledged_in_window:
            return float("nan")
        used = (self.cpu.server + self.cpu.postgres) * self.cpu.seconds
        return used / self.acknowledged_in_window * 1e6


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1))  # nearest

    return sorted_values[rank]


def summarise(scenario: str, server: str, result: LoadResult, cpu: CpuShare | None) -> Outcome:
    measured = result.measured
    ok = [s for s in measured if s.status == 200]
    events = sum(s.acknowledged for s in ok)
    elapsed = (max(s.end for s in ok) - result.window_start) if ok else float("nan")
    latencies = sorted((s.end - s.start) * 1000 for s in measured)
    errors = len(measured) - len(ok)
    detail = ""
    if result.errors:
        kinds = ", ".join(f"{k}: {v}" for k, v in result.errors.most_common())
        detail = f"{kinds} (first: {result.error_example})"
    return Outcome(
        scenario=scenario,
        server=server,
        requests=len(measured),
        events=events,
        events_per_s=events / elapsed if ok else 0.0,
        p50_ms=percentile(latencies, 0.50),
        p99_ms=percentile(latencies, 0.99),
        errors=errors,
        acknowledged=result.acknowledged_total,
        acknowledged_in_window=result.acknowledged_in_window,
        cpu=cpu,
        error_detail=detail,
    )


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def run_server(
    name: str, args: argparse.Namespace, port: int, data: BenchData, payloads: Payloads
) -> list[Outcome]:
    server = Server(name, args, port)
    log(f"starting {server.description}")
    server.start()
    outcomes = []
    try:
        time.sleep(0.5)  # let every worker boot before the warm-up
        for scenario in args.scenarios:
            make_body = payloads.batch if scenario == "batch" else payloads.track
            log(
                f"{name}: {scenario} ({SCENARIOS[scenario]}), {args.clients} clients, "
                f"{args.warmup:g} s warm-up + {args.duration:g} s ..."
            )
            wait_for_idle(args.wait_idle)
            meters: list[CpuMeter] = []
            result = run_load(
                port,
                SCENARIOS[scenario],
                data.write_key,
                make_body,
                clients=args.clients,
                warmup=args.warmup,
                duration=args.duration,
                on_window_start=lambda m=meters, pid=server.pid: m.append(CpuMeter(pid)),
            )
            outcome = summarise(scenario, name, result, meters[0].stop() if meters else None)
            log(
                f"{name}: {scenario}: {outcome.events_per_s:,.0f} events/s, "
                f"p50 {outcome.p50_ms:.1f} ms, p99 {outcome.p99_ms:.1f} ms, "
                f"{outcome.errors} errors"
            )
            outcomes.append(outcome)
    finally:
        server.stop()
    if server.log_path.exists() and server.log_path.stat().st_size:
        log(f"{name} server log ({server.log_path}):\n{server.log_tail(15)}")
    return outcomes


CPU_HEADER = "CPU cores: gunicorn / postgres / loadgen / other / idle+steal"


def fmt_cpu(cpu: CpuShare | None) -> str:
    if cpu is None:
        return "n/a"
    return (
        f"{cpu.server:.2f} / {cpu.postgres:.2f} / {cpu.client:.2f} / {cpu.other:.2f} / "
        f"{cpu.idle:.2f}+{cpu.steal:.2f}"
    )


def report(
    args: argparse.Namespace,
    data: BenchData,
    outcomes: list[Outcome],
    counts: dict[str, int],
    payloads: Payloads,
) -> None:
    import django

    cores = os.cpu_count()
    server_kind = (
        f"gthread, {args.workers} workers x {args.threads} threads"
        if args.worker_class == "gthread"
        else f"sync, {args.workers} workers"
    )
    print()
    print("Ingest benchmark")
    print(
        f"  machine   : {cores} CPU cores, Python {sys.version.split()[0]}, "
        f"Django {django.__version__}"
    )
    print(f"  database  : {data.db_version} ({redacted(os.environ['DATABASE_URL'])})")
    print(f"  gunicorn  : {server_kind}, bound to {HOST}")
    print(
        f"  load      : {args.clients} concurrent clients, {args.warmup:g} s warm-up + "
        f"{args.duration:g} s measured per scenario and server"
    )
    print(
        f"  messages  : track calls, ~{payloads.average_size('track') / 1000:.1f} KB each; batch "
        f"= {args.batch_size} per request (~{payloads.average_size('batch') / 1000:.0f} KB)"
    )
    kinds = ", ".join(args.integrations) or "no integration"
    print(f"  workspace : {data.slug}, {kinds}")
    floor_how = "one multi-row INSERT" if args.floor_mode == "sql" else "bulk_create"
    print(f"  floor     : benchmarks.floor, {floor_how} ({args.floor_mode}), no middleware")
    if getattr(args, "busy_before", None) is not None:
        print(f"  before run: {args.busy_before:.2f} cores busy with other processes")
    print()
    header = (
        f"{'scenario':<8} {'server':<8} {'requests':>9} {'events':>9} {'events/s':>9} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'errors':>6} {'CPU us/ev':>9}  {CPU_HEADER}"
    )
    print(header)
    print("-" * len(header))
    for o in outcomes:
        print(
            f"{o.scenario:<8} {o.server:<8} {o.requests:>9,} {o.events:>9,} "
            f"{o.events_per_s:>9,.0f} {o.p50_ms:>8.1f} {o.p99_ms:>8.1f} {o.errors:>6} "
            f"{o.cpu_us_per_event:>9,.0f}  {fmt_cpu(o.cpu)}"
        )
    for o in outcomes:
        if o.error_detail:
            print(f"  errors of {o.scenario}/{o.server}: {o.error_detail}")
    print()
    by_key = {(o.scenario, o.server): o for o in outcomes}
    ratios = {}
    for scenario in args.scenarios:
        console, floor = by_key.get((scenario, "console")), by_key.get((scenario, "floor"))
        if console and floor and floor.events_per_s:
            ratios[scenario] = console.events_per_s / floor.events_per_s
            cost = floor.cpu_us_per_event / console.cpu_us_per_event
            print(
                f"console/floor {scenario:<5}: {ratios[scenario]:6.1%} of the throughput "
                f"({console.events_per_s:,.0f} / {floor.events_per_s:,.0f} events/s); "
                f"CPU per event: floor/console {cost:.1%} "
                f"({floor.cpu_us_per_event:,.0f} / {console.cpu_us_per_event:,.0f} us)"
            )
    batch = by_key.get(("batch", "console"))
    if batch and "batch" in ratios:
        if data.vendor == "sqlite":
            goal, p99_goal = 0.50, 200.0
        else:
            goal, p99_goal = (0.70 if args.integrations else 0.80), None
        met = ratios["batch"] >= goal and (p99_goal is None or batch.p99_ms < p99_goal)
        wanted = f">= {goal:.0%} of the floor" + (f", p99 < {p99_goal:.0f} ms" if p99_goal else "")
        print(
            f"goal       : {'MET' if met else 'NOT MET'}: /v1/batch at {ratios['batch']:.0%} of "
            f"the floor, p99 {batch.p99_ms:.0f} ms (goal {wanted})"
        )
    print()
    all_ok = True
    for server in args.servers:
        acknowledged = sum(o.acknowledged for o in outcomes if o.server == server)
        stored = counts[server]
        ok = stored == acknowledged
        all_ok &= ok
        table = "integrations_event rows of " + data.slug if server == "console" else "floor rows"
        print(
            f"stored check {server:<7}: {stored:,} {table}, {acknowledged:,} acknowledged "
            f"(warm-up included): {'OK' if ok else 'MISMATCH'}"
        )
    if "console" in args.servers:
        print(f"routing jobs           : {counts['routing_jobs']:,} (no worker runs to route them)")
    print()
    print("Markdown (README):")
    print()
    print(
        f"_{cores} cores, {data.db_version}, gunicorn {server_kind}, {args.clients} clients, "
        f"{args.duration:g} s per run, batch = {args.batch_size} track events, integrations: "
        f"{kinds}._"
    )
    print()
    print(
        "| Scenario | Server | Events/s | p50 (ms) | p99 (ms) | Errors "
        "| CPU µs/event (app+db) | Console/floor |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for o in outcomes:
        ratio = (
            f"{ratios[o.scenario]:.0%}" if o.server == "console" and o.scenario in ratios else ""
        )
        name = f"`{SCENARIOS[o.scenario]}`" + (
            f" x{args.batch_size}" if o.scenario == "batch" else ""
        )
        print(
            f"| {name} | {o.server} | {o.events_per_s:,.0f} | {o.p50_ms:.1f} | {o.p99_ms:.1f} "
            f"| {o.errors} | {o.cpu_us_per_event:,.0f} | {ratio} |"
        )
    if not all_ok:
        print("\nWARNING: stored rows differ from acknowledged events (see above).")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    throwaway = prepare_environment()
    log(f"database: {redacted(os.environ['DATABASE_URL'])}")
    payloads = Payloads(args.batch_size)
    busy = machine_busy()
    if busy is not None:
        args.busy_before = busy
        if busy > 0.25:
            log(
                f"WARNING: the machine is already busy ({busy:.2f} cores used by other "
                "processes); results will be lower and noisier than on an idle machine."
            )
    data = setup_database(args)
    log(f"created workspace {data.slug} ({data.db_version})")
    outcomes: list[Outcome] = []
    try:
        for offset, name in enumerate(args.servers):
            outcomes += run_server(name, args, args.port + offset, data, payloads)
        counts = stored_counts(data)
        report(args, data, outcomes, counts, payloads)
    finally:
        if args.keep:
            log(f"--keep: left workspace {data.slug}, its events and the floor table in place")
        else:
            log("cleaning up the bench data ...")
            cleanup(data)
            if throwaway is not None:
                _remove_sqlite(throwaway)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)

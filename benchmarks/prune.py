#!/usr/bin/env python
"""Retention at volume: ``prune_events`` on a PostgreSQL database filled with a day of a
busy workspace, while ingest runs.

Usage (from the repository root, with the project's virtualenv)::

    DATABASE_URL=postgres://console:console@127.0.0.1:5432/console_bench \\
        .venv/bin/python benchmarks/prune.py [--events 1000000] [--recent N]
            [--retrying 1000] [--waiting 1000] [--days 30] [--batch-size 1000] [--pause 0]
            [--load-rate 500] [--load-batch 10] [--baseline-seconds 20] [--port 8785]
            [--wait-idle 30] [--keep]

PostgreSQL only (the data is made with ``generate_series``). ``--help`` lists every option.

What it does
    1. Refuses a database that is not a benchmark one (ingest.py's checks) and migrates
       it. Creates a workspace ``bench-<random>`` with a webhook and a Customer.io
       integration (never called: no worker runs), and fills it with SQL
       (``INSERT ... SELECT generate_series``):
         - ``--events`` track events received over one day that ended an hour before
           the retention cutoff (``--days``), each with a webhook delivery and its own
           exchange (the event as body, ~0.7 KB), and a Customer.io delivery whose
           exchange, a ``/v2/batch`` request of 100 operations (~30 KB), it shares with
           99 others; 2 % of the webhook deliveries succeeded on a second attempt (an
           earlier attempt and its exchange); one finished task row per 100 events;
         - ``--retrying`` of those old events have a webhook delivery still retrying:
           they must survive, with their deliveries and exchanges;
         - ``--recent`` events (default a tenth of ``--events``) received within the
           retention, with the same deliveries and exchanges: they must survive;
         - a second workspace whose paused webhook holds ``--waiting`` old events in a
           dispatch: they must survive (and do not hold the first workspace back).
       Then ``VACUUM ANALYZE`` (the statistics autovacuum would have gathered), and the
       ``EXPLAIN (ANALYZE, BUFFERS)`` of the first batch query.
    2. Starts the console under gunicorn (as ingest.py does) and sends ``/v1/batch``
       requests of ``--load-batch`` events at ``--load-rate`` events/s (open loop,
       ``benchmarks/paced.py``): ``--baseline-seconds`` measured before the prune, then
       for as long as ``manage.py prune_events --days D --batch-size B`` runs.
    3. Prints the seconds the prune took, rows deleted by table and rows/s, ingest
       p50/p99 (per request) before and during, the tables' sizes (heap, TOAST and
       indexes) before, after the prune and after a ``VACUUM``, the dead rows left for
       autovacuum, and checks that everything that had to survive did and that no
       exchange was left without a delivery; then a Markdown table.
    4. Stops the server and deletes what it created (``--keep`` leaves it).
"""

import argparse
import datetime as dt
import json
import os
import random
import re
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
if str(BASE_DIR) not in sys.path:
    sys.path.insert(0, str(BASE_DIR))

from benchmarks import harness  # noqa: E402
from benchmarks.loadgen import track_message  # noqa: E402
from benchmarks.paced import PacedLoad, TaggedPayloads  # noqa: E402

BATCH_OPERATIONS = 100  # Customer.io operations per /v2/batch exchange
RETRIED_EVERY = 50  # one webhook delivery in 50 succeeded on its second attempt
EVENTS_PER_TASK = 100
PRUNE_LOG = harness.VAR_DIR / "prune_events.log"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    cpus = os.cpu_count() or 1
    parser = argparse.ArgumentParser(
        description="prune_events at volume on PostgreSQL, beside live ingest (see docstring)."
    )
    parser.add_argument("--events", type=int, default=1_000_000, help="old events (1000000)")
    parser.add_argument(
        "--recent", type=int, default=None, help="events within the retention (events / 10)"
    )
    parser.add_argument(
        "--retrying", type=int, default=1000, help="old events still retrying (1000)"
    )
    parser.add_argument(
        "--waiting", type=int, default=1000, help="old events waiting in a dispatch (1000)"
    )
    parser.add_argument("--days", type=int, default=30, help="the retention, in days (30)")
    parser.add_argument("--batch-size", type=int, default=1000, help="prune_events' (1000)")
    parser.add_argument("--pause", type=float, default=0.0, help="prune_events' --pause (0)")
    parser.add_argument(
        "--load-rate", type=float, default=500.0, help="ingest events/s meanwhile (500)"
    )
    parser.add_argument("--load-batch", type=int, default=10, help="events per request (10)")
    parser.add_argument("--clients", type=int, default=8, help="requests in flight at most (8)")
    parser.add_argument(
        "--baseline-seconds", type=float, default=20.0, help="ingest before the prune (20)"
    )
    parser.add_argument(
        "--web-workers", type=int, default=cpus * 2 + 1, help=f"gunicorn workers ({cpus * 2 + 1})"
    )
    parser.add_argument("--port", type=int, default=8785, help="the console's port (8785)")
    harness.add_common_arguments(parser, "the bench workspaces")
    args = parser.parse_args(argv)
    args.recent = args.events // 10 if args.recent is None else args.recent
    if args.events < BATCH_OPERATIONS or min(args.recent, args.retrying, args.waiting) < 0:
        parser.error(f"--events at least {BATCH_OPERATIONS}; the other counts not negative")
    if args.retrying > args.events // 2 or args.waiting > 2500:
        parser.error("--retrying at most half of --events, --waiting at most 2500")
    if args.load_rate <= 0 or args.load_batch < 1 or args.baseline_seconds <= 0:
        parser.error("--load-rate, --load-batch and --baseline-seconds must be positive")
    return args


# --- Filling the database with SQL -----------------------------------------------------------


def tables() -> dict[str, Any]:
    from django_tasks_db.models import DBTaskResult

    from integrations.models import Delivery, DeliveryAttempt, Dispatch, Event, Exchange

    return {
        "events": Event,
        "deliveries": Delivery,
        "attempts": DeliveryAttempt,
        "exchanges": Exchange,
        "dispatches": Dispatch,
        "task rows": DBTaskResult,
    }


def table(label: str) -> str:
    return tables()[label]._meta.db_table


def reserve_ids(label: str, count: int) -> int:
    """The first of ``count`` consecutive ids taken from the table's sequence."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table(label)])
        sequence = cursor.fetchone()[0]
        cursor.execute("SELECT nextval(%s)", [sequence])
        first = cursor.fetchone()[0]
        cursor.execute("SELECT setval(%s, %s)", [sequence, first + count - 1])
    return first


@dataclass
class Cohort:
    """Events received over a span of time, with their deliveries and exchanges."""

    label: str  # part of the message ids and of the uuids made from them
    count: int
    start: dt.datetime
    seconds: float
    retrying_every: int = 0  # every n-th one has a webhook delivery still retrying


class Filler:
    def __init__(self, data: harness.BenchData, token: str) -> None:
        self.data = data
        self.token = token
        self.webhook, self.customerio = data.integration_ids
        rng = random.Random(11)
        message = track_message(rng, dt.datetime.now(dt.UTC))
        self.payload = json.dumps(message)
        self.headers = json.dumps(
            {"Content-Type": "application/json", "webhook-id": "msg", "webhook-signature": "v1,x"}
        )

    def execute(self, sql: str, params: dict[str, Any]) -> None:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(sql, params)

    def uuid(self, label: str) -> str:
        """SQL for the uuid of event ``g`` of a cohort (md5 of the run token, label, g)."""
        return f"md5('{self.token}-{label}-' || g)::uuid"

    def cohort(self, cohort: Cohort, workspace_id: int, source_id: int | None) -> None:
        params = {
            "ws": workspace_id,
            "source": source_id,
            "n": cohort.count,
            "start": cohort.start,
            "step": cohort.seconds / cohort.count,
            "payload": self.payload,
            "label": f"bench-{self.token}-{cohort.label}-",
        }
        self.execute(
            f"""
            INSERT INTO {table("events")} (id, workspace_id, source_id, message_id, type, event,
                user_id, anonymous_id, group_id, original_timestamp, sent_at, received_at,
                timestamp, payload, is_test)
            SELECT {self.uuid(cohort.label)}, %(ws)s, %(source)s, %(label)s || g, 'track',
                'Order Completed', 'user-' || (g %% 50000), '', '', t, t, t, t,
                %(payload)s::jsonb || jsonb_build_object('messageId', %(label)s || g), false
            FROM (SELECT g, %(start)s + g * %(step)s * interval '1 second' AS t
                  FROM generate_series(1, %(n)s) g) s
            """,  # noqa: S608 (table and column names from the models)
            params,
        )

    def deliveries(self, cohort: Cohort) -> None:
        """A webhook delivery and exchange per event (some retried once, some retrying), a
        Customer.io delivery per event sharing a batch exchange with 99 others."""
        n = cohort.count
        webhook_exchanges = reserve_ids("exchanges", n)
        batch_exchanges = reserve_ids("exchanges", n // BATCH_OPERATIONS + 1)
        retried_exchanges = reserve_ids("exchanges", n // RETRIED_EVERY + 1)
        webhook_deliveries = reserve_ids("deliveries", n)
        params = {
            "n": n,
            "start": cohort.start,
            "step": cohort.seconds / n,
            "webhook": self.webhook,
            "cio": self.customerio,
            "wx": webhook_exchanges,
            "bx": batch_exchanges,
            "rx": retried_exchanges,
            "wd": webhook_deliveries,
            "every": cohort.retrying_every or n + 1,
            "retried": RETRIED_EVERY,
            "ops": BATCH_OPERATIONS,
            "payload": self.payload,
            "headers": self.headers,
            "retry_at": dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
        }
        times = "%(start)s + g * %(step)s * interval '1 second'"
        exchange_columns = (
            "id, integration_id, started_at, head_id, step, method, url, request_headers, "
            "request_body, response_status, response_headers, response_body, error, duration_ms"
        )
        exchanges = table("exchanges")
        # The webhook's exchanges: one per event, the event as body.
        self.execute(
            f"""
            INSERT INTO {exchanges} ({exchange_columns})
            SELECT %(wx)s + g - 1, %(webhook)s, {times}, NULL, 0, 'POST', 'https://hooks.example.com/in',
                %(headers)s::jsonb, %(payload)s,
                CASE WHEN g %% %(every)s = 0 THEN 503 ELSE 200 END, '{{}}'::jsonb, '', '', 1.0
            FROM generate_series(1, %(n)s) g
            """,  # noqa: S608 (table and column names from the models)
            params,
        )
        # Earlier attempts' exchanges (503), for one delivery in RETRIED_EVERY.
        self.execute(
            f"""
            INSERT INTO {exchanges} ({exchange_columns})
            SELECT %(rx)s + g / %(retried)s, %(webhook)s, {times}, NULL, 0, 'POST',
                'https://hooks.example.com/in', %(headers)s::jsonb, %(payload)s, 503,
                '{{}}'::jsonb, 'busy', '', 1.0
            FROM generate_series(1, %(n)s) g WHERE g %% %(retried)s = 1
            """,  # noqa: S608 (table and column names from the models)
            params,
        )
        # Customer.io's batch exchanges: 100 operations each.
        self.execute(
            f"""
            INSERT INTO {exchanges} ({exchange_columns})
            SELECT %(bx)s + b, %(cio)s, %(start)s + b * %(ops)s * %(step)s * interval '1 second',
                NULL, 0, 'POST', 'https://track.customer.io/api/v2/batch', %(headers)s::jsonb,
                (SELECT '{{"batch":[' || string_agg(format(
                    '{{"type":"person","identifiers":{{"id":"user-%%s"}},"action":"event",'
                    '"name":"Order Completed","id":"%%s","timestamp":1767225600,'
                    '"attributes":{{"order_id":"ord-%%s","revenue":%%s,"currency":"EUR"}}}}',
                    (b * %(ops)s + i) %% 50000, md5(b || '-' || i), md5(i || '-' || b),
                    (b + i) %% 200), ',') || ']}}'
                 FROM generate_series(1, %(ops)s) i),
                200, '{{}}'::jsonb, '{{}}', '', 3.0
            FROM generate_series(0, (%(n)s - 1) / %(ops)s) b
            """,  # noqa: S608 (table and column names from the models)
            params,
        )
        delivery_columns = (
            "id, event_id, integration_id, origin, status, attempt_count, manual_attempt_count, "
            "next_attempt_at, last_trigger, last_outcome, last_error, last_status_code, "
            "last_attempt_at, exchange_id, created_at, delivered_at, leased_until, lease_token"
        )
        deliveries = table("deliveries")
        event_id = self.uuid(cohort.label)
        self.execute(
            f"""
            INSERT INTO {deliveries} ({delivery_columns})
            SELECT %(wd)s + g - 1, {event_id}, %(webhook)s, 'live',
                CASE WHEN retrying THEN 'retrying' ELSE 'delivered' END,
                CASE WHEN g %% %(retried)s = 1 THEN 2 ELSE 1 END, 0,
                CASE WHEN retrying THEN %(retry_at)s::timestamptz END, 'scheduled',
                CASE WHEN retrying THEN 'retry' ELSE 'delivered' END,
                CASE WHEN retrying THEN 'HTTP 503' ELSE '' END,
                CASE WHEN retrying THEN 503 ELSE 200 END,
                {times}, %(wx)s + g - 1, {times},
                CASE WHEN retrying THEN NULL ELSE {times} END, NULL, NULL
            FROM (SELECT g, g %% %(every)s = 0 AS retrying FROM generate_series(1, %(n)s) g) s
            """,  # noqa: S608 (table and column names from the models)
            params,
        )
        self.execute(
            f"""
            INSERT INTO {deliveries} ({delivery_columns.removeprefix("id, ")})
            SELECT {event_id}, %(cio)s, 'live', 'delivered', 1, 0, NULL, 'scheduled',
                'delivered', '', 200, {times}, %(bx)s + (g - 1) / %(ops)s, {times}, {times},
                NULL, NULL
            FROM generate_series(1, %(n)s) g
            """,  # noqa: S608 (table and column names from the models)
            params,
        )
        self.execute(
            f"""
            INSERT INTO {table("attempts")} (delivery_id, number, trigger, outcome, error,
                status_code, exchange_id, started_at)
            SELECT %(wd)s + g - 1, 1, 'scheduled', 'retry', 'HTTP 503', 503,
                %(rx)s + g / %(retried)s, {times}
            FROM generate_series(1, %(n)s) g WHERE g %% %(retried)s = 1
            """,  # noqa: S608 (table and column names from the models)
            params,
        )

    def waiting_dispatch(self, integration_id: int, cohort: Cohort) -> None:
        self.execute(
            f"""
            INSERT INTO {table("dispatches")} (integration_id, origin, event_ids, size, done,
                started, created_at, next_attempt_at, waiting_reason, leased_until,
                lease_token, taken)
            SELECT %(integration)s, 'live', jsonb_agg({self.uuid(cohort.label)}::text ORDER BY g),
                %(n)s, 0, 0, %(start)s, %(start)s, 'paused', NULL, NULL, false
            FROM generate_series(1, %(n)s) g
            """,  # noqa: S608 (table and column names from the models)
            {"integration": integration_id, "n": cohort.count, "start": cohort.start},
        )

    def finished_tasks(self, count: int, finished_before: dt.datetime) -> None:
        from django_tasks_db.models import DBTaskResult

        rows = [
            DBTaskResult(
                status="SUCCESSFUL",
                args_kwargs={"args": [self.webhook, [n]], "kwargs": {}},
                task_path="integrations.delivery.tasks.deliver_dispatches",
                backend_name="default",
                run_after=finished_before - dt.timedelta(seconds=n),
                started_at=finished_before - dt.timedelta(seconds=n),
                finished_at=finished_before - dt.timedelta(seconds=n),
            )
            for n in range(count)
        ]
        DBTaskResult.objects.bulk_create(rows, batch_size=2000)


def fill(args: argparse.Namespace, main: harness.BenchData, held: harness.BenchData) -> dict:
    """The bench data (see the docstring); what it holds, for the checks."""
    from django.utils import timezone

    from integrations.models import Source

    now = timezone.now()
    cutoff = now - dt.timedelta(days=args.days)
    day = 86_400.0
    token = secrets.token_hex(3)
    filler = Filler(main, token)
    source = Source.objects.get(workspace_id=main.workspace_id).pk
    old = Cohort(
        "old",
        args.events,
        cutoff - dt.timedelta(days=1, hours=1),
        day,
        retrying_every=args.events // args.retrying if args.retrying else 0,
    )
    recent = Cohort("new", args.recent, now - dt.timedelta(days=1), day - 60)
    started = time.monotonic()
    harness.log(f"filling: {args.events:,} old events, their deliveries and exchanges ...")
    filler.cohort(old, main.workspace_id, source)
    filler.deliveries(old)
    if args.recent:
        harness.log(f"filling: {args.recent:,} recent events ...")
        filler.cohort(recent, main.workspace_id, source)
        filler.deliveries(recent)
    if args.waiting:
        waiting = Cohort("held", args.waiting, cutoff - dt.timedelta(days=1), 3600)
        held_source = Source.objects.get(workspace_id=held.workspace_id).pk
        filler.cohort(waiting, held.workspace_id, held_source)
        filler.waiting_dispatch(held.integration_ids[0], waiting)
    filler.finished_tasks(args.events // EVENTS_PER_TASK, cutoff - dt.timedelta(hours=1))
    filled = time.monotonic() - started
    harness.log(f"filled in {filled:.0f} s; VACUUM ANALYZE ...")
    vacuum(analyze=True)
    retrying = (args.events // old.retrying_every) if old.retrying_every else 0
    return {"cutoff": cutoff, "seconds": filled, "retrying": retrying}


def vacuum(analyze: bool = False) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for model in tables().values():
            cursor.execute(f"VACUUM {'ANALYZE ' if analyze else ''}{model._meta.db_table}")


# --- Measuring -------------------------------------------------------------------------------


def counts(main: harness.BenchData, held: harness.BenchData, cutoff: dt.datetime) -> dict:
    from django_tasks_db.models import DBTaskResult

    from integrations.models import Delivery, DeliveryAttempt, Dispatch, Event, Exchange

    ids = main.integration_ids
    old = Event.objects.filter(workspace_id=main.workspace_id, received_at__lt=cutoff)
    return {
        "old events": old.count(),
        "old retrying": old.filter(deliveries__status=Delivery.Status.RETRYING).count(),
        "recent events": Event.objects.filter(
            workspace_id=main.workspace_id, received_at__gte=cutoff
        ).count(),
        "held events": Event.objects.filter(workspace_id=held.workspace_id).count(),
        "dispatches": Dispatch.objects.filter(integration_id__in=held.integration_ids).count(),
        "deliveries": Delivery.objects.filter(integration_id__in=ids).count(),
        "attempts": DeliveryAttempt.objects.filter(delivery__integration_id__in=ids).count(),
        "exchanges": Exchange.objects.filter(integration_id__in=ids).count(),
        "task rows": DBTaskResult.objects.count(),
        "unreferenced exchanges": Exchange.objects.filter(integration_id__in=ids)
        .filter(deliveries=None, earlier_attempts=None, head=None)
        .count(),
    }


def sizes() -> dict[str, int]:
    return harness.relation_sizes(tables().values())


def dead_rows() -> int:
    from django.db import connection

    names = [m._meta.db_table for m in tables().values()]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COALESCE(SUM(n_dead_tup), 0) FROM pg_stat_user_tables WHERE relname = ANY(%s)",
            [names],
        )
        return int(cursor.fetchone()[0])


def batch_plan(main: harness.BenchData, cutoff: dt.datetime, size: int) -> str:
    from django.db import connection

    from integrations import retention

    query = retention.old_events(main.workspace_id, cutoff).values_list("received_at", "pk")
    sql, params = query[:size].query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


@dataclass
class Latency:
    requests: int
    p50: float
    p99: float
    errors: int


def latency(samples: list, start: float, end: float) -> Latency:
    window = [s for s in samples if start <= s.start < end]
    values = sorted((s.end - s.start) * 1000 for s in window)
    return Latency(
        len(window),
        harness.percentile(values, 0.50),
        harness.percentile(values, 0.99),
        sum(1 for s in window if s.status != 200),
    )


def run_prune(args: argparse.Namespace) -> tuple[float, int]:
    """``manage.py prune_events`` in its own process, its output to var/bench/; the
    seconds it took and its exit code."""
    harness.VAR_DIR.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "manage.py", "prune_events", "--days", str(args.days),
        "--batch-size", str(args.batch_size), "--pause", str(args.pause),
    ]  # fmt: skip
    started = time.perf_counter()
    with open(PRUNE_LOG, "wb") as output:
        code = subprocess.call(command, cwd=BASE_DIR, stdout=output, stderr=subprocess.STDOUT)
    return time.perf_counter() - started, code


def command_output() -> tuple[list[str], float | None]:
    """What prune_events printed, progress lines left out but the last of each
    workspace, and the seconds it says it took (its own start-up left out)."""
    try:
        lines = PRUNE_LOG.read_text(errors="replace").splitlines()
    except OSError:
        return [], None
    shown = [
        line
        for n, line in enumerate(lines)
        if "events deleted" not in line
        or n + 1 == len(lines)
        or "events deleted" not in lines[n + 1]
    ]
    took = re.search(r" in ([\d.]+) s;", lines[-1]) if lines else None
    return shown, float(took.group(1)) if took else None


def mb(value: int) -> str:
    return f"{value / 1e6:,.0f} MB"


def report(
    args: argparse.Namespace,
    db_version: str,
    busy_before: float | None,
    filled: dict,
    before: dict,
    after: dict,
    size_steps: dict[str, dict[str, int]],
    dead: int,
    plan: str,
    seconds: float,
    exit_code: int,
    baseline: Latency,
    during: Latency,
) -> bool:
    print()
    print("Prune benchmark")
    for line in harness.describe_machine(db_version, busy_before):
        print(line)
    print(
        f"  data      : {args.events:,} old events (a day ending an hour before the "
        f"{args.days}-day cutoff), {args.recent:,} recent, {filled['retrying']:,} old ones "
        f"retrying, {args.waiting:,} old ones waiting in a dispatch (another workspace); "
        f"filled in {filled['seconds']:.0f} s"
    )
    print(
        f"  per event : a webhook delivery + its exchange (~0.7 KB body), a Customer.io "
        f"delivery sharing a {BATCH_OPERATIONS}-operation batch exchange; "
        f"1 in {RETRIED_EVERY} with an earlier attempt; a finished task row per "
        f"{EVENTS_PER_TASK} events"
    )
    print(
        f"  prune     : manage.py prune_events --days {args.days} --batch-size "
        f"{args.batch_size} --pause {args.pause:g} (output in {PRUNE_LOG})"
    )
    print(
        f"  ingest    : /v1/batch x{args.load_batch} at {args.load_rate:,.0f} events/s, open "
        f"loop, gunicorn sync {args.web_workers} workers"
    )
    print()
    print("first batch query (EXPLAIN ANALYZE, BUFFERS):")
    for line in plan.splitlines():
        print(f"  {line}")
    print()
    deleted = {
        label: before[label] - after[label]
        for label in ("old events", "deliveries", "attempts", "exchanges", "task rows")
    }
    rows = sum(deleted.values())
    said, took = command_output()
    print("prune_events said:")
    for line in said:
        print(f"  {line}")
    process = seconds
    seconds = took or seconds
    print(
        f"prune      : {seconds:,.1f} s (the command's own count; {process:,.1f} s with the "
        f"process's start-up; exit code {exit_code}); {rows:,} rows deleted, "
        f"{rows / seconds:,.0f} rows/s, {deleted['old events'] / seconds:,.0f} events/s"
    )
    print("  deleted  : " + ", ".join(f"{label} {n:,}" for label, n in deleted.items()))
    print(f"ingest p50 : {baseline.p50:,.1f} ms before, {during.p50:,.1f} ms during the prune")
    print(
        f"ingest p99 : {baseline.p99:,.1f} ms before, {during.p99:,.1f} ms during the prune "
        f"({baseline.requests:,} and {during.requests:,} requests; errors "
        f"{baseline.errors} and {during.errors})"
    )
    print()
    print(f"{'table':<36} {'before':>10} {'after prune':>12} {'after VACUUM':>13}")
    for name in size_steps["before"]:
        print(
            f"{name:<36} {mb(size_steps['before'][name]):>10} "
            f"{mb(size_steps['after'][name]):>12} {mb(size_steps['vacuumed'][name]):>13}"
        )
    print(
        f"dead rows left for autovacuum right after the prune: {dead:,} (VACUUM makes their "
        "space reusable; the files keep their size)"
    )
    print()
    expected_old = filled["retrying"]
    checks = [
        ("old events left are the retrying ones", after["old events"] == expected_old),
        ("retrying events kept", after["old retrying"] == expected_old),
        ("recent events kept", after["recent events"] >= before["recent events"]),
        ("events waiting in a dispatch kept", after["held events"] == before["held events"]),
        ("their dispatch kept", after["dispatches"] == before["dispatches"]),
        ("no exchange left without a delivery", after["unreferenced exchanges"] == 0),
        ("prune_events succeeded", exit_code == 0),
    ]
    for label, ok in checks:
        print(f"check      : {label}: {'OK' if ok else 'FAILED'}")
    print()
    print("Markdown (README):")
    print()
    print(
        "| Old events | Batch | Seconds | Rows deleted | Rows/s | Ingest p50 before / during "
        "| Ingest p99 before / during |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {args.events:,} | {args.batch_size:,} | {seconds:,.0f} | {rows:,} "
        f"| {rows / seconds:,.0f} | {baseline.p50:,.0f} / {during.p50:,.0f} ms "
        f"| {baseline.p99:,.0f} / {during.p99:,.0f} ms |"
    )
    return all(ok for _, ok in checks)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        raise SystemExit("prune.py needs PostgreSQL: set DATABASE_URL=postgres://...")
    harness.prepare_environment("prune")
    busy_before = harness.machine_busy()
    created: list[harness.BenchData] = []
    server = harness.console_server(args.port, args.web_workers)
    ok = False
    try:
        db_version = harness.setup_database(args.allow_existing_data)
        main_data = harness.create_workspace(
            [
                harness.IntegrationSpec("webhook", "Bench webhook", {"url": "http://127.0.0.1:9/"}),
                harness.IntegrationSpec(
                    "customerio",
                    "Bench Customer.io",
                    {"site_id": "bench", "api_key": "bench-key"},
                    api_base_url="http://127.0.0.1:9",
                ),
            ],
            db_version,
        )
        created.append(main_data)
        held = harness.create_workspace(
            [
                harness.IntegrationSpec(
                    "webhook", "Bench paused", {"url": "http://127.0.0.1:9/"}, paused=True
                )
            ],
            db_version,
        )
        created.append(held)
        harness.log(f"created workspaces {main_data.slug} and {held.slug} ({db_version})")
        filled = fill(args, main_data, held)
        cutoff = filled["cutoff"]
        plan = batch_plan(main_data, cutoff, args.batch_size)
        before = counts(main_data, held, cutoff)
        size_steps = {"before": sizes()}
        from django.db import connection

        connection.close()
        harness.wait_for_idle(args.wait_idle)
        harness.log(f"starting {server.description}")
        server.start()
        payloads = TaggedPayloads(args.load_batch)
        load = PacedLoad(
            args.port,
            "/v1/batch",
            main_data.write_key,
            payloads.batch,
            rate=args.load_rate / args.load_batch,
            clients=args.clients,
        ).start()
        time.sleep(3)  # warm-up, not measured
        baseline_start = time.perf_counter()
        harness.log(f"ingest alone for {args.baseline_seconds:g} s ...")
        time.sleep(args.baseline_seconds)
        prune_start = time.perf_counter()
        harness.log("prune_events while ingest runs ...")
        seconds, exit_code = run_prune(args)
        prune_end = time.perf_counter()
        load.stop()
        server.stop()
        samples = load.samples()
        baseline = latency(samples, baseline_start, prune_start)
        during = latency(samples, prune_start, prune_end)
        after = counts(main_data, held, cutoff)
        size_steps["after"] = sizes()
        dead = dead_rows()
        harness.log("VACUUM ...")
        vacuum()
        size_steps["vacuumed"] = sizes()
        ok = report(
            args,
            db_version,
            busy_before,
            filled,
            before,
            after,
            size_steps,
            dead,
            plan,
            seconds,
            exit_code,
            baseline,
            during,
        )
        if exit_code:
            harness.log(f"prune_events failed:\n{harness.tail(PRUNE_LOG)}")
    finally:
        server.stop()
        harness.clean_up(created, args.keep)
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)

#!/usr/bin/env python
"""The delivery log's search on a big events table (PostgreSQL).

Usage (from the repository root, with the project's virtualenv)::

    DATABASE_URL=postgres://console:console@127.0.0.1:5432/console_bench \\
        .venv/bin/python benchmarks/search.py [--events 1000000] [--workspaces 10]

What it does
    1. Migrates the database (the trigram index of ``0020_event_search_entries`` included) and
       creates ``--workspaces`` workspaces ``bench-<random>-<n>``.
    2. Fills them with ``--events`` track events written by the database itself
       (``generate_series``, in chunks of 200,000): ids, names and an email in
       ``traits``, ``context.traits`` or ``properties``, one in a thousand events of a
       distinct user; with each event its search entry, as the router writes it
       (``event_search.search_text_sql``); then ``ANALYZE``.
    3. For each search a CSM makes (an email, part of a user id, an event name, a message
       id, a term matching nothing), runs the admin's very query — the newest 100 matching
       events of one workspace, and of the deliveries list's subquery — three times and
       prints the best time and the plan's scan (``EXPLAIN ANALYZE``).
    4. Deletes the workspaces and their events (``--keep`` leaves them).

With ``--build-index-after`` the search index is dropped before the fill and built after
it, as the migration builds it on an existing table: the fill's speed without the index
against the default run's tells what the index costs writes.

It refuses a database holding workspaces whose slug does not start with ``bench-``.
"""

import argparse
import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHUNK = 200_000
INDEX = "event_search_entry_trgm"
ENTRIES = "integrations_eventsearchentry"


def setup_django() -> None:
    from cryptography.fernet import Fernet

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
    os.environ.setdefault("DEBUG", "false")
    os.environ.setdefault("SECRET_KEY", uuid.uuid4().hex * 2)
    os.environ.setdefault("SECRETS_ENCRYPTION_KEYS", Fernet.generate_key().decode())
    os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def fill(workspace_ids: list[int], events: int) -> float:
    from django.db import connection

    from integrations.event_search import search_text_sql

    started = time.monotonic()
    with connection.cursor() as cursor:
        for first in range(1, events + 1, CHUNK):
            last = min(first + CHUNK - 1, events)
            cursor.execute(
                "WITH written AS (INSERT INTO integrations_event (id, workspace_id, "  # noqa: S608
                "message_id, type, event, user_id, anonymous_id, group_id, received_at, "
                "timestamp, payload, is_test) "
                "SELECT gen_random_uuid(), (%s::int[])[1 + n %% %s], "
                "'msg-' || md5(n::text), 'track', "
                "(ARRAY['Signed Up', 'Trial Converted', 'Subscription Renewed', "
                "'Page Viewed', 'Invoice Paid'])[1 + (n / 7) %% 5], "
                "'usr_' || (n / 1000)::text || '_' || substr(md5(n::text), 1, 6), "
                "'anon-' || substr(md5((n + 1)::text), 1, 12), '', "
                "now() - (n || ' seconds')::interval, now(), "
                "CASE n %% 3 "
                "WHEN 0 THEN jsonb_build_object('traits', jsonb_build_object("
                "'email', 'user' || (n / 1000) || '@customer' || (n %% 97) || '.example')) "
                "WHEN 1 THEN jsonb_build_object('context', jsonb_build_object('traits', "
                "jsonb_build_object('email', 'person' || (n / 1000) || '@corp.example'))) "
                "ELSE jsonb_build_object('properties', jsonb_build_object('email', "
                "'buyer' || (n / 1000) || '@shop.example')) END, false "
                "FROM generate_series(%s, %s) AS n RETURNING id, user_id, event, payload) "
                f"INSERT INTO {ENTRIES} (event_id, text) "
                f"SELECT id, {search_text_sql()} FROM written",
                [workspace_ids, len(workspace_ids), first, last],
            )
            print(f"  {last:,} / {events:,} events", flush=True)
        cursor.execute("ANALYZE integrations_event")
        cursor.execute(f"ANALYZE {ENTRIES}")
    return time.monotonic() - started


def measure(label: str, queryset) -> None:
    best = None
    for _ in range(3):
        started = time.monotonic()
        rows = list(queryset[:100])
        elapsed = time.monotonic() - started
        best = elapsed if best is None else min(best, elapsed)
    plan = queryset[:100].explain(analyze=True)
    scans = sorted(
        {
            line.strip().split("  (")[0].removeprefix("->  ")
            for line in plan.splitlines()
            if "Scan" in line
        }
    )
    print(f"{label:<46} {len(rows):>4} rows  {best * 1000:8.1f} ms  {'; '.join(scans)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--workspaces", type=int, default=10)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument(
        "--build-index-after",
        action="store_true",
        help="drop the search index, fill, then build it (what the migration does on an "
        "existing table): compares the fill's speed and times the build",
    )
    args = parser.parse_args()
    if args.workspaces < 1 or args.events < args.workspaces:
        parser.error("--workspaces at least 1, --events at least one per workspace")
    setup_django()
    from django.db import connection

    from integrations.event_search import search_events
    from integrations.models import Delivery, Event, Workspace

    if connection.vendor != "postgresql":
        sys.exit("The search benchmark needs PostgreSQL (DATABASE_URL=postgres://...).")
    if Workspace.objects.exclude(slug__startswith="bench-").exists():
        sys.exit("This database holds workspaces other than bench-*: use a scratch database.")
    tag = uuid.uuid4().hex[:8]
    workspaces = [
        Workspace.objects.create(name=f"Bench {n}", slug=f"bench-{tag}-{n}")
        for n in range(args.workspaces)
    ]
    try:
        if args.build_index_after:
            with connection.cursor() as cursor:
                cursor.execute(f"DROP INDEX IF EXISTS {INDEX}")
        print(f"Filling {args.events:,} events in {args.workspaces} workspaces...")
        seconds = fill([w.pk for w in workspaces], args.events)
        print(f"  {seconds:.0f} s ({args.events / seconds:,.0f} events/s)")
        if args.build_index_after:
            started = time.monotonic()
            with connection.cursor() as cursor:
                cursor.execute(f"CREATE INDEX {INDEX} ON {ENTRIES} USING gin (text gin_trgm_ops)")
            print(f"  the search index built in {time.monotonic() - started:.0f} s")
        searched = workspaces[-1]
        events = Event.objects.filter(workspace=searched).order_by("-received_at")
        user = Event.objects.filter(workspace=searched).values_list("user_id", flat=True)[0]
        message = Event.objects.filter(workspace=searched).values_list("message_id", flat=True)[0]
        searches = {
            "an email (traits.email)": "user421@customer",
            "an email, another case (context.traits)": "PERSON777@CORP",
            "part of a user id": user[4:10],
            "an event name, part of it": "renewed",
            "a whole message id": message,
            "nothing matches": "zzqqxxjj",
            "two terms": "buyer12 invoice",
        }
        print(f"\nThe newest 100 matches in one workspace of {args.workspaces}:")
        for label, term in searches.items():
            measure(f"{label} ({term})", search_events(events, term))
        print("\nThe deliveries list (its events' subquery):")
        matched = search_events(Event.objects.filter(workspace=searched), "user421@customer")
        measure(
            "an email",
            Delivery.objects.filter(event_id__in=matched.values("pk")).order_by("-created_at"),
        )
    finally:
        if not args.keep:
            with connection.cursor() as cursor:
                cursor.execute(
                    f"DELETE FROM {ENTRIES} WHERE event_id IN (SELECT id FROM "  # noqa: S608
                    "integrations_event WHERE workspace_id = ANY(%s))",
                    [[w.pk for w in workspaces]],
                )
                cursor.execute(
                    "DELETE FROM integrations_event WHERE workspace_id = ANY(%s)",
                    [[w.pk for w in workspaces]],
                )
            Workspace.objects.filter(pk__in=[w.pk for w in workspaces]).delete()


if __name__ == "__main__":
    main()

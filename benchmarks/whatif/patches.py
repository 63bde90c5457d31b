"""Monkeypatches that prototype the changes suggested for the ingest path.

Each entry of ``PATCHES`` is the measurable stand-in for one proposed code change; the
report of benchmarks/ingest.py describes the real change. Nothing here is meant to ship.
"""

from collections.abc import Callable

PATCHES: dict[str, Callable[[], None]] = {}


def patch(func: Callable[[], None]) -> Callable[[], None]:
    PATCHES[func.__name__] = func
    return func


def apply(names: list[str]) -> None:
    unknown = [n for n in names if n not in PATCHES]
    if unknown:
        raise SystemExit(f"unknown what-if patch(es) {unknown}; known: {', '.join(PATCHES)}")
    for name in names:
        PATCHES[name]()


@patch
def no_unnest() -> None:
    """Insert events with ``VALUES (...), (...)`` instead of Django 5.2's ``UNNEST`` arrays.

    On PostgreSQL, Django 5.2 bulk-inserts through ``UNNEST(%s::jsonb[], ...)``; with
    client-side binding psycopg then escapes every payload for the array literal with a
    regex whose template replacement runs in Python once per ``"`` (85 per event).
    Django skips ``UNNEST`` when a field has ``get_placeholder``; the real change is a
    ``JSONField`` subclass with ``get_placeholder`` for ``Event.payload``.
    """
    from integrations.models import Event

    field = Event._meta.get_field("payload")
    field.get_placeholder = lambda value, compiler, connection: "%s"


@patch
def fast_array_escape() -> None:
    """The alternative to ``no_unnest``: psycopg's array escaping with bytes.replace."""
    from psycopg.types.array import ListDumper

    class Escape:
        @staticmethod
        def sub(_template: bytes, data: bytes) -> bytes:
            return data.replace(b"\\", b"\\\\").replace(b'"', b'\\"')

    ListDumper._re_esc = Escape()


@patch
def fast_insert() -> None:
    """``ingest.accept`` on PostgreSQL as one ``INSERT ... SELECT FROM jsonb_to_recordset(%s)
    ON CONFLICT DO NOTHING RETURNING message_id``: one parameter (the whole batch as one
    JSON document, serialised by the C encoder) instead of one per column and event, and
    no SELECT to learn which rows were written. The Event instances, profile store,
    catalog and fan-out are kept as they are. Other databases keep the ORM path.
    """
    import datetime as dt
    import json
    import uuid

    from django.db import connection, transaction

    from integrations import catalog, ingest, profiles
    from integrations.models import Event

    original = ingest.accept
    fields = [f for f in Event._meta.concrete_fields if f.attname != "workspace_id"]
    columns = ", ".join(f.column for f in fields)
    selected = ", ".join(f"r.{f.column}" for f in fields)
    sql_cache: dict[str, str] = {}

    def sql() -> str:
        if "sql" not in sql_cache:
            types = ", ".join(f"{f.column} {f.db_type(connection)}" for f in fields)
            sql_cache["sql"] = (
                f"INSERT INTO {Event._meta.db_table} (workspace_id, {columns}) "  # noqa: S608
                f"SELECT %s, {selected} FROM jsonb_to_recordset(%s::jsonb) AS r({types}) "
                "ON CONFLICT (workspace_id, message_id) DO NOTHING RETURNING message_id"
            )
        return sql_cache["sql"]

    def plain(value: object) -> object:
        if isinstance(value, dt.datetime):
            return value.isoformat()
        if isinstance(value, uuid.UUID):
            return str(value)
        return value

    def accept(source, messages):
        if connection.vendor != "postgresql":
            return original(source, messages)
        result = ingest.AcceptResult()
        candidates: dict[str, Event] = {}
        for message in messages:
            if message["messageId"] in candidates:
                result.duplicates += 1
                continue
            candidates[message["messageId"]] = ingest.event_from_message(
                message, workspace_id=source.workspace_id, source=source
            )
        if not candidates:
            return result
        events = list(candidates.values())
        rows = [{f.column: plain(getattr(e, f.attname)) for f in fields} for e in events]
        document = json.dumps(rows, separators=(",", ":"), ensure_ascii=False)
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(sql(), [source.workspace_id, document])
                written = {row[0] for row in cursor.fetchall()}
            result.accepted = [e for e in events if e.message_id in written]
            result.duplicates += len(events) - len(result.accepted)
            profiles.update(source.workspace_id, result.accepted)
            catalog.record_seen(source.workspace_id, result.accepted)
            result.deliveries = ingest.fan_out(source.workspace_id, result.accepted)
        return result

    ingest.accept = accept


@patch
def seen_upsert() -> None:
    """``catalog.record_seen`` as one ``INSERT ... ON CONFLICT DO UPDATE`` over the names in
    sorted order, instead of a SELECT plus one UPDATE per name (taken in set order, which
    differs between processes: concurrent batches can deadlock) plus an INSERT."""
    from collections import Counter

    from django.db import connection
    from django.utils import timezone

    from integrations import catalog
    from integrations.models import Event, SeenEvent

    table = SeenEvent._meta.db_table

    def record_seen(workspace_id, events):
        counts = Counter(e.event for e in events if e.type == Event.Type.TRACK and not e.is_test)
        if not counts:
            return
        now = timezone.now()
        names = sorted(counts)
        values = ", ".join(["(%s, %s, %s, %s, %s)"] * len(names))
        params = [v for name in names for v in (workspace_id, name, counts[name], now, now)]
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (workspace_id, name, count, first_seen_at, last_seen_at) "  # noqa: S608
                f"VALUES {values} ON CONFLICT (workspace_id, name) DO UPDATE SET "
                f"count = {table}.count + EXCLUDED.count, last_seen_at = EXCLUDED.last_seen_at",
                params,
            )

    catalog.record_seen = record_seen


@patch
def cache_config() -> None:
    """Per-process caches with a 5 s lifetime: the source of a write key, and a workspace's
    routing (integrations and event rules). Saves 2 of the 4 queries of every request and
    their ORM compilation (~2 ms CPU of ~7 for one /v1/track call)."""
    import time

    from integrations.delivery import routing
    from integrations.models import Source
    from integrations.sources import http_api

    ttl = 5.0
    sources: dict[str, tuple[float, Source]] = {}
    routers: dict[int, tuple[float, routing.Router]] = {}
    original_auth = http_api.authenticate_source
    original_router = routing.Router.for_workspace.__func__

    def authenticate_source(request, body):
        key = http_api._basic_auth_user(request)
        hit = sources.get(key) if key else None
        if hit and hit[0] > time.monotonic() and hit[1].enabled:
            return hit[1]
        source = original_auth(request, body)
        if key:
            sources[key] = (time.monotonic() + ttl, source)
        return source

    def for_workspace(cls, workspace_id):
        hit = routers.get(workspace_id)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        router = original_router(cls, workspace_id)
        routers[workspace_id] = (time.monotonic() + ttl, router)
        return router

    http_api.authenticate_source = authenticate_source
    routing.Router.for_workspace = classmethod(for_workspace)

"""Storing accepted messages: dedupe and a durable insert, nothing more in the request.

Every source ends here. When ``accept`` returns, the new events and the ``RoutingJob``
that records they still have to be routed are committed, in one transaction; the profile
store is updated in it too. Which integrations get each event is decided later, in bulk,
by the router (``delivery/routing.py``), so the request's cost does not grow with the
number of integrations.
"""

import datetime as dt
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from django.db import connection, models, transaction

from integrations import profiles
from integrations.models import Event, RoutingJob, Source
from integrations.sources.segment_spec import parse_timestamp


@dataclass
class AcceptResult:
    accepted: list[Event] = field(default_factory=list)
    duplicates: int = 0


def event_from_message(
    message: dict[str, Any], *, workspace_id: int, source: Source | None = None
) -> Event:
    """An unsaved Event for a normalised message."""
    received_at = parse_timestamp(message["receivedAt"], "receivedAt")
    kind = message["type"]
    # Positional arguments, in _EVENT_FIELDS order: half the cost of keyword arguments
    # (this runs for every event of every batch).
    return Event(
        *_in_field_order(
            id=uuid.uuid4(),
            workspace_id=workspace_id,
            source_id=source.pk if source is not None else None,
            message_id=message["messageId"],
            type=kind,
            event=(message.get("event") or "") if kind == "track" else "",
            user_id=message.get("userId") or "",
            anonymous_id=message.get("anonymousId") or "",
            group_id=message.get("groupId") or "",
            original_timestamp=parse_timestamp(message.get("originalTimestamp"), "timestamp"),
            sent_at=parse_timestamp(message.get("sentAt"), "sentAt"),
            received_at=received_at or dt.datetime.now(dt.UTC),
            timestamp=parse_timestamp(message["timestamp"], "timestamp"),
            payload=message,
            is_test=False,
        )
    )


_EVENT_FIELDS = tuple(f.attname for f in Event._meta.concrete_fields)


def _in_field_order(**values: Any) -> list[Any]:
    """Every concrete field's value (a KeyError names any one left out)."""
    return [values[name] for name in _EVENT_FIELDS]


def accept(source: Source, messages: Sequence[dict[str, Any]]) -> AcceptResult:
    """Store normalised messages once per ``messageId`` in the workspace, to be routed."""
    result = AcceptResult()
    candidates: dict[str, Event] = {}
    for message in messages:
        if message["messageId"] in candidates:
            result.duplicates += 1
            continue
        candidates[message["messageId"]] = event_from_message(
            message, workspace_id=source.workspace_id, source=source
        )
    if not candidates:
        return result

    events = list(candidates.values())
    with transaction.atomic():
        # Rows whose messageId the workspace already has are skipped by the database, which
        # also settles races between concurrent requests; our fresh primary keys tell us
        # which rows this insert wrote.
        written = insert_new(source.workspace_id, events)
        result.accepted = [e for e in events if e.pk in written]
        for event in result.accepted:
            event._state.adding, event._state.db = False, connection.alias
        result.duplicates += len(events) - len(result.accepted)
        profiles.update(source.workspace_id, result.accepted)
        if result.accepted:
            RoutingJob.objects.create(
                workspace_id=source.workspace_id,
                created_at=min(e.received_at for e in result.accepted),
                size=len(result.accepted),
                entries=[
                    RoutingJob.entry(e.pk, e.type, e.rule_name, e.payload.get("integrations"))
                    for e in result.accepted
                ],
            )
    return result


def insert_new(workspace_id: int, events: Sequence[Event]) -> set[uuid.UUID]:
    """Insert the events of one workspace, skipping those whose ``message_id`` it already
    has; the primary keys of the rows written."""
    if connection.vendor == "postgresql":
        return _insert_new_postgresql(workspace_id, events)
    Event.objects.bulk_create(events, ignore_conflicts=True)
    return set(Event.objects.filter(pk__in=[e.pk for e in events]).values_list("pk", flat=True))


# On PostgreSQL, one statement whose one parameter is the whole batch as a JSON document:
# Django 5.2's bulk_create binds one array per column (UNNEST), and psycopg escapes each
# payload for its array literal in pure Python (~40 % of a /v1/batch request), then a
# second query would be needed to learn which rows were written; RETURNING tells.
_COLUMNS = [f for f in Event._meta.concrete_fields if f.attname != "workspace_id"]
_TIMESTAMPS = [(f.column, f.attname) for f in _COLUMNS if isinstance(f, models.DateTimeField)]
_AS_IS = [(f.column, f.attname) for f in _COLUMNS if (f.column, f.attname) not in _TIMESTAMPS]


def _row(event: Event, isoformats: dict[dt.datetime, str]) -> dict[str, Any]:
    """The event's columns as JSON values that PostgreSQL reads back exactly: timestamps
    as ISO 8601 with microseconds and offset, the uuid as text, the payload as itself.
    ``isoformats`` memoises timestamps shared by a batch (receivedAt, the batch's sentAt)."""
    values = event.__dict__
    row = {column: values[attname] for column, attname in _AS_IS}
    for column, attname in _TIMESTAMPS:
        value = values[attname]
        if value is not None:
            text = isoformats.get(value)
            if text is None:
                text = isoformats[value] = value.isoformat()
            value = text
        row[column] = value
    row["id"] = str(row["id"])
    return row


@cache
def _insert_sql() -> str:
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in _COLUMNS)
    selected = ", ".join(f"r.{quote(f.column)}" for f in _COLUMNS)
    types = ", ".join(f"{quote(f.column)} {f.db_type(connection)}" for f in _COLUMNS)
    table = quote(Event._meta.db_table)
    return (
        f"INSERT INTO {table} (workspace_id, {columns}) "  # noqa: S608 (constants)
        f"SELECT %s, {selected} FROM jsonb_to_recordset(%s::jsonb) AS r({types}) "
        "ON CONFLICT (workspace_id, message_id) DO NOTHING RETURNING id"
    )


def _insert_new_postgresql(workspace_id: int, events: Sequence[Event]) -> set[uuid.UUID]:
    isoformats: dict[dt.datetime, str] = {}
    rows = [_row(e, isoformats) for e in events]
    document = json.dumps(rows, separators=(",", ":"))  # ASCII: as JSONField would send
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql(), [workspace_id, document])
        return {row[0] for row in cursor.fetchall()}

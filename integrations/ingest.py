"""Storing accepted messages: dedupe and a durable insert, nothing more in the request.

Every source ends here. When ``accept`` returns, the new events and the ``RoutingJob``
that records they still have to be routed are committed, in one transaction; the profile
store is updated in it too. Which integrations get each event is decided later, in bulk,
by the router (``delivery/routing.py``), so the request's cost does not grow with the
number of integrations.
"""

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from integrations import bulk_insert, profiles
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
    return Event(  # type: ignore[misc]  # django-stubs reads the unpacked list as ``id``
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
    # Everything that can be done before the transaction is: on SQLite it holds the
    # one write lock, which other requests wait for.
    insert = bulk_insert.Insert(events, conflict="(workspace_id, message_id)")
    entries = {
        e.pk: RoutingJob.entry(e.pk, e.type, e.rule_name, e.payload.get("integrations"))
        for e in events
    }
    with transaction.atomic():
        # Rows whose messageId the workspace already has are skipped by the database, which
        # also settles races between concurrent requests; our fresh primary keys tell us
        # which rows this insert wrote.
        written = set(insert.execute())
        result.accepted = [e for e in events if e.pk in written]
        result.duplicates += len(events) - len(result.accepted)
        profiles.update(source.workspace_id, result.accepted)
        if result.accepted:
            job = RoutingJob(
                workspace_id=source.workspace_id,
                created_at=min(e.received_at for e in result.accepted),
                size=len(result.accepted),
                entries=[entries[e.pk] for e in result.accepted],
            )
            bulk_insert.insert([job])  # without the ORM's per-statement compiling
    return result

"""Storing accepted messages: dedupe, durable insert and fan-out to integrations.

Every source ends here. When ``accept`` returns, the events and their pending deliveries
are committed; delivery tasks are enqueued once the transaction commits.
"""

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from integrations import catalog, profiles
from integrations.delivery.routing import Router
from integrations.delivery.tasks import enqueue_deliveries
from integrations.models import Delivery, Event, Source
from integrations.sources.segment_spec import parse_timestamp


@dataclass
class AcceptResult:
    accepted: list[Event] = field(default_factory=list)
    duplicates: int = 0
    deliveries: int = 0


def event_from_message(
    message: dict[str, Any], *, workspace_id: int, source: Source | None = None
) -> Event:
    """An unsaved Event for a normalised message."""
    received_at = parse_timestamp(message["receivedAt"], "receivedAt")
    return Event(
        id=uuid.uuid4(),
        workspace_id=workspace_id,
        source=source,
        message_id=message["messageId"],
        type=message["type"],
        event=(message.get("event") or "") if message["type"] == "track" else "",
        user_id=message.get("userId") or "",
        anonymous_id=message.get("anonymousId") or "",
        group_id=message.get("groupId") or "",
        original_timestamp=parse_timestamp(message.get("originalTimestamp"), "timestamp"),
        sent_at=parse_timestamp(message.get("sentAt"), "sentAt"),
        received_at=received_at or dt.datetime.now(dt.UTC),
        timestamp=parse_timestamp(message["timestamp"], "timestamp"),
        payload=message,
    )


def accept(source: Source, messages: Sequence[dict[str, Any]]) -> AcceptResult:
    """Store normalised messages once per ``messageId`` in the workspace and fan them out."""
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
        Event.objects.bulk_create(events, ignore_conflicts=True)
        written = set(
            Event.objects.filter(pk__in=[e.pk for e in events]).values_list("pk", flat=True)
        )
        result.accepted = [e for e in events if e.pk in written]
        result.duplicates += len(events) - len(result.accepted)
        profiles.update(source.workspace_id, result.accepted)
        catalog.record_seen(source.workspace_id, result.accepted)
        result.deliveries = fan_out(source.workspace_id, result.accepted)
    return result


def fan_out(workspace_id: int, events: Sequence[Event]) -> int:
    """Create the pending deliveries of new events; enqueue their tasks on commit."""
    if not events:
        return 0
    router = Router.for_workspace(workspace_id)
    deliveries = [
        Delivery(event=event, integration=integration)
        for event in events
        for integration in router.destinations(event)
    ]
    Delivery.objects.bulk_create(deliveries)
    by_integration: dict[int, list[int]] = defaultdict(list)
    for delivery in deliveries:
        by_integration[delivery.integration_id].append(delivery.pk)
    for integration_id, delivery_ids in by_integration.items():
        transaction.on_commit(
            lambda i=integration_id, d=delivery_ids: enqueue_deliveries(i, d), robust=True
        )
    return len(deliveries)

"""What an operator can do to deliveries: retry, recover, pause, resume, replay."""

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone
from django_tasks import task

from integrations import audit
from integrations.delivery.routing import EVENTS_PER_DISPATCH, Routable, Router
from integrations.delivery.tasks import IDS_PER_TASK, enqueue_deliveries, enqueue_dispatches
from integrations.models import Delivery, Dispatch, Event, Integration, Origin, Trigger

RETRYABLE = (Delivery.Status.RETRYING, Delivery.Status.FAILED)


class OperationRefused(Exception):
    """The operation does not apply to this object in its current state."""


def _refuse_if_paused(integration: Integration) -> None:
    if integration.paused:
        raise OperationRefused(f"{integration.name} is paused: resume it first.")


def retry_delivery(delivery: Delivery) -> None:
    """One manual attempt, in the background; the automatic schedule is left as it was."""
    _refuse_if_paused(delivery.integration)
    if delivery.status not in RETRYABLE:
        raise OperationRefused("This delivery was delivered; replay its event to send it again.")
    transaction.on_commit(
        lambda: enqueue_deliveries(delivery.integration_id, [delivery.pk], trigger=Trigger.MANUAL)
    )
    audit.record_operation(
        delivery.integration, f"Retried delivery #{delivery.pk} (one manual attempt)"
    )


def _ids_in_batches(queryset: QuerySet[Any]) -> Iterator[list[int]]:
    batch: list[int] = []
    for pk in queryset.values_list("pk", flat=True).iterator(chunk_size=IDS_PER_TASK):
        batch.append(pk)
        if len(batch) == IDS_PER_TASK:
            yield batch
            batch = []
    if batch:
        yield batch


def recover(integration: Integration, since: dt.datetime, until: dt.datetime) -> int:
    """Retry (manually) every failed delivery of the integration created in the range."""
    _refuse_if_paused(integration)
    failed = failed_in_range(integration, since, until).order_by("pk")
    count = 0
    for ids in _ids_in_batches(failed):
        enqueue_deliveries(integration.pk, ids, trigger=Trigger.MANUAL)
        count += len(ids)
    audit.record_operation(
        integration, f"Retried {count} failed deliveries created {time_range(since, until)}"
    )
    return count


def failed_in_range(
    integration: Integration, since: dt.datetime, until: dt.datetime
) -> QuerySet[Delivery]:
    """The deliveries ``recover`` retries: the failed ones created in the range."""
    return integration.deliveries.filter(
        status=Delivery.Status.FAILED, created_at__gte=since, created_at__lt=until
    )


def events_in_range(
    integration: Integration, since: dt.datetime, until: dt.datetime
) -> QuerySet[Event]:
    """The events ``replay`` passes through the integration's rules: the workspace's
    events received in the range."""
    return Event.objects.filter(
        workspace_id=integration.workspace_id, received_at__gte=since, received_at__lt=until
    )


def time_range(since: dt.datetime, until: dt.datetime) -> str:
    """A range for the audit trail, in UTC to the minute: "2026-01-31 08:00 to 09:00 UTC"."""
    start, end = since.astimezone(dt.UTC), until.astimezone(dt.UTC)
    end_format = "%H:%M" if start.date() == end.date() else "%Y-%m-%d %H:%M"
    return f"{start:%Y-%m-%d %H:%M} to {end.strftime(end_format)} UTC"


def pause(integration: Integration, reason: str = "") -> None:
    """Hold deliveries; ``reason`` (what the person pausing said) goes into the audit trail."""
    integration.change_state(audit.pause_note(reason), paused=True)


def resume(integration: Integration) -> int:
    """Unpause and enqueue what waited; returns how many events are due now."""
    integration.change_state(
        "Resumed", paused=False, deferred_until=None, deferral_reason="", backoff_failures=0
    )
    dispatches = integration.dispatches.order_by("pk")
    dispatches.update(next_attempt_at=timezone.now(), waiting_reason="")
    waiting = list(dispatches.values_list("pk", F("size") - F("done")))
    enqueue_dispatches(
        integration.pk, [pk for pk, _ in waiting], events=[left for _, left in waiting]
    )
    count = sum(left for _, left in waiting)
    for ids in _ids_in_batches(integration.deliveries.waiting().order_by("pk")):
        enqueue_deliveries(integration.pk, ids)
        count += len(ids)
    return count


@dataclass
class ReplayResult:
    events: int = 0
    deliveries: int = 0


def replay(
    integration: Integration,
    since: dt.datetime,
    until: dt.datetime,
    batch_size: int = EVENTS_PER_DISPATCH,
) -> ReplayResult:
    """Send the workspace's events received in the range to the integration again.

    The events the integration's rules let through are dispatched again (origin
    ``replay``), in batches, each committed with its task.
    """
    result = ReplayResult()
    router = Router([integration])
    events = (
        events_in_range(integration, since, until)
        .order_by("received_at", "pk")
        .only("pk", "type", "event", "payload")
    )
    batch: list[str] = []
    for event in events.iterator(chunk_size=batch_size):
        result.events += 1
        if router.destinations(Routable.of(event)):
            batch.append(str(event.pk))
        if len(batch) == batch_size:
            result.deliveries += _replay_batch(integration, batch)
            batch = []
    if batch:
        result.deliveries += _replay_batch(integration, batch)
    return result


def _replay_batch(integration: Integration, event_ids: list[str]) -> int:
    with transaction.atomic():
        dispatch = Dispatch.objects.create(
            integration=integration,
            origin=Origin.REPLAY,
            event_ids=event_ids,
            size=len(event_ids),
        )
        enqueue_dispatches(integration.pk, [dispatch.pk])
    return len(event_ids)


@dataclass
class StartedReplay:
    events: int
    task_id: str


def start_replay(integration: Integration, since: dt.datetime, until: dt.datetime) -> StartedReplay:
    """Start ``replay`` in the background, with an entry in the audit trail."""
    events = events_in_range(integration, since, until).count()
    result = replay_events.enqueue(integration.pk, since.isoformat(), until.isoformat())
    audit.record_operation(
        integration, f"Replay of {events} events received {time_range(since, until)}"
    )
    return StartedReplay(events=events, task_id=str(result.id))


@task()
def replay_events(integration_id: int, since: str, until: str) -> dict[str, int]:
    """Dispatch again the events received in [since, until) (the API's replay)."""
    integration = Integration.objects.get(pk=integration_id)
    result = replay(integration, dt.datetime.fromisoformat(since), dt.datetime.fromisoformat(until))
    return {"events": result.events, "deliveries": result.deliveries}

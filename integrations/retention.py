"""Retention: old traffic deleted in short batches, what still waits kept.

``prune_events`` (the management command) drives it, workspace by workspace:

1. ``hold_of`` finds the earliest event of the workspace still waiting for its first
   attempt: in a routing job (not routed yet), a live dispatch (routed, not attempted) or
   a replay or test dispatch (which may name any event). The workspace's events are
   deleted up to the retention cutoff or that time, whichever is earlier.
2. ``next_batch`` walks the events older than that along the (workspace, received_at)
   index, from where the previous batch ended (keyset on ``(received_at, id)``): each
   batch is an index range scan, whatever was deleted or kept before it.
3. ``prune_batch`` deletes a batch in one short transaction, child rows first, with
   set-based ``DELETE``s (no rows loaded into Python, no cascade collection): the earlier
   attempts, the deliveries, the events, then the exchanges no remaining delivery or
   attempt refers to (a batch request can carry events on both sides of the cutoff: its
   exchange goes with the last of them). An event with a delivery still retrying, or one
   a worker holds right now, is kept, with all its deliveries.

``prune_finished_tasks`` deletes finished task rows in batches along the partial index
``integrations_task_finished`` (migration ``0015_finished_task_index``).
"""

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.db.models import CharField, Exists, F, Func, OuterRef, Q, QuerySet
from django.db.models.sql.compiler import SQLCompiler
from django.utils import timezone
from django_tasks_db.compat import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from integrations.models import (
    DeletionRequest,
    Delivery,
    DeliveryAttempt,
    Dispatch,
    Event,
    EventSearchEntry,
    Exchange,
    Integration,
    Origin,
    RoutingJob,
)

FINISHED_TASKS = (TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED)
EXCHANGES_PER_STATEMENT = 2000


class RemainingHead(Func):
    """``event_ids[done]``: the first event of a dispatch still to be attempted, as text."""

    output_field = CharField()

    def __init__(self) -> None:
        super().__init__(F("event_ids"), F("done"))

    def as_sql(
        self,
        compiler: SQLCompiler,
        connection: Any,
        function: str | None = None,
        template: str | None = None,
        arg_joiner: str | None = None,
        **extra: Any,
    ) -> Any:
        raise NotImplementedError(f"no RemainingHead on {connection.vendor}")

    def as_postgresql(self, compiler: SQLCompiler, connection: Any, **extra: Any) -> Any:
        return super().as_sql(
            compiler, connection, template="(%(expressions)s)", arg_joiner=" ->> ", **extra
        )

    def as_sqlite(self, compiler: SQLCompiler, connection: Any, **extra: Any) -> Any:
        return super().as_sql(
            compiler,
            connection,
            template="json_extract(%(expressions)s || ']')",
            arg_joiner=", '$[' || ",
            **extra,
        )


@dataclass(frozen=True)
class Hold:
    """Why a workspace's events from ``since`` on are kept: one still waits."""

    since: dt.datetime
    reason: str


def hold_of(workspace_id: int, cutoff: dt.datetime) -> Hold | None:
    """The earliest event of the workspace, received before ``cutoff``, that still waits
    for its first attempt (None: none does).

    Routing jobs are read before dispatches: the router turns a job into dispatches in
    one transaction, so a job moved in between is seen at least once.
    """
    holds = []
    job = (
        RoutingJob.objects.filter(workspace_id=workspace_id, created_at__lt=cutoff)
        .order_by("created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    if job is not None:
        holds.append(Hold(job, "an event received then is not routed yet"))
    dispatches = Dispatch.objects.filter(integration__workspace_id=workspace_id)
    # A live dispatch holds no event received before it was created.
    live = (
        dispatches.filter(origin=Origin.LIVE, created_at__lt=cutoff)
        .order_by("created_at")
        .values_list("created_at", "integration_id")
        .first()
    )
    if live is not None:
        holds.append(Hold(live[0], _waits_for(live[1], "a dispatch")))
    # A replay names events in the order received: the first one left is the earliest.
    heads = dict(
        dispatches.exclude(origin=Origin.LIVE)
        .filter(done__lt=F("size"))
        .annotate(head=RemainingHead())
        .values_list("head", "integration_id")
    )
    if heads:
        first = (
            Event.objects.filter(pk__in=list(heads), received_at__lt=cutoff)
            .order_by("received_at")
            .values_list("received_at", "pk")
            .first()
        )
        if first is not None:
            holds.append(Hold(first[0], _waits_for(heads[str(first[1])], "a replay")))
    return min(holds, key=lambda hold: hold.since, default=None)


def _waits_for(integration_id: int, what: str) -> str:
    integration = Integration.objects.filter(pk=integration_id).first()
    if integration is None:
        return f"an event received then waits in {what}"
    paused = " (paused)" if integration.paused else ""
    return f"an event received then waits in {what} of {integration.name}{paused}"


Position = tuple[dt.datetime, uuid.UUID]


def old_events(
    workspace_id: int, until: dt.datetime, after: Position | None = None
) -> QuerySet[Event]:
    """The workspace's events received before ``until`` (and after ``after``, a
    (received_at, id) position), oldest first."""
    events = Event.objects.filter(workspace_id=workspace_id, received_at__lt=until)
    if after is not None:
        received_at, pk = after
        # The range bound lets the index scan start at ``after``; the tie on the time is
        # broken by the id.
        events = events.filter(received_at__gte=received_at).filter(
            Q(received_at__gt=received_at) | Q(pk__gt=pk)
        )
    return events.order_by("received_at", "pk")


def next_batch(
    workspace_id: int, until: dt.datetime, after: Position | None, size: int
) -> list[Position]:
    """The next ``size`` old events after ``after``, as (received_at, id), oldest first."""
    return list(old_events(workspace_id, until, after).values_list("received_at", "pk")[:size])


@dataclass
class Pruned:
    """What a batch (or a whole run) deleted, and the events it kept."""

    events: int = 0
    deliveries: int = 0
    attempts: int = 0
    exchanges: int = 0
    kept: int = 0

    def add(self, other: "Pruned") -> None:
        self.events += other.events
        self.deliveries += other.deliveries
        self.attempts += other.attempts
        self.exchanges += other.exchanges
        self.kept += other.kept


def links_deletions(workspace_id: int, until: dt.datetime) -> bool:
    """Whether a deletion request of the workspace travels as an event received before
    ``until`` (most workspaces have none: their batches skip the unlinking)."""
    return DeletionRequest.objects.filter(
        workspace_id=workspace_id, event__received_at__lt=until
    ).exists()


def prune_batch(
    event_ids: Sequence[uuid.UUID], *, deletions: bool = True, now: dt.datetime | None = None
) -> Pruned:
    """Delete these events with their deliveries, earlier attempts and the exchanges left
    unreferenced, in one transaction; an event with a delivery still retrying or held by a
    worker (leased) is kept. ``deletions``: some may be deletion requests' events, whose
    link is cleared (the requests stay)."""
    now = now or timezone.now()
    db = connection.alias
    with transaction.atomic():
        # Locked so that a worker cannot start an attempt of one of them meanwhile (its
        # claim skips locked rows).
        deliveries = list(
            Delivery.objects.select_for_update()
            .filter(event_id__in=event_ids)
            .order_by("pk")
            .values_list("pk", "event_id", "status", "leased_until", "exchange_id")
        )
        held = {
            event_id
            for _, event_id, status, leased_until, _ in deliveries
            if status == Delivery.Status.RETRYING or (leased_until and leased_until > now)
        }
        gone_events = [pk for pk in event_ids if pk not in held]
        pruned = Pruned(kept=len(event_ids) - len(gone_events))
        if not gone_events:
            return pruned
        exchanges = {
            exchange_id
            for _, event_id, _, _, exchange_id in deliveries
            if event_id not in held and exchange_id is not None
        }
        attempts = DeliveryAttempt.objects.filter(delivery__event_id__in=gone_events)
        exchanges.update(attempts.exclude(exchange=None).values_list("exchange_id", flat=True))
        pruned.attempts = attempts._raw_delete(db)
        pruned.deliveries = Delivery.objects.filter(event_id__in=gone_events)._raw_delete(db)
        if deletions:
            DeletionRequest.objects.filter(event_id__in=gone_events).update(event=None)
        EventSearchEntry.objects.filter(event_id__in=gone_events)._raw_delete(db)
        pruned.events = Event.objects.filter(pk__in=gone_events)._raw_delete(db)
        pruned.exchanges = _delete_unreferenced(sorted(exchanges))
    return pruned


def _delete_unreferenced(exchange_ids: list[int]) -> int:
    """Delete those of these exchanges (with their later steps) that no delivery or
    attempt refers to any more; how many exchanges went. (In chunks: SQLite bounds the
    parameters of a statement.)"""
    db = connection.alias
    deleted = 0
    for start in range(0, len(exchange_ids), EXCHANGES_PER_STATEMENT):
        chunk = exchange_ids[start : start + EXCHANGES_PER_STATEMENT]
        unreferenced = list(
            Exchange.objects.filter(pk__in=chunk)
            .exclude(
                Exists(Delivery.objects.filter(exchange=OuterRef("pk")))
                | Exists(DeliveryAttempt.objects.filter(exchange=OuterRef("pk")))
            )
            .values_list("pk", flat=True)
        )
        if unreferenced:
            deleted += Exchange.objects.filter(head_id__in=unreferenced)._raw_delete(db)
            deleted += Exchange.objects.filter(pk__in=unreferenced)._raw_delete(db)
    return deleted


def finished_tasks(cutoff: dt.datetime) -> QuerySet[DBTaskResult]:
    """Task rows that finished before ``cutoff``, oldest first (the partial index's order)."""
    return DBTaskResult.objects.filter(status__in=FINISHED_TASKS, finished_at__lt=cutoff).order_by(
        "finished_at"
    )


def prune_finished_tasks(cutoff: dt.datetime, size: int) -> int:
    """Delete up to ``size`` task rows that finished before ``cutoff``; how many went."""
    batch = finished_tasks(cutoff).values("pk")[:size]
    with transaction.atomic():
        return DBTaskResult.objects.filter(pk__in=batch)._raw_delete(connection.alias)

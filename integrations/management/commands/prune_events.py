"""Delete old events with their deliveries, attempts and exchanges, and finished task rows."""

import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.db.models import Exists, Min, OuterRef, Q
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from integrations.models import (
    Delivery,
    DeliveryAttempt,
    Dispatch,
    Event,
    Exchange,
    Origin,
    Workspace,
)


def prune_batch(event_ids: list[Any]) -> tuple[int, int]:
    """Delete these events, their deliveries and earlier attempts, and the exchanges no
    remaining delivery refers to, in one short transaction; (deliveries, exchanges)."""
    with transaction.atomic():
        deliveries = Delivery.objects.filter(event_id__in=event_ids)
        attempts = DeliveryAttempt.objects.filter(delivery__event_id__in=event_ids)
        exchanges = set(deliveries.exclude(exchange=None).values_list("exchange_id", flat=True))
        exchanges |= set(attempts.exclude(exchange=None).values_list("exchange_id", flat=True))
        attempts.delete()
        _, deleted = deliveries.delete()
        Event.objects.filter(pk__in=event_ids).delete()
        # A batch request can carry events on both sides of the cutoff: keep its exchange
        # while a delivery still refers to it.
        orphans = Exchange.objects.filter(pk__in=exchanges).exclude(
            Exists(Delivery.objects.filter(exchange=OuterRef("pk")))
            | Exists(DeliveryAttempt.objects.filter(exchange=OuterRef("pk")))
        )
        exchange_count, _ = orphans.delete()
    return deleted.get(Delivery._meta.label, 0), exchange_count


class Command(BaseCommand):
    help = (
        "Delete events received more than --days ago (default EVENT_RETENTION_DAYS), with "
        "their deliveries, attempts and exchanges, and finished task rows as old. Events "
        "still waiting to be delivered (in a dispatch, or with a delivery to retry) are "
        "kept. Works in short batches, workspace by workspace, showing progress: safe to "
        "schedule (cron, systemd timer) beside live traffic."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=settings.EVENT_RETENTION_DAYS)
        parser.add_argument("--batch-size", type=int, default=1000)

    def handle(self, *args: Any, days: int, batch_size: int, **options: Any) -> None:
        if days < 1:
            self.stderr.write("--days must be at least 1.")
            raise SystemExit(2)
        cutoff = timezone.now() - dt.timedelta(days=days)
        # Events still in a dispatch are kept: a live dispatch holds events received
        # since it was written; a replay may name any event.
        oldest_live = Dispatch.objects.exclude(origin=Origin.REPLAY).aggregate(t=Min("created_at"))[
            "t"
        ]
        until = min(cutoff, oldest_live) if oldest_live else cutoff
        replayed = self._replayed_events()
        self.stdout.write(f"Deleting events received before {until:%Y-%m-%d %H:%M} UTC.")
        totals = [0, 0, 0]
        for workspace in Workspace.objects.order_by("pk"):
            self._prune_workspace(workspace, until, replayed, batch_size, totals)
        tasks, _ = DBTaskResult.objects.filter(
            status__in=["SUCCESSFUL", "FAILED"], finished_at__lt=cutoff
        ).delete()
        events, deliveries, exchanges = totals
        self.stdout.write(
            self.style.SUCCESS(
                f"Deleted {events} events, {deliveries} deliveries, {exchanges} exchanges "
                f"and {tasks} finished task rows."
            )
        )

    def _replayed_events(self) -> set[str]:
        replayed: set[str] = set()
        rows = Dispatch.objects.filter(origin=Origin.REPLAY).values_list("event_ids", flat=True)
        for ids in rows.iterator():
            replayed.update(ids)
        return replayed

    def _prune_workspace(
        self,
        workspace: Workspace,
        until: dt.datetime,
        replayed: Iterable[str],
        batch_size: int,
        totals: list[int],
    ) -> None:
        old = (
            Event.objects.filter(workspace=workspace, received_at__lt=until)
            .exclude(Q(deliveries__status=Delivery.Status.RETRYING))
            .order_by("received_at")
        )
        total = old.count()
        if not total:
            return
        self.stdout.write(f"{workspace.slug}: {total} events to delete")
        kept = {str(pk) for pk in replayed}
        deleted = 0
        skip: set[Any] = set()
        while True:
            ids = list(old.exclude(pk__in=skip).values_list("pk", flat=True)[:batch_size])
            if not ids:
                break
            waiting = {pk for pk in ids if str(pk) in kept}
            skip |= waiting
            ids = [pk for pk in ids if pk not in waiting]
            if not ids:
                continue
            deliveries, exchanges = prune_batch(ids)
            deleted += len(ids)
            totals[0] += len(ids)
            totals[1] += deliveries
            totals[2] += exchanges
            self.stdout.write(f"  {deleted}/{total} events deleted")

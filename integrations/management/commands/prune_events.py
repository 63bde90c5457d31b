"""Delete old events with their deliveries and attempts, and finished task rows."""

import datetime as dt
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from integrations.models import Delivery, DeliveryAttempt, Event


class Command(BaseCommand):
    help = (
        "Delete events received more than --days ago (default EVENT_RETENTION_DAYS), with "
        "their deliveries and attempts, and finished task rows as old. Events with a "
        "delivery still waiting are kept. Safe to schedule (cron, systemd timer)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=settings.EVENT_RETENTION_DAYS)
        parser.add_argument("--batch-size", type=int, default=1000)

    def handle(self, *args: Any, days: int, batch_size: int, **options: Any) -> None:
        if days < 1:
            self.stderr.write("--days must be at least 1.")
            raise SystemExit(2)
        cutoff = timezone.now() - dt.timedelta(days=days)
        old = (
            Event.objects.filter(received_at__lt=cutoff)
            .exclude(deliveries__status__in=[Delivery.Status.PENDING, Delivery.Status.RETRYING])
            .order_by("received_at")
        )
        total = old.count()
        self.stdout.write(f"{total} events received before {cutoff:%Y-%m-%d %H:%M} UTC to delete.")
        deleted = 0
        while True:
            ids = list(old.values_list("pk", flat=True)[:batch_size])
            if not ids:
                break
            with transaction.atomic():
                DeliveryAttempt.objects.filter(delivery__event_id__in=ids).delete()
                Delivery.objects.filter(event_id__in=ids).delete()
                Event.objects.filter(pk__in=ids).delete()
            deleted += len(ids)
            self.stdout.write(f"  {deleted}/{total} events deleted")
        tasks, _ = DBTaskResult.objects.filter(
            status__in=["SUCCESSFUL", "FAILED"], finished_at__lt=cutoff
        ).delete()
        self.stdout.write(
            self.style.SUCCESS(f"Deleted {deleted} events and {tasks} finished task rows.")
        )

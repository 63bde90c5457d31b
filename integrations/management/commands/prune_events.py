"""Delete old events with their deliveries, attempts and exchanges, and finished task rows."""

import datetime as dt
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from integrations import retention
from integrations.models import Workspace

MAX_BATCH_SIZE = 10_000
# Seconds between progress lines at the default verbosity (every batch with -v 2).
PROGRESS_EVERY = 5.0


class Command(BaseCommand):
    help = (
        "Delete events received more than --days ago (default EVENT_RETENTION_DAYS), with "
        "their deliveries, attempts and exchanges, and task rows that finished as long ago. "
        "Events still waiting (not routed yet, in a dispatch or a replay, or with a "
        "delivery retrying or being sent) are kept. Works in short transactions of "
        "--batch-size events, workspace by workspace, showing progress: safe to schedule "
        "(cron, systemd timer) beside live traffic."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            type=int,
            default=settings.EVENT_RETENTION_DAYS,
            help="age in days of the events deleted (default EVENT_RETENTION_DAYS)",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=1000,
            help=f"events (or task rows) per transaction, 1 to {MAX_BATCH_SIZE:,} (1000)",
        )
        parser.add_argument(
            "--pause",
            type=float,
            default=0.0,
            help="seconds to wait between batches, to leave the database to live traffic (0)",
        )

    def handle(
        self, *args: Any, days: int, batch_size: int, pause: float, verbosity: int, **options: Any
    ) -> None:
        if days < 1:
            raise CommandError("--days must be at least 1.")
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise CommandError(f"--batch-size must be between 1 and {MAX_BATCH_SIZE:,}.")
        if pause < 0:
            raise CommandError("--pause cannot be negative.")
        self.batch_size, self.pause, self.verbosity = batch_size, pause, verbosity
        started = time.monotonic()
        cutoff = timezone.now() - dt.timedelta(days=days)
        self.stdout.write(
            f"Deleting events received before {cutoff:%Y-%m-%d %H:%M} UTC ({days} days), "
            f"{batch_size:,} per transaction."
        )
        totals = retention.Pruned()
        for workspace_id, slug in Workspace.objects.order_by("pk").values_list("pk", "slug"):
            totals.add(self.prune_workspace(workspace_id, slug, cutoff))
        tasks = self.prune_tasks(cutoff)
        self.stdout.write(
            self.style.SUCCESS(
                f"Deleted {totals.events:,} events, {totals.deliveries:,} deliveries, "
                f"{totals.attempts:,} earlier attempts, {totals.exchanges:,} exchanges and "
                f"{tasks:,} finished task rows in {time.monotonic() - started:.1f} s; kept "
                f"{totals.kept:,} old events with a delivery retrying or being sent."
            )
        )

    def prune_workspace(
        self, workspace_id: int, slug: str, cutoff: dt.datetime
    ) -> retention.Pruned:
        until = cutoff
        hold = retention.hold_of(workspace_id, cutoff)
        if hold is not None:
            until = hold.since
            self.stdout.write(
                f"{slug}: keeping events received from {hold.since:%Y-%m-%d %H:%M:%S} UTC on: "
                f"{hold.reason}."
            )
        total = retention.old_events(workspace_id, until).count()
        pruned = retention.Pruned()
        if not total:
            return pruned
        self.stdout.write(f"{slug}: {total:,} events to delete")
        started = last_line = time.monotonic()
        deletions = retention.links_deletions(workspace_id, until)
        after = None
        while batch := retention.next_batch(workspace_id, until, after, self.batch_size):
            after = batch[-1]
            pruned.add(retention.prune_batch([pk for _, pk in batch], deletions=deletions))
            now = time.monotonic()
            if self.verbosity > 1 or now - last_line >= PROGRESS_EVERY:
                self.progress(slug, pruned, total, now - started)
                last_line = now
            if self.pause:
                time.sleep(self.pause)
        self.progress(slug, pruned, total, time.monotonic() - started)
        return pruned

    def progress(self, slug: str, pruned: retention.Pruned, total: int, seconds: float) -> None:
        rate = f", {pruned.events / seconds:,.0f} events/s" if seconds > 0 else ""
        kept = f", {pruned.kept:,} kept (retrying or being sent)" if pruned.kept else ""
        self.stdout.write(f"  {slug}: {pruned.events:,}/{total:,} events deleted{kept}{rate}")

    def prune_tasks(self, cutoff: dt.datetime) -> int:
        deleted = 0
        while count := retention.prune_finished_tasks(cutoff, self.batch_size):
            deleted += count
            if self.verbosity > 1:
                self.stdout.write(f"  finished task rows: {deleted:,} deleted")
            if self.pause:
                time.sleep(self.pause)
        return deleted

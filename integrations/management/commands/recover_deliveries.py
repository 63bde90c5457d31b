"""Re-enqueue every due delivery that has no live task (the worker's sweep, on demand)."""

from typing import Any

from django.core.management.base import BaseCommand

from integrations.delivery import recovery


class Command(BaseCommand):
    help = "Re-enqueue due deliveries that have no live task (after a crash or a queue loss)."

    def handle(self, *args: Any, **options: Any) -> None:
        count = recovery.sweep()
        self.stdout.write(f"Re-enqueued {count} deliveries.")

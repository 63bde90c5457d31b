"""Route what waits to be routed, then re-enqueue every due dispatch and delivery that has
no live task (the worker's router and sweep, on demand)."""

from typing import Any

from django.core.management.base import BaseCommand

from integrations.delivery import recovery, routing


class Command(BaseCommand):
    help = (
        "Route accepted events still waiting to be routed, then re-enqueue due dispatches "
        "and deliveries that have no live task (after a crash or a queue loss)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        routed = 0
        while count := routing.route_pending():
            routed += count
        count = recovery.sweep()
        self.stdout.write(f"Routed {routed} events; re-enqueued {count} dispatches and deliveries.")

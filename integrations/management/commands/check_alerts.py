"""Run the alert check once (the worker's periodic check, on demand)."""

from typing import Any

from django.core.management.base import BaseCommand

from integrations.alerts import periodic


class Command(BaseCommand):
    help = "Judge the alert rules now: open and clear incidents, send pending notices."

    def handle(self, *args: Any, **options: Any) -> None:
        result = periodic.check()
        if result is None:
            self.stdout.write("Another worker is checking the alerts right now.")
            return
        self.stdout.write(
            f"Opened {result.opened}, cleared {result.cleared} incident(s); sent "
            f"{result.notified} notice(s), {result.not_notified} not sent."
        )

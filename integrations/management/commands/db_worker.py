"""``db_worker`` from django-tasks-db, plus the router, the delivery recovery sweep and the
periodic alert check (``integrations.alerts.periodic``, every ``ALERTS_INTERVAL_SECONDS``).

Each worker runs two background threads beside its tasks: the router, which turns the
events ingest accepted into per-integration dispatches (``delivery/routing.py``; workers
share the work with ``SKIP LOCKED``), and the periodic recovery sweep (PostgreSQL lets
only one worker sweep at a time), so due work gets a task again even when the task table
lost it. ``--no-recovery`` turns the sweep off for a worker.
"""

import logging
import threading
from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection
from django_tasks_db.management.commands import db_worker

from integrations.alerts.periodic import check_forever
from integrations.delivery import recovery, routing

log = logging.getLogger(__name__)


def sweep_forever(interval: float, stop: threading.Event) -> None:
    """Sweep at start-up, then every ``interval`` seconds until ``stop`` is set."""
    while not stop.is_set():
        try:
            close_old_connections()
            recovery.sweep()
        except Exception:
            log.exception("recovery sweep failed; trying again in %.0f s", interval)
        finally:
            connection.close()
        stop.wait(interval)


class Command(db_worker.Command):
    help = f"{db_worker.Command.help}, with the periodic delivery recovery sweep"

    def add_arguments(self, parser: ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--no-recovery",
            action="store_false",
            dest="recovery",
            help="Don't run the delivery recovery sweep in this worker.",
        )

    def handle(self, *args: Any, recovery: bool = True, **options: Any) -> None:
        stop = threading.Event()
        threading.Thread(
            target=routing.route_forever,
            args=(settings.ROUTING_INTERVAL, stop),
            name="router",
            daemon=True,
        ).start()
        if recovery and settings.DELIVERY_RECOVERY_INTERVAL > 0:
            threading.Thread(
                target=sweep_forever,
                args=(settings.DELIVERY_RECOVERY_INTERVAL, stop),
                name="delivery-recovery",
                daemon=True,
            ).start()
        if settings.ALERTS_INTERVAL_SECONDS > 0:
            threading.Thread(
                target=check_forever,
                args=(settings.ALERTS_INTERVAL_SECONDS, stop),
                name="alert-checks",
                daemon=True,
            ).start()
        try:
            super().handle(*args, **options)
        finally:
            stop.set()

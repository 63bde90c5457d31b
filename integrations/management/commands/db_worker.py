"""``db_worker``: django-tasks-db's worker, made to outlive its database, plus the
periodic delivery recovery sweep.

The loop is ``integrations.delivery.worker.ResilientWorker``: a database restart or
failover makes it wait and reconnect, never exit. The sweep runs in a background thread
of each worker (PostgreSQL lets only one of them sweep at a time), so due deliveries get a
task again even when the task table lost it. ``--no-recovery`` turns it off for a worker.
"""

import os
from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV, run_with_reloader
from django_tasks_db.management.commands import db_worker

from integrations.delivery.worker import DatabaseOutage, RecoverySweeper, ResilientWorker


class Command(db_worker.Command):
    help = (
        f"{db_worker.Command.help}: rides out database outages, runs the periodic delivery "
        "recovery sweep"
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--no-recovery",
            action="store_false",
            dest="recovery",
            help="Don't run the delivery recovery sweep in this worker.",
        )

    def handle(
        self,
        *,
        verbosity: int,
        queue_name: str,
        interval: float,
        batch: bool,
        backend_name: str,
        startup_delay: bool,
        reload: bool,
        max_tasks: int | None,
        worker_id: str,
        exclude_queues: str,
        recovery: bool = True,
        **options: Any,
    ) -> None:
        self.configure_logging(verbosity)
        queue_names = queue_name.split(",")
        excluded_queue_names = exclude_queues.split(",") if exclude_queues else []
        if excluded_queue_names and "*" not in queue_names:
            raise CommandError("--exclude-queues can only be used with --queue-name=*")
        if reload and batch:
            self.stderr.write("--reload and --batch cannot be used together: not reloading.")
            reload = False

        outage = DatabaseOutage()
        worker = ResilientWorker(
            outage=outage,
            queue_names=queue_names,
            interval=interval,
            batch=batch,
            backend_name=backend_name,
            startup_delay=startup_delay,
            max_tasks=max_tasks,
            worker_id=worker_id,
            excluded_queue_names=excluded_queue_names,
        )
        if reload:
            # The reloader's child runs the worker; only it handles the signals.
            if os.environ.get(DJANGO_AUTORELOAD_ENV) == "true":
                worker.configure_signals()
                self.start_sweeper(recovery, outage)
            run_with_reloader(worker.run)
            return
        worker.configure_signals()
        sweeper = self.start_sweeper(recovery, outage)
        try:
            worker.run()
        finally:
            if sweeper is not None:
                sweeper.stop.set()

    @staticmethod
    def start_sweeper(recovery: bool, outage: DatabaseOutage) -> RecoverySweeper | None:
        if not recovery or settings.DELIVERY_RECOVERY_INTERVAL <= 0:
            return None
        sweeper = RecoverySweeper(settings.DELIVERY_RECOVERY_INTERVAL, outage)
        sweeper.start()
        return sweeper

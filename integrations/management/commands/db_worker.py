"""``db_worker``: django-tasks-db's worker, made to outlive its database, plus the jobs
each worker runs in threads of its own.

The loop is ``integrations.delivery.worker.ResilientWorker``: a database restart or
failover makes it wait and reconnect, never exit. Beside it (``worker.Periodic``, sharing
its view of an outage):

* the router, which turns the events ingest accepted into per-integration dispatches
  (``delivery/routing.py``; workers share the work with ``SKIP LOCKED``);
* the recovery sweep (PostgreSQL lets only one worker sweep at a time), so due work gets
  a task again even when the task table lost it; ``--no-recovery`` turns it off;
* the alert check, every ``ALERTS_INTERVAL_SECONDS`` (``alerts/periodic.py``).
"""

import gc
import os
from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV, run_with_reloader
from django_tasks_db.management.commands import db_worker

from integrations.alerts import periodic
from integrations.delivery import recovery, routing
from integrations.delivery.worker import DatabaseOutage, Periodic, ResilientWorker

# Seconds between looks at an empty queue, for tasks other processes enqueued.
POLL_INTERVAL = 0.1


class Command(db_worker.Command):
    help = (
        f"{db_worker.Command.help}: rides out database outages, runs the periodic delivery "
        "recovery sweep"
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        super().add_arguments(parser)
        # django-tasks-db's default is 1 s: a worker that found the queue empty would let
        # new work wait that long. Its own router's tasks wake it at once.
        parser.set_defaults(interval=POLL_INTERVAL)
        parser.add_argument(
            "--no-recovery",
            action="store_false",
            dest="recovery",
            help="Don't run the delivery recovery sweep in this worker.",
        )

    # django-tasks-db annotates **options as dicts, which refuses any option added here.
    def handle(  # type: ignore[override]
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
                self.start_jobs(recovery, outage)
            run_with_reloader(worker.run)
            return
        worker.configure_signals()
        jobs = self.start_jobs(recovery, outage)
        # What loading made lives as long as the worker: out of the collector's sight,
        # full collections (which a run's deliveries set off often) no longer walk it.
        gc.freeze()
        try:
            worker.run()
        finally:
            for job in jobs:
                job.stop.set()

    @staticmethod
    def start_jobs(sweep: bool, outage: DatabaseOutage) -> list[Periodic]:
        router = routing.route_pending
        jobs = [Periodic("router", settings.ROUTING_INTERVAL, outage, router, busy_again=True)]
        if sweep and settings.DELIVERY_RECOVERY_INTERVAL > 0:
            jobs.append(
                Periodic(
                    "recovery sweep", settings.DELIVERY_RECOVERY_INTERVAL, outage, recovery.sweep
                )
            )
        if settings.ALERTS_INTERVAL_SECONDS > 0:
            jobs.append(
                Periodic("alert check", settings.ALERTS_INTERVAL_SECONDS, outage, periodic.check)
            )
        for job in jobs:
            job.start()
        return jobs

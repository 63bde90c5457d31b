"""The recovery sweep: every due dispatch and delivery gets a live task, whatever happened
to the queue.

Work can be left without a task when a worker dies while sending (its lease expires),
when the process that wrote it dies between commit and enqueue, or when the task table
is damaged or cleared. The sweep finds due dispatches and deliveries that no waiting or
running task lists and enqueues them again; running tasks older than any task can live
are marked failed (their worker is gone).
"""

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Iterable

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from integrations.delivery.tasks import (
    IDS_PER_TASK,
    deliver_deliveries,
    deliver_dispatches,
    enqueue_deliveries,
    enqueue_dispatches,
)
from integrations.models import Delivery, Dispatch

log = logging.getLogger(__name__)

# Any number; only distinct from other advisory locks of this database.
ADVISORY_LOCK_ID = 4_201_337
READY, RUNNING, FAILED = "READY", "RUNNING", "FAILED"
TASK_PATHS = (deliver_dispatches.module_path, deliver_deliveries.module_path)


def task_lifetime() -> dt.timedelta:
    """The longest a delivery task can run, with margin."""
    return dt.timedelta(
        seconds=settings.DELIVERY_TASK_TIME_BUDGET + 2 * settings.DELIVERY_LEASE_SECONDS
    )


def _live_ids(task_path: str, now: dt.datetime) -> set[int]:
    """The ids listed by the waiting or running tasks of ``task_path``."""
    tasks = DBTaskResult.objects.filter(task_path=task_path)
    alive = tasks.filter(status=READY) | tasks.filter(
        status=RUNNING, started_at__gte=now - task_lifetime()
    )
    ids: set[int] = set()
    for args_kwargs in alive.values_list("args_kwargs", flat=True).iterator():
        ids.update(args_kwargs["args"][1])
    return ids


def _fail_lost_tasks(now: dt.datetime) -> int:
    return DBTaskResult.objects.filter(
        task_path__in=TASK_PATHS, status=RUNNING, started_at__lt=now - task_lifetime()
    ).update(
        status=FAILED,
        finished_at=now,
        exception_class_path="integrations.delivery.recovery.WorkerLost",
        traceback="The worker running this task stopped; the recovery sweep took over.",
    )


def _orphans(rows: Iterable[tuple[int, int]], live: set[int]) -> dict[int, list[int]]:
    orphans: dict[int, list[int]] = defaultdict(list)
    for pk, integration_id in rows:
        if pk not in live:
            orphans[integration_id].append(pk)
    return orphans


def sweep() -> int:
    """Enqueue due dispatches and deliveries that have no live task; returns how many."""
    now = timezone.now()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # One sweep at a time across all workers and hosts.
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [ADVISORY_LOCK_ID])
                if not cursor.fetchone()[0]:
                    return 0
        lost = _fail_lost_tasks(now)
        dispatches = _orphans(
            Dispatch.objects.due(now)
            .filter(integration__paused=False)
            .values_list("pk", "integration_id")
            .iterator(chunk_size=IDS_PER_TASK),
            _live_ids(deliver_dispatches.module_path, now),
        )
        deliveries = _orphans(
            Delivery.objects.due(now)
            .filter(integration__paused=False)
            .values_list("pk", "integration_id")
            .iterator(chunk_size=IDS_PER_TASK),
            _live_ids(deliver_deliveries.module_path, now),
        )
        for integration_id, ids in dispatches.items():
            enqueue_dispatches(integration_id, ids)
        for integration_id, ids in deliveries.items():
            enqueue_deliveries(integration_id, ids)
    count = sum(map(len, dispatches.values())) + sum(map(len, deliveries.values()))
    if count or lost:
        log.warning(
            "recovery sweep: re-enqueued %d dispatches and deliveries, %d lost tasks", count, lost
        )
    return count

"""Background tasks (django-tasks API, run by ``manage.py db_worker``) and the queue that
delivery runs hand their follow-up work to.

Tasks carry ids only: the rows (dispatches, deliveries) are the source of truth, and the
recovery sweep gives any due row that lost its task a new one.
"""

import datetime as dt
from collections.abc import Sequence

from django.db import OperationalError
from django.db.models import F
from django_tasks import TaskContext, task
from django_tasks_db.models import DBTaskResult
from django_tasks_db.utils import exclusive_transaction, is_locked_database_exception

from integrations.delivery import engine
from integrations.models import Dispatch, Trigger

# Ids per task: a task's arguments stay small, and so does one run's work.
IDS_PER_TASK = 500
# Events per task when dispatches are enqueued with their sizes: a backlog is spread over
# several tasks, so that every worker takes part of it (a run takes one task), and each
# task is still worth the set-up of a run.
EVENTS_PER_TASK = 1000
# Waiting tasks a run looks at to take over (``take_over_waiting``).
TAKE_OVER_TASKS = 20


@task(takes_context=True)
def deliver_dispatches(
    context: TaskContext,
    integration_id: int,
    dispatch_ids: list[int],
    trigger: str = Trigger.SCHEDULED,
) -> None:
    """First attempts of the events of these dispatches, and of those of the tasks it
    takes over (``take_over_waiting``)."""
    if trigger == Trigger.SCHEDULED:
        dispatch_ids = [
            *dispatch_ids,
            *take_over_waiting(context.task_result.id, integration_id, dispatch_ids),
        ]
    engine.deliver_dispatches(integration_id, dispatch_ids, trigger, QUEUE)


def take_over_waiting(task_id: str, integration_id: int, dispatch_ids: Sequence[int]) -> list[int]:
    """The dispatches of the integration's other waiting scheduled tasks, oldest first, as
    long as the run's events stay within ``EVENTS_PER_TASK``; those tasks are deleted.

    At a steady rate every routing pass makes a small dispatch and a task for it, and a
    task's set-up cost the worker more than its events; a backlog's tasks are already
    about that size, and are left for every worker to share. The dispatches, not the
    tasks, say what is left to do: should this run die before it claims them, the
    recovery sweep gives them a task again.
    """
    try:
        return _take_over(task_id, integration_id, dispatch_ids)
    except OperationalError as exc:
        if is_locked_database_exception(exc):  # SQLite busy: the run does without
            return []
        raise


def _take_over(task_id: str, integration_id: int, dispatch_ids: Sequence[int]) -> list[int]:
    tasks = DBTaskResult.objects.ready().filter(
        task_path=deliver_dispatches.module_path,
        args_kwargs__args__0=integration_id,
        args_kwargs__args__2=Trigger.SCHEDULED,
    )
    with exclusive_transaction(tasks.db):
        waiting = list(
            tasks.exclude(pk=task_id)
            .select_for_update(skip_locked=True)
            .order_by("enqueued_at")
            .values_list("pk", "args_kwargs")[:TAKE_OVER_TASKS]
        )
        listed = {pk for _, args_kwargs in waiting for pk in args_kwargs["args"][1]}
        left = dict(
            Dispatch.objects.filter(pk__in=[*dispatch_ids, *listed]).values_list(
                "pk", F("size") - F("done")
            )
        )
        events = sum(left.get(pk, 0) for pk in dispatch_ids)
        taken, ids = [], []
        for pk, args_kwargs in waiting:
            theirs = args_kwargs["args"][1]
            events += sum(left.get(dispatch, 0) for dispatch in theirs)
            if events > EVENTS_PER_TASK:
                break
            taken.append(pk)
            ids += theirs
        DBTaskResult.objects.filter(pk__in=taken).delete()
    return ids


@task()
def deliver_deliveries(
    integration_id: int, delivery_ids: list[int], trigger: str = Trigger.SCHEDULED
) -> None:
    """Another attempt of these deliveries (a retry, or one an operator asked for)."""
    engine.deliver_deliveries(integration_id, delivery_ids, trigger, QUEUE)


def _chunks(ids: Sequence[int]) -> list[list[int]]:
    ids = list(ids)
    return [ids[start : start + IDS_PER_TASK] for start in range(0, len(ids), IDS_PER_TASK)]


def _by_events(dispatch_ids: Sequence[int], events: Sequence[int]) -> list[list[int]]:
    """Consecutive dispatches in groups of about ``EVENTS_PER_TASK`` events (a bigger
    dispatch alone), at most ``IDS_PER_TASK`` in a group."""
    groups: list[list[int]] = []
    total = 0
    for pk, size in zip(dispatch_ids, events, strict=True):
        full = total and total + size > EVENTS_PER_TASK
        if not groups or full or len(groups[-1]) == IDS_PER_TASK:
            groups.append([])
            total = 0
        groups[-1].append(pk)
        total += size
    return groups


def enqueue_dispatches(
    integration_id: int,
    dispatch_ids: Sequence[int],
    run_after: dt.datetime | None = None,
    trigger: str = Trigger.SCHEDULED,
    *,
    events: Sequence[int] | None = None,
) -> None:
    """Tasks for these dispatches, in order. With ``events`` (the events each has left)
    they are spread over tasks of about ``EVENTS_PER_TASK`` events; without, they stay
    together (up to ``IDS_PER_TASK`` a task), as when a run hands its own task's on."""
    groups = _chunks(dispatch_ids) if events is None else _by_events(dispatch_ids, events)
    for group in groups:
        deliver_dispatches.using(run_after=run_after).enqueue(integration_id, group, trigger)


def enqueue_deliveries(
    integration_id: int,
    delivery_ids: Sequence[int],
    *,
    trigger: str = Trigger.SCHEDULED,
    run_after: dt.datetime | None = None,
) -> None:
    for chunk in _chunks(delivery_ids):
        deliver_deliveries.using(run_after=run_after).enqueue(integration_id, chunk, trigger)


class TaskQueue:
    """``engine.Queue`` on the django-tasks queue."""

    def retries(
        self, integration_id: int, delivery_ids: Sequence[int], run_after: dt.datetime | None
    ) -> None:
        enqueue_deliveries(integration_id, delivery_ids, run_after=run_after)

    def dispatches(
        self,
        integration_id: int,
        dispatch_ids: Sequence[int],
        run_after: dt.datetime | None = None,
        trigger: str = Trigger.SCHEDULED,
        *,
        events: Sequence[int] | None = None,
    ) -> None:
        enqueue_dispatches(integration_id, dispatch_ids, run_after, trigger, events=events)

    def deliveries(self, integration_id: int, delivery_ids: Sequence[int], trigger: str) -> None:
        enqueue_deliveries(integration_id, delivery_ids, trigger=trigger)


QUEUE = TaskQueue()

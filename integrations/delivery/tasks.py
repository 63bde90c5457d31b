"""Background tasks (django-tasks API, run by ``manage.py db_worker``)."""

import datetime as dt
from collections.abc import Sequence

from django_tasks import task

from integrations.models import DeliveryAttempt

# Ids per task: a task's arguments stay small, and so does one run's work.
IDS_PER_TASK = 500


@task()
def deliver(
    integration_id: int,
    delivery_ids: list[int],
    trigger: str = DeliveryAttempt.Trigger.SCHEDULED,
) -> None:
    """Deliver the listed deliveries of one integration that are still due."""
    # Imported here: the engine enqueues this task in turn.
    from integrations.delivery import engine

    engine.deliver(integration_id, delivery_ids, trigger)


@task()
def replay_events(integration_id: int, since: str, until: str) -> dict[str, int]:
    """Make replay deliveries for the events received in [since, until)."""
    from integrations.delivery import operations
    from integrations.models import Integration

    integration = Integration.objects.get(pk=integration_id)
    result = operations.replay(
        integration, dt.datetime.fromisoformat(since), dt.datetime.fromisoformat(until)
    )
    return {"events": result.events, "deliveries": result.deliveries}


def enqueue_deliveries(
    integration_id: int,
    delivery_ids: Sequence[int],
    *,
    trigger: str = DeliveryAttempt.Trigger.SCHEDULED,
    run_after: dt.datetime | None = None,
) -> None:
    ids = list(delivery_ids)
    for start in range(0, len(ids), IDS_PER_TASK):
        chunk = ids[start : start + IDS_PER_TASK]
        deliver.using(run_after=run_after).enqueue(integration_id, chunk, trigger)

"""Background tasks (django-tasks API, run by ``manage.py db_worker``)."""

from django_tasks import task


@task()
def deliver(integration_id: int, delivery_ids: list[int]) -> None:
    """Deliver pending deliveries of one integration.

    The delivery engine (sending, retries, attempt log) is built by the delivery issue;
    until then deliveries stay pending.
    """


def enqueue_deliveries(integration_id: int, delivery_ids: list[int]) -> None:
    deliver.enqueue(integration_id, delivery_ids)

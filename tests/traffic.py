"""Test helpers for traffic: accept messages and run the worker's work synchronously.

Tests that need deliveries go through these instead of creating ``Delivery`` rows by
hand, so that they keep working whatever shape the data path takes.
"""

from typing import Any

from django.utils import timezone

from integrations.delivery.tasks import deliver
from integrations.ingest import AcceptResult, accept
from integrations.models import Delivery, Integration, Source
from integrations.sources.segment_spec import normalize


def send(source: Source, **message: Any) -> AcceptResult:
    """Accept one message as the tracking API would."""
    return accept(source, [normalize(message, received_at=timezone.now())])


def deliver_due(integration: Integration | None = None) -> None:
    """Do what a worker would do now: route accepted events and send every delivery that
    is due (of one integration, or of all), each integration's in one run."""
    waiting = Delivery.objects.due()
    if integration is not None:
        waiting = waiting.filter(integration=integration)
    by_integration: dict[int, list[int]] = {}
    for pk, integration_id in waiting.order_by("pk").values_list("pk", "integration_id"):
        by_integration.setdefault(integration_id, []).append(pk)
    for integration_id, ids in by_integration.items():
        deliver.call(integration_id, ids, "scheduled")


def exchanges_of(delivery: Delivery) -> list[dict[str, Any]]:
    """The HTTP exchanges logged for a delivery, oldest first, as plain dicts."""
    return [
        {
            "method": attempt.request_method,
            "url": attempt.request_url,
            "request_headers": attempt.request_headers,
            "request_body": attempt.request_body,
            "status": attempt.response_status,
            "response_headers": attempt.response_headers,
            "response_body": attempt.response_body,
            "error": attempt.error,
        }
        for attempt in delivery.attempts.order_by("number")
        if attempt.request_method
    ]

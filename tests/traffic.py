"""Test helpers for traffic: accept messages and run the worker's work synchronously.

Tests that need deliveries go through these instead of creating ``Delivery`` rows by
hand, so that they keep working whatever shape the data path takes.
"""

from typing import Any

from django.utils import timezone

from integrations.delivery import engine, routing
from integrations.delivery.tasks import QUEUE
from integrations.ingest import AcceptResult, accept
from integrations.models import Delivery, Dispatch, Integration, Source, Trigger
from integrations.sources.segment_spec import normalize


def send(source: Source, **message: Any) -> AcceptResult:
    """Accept one message as the tracking API would."""
    return accept(source, [normalize(message, received_at=timezone.now())])


def route() -> int:
    """Route everything accepted so far, as the worker's router would."""
    routed = 0
    while count := routing.route_pending():
        routed += count
    return routed


def deliver_due(integration: Integration | None = None) -> None:
    """Do what a worker would do now: route accepted events, then attempt every dispatch
    and delivery that is due (of one integration, or of all), each integration's in one
    run per kind."""
    route()
    dispatches = Dispatch.objects.due()
    deliveries = Delivery.objects.due()
    if integration is not None:
        dispatches = dispatches.filter(integration=integration)
        deliveries = deliveries.filter(integration=integration)
    for integration_id, ids in _by_integration(dispatches).items():
        engine.deliver_dispatches(integration_id, ids, Trigger.SCHEDULED, QUEUE)
    for integration_id, ids in _by_integration(deliveries).items():
        engine.deliver_deliveries(integration_id, ids, Trigger.SCHEDULED, QUEUE)


def _by_integration(queryset: Any) -> dict[int, list[int]]:
    grouped: dict[int, list[int]] = {}
    for pk, integration_id in queryset.order_by("pk").values_list("pk", "integration_id"):
        grouped.setdefault(integration_id, []).append(pk)
    return grouped


def exchanges_of(delivery: Delivery) -> list[dict[str, Any]]:
    """The HTTP exchanges logged for a delivery, oldest first, as plain dicts."""
    return [
        {
            "method": exchange.method,
            "url": exchange.url,
            "request_headers": exchange.request_headers,
            "request_body": exchange.request_body,
            "status": exchange.response_status,
            "response_headers": exchange.response_headers,
            "response_body": exchange.response_body,
            "error": exchange.error,
        }
        for _, chain in delivery.attempts_with_exchanges()
        for exchange in chain
    ]

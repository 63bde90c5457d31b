"""The event tester: what an integration would send for an event, and a real test send.

A preview plans the requests exactly as the worker would (same rules, same profile store)
and sends nothing; secrets in it are redacted. A test send stores the event as a test
(``Event.is_test``, ``Delivery.origin = test``), makes one attempt at once, and is never
retried.
"""

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from integrations import profiles
from integrations.delivery import engine
from integrations.delivery.redact import Redactor
from integrations.delivery.routing import Router
from integrations.destinations.context import PlanContext, Rules
from integrations.ingest import event_from_message
from integrations.models import Delivery, DeliveryAttempt, Event, Integration
from integrations.sources.segment_spec import normalize


@dataclass
class Preview:
    message: dict[str, Any]
    routed: bool
    reason: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    failures: dict[int, str] = field(default_factory=dict)


def _event(integration: Integration, raw: Any) -> Event:
    """Validate and normalise a message (raises MessageError).

    A test always gets a fresh ``test-<uuid>`` messageId, so that a sample or an event
    copied from the log can be sent again and again without colliding with the event it
    came from; the messageId it carried is kept in ``context.eventTester.originalMessageId``.
    """
    message = raw  # not an object: normalize says so
    if isinstance(raw, Mapping):
        message = {**raw, "messageId": f"test-{uuid.uuid4()}"}
        original, context = raw.get("messageId"), raw.get("context", {})
        if original not in (None, "") and isinstance(context, Mapping):
            message["context"] = {**context, "eventTester": {"originalMessageId": original}}
    message = normalize(message, received_at=timezone.now())
    event = event_from_message(message, workspace_id=integration.workspace_id)
    event.is_test = True
    return event


def preview(integration: Integration, raw: Any) -> Preview:
    event = _event(integration, raw)
    result = Preview(message=event.payload, routed=bool(Router([integration]).destinations(event)))
    if not result.routed:
        result.reason = (
            f"{integration.name} would not receive this event: its type is not taken by "
            f"{integration.destination.label}, the integrations object excludes it, or an "
            "event rule switches it off."
        )
        return result
    users, groups = profiles.lookup(integration.workspace_id, [event])
    context = PlanContext(rules=Rules.for_integration(integration), profiles=users, groups=groups)
    plan = integration.destination.plan(
        integration, [Delivery(event=event, integration=integration)], context
    )
    redactor = Redactor.for_settings(integration.settings, integration.secret_settings)
    result.requests = [
        {
            "method": request.method,
            "url": redactor.url(request.url),
            "headers": redactor.headers(request.headers),
            "body": redactor.body(request.body),
        }
        for request in plan.requests
    ]
    result.failures = {index: redactor.text(reason) for index, reason in plan.failures.items()}
    return result


def send(integration: Integration, raw: Any) -> Delivery:
    """Store the event as a test and make one attempt now; returns the delivery."""
    event = _event(integration, raw)
    with transaction.atomic():
        event.save()
        delivery = Delivery.objects.create(
            event=event, integration=integration, origin=Delivery.Origin.TEST, next_attempt_at=None
        )
    engine.deliver(integration.pk, [delivery.pk], DeliveryAttempt.Trigger.TEST)
    delivery.refresh_from_db()
    return delivery

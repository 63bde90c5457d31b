"""The event tester: what an integration would send for an event, and a real test send.

A preview plans the requests exactly as the worker would (same rules, same profile store)
and sends nothing; secrets in it are redacted. A test send stores the event as a test
(``Event.is_test``, dispatched with origin ``test``), makes one attempt at once, and is
never retried.
"""

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from integrations.delivery import engine, planning
from integrations.delivery.redact import Redactor
from integrations.delivery.routing import Routable, Router
from integrations.delivery.tasks import QUEUE
from integrations.destinations.scope import mapped_values
from integrations.ingest import event_from_message
from integrations.models import Delivery, Dispatch, Event, Integration, Origin, Trigger
from integrations.sources.body import check_content, check_nesting
from integrations.sources.segment_spec import normalize


@dataclass
class Preview:
    message: dict[str, Any]
    routed: bool
    reason: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    failures: dict[int, str] = field(default_factory=dict)
    # The mapped fields that apply to this event: the mapping in force and its value.
    fields: list[dict[str, Any]] = field(default_factory=list)


def _event(integration: Integration, raw: Any) -> Event:
    """Validate and normalise a message (raises MessageError).

    A test always gets a fresh ``test-<uuid>`` messageId, so that a sample or an event
    copied from the log can be sent again and again without colliding with the event it
    came from; the messageId it carried is kept in ``context.eventTester.originalMessageId``.
    """
    check_nesting(raw)
    check_content(raw)
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
    routed = bool(Router([integration]).destinations(Routable.of(event)))
    result = Preview(message=event.payload, routed=routed)
    if not result.routed:
        result.reason = (
            f"{integration.name} would not receive this event: its type is not taken by "
            f"{integration.destination.label}, the integrations object excludes it, or an "
            "event rule switches it off."
        )
        return result
    events = [planning.event_data(event)]
    config, context = (
        planning.integration_config(integration),
        planning.plan_context(integration, events),
    )
    plan = integration.destination.plan(config, events, context)
    result.fields = mapped_values(
        integration.destination.mapped_fields, config.mappings, events[0], context
    )
    redactor = Redactor.for_integration(integration)
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
        dispatch = Dispatch.objects.create(
            integration=integration, origin=Origin.TEST, event_ids=[str(event.pk)], size=1
        )
    engine.deliver_dispatches(integration.pk, [dispatch.pk], Trigger.TEST, QUEUE)
    return Delivery.objects.get(event=event, integration=integration)

"""What an alert notification says: an email's subject and body, a Slack message, and a
webhook's JSON body.

The webhook body (``Notice.payload``)::

    {
      "type": "alert.opened" | "alert.cleared" | "alert.test",
      "rule": {"id": 1, "name": "...", "condition": "auth_error", "threshold": null},
      "workspace": {"slug": "acme", "name": "Acme"},
      "integration": {"id": 3, "name": "...", "kind": "customerio"} | null,
      "incident": {"id": 9, "opened_at": "...", "cleared_at": null | "...",
                   "detail": "...", "clear_detail": "..."} | null,
      "delivery_log_url": "https://.../admin/integrations/delivery/?...",
      "text": "the same message as plain text"
    }
"""

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.urls import reverse
from django.utils.http import urlencode

from integrations.links import absolute_url
from integrations.models import AlertIncident, AlertRule, Delivery, Integration

Condition = AlertRule.Condition

#: The delivery log's status filter that shows each condition's deliveries.
LOG_STATUS = {
    Condition.FAILURE_RATE: Delivery.Status.FAILED,
    Condition.AUTH_ERROR: Delivery.Status.FAILED,
    Condition.BACKLOG_AGE: Delivery.Status.RETRYING,
    Condition.STALLED_WORKER: Delivery.Status.RETRYING,
}


@dataclass(frozen=True)
class Notice:
    kind: str  # opened, cleared, test
    subject: str
    text: str
    slack_text: str
    payload: dict[str, Any]


def delivery_log_link(integration: Integration | None, status: str) -> str:
    """The admin's delivery log filtered by integration (when given) and status, as an
    absolute URL when ``PUBLIC_BASE_URL`` is set."""
    query = {"status__exact": status}
    if integration is not None:
        query = {"integration__id__exact": str(integration.pk), **query}
    path = f"{reverse('admin:integrations_delivery_changelist')}?{urlencode(query)}"
    return absolute_url(path)


def _time(value: dt.datetime | None) -> str | None:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else None


def _duration(start: dt.datetime, end: dt.datetime) -> str:
    minutes = round((end - start).total_seconds() / 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def slack_escape(text: str) -> str:
    """Text Slack shows as it is (its markup uses &, < and >)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _rule_json(rule: AlertRule) -> dict[str, Any]:
    return {
        "id": rule.pk,
        "name": rule.name,
        "condition": rule.condition,
        "threshold": rule.threshold,
    }


def _integration_json(integration: Integration | None) -> dict[str, Any] | None:
    if integration is None:
        return None
    return {"id": integration.pk, "name": integration.name, "kind": integration.kind}


def for_incident(incident: AlertIncident) -> Notice:
    """The notice of an incident's latest news: it opened, or it cleared."""
    rule, integration = incident.rule, incident.integration
    workspace = rule.workspace
    cleared_at = incident.cleared_at
    cleared = cleared_at is not None
    kind = "cleared" if cleared else "opened"
    subject_of = integration.name if integration else "deliveries"
    subject = (
        f"[{workspace.name}] {'Cleared' if cleared else 'Alert'}: {rule.name} "
        f"({subject_of}: {rule.get_condition_display()})"
    )
    link = delivery_log_link(integration, LOG_STATUS[Condition(rule.condition)])
    lines = [
        ("Workspace", workspace.name),
        ("Integration", f"{integration.name} ({integration.kind})" if integration else "all"),
        ("Condition", rule.get_condition_display()),
        ("Opened", _time(incident.opened_at)),
        ("What was seen", incident.detail),
    ]
    if cleared_at is not None:
        lines += [
            (
                "Cleared",
                f"{_time(cleared_at)}, after {_duration(incident.opened_at, cleared_at)}",
            ),
            ("Now", incident.clear_detail),
        ]
    headline = f"Alert “{rule.name}” {'cleared' if cleared else 'opened'} in {workspace.name}."
    text = "\n".join(
        [
            headline,
            "",
            *(f"{label}: {value}" for label, value in lines),
            "",
            f"Delivery log: {link}",
            "",
            "One message is sent when an alert opens and one when it clears.",
        ]
    )
    icon = ":white_check_mark:" if cleared else ":rotating_light:"
    slack_text = "\n".join(
        [
            f"{icon} *{slack_escape(headline)}*",
            *(f"*{label}:* {slack_escape(str(value))}" for label, value in lines),
            f"<{link}|Open the delivery log>",
        ]
    )
    payload = {
        "type": f"alert.{kind}",
        "rule": _rule_json(rule),
        "workspace": {"slug": workspace.slug, "name": workspace.name},
        "integration": _integration_json(integration),
        "incident": {
            "id": incident.pk,
            "opened_at": incident.opened_at.isoformat(),
            "cleared_at": cleared_at.isoformat() if cleared_at is not None else None,
            "detail": incident.detail,
            "clear_detail": incident.clear_detail,
        },
        "delivery_log_url": link,
        "text": text,
    }
    return Notice(kind, subject, text, slack_text, payload)


def sample_notice(rule: AlertRule) -> Notice:
    """A notice that says it is a test, for checking that a rule's target works."""
    workspace = rule.workspace
    text = (
        f"This is a test of the alert “{rule.name}” in {workspace.name} "
        f"({rule.get_condition_display()}). Alerts of this rule will arrive here."
    )
    return Notice(
        "test",
        f"[{workspace.name}] Test: {rule.name}",
        text,
        f":bell: {slack_escape(text)}",
        {
            "type": "alert.test",
            "rule": _rule_json(rule),
            "workspace": {"slug": workspace.slug, "name": workspace.name},
            "integration": None,
            "incident": None,
            "delivery_log_url": delivery_log_link(None, Delivery.Status.FAILED),
            "text": text,
        },
    )

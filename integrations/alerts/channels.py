"""Sending a notice through a rule's channel: email (Django's email backend), a Slack
incoming webhook (``{"text": ...}``) or a webhook (the notice's JSON payload).

HTTP goes through the delivery worker's SSRF-guarded session, with short timeouts and
no redirects. A failure raises ``NoticeFailed`` whose message never holds the target
URL's path (a Slack webhook URL is a credential).
"""

import json
from typing import Any
from urllib.parse import urlsplit

import requests
from django.core.mail import send_mail

from integrations.alerts.notices import Notice
from integrations.delivery.http import BlockedAddressError, session
from integrations.models import AlertRule

#: Connect and read timeouts of a notification request, in seconds.
TIMEOUTS = (5.0, 10.0)


class NoticeFailed(Exception):
    """The channel did not take the notice; the message says why, without secrets."""


def send(rule: AlertRule, notice: Notice) -> None:
    """Hand ``notice`` to the rule's channel; raises ``NoticeFailed``."""
    if rule.channel == AlertRule.Channel.EMAIL:
        try:
            send_mail(notice.subject, notice.text, None, [rule.target], fail_silently=False)
        except Exception as exc:  # SMTP errors, refused recipients, DNS...
            raise NoticeFailed(f"email not sent: {type(exc).__name__}: {exc}") from exc
    elif rule.channel == AlertRule.Channel.SLACK:
        post(rule.target, {"text": notice.slack_text})
    else:
        post(rule.target, notice.payload)


def post(url: str, body: dict[str, Any]) -> None:
    host = urlsplit(url).hostname or "?"
    try:
        with session().post(
            url,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            timeout=TIMEOUTS,
            allow_redirects=False,
            stream=True,
        ) as response:
            status = response.status_code
    except requests.Timeout as exc:
        raise NoticeFailed(f"{host} did not answer within {TIMEOUTS[1]:g} s") from exc
    except requests.ConnectionError as exc:
        blocked = _blocked_reason(exc)
        raise NoticeFailed(blocked or f"could not connect to {host}") from exc
    except requests.RequestException as exc:
        raise NoticeFailed(f"request to {host} failed: {type(exc).__name__}") from exc
    if not 200 <= status < 300:
        raise NoticeFailed(f"{host} answered HTTP {status}")


def _blocked_reason(exc: requests.ConnectionError) -> str | None:
    """The SSRF guard's reason (it names the host and address, never the path)."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return reason.reason if isinstance(reason, BlockedAddressError) else None

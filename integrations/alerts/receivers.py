"""``auth_error`` alerts, judged as soon as the worker records a vendor's answers.

Any 401, 403 or 410 opens an incident of each of the workspace's ``auth_error`` rules for
that integration at once (a refused answer to an open incident only marks it as seen);
a later set of answers with a 2xx and no refusal clears it. The periodic check clears
those that saw no refusal in the alert window (the integration got no traffic, say).
"""

import logging
from collections.abc import Sequence
from typing import Any

from django.utils import timezone

from integrations.alerts import incidents, notify
from integrations.models import AlertIncident, AlertRule, Integration

log = logging.getLogger(__name__)

AUTH_STATUSES = frozenset({401, 403, 410})
REASON_LIMIT = 300


def on_exchanges_recorded(
    sender: Any, integration: Integration, answers: Sequence[tuple[int | None, str]], **kwargs: Any
) -> None:
    """The ``exchanges_recorded`` receiver: quick when nothing changes, never raises."""
    try:
        judge_answers(integration, answers)
    except Exception:
        log.exception("auth_error alerts for integration %s failed", integration.pk)


def judge_answers(integration: Integration, answers: Sequence[tuple[int | None, str]]) -> None:
    refused = [(status, reason) for status, reason in answers if status in AUTH_STATUSES]
    accepted = next(
        (status for status, _ in answers if status is not None and 200 <= status < 300), None
    )
    now = timezone.now()
    if refused:
        status, reason = refused[-1]
        if len(reason) > REASON_LIMIT:
            reason = reason[: REASON_LIMIT - 1] + "…"
        detail = (
            f"{integration.name} refused {len(refused)} of {len(answers)} requests; the "
            f"latest answered HTTP {status}: {reason or 'no reason given'}. "
            "Check the integration's credentials (and, for a 410, its endpoint)."
        )
        rules = AlertRule.objects.filter(
            workspace_id=integration.workspace_id, condition=AlertRule.Condition.AUTH_ERROR
        )
        for rule in rules:
            if (incident := incidents.fire(rule, integration, detail, now)) is not None:
                notify.deliver(incident)
    elif accepted is not None:
        still_open = AlertIncident.objects.open().filter(
            integration=integration, rule__condition=AlertRule.Condition.AUTH_ERROR
        )
        for incident in still_open:
            detail = f"{integration.name} accepted a request again (HTTP {accepted})."
            if incidents.clear(incident, detail, now):
                notify.deliver(incident)

"""Opening and clearing incidents, once each, whichever process sees the change first.

At most one incident of a rule and integration is open (a partial unique constraint):
the process whose insert succeeds opened it, and the one whose update sets ``cleared_at``
cleared it; each then sends the notice. The others see nothing new to say.
"""

import datetime as dt

from django.db import IntegrityError, transaction

from integrations.models import AlertIncident, AlertRule, Integration


def fire(
    rule: AlertRule, integration: Integration | None, detail: str, now: dt.datetime
) -> AlertIncident | None:
    """The condition holds: the new incident if this call opened one, else None (one was
    open already, and is marked as seen now)."""
    if (
        AlertIncident.objects.open()
        .filter(rule=rule, integration=integration)
        .update(last_seen_at=now)
    ):
        return None
    try:
        with transaction.atomic():
            return AlertIncident.objects.create(
                rule=rule, integration=integration, opened_at=now, last_seen_at=now, detail=detail
            )
    except IntegrityError:  # another process opened it at the same moment
        return None


def clear(incident: AlertIncident, detail: str, now: dt.datetime) -> bool:
    """The condition no longer holds: whether this call cleared the open ``incident``."""
    cleared = (
        AlertIncident.objects.open()
        .filter(pk=incident.pk)
        .update(cleared_at=now, clear_detail=detail)
    )
    if cleared:
        incident.cleared_at, incident.clear_detail = now, detail
    return bool(cleared)

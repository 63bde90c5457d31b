"""Sending an incident's pending notice once, and again later when it failed.

A process claims the notice (``notifying_since``) before sending it, so two processes
never send the same one; the claim records the state it tells (opened, or cleared) and
``last_notified_at`` gets the claim's time, so news that comes during the send (the
incident clears) is still pending afterwards. A failure is logged and kept on the
incident (``notify_error``); the periodic check tries again, for up to a day.
"""

import datetime as dt
import logging

from django.db.models import Q
from django.utils import timezone

from integrations.alerts import channels, notices
from integrations.models import AlertIncident

log = logging.getLogger(__name__)

#: A claim older than this belongs to a process that died while sending.
NOTICE_LEASE = dt.timedelta(minutes=2)
#: News older than this is not retried any more.
GIVE_UP_AFTER = dt.timedelta(days=1)
ERROR_LIMIT = 500


def pending(now: dt.datetime) -> list[AlertIncident]:
    """Incidents with a notice to (re)send: unsent news of the last day, unclaimed."""
    recent = Q(cleared_at__isnull=True, opened_at__gte=now - GIVE_UP_AFTER) | Q(
        cleared_at__gte=now - GIVE_UP_AFTER
    )
    unclaimed = Q(notifying_since__isnull=True) | Q(notifying_since__lt=now - NOTICE_LEASE)
    return list(AlertIncident.objects.notice_pending().filter(recent, unclaimed).order_by("pk"))


def deliver(incident: AlertIncident) -> bool:
    """Send the incident's pending notice, if no other process is; whether it went.
    Never raises for a channel's failure."""
    now = timezone.now()
    current = (
        AlertIncident.objects.notice_pending()
        .select_related("rule__workspace", "integration")
        .filter(pk=incident.pk)
        .first()
    )
    if current is None:
        return False
    claimed = (
        AlertIncident.objects.filter(pk=current.pk, cleared_at=current.cleared_at)
        .filter(Q(notifying_since__isnull=True) | Q(notifying_since__lt=now - NOTICE_LEASE))
        .update(notifying_since=now)
    )
    if not claimed:
        return False
    notice = notices.for_incident(current)
    try:
        channels.send(current.rule, notice)
    except Exception as exc:
        if isinstance(exc, channels.NoticeFailed):
            reason = str(exc)
            log.warning(
                "alert %s (rule %s): the %s notice was not sent: %s",
                current.pk,
                current.rule_id,
                notice.kind,
                reason,
            )
        else:
            reason = f"unexpected error: {type(exc).__name__}"
            log.exception(
                "alert %s (rule %s): the notice was not sent", current.pk, current.rule_id
            )
        AlertIncident.objects.filter(pk=current.pk).update(
            notifying_since=None, notify_error=reason[:ERROR_LIMIT]
        )
        return False
    AlertIncident.objects.filter(pk=current.pk).update(
        notifying_since=None, last_notified_at=now, notify_error=""
    )
    log.info("alert %s (rule %s): %s notice sent", current.pk, current.rule_id, notice.kind)
    return True

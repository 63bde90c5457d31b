"""The worker's alert check, every ``ALERTS_INTERVAL_SECONDS``: judge the periodic
conditions, open and clear incidents, clear ``auth_error`` incidents that saw no refusal
in the window, send the notices still pending, and forget old cleared incidents.

On PostgreSQL one worker checks at a time (a session advisory lock, released at the
end of the check or with the worker's connection); with SQLite there is one worker.
"""

import datetime as dt
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.db import connection
from django.utils import timezone

from integrations.alerts import conditions, incidents, notify
from integrations.models import AlertIncident, AlertRule

log = logging.getLogger(__name__)

# Any number; only distinct from the other advisory locks of this database.
ADVISORY_LOCK_ID = 4_201_338
#: Cleared incidents older than this are deleted.
INCIDENT_RETENTION = dt.timedelta(days=90)


@dataclass
class CheckResult:
    opened: int = 0
    cleared: int = 0
    notified: int = 0
    not_notified: int = 0


@contextmanager
def only_one_checker() -> Iterator[bool]:
    """Whether this process may check now (always, except on PostgreSQL while another
    process checks)."""
    if connection.vendor != "postgresql":
        yield True
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [ADVISORY_LOCK_ID])
        mine = cursor.fetchone()[0]
    try:
        yield mine
    finally:
        if mine:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [ADVISORY_LOCK_ID])


def check(now: dt.datetime | None = None) -> CheckResult | None:
    """One check; None when another process is checking."""
    with only_one_checker() as mine:
        if not mine:
            return None
        return _check(now or timezone.now())


def _check(now: dt.datetime) -> CheckResult:
    result = CheckResult()
    rules = list(AlertRule.objects.checked_periodically().order_by("workspace_id", "pk"))
    open_incidents = {
        (incident.rule_id, incident.integration_id): incident
        for incident in AlertIncident.objects.open().filter(rule__in=rules)
    }
    for seen in conditions.observe(rules, now):
        incident = open_incidents.pop(seen.key, None)
        if seen.holds:
            if incidents.fire(seen.rule, seen.integration, seen.detail, now) is not None:
                result.opened += 1
        elif incident is not None and incidents.clear(incident, seen.detail, now):
            result.cleared += 1
    # Open incidents nothing was observed for: their integration is paused or disabled.
    for incident in open_incidents.values():
        if incidents.clear(incident, "The integration is paused or disabled.", now):
            result.cleared += 1
    stale = AlertIncident.objects.open().filter(
        rule__condition=AlertRule.Condition.AUTH_ERROR,
        last_seen_at__lt=now - conditions.window(),
    )
    minutes = f"{conditions.window().total_seconds() / 60:g} minutes"
    for incident in stale:
        if incidents.clear(incident, f"No request was refused in the last {minutes}.", now):
            result.cleared += 1
    for incident in notify.pending(timezone.now()):
        if notify.deliver(incident):
            result.notified += 1
        else:
            result.not_notified += 1
    AlertIncident.objects.filter(cleared_at__lt=now - INCIDENT_RETENTION).delete()
    return result

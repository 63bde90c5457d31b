"""How an integration is doing: outcomes and latency over a recent window, and the backlog.

The backlog (events waiting for a first attempt, deliveries waiting to be retried, the age
of the oldest one waiting, the latest error) is not limited to the window: an outage that
began earlier still shows. Events waiting for a first attempt are not ``Delivery`` rows:
they are counted from the integration's dispatches and from the routing jobs of its
workspace that no router has taken yet. Deliveries of the event tester are left out: they
are an operator's trials, not the integration's traffic.

``health()`` is one integration's, with its p95 latency; ``summaries()`` is the cheaper
variant for lists (the integration list, the dashboard, the API's list): the same numbers
for many integrations in five queries whatever their number, without the latency.
"""

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from django.conf import settings
from django.db import models
from django.db.models import Count, F, Max, Min, OuterRef, Subquery, Sum
from django.utils import timezone

from integrations.models import Delivery, Dispatch, Exchange, Integration, RoutingJob

# Enough recent deliveries for a stable percentile without reading a whole day of traffic.
LATENCY_SAMPLE = 5000
WINDOW = dt.timedelta(hours=24)
Status = Delivery.Status


class State(models.TextChoices):
    """An integration's health in one word, as the lists show it."""

    OK = "ok", "OK"
    BACKLOG = "backlog", "Backlog"  # events wait, for less than HEALTH_OUTAGE_MINUTES
    OUTAGE = "outage", "Outage"  # deliveries retry, or events wait longer than that
    PAUSED = "paused", "Paused"  # events wait because an operator paused it


@dataclass(frozen=True)
class Health:
    delivered: int  # in the window
    failed: int  # in the window
    pending: int  # waiting for a first attempt (or for the router, in its workspace)
    retrying: int  # waiting for another attempt
    oldest_waiting_seconds: float | None  # age of the oldest waiting event, from its receipt
    last_error: str  # the reason of the latest attempt that failed or will be retried
    last_attempt_at: dt.datetime | None  # when the worker last recorded an attempt
    p95_latency: dt.timedelta | None  # None from summaries(), which does not measure it
    paused: bool = False

    @property
    def waiting(self) -> int:
        return self.pending + self.retrying

    @property
    def state(self) -> State:
        """Outage when deliveries are being retried or the oldest waiting event has waited
        longer than ``HEALTH_OUTAGE_MINUTES``; Backlog when younger events wait."""
        if self.paused:
            return State.PAUSED
        too_old = settings.HEALTH_OUTAGE_MINUTES * 60
        if self.retrying or (self.oldest_waiting_seconds or 0) > too_old:
            return State.OUTAGE
        if self.pending:
            return State.BACKLOG
        return State.OK

    def as_dict(self) -> dict[str, int | float | str | None]:
        """The fields the configuration API returns as an integration's ``health``."""
        return {
            "delivered": self.delivered,
            "failed": self.failed,
            "pending": self.pending,
            "retrying": self.retrying,
            "oldest_waiting_seconds": self.oldest_waiting_seconds,
            "last_error": self.last_error,
            "state": self.state.value,
        }

    @property
    def success_rate(self) -> float | None:
        finished = self.delivered + self.failed
        return self.delivered / finished if finished else None


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _latest_delivery(status: str, field: str) -> Subquery:
    """The integration's newest delivery in ``status`` that has an error: one step down
    the (integration, status, created) index per integration."""
    newest = (
        Delivery.objects.filter(integration=OuterRef("pk"), status=status)
        .exclude(origin=Delivery.Origin.TEST)
        .exclude(last_error="")
        .order_by("-created_at")
        .values(field)[:1]
    )
    return Subquery(newest)


def summaries(
    integrations: Sequence[Integration],
    window: dt.timedelta = WINDOW,
    now: dt.datetime | None = None,
) -> dict[int, Health]:
    """Health of each integration by id, in five grouped queries (no p95 latency)."""
    ids = [integration.pk for integration in integrations]
    if not ids:
        return {}
    now = now or timezone.now()
    deliveries = (
        Delivery.objects.filter(integration_id__in=ids)
        .exclude(origin=Delivery.Origin.TEST)
        .order_by()
    )
    finished: dict[tuple[int, str], int] = {
        (row["integration_id"], row["status"]): row["count"]
        for row in deliveries.filter(
            created_at__gte=now - window, status__in=[Status.DELIVERED, Status.FAILED]
        )
        .values("integration_id", "status")
        .annotate(count=Count("pk"))
    }
    retrying = {
        row["integration_id"]: row
        for row in deliveries.filter(status=Status.RETRYING)
        .values("integration_id")
        .annotate(count=Count("pk"), oldest=Min("created_at"))
    }
    dispatched = {
        row["integration_id"]: row
        for row in Dispatch.objects.filter(integration_id__in=ids)
        .order_by()
        .values("integration_id")
        .annotate(
            events=Sum(F("size") - F("done")),
            oldest=Min("created_at"),
            reason=Max("waiting_reason"),
        )
    }
    # Events the workspace accepted that no router has taken yet may be any of its
    # integrations'.
    unrouted = {
        row["workspace_id"]: row
        for row in RoutingJob.objects.filter(
            workspace_id__in={integration.workspace_id for integration in integrations}
        )
        .order_by()
        .values("workspace_id")
        .annotate(events=Sum("size"), oldest=Min("created_at"))
    }
    latest = {
        row["pk"]: row
        for row in Integration.objects.filter(pk__in=ids)
        .order_by()
        .annotate(
            retry_error=_latest_delivery(Status.RETRYING, "last_error"),
            retry_at=_latest_delivery(Status.RETRYING, "created_at"),
            failed_error=_latest_delivery(Status.FAILED, "last_error"),
            failed_at=_latest_delivery(Status.FAILED, "created_at"),
            last_attempt_at=Subquery(
                Exchange.objects.filter(integration=OuterRef("pk"))
                .order_by("-started_at")
                .values("started_at")[:1]
            ),
        )
        .values("pk", "retry_error", "retry_at", "failed_error", "failed_at", "last_attempt_at")
    }
    nothing: dict = {}
    result = {}
    for integration in integrations:
        pk = integration.pk
        retry = retrying.get(pk, nothing)
        dispatch = dispatched.get(pk, nothing)
        jobs = unrouted.get(integration.workspace_id, nothing)
        errors = latest[pk]
        oldest = min(
            (t for t in (retry.get("oldest"), dispatch.get("oldest"), jobs.get("oldest")) if t),
            default=None,
        )
        # The reason of the newest delivery retrying or failed, as created; else why the
        # events of its dispatches wait.
        candidates = [
            (at, error)
            for at, error in (
                (errors["retry_at"], errors["retry_error"]),
                (errors["failed_at"], errors["failed_error"]),
            )
            if at is not None
        ]
        last_error = max(candidates)[1] if candidates else dispatch.get("reason") or ""
        result[pk] = Health(
            delivered=finished.get((pk, Status.DELIVERED), 0),
            failed=finished.get((pk, Status.FAILED), 0),
            pending=(dispatch.get("events") or 0) + (jobs.get("events") or 0),
            retrying=retry.get("count", 0),
            oldest_waiting_seconds=(now - oldest).total_seconds() if oldest else None,
            last_error=last_error,
            last_attempt_at=errors["last_attempt_at"],
            p95_latency=None,
            paused=integration.paused,
        )
    return result


def health(integration: Integration, window: dt.timedelta = WINDOW) -> Health:
    """One integration's health, with the p95 latency of its recent deliveries."""
    now = timezone.now()
    summary = summaries([integration], window, now)[integration.pk]
    latencies = (
        integration.deliveries.filter(created_at__gte=now - window, status=Status.DELIVERED)
        .exclude(origin=Delivery.Origin.TEST)
        .order_by("-created_at")
        .annotate(took=F("delivered_at") - F("event__received_at"))
        .values_list("took", flat=True)[:LATENCY_SAMPLE]
    )
    p95 = percentile([latency.total_seconds() for latency in latencies], 0.95)
    return replace(summary, p95_latency=dt.timedelta(seconds=p95) if p95 is not None else None)

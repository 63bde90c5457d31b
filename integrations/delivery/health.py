"""How an integration is doing: outcomes and latency over a recent window, and the backlog.

The backlog (pending and retrying deliveries, the age of the oldest one waiting, the latest
error) is not limited to the window: an outage that began earlier still shows.
"""

import datetime as dt
import math
from dataclasses import dataclass

from django.db.models import Count, F, Max, Min, Q, Sum
from django.utils import timezone

from integrations.models import Delivery, Exchange, Integration, RoutingJob

# Enough recent deliveries for a stable percentile without reading a whole day of traffic.
LATENCY_SAMPLE = 5000


@dataclass(frozen=True)
class Health:
    delivered: int  # in the window
    failed: int  # in the window
    pending: int  # waiting for a first attempt (or for the router, in its workspace)
    retrying: int  # waiting for another attempt
    oldest_waiting_seconds: float | None  # age of the oldest waiting event, from its receipt
    last_error: str  # the reason of the latest attempt that failed or will be retried
    last_attempt_at: dt.datetime | None  # when the worker last recorded an attempt
    p95_latency: dt.timedelta | None

    @property
    def waiting(self) -> int:
        return self.pending + self.retrying

    def as_dict(self) -> dict[str, int | float | str | None]:
        """The fields the configuration API returns as an integration's ``health``."""
        return {
            "delivered": self.delivered,
            "failed": self.failed,
            "pending": self.pending,
            "retrying": self.retrying,
            "oldest_waiting_seconds": self.oldest_waiting_seconds,
            "last_error": self.last_error,
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


def health(integration: Integration, window: dt.timedelta = dt.timedelta(hours=24)) -> Health:
    now = timezone.now()
    deliveries = integration.deliveries.order_by()
    recent = deliveries.filter(created_at__gte=now - window)
    counts = recent.aggregate(
        delivered=Count("pk", filter=Q(status=Delivery.Status.DELIVERED)),
        failed=Count("pk", filter=Q(status=Delivery.Status.FAILED)),
    )
    retrying = deliveries.filter(status=Delivery.Status.RETRYING).aggregate(
        count=Count("pk"), oldest=Min("created_at")
    )
    dispatched = integration.dispatches.order_by().aggregate(
        events=Sum(F("size") - F("done")), oldest=Min("created_at"), reason=Max("waiting_reason")
    )
    # Events the workspace accepted that no router has taken yet may be this integration's.
    unrouted = RoutingJob.objects.filter(workspace_id=integration.workspace_id).aggregate(
        events=Sum("size"), oldest=Min("created_at")
    )
    oldest = min(
        (t for t in (retrying["oldest"], dispatched["oldest"], unrouted["oldest"]) if t),
        default=None,
    )
    last_error = (
        deliveries.filter(status__in=[Delivery.Status.RETRYING, Delivery.Status.FAILED])
        .exclude(last_error="")
        .order_by("-created_at")
        .values_list("last_error", flat=True)
        .first()
    )
    last_attempt_at = (
        Exchange.objects.filter(integration=integration)
        .order_by("-started_at")
        .values_list("started_at", flat=True)
        .first()
    )
    latencies = (
        recent.filter(status=Delivery.Status.DELIVERED)
        .order_by("-created_at")
        .annotate(latency=F("delivered_at") - F("event__received_at"))
        .values_list("latency", flat=True)[:LATENCY_SAMPLE]
    )
    p95 = percentile([latency.total_seconds() for latency in latencies], 0.95)
    return Health(
        delivered=counts["delivered"],
        failed=counts["failed"],
        pending=(dispatched["events"] or 0) + (unrouted["events"] or 0),
        retrying=retrying["count"],
        oldest_waiting_seconds=(now - oldest).total_seconds() if oldest is not None else None,
        last_error=last_error or dispatched["reason"] or "",
        last_attempt_at=last_attempt_at,
        p95_latency=dt.timedelta(seconds=p95) if p95 is not None else None,
    )

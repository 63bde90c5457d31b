"""How an integration is doing: outcomes and latency over a recent window."""

import datetime as dt
import math
from dataclasses import dataclass

from django.db.models import Count, F, Q
from django.utils import timezone

from integrations.models import Delivery, Integration

# Enough recent deliveries for a stable percentile without reading a whole day of traffic.
LATENCY_SAMPLE = 5000


@dataclass(frozen=True)
class Health:
    delivered: int
    retrying: int
    failed: int
    pending: int
    p95_latency: dt.timedelta | None

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
    recent = integration.deliveries.filter(created_at__gte=timezone.now() - window)
    counts = recent.aggregate(
        delivered=Count("pk", filter=Q(status=Delivery.Status.DELIVERED)),
        retrying=Count("pk", filter=Q(status=Delivery.Status.RETRYING)),
        failed=Count("pk", filter=Q(status=Delivery.Status.FAILED)),
        pending=Count("pk", filter=Q(status=Delivery.Status.PENDING)),
    )
    latencies = (
        recent.filter(status=Delivery.Status.DELIVERED)
        .order_by("-delivered_at")
        .annotate(latency=F("delivered_at") - F("event__received_at"))
        .values_list("latency", flat=True)[:LATENCY_SAMPLE]
    )
    p95 = percentile([latency.total_seconds() for latency in latencies], 0.95)
    return Health(**counts, p95_latency=dt.timedelta(seconds=p95) if p95 is not None else None)

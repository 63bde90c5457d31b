"""An integration's deliveries over time: volume, error rate and p95 latency per hour (the
last 24 hours) or per day (the last 7 days).

Deliveries are counted in the hour or day they were made (when their event was accepted
for the integration), by their status now; test deliveries are left out. The error rate
is the share of a slot's deliveries that failed or are still being retried. The latency
is from the event's receipt to its delivery; on PostgreSQL its 95th percentile is
computed by the database (``percentile_disc``) over every delivery of the slot; elsewhere
from the newest ``SQLITE_LATENCY_SAMPLE`` deliveries of the span, in Python.
"""

import datetime as dt
from dataclasses import dataclass

from django.db import connections, models
from django.db.models import Aggregate, Count, DurationField, F
from django.db.models.functions import TruncDate, TruncHour
from django.utils import timezone

from integrations.delivery.health import percentile
from integrations.models import Delivery, Integration

SQLITE_LATENCY_SAMPLE = 50_000
Status = Delivery.Status


class Span(models.TextChoices):
    DAY = "24h", "Last 24 hours, per hour"
    WEEK = "7d", "Last 7 days, per day"


@dataclass
class Slot:
    start: dt.datetime
    delivered: int = 0
    failed: int = 0
    retrying: int = 0
    p95_latency: dt.timedelta | None = None

    @property
    def volume(self) -> int:
        return self.delivered + self.failed + self.retrying

    @property
    def error_rate(self) -> float | None:
        """Percent of the slot's deliveries that failed or are still being retried."""
        return 100 * (self.failed + self.retrying) / self.volume if self.volume else None

    @property
    def p95_ms(self) -> float | None:
        return self.p95_latency.total_seconds() * 1000 if self.p95_latency else None


class Percentile95(Aggregate):
    """PostgreSQL's nearest-rank 95th percentile of an ordered set."""

    function = "percentile_disc"
    template = "%(function)s(0.95) WITHIN GROUP (ORDER BY %(expressions)s)"


def slot_starts(span: Span, now: dt.datetime) -> list[dt.datetime]:
    """The start of each slot, oldest first, in the current time zone."""
    local = timezone.localtime(now)
    if span == Span.DAY:
        hour = local.replace(minute=0, second=0, microsecond=0)
        return [hour - dt.timedelta(hours=n) for n in reversed(range(24))]
    today = timezone.make_aware(dt.datetime.combine(local.date(), dt.time.min))
    return [today - dt.timedelta(days=n) for n in reversed(range(7))]


def timeline(
    integration: Integration, span: Span = Span.DAY, now: dt.datetime | None = None
) -> list[Slot]:
    starts = slot_starts(span, now or timezone.now())
    truncate = TruncHour if span == Span.DAY else TruncDate
    deliveries = (
        Delivery.objects.filter(integration=integration, created_at__gte=starts[0])
        .exclude(origin=Delivery.Origin.TEST)
        .order_by()
    )
    slots = {start: Slot(start) for start in starts}

    def slot_of(value: dt.datetime | dt.date) -> Slot | None:
        if not isinstance(value, dt.datetime):  # a day
            value = timezone.make_aware(dt.datetime.combine(value, dt.time.min))
        return slots.get(value)

    counts = (
        deliveries.annotate(slot=truncate("created_at"))
        .values("slot", "status")
        .annotate(count=Count("pk"))
        .values_list("slot", "status", "count")
    )
    for start, status, count in counts:
        slot = slot_of(start)
        if slot is not None:
            setattr(slot, status, count)
    delivered = deliveries.filter(status=Status.DELIVERED).annotate(
        slot=truncate("created_at"),
        took=F("delivered_at") - F("event__received_at"),
    )
    if connections[deliveries.db].vendor == "postgresql":
        rows = delivered.values("slot").annotate(
            p95=Percentile95("took", output_field=DurationField())
        )
        for row in rows.values_list("slot", "p95"):
            slot = slot_of(row[0])
            if slot is not None:
                slot.p95_latency = row[1]
    else:
        samples: dict[dt.datetime, list[float]] = {}
        newest = delivered.order_by("-created_at").values_list("slot", "took")
        for start, latency in newest[:SQLITE_LATENCY_SAMPLE]:
            slot = slot_of(start)
            if slot is not None:
                samples.setdefault(slot.start, []).append(latency.total_seconds())
        for start, values in samples.items():
            p95 = percentile(values, 0.95)
            slots[start].p95_latency = dt.timedelta(seconds=p95) if p95 is not None else None
    return list(slots.values())

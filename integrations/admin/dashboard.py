"""The admin's dashboard: a workspace's last seven days at a glance.

Events received per day, deliveries delivered and failed per integration and day (counted
on the day the delivery was made, when its event arrived; a chart drawn as inline SVG on
the server, and the same numbers in tables), the latest failures with their reasons, and
links into the filtered delivery log. Test events (from the event tester) are left out.
The numbers come from grouped queries (TruncDate + Count); the workspaces offered are the
user's own.
"""

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.db.models.functions import TruncDate
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from integrations.admin.audit import may_see_audit_trail
from integrations.admin.operations import delivery_log_url
from integrations.admin.scoping import workspace_ids
from integrations.models import Delivery, Event, Integration, Workspace

DAYS = 7
RECENT_FAILURES = 20
Status = Delivery.Status

# The chart's geometry, in SVG user units.
WIDTH, HEIGHT, LEFT, TOP, BOTTOM = 760, 240, 48, 12, 36
SPARK_WIDTH, SPARK_HEIGHT = 168, 36


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    kind: str  # events, delivered, failed
    label: str


@dataclass
class Day:
    date: dt.date
    events: int = 0
    delivered: int = 0
    failed: int = 0


@dataclass
class IntegrationRow:
    integration: Integration
    days: list[Day]
    log_url: str
    delivered_url: str
    failed_url: str
    spark: list[Bar] = field(default_factory=list)

    @property
    def delivered(self) -> int:
        return sum(day.delivered for day in self.days)

    @property
    def failed(self) -> int:
        return sum(day.failed for day in self.days)


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50... at least ``value``."""
    if value <= 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= value)


def chart(days: list[Day]) -> dict[str, Any]:
    """Bars (events, delivered, failed side by side per day), axis ticks and day labels."""
    top = nice_ceiling(max([max(d.events, d.delivered, d.failed) for d in days] + [1]))
    plot_height = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT) / len(days)
    bar_width = slot * 0.24
    bars, labels = [], []
    for index, day in enumerate(days):
        start = LEFT + index * slot + slot * 0.14
        for offset, (kind, value) in enumerate(
            [("events", day.events), ("delivered", day.delivered), ("failed", day.failed)]
        ):
            height = plot_height * value / top
            bars.append(
                Bar(
                    x=round(start + offset * bar_width, 1),
                    y=round(TOP + plot_height - height, 1),
                    width=round(bar_width - 2, 1),
                    height=round(height, 1),
                    kind=kind,
                    label=f"{day.date:%a %d %b}: {value} {kind}",
                )
            )
        labels.append({"x": round(LEFT + (index + 0.5) * slot, 1), "text": f"{day.date:%a %d}"})
    ticks = [
        {"y": round(TOP + plot_height * (1 - fraction), 1), "value": round(top * fraction)}
        for fraction in (0, 0.5, 1)
    ]
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "right": WIDTH,
        "baseline": TOP + plot_height,
        "label_y": HEIGHT - 12,
        "bars": bars,
        "labels": labels,
        "ticks": ticks,
    }


def sparkline(days: list[Day]) -> list[Bar]:
    """Delivered (below) and failed (above) stacked per day, scaled to the busiest day."""
    top = max([d.delivered + d.failed for d in days] + [1])
    slot = SPARK_WIDTH / len(days)
    bars = []
    for index, day in enumerate(days):
        base = SPARK_HEIGHT
        for kind, value in (("delivered", day.delivered), ("failed", day.failed)):
            height = round(SPARK_HEIGHT * value / top, 1)
            base -= height
            label = f"{day.date:%a %d %b}: {value} {kind}"
            bars.append(Bar(round(index * slot + 1, 1), base, slot - 3, height, kind, label))
    return bars


def window(days: int = DAYS) -> list[dt.date]:
    """The last ``days`` days, today included, in the current time zone."""
    today = timezone.localdate()
    return [today - dt.timedelta(days=n) for n in reversed(range(days))]


def start_of(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def daily_events(workspace: Workspace, since: dt.datetime) -> dict[dt.date, int]:
    rows = (
        Event.objects.filter(workspace=workspace, is_test=False, received_at__gte=since)
        .annotate(day=TruncDate("received_at"))
        .order_by()
        .values("day")
        .annotate(count=Count("pk"))
        .values_list("day", "count")
    )
    return dict(rows)


def daily_deliveries(workspace: Workspace, since: dt.datetime) -> dict[tuple, int]:
    """(integration id, day, status) -> deliveries made that day, for delivered and failed."""
    rows = (
        Delivery.objects.filter(
            integration__workspace=workspace,
            created_at__gte=since,
            status__in=[Status.DELIVERED, Status.FAILED],
            event__is_test=False,
        )
        .annotate(day=TruncDate("created_at"))
        .order_by()
        .values("integration_id", "day", "status")
        .annotate(count=Count("pk"))
        .values_list("integration_id", "day", "status", "count")
    )
    return {(integration, day, status): count for integration, day, status, count in rows}


def recent_failures(workspace: Workspace, since: dt.datetime) -> QuerySet[Delivery]:
    return (
        Delivery.objects.filter(
            integration__workspace=workspace,
            status=Status.FAILED,
            created_at__gte=since,
            event__is_test=False,
        )
        .select_related("event", "integration")
        .order_by("-created_at")[:RECENT_FAILURES]
    )


def dashboard(workspace: Workspace, days: int = DAYS) -> dict[str, Any]:
    dates = window(days)
    since = start_of(dates[0])
    events = daily_events(workspace, since)
    deliveries = daily_deliveries(workspace, since)
    totals = {date: Day(date, events=events.get(date, 0)) for date in dates}
    rows = []
    for integration in workspace.integrations.order_by("name"):
        per_day = []
        for date in dates:
            day = Day(
                date,
                delivered=deliveries.get((integration.pk, date, Status.DELIVERED), 0),
                failed=deliveries.get((integration.pk, date, Status.FAILED), 0),
            )
            totals[date].delivered += day.delivered
            totals[date].failed += day.failed
            per_day.append(day)
        rows.append(
            IntegrationRow(
                integration=integration,
                days=per_day,
                log_url=delivery_log_url(integration),
                delivered_url=delivery_log_url(integration, status__exact=Status.DELIVERED),
                failed_url=delivery_log_url(integration, status__exact=Status.FAILED),
                spark=sparkline(per_day),
            )
        )
    day_totals = list(totals.values())
    return {
        "days": day_totals,
        "integrations": rows,
        "chart": chart(day_totals),
        "totals": {
            kind: sum(getattr(day, kind) for day in day_totals)
            for kind in ("events", "delivered", "failed")
        },
        "failures": recent_failures(workspace, since),
        "events_url": reverse("admin:integrations_event_changelist")
        + "?"
        + urlencode({"workspace__id__exact": workspace.pk}),
    }


def dashboard_view(request: HttpRequest) -> HttpResponse:
    if not may_see_audit_trail(request):  # staff with a membership, or superusers
        raise PermissionDenied
    readable = workspace_ids(request)
    workspaces = Workspace.objects.order_by("name")
    if readable is not None:
        workspaces = workspaces.filter(pk__in=readable)
    choices = list(workspaces)
    slug = request.GET.get("workspace") or (choices[0].slug if choices else "")
    # Only one of the user's: another workspace's slug shows nothing of it.
    workspace = next((w for w in choices if w.slug == slug), None)
    context = {
        **admin.site.each_context(request),
        "title": f"Dashboard: {workspace.name}" if workspace else "Dashboard",
        "subtitle": f"The last {DAYS} days (test events left out)",
        "workspaces": choices,
        "workspace": workspace,
        "unknown_workspace": bool(choices) and workspace is None,
        **(dashboard(workspace) if workspace else {}),
    }
    return TemplateResponse(request, "admin/integrations/dashboard.html", context)

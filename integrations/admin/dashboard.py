"""The admin's dashboard: a workspace's last seven days at a glance, and its backlog now.

Each integration's health now (Outage, Backlog or OK; events pending and deliveries
retrying, the oldest waiting event's age, the latest error), events received per day,
deliveries delivered, failed and still retrying per integration and day (counted on the day
the delivery was made, when its event arrived; a chart drawn as inline SVG on the server,
and the same numbers in tables), the latest failures with their reasons, and links into
the filtered delivery log. Test events (from the event tester) are left out. The numbers
come from grouped queries (TruncDate + Count, and ``health.summaries``), a few per page
whatever the number of integrations; the workspaces offered are the user's own.
"""

import datetime as dt
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
from django.utils.safestring import SafeString

from integrations.admin.audit import may_see_audit_trail
from integrations.admin.charts import Bar, Series, bar_chart
from integrations.admin.health_display import format_age, state_badge
from integrations.admin.operations import delivery_log_url
from integrations.admin.scoping import workspace_ids
from integrations.delivery.health import Health, State, summaries
from integrations.models import Delivery, Event, Integration, Workspace

DAYS = 7
RECENT_FAILURES = 20
Status = Delivery.Status
KINDS = [
    ("events", "Events received"),
    ("delivered", "Delivered"),
    ("failed", "Failed"),
    ("retrying", "Retrying"),
]

# The sparkline's geometry, in SVG user units.
SPARK_WIDTH, SPARK_HEIGHT = 168, 36


@dataclass
class Day:
    date: dt.date
    events: int = 0
    delivered: int = 0
    failed: int = 0
    retrying: int = 0  # deliveries made that day still waiting to be retried


@dataclass
class IntegrationRow:
    integration: Integration
    days: list[Day]
    log_url: str
    delivered_url: str
    failed_url: str
    retrying_url: str
    health: Health
    spark: list[Bar] = field(default_factory=list)

    @property
    def delivered(self) -> int:
        return sum(day.delivered for day in self.days)

    @property
    def failed(self) -> int:
        return sum(day.failed for day in self.days)

    @property
    def retrying(self) -> int:
        return sum(day.retrying for day in self.days)

    @property
    def state_badge(self) -> SafeString:
        return state_badge(self.health)

    @property
    def oldest_waiting(self) -> str:
        return format_age(self.health.oldest_waiting_seconds)


def chart(days: list[Day]) -> dict[str, Any]:
    """Events, delivered, failed and retrying side by side per day."""
    return bar_chart(
        "per-day-chart",
        "Events received, deliveries delivered, failed and retrying per day",
        [f"{day.date:%a %d %b}" for day in days],
        [Series(kind, label, [getattr(day, kind) for day in days]) for kind, label in KINDS],
        axis_labels=[f"{day.date:%a %d}" for day in days],
    )


def sparkline(days: list[Day]) -> list[Bar]:
    """Delivered (below), failed and retrying (above) stacked per day, scaled to the
    busiest day."""
    top = max([d.delivered + d.failed + d.retrying for d in days] + [1])
    slot = SPARK_WIDTH / len(days)
    bars = []
    for index, day in enumerate(days):
        base: float = SPARK_HEIGHT
        for kind, value in (
            ("delivered", day.delivered),
            ("failed", day.failed),
            ("retrying", day.retrying),
        ):
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
    """(integration id, day, status) -> deliveries made that day, by their status now."""
    rows = (
        Delivery.objects.filter(
            integration__workspace=workspace,
            created_at__gte=since,
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
    integrations = list(workspace.integrations.order_by("name"))
    now = summaries(integrations)
    rows = []
    for integration in integrations:
        per_day = []
        for date in dates:
            day = Day(
                date,
                delivered=deliveries.get((integration.pk, date, Status.DELIVERED), 0),
                failed=deliveries.get((integration.pk, date, Status.FAILED), 0),
                retrying=deliveries.get((integration.pk, date, Status.RETRYING), 0),
            )
            for kind in ("delivered", "failed", "retrying"):
                setattr(totals[date], kind, getattr(totals[date], kind) + getattr(day, kind))
            per_day.append(day)
        rows.append(
            IntegrationRow(
                integration=integration,
                days=per_day,
                log_url=delivery_log_url(integration),
                delivered_url=delivery_log_url(integration, status__exact=Status.DELIVERED),
                failed_url=delivery_log_url(integration, status__exact=Status.FAILED),
                retrying_url=delivery_log_url(integration, status__exact=Status.RETRYING),
                health=now[integration.pk],
                spark=sparkline(per_day),
            )
        )
    day_totals = list(totals.values())
    waiting = [row.health.oldest_waiting_seconds for row in rows]
    return {
        "days": day_totals,
        "integrations": rows,
        "outages": [row for row in rows if row.health.state == State.OUTAGE],
        "chart": chart(day_totals),
        "totals": {
            **{
                kind: sum(getattr(day, kind) for day in day_totals)
                for kind in ("events", "delivered", "failed")
            },
            "pending": sum(row.health.pending for row in rows),
            "retrying": sum(row.health.retrying for row in rows),
            "oldest_waiting": format_age(max((w for w in waiting if w is not None), default=None)),
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

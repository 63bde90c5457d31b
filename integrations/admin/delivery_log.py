"""The delivery log in the admin, after Segment's Event Delivery view: every event, every
delivery, every attempt and every HTTP exchange, searchable, filterable and retryable.

An exchange is stored once however many deliveries it carried: a delivery's page shows
each of its attempts with all their exchanges (a multi-step attempt has several), and
each exchange links to the deliveries it carried."""

import csv
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.options import BaseModelAdmin
from django.db import connection
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from rangefilter.filters import DateTimeRangeFilterBuilder

from integrations import event_search
from integrations.admin.scoping import (
    ScopedTabularInline,
    WorkspaceScopedAdmin,
    workspace_ids,
)
from integrations.delivery import operations
from integrations.models import (
    AttemptRecord,
    Delivery,
    DeliveryAttempt,
    Event,
    Exchange,
    SeenEvent,
)

STATUS_COLOURS: dict[str, str] = {
    Delivery.Status.DELIVERED: "#2e7d32",
    Delivery.Status.FAILED: "#c62828",
    Delivery.Status.RETRYING: "#ef6c00",
}
# Deliveries named on an exchange's panel before "and N more".
CARRIED_SHOWN = 10
# What a list cell shows of a long text (CSS cuts it to the column) and its hover holds.
CELL_SHOWN, CELL_HOVER = 200, 1000


def clipped(text: str) -> SafeString:
    """Text cut to its column's width (by CSS, with an ellipsis), the whole on hover."""
    shown = text if len(text) <= CELL_SHOWN else text[: CELL_SHOWN - 1] + "…"
    hover = text if len(text) <= CELL_HOVER else text[: CELL_HOVER - 1] + "…"
    return format_html('<span class="clip" title="{}">{}</span>', hover, shown)


def clipped_time(when: dt.datetime) -> SafeString:
    """ "01 Dec 22:27:35", the full date and time zone on hover."""
    local = timezone.localtime(when)
    return format_html(
        '<span class="clip" title="{}">{}</span>', local.isoformat(), f"{local:%d %b %H:%M:%S}"
    )


def time_range(title: str) -> Any:
    """A "from" and "to" date-time filter (django-admin-rangefilter)."""
    return DateTimeRangeFilterBuilder(title=title)


class LogListMixin(admin.ModelAdmin):
    """The event and delivery lists: compact cells that fit a laptop's screen, search of
    the events' ids, names and emails, and no count of the whole table on every page (a
    ``ModelAdmin`` itself, for the admin's methods it calls, listed before the admin)."""

    show_full_result_count = False  # a COUNT(*) of millions of rows per page otherwise
    search_fields = event_search.FIELDS  # shows the search box; get_search_results searches

    # Django reads the attribute per request; this one depends on the database.
    @property
    def search_help_text(self) -> str:  # type: ignore[override]
        return event_search.help_text(
            self.search_subjects, partial_limit=connection.vendor != "postgresql"
        )

    search_subjects: tuple[str, ...] = ("events",)

    def searched_events(self, request: HttpRequest, search_term: str) -> QuerySet[Event]:
        events = Event.objects.all()
        readable = workspace_ids(request)
        if readable is not None:
            events = events.filter(workspace_id__in=readable)
        return event_search.search_events(events, search_term)

    def get_list_display(self, request: HttpRequest) -> list:
        """Without the workspace column for whoever sees one workspace only."""
        columns = list(super().get_list_display(request))
        readable = workspace_ids(request)
        if readable is not None and len(readable) <= 1:
            columns.remove("workspace_name")
        return columns


def pretty(value: Any) -> str:
    """JSON (or JSON text) indented for reading; other text as it is."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def panel(title: str, lines: list[str], body: Any) -> SafeString:
    return format_html(
        '<div class="exchange-panel"><h3>{}</h3><pre>{}</pre><pre>{}</pre></div>',
        title,
        "\n".join(lines),
        pretty(body) if body not in ("", None) else "(empty)",
    )


def format_latency(delivery: Delivery) -> str:
    latency = delivery.latency
    if latency is None:
        return "-"
    seconds = latency.total_seconds()
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


class ReadOnlyAdminMixin(BaseModelAdmin):
    """Traffic records are written by the ingest and the worker, never by hand (deleting
    them follows the workspace role, as deleting their integration does). For admins and
    inlines alike."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class DeliveryInline(ReadOnlyAdminMixin, ScopedTabularInline):
    model = Delivery
    extra = 0
    fields = readonly_fields = (
        "integration",
        "origin",
        "status",
        "attempt_count",
        "last_status_code",
        "last_error",
    )
    show_change_link = True


@admin.register(Event)
class EventAdmin(LogListMixin, ReadOnlyAdminMixin, WorkspaceScopedAdmin):
    change_list_template = "admin/integrations/event/change_list.html"
    list_display = ["when", "workspace_name", "source_name", "type", "name", "user", "message"]
    list_filter = [
        "type",
        ("received_at", time_range("time received (from, to)")),
        "received_at",
        "workspace",
        "source",
    ]
    list_select_related = ["workspace", "source"]
    fields = readonly_fields = (
        "workspace",
        "source",
        "message_id",
        "type",
        "event",
        "user_id",
        "anonymous_id",
        "group_id",
        "original_timestamp",
        "sent_at",
        "received_at",
        "timestamp",
        "payload_json",
    )
    inlines = [DeliveryInline]

    @admin.display(description="Payload")
    def payload_json(self, event: Event) -> SafeString:
        return format_html("<pre>{}</pre>", pretty(event.payload))

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Event], search_term: str
    ) -> tuple[QuerySet[Event], bool]:
        return event_search.search_events(queryset, search_term), False

    @admin.display(description="Workspace", ordering="workspace__name")
    def workspace_name(self, event: Event) -> SafeString:
        return clipped(event.workspace.name)

    @admin.display(description="Received", ordering="received_at")
    def when(self, event: Event) -> SafeString:
        return clipped_time(event.received_at)

    @admin.display(description="Source", ordering="source__name")
    def source_name(self, event: Event) -> SafeString:
        return clipped(event.source.name if event.source else "-")

    @admin.display(description="Event", ordering="event")
    def name(self, event: Event) -> SafeString:
        return clipped(event.event or event.type)

    @admin.display(description="User", ordering="user_id")
    def user(self, event: Event) -> SafeString:
        return clipped(event.user_id or event.anonymous_id)

    @admin.display(description="Message id", ordering="message_id")
    def message(self, event: Event) -> SafeString:
        return clipped(event.message_id)


def exchange_panels(exchange: Exchange, carried: SafeString | str = "") -> SafeString:
    """One HTTP exchange: the request sent and the response, side by side."""
    request_lines = [f"{exchange.method} {exchange.url}"] + [
        f"{name}: {value}" for name, value in exchange.request_headers.items()
    ]
    status = exchange.response_status or exchange.error or "no response"
    response_lines = [f"{status}  ({exchange.duration_ms or 0:.0f} ms)"] + [
        f"{name}: {value}" for name, value in exchange.response_headers.items()
    ]
    return format_html(
        '<div class="exchange">{}{}</div>{}',
        panel("Request sent", request_lines, exchange.request_body),
        panel("Response", response_lines, exchange.response_body),
        carried,
    )


def carried_deliveries(exchange: Exchange) -> QuerySet[Delivery]:
    """The deliveries an exchange carried, in this attempt or an earlier one."""
    return Delivery.objects.filter(Q(exchange=exchange) | Q(attempts__exchange=exchange)).distinct()


def carried_line(exchange: Exchange, current: Delivery) -> SafeString | str:
    """ "Carried N deliveries: #1, #2 …" with links, when it carried more than this one."""
    ids = list(carried_deliveries(exchange).order_by("pk").values_list("pk", flat=True))
    if ids == [current.pk]:
        return ""
    links = format_html_join(
        ", ",
        '<a href="{}">#{}</a>',
        (
            (reverse("admin:integrations_delivery_change", args=[pk]), pk)
            for pk in ids[:CARRIED_SHOWN]
        ),
    )
    more = (
        format_html(
            ' and <a href="{}?exchange={}">{} more</a>',
            reverse("admin:integrations_delivery_changelist"),
            exchange.pk,
            len(ids) - CARRIED_SHOWN,
        )
        if len(ids) > CARRIED_SHOWN
        else ""
    )
    return format_html(
        '<p class="carried">This request carried {} deliveries: {}{}</p>', len(ids), links, more
    )


def attempt_sections(delivery: Delivery) -> SafeString:
    """Every attempt, newest first, each with all of its exchanges."""
    attempts = delivery.attempts_with_exchanges()
    sections = []
    for attempt, chain in reversed(attempts):
        requests = [
            exchange_panels(exchange, carried_line(exchange, delivery)) for exchange in chain
        ]
        if len(chain) > 1:
            requests = [
                format_html("<h4>Request {} of {}</h4>{}", number, len(chain), panels)
                for number, panels in enumerate(requests, start=1)
            ]
        sections.append(
            format_html(
                '<section class="attempt"><h3>{}</h3>{}{}</section>',
                attempt_heading(attempt, len(attempts)),
                format_html("<p>{}</p>", attempt.error) if attempt.error else "",
                format_html_join("", "{}", ((r,) for r in requests)),
            )
        )
    return format_html_join("", "{}", ((section,) for section in sections))


def latest_attempt_panels(delivery: Delivery) -> SafeString | None:
    """The exchanges of a delivery's latest attempt (the event tester's answer)."""
    if delivery.exchange is None:
        return None
    return format_html_join(
        "", "{}", ((exchange_panels(exchange),) for exchange in delivery.exchange.chain())
    )


def attempt_heading(attempt: AttemptRecord, total: int) -> str:
    when = attempt.started_at.strftime("%Y-%m-%d %H:%M:%S UTC") if attempt.started_at else ""
    outcome = DeliveryAttempt.Outcome(attempt.outcome).label if attempt.outcome else ""
    trigger = DeliveryAttempt.Trigger(attempt.trigger).label
    return f"Attempt {attempt.number} of {total} · {trigger} · {outcome} · {when}"


class CarriedByExchangeFilter(admin.SimpleListFilter):
    """The deliveries one exchange carried (linked from a batch request's panel)."""

    title = "exchange"
    parameter_name = "exchange"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        value = self.value()
        return [(value, f"Request #{value}")] if value and value.isdigit() else []

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if not value:
            return queryset
        if not value.isdigit():
            return queryset.none()
        return queryset.filter(Q(exchange_id=value) | Q(attempts__exchange_id=value)).distinct()


class EventNameFilter(admin.SimpleListFilter):
    """The track event names of the user's workspaces, from the catalog of names seen in
    traffic (the 200 most frequent): reading them from the deliveries would scan them
    all."""

    title = "event name"
    parameter_name = "event_name"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        seen = SeenEvent.objects.order_by("-count")
        readable = workspace_ids(request)
        if readable is not None:
            seen = seen.filter(workspace_id__in=readable)
        names = set(seen.values_list("name", flat=True)[:200])
        if chosen := self.value():
            names.add(chosen)
        return [(name, name) for name in sorted(names)]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(event__event=self.value()) if self.value() else queryset


@admin.register(Delivery)
class DeliveryAdmin(LogListMixin, ReadOnlyAdminMixin, WorkspaceScopedAdmin):
    change_form_template = "admin/integrations/delivery/change_form.html"
    change_list_template = "admin/integrations/delivery/change_list.html"
    workspace_path = "integration__workspace"
    search_subjects = ("events", "their deliveries")
    list_display = [
        "when",
        "workspace_name",
        "integration_name",
        "event_name",
        "user",
        "status_badge",
        "attempts",
        "code",
        "latency",
        "error",
    ]
    list_filter = [
        "status",
        "integration",
        EventNameFilter,
        "last_status_code",
        "origin",
        ("created_at", time_range("time made (from, to)")),
        "created_at",
        CarriedByExchangeFilter,
    ]
    list_select_related = ["event", "integration__workspace"]
    actions = ["retry_selected", "export_csv"]
    fields = readonly_fields = (
        "integration",
        "origin",
        "status",
        "attempt_count",
        "manual_attempt_count",
        "next_attempt_at",
        "last_status_code",
        "last_error",
        "created_at",
        "delivered_at",
        "latency",
        "received",
        "attempts_and_exchanges",
    )

    @admin.display(description="Workspace", ordering="integration__workspace__name")
    def workspace_name(self, delivery: Delivery) -> SafeString:
        return clipped(delivery.integration.workspace.name)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Delivery], search_term: str
    ) -> tuple[QuerySet[Delivery], bool]:
        """The deliveries of the events the search finds."""
        if not event_search.terms(search_term):
            return queryset, False
        events = self.searched_events(request, search_term)
        return queryset.filter(event_id__in=events.values("pk")), False

    @admin.display(description="Made", ordering="created_at")
    def when(self, delivery: Delivery) -> SafeString:
        return clipped_time(delivery.created_at)

    @admin.display(description="Integration", ordering="integration__name")
    def integration_name(self, delivery: Delivery) -> SafeString:
        return clipped(delivery.integration.name)

    @admin.display(description="Event", ordering="event__event")
    def event_name(self, delivery: Delivery) -> SafeString:
        return clipped(delivery.event.event or delivery.event.type)

    @admin.display(description="User", ordering="event__user_id")
    def user(self, delivery: Delivery) -> SafeString:
        return clipped(delivery.event.user_id or delivery.event.anonymous_id)

    @admin.display(description="Attempts", ordering="attempt_count")
    def attempts(self, delivery: Delivery) -> int:
        return delivery.attempt_count

    @admin.display(description="Code", ordering="last_status_code")
    def code(self, delivery: Delivery) -> str:
        return str(delivery.last_status_code or "-")

    @admin.display(description="Error")
    def error(self, delivery: Delivery) -> SafeString | str:
        return clipped(delivery.last_error) if delivery.last_error else "-"

    @admin.display(description="Status", ordering="status")
    def status_badge(self, delivery: Delivery) -> SafeString:
        return format_html(
            '<strong style="color:{}">{}</strong>',
            STATUS_COLOURS[delivery.status],
            delivery.get_status_display(),
        )

    @admin.display(description="End-to-end latency")
    def latency(self, delivery: Delivery) -> str:
        return format_latency(delivery)

    @admin.display(description="Event received")
    def received(self, delivery: Delivery) -> SafeString:
        event = delivery.event
        return format_html(
            '<div class="exchange">{}</div>',
            panel(
                "Event received",
                [f"{event.type} {event.event}", str(event.received_at)],
                event.payload,
            ),
        )

    @admin.display(description="Attempts: requests sent and responses")
    def attempts_and_exchanges(self, delivery: Delivery) -> SafeString:
        return attempt_sections(delivery)

    def get_urls(self) -> list:
        urls = super().get_urls()
        retry = path(
            "<path:object_id>/retry/",
            self.admin_site.admin_view(self.retry_view),
            name="integrations_delivery_retry",
        )
        return [retry, *urls]

    def has_retry_permission(self, request: HttpRequest, obj: Delivery | None = None) -> bool:
        """An admin or CSM of the delivery's workspace (of any workspace, without one)."""
        return self.may(request, obj)

    def render_change_form(
        self, request: HttpRequest, context: dict[str, Any], *args: Any, **kwargs: Any
    ) -> HttpResponse:
        context["can_retry"] = self.has_retry_permission(request, kwargs.get("obj"))
        return super().render_change_form(request, context, *args, **kwargs)

    def retry_view(self, request: HttpRequest, object_id: str) -> HttpResponseRedirect:
        delivery = get_object_or_404(self.get_queryset(request), pk=object_id)
        target = reverse("admin:integrations_delivery_change", args=[delivery.pk])
        if request.method != "POST" or not self.has_retry_permission(request, delivery):
            self.message_user(request, "Retrying needs a POST by a CSM.", messages.ERROR)
            return HttpResponseRedirect(target)
        self._retry(request, [delivery])
        return HttpResponseRedirect(target)

    @admin.action(description="Export selected deliveries as CSV", permissions=["view"])
    def export_csv(
        self, request: HttpRequest, queryset: QuerySet[Delivery]
    ) -> StreamingHttpResponse:
        """The selected deliveries (all those of the list with "select all"), as CSV."""
        rows = queryset.select_related("event", "integration__workspace").order_by("-created_at")
        filename = f"deliveries-{timezone.now():%Y%m%d-%H%M%S}.csv"
        return StreamingHttpResponse(
            csv_lines(rows),
            content_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    @admin.action(description="Retry selected deliveries", permissions=["retry"])
    def retry_selected(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        self._retry(request, queryset.select_related("integration"))

    def _retry(self, request: HttpRequest, deliveries: Any) -> None:
        queued, refused = 0, []
        for delivery in deliveries:
            try:
                operations.retry_delivery(delivery)
                queued += 1
            except operations.OperationRefused as exc:
                refused.append(f"#{delivery.pk}: {exc}")
        if queued:
            self.message_user(
                request,
                f"{queued} delivery attempt(s) queued; refresh in a moment to see the result.",
                messages.SUCCESS,
            )
        if refused:
            self.message_user(
                request,
                format_html_join(" ", "{}", ((r,) for r in refused)),
                messages.WARNING,
            )


@admin.register(Exchange)
class ExchangeAdmin(ReadOnlyAdminMixin, WorkspaceScopedAdmin):
    """Every HTTP request sent to a vendor, once, with the deliveries it carried."""

    workspace_path = "integration__workspace"
    list_display = [
        "started_at",
        "integration",
        "method",
        "short_url",
        "response_status",
        "duration_ms",
    ]
    list_filter = ["integration", "response_status", "started_at"]
    list_select_related = ["integration__workspace"]
    date_hierarchy = "started_at"
    fields = readonly_fields = (
        "integration",
        "started_at",
        "step",
        "head",
        "exchange",
        "deliveries_carried",
    )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """The log of what was sent: it goes with its deliveries (prune_events), not alone."""
        return False

    @admin.display(description="URL")
    def short_url(self, exchange: Exchange) -> str:
        return exchange.url if len(exchange.url) <= 80 else exchange.url[:79] + "…"

    @admin.display(description="Request sent and response")
    def exchange(self, exchange: Exchange) -> SafeString:
        return exchange_panels(exchange)

    @admin.display(description="Deliveries it carried")
    def deliveries_carried(self, exchange: Exchange) -> SafeString:
        ids = exchange.carried_delivery_ids()
        rows = Delivery.objects.filter(pk__in=ids[:500]).select_related("event").order_by("pk")
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                '<li><a href="{}">#{}</a> {} {} — {}</li>',
                (
                    (
                        reverse("admin:integrations_delivery_change", args=[d.pk]),
                        d.pk,
                        d.event.event or d.event.type,
                        d.event.user_id or d.event.anonymous_id,
                        d.get_status_display(),
                    )
                    for d in rows
                ),
            ),
        )


CSV_COLUMNS = [
    "time",
    "workspace",
    "integration",
    "event",
    "user",
    "status",
    "attempts",
    "last_http_status",
    "last_error",
    "latency_ms",
]


class _Echo:
    """A file-like object whose write() returns what it was given: csv.writer to lines."""

    def write(self, value: str) -> str:
        return value


def spreadsheet_safe(value: str) -> str:
    """Text a spreadsheet will not run as a formula (event names and user ids come from
    outside: a cell starting with = + - @ is prefixed with a quote)."""
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def csv_lines(deliveries: QuerySet[Delivery]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    for delivery in deliveries.iterator(chunk_size=1000):
        latency = delivery.latency
        texts = [
            delivery.integration.workspace.name,
            delivery.integration.name,
            delivery.event.event or delivery.event.type,
            delivery.event.user_id or delivery.event.anonymous_id,
            delivery.status,
        ]
        yield writer.writerow(
            [
                delivery.created_at.isoformat(),
                *map(spreadsheet_safe, texts),
                delivery.attempt_count,
                delivery.last_status_code or "",
                spreadsheet_safe(delivery.last_error),
                round(latency.total_seconds() * 1000) if latency is not None else "",
            ]
        )

"""The delivery log in the admin, after Segment's Event Delivery view: every event, every
delivery and every attempt, searchable, filterable and retryable."""

import csv
import json
from collections.abc import Iterator
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from integrations.admin.scoping import (
    ScopedStackedInline,
    ScopedTabularInline,
    WorkspaceScopedAdmin,
)
from integrations.delivery import operations
from integrations.models import Delivery, DeliveryAttempt, Event

STATUS_COLOURS = {
    Delivery.Status.DELIVERED: "#2e7d32",
    Delivery.Status.FAILED: "#c62828",
    Delivery.Status.RETRYING: "#ef6c00",
    Delivery.Status.PENDING: "#616161",
}


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


class ReadOnlyAdminMixin:
    """Traffic records are written by the ingest and the worker, never by hand (deleting
    them follows the workspace role, as deleting their integration does)."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class DeliveryInline(ReadOnlyAdminMixin, ScopedTabularInline):
    model = Delivery
    extra = 0
    fields = ["integration", "origin", "status", "attempt_count", "last_status_code", "last_error"]
    readonly_fields = fields
    show_change_link = True


@admin.register(Event)
class EventAdmin(ReadOnlyAdminMixin, WorkspaceScopedAdmin):
    list_display = ["received_at", "workspace", "source", "type", "event", "user_id", "message_id"]
    list_filter = ["type", "received_at", "workspace", "source"]
    # Exact, case-sensitive matches, which the (workspace, message_id / user_id) indexes
    # answer; a case-insensitive or partial match would scan the whole events table.
    search_fields = ["message_id__exact", "user_id__exact"]
    search_help_text = "Exact message id or user id."
    list_select_related = ["workspace", "source"]
    date_hierarchy = "received_at"
    fields = [
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
    ]
    readonly_fields = fields
    inlines = [DeliveryInline]

    @admin.display(description="Payload")
    def payload_json(self, event: Event) -> SafeString:
        return format_html("<pre>{}</pre>", pretty(event.payload))


class AttemptInline(ReadOnlyAdminMixin, ScopedStackedInline):
    model = DeliveryAttempt
    extra = 0
    fields = ["number", "trigger", "started_at", "duration_ms", "error", "exchange"]
    readonly_fields = fields
    ordering = ["-number"]

    @admin.display(description="Request and response")
    def exchange(self, attempt: DeliveryAttempt) -> SafeString:
        return exchange_panels(attempt)


def exchange_panels(attempt: DeliveryAttempt) -> SafeString:
    request_lines = [f"{attempt.request_method} {attempt.request_url}"] + [
        f"{name}: {value}" for name, value in attempt.request_headers.items()
    ]
    status = attempt.response_status or attempt.error or "no response"
    response_lines = [f"{status}"] + [
        f"{name}: {value}" for name, value in attempt.response_headers.items()
    ]
    return format_html(
        '<div class="exchange">{}{}</div>',
        panel("Request sent", request_lines, attempt.request_body),
        panel("Response", response_lines, attempt.response_body),
    )


class EventNameFilter(admin.SimpleListFilter):
    """The event names this list holds (track names, or the call type)."""

    title = "event name"
    parameter_name = "event_name"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        names = (
            model_admin.get_queryset(request)
            .order_by()
            .values_list("event__event", flat=True)
            .distinct()[:200]
        )
        return [(name, name) for name in sorted(n for n in names if n)]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(event__event=self.value()) if self.value() else queryset


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdminMixin, WorkspaceScopedAdmin):
    change_form_template = "admin/integrations/delivery/change_form.html"
    workspace_path = "integration__workspace"
    list_display = [
        "created_at",
        "workspace",
        "integration",
        "event_name",
        "user",
        "status_badge",
        "attempt_count",
        "last_status_code",
        "latency",
    ]
    list_filter = [
        "status",
        "integration",
        EventNameFilter,
        "last_status_code",
        "origin",
        "created_at",
    ]
    search_fields = ["event__message_id__exact", "event__user_id__exact"]
    search_help_text = "Exact message id or user id of the event."
    list_select_related = ["event", "integration__workspace"]
    date_hierarchy = "created_at"
    actions = ["retry_selected", "export_csv"]
    fields = [
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
        "side_by_side",
    ]
    readonly_fields = fields
    inlines = [AttemptInline]

    @admin.display(description="Workspace", ordering="integration__workspace__name")
    def workspace(self, delivery: Delivery) -> str:
        return delivery.integration.workspace.name

    @admin.display(description="Event", ordering="event__event")
    def event_name(self, delivery: Delivery) -> str:
        return delivery.event.event or delivery.event.type

    @admin.display(description="User", ordering="event__user_id")
    def user(self, delivery: Delivery) -> str:
        return delivery.event.user_id or delivery.event.anonymous_id

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

    @admin.display(description="Event received, request sent, response")
    def side_by_side(self, delivery: Delivery) -> SafeString:
        attempt = delivery.attempts.order_by("-number").first()
        received = panel(
            "Event received",
            [f"{delivery.event.type} {delivery.event.event}", str(delivery.event.received_at)],
            delivery.event.payload,
        )
        if attempt is None:
            return format_html('<div class="exchange">{}</div>', received)
        return format_html('<div class="exchange">{}{}</div>', received, exchange_panels(attempt))

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
    def export_csv(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> HttpResponse:
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

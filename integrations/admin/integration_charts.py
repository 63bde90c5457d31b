"""An integration's charts page: volume, error rate and p95 latency over the last 24 hours
(per hour) or 7 days (per day), drawn as the dashboard draws, with a table of the same
numbers."""

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path

from integrations.admin.charts import Series, bar_chart
from integrations.delivery.timeline import Slot, Span, timeline
from integrations.models import Integration


def slot_names(span: Span, slots: list[Slot]) -> tuple[list[str], list[str]]:
    """Each slot's long name (for titles and the table) and its axis label."""
    if span == Span.DAY:
        names = [f"{slot.start:%a %d %b %H:00}" for slot in slots]
        # Every third hour labelled, so that the labels do not overlap.
        labels = [f"{slot.start:%H:00}" if i % 3 == 0 else "" for i, slot in enumerate(slots)]
        return names, labels
    return [f"{slot.start:%a %d %b}" for slot in slots], [f"{s.start:%a %d}" for s in slots]


def charts(span: Span, slots: list[Slot]) -> list[dict[str, Any]]:
    names, labels = slot_names(span, slots)
    volume = [
        Series("delivered", "Delivered", [s.delivered for s in slots]),
        Series("failed", "Failed", [s.failed for s in slots]),
        Series("retrying", "Retrying", [s.retrying for s in slots]),
    ]
    rate = [Series("rate", "Error rate", [s.error_rate for s in slots], unit="%")]
    latency = [Series("latency", "p95 latency", [s.p95_ms for s in slots], unit=" ms")]
    return [
        bar_chart("volume", "Deliveries made", names, volume, labels),
        bar_chart("error-rate", "Error rate (failed or retrying)", names, rate, labels, top=100),
        bar_chart("latency", "p95 latency, from receipt to delivery", names, latency, labels),
    ]


class IntegrationChartsMixin(admin.ModelAdmin):
    """Adds ``<id>/charts/`` to the integration admin (for whoever may view it; a
    ``ModelAdmin`` itself, for the admin's methods it calls, listed before the admin)."""

    def get_urls(self) -> list:
        charts_url = path(
            "<path:object_id>/charts/",
            self.admin_site.admin_view(self.charts_view),
            name="integrations_integration_charts",
        )
        return [charts_url, *super().get_urls()]

    def charts_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        integration = get_object_or_404(self.get_queryset(request), pk=object_id)
        if not self.has_view_permission(request, integration):
            raise PermissionDenied
        requested = request.GET.get("span")
        span = Span(requested) if requested is not None and requested in Span else Span.DAY
        slots = timeline(integration, span)
        names, _ = slot_names(span, slots)
        context = {
            **self.admin_site.each_context(request),
            "opts": Integration._meta,
            "original": integration,
            "title": f"Charts: {integration.name}",
            "subtitle": span.label,
            "span": span,
            "spans": Span.choices,
            "charts": charts(span, slots),
            "rows": list(zip(names, slots, strict=True)),
        }
        return TemplateResponse(request, "admin/integrations/integration/charts.html", context)

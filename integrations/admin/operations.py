"""Operator actions and health on the integration's admin page: pause, resume, recover
failed deliveries, replay a time range."""

import datetime as dt
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString

from integrations.delivery import operations
from integrations.delivery.health import health
from integrations.models import Delivery, Integration


class TimeRangeForm(forms.Form):
    since = forms.DateTimeField(help_text="UTC, e.g. 2026-01-31 08:00")
    until = forms.DateTimeField(help_text="UTC; excluded from the range")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("since") and cleaned.get("until") and cleaned["since"] >= cleaned["until"]:
            raise forms.ValidationError("'until' must be later than 'since'.")
        return cleaned


def delivery_log_url(integration: Integration, **filters: str) -> str:
    query = urlencode({"integration__id__exact": integration.pk, **filters})
    return f"{reverse('admin:integrations_delivery_changelist')}?{query}"


class IntegrationOperationsMixin:
    """Adds the health panel, the pause/resume actions and the recover/replay pages."""

    admin_site: admin.AdminSite
    change_form_template = "admin/integrations/integration/change_form.html"
    actions = ["pause_selected", "resume_selected"]

    @admin.display(description="Last 24 hours")
    def health_summary(self, integration: Integration) -> SafeString | str:
        if integration.pk is None:
            return "-"
        summary = health(integration)
        rate = f"{summary.success_rate:.1%}" if summary.success_rate is not None else "-"
        p95 = (
            f"{summary.p95_latency.total_seconds() * 1000:.0f} ms"
            if summary.p95_latency is not None
            else "-"
        )
        return format_html(
            '<a href="{}">{} delivered</a> · <a href="{}">{} retrying</a> · '
            '<a href="{}">{} failed</a> · {} pending<br>success rate {} · p95 latency {}',
            delivery_log_url(integration, status__exact=Delivery.Status.DELIVERED),
            summary.delivered,
            delivery_log_url(integration, status__exact=Delivery.Status.RETRYING),
            summary.retrying,
            delivery_log_url(integration, status__exact=Delivery.Status.FAILED),
            summary.failed,
            summary.pending,
            rate,
            p95,
        )

    def get_urls(self) -> list:
        def route(suffix: str, view: Any) -> Any:
            return path(
                f"<path:object_id>/{suffix}/",
                self.admin_site.admin_view(view),
                name=f"integrations_integration_{suffix}",
            )

        return [
            route("pause", self.pause_view),
            route("resume", self.resume_view),
            route("recover", self.recover_view),
            route("replay", self.replay_view),
            *super().get_urls(),
        ]

    def _integration(self, request: HttpRequest, object_id: str) -> Integration:
        integration = get_object_or_404(self.get_queryset(request), pk=object_id)
        if not self.has_change_permission(request, integration):
            raise PermissionDenied
        return integration

    def _back(self, integration: Integration) -> HttpResponseRedirect:
        return HttpResponseRedirect(
            reverse("admin:integrations_integration_change", args=[integration.pk])
        )

    def pause_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        integration = self._integration(request, object_id)
        if request.method == "POST":
            operations.pause(integration)
            self.message_user(request, f"{integration.name} is paused; deliveries wait.")
        return self._back(integration)

    def resume_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        integration = self._integration(request, object_id)
        if request.method == "POST":
            waiting = operations.resume(integration)
            self.message_user(request, f"{integration.name} resumed; {waiting} waiting.")
        return self._back(integration)

    def _time_range_page(
        self, request: HttpRequest, object_id: str, action: str, explanation: str, run: Any
    ) -> HttpResponse:
        integration = self._integration(request, object_id)
        now = timezone.now().replace(microsecond=0)
        form = TimeRangeForm(
            request.POST or None, initial={"since": now - dt.timedelta(days=1), "until": now}
        )
        if request.method == "POST" and form.is_valid():
            try:
                message = run(integration, form.cleaned_data["since"], form.cleaned_data["until"])
            except operations.OperationRefused as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, message, messages.SUCCESS)
                return self._back(integration)
        context = {
            **self.admin_site.each_context(request),
            "opts": Integration._meta,
            "original": integration,
            "title": f"{action}: {integration.name}",
            "explanation": explanation,
            "action": action,
            "form": form,
        }
        return TemplateResponse(request, "admin/integrations/integration/time_range.html", context)

    def recover_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        def run(integration: Integration, since: dt.datetime, until: dt.datetime) -> str:
            count = operations.recover(integration, since, until)
            return f"{count} failed deliveries queued for a manual attempt."

        return self._time_range_page(
            request,
            object_id,
            "Retry failed deliveries",
            "Every failed delivery created in this range gets one manual attempt; "
            "those that fail again stay failed.",
            run,
        )

    def replay_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        def run(integration: Integration, since: dt.datetime, until: dt.datetime) -> str:
            operations.replay_events.enqueue(integration.pk, since.isoformat(), until.isoformat())
            return "Replay started: deliveries appear in the log (origin: replay) as they are made."

        return self._time_range_page(
            request,
            object_id,
            "Replay events",
            "Every event received in this range is sent to this integration again, "
            "through its current event rules (a re-sync).",
            run,
        )

    @admin.action(description="Pause selected integrations", permissions=["change"])
    def pause_selected(self, request: HttpRequest, queryset: QuerySet[Integration]) -> None:
        for integration in queryset:
            operations.pause(integration)
        self.message_user(request, f"Paused {len(queryset)} integration(s).")

    @admin.action(description="Resume selected integrations", permissions=["change"])
    def resume_selected(self, request: HttpRequest, queryset: QuerySet[Integration]) -> None:
        waiting = sum(operations.resume(integration) for integration in queryset)
        self.message_user(request, f"Resumed {len(queryset)} integration(s); {waiting} waiting.")

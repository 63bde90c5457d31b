"""Operator actions and health on the integration's admin page: pause (with a reason),
resume, recover failed deliveries and replay a time range (each shows what it will send
and asks to confirm); the integration's state in words, and a banner while it is paused;
the health panel, and the list's health column (a page's integrations measured together)."""

import datetime as dt
from collections.abc import Sequence
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.defaultfilters import pluralize
from django.template.response import TemplateResponse
from django.templatetags.static import static
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString

from integrations import audit
from integrations.admin.health_display import format_age, list_cell, state_badge
from integrations.delivery import operations
from integrations.delivery.health import Health, health, summaries
from integrations.models import Delivery, Integration


class TimeRangeForm(forms.Form):
    since = forms.DateTimeField(help_text="UTC, e.g. 2026-01-31 08:00")
    until = forms.DateTimeField(help_text="UTC; excluded from the range")

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        if cleaned.get("since") and cleaned.get("until") and cleaned["since"] >= cleaned["until"]:
            raise forms.ValidationError("'until' must be later than 'since'.")
        return cleaned


class PauseForm(forms.Form):
    reason = forms.CharField(
        max_length=audit.PAUSE_REASON_LIMIT,
        help_text="Why deliveries are held: shown on the integration's page and kept in the "
        "audit trail.",
        widget=forms.TextInput(attrs={"size": 80, "autofocus": True}),
    )


def delivery_log_url(integration: Integration, **filters: str) -> str:
    query = urlencode({"integration__id__exact": str(integration.pk), **filters})
    return f"{reverse('admin:integrations_delivery_changelist')}?{query}"


class IntegrationOperationsMixin(admin.ModelAdmin):
    """Adds the health panel, the pause/resume actions and the recover/replay pages (a
    ``ModelAdmin`` itself, for the admin's methods it calls, listed before the admin)."""

    change_form_template = "admin/integrations/integration/change_form.html"
    actions: Sequence[str] = ["pause_selected", "resume_selected"]

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
            '{} <a href="{}">{} delivered</a> · <a href="{}">{} retrying</a> · '
            '<a href="{}">{} failed</a> · {} pending · oldest waiting {}<br>'
            "success rate {} · p95 latency {} · "
            '<a href="{}">Charts: volume, error rate and latency</a>{}',
            state_badge(summary),
            delivery_log_url(integration, status__exact=Delivery.Status.DELIVERED),
            summary.delivered,
            delivery_log_url(integration, status__exact=Delivery.Status.RETRYING),
            summary.retrying,
            delivery_log_url(integration, status__exact=Delivery.Status.FAILED),
            summary.failed,
            summary.pending,
            format_age(summary.oldest_waiting_seconds),
            rate,
            p95,
            reverse("admin:integrations_integration_charts", args=[integration.pk]),
            format_html(
                '<br>Latest error: <span class="health-error">{}</span>', summary.last_error
            )
            if summary.last_error
            else "",
        )

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        """The list's page, each integration with its health (a few queries per page)."""
        changelist = super().get_changelist_instance(request)
        page = list(changelist.result_list)  # evaluated once: the template reuses it
        by_id = summaries(page)
        for integration in page:
            integration.list_health = by_id[integration.pk]
        return changelist

    def list_health(self, integration: Integration) -> Health:
        """The health the list attached, else this integration's own summary."""
        attached = getattr(integration, "list_health", None)
        return attached or summaries([integration])[integration.pk]

    @admin.display(description="Health")
    def health_now(self, integration: Integration) -> SafeString:
        return list_cell(self.list_health(integration))

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

    def render_change_form(
        self, request: HttpRequest, context: dict[str, Any], *args: Any, **kwargs: Any
    ) -> HttpResponse:
        obj = kwargs.get("obj")
        if obj is not None and obj.paused:
            context["pause"] = audit.current_pause(obj) or audit.Pause()
        return super().render_change_form(request, context, *args, **kwargs)

    @admin.display(description="Deliveries", ordering="paused")
    def delivery_state(self, integration: Integration) -> SafeString:
        """Active or paused, in words with an icon (a red ✗ for "not paused" read wrong)."""
        if integration.paused:
            icon, label = "admin/img/icon-alert.svg", "Paused"
        elif not integration.enabled:
            icon, label = "admin/img/icon-no.svg", "Off (disabled)"
        else:
            icon, label = "admin/img/icon-yes.svg", "Active"
        return format_html('<img src="{}" alt=""> {}', static(icon), label)

    def _pause_page(
        self, request: HttpRequest, integrations: list[Integration], form: PauseForm, **extra: Any
    ) -> TemplateResponse:
        single = len(integrations) == 1
        context = {
            **self.admin_site.each_context(request),
            "opts": Integration._meta,
            "title": f"Pause {integrations[0].name}" if single else "Pause integrations",
            "integrations": integrations,
            "original": integrations[0] if single else None,
            "form": form,
            **extra,
        }
        return TemplateResponse(request, "admin/integrations/integration/pause.html", context)

    def pause_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Asks why, then pauses."""
        integration = self._integration(request, object_id)
        form = PauseForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            operations.pause(integration, form.cleaned_data["reason"])
            self.message_user(request, f"{integration.name} is paused; deliveries wait.")
            return self._back(integration)
        return self._pause_page(request, [integration], form)

    def resume_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        integration = self._integration(request, object_id)
        if request.method == "POST":
            waiting = operations.resume(integration)
            self.message_user(request, f"{integration.name} resumed; {waiting} waiting.")
        return self._back(integration)

    def _time_range_page(
        self, request: HttpRequest, object_id: str, operation: "TimeRangeOperation"
    ) -> HttpResponse:
        """The range, then what it holds and a confirmation, then the operation."""
        integration = self._integration(request, object_id)
        now = timezone.now().replace(microsecond=0)
        form = TimeRangeForm(
            request.POST or None, initial={"since": now - dt.timedelta(days=1), "until": now}
        )
        count = refusal = None
        if request.method == "POST" and form.is_valid():
            since, until = form.cleaned_data["since"], form.cleaned_data["until"]
            refusal = operation.refusal(integration)
            if refusal is None:
                count = operation.count(integration, since, until)
                if count and request.POST.get("confirm") == "yes":
                    try:
                        message = operation.run(integration, since, until)
                    except operations.OperationRefused as exc:
                        self.message_user(request, str(exc), messages.ERROR)
                    else:
                        self.message_user(request, message, messages.SUCCESS)
                        return self._back(integration)
        context = {
            **self.admin_site.each_context(request),
            "opts": Integration._meta,
            "original": integration,
            "title": f"{operation.action}: {integration.name}",
            "operation": operation,
            "form": form,
            "count": count,
            "summary": operation.summary(count) if count is not None else "",
            "refusal": refusal,
        }
        return TemplateResponse(request, "admin/integrations/integration/time_range.html", context)

    def recover_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._time_range_page(request, object_id, RECOVER)

    def replay_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._time_range_page(request, object_id, REPLAY)

    @admin.action(description="Pause selected integrations…", permissions=["change"])
    def pause_selected(
        self, request: HttpRequest, queryset: QuerySet[Integration]
    ) -> TemplateResponse | None:
        """Asks why (one reason for all of them), then pauses."""
        form = PauseForm(request.POST if "reason" in request.POST else None)
        if form.is_valid():
            for integration in queryset:
                operations.pause(integration, form.cleaned_data["reason"])
            self.message_user(request, f"Paused {len(queryset)} integration(s).")
            return None
        if not queryset:
            self.message_user(request, "None of these may be paused by you.", messages.WARNING)
            return None
        return self._pause_page(
            request, list(queryset), form, action_name="pause_selected", selected=queryset
        )

    @admin.action(description="Resume selected integrations", permissions=["change"])
    def resume_selected(self, request: HttpRequest, queryset: QuerySet[Integration]) -> None:
        waiting = sum(operations.resume(integration) for integration in queryset)
        self.message_user(request, f"Resumed {len(queryset)} integration(s); {waiting} waiting.")


class TimeRangeOperation:
    """An operation over a range of time, as its page presents it: what the range holds
    (to confirm), then the operation itself."""

    action: str
    explanation: str

    def refusal(self, integration: Integration) -> str | None:
        """Why the operation cannot be done now, if it cannot."""
        return None

    def count(self, integration: Integration, since: dt.datetime, until: dt.datetime) -> int:
        raise NotImplementedError

    def summary(self, count: int) -> str:
        """What the confirmation says the operation will send."""
        raise NotImplementedError

    def run(self, integration: Integration, since: dt.datetime, until: dt.datetime) -> str:
        """Do it; returns the message for the user."""
        raise NotImplementedError


class Recover(TimeRangeOperation):
    action = "Retry failed deliveries"
    explanation = (
        "Every failed delivery created in this range gets one manual attempt; those that fail "
        "again stay failed."
    )

    def refusal(self, integration: Integration) -> str | None:
        return f"{integration.name} is paused: resume it first." if integration.paused else None

    def count(self, integration: Integration, since: dt.datetime, until: dt.datetime) -> int:
        return operations.failed_in_range(integration, since, until).count()

    def summary(self, count: int) -> str:
        if not count:
            return "No delivery created in this range has failed: nothing to retry."
        return (
            f"{count} failed deliver{pluralize(count, 'y,ies')} created in this range will get "
            "one manual attempt each."
        )

    def run(self, integration: Integration, since: dt.datetime, until: dt.datetime) -> str:
        count = operations.recover(integration, since, until)
        return f"{count} failed deliveries queued for a manual attempt."


class Replay(TimeRangeOperation):
    action = "Replay events"
    explanation = (
        "Every event received in this range is sent to this integration again, through its "
        "current event rules (a re-sync)."
    )

    def count(self, integration: Integration, since: dt.datetime, until: dt.datetime) -> int:
        return operations.events_in_range(integration, since, until).count()

    def summary(self, count: int) -> str:
        if not count:
            return "No event was received in this range: nothing to replay."
        return (
            f"{count} event{pluralize(count)} received in this range will go through the event "
            "rules again; each one they let through becomes a new delivery (origin: replay)."
        )

    def run(self, integration: Integration, since: dt.datetime, until: dt.datetime) -> str:
        started = operations.start_replay(integration, since, until)
        return (
            f"Replay of {started.events} events started: deliveries appear in the log "
            "(origin: replay) as they are made."
        )


RECOVER = Recover()
REPLAY = Replay()

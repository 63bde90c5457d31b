"""Alert rules and incidents in the admin: CSMs configure rules per workspace, viewers read
them; incidents are listed read-only.

A URL target (Slack incoming webhook, webhook) is write-only: once saved, pages show only
its host, and an empty field keeps it.
"""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString
from django.utils.text import Truncator

from integrations.admin.delivery_log import ReadOnlyAdminMixin
from integrations.admin.scoping import ScopedHistoryAdmin, WorkspaceScopedAdmin
from integrations.alerts import channels, notices
from integrations.models import AlertIncident, AlertRule

URL_CHANNELS = AlertRule.URL_CHANNELS


class AlertRuleForm(forms.ModelForm):
    target = forms.CharField(
        max_length=2000,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "off", "class": "vTextField"}),
        help_text="An email address, or the URL of a Slack incoming webhook or a webhook.",
    )

    class Meta:
        model = AlertRule
        fields = ["workspace", "name", "channel", "target", "condition", "threshold"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        rule: AlertRule = self.instance
        if rule.pk and rule.channel in URL_CHANNELS and "target" in self.fields:
            self.initial["target"] = ""
            self.fields["target"].help_text = (
                f"Set: {rule.target_display} (never shown again: it is a credential). "
                "Type a new URL to replace it; empty keeps it."
            )

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        rule: AlertRule = self.instance
        channel = cleaned.get("channel")
        target = (cleaned.get("target") or "").strip()
        keeps_url = rule.pk and rule.channel in URL_CHANNELS and channel in URL_CHANNELS
        if not target and keeps_url:
            target = rule.target
        if not target:
            self.add_error("target", "Give an email address or a URL.")
        cleaned["target"] = target
        return cleaned


@admin.register(AlertRule)
class AlertRuleAdmin(ScopedHistoryAdmin):
    form = AlertRuleForm
    list_display = [
        "name",
        "workspace",
        "condition",
        "threshold",
        "channel",
        "target_display",
        "open_incidents",
    ]
    list_filter = ["condition", "channel", "workspace"]
    search_fields = ["name", "workspace__name"]
    list_select_related = ["workspace"]
    readonly_fields = ["target_display", "target_changed_at"]
    actions = ["send_test_notice"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[AlertRule]:
        return (
            super()
            .get_queryset(request)
            .annotate(open_count=Count("incidents", filter=Q(incidents__cleared_at__isnull=True)))
            .order_by("workspace__name", "name")  # a grouped query drops Meta.ordering
        )

    def get_fields(self, request: HttpRequest, obj: AlertRule | None = None) -> tuple[str, ...]:
        fields = ("workspace", "name", "channel", "target", "condition", "threshold")
        if obj is not None and not self.has_change_permission(request, obj):
            # A reader sees the target as the list does (a URL's host only).
            return tuple(name if name != "target" else "target_display" for name in fields)
        return (*fields, "target_changed_at") if obj is not None else fields

    @admin.display(description="Target")
    def target_display(self, rule: AlertRule) -> str:
        return rule.target_display

    @admin.display(description="Open incidents", ordering="open_count")
    def open_incidents(self, rule: AlertRule) -> SafeString | int:
        count = getattr(rule, "open_count", 0)
        if not count:
            return 0
        query = urlencode({"rule__id__exact": str(rule.pk), "state": "open"})
        url = f"{reverse('admin:integrations_alertincident_changelist')}?{query}"
        return format_html('<a href="{}">{}</a>', url, count)

    @admin.action(description="Send a test notification", permissions=["change"])
    def send_test_notice(self, request: HttpRequest, queryset: QuerySet[AlertRule]) -> None:
        for rule in queryset.select_related("workspace"):
            try:
                channels.send(rule, notices.sample_notice(rule))
            except channels.NoticeFailed as exc:
                self.message_user(request, f"“{rule.name}”: not sent: {exc}", messages.ERROR)
            else:
                self.message_user(
                    request, f"“{rule.name}”: test sent to {rule.target_display}.", messages.SUCCESS
                )


class IncidentStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("open", "Open"), ("cleared", "Cleared")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() in ("open", "cleared"):
            return queryset.filter(cleared_at__isnull=self.value() == "open")
        return queryset


@admin.register(AlertIncident)
class AlertIncidentAdmin(ReadOnlyAdminMixin, WorkspaceScopedAdmin):
    workspace_path = "rule__workspace"
    list_display = [
        "opened_at",
        "rule",
        "workspace",
        "integration",
        "state",
        "cleared_at",
        "notice",
        "summary",
    ]
    list_filter = [IncidentStateFilter, "rule__condition", "rule", "integration", "opened_at"]
    list_select_related = ["rule__workspace", "integration"]
    date_hierarchy = "opened_at"
    fields = readonly_fields = (
        "rule",
        "integration",
        "opened_at",
        "detail",
        "last_seen_at",
        "cleared_at",
        "clear_detail",
        "last_notified_at",
        "notify_error",
    )

    @admin.display(description="Workspace", ordering="rule__workspace__name")
    def workspace(self, incident: AlertIncident) -> str:
        return incident.rule.workspace.name

    @admin.display(description="State")
    def state(self, incident: AlertIncident) -> str:
        return "open" if incident.is_open else "cleared"

    @admin.display(description="Detail")
    def summary(self, incident: AlertIncident) -> str:
        detail = incident.clear_detail if incident.cleared_at else incident.detail
        return Truncator(detail).chars(120)

    @admin.display(description="Notified")
    def notice(self, incident: AlertIncident) -> str:
        sent, cleared = incident.last_notified_at, incident.cleared_at
        if sent is not None and (cleared is None or sent >= cleared):
            return "yes"
        return f"not sent: {incident.notify_error}" if incident.notify_error else "pending"

"""Admin of the configuration: workspaces, members, sources and integrations."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from integrations.admin.operations import IntegrationOperationsMixin
from integrations.destinations import registry
from integrations.destinations.base import SettingField
from integrations.links import absolute_url
from integrations.models import (
    EventRule,
    Integration,
    PropertyRule,
    Source,
    Workspace,
    WorkspaceMembership,
)

SETTING_PREFIX = "setting__"


class MembershipInline(admin.TabularInline):
    model = WorkspaceMembership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(WorkspaceMembership)
class WorkspaceMembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "workspace", "role", "created_at"]
    list_filter = ["role", "workspace"]
    search_fields = ["user__username", "workspace__name"]
    autocomplete_fields = ["user", "workspace"]


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = ["name", "workspace", "kind", "enabled", "write_key", "created_at"]
    list_filter = ["kind", "enabled", "workspace"]
    search_fields = ["name", "write_key", "workspace__name"]
    fields = ["workspace", "name", "kind", "enabled", "write_key", "webhook_url"]
    readonly_fields = ["write_key", "webhook_url"]
    actions = ["regenerate_keys"]

    @admin.display(description="Webhook URL")
    def webhook_url(self, source: Source) -> str:
        return absolute_url(source.webhook_path) if source.pk else "-"

    @admin.action(description="Regenerate write key, webhook URL and secret")
    def regenerate_keys(self, request: HttpRequest, queryset: QuerySet[Source]) -> None:
        for source in queryset:
            source.regenerate_keys()
        self.message_user(request, f"New keys for {queryset.count()} source(s).", messages.SUCCESS)


def _form_field(spec: SettingField, has_value: bool) -> forms.Field:
    common = {"label": spec.label, "help_text": spec.help_text}
    if spec.secret:
        if has_value:
            common["help_text"] = f"{spec.help_text} Set; leave empty to keep it."
        return forms.CharField(
            required=spec.required and not has_value,
            widget=forms.PasswordInput(render_value=False),
            **common,
        )
    if spec.type == "choice":
        return forms.ChoiceField(choices=spec.choices, required=spec.required, **common)
    if spec.type == "headers":
        return forms.JSONField(required=False, **common)
    if spec.type == "url":
        return forms.URLField(required=spec.required, assume_scheme="https", **common)
    return forms.CharField(required=spec.required, **common)


class IntegrationForm(forms.ModelForm):
    """The model form plus one field per setting of the integration's kind."""

    kind_name: str
    api_base_url = forms.URLField(
        required=False,
        assume_scheme="https",
        label="API base URL",
        help_text=Integration._meta.get_field("api_base_url").help_text,
    )

    class Meta:
        model = Integration
        fields = ["workspace", "name", "kind", "enabled", "event_mode", "api_base_url"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        destination = registry.get(self.kind_name)
        current = {**self.instance.settings} if self.instance.pk else {}
        secrets = self.instance.secret_settings or {}
        for spec in destination.settings_schema:
            name = SETTING_PREFIX + spec.name
            self.fields[name] = _form_field(spec, bool(secrets.get(spec.name)))
            if not spec.secret:
                self.fields[name].initial = current.get(spec.name, spec.default)
        self.fields["kind"].disabled = True
        self.fields["kind"].initial = self.kind_name

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        submitted = {
            key.removeprefix(SETTING_PREFIX): value
            for key, value in cleaned.items()
            if key.startswith(SETTING_PREFIX)
        }
        self.instance.kind = self.kind_name
        try:
            self.instance.set_settings(
                {key: value for key, value in submitted.items() if value is not None}
            )
        except forms.ValidationError as exc:
            for key, problems in exc.message_dict.items():
                field = SETTING_PREFIX + key
                self.add_error(field if field in self.fields else None, problems)
        return cleaned


class EventRuleInline(admin.TabularInline):
    model = EventRule
    extra = 1


class PropertyRuleInline(admin.TabularInline):
    model = PropertyRule
    extra = 1


@admin.register(Integration)
class IntegrationAdmin(IntegrationOperationsMixin, admin.ModelAdmin):
    form = IntegrationForm
    list_display = ["name", "workspace", "kind", "enabled", "paused", "endpoint_ok", "updated_at"]
    list_filter = ["kind", "enabled", "paused", "workspace"]
    search_fields = ["name", "workspace__name"]
    readonly_fields = ["health_summary", "paused", "flagged_reason"]
    inlines = [EventRuleInline, PropertyRuleInline]

    @admin.display(description="Endpoint OK", boolean=True)
    def endpoint_ok(self, integration: Integration) -> bool:
        """False once the vendor answered 410 Gone."""
        return not integration.flagged_reason

    def get_readonly_fields(self, request: HttpRequest, obj: Integration | None = None) -> list:
        return list(self.readonly_fields) if obj is not None else []

    def _kind(self, request: HttpRequest, obj: Integration | None) -> str | None:
        if obj is not None:
            return obj.kind
        kind = request.POST.get("kind") or request.GET.get("kind")
        return kind if kind in dict(registry.kind_choices()) else None

    def get_fieldsets(self, request: HttpRequest, obj: Integration | None = None) -> list:
        """The model fields, then a fieldset with the settings of the integration's kind."""
        fieldsets = list(super().get_fieldsets(request, obj))
        kind = self._kind(request, obj)
        if kind is not None:
            destination = registry.get(kind)
            names = [SETTING_PREFIX + spec.name for spec in destination.settings_schema]
            fieldsets.append((f"{destination.label} settings", {"fields": names}))
        return fieldsets

    def get_form(
        self, request: HttpRequest, obj: Integration | None = None, change: bool = False, **kwargs
    ) -> type[forms.ModelForm]:
        # The setting fields are not model fields: the form adds them itself.
        if "fields" not in kwargs:
            kwargs["fields"] = flatten_fieldsets(self.get_fieldsets(request, obj))
        if kwargs["fields"] is not None:
            kwargs["fields"] = [f for f in kwargs["fields"] if not f.startswith(SETTING_PREFIX)]
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"kind_name": self._kind(request, obj)})

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        if self._kind(request, None) is None:
            # Pick the vendor first: its settings decide the rest of the form.
            if not self.has_add_permission(request):
                raise PermissionDenied
            destinations = [
                {"kind": d.kind, "label": d.label, "types": sorted(d.supported_types)}
                for d in registry.all_destinations()
            ]
            context = {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": "Add integration: choose the destination",
                "destinations": destinations,
            }
            return TemplateResponse(request, "admin/integrations/choose_kind.html", context)
        return super().add_view(request, form_url, extra_context)

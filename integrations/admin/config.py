"""Admin of the configuration: workspaces and integrations (sources: ``sources``, members:
``members``)."""

from typing import Any, TypedDict

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import flatten_fieldsets
from django.core.exceptions import PermissionDenied
from django.db.models import Model
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from integrations.admin.event_grid import EventRuleInline
from integrations.admin.integration_charts import IntegrationChartsMixin
from integrations.admin.mappings import (
    MAPPING_PREFIX,
    MAPPINGS_TABLE,
    MappingAdminMixin,
    MappingFormMixin,
    caveats,
)
from integrations.admin.members import MembershipInline
from integrations.admin.operations import IntegrationOperationsMixin
from integrations.admin.portability import IntegrationPortabilityMixin
from integrations.admin.scoping import ADMIN_ROLES, ScopedHistoryAdmin, ScopedTabularInline
from integrations.admin.secret_settings import GeneratedSecretsMixin, HeadersField
from integrations.admin.tester import EventTesterMixin
from integrations.delivery import url_guard
from integrations.delivery.health import State
from integrations.destinations import registry
from integrations.destinations.base import SettingField
from integrations.models import (
    Integration,
    PropertyRule,
    Workspace,
    WorkspaceMembership,
)

SETTING_PREFIX = "setting__"
Role = WorkspaceMembership.Role


@admin.register(Workspace)
class WorkspaceAdmin(ScopedHistoryAdmin):
    """Workspaces: their admins rename them and manage members; superusers (and staff
    users given the permission) create them; only superusers delete them."""

    workspace_path = ""
    write_roles = ADMIN_ROLES
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return Workspace.can_be_created_by(request.user)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return request.user.is_superuser

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        if not change and not request.user.is_superuser:
            # Whoever creates a workspace becomes its admin, as through the API.
            WorkspaceMembership.objects.get_or_create(
                user=request.user, workspace=form.instance, defaults={"role": Role.ADMIN}
            )


class _Labels(TypedDict):
    """What every setting's form field shows."""

    label: str
    help_text: str


def _form_field(spec: SettingField, has_value: bool) -> forms.Field:
    common: _Labels = {"label": spec.label, "help_text": spec.help_text}
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
        return HeadersField(**common)
    if spec.type == "url":
        return forms.URLField(required=spec.required, assume_scheme="https", **common)
    return forms.CharField(required=spec.required, **common)


class IntegrationForm(MappingFormMixin, forms.ModelForm):
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
        if "kind" in self.fields:  # not on a read-only page
            self.fields["kind"].disabled = True
            self.fields["kind"].initial = self.kind_name

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
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
            for key, messages in exc.message_dict.items():
                field = SETTING_PREFIX + key
                self.add_error(field if field in self.fields else None, messages)
            return cleaned
        problems = url_guard.url_problems(
            self.instance.destination, self.instance.settings, cleaned.get("api_base_url")
        )
        for key, problem in problems.items():
            field = key if key == url_guard.API_BASE_URL else SETTING_PREFIX + key
            self.add_error(field if field in self.fields else None, problem)
        return cleaned


class PropertyRuleInline(ScopedTabularInline):
    model = PropertyRule
    extra = 1


@admin.register(Integration)
class IntegrationAdmin(
    GeneratedSecretsMixin,
    MappingAdminMixin,
    EventTesterMixin,
    IntegrationOperationsMixin,
    IntegrationChartsMixin,
    IntegrationPortabilityMixin,
    ScopedHistoryAdmin,
):
    """One screen per integration: its settings, health, event rules (a grid of the
    workspace's catalog), property rules, operator actions and the event tester; the list
    exports, imports and copies integrations."""

    form = IntegrationForm
    actions = [*IntegrationOperationsMixin.actions, *IntegrationPortabilityMixin.actions]
    list_display = [
        "name",
        "workspace",
        "kind",
        "delivery_state",
        "health_now",
        "endpoint_ok",
        "updated_at",
    ]
    list_filter = ["kind", "enabled", "paused", "workspace"]
    search_fields = ["name", "workspace__name"]
    readonly_fields = ["health_summary", "delivery_state", "flagged_reason", "secrets_changed_at"]
    inlines = [EventRuleInline, PropertyRuleInline]

    @admin.display(description="Endpoint OK", boolean=True)
    def endpoint_ok(self, integration: Integration) -> bool:
        """False once the vendor answered 410 Gone, and while its health is an outage
        (deliveries being retried, or events waiting too long)."""
        if integration.flagged_reason:
            return False
        return self.list_health(integration).state != State.OUTAGE

    def get_readonly_fields(self, request: HttpRequest, obj: Integration | None = None) -> list:
        # The mappings table is what viewers see of the mappings (the history's pages too).
        return [*self.readonly_fields, MAPPINGS_TABLE] if obj is not None else []

    def __getattr__(self, name: str) -> Any:
        """On a read-only page (viewers), each setting field ``setting__<name>`` shows the
        setting's public value (custom headers: their names), and for a secret only whether
        it is set."""
        if not name.startswith(SETTING_PREFIX):
            raise AttributeError(name)
        key = name.removeprefix(SETTING_PREFIX)

        def setting(integration: Integration) -> Any:
            if key in integration.destination.secret_names():
                return "(set)" if (integration.secret_settings or {}).get(key) else None
            value = integration.settings.get(key)
            return ", ".join(value) if isinstance(value, list) else value

        return setting

    def _kind(self, request: HttpRequest, obj: Integration | None) -> str | None:
        if obj is not None:
            return obj.kind
        kind = request.POST.get("kind") or request.GET.get("kind")
        return kind if kind in dict(registry.kind_choices()) else None

    def get_fieldsets(self, request: HttpRequest, obj: Integration | None = None) -> list:
        """The integration, its health, the settings of its kind, then the event mode (the
        event rules grid follows it)."""
        fieldsets: list = [(None, {"fields": ["workspace", "name", "kind", "enabled"]})]
        if obj is not None:
            health = ["health_summary", "delivery_state", "flagged_reason", "secrets_changed_at"]
            fieldsets.append(("Health", {"fields": health}))
        kind = self._kind(request, obj)
        if kind is not None:
            destination = registry.get(kind)
            names = [SETTING_PREFIX + spec.name for spec in destination.settings_schema]
            settings = {"fields": [*names, "api_base_url"], "description": caveats(kind)}
            fieldsets.append((f"{destination.label} settings", settings))
            fieldsets += self.mapping_fieldsets(request, obj, kind)
        fieldsets.append(("Events", {"fields": ["event_mode"]}))
        return fieldsets

    def get_form(
        self,
        request: HttpRequest,
        obj: Integration | None = None,
        change: bool = False,
        **kwargs: Any,
    ) -> type[forms.ModelForm]:
        # The setting fields are not model fields: the form adds them itself.
        if "fields" not in kwargs:
            kwargs["fields"] = flatten_fieldsets(self.get_fieldsets(request, obj))
        if kwargs["fields"] is not None:
            kwargs["fields"] = [
                f for f in kwargs["fields"] if not f.startswith((SETTING_PREFIX, MAPPING_PREFIX))
            ]
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

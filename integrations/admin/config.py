"""Admin of the configuration: workspaces, members and integrations (sources: ``sources``)."""

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import flatten_fieldsets
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from integrations.admin.event_grid import EventRuleInline
from integrations.admin.operations import IntegrationOperationsMixin
from integrations.admin.portability import IntegrationPortabilityMixin
from integrations.admin.scoping import ADMIN_ROLES, ScopedHistoryAdmin, ScopedTabularInline
from integrations.admin.tester import EventTesterMixin
from integrations.delivery import url_guard
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


class MembershipForm(forms.ModelForm):
    """A membership whose user is given by username: only superusers get to browse users.

    The user and the workspace of an existing membership stay as they are (remove it and
    add another instead).
    """

    username = forms.CharField(max_length=150, help_text="The user's login name.")
    #: Refuse demoting the workspace's last admin (inline, the formset checks that).
    checks_last_admin = True

    class Meta:
        model = WorkspaceMembership
        fields = ["username", "workspace", "role"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["username"].initial = self.instance.user.get_username()
            for name in ("username", "workspace"):
                if name in self.fields:
                    self.fields[name].disabled = True

    def clean_username(self) -> str:
        if self.instance.pk:
            return self.instance.user.get_username()
        username = self.cleaned_data["username"].strip()
        user_model = get_user_model()
        try:
            self.instance.user = user_model._default_manager.get_by_natural_key(username)
        except user_model.DoesNotExist:
            raise ValidationError(
                f"No user is called “{username}”; a superuser creates accounts.",
                code="unknown_user",
            ) from None
        return username

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        member: WorkspaceMembership = self.instance
        workspace = cleaned.get("workspace")
        workspace_id = workspace.pk if workspace else member.workspace_id
        if (
            member.user_id
            and workspace_id
            and WorkspaceMembership.objects.filter(
                user_id=member.user_id, workspace_id=workspace_id
            )
            .exclude(pk=member.pk)
            .exists()
        ):
            self.add_error("username", "This user is already a member of this workspace.")
        if (
            self.checks_last_admin
            and member.pk
            and cleaned.get("role") != Role.ADMIN
            and not WorkspaceMembership.keeps_an_admin(member.workspace_id, removed=[member.pk])
        ):
            self.add_error("role", WorkspaceMembership.LAST_ADMIN_MESSAGE)
        return cleaned


class InlineMembershipForm(MembershipForm):
    checks_last_admin = False

    class Meta(MembershipForm.Meta):
        fields = ["username", "role"]


class MembershipFormSet(forms.BaseInlineFormSet):
    """A workspace's members, edited together: each user once, and an admin kept."""

    def clean(self) -> None:
        super().clean()
        if any(self.errors):
            return
        kept = [f for f in self.forms if f.cleaned_data and not self._should_delete_form(f)]
        usernames = [f.cleaned_data.get("username") for f in kept]
        if len(usernames) != len(set(usernames)):
            raise ValidationError("A user is listed more than once.")
        if self.instance.pk is None:
            return
        removed = [
            f.instance.pk
            for f in self.forms
            if f.instance.pk and (f not in kept or f.cleaned_data.get("role") != Role.ADMIN)
        ]
        added = sum(f.cleaned_data.get("role") == Role.ADMIN for f in kept)
        if not WorkspaceMembership.keeps_an_admin(self.instance.pk, removed=removed, added=added):
            raise ValidationError(WorkspaceMembership.LAST_ADMIN_MESSAGE)


class MembershipUsername:
    """The username, for read-only membership pages (the form field is not a model field)."""

    @admin.display(description="Username")
    def username(self, membership: WorkspaceMembership) -> str:
        return membership.user.get_username()


class MembershipInline(MembershipUsername, ScopedTabularInline):
    model = WorkspaceMembership
    form = InlineMembershipForm
    formset = MembershipFormSet
    fields = ["username", "role"]
    extra = 0
    write_roles = ADMIN_ROLES


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

    def has_add_permission(self, request: HttpRequest) -> bool:
        return Workspace.can_be_created_by(request.user)

    def has_delete_permission(self, request: HttpRequest, obj: Workspace | None = None) -> bool:
        return request.user.is_superuser

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        if not change and not request.user.is_superuser:
            # Whoever creates a workspace becomes its admin, as through the API.
            WorkspaceMembership.objects.get_or_create(
                user=request.user, workspace=form.instance, defaults={"role": Role.ADMIN}
            )


@admin.register(WorkspaceMembership)
class WorkspaceMembershipAdmin(MembershipUsername, ScopedHistoryAdmin):
    """Members see their workspaces' members; the workspaces' admins manage them."""

    form = MembershipForm
    write_roles = ADMIN_ROLES
    list_display = ["user", "workspace", "role", "created_at"]
    list_filter = ["role", "workspace"]
    list_select_related = ["user", "workspace"]
    search_fields = ["user__username", "workspace__name"]
    fields = ["username", "workspace", "role"]

    def has_delete_permission(
        self, request: HttpRequest, obj: WorkspaceMembership | None = None
    ) -> bool:
        """Also refused for the last admin of a workspace."""
        return super().has_delete_permission(request, obj) and (
            obj is None
            or obj.role != Role.ADMIN
            or WorkspaceMembership.keeps_an_admin(obj.workspace_id, removed=[obj.pk], lock=False)
        )


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
        if "kind" in self.fields:  # not on a read-only page
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
    EventTesterMixin, IntegrationOperationsMixin, IntegrationPortabilityMixin, ScopedHistoryAdmin
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
        "endpoint_ok",
        "updated_at",
    ]
    list_filter = ["kind", "enabled", "paused", "workspace"]
    search_fields = ["name", "workspace__name"]
    readonly_fields = ["health_summary", "delivery_state", "flagged_reason", "secrets_changed_at"]
    inlines = [EventRuleInline, PropertyRuleInline]

    @admin.display(description="Endpoint OK", boolean=True)
    def endpoint_ok(self, integration: Integration) -> bool:
        """False once the vendor answered 410 Gone."""
        return not integration.flagged_reason

    def get_readonly_fields(self, request: HttpRequest, obj: Integration | None = None) -> list:
        return list(self.readonly_fields) if obj is not None else []

    def __getattr__(self, name: str) -> Any:
        """On a read-only page (viewers), each setting field ``setting__<name>`` shows the
        setting's value, and for a secret only whether it is set."""
        if not name.startswith(SETTING_PREFIX):
            raise AttributeError(name)
        key = name.removeprefix(SETTING_PREFIX)

        def setting(integration: Integration) -> Any:
            if key in integration.destination.secret_names():
                return "(set)" if (integration.secret_settings or {}).get(key) else None
            return integration.settings.get(key)

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
            fieldsets.append(
                (f"{destination.label} settings", {"fields": [*names, "api_base_url"]})
            )
        fieldsets.append(("Events", {"fields": ["event_mode"]}))
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

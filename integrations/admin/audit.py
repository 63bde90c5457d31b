"""The admin's "Audit trail" page: the configuration changes of the user's workspaces."""

from typing import Any, cast

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse

from integrations import audit
from integrations.admin.scoping import workspace_ids, workspace_roles
from integrations.models import Workspace

PER_PAGE = 50


class AuditFilterForm(forms.Form):
    workspace = forms.ModelChoiceField(
        queryset=Workspace.objects.none(), required=False, empty_label="All workspaces"
    )
    kind = forms.ChoiceField(
        label="Object",
        required=False,
        choices=[("", "All objects")]
        + [
            (name, str(model._meta.verbose_name).capitalize())
            for name, model in audit.MODELS.items()
        ],
    )
    user = forms.CharField(label="Changed by", required=False, help_text="A username.")

    def __init__(self, data: Any, workspaces: Any) -> None:
        super().__init__(data)
        cast(forms.ModelChoiceField, self.fields["workspace"]).queryset = workspaces


def may_see_audit_trail(request: HttpRequest) -> bool:
    """Superusers, and staff users with a membership (they see their workspaces)."""
    user = request.user
    return (
        user.is_active and user.is_staff and (user.is_superuser or bool(workspace_roles(request)))
    )


def _history_url(kind: str, object_id: Any) -> str | None:
    try:
        return reverse(f"admin:integrations_{kind}_history", args=[object_id])
    except NoReverseMatch:  # rules have no page of their own
        return None


def audit_trail_view(request: HttpRequest) -> HttpResponse:
    if not may_see_audit_trail(request):
        raise PermissionDenied
    readable = workspace_ids(request)
    workspaces = Workspace.objects.all()
    if readable is not None:
        workspaces = workspaces.filter(pk__in=readable)
    form = AuditFilterForm(request.GET, workspaces)
    scope, kind, username = readable, None, None
    if form.is_valid():
        if form.cleaned_data["workspace"]:
            scope = {form.cleaned_data["workspace"].pk}
        kind = form.cleaned_data["kind"] or None
        username = form.cleaned_data["user"].strip() or None
    page = Paginator(audit.changes(scope, kind=kind, username=username), PER_PAGE).get_page(
        request.GET.get("p")
    )
    entries = audit.describe(page.object_list)
    names: dict[int | None, str] = dict(
        Workspace.objects.filter(pk__in={e.workspace_id for e in entries}).values_list("pk", "name")
    )
    rows = [
        {
            "change": entry,
            "workspace": names.get(entry.workspace_id, f"#{entry.workspace_id}"),
            "history_url": _history_url(entry.model_name, entry.object_id),
        }
        for entry in entries
    ]
    query = request.GET.copy()
    query.pop("p", None)
    context = {
        **admin.site.each_context(request),
        "title": "Audit trail",
        "subtitle": "Configuration changes: who, when, what (secrets are never shown)",
        "form": form,
        "page": page,
        "rows": rows,
        "query": query.urlencode(),
    }
    return TemplateResponse(request, "admin/integrations/audit_trail.html", context)

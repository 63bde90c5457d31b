"""Configuration export, import and copy in the admin (see ``integrations.portability``):
"Export selected" (any member), an import page and "Copy to another workspace…" (CSMs
and admins, into the workspaces they may write to)."""

import json
from collections.abc import Sequence
from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.http import urlencode
from rest_framework import serializers

from integrations import audit, portability
from integrations.admin.scoping import EDIT_ROLES, workspace_ids
from integrations.models import Integration, Workspace

#: The largest document the import page reads.
MAX_DOCUMENT_BYTES = 2 * 1024 * 1024


def writable_workspaces(request: HttpRequest) -> QuerySet[Workspace]:
    """The workspaces the user may create integrations in."""
    ids = workspace_ids(request, EDIT_ROLES)
    workspaces = Workspace.objects.all()
    return workspaces if ids is None else workspaces.filter(pk__in=ids)


class ImportForm(forms.Form):
    workspace = forms.ModelChoiceField(
        queryset=Workspace.objects.none(), help_text="The integrations are created here."
    )
    file = forms.FileField(required=False, label="Export file", help_text="A .json export.")
    document = forms.CharField(
        required=False,
        label="or paste it",
        widget=forms.Textarea(attrs={"rows": 10, "cols": 80, "spellcheck": "false"}),
    )

    def __init__(self, *args: Any, workspaces: QuerySet[Workspace], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ModelChoiceField, self.fields["workspace"]).queryset = workspaces

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        upload, text = cleaned.get("file"), cleaned.get("document")
        if upload is not None:
            if upload.size > MAX_DOCUMENT_BYTES:
                raise forms.ValidationError(
                    f"This file is larger than {MAX_DOCUMENT_BYTES // (1024 * 1024)} MB: "
                    "not an export of integrations."
                )
            text = upload.read().decode("utf-8", errors="replace")
        if not text:
            raise forms.ValidationError("Choose an export file or paste one.")
        try:
            cleaned["parsed"] = json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(f"This is not JSON: {exc}.") from exc
        except RecursionError as exc:
            raise forms.ValidationError("This JSON nests objects and arrays too deep.") from exc
        return cleaned


class CopyForm(forms.Form):
    target = forms.ModelChoiceField(queryset=Workspace.objects.none(), label="Into the workspace")

    def __init__(self, *args: Any, workspaces: QuerySet[Workspace], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ModelChoiceField, self.fields["target"]).queryset = workspaces


class IntegrationPortabilityMixin(admin.ModelAdmin):
    """Adds the export and copy actions and the ``import/`` page (a ``ModelAdmin`` itself,
    for the admin's methods it calls, listed before the admin)."""

    actions: Sequence[str] = ["export_selected", "copy_to_workspace"]

    def get_urls(self) -> list:
        page = path(
            "import/",
            self.admin_site.admin_view(self.import_view),
            name="integrations_integration_import",
        )
        return [page, *super().get_urls()]

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> Any:
        extra_context = {**(extra_context or {}), "may_import": self.has_add_permission(request)}
        return super().changelist_view(request, extra_context)

    def _report(self, request: HttpRequest, imported: list[portability.Imported]) -> None:
        for item in imported:
            level = messages.WARNING if item.to_enter else messages.SUCCESS
            self.message_user(request, item.message, level)

    def import_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        workspaces = writable_workspaces(request)
        form = ImportForm(
            request.POST if request.method == "POST" else None,
            request.FILES if request.method == "POST" else None,
            workspaces=workspaces,
            initial={"workspace": workspaces.first()} if workspaces.count() == 1 else {},
        )
        problems: list[str] = []
        if form.is_valid():
            workspace = form.cleaned_data["workspace"]
            try:
                imported = portability.import_document(workspace, form.cleaned_data["parsed"])
            except serializers.ValidationError as exc:
                problems = portability.error_lines(exc.detail)
            else:
                self._report(request, imported)
                query = urlencode({"workspace__id__exact": workspace.pk})
                changelist = reverse("admin:integrations_integration_changelist")
                return HttpResponseRedirect(f"{changelist}?{query}")
        context = {
            **self.admin_site.each_context(request),
            "opts": Integration._meta,
            "title": "Import integrations",
            "form": form,
            "problems": problems,
        }
        return TemplateResponse(request, "admin/integrations/integration/import.html", context)

    @admin.action(
        description="Export selected integrations (JSON, no secrets)", permissions=["view"]
    )
    def export_selected(self, request: HttpRequest, queryset: QuerySet[Integration]) -> Any:
        document = portability.export_document(portability.exportable(queryset))
        response = JsonResponse(document, json_dumps_params={"indent": 2, "ensure_ascii": False})
        filename = portability.export_filename()
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response

    @admin.action(
        description="Copy selected integrations to another workspace…", permissions=["add"]
    )
    def copy_to_workspace(
        self, request: HttpRequest, queryset: QuerySet[Integration]
    ) -> TemplateResponse | None:
        """An export of each selected integration, imported into the chosen workspace."""
        form = CopyForm(
            request.POST if "target" in request.POST else None,
            workspaces=writable_workspaces(request),
        )
        if form.is_valid():
            target = form.cleaned_data["target"]
            try:
                with transaction.atomic():
                    imported = [
                        item
                        for integration in portability.exportable(
                            queryset.select_related("workspace")
                        )
                        for item in portability.import_document(
                            target,
                            portability.export_document([integration]),
                            reason=audit.fit_reason(
                                f"Copied from {integration.workspace}: {integration.name}"
                            ),
                        )
                    ]
            except serializers.ValidationError as exc:
                for line in portability.error_lines(exc.detail):
                    self.message_user(request, f"Not copied: {line}", messages.ERROR)
                return None
            self.message_user(request, f"Copied {len(imported)} integration(s) into {target}.")
            self._report(request, imported)
            return None
        context = {
            **self.admin_site.each_context(request),
            "opts": Integration._meta,
            "title": "Copy integrations to another workspace",
            "form": form,
            "integrations": list(queryset.select_related("workspace")),
            "action_name": "copy_to_workspace",
        }
        return TemplateResponse(request, "admin/integrations/integration/copy.html", context)

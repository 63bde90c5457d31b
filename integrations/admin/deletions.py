"""Deletion requests in the admin, per workspace and read-only: who asked, when, for which
user, and what became of it at each integration (they are made through the API and by
Segment's delete notices, see ``integrations/deletion.py``)."""

from typing import Any, cast

from django.contrib import admin
from django.http import HttpRequest, HttpResponse

from integrations import deletion
from integrations.admin.delivery_log import ReadOnlyAdminMixin
from integrations.admin.scoping import ScopedTabularInline, WorkspaceScopedAdmin
from integrations.models import DeletionRequest, DeletionTarget
from integrations.models.deletions import DeletionRequestQuerySet

#: Requests under way refreshed when the list is shown (the newest first).
OPEN_LIMIT = 500


class DeletionTargetInline(ReadOnlyAdminMixin, ScopedTabularInline):
    model = DeletionTarget
    extra = 0
    fields = readonly_fields = ("name", "kind", "integration", "status", "detail", "updated_at")
    can_delete = False


@admin.register(DeletionRequest)
class DeletionRequestAdmin(ReadOnlyAdminMixin, WorkspaceScopedAdmin):
    list_display = [
        "created_at",
        "workspace",
        "user_id",
        "action",
        "state",
        "via",
        "requested_by_name",
        "source",
    ]
    list_filter = ["state", "action", "via", "workspace", "created_at"]
    list_select_related = ["workspace", "source"]
    search_fields = ["user_id__exact"]
    search_help_text = "Exact user id."
    date_hierarchy = "created_at"
    fields = readonly_fields = (
        "workspace",
        "user_id",
        "action",
        "state",
        "via",
        "requested_by_name",
        "source",
        "message_id",
        "event",
        "created_at",
        "settled_at",
    )
    inlines = [DeletionTargetInline]

    def get_queryset(self, request: HttpRequest) -> DeletionRequestQuerySet:
        # The model's manager's queryset; the stubs know only the QuerySet class.
        queryset = cast(DeletionRequestQuerySet, super().get_queryset(request))
        return queryset.prefetch_related("targets")

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # The requests still under way are brought up to date with their deliveries.
        deletion.refresh(list(self.get_queryset(request).open()[:OPEN_LIMIT]))
        return super().changelist_view(request, extra_context)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        deletion.refresh(list(self.get_queryset(request).filter(pk=object_id)))
        return super().change_view(request, object_id, form_url, extra_context)

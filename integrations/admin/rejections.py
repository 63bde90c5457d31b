"""The log of rejected inbound calls in the admin, per workspace and read-only.

Calls that named no known source (an unknown write key or webhook URL) have no
workspace: only superusers see them.
"""

from django.contrib import admin

from integrations.admin.delivery_log import ReadOnlyAdminMixin
from integrations.admin.scoping import WorkspaceScopedAdmin
from integrations.models import RejectedCall


@admin.register(RejectedCall)
class RejectedCallAdmin(ReadOnlyAdminMixin, WorkspaceScopedAdmin):
    list_display = [
        "received_at",
        "workspace",
        "source",
        "endpoint",
        "status_code",
        "code",
        "message",
        "rejected_messages",
        "client_ip",
    ]
    list_filter = ["status_code", "code", "workspace", "source", "received_at"]
    list_select_related = ["workspace", "source"]
    date_hierarchy = "received_at"
    fields = readonly_fields = (
        "received_at",
        "workspace",
        "source",
        "endpoint",
        "status_code",
        "code",
        "message",
        "rejected_messages",
        "client_ip",
        "summary",
    )

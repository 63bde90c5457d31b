"""The console's admin site: Django's, plus the "Audit trail" page of configuration changes."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import URLPattern, URLResolver, path, reverse


class ConsoleAdminSite(admin.AdminSite):
    site_header = "Integration console"
    site_title = "Integration console"

    def get_urls(self) -> list[URLResolver | URLPattern]:
        from integrations.admin.audit import audit_trail_view

        audit = path(
            "integrations/audit-trail/",
            self.admin_view(audit_trail_view),
            name="integrations_audit_trail",
        )
        return [audit, *super().get_urls()]

    def get_app_list(self, request: HttpRequest, app_label: str | None = None) -> list[Any]:
        """The registered models, and the audit trail in the integrations app's list."""
        from integrations.admin.audit import may_see_audit_trail

        app_list = super().get_app_list(request, app_label)
        if not may_see_audit_trail(request):
            return app_list
        for app in app_list:
            if app["app_label"] == "integrations":
                app["models"].append(
                    {
                        "name": "Audit trail",
                        "object_name": "AuditTrail",
                        "perms": {"view": True},
                        "admin_url": reverse("admin:integrations_audit_trail"),
                        "add_url": None,
                        "view_only": True,
                    }
                )
        return app_list

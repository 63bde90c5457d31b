"""The console's admin site: Django's, plus the workspace dashboard and the "Audit trail"
page of configuration changes."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver, path, reverse


class ConsoleAdminSite(admin.AdminSite):
    site_header = "Integration console"
    site_title = "Integration console"
    index_template = "admin/console_index.html"

    def get_urls(self) -> list[URLResolver | URLPattern]:
        from integrations.admin.audit import audit_trail_view
        from integrations.admin.dashboard import dashboard_view

        pages = [
            path(
                "integrations/dashboard/",
                self.admin_view(dashboard_view),
                name="integrations_dashboard",
            ),
            path(
                "integrations/audit-trail/",
                self.admin_view(audit_trail_view),
                name="integrations_audit_trail",
            ),
        ]
        return [*pages, *super().get_urls()]

    def index(self, request: HttpRequest, extra_context: dict | None = None) -> TemplateResponse:
        """The app list, under a link to the dashboard for users with a workspace."""
        from integrations.admin.audit import may_see_audit_trail

        if may_see_audit_trail(request):
            extra_context = {
                **(extra_context or {}),
                "dashboard_url": reverse("admin:integrations_dashboard"),
            }
        return super().index(request, extra_context)

    def get_app_list(self, request: HttpRequest, app_label: str | None = None) -> list[Any]:
        """The registered models, and the dashboard and the audit trail in the integrations
        app's list."""
        from integrations.admin.audit import may_see_audit_trail

        app_list = super().get_app_list(request, app_label)
        if not may_see_audit_trail(request):
            return app_list
        pages = [
            ("Dashboard", "Dashboard", "admin:integrations_dashboard"),
            ("Audit trail", "AuditTrail", "admin:integrations_audit_trail"),
        ]
        for app in app_list:
            if app["app_label"] == "integrations":
                app["models"] += [
                    {
                        "name": name,
                        "object_name": object_name,
                        "perms": {"view": True},
                        "admin_url": reverse(url_name),
                        "add_url": None,
                        "view_only": True,
                    }
                    for name, object_name, url_name in pages
                ]
        return app_list

from django.urls import re_path
from rest_framework.routers import DefaultRouter

from integrations.api import alerts, connection_tests, deletion, portability, views

WORKSPACE = r"workspaces/(?P<workspace_slug>[-a-zA-Z0-9_]+)"

router = DefaultRouter()
router.register("workspaces", views.WorkspaceViewSet, basename="workspace")
router.register(f"{WORKSPACE}/sources", views.SourceViewSet, basename="source")
router.register(f"{WORKSPACE}/integrations", views.IntegrationViewSet, basename="integration")
router.register(f"{WORKSPACE}/events", views.EventViewSet, basename="event")
router.register(f"{WORKSPACE}/deliveries", views.DeliveryViewSet, basename="delivery")
router.register(f"{WORKSPACE}/members", views.MemberViewSet, basename="member")
router.register(f"{WORKSPACE}/alert-rules", alerts.AlertRuleViewSet, basename="alert-rule")
router.register(
    f"{WORKSPACE}/deletion-requests",
    deletion.DeletionRequestViewSet,
    basename="deletion-request",
)

urlpatterns = [
    re_path(f"^{WORKSPACE}/catalog/$", views.CatalogView.as_view(), name="catalog"),
    re_path(
        rf"^{WORKSPACE}/integrations/(?P<pk>[0-9]+)/test-connection/$",
        connection_tests.IntegrationConnectionTestView.as_view(),
        name="integration-test-connection",
    ),
    # Before the router's, whose detail route would take "export" and "import" for ids.
    re_path(
        f"^{WORKSPACE}/integrations/export/$",
        portability.WorkspaceExportView.as_view(),
        name="integrations-export",
    ),
    re_path(
        f"^{WORKSPACE}/integrations/import/$",
        portability.ImportView.as_view(),
        name="integrations-import",
    ),
    re_path(
        rf"^{WORKSPACE}/integrations/(?P<pk>\d+)/export/$",
        portability.IntegrationExportView.as_view(),
        name="integration-export",
    ),
    *router.urls,
]

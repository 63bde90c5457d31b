from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from integrations.api.errors import not_found
from integrations.sources.http_api import TrackingAPIView

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("admin/", admin.site.urls),
    re_path(
        r"^v1/(?P<call>(?:identify|track|page|screen|group|alias|batch))/?$",
        TrackingAPIView.as_view(),
        name="tracking-api",
    ),
    path("hooks/", include("integrations.sources.urls")),  # one per registered source
    path("api/v1/", include("integrations.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
]

handler404 = not_found

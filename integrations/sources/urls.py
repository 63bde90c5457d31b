"""The webhook URLs, one per registered source: ``/hooks/<path>/<token>/``."""

from django.urls import path

from integrations.sources import registry, webhooks

urlpatterns = [
    path(
        f"{cls.path}/<str:token>/",
        webhooks.view_for(cls).as_view(),
        name=registry.url_name(cls.kind),
    )
    for cls in registry.SOURCES
]

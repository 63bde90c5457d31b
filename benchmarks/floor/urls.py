from django.urls import re_path

from benchmarks.floor.views import ingest

# The console's tracking-API paths, so that the same load goes to either server.
urlpatterns = [
    re_path(r"^v1/(?P<call>identify|track|page|screen|group|alias|batch)/?$", ingest),
]

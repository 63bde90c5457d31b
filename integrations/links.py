"""Absolute links to the console, for URLs users copy into other tools."""

from django.conf import settings
from django.http import HttpRequest


def absolute_url(path: str, request: HttpRequest | None = None) -> str:
    """``path`` on ``PUBLIC_BASE_URL`` when set, else on the host of the current request."""
    if settings.PUBLIC_BASE_URL:
        return settings.PUBLIC_BASE_URL.rstrip("/") + path
    return request.build_absolute_uri(path) if request else path

"""One error shape for every API response: ``{"code": ..., "message": ...}``.

Validation errors also carry ``errors``, the field-by-field detail DRF produced.
"""

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class APIError(exceptions.APIException):
    """An error with an explicit status, machine-readable code and human message."""

    def __init__(self, status_code: int, code: str, message: str, **extra: Any) -> None:
        self.status_code = status_code
        self.extra = extra
        super().__init__(detail=message, code=code)


def _first_code(codes: Any) -> str:
    while isinstance(codes, dict | list) and codes:
        codes = next(iter(codes.values())) if isinstance(codes, dict) else codes[0]
    return codes if isinstance(codes, str) else "error"


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or None)
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response
    if isinstance(exc, APIError):
        body = {"code": exc.get_codes(), "message": str(exc.detail), **exc.extra}
    elif isinstance(exc, exceptions.ValidationError):
        body = {
            "code": "invalid",
            "message": "The request is invalid; see errors for each field.",
            "errors": response.data,
        }
    else:
        detail = exc.detail
        message = str(detail.get("detail", detail)) if isinstance(detail, dict) else str(detail)
        body = {"code": _first_code(exc.get_codes()), "message": message}
    response.data = body
    return response


JSON_PREFIXES = ("/api/", "/v1/", "/hooks/")


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """The site's 404 page; under the API's and ingest's prefixes, a 404 in the API's
    error shape (a URL that matches no route, such as a workspace slug with characters
    slugs cannot have)."""
    if request.path.startswith(JSON_PREFIXES):
        return JsonResponse(
            {"code": "not_found", "message": "No such API endpoint or object."}, status=404
        )
    return defaults.page_not_found(request, exception)

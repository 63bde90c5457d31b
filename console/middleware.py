"""The console's own middlewares.

``RefuseNulInURLMiddleware`` refuses URLs that hold a NUL character before anything
looks them up. PostgreSQL cannot take text with a NUL in a query, so a ``%00`` in a path
segment (a workspace slug, a webhook token) or a query parameter (an API filter) that
reached a lookup would be a server error. Nothing the console names holds a NUL: such a
path is not found, such a query is invalid.

``RecordRejectedCallsMiddleware`` keeps the refused calls of the ingest endpoints.
"""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

from integrations import rejections


class RefuseNulInURLMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.path_info:
            return JsonResponse(
                {"code": "not_found", "message": "No page has this URL: it holds %00 (NUL)."},
                status=404,
            )
        # %00 is the only way a NUL reaches the query string (servers refuse a raw one).
        if "%00" in request.META.get("QUERY_STRING", ""):
            return JsonResponse(
                {
                    "code": "invalid_query",
                    "message": "A query parameter holds %00 (NUL), which no value can contain.",
                },
                status=400,
            )
        return self.get_response(request)


class RecordRejectedCallsMiddleware:
    """Keeps the refused calls of the ingest endpoints (see ``integrations.rejections``)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with rejections.watching() as call:
            response = self.get_response(request)
        if rejections.is_ingest(request):
            rejections.record_if_rejected(request, response, call)
        return response

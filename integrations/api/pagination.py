"""Pagination of the API's lists: ``?limit=`` (1 to 500, default 50) and ``?offset=``.

Out-of-range or malformed values are a 400 naming the parameter (DRF's own pagination
would pass an unbounded number to the database, which answers "bigint out of range").
"""

from typing import Any

from rest_framework import pagination, status
from rest_framework.request import Request

from integrations.api.errors import APIError

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
# Deep offset paging is not a way to read a billion rows; the bound keeps the number
# inside what every database takes.
MAX_OFFSET = 1_000_000_000


def _bounded_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if raw.isascii() and raw.isdigit() and len(raw) <= len(str(high)) and low <= int(raw) <= high:
        return int(raw)
    raise APIError(
        status.HTTP_400_BAD_REQUEST,
        "invalid_pagination",
        f"{name} must be a whole number from {low} to {high:,}",
    )


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    default_limit = DEFAULT_LIMIT
    max_limit = MAX_LIMIT

    def get_limit(self, request: Request) -> int:
        return _bounded_int(request, self.limit_query_param, self.default_limit, 1, MAX_LIMIT)

    def get_offset(self, request: Request) -> int:
        return _bounded_int(request, self.offset_query_param, 0, 0, MAX_OFFSET)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        bounds = {
            self.limit_query_param: {"minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
            self.offset_query_param: {"minimum": 0, "maximum": MAX_OFFSET, "default": 0},
        }
        for parameter in parameters:
            parameter["schema"].update(bounds.get(parameter["name"], {}))
        return parameters

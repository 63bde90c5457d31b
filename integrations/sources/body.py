"""Reading a JSON request body: gzip, size limits and parse errors as clear API errors."""

import json
import zlib
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest
from rest_framework import status

from integrations.api.errors import APIError

KB = 1024


def _too_large(limit: int, what: str) -> APIError:
    return APIError(
        status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        "payload_too_large",
        f"{what} exceeds the {limit // KB} KB limit.",
    )


def read_body(request: HttpRequest, limit: int, what: str = "The request body") -> bytes:
    """The raw body, decompressed when ``Content-Encoding: gzip``, at most ``limit`` bytes."""
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit, what)
    try:
        body = request.body
    except RequestDataTooBig as exc:
        raise _too_large(limit, what) from exc
    if len(body) > limit:
        raise _too_large(limit, what)

    encoding = request.META.get("HTTP_CONTENT_ENCODING", "").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip"):
        raise APIError(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            "unsupported_content_encoding",
            f"Content-Encoding {encoding!r} is not supported; send gzip or no encoding.",
        )
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        # Bounded: never inflate more than one byte past the limit (zip bombs).
        data = decompressor.decompress(body, limit + 1)
    except zlib.error as exc:
        raise APIError(
            status.HTTP_400_BAD_REQUEST, "invalid_gzip", f"The gzip body cannot be read: {exc}."
        ) from exc
    if len(data) > limit or decompressor.unconsumed_tail:
        raise _too_large(limit, f"{what} (decompressed)")
    if not decompressor.eof:
        raise APIError(status.HTTP_400_BAD_REQUEST, "invalid_gzip", "The gzip body is truncated.")
    return data


def parse_json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise APIError(
            status.HTTP_400_BAD_REQUEST,
            "invalid_json",
            f"The request body is not valid JSON: {exc}.",
        ) from exc

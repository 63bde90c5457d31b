"""Reading a JSON request body: gzip, size limits and parse errors as clear API errors."""

import json
import re
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


# JSON escapes for characters that valid JSON may carry but text columns cannot store.
SUSPECT_ESCAPE = re.compile(rb"\\u(0000|[dD][89a-fA-F])")


def parse_json(data: bytes, *, check_strings: bool = True) -> Any:
    """The parsed body, or a 400 saying why it is not JSON.

    With ``check_strings`` a string that cannot be stored refuses the whole body; a batch
    passes False and checks each message (``unstorable_reason``), so that one bad message
    does not cost the others.
    """
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise APIError(
            status.HTTP_400_BAD_REQUEST,
            "invalid_json",
            f"The request body is not valid JSON: {exc}.",
        ) from exc
    if check_strings and may_hold_unstorable(data):
        refuse_unstorable(value)
    return value


def may_hold_unstorable(data: bytes) -> bool:
    """Whether the raw JSON escapes a NUL or a surrogate half (cheap: most bodies do not)."""
    return SUSPECT_ESCAPE.search(data) is not None


def refuse_unstorable(value: Any) -> None:
    """A 400 when ``value`` holds a string that cannot be stored."""
    reason = unstorable_reason(value)
    if reason:
        raise APIError(status.HTTP_400_BAD_REQUEST, "invalid_string", reason)


def unstorable_reason(value: Any) -> str:
    """Why ``value`` cannot be stored (PostgreSQL refuses NUL characters, UTF-8 cannot
    encode a lone surrogate half), or "" when it can."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return "A string holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is not valid text."
    if _holds_nul(value):
        return "A string holds a NUL character (\\u0000), which cannot be stored."
    return ""


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False

"""Accepting a list of messages: valid ones are kept, invalid ones reported by index."""

from collections.abc import Callable, Sequence
from typing import Any

from rest_framework import status
from rest_framework.response import Response

from integrations import ingest, rejections
from integrations.api.errors import APIError
from integrations.models import Source
from integrations.sources.body import unstorable_reason
from integrations.sources.segment_spec import MessageError

MAX_BATCH_MESSAGES = 2500


def ensure_enabled(source: Source) -> Source:
    """The source, or a 403 saying it is disabled."""
    rejections.identified(source)
    if not source.enabled:
        raise APIError(
            status.HTTP_403_FORBIDDEN,
            "source_disabled",
            f"The source {source.name!r} is disabled; enable it in the console.",
        )
    return source


def accept_batch(
    source: Source,
    items: Sequence[Any],
    normalize: Callable[[Any], dict[str, Any]],
    *,
    check_strings: bool = False,
) -> Response:
    """Store the valid messages; report the others by index. ``check_strings``: the body
    may hold strings that cannot be stored (see ``body.may_hold_unstorable``)."""
    if not items:
        raise APIError(status.HTTP_400_BAD_REQUEST, "empty_batch", "The batch is empty.")
    if len(items) > MAX_BATCH_MESSAGES:
        raise APIError(
            status.HTTP_400_BAD_REQUEST,
            "batch_too_large",
            f"A batch may hold at most {MAX_BATCH_MESSAGES} messages; this one holds {len(items)}.",
        )
    messages, errors = [], []
    for index, item in enumerate(items):
        try:
            message = normalize(item)
            if check_strings and (reason := unstorable_reason(message)):
                raise MessageError("invalid_string", reason)
            messages.append(message)
        except MessageError as exc:
            errors.append({"index": index, "code": exc.code, "message": exc.message})
    if not messages:
        raise APIError(
            status.HTTP_400_BAD_REQUEST,
            "invalid_batch",
            "No message in the batch is valid; see errors.",
            errors=errors,
        )
    result = ingest.accept(source, messages)
    return Response(
        {
            "success": True,
            "accepted": len(result.accepted),
            "duplicates": result.duplicates,
            "errors": errors,
        }
    )


def accept_one(source: Source, item: Any, normalize: Callable[[Any], dict[str, Any]]) -> Response:
    try:
        message = normalize(item)
    except MessageError as exc:
        raise APIError(status.HTTP_400_BAD_REQUEST, exc.code, exc.message) from exc
    result = ingest.accept(source, [message])
    return Response({"success": True, "duplicate": result.duplicates > 0})

"""Accepting a list of messages: valid ones are kept, invalid ones reported by index."""

from collections.abc import Callable, Container, Mapping, Sequence
from typing import Any

from rest_framework import status
from rest_framework.response import Response

from integrations import ingest, rejections
from integrations.api.errors import APIError
from integrations.models import Source
from integrations.sources.body import check_content, check_nesting
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
    suspect: bool = False,
    refused: Mapping[int, MessageError] | None = None,
    may_nest_too_deep: Container[int] | None = None,
) -> Response:
    """Store the valid messages; report the others by index.

    Each item's nesting is checked before anything serialises it; ``suspect``: the body may
    hold strings or numbers that cannot be stored (``body.JSONBody.suspect``), so each
    message is checked for them too; ``refused``: items already found invalid, by index;
    ``may_nest_too_deep``: the only items whose nesting needs checking, by index (None:
    every item's)."""
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
            if may_nest_too_deep is None or index in may_nest_too_deep:
                check_nesting(item)
            if refused and index in refused:
                raise refused[index]
            message = normalize(item)
            if suspect:
                check_content(message)
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

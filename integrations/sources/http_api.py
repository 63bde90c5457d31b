"""Segment-compatible HTTP Tracking API: ``/v1/identify``, ``/v1/track`` ... ``/v1/batch``.

Official Segment libraries can point at this server: the write key is taken from the
Basic-auth user name or from ``writeKey`` in the body, gzip bodies are accepted, and
errors come back as ``{"code": ..., "message": ...}``.
"""

import base64
import datetime as dt
from collections.abc import Sequence
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from integrations.api.errors import APIError
from integrations.config_cache import ConfigCache
from integrations.models import Source
from integrations.sources import segment_spec
from integrations.sources.batch import accept_batch, accept_one, ensure_enabled
from integrations.sources.body import (
    KB,
    MAX_EXPANSION,
    check_nesting,
    checked_json,
    parse_json,
    read_body,
    refuse_unstorable,
)

MAX_MESSAGE_BYTES = 32 * KB
MAX_BATCH_BYTES = 500 * KB


def _basic_auth_user(request: Request) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "basic" or not credentials:
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode()
    except ValueError:  # not base64, not even ASCII, or not UTF-8 once decoded
        return None
    return decoded.partition(":")[0] or None


# Sources by write key, for INGEST_CONFIG_CACHE_SECONDS (see integrations/config_cache.py).
_sources: ConfigCache[str, Source | None] = ConfigCache("sources")
_sources.clear_on_change(Source)


def _source_for_write_key(key: str) -> Source | None:
    rows = list(Source.objects.select_related("workspace").filter(write_key=key).order_by()[:1])
    return rows[0] if rows else None


def authenticate_source(request: Request, body: Any) -> Source:
    """The source named by the write key (Basic-auth user name, or ``writeKey`` in the body)."""
    key = _basic_auth_user(request)
    if key is None and isinstance(body, dict) and isinstance(body.get("writeKey"), str):
        key = body["writeKey"] or None
    if key is None:
        raise APIError(
            status.HTTP_401_UNAUTHORIZED,
            "missing_write_key",
            "No write key: send it as the Basic-auth user name or as writeKey in the body.",
        )
    # A NUL cannot be in a key, nor in a database query.
    source = None if "\x00" in key else _sources.get(key, lambda: _source_for_write_key(key))
    if source is None:
        raise APIError(status.HTTP_401_UNAUTHORIZED, "invalid_write_key", "Unknown write key.")
    return ensure_enabled(source)


class TrackingAPIView(APIView):
    """One endpoint of the tracking API; ``call`` is the message type or ``batch``."""

    authentication_classes: list[type] = []
    permission_classes: list[type] = []
    renderer_classes = [JSONRenderer]

    @extend_schema(
        operation_id="tracking_api",
        request={"application/json": {"type": "object"}},
        responses={
            200: OpenApiResponse(description="Stored (or already stored) durably."),
            400: OpenApiResponse(description="Invalid JSON or message."),
            401: OpenApiResponse(description="Missing or unknown write key."),
            403: OpenApiResponse(description="Source disabled."),
            413: OpenApiResponse(description="Over a size limit."),
        },
        tags=["Tracking API"],
    )
    def post(self, request: Request, call: str) -> Response:
        received_at = timezone.now()
        if call == "batch":
            return self._batch(request, received_at)
        body = checked_json(read_body(request, MAX_MESSAGE_BYTES, "A message"))
        source = authenticate_source(request, body)
        return accept_one(
            source,
            body,
            lambda item: segment_spec.normalize(item, received_at=received_at, message_type=call),
        )

    def _batch(self, request: Request, received_at: dt.datetime) -> Response:
        raw = read_body(request, MAX_BATCH_BYTES, "A batch request")
        # Values that cannot be stored refuse the batch's own fields (the write key, the
        # shared context), but only the one message that holds them.
        parsed = parse_json(raw, measure_batch=True)
        body = parsed.value
        if isinstance(body, dict):
            own = {key: value for key, value in body.items() if key != "batch"}
            refuse_unstorable(own, suspect=parsed.suspect)
        source = authenticate_source(request, body)
        if not isinstance(body, dict) or not isinstance(body.get("batch"), list):
            raise APIError(
                status.HTTP_400_BAD_REQUEST,
                "invalid_batch",
                'A batch request is an object with a "batch" list of messages.',
            )
        try:
            defaults = segment_spec.batch_defaults(body)
        except segment_spec.MessageError as exc:
            raise APIError(status.HTTP_400_BAD_REQUEST, exc.code, exc.message) from exc
        items = body["batch"]
        too_large = segment_spec.MessageError(
            "message_too_large", f"the message exceeds the {MAX_MESSAGE_BYTES // KB} KB limit"
        )
        refused = dict.fromkeys(_oversized(items, parsed.batch_lengths, raw), too_large)
        return accept_batch(
            source,
            items,
            lambda item: segment_spec.normalize(item, received_at=received_at, defaults=defaults),
            suspect=parsed.suspect,
            refused=refused,
            may_nest_too_deep=parsed.may_nest_too_deep(),
        )


def _oversized(items: list[Any], lengths: list[int] | None, raw: bytes) -> list[int]:
    """The indexes of the messages over the limit, as JSON.stringify measures them: none
    when the whole body is within it, and only those long enough as written to be over it
    once re-encoded (``MAX_EXPANSION``) are encoded to be measured."""
    if len(raw) <= MAX_MESSAGE_BYTES:
        return []
    candidates: Sequence[int] = range(len(items))
    if lengths is not None:
        candidates = [i for i in candidates if lengths[i] * MAX_EXPANSION > MAX_MESSAGE_BYTES]
    return [i for i in candidates if _encoded_size(items[i]) > MAX_MESSAGE_BYTES]


def _encoded_size(item: Any) -> int:
    """The message's compact JSON size; 0 when too deep to encode (the batch says so)."""
    try:
        check_nesting(item)
    except segment_spec.MessageError:
        return 0
    return len(segment_spec.compact_json(item))

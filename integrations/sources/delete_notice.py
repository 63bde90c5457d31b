"""The ``delete`` notices Segment's classic Webhooks destination posts when a user
deletion is requested in Segment: ``{"type": "delete", "userId", "timestamp",
"messageId"?, "context"?}``, signed like every other notice. Each becomes a deletion
request (``integrations/deletion.py``), propagated to the integrations that take it."""

import datetime as dt
from typing import Any

from rest_framework import status
from rest_framework.response import Response

from integrations import deletion
from integrations.api.errors import APIError
from integrations.models import DeletionRequest, Source
from integrations.sources.body import refuse_unstorable
from integrations.sources.segment_spec import MessageError

NOTICE_TYPE = "delete"


def is_delete_notice(body: Any) -> bool:
    return isinstance(body, dict) and body.get("type") == NOTICE_TYPE


def accept(source: Source, body: dict[str, Any], received_at: dt.datetime) -> Response:
    """Store the notice's deletion request; a 400 saying what is wrong with a bad one.
    The same notice again is acknowledged (``duplicate``) and not repeated."""
    try:
        message = deletion.notice_message(body, received_at)
    except MessageError as exc:
        raise APIError(status.HTTP_400_BAD_REQUEST, exc.code, exc.message) from exc
    refuse_unstorable(message, suspect=True)  # rare: always checked whole
    created = deletion.submit(
        source.workspace, message, via=DeletionRequest.Via.SEGMENT, source=source
    )
    return Response({"success": True, "duplicate": created is None})
